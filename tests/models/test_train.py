import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from sarise.config import load_config
from sarise.errors import SariseError
from sarise.train import load_checkpoint, train
from tests._system import MPI_ENV, need_mpirun, need_slurm
from tests.models.conftest import write_config

pytestmark = pytest.mark.slow


def _weights(ckpt):
    return load_checkpoint(ckpt)["state_dict"]


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _losses(run):
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss_step")]
    return {int(r["step"]): float(r["train/loss_step"]) for r in rows}


def _sarise(*args, env, **kw):
    return subprocess.run([sys.executable, "-m", "sarise.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, **kw)  # fmt: skip


def test_tiny_model_overfits_a_tiny_set():
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from sarise.models import SymmetryClassifier
    from sarise.models.data import GeneratedImages

    cfg = load_config(write_config_dict())
    data = GeneratedImages(cfg.symmetry)
    xs, ys = zip(*(data[i] for i in range(34)), strict=True)
    x, y = torch.stack(xs), torch.tensor(ys)
    L.seed_everything(0, verbose=False)
    optim = {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.0, "schedule": "cosine",
             "warmup": 0.05, "label_smoothing": 0.0, "steps": 150, "channels_last": False}  # fmt: skip
    module = SymmetryClassifier({"arch": "resnet18", "width": 8}, [str(i) for i in range(17)],
                                {"method": "standardize"}, 32, optim)  # fmt: skip
    trainer = L.Trainer(accelerator="cpu", max_steps=150, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=34))
    module.eval()
    with torch.no_grad():
        logits, _ = module(x)
    assert (logits.argmax(1) == y).float().mean() == 1.0  # memorised: 2 images per group


def write_config_dict():
    import yaml

    from tests.models.conftest import TINY

    return yaml.safe_load(yaml.safe_dump(TINY))


def test_training_is_deterministic_and_records_what_inference_needs(tmp_path, tiny_splits):
    cfg = load_config(write_config(tmp_path / "c.yaml"))
    a = train(cfg, tmp_path / "a", val=tiny_splits / "val.zarr", show_progress=False)
    b = train(cfg, tmp_path / "b", val=tiny_splits / "val.zarr", show_progress=False)
    _assert_same_weights(a, b)
    ckpt = load_checkpoint(a)
    assert ckpt["global_step"] == 6
    hp = ckpt["hyper_parameters"]
    assert hp["classes"][0] == "p1" and hp["classes"][16] == "p6m"
    assert hp["normalization"]["method"] == "standardize"
    assert hp["image_size"] == 32 and hp["model"]["width"] == 4
    assert hp["config"]["symmetry"]["size"] == 32 and hp["version"]
    assert (tmp_path / "a" / "checkpoints" / "best.ckpt").exists()
    assert set(_losses(tmp_path / "a")) == set(range(6))
    with open(tmp_path / "a" / "metrics.csv") as f:
        header = next(csv.reader(f))
    for key in ("val/acc", "val/loss", "train/images_per_s", "val_group/p6m", "train_group/p1"):
        assert key in header
    # a finished run is not redone; another config in the same folder is refused
    t = os.path.getmtime(a)
    assert train(cfg, tmp_path / "a", show_progress=False) == a and os.path.getmtime(a) == t
    other = load_config(write_config(tmp_path / "d.yaml", train={"lr": 0.02}))
    with pytest.raises(SariseError, match="another config"):
        train(other, tmp_path / "a", show_progress=False)


def test_the_final_checkpoint_holds_the_last_step_when_epochs_do_not_divide_the_run(
    tmp_path, tiny_splits
):
    """7 steps in epochs of 3: the last epoch is cut at step 7, with no validation or
    epoch-end checkpoint after it; model.ckpt must still be step 7, not epoch 2's step 6."""
    cfg = load_config(write_config(tmp_path / "c.yaml", train={"steps": 7, "steps_per_epoch": 3}))
    final = train(cfg, tmp_path / "a", val=tiny_splits / "val.zarr", show_progress=False)
    ckpt = load_checkpoint(final)
    assert ckpt["global_step"] == 7
    assert load_checkpoint(tmp_path / "a" / "checkpoints" / "last.ckpt")["global_step"] == 6
    last = _weights(tmp_path / "a" / "checkpoints" / "last.ckpt")
    assert any(not torch.equal(last[k], v) for k, v in ckpt["state_dict"].items())
    assert json.loads((tmp_path / "a" / "train.json").read_text())["steps"] == 7


def test_fine_tuning_starts_from_the_given_weights(tmp_path, tiny_model):
    _, start = tiny_model
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(start.read_bytes())
    copy.with_suffix(".json").write_bytes(start.with_suffix(".json").read_bytes())
    cfg = load_config(write_config(tmp_path / "c.yaml", train={"init": str(start), "lr": 1e-9}))
    tuned = train(cfg, tmp_path / "tuned", show_progress=False)
    # at a vanishing learning rate the weights stay those of the start (BatchNorm's running
    # statistics move: compare the learned parameters)
    from sarise.models import load_model

    net, _ = load_model(start)
    after = {k.removeprefix("model."): v for k, v in _weights(tuned).items()}
    for name, value in net.named_parameters():
        assert torch.allclose(after[name], value, atol=1e-5), name
    scratch = train(load_config(write_config(tmp_path / "s.yaml", train={"lr": 1e-9})),
                    tmp_path / "scratch", show_progress=False)  # fmt: skip
    assert not torch.allclose(_weights(scratch)["model.fc.weight"], after["fc.weight"])
    # the fingerprint holds the starting weights by content, not by path
    fp = load_checkpoint(tuned)["hyper_parameters"]["fingerprint"]["train"]["init"]
    assert len(fp) == 64 and str(start) not in fp
    moved = load_config(write_config(tmp_path / "m.yaml", train={"init": str(copy), "lr": 1e-9}))
    assert train(moved, tmp_path / "tuned", show_progress=False) == tuned  # same content: done
    with pytest.raises(SariseError, match="no model at"):
        train(load_config(write_config(tmp_path / "x.yaml", train={"init": str(tmp_path / "no")})),
              tmp_path / "x", show_progress=False)  # fmt: skip
    wide = load_config(write_config(tmp_path / "w.yaml", train={
        "init": str(start), "model": {"arch": "resnet18", "width": 8}}))  # fmt: skip
    with pytest.raises(SariseError, match="this run trains"):
        train(wide, tmp_path / "w", show_progress=False)


def test_checkpoints_load_without_unpickling_code(tmp_path, tiny_model):
    ckpt, _ = tiny_model
    torch.load(ckpt, weights_only=True)  # plain data only
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": os.system}, evil)  # a pickled callable
    with pytest.raises(SariseError, match="cannot read checkpoint"):
        load_checkpoint(evil)


def test_killed_run_resumes_to_the_same_step_and_weights(tmp_path, tiny_splits, cli_env):
    cfg = write_config(tmp_path / "c.yaml", train={"steps": 40, "steps_per_epoch": 4})
    ref = train(load_config(cfg), tmp_path / "ref", show_progress=False)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "sarise.cli", "train", str(run), "-c", str(cfg),
                             "--no-progress"], env=cli_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # the injected kill: no chance to clean up
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run / "model.ckpt").exists()
    step = load_checkpoint(last)["global_step"]
    assert 0 < step < 40
    res = _sarise("train", run, "-c", cfg, "--no-progress", env=cli_env)
    assert res.returncode == 0, res.stderr
    assert f"resuming from {last} (step {step})" in res.stderr
    assert load_checkpoint(run / "model.ckpt")["global_step"] == 40
    _assert_same_weights(ref, run / "model.ckpt")
    # the record counts the training time of the killed run too
    record = json.loads((run / "train.json").read_text())
    assert record["seconds"] > record["seconds_this_run"] > 0
    assert record["resumed_from"] == str(last)
    # the training log holds the steps before the kill too, each once, as an unbroken run's
    assert _losses(run) == _losses(tmp_path / "ref") and len(_losses(run)) == 40


