import numpy as np
import pytest
import torch

from sarise.config import SymmetryConfig
from sarise.errors import SariseError
from sarise.models.data import GeneratedImages, SplitImages, StepSampler, standardize


@pytest.mark.parametrize("world", [1, 2, 4])
def test_ranks_together_see_the_global_batches_of_one_process(world):
    steps, batch = 3, 8
    for epoch in range(3):
        per_rank = []
        for rank in range(world):
            s = StepSampler(steps, batch, rank, world)
            s.set_epoch(epoch)
            idx = list(s)
            assert len(idx) == len(s) == steps * batch // world
            per_rank.append(np.reshape(idx, (steps, batch // world)))
        for step in range(steps):
            got = sorted(np.concatenate([r[step] for r in per_rank]).tolist())
            start = (epoch * steps + step) * batch
            assert got == list(range(start, start + batch))


def test_global_batch_must_divide_by_the_processes():
    with pytest.raises(SariseError, match="does not divide by 3"):
        StepSampler(2, 8, 0, 3)


def test_generated_images_are_the_same_in_any_process_and_order():
    cfg = SymmetryConfig(size=32, cell_px=(6, 14), cell_resolution=32)
    data = GeneratedImages(cfg)
    a = [data[i] for i in (40, 3, 17)]
    b = [GeneratedImages(cfg)[i] for i in (40, 3, 17)]
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and ya == yb
    assert [y for _, y in a] == [40 % 17, 3, 0]
    x, _ = a[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std(correction=0)) - 1) < 1e-3
    assert GeneratedImages(cfg, in_chans=3)[5][0].shape == (3, 32, 32)


def test_standardize_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, (4, 2, 16, 16)).astype(np.float32)
    a = standardize(x)
    b = standardize(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a.mean(axis=(-2, -1)), 0, atol=1e-5)
    np.testing.assert_allclose(a.std(axis=(-2, -1)), 1, atol=1e-4)
    # a constant image stays finite
    assert np.isfinite(standardize(np.ones((8, 8), np.float32))).all()


def test_split_images_read_the_zarr_store(tiny_splits):
    import zarr

    data = SplitImages(tiny_splits / "val.zarr")
    g = zarr.open_group(tiny_splits / "val.zarr", mode="r")
    assert len(data) == 34
    for i in (0, 20, 33, 1):
        x, y = data[i]
        assert y == int(g["label"][i])
        np.testing.assert_allclose(x[0].numpy(), standardize(np.asarray(g["images"][i])), atol=1e-6)


def test_split_images_refuse_a_non_store(tmp_path):
    with pytest.raises(SariseError, match="not a symmetry dataset store"):
        SplitImages(tmp_path)


def test_the_world_comes_from_the_launcher(monkeypatch):
    from lightning.fabric.plugins.environments import (
        LightningEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
    )

    from sarise.train import cluster_world

    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", "SLURM_STEP_ID"):
        monkeypatch.delenv(var, raising=False)
    env, devices, nodes = cluster_world(3)
    assert isinstance(env, LightningEnvironment) and (devices, nodes) == (3, 1)
    # srun -N 2 --ntasks-per-node 4: one task per GPU, the world from SLURM
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "2")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    env, devices, nodes = cluster_world(1)
    assert isinstance(env, SLURMEnvironment) and (devices, nodes) == (4, 2)
    assert not env.auto_requeue  # Snakemake retries requeue, not Lightning
    # a batch job without srun is one process, whatever the allocation
    monkeypatch.delenv("SLURM_STEP_ID")
    assert isinstance(cluster_world(1)[0], LightningEnvironment)
    # mpirun -np 6 with 3 per node
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "6")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "3")
    env, devices, nodes = cluster_world(1)
    assert isinstance(env, MPIEnvironment) and (devices, nodes) == (3, 2)
