import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import zarr

from sarise.cluster import get_client
from sarise.config import ClusterConfig, ExtractConfig, IngestConfig
from sarise.demo_archive import write_demo_archive
from sarise.errors import SariseError
from sarise.features import VERSION, embed, extract
from sarise.ingest import ingest
from sarise.models import load_model
from sarise.run import open_run
from sarise.store import ImageStore
from tests._system import MPI_ENV, need_mpirun, need_slurm

pytestmark = pytest.mark.slow

ARRAYS = ("features", "logits", "probabilities", "image_id", "done")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run with an image store of 22 images in chunks of 4 (the last one partial)."""
    root = tmp_path_factory.mktemp("run")
    sidecar = write_demo_archive(root / "archive", n=22, size=96)
    cfg = IngestConfig(size=128, chunk=4, fit="pad")
    ingest([root / "archive"], root / "store", config=cfg, sidecar=sidecar, workers=2,
           show_progress=False)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def reference(run_dir):
    """Features from 2 local worker processes."""
    out = run_dir / "features.zarr"
    with get_client(workers=2) as client:
        done = extract(run_dir / "store", out, client=client, show_progress=False)
    assert done == {"images": 22, "chunks": 6, "skipped": 0}
    return out


def _arrays(path):
    g = zarr.open_group(path, mode="r")
    return {k: g[k][:] for k in ARRAYS}


def _assert_same(a, b):
    a, b = _arrays(a), _arrays(b)
    for k in ARRAYS:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _embed_chunks(model, images, chunk):
    parts = [embed(model, images[i : i + chunk]) for i in range(0, len(images), chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _sarise(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "sarise.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_features_are_the_model_on_the_stored_images(run_dir, reference):
    store = ImageStore.open(run_dir / "store", mode="r")
    model, info = load_model()
    # chunk by chunk, as the workers run it (a batch's size can change the last bits)
    feats, logits = _embed_chunks(model, store.array("images")[:, 0], 4)
    got = _arrays(reference)
    np.testing.assert_array_equal(got["features"], feats)
    np.testing.assert_array_equal(got["logits"], logits)
    np.testing.assert_allclose(got["probabilities"].sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(got["image_id"], store.array("image_id")[:])
    assert got["done"].tolist() == [4, 4, 4, 4, 4, 2]
    attrs = zarr.open_group(reference, mode="r").attrs
    assert attrs["model_sha256"] == info["sha256"] and attrs["version"] == VERSION
    assert attrs["precision"] in ("fp32", "bf16")
    assert attrs["preprocessing"]["store"]["fit"] == "pad" and len(attrs["groups"]) == 17


def test_one_worker_gives_the_same_features_and_a_rerun_skips(run_dir, reference, tmp_path):
    with get_client(workers=1) as client:
        extract(run_dir / "store", tmp_path / "f.zarr", client=client, show_progress=False)
        again = extract(run_dir / "store", tmp_path / "f.zarr", client=client,
                        show_progress=False)  # fmt: skip
    assert again == {"images": 22, "chunks": 0, "skipped": 6}
    _assert_same(reference, tmp_path / "f.zarr")


def test_features_under_mpirun_with_dask_mpi_equal_local_processes(run_dir, reference, tmp_path,
                                                                   cli_env):  # fmt: skip
    need_mpirun()
    res = subprocess.run(["mpirun", "-np", "3", sys.executable, "-m", "sarise.cli", "extract",
                          str(run_dir / "store"), str(tmp_path / "mpi.zarr"), "--cluster", "mpi",
                          "--no-progress"], env={**cli_env, **MPI_ENV}, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "6 chunks computed" in res.stdout
    _assert_same(reference, tmp_path / "mpi.zarr")


def test_features_under_srun_with_dask_mpi_equal_local_processes(run_dir, reference, tmp_path,
                                                                 cli_env):  # fmt: skip
    need_slurm()
    # what profiles/slurm runs with `cluster: mpi`: srun starts the ranks, PMIx wires MPI
    res = subprocess.run(["srun", "--overcommit", "--ntasks=3", "--mpi=pmix",
                          "--job-name=sarise-test", sys.executable, "-m", "sarise.cli", "extract",
                          str(run_dir / "store"), str(tmp_path / "srun.zarr"), "--cluster", "mpi",
                          "--no-progress"], env=cli_env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    _assert_same(reference, tmp_path / "srun.zarr")


def test_features_from_dask_workers_in_slurm_jobs(run_dir, reference, tmp_path, monkeypatch):
    need_slurm()
    monkeypatch.setenv("SARISE_SLURM_LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("HOME", str(tmp_path))  # dask-jobqueue writes its config there
    cfg = ClusterConfig(kind="slurm", jobs=1, workers=2, cores=2, memory="4GB",
                        walltime="00:10:00", timeout=120)  # fmt: skip
    with get_client(cfg) as client:
        hosts = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
        assert all(hosts.values()), hosts  # the workers run inside a SLURM job
        extract(run_dir / "store", tmp_path / "s.zarr", client=client, show_progress=False)
    _assert_same(reference, tmp_path / "s.zarr")


def test_a_killed_extraction_resumes_chunk_by_chunk(run_dir, reference, tmp_path, cli_env):
    out = tmp_path / "k.zarr"
    conf = tmp_path / "c.yaml"
    conf.write_text("extract: {batch_size: 2}\n")
    proc = subprocess.Popen([sys.executable, "-m", "sarise.cli", "extract", str(run_dir / "store"),
                             str(out), "-c", str(conf), "--workers", "1", "--no-progress"],
                            env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 180
    done = np.zeros(6)
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "done" / "zarr.json").exists():
            done = zarr.open_array(out / "done", mode="r")[:]
            if (done > 0).sum() >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the extraction finished before it could be killed"
    finished = [c for c in range(6) if zarr.open_array(out / "done", mode="r")[c] > 0]
    assert 0 < len(finished) < 6
    stamps = {c: (out / "features" / "c" / str(c) / "0").stat().st_mtime_ns for c in finished}
    res = _sarise("extract", run_dir / "store", out, "-c", conf, "--workers", "1",
                  "--no-progress", env=cli_env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"{6 - len(finished)} chunks computed, {len(finished)} already done" in res.stdout
    for c, t in stamps.items():  # finished chunks were not written again
        assert (out / "features" / "c" / str(c) / "0").stat().st_mtime_ns == t
    _assert_same(reference, out)


def test_a_grown_store_extends_and_other_settings_are_refused(run_dir, reference, tmp_path):
    import shutil

    shutil.copytree(run_dir / "store", tmp_path / "store")
    shutil.copytree(reference, tmp_path / "features.zarr")
    more = tmp_path / "more"
    write_demo_archive(more, n=5, size=96, seed=7)
    ingest([more], tmp_path / "store", config=IngestConfig(size=128, chunk=4, fit="pad"),
           workers=1, show_progress=False)  # fmt: skip
    done = extract(tmp_path / "store", tmp_path / "features.zarr", show_progress=False)
    # the partial last chunk (2 of 4) and one new chunk
    assert done == {"images": 27, "chunks": 2, "skipped": 5}
    got = _arrays(tmp_path / "features.zarr")
    np.testing.assert_array_equal(got["features"][:20], _arrays(reference)["features"][:20])
    model, _ = load_model()
    feats, _ = _embed_chunks(model, ImageStore.open(tmp_path / "store").array("images")[20:, 0], 4)
    np.testing.assert_array_equal(got["features"][20:], feats)
    with pytest.raises(SariseError, match="another model or preprocessing"):
        extract(tmp_path / "store", tmp_path / "features.zarr",
                config=ExtractConfig(invariant="d4"), show_progress=False)  # fmt: skip
    other = "bf16" if zarr.open_group(reference, mode="r").attrs["precision"] == "fp32" else "fp32"
    with pytest.raises(SariseError, match=r"another model or preprocessing.*precision"):
        extract(tmp_path / "store", tmp_path / "features.zarr",
                config=ExtractConfig(precision=other), show_progress=False)  # fmt: skip
    with pytest.raises(SariseError, match="channel 3: the store has 1"):
        extract(tmp_path / "store", tmp_path / "x.zarr", config=ExtractConfig(channel=3))


def test_open_run_joins_features_and_metadata(run_dir, reference):
    ds = open_run(run_dir)
    assert dict(ds.sizes) == {"image": 22, "feature": 256, "group": 17, "channel": 1, "ty": 64,
                              "tx": 64}  # fmt: skip
    assert ds["thumbnail"].dims == ("image", "channel", "ty", "tx")  # one per stored channel
    meta = ImageStore.open(run_dir / "store", mode="r").metadata()
    assert ds["image"].values.tolist() == meta["image_id"].tolist()
    assert ds["path"].values.tolist() == meta["path"].tolist()
    assert ds["grower"].values.tolist() == meta["grower"].tolist()  # a sidecar column
    assert ds["done"].all() and list(ds["group"].values[:3]) == ["p1", "p2", "pm"]
    first = int(meta["image_id"].iloc[3])
    np.testing.assert_array_equal(ds["features"].sel(image=first).values,
                                  _arrays(reference)["features"][3])  # fmt: skip
    assert ds.attrs["model_sha256"] == zarr.open_group(reference, mode="r").attrs["model_sha256"]


def test_d4_descriptor_is_invariant_to_right_angle_turns_and_flips():
    model, _ = load_model()
    rng = np.random.default_rng(0)
    x = rng.random((3, 128, 128), dtype=np.float32)
    turned = np.rot90(x, 1, axes=(1, 2))
    flipped = x[:, :, ::-1]
    plain = [embed(model, v)[0] for v in (x, turned)]
    assert not np.allclose(plain[0], plain[1], atol=1e-3)
    # exactly, in either precision: a turned image has the same views, and in bfloat16 an
    # ulp of difference anywhere (the standardisation, the order of the views) would flip
    # roundings all through the network
    for precision in ("fp32", "bf16"):
        d4 = [embed(model, v, invariant="d4", precision=precision)[0]
              for v in (x, turned, flipped)]  # fmt: skip
        np.testing.assert_array_equal(d4[1], d4[0], err_msg=f"turned, {precision}")
        np.testing.assert_array_equal(d4[2], d4[0], err_msg=f"flipped, {precision}")


def test_gpu_path_matches_cpu_up_to_bfloat16():
    if not torch.cuda.is_available():
        pytest.skip("no GPU here: the CUDA path (bf16, channels_last) needs one")
    cpu, _ = load_model()
    gpu, _ = load_model(device="cuda")
    x = np.random.default_rng(1).random((64, 128, 128), dtype=np.float32)
    fc, lc = embed(cpu, x)
    fg, lg = embed(gpu, x)
    cos = (fc * fg).sum(1) / np.linalg.norm(fc, axis=1) / np.linalg.norm(fg, axis=1)
    assert cos.min() > 0.99
    assert (lc.argmax(1) == lg.argmax(1)).mean() > 0.9


def test_features_of_another_store_are_refused_not_paired_with_its_ids(
    run_dir, reference, tmp_path
):
    import shutil

    other = tmp_path / "other"
    write_demo_archive(other, n=22, size=96, seed=11)
    ingest([other], tmp_path / "store", config=IngestConfig(size=128, chunk=4, fit="pad"),
           workers=1, show_progress=False)  # fmt: skip
    shutil.copytree(reference, tmp_path / "features.zarr")
    with pytest.raises(SariseError, match="features of other images than the store"):
        extract(tmp_path / "store", tmp_path / "features.zarr", show_progress=False)


def test_workers_keep_glibcs_dynamic_malloc_thresholds():
    # Dask's MALLOC_TRIM_THRESHOLD_=65536 halved torch's CPU throughput in every worker
    with get_client(workers=1) as client:
        env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        threads = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
    assert set(env.values()) == {None}
    assert set(threads.values()) == {"1"}  # Dask's other worker settings are kept


def test_fused_channels_are_each_channels_features_side_by_side(tmp_path):
    """``channels: [height, phase]`` + ``extract.channel: fuse``: each channel through the
    model, unit vectors side by side over sqrt(2); the logits their mean."""
    sidecar = write_demo_archive(tmp_path / "archive", n=6, size=64)
    cfg = IngestConfig(channels=("height", "phase"), size=128, fit="pad", chunk=4)
    ingest([tmp_path / "archive"], tmp_path / "store", config=cfg, sidecar=sidecar, workers=1,
           show_progress=False)  # fmt: skip
    store = ImageStore.open(tmp_path / "store", mode="r")
    assert store.channels == ["c0:height", "c1:phase"]
    assert store.metadata()["channel"].str.contains(";").all()  # both names recorded
    with get_client(workers=1) as client:
        extract(tmp_path / "store", tmp_path / "f.zarr", config=ExtractConfig(channel="fuse"),
                client=client, show_progress=False)  # fmt: skip
    g = zarr.open_group(tmp_path / "f.zarr", mode="r")
    model, _ = load_model()
    images = store.array("images")[:]
    per = [_embed_chunks(model, images[:, c], 4) for c in (0, 1)]
    unit = [f / np.linalg.norm(f, axis=1, keepdims=True) for f, _ in per]
    np.testing.assert_allclose(g["features"][:], np.concatenate(unit, 1) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(g["logits"][:], (per[0][1] + per[1][1]) / 2, atol=1e-5)
    assert g["features"].shape == (len(store), 2 * model.num_features)
    assert g.attrs["preprocessing"]["channel"] == "fuse"