def test_ddp_two_processes_follow_one_process(tmp_path, tiny_splits, cli_env):
    # Same global batch and images per step. Only BatchNorm differs: each process
    # normalises by the statistics of its half of the batch (no SyncBatchNorm on CPU).
    cfg = write_config(tmp_path / "c.yaml", train={"steps": 6})
    for name, devices in (("one", 1), ("two", 2)):
        res = _sarise("train", tmp_path / name, "-c", cfg, "--val", tiny_splits / "val.zarr",
                      "--accelerator", "cpu", "--devices", devices, "--no-progress", env=cli_env,
                      timeout=300)  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert set(one) == set(two) == set(range(6))
    # measured: 0.2% apart at step 0 (same weights, BatchNorm alone), within 1.1% after
    assert two[0] == pytest.approx(one[0], rel=0.005)
    for s in one:
        assert two[s] == pytest.approx(one[s], rel=0.02), s
    import json

    assert json.loads((tmp_path / "two" / "train.json").read_text())["world_size"] == 2


def test_training_under_mpirun_reads_the_world_from_mpi(tmp_path, tiny_splits, cli_env):
    need_mpirun()
    cfg = write_config(tmp_path / "c.yaml", train={"steps": 4})
    env = {**cli_env, **MPI_ENV}
    ref = _sarise("train", tmp_path / "local", "-c", cfg, "--devices", "2", "--no-progress",
                  env=cli_env, timeout=300)  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-3000:]
    res = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", sys.executable, "-m", "sarise.cli",
                          "train", str(tmp_path / "mpi"), "-c", str(cfg), "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    import json

    summary = json.loads((tmp_path / "mpi" / "train.json").read_text())
    assert summary["world_size"] == 2
    one, two = _losses(tmp_path / "local"), _losses(tmp_path / "mpi")
    assert set(one) == set(two) == set(range(4))
    for s in one:  # the same processes as `--devices 2`, started by MPI instead
        assert two[s] == pytest.approx(one[s], rel=1e-5, abs=1e-6), s


def test_training_under_srun_reads_the_world_from_slurm(tmp_path, tiny_splits, cli_env):
    need_slurm()
    cfg = write_config(tmp_path / "c.yaml", train={"steps": 4})
    ref = _sarise("train", tmp_path / "local", "-c", cfg, "--devices", "2", "--no-progress",
                  env=cli_env, timeout=300)  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-3000:]
    # what the SLURM profile's train job runs: `srun sarise train ...` inside an allocation
    res = subprocess.run(["srun", "--ntasks=2", "--ntasks-per-node=2", "--job-name=sarise-test",
                          sys.executable, "-m", "sarise.cli", "train", str(tmp_path / "slurm"),
                          "-c", str(cfg), "--no-progress"],
                         env=cli_env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    import json

    summary = json.loads((tmp_path / "slurm" / "train.json").read_text())
    assert summary["world_size"] == 2
    one, two = _losses(tmp_path / "local"), _losses(tmp_path / "slurm")
    assert set(one) == set(two) == set(range(4))
    for s in one:
        assert two[s] == pytest.approx(one[s], rel=1e-5, abs=1e-6), s
