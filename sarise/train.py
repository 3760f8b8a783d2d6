"""``sarise train``: fit the symmetry classifier with Lightning, locally or at scale.

One command for every launcher: run it directly (``--devices N`` starts N local DDP
processes), as one task per GPU under ``srun`` (the world comes from SLURM's
environment), or under ``mpirun`` (the world comes from MPI via mpi4py). A rerun after a
kill resumes from ``checkpoints/last.ckpt`` and ends at the same step; a finished run
with the same config is not redone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch

from sarise._files import file_sha256
from sarise._version import __version__
from sarise.config import SarisConfig
from sarise.errors import SariseError
from sarise.models.data import NORMALIZATION, SymmetryDataModule
from sarise.models.module import SymmetryClassifier
from sarise.symmetry import GROUPS

__all__ = ["cluster_world", "load_checkpoint", "train"]

logger = logging.getLogger(__name__)

FINAL = "model.ckpt"
SUMMARY = "train.json"


def launch_rank() -> int:
    """This process's global rank as its launcher (mpirun, srun, Lightning) set it; 0 for a
    process started alone."""
    env = os.environ
    for key in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "RANK"):
        if env.get(key):
            return int(env[key])
    if "SLURM_STEP_ID" in env and env.get("SLURM_PROCID"):
        return int(env["SLURM_PROCID"])
    return int(env.get("LOCAL_RANK") or 0)


def cluster_world(devices: int | None = None):
    """How many processes train, and who started them.

    Returns ``(plugin, devices_per_node, num_nodes)``: an MPI or SLURM cluster
    environment when the processes were started by ``mpirun`` or ``srun`` (the world
    comes from their environment), else Lightning's own environment and ``devices`` local processes that
    Lightning starts itself.
    """
    env = os.environ
    size = env.get("OMPI_COMM_WORLD_SIZE") or env.get("PMI_SIZE") or env.get("PMIX_SIZE")
    if size and "SLURM_STEP_ID" not in env:
        from lightning.fabric.plugins.environments import MPIEnvironment

        size = int(size)
        local = int(env.get("OMPI_COMM_WORLD_LOCAL_SIZE") or env.get("MPI_LOCALNRANKS") or size)
        if size % local:
            raise SariseError(
                f"MPI world of {size} processes is not a multiple of {local} per node"
            )
        return MPIEnvironment(), local, size // local
    if "SLURM_NTASKS" in env and "SLURM_STEP_ID" in env:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        ntasks = int(env["SLURM_NTASKS"])
        nodes = int(env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_NNODES") or 1)
        if ntasks % nodes:
            raise SariseError(f"SLURM step of {ntasks} tasks on {nodes} nodes is uneven")
        # (Lightning also wants SLURM_NTASKS_PER_NODE: sbatch/srun --ntasks-per-node)
        return SLURMEnvironment(auto_requeue=False), ntasks // nodes, nodes
    from lightning.fabric.plugins.environments import LightningEnvironment

    # explicit, so Lightning does not probe for MPI by importing mpi4py
    return LightningEnvironment(), devices or 1, 1


def quiet_lightning() -> None:
    """Lightning's chatter that no user can act on stays out of the log: its tips and
    advertisements, the hint to use ``srun`` (sarise decides the launcher itself) and its
    own deprecation warnings. Its warnings about the run itself still show."""
    for message in (r".*LeafSpec.*", r"The `srun` command is available"):
        warnings.filterwarnings("ignore", message=message)
    if logging.getLogger().handlers:  # sarise logs: Lightning's own handler prints twice
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            log = logging.getLogger(name)
            for h in [h for h in log.handlers if type(h) is logging.StreamHandler]:
                log.removeHandler(h)

    class _NoTips(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Tip:" not in record.getMessage() and "litlogger" not in record.getMessage()

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoTips) for f in log.filters):
            log.addFilter(_NoTips())


def _fingerprint(config: SarisConfig, init: Path | None = None) -> dict[str, Any]:
    """What determines the trained weights: the generator, the training settings and the
    starting weights (by content, not by path)."""
    settings = config.train.model_dump(mode="json")
    if init is not None:
        settings["init"] = file_sha256(init)
    return {"symmetry": config.symmetry.model_dump(mode="json"), "train": settings}


def init_path(init: str | None) -> Path | None:
    """The model file ``train.init`` names (``shipped``: the shipped model), checked to exist."""
    if init is None:
        return None
    from sarise.models.export import pretrained_path

    path = pretrained_path() if init == "shipped" else Path(init).expanduser()
    if not path.is_file():
        raise SariseError(f"train.init: no model at {path}")
    return path


def _start_from(module, path: Path, model: dict[str, Any]) -> None:
    """Load the weights of ``path`` into ``module.model`` (fine-tuning); the architectures
    must agree."""
    from sarise.models import load_model

    net, info = load_model(path)
    if info["model"] != model or list(info["classes"]) != list(GROUPS):
        raise SariseError(f"train.init: {path} is a {info['model']} model of "
                          f"{len(info['classes'])} classes; this run trains {model} on "
                          f"{len(GROUPS)}")  # fmt: skip
    module.model.load_state_dict(net.state_dict())
    logger.info("starting from the weights of %s (sha256 %s)", path, info["sha256"][:12])


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Read a Lightning checkpoint without unpickling code (``weights_only=True``)."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise SariseError(f"no checkpoint at {path}") from None
    except Exception as exc:
        raise SariseError(f"cannot read checkpoint {path}: {exc}") from None


_KEPT = "metrics.before-resume.csv"


def _keep_metrics(out: Path, step: int) -> None:
    """Lightning's CSV logger starts ``metrics.csv`` afresh in every process: before a
    resume, set the rows of the earlier runs (up to the resumed step) aside."""
    import pandas as pd

    parts = [pd.read_csv(p) for p in (out / _KEPT, out / "metrics.csv")
             if p.exists() and p.stat().st_size]  # fmt: skip
    if not parts:
        return
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[rows["step"] < step].drop_duplicates()
    tmp = out / (_KEPT + ".partial")
    rows.to_csv(tmp, index=False)
    os.replace(tmp, out / _KEPT)


def _merge_metrics(out: Path) -> None:
    """``metrics.csv`` of the whole run: the rows set aside at resumes, then this run's."""
    import pandas as pd

    if not (out / _KEPT).exists():
        return
    rows = pd.concat([pd.read_csv(out / _KEPT), pd.read_csv(out / "metrics.csv")],
                     ignore_index=True)  # fmt: skip
    tmp = out / "metrics.csv.partial"
    rows.to_csv(tmp, index=False)
    os.replace(tmp, out / "metrics.csv")
    (out / _KEPT).unlink()


def train(
    config: SarisConfig,
    out: str | Path,
    *,
    val: str | Path | None = None,
    accelerator: str = "auto",
    devices: int | None = None,
    restart: bool = False,
    show_progress: bool | None = None,
) -> Path:
    """Train the classifier; return the path of the final checkpoint (``out/model.ckpt``).

    Parameters
    ----------
    config : SarisConfig
        ``config.train`` sets the model and optimisation, ``config.symmetry`` the
        images generated on the fly.
    out : path
        Run folder: ``checkpoints/{last,best}.ckpt``, ``metrics.csv`` (and TensorBoard
        events when tensorboard is installed), ``model.ckpt`` and ``train.json`` at the end.
    val : path, optional
        ``val.zarr`` from ``sarise generate`` for validation at every epoch.
    accelerator : {'auto', 'cpu', 'gpu'}
    devices : int, optional
        Local processes (GPUs, or CPU processes) when not started by srun or mpirun.
    restart : bool
        Ignore existing checkpoints in ``out`` and start again.
    """
    out = Path(out)
    cfg = config.train
    plugin, per_node, nodes = cluster_world(devices)
    world = per_node * nodes
    if cfg.batch_size % world:
        raise SariseError(f"train.batch_size {cfg.batch_size} does not divide by {world} processes")
    init = init_path(cfg.init)
    fingerprint = _fingerprint(config, init)
    final = out / FINAL
    if final.exists() and not restart:
        done = load_checkpoint(final)["hyper_parameters"].get("fingerprint")
        if done == fingerprint:
            logger.info("%s is already trained with this config; nothing to do", final)
            return final
        raise SariseError(
            f"{final} was trained with another config; use another folder or --restart"
        )
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    resume = None
    if last.exists() and not restart:
        prev = load_checkpoint(last)
        if prev["hyper_parameters"].get("fingerprint") != fingerprint:
            raise SariseError(f"{last} belongs to another config; use another folder or --restart")
        resume = last
        logger.info("resuming from %s (step %d)", last, prev.get("global_step", 0))
    elif restart and out.exists():
        for p in (ckpt_dir, final, out / SUMMARY, out / "metrics.csv", out / _KEPT):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    accel = accelerator
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    precision = cfg.precision
    if precision == "auto":
        from sarise.precision import resolve

        bf16 = resolve("auto", "cuda" if accel == "gpu" else "cpu") == "bf16"
        precision = "bf16-mixed" if bf16 else "32-true"
    if cfg.sync_batchnorm and accel == "cpu" and world > 1:
        raise SariseError("train.sync_batchnorm needs GPUs (torch has no SyncBatchNorm on CPU)")
    if accel == "cpu":
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // per_node))

    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = SymmetryClassifier(
        model=cfg.model.model_dump(),
        classes=list(GROUPS),
        normalization=dict(NORMALIZATION),
        image_size=config.symmetry.size,
        optim=cfg.model_dump(include={"optimizer", "lr", "weight_decay", "schedule", "warmup",
                                      "label_smoothing", "steps", "channels_last", "compile"}),
        config=config.model_dump(mode="json"),
        version=__version__,
    )  # fmt: skip
    module.hparams["fingerprint"] = fingerprint
    if init is not None and resume is None:
        _start_from(module, init, cfg.model.model_dump())
    data = SymmetryDataModule(config.symmetry, cfg, val=val)

    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    log_every = max(1, min(50, cfg.steps_per_epoch // 4))
    first = plugin.global_rank() == 0 and int(os.environ.get("LOCAL_RANK", 0)) == 0
    if resume is not None and first:  # before Lightning starts any other process
        _keep_metrics(out, load_checkpoint(resume).get("global_step", 0))
    # written at every log step, so a killed run loses none of its rows
    loggers = [CSVLogger(out, name="", version="", flush_logs_every_n_steps=log_every)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(
            TensorBoardLogger(out, name="tensorboard", version="", default_hp_metric=False)
        )
    except ImportError:
        logger.info("tensorboard is not installed: metrics go to metrics.csv only")
    # the latest epoch, overwritten (what a rerun resumes from), and the best by val/acc
    # (after validation, when there is one, so that both hold its metrics)
    common = {"dirpath": ckpt_dir, "save_top_k": 1, "every_n_epochs": 1,
              "enable_version_counter": False, "save_on_train_epoch_end": not val}  # fmt: skip
    checkpoints = [ModelCheckpoint(filename="last", **common)]
    if val:
        checkpoints.append(
            ModelCheckpoint(filename="best", monitor="val/acc", mode="max", **common)
        )
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    speed = _Throughput(log_every=max(1, min(cfg.steps_per_epoch // 5, 200)), log=not show_progress)
    trainer = L.Trainer(
        accelerator=accel,
        devices=per_node,
        num_nodes=nodes,
        strategy="ddp" if world > 1 else "auto",
        plugins=[plugin],
        precision=precision,
        max_steps=cfg.steps,
        max_epochs=-1,  # the run length is max_steps
        sync_batchnorm=cfg.sync_batchnorm,
        deterministic=accel == "cpu",
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        limit_val_batches=None if val else 0,
        logger=loggers,
        log_every_n_steps=log_every,
        callbacks=[*checkpoints, speed, LearningRateMonitor("step")],
        enable_progress_bar=show_progress,
        enable_model_summary=False,
        default_root_dir=out,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)
    if trainer.global_step < cfg.steps:
        raise SariseError(f"training stopped at step {trainer.global_step} of {cfg.steps}")
    # the state after the last step (every process takes part; rank 0 writes): the
    # epoch-end checkpoints miss a last epoch that max_steps cuts short
    tmp = out / (FINAL + ".partial")
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        summary = {
            "steps": trainer.global_step,
            "world_size": world,
            "accelerator": accel,
            "precision": precision,
            "seconds": round(speed.seconds(), 2),  # all runs (resumes add theirs)
            "seconds_this_run": round(time.perf_counter() - t0, 2),
            "resumed_from": str(resume) if resume else None,
            "images_per_s": speed.median(),
            "images_seen": trainer.global_step * cfg.batch_size,
            "metrics": {
                k: float(v)
                for k, v in trainer.callback_metrics.items()
                if k.startswith(("val/", "train/")) and not k.endswith("_step")
            },
            "device": torch.cuda.get_device_name() if accel == "gpu" else _cpu_name(),
            "version": __version__,
        }
        (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        _merge_metrics(out)
        os.replace(tmp, final)
        logger.info("trained %d steps in %.0f s (%.0f images/s); %s", trainer.global_step,
                    summary["seconds"], summary["images_per_s"] or 0, final)  # fmt: skip
    trainer.strategy.barrier()
    return final


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"CPU ({os.cpu_count()} cores)"


class _Throughput(L.Callback):
    """Times the training steps (images/s over the global batch) and logs progress lines."""

    def __init__(self, log_every: int, log: bool):
        self.log_every, self.log = log_every, log
        self.rates: list[float] = []
        self._t: float | None = None
        self.before = 0.0  # training seconds of the runs a resumed run continues
        self._start = time.perf_counter()

    def on_train_start(self, trainer, module) -> None:
        self._start = time.perf_counter()

    def seconds(self) -> float:
        """Training seconds behind the current state, over every run that made it."""
        return self.before + time.perf_counter() - self._start

    def state_dict(self) -> dict:  # kept in each checkpoint
        return {"seconds": self.seconds()}

    def load_state_dict(self, state: dict) -> None:
        self.before = float(state.get("seconds", 0.0))

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        dt = time.perf_counter() - (self._t or time.perf_counter())
        self.rates.append(batch[0].shape[0] * trainer.world_size / max(dt, 1e-9))
        step = trainer.global_step
        if self.log and trainer.is_global_zero and step % self.log_every == 0:
            m = trainer.callback_metrics
            logger.info("step %d/%d loss %.4f acc %.3f %.0f images/s", step, trainer.max_steps,
                        float(m.get("train/loss_step", float("nan"))),
                        float(m.get("train/acc_step", float("nan"))),
                        statistics.median(self.rates[-self.log_every:]))  # fmt: skip

    def on_validation_end(self, trainer, module) -> None:
        m = trainer.callback_metrics
        if self.log and trainer.is_global_zero and "val/acc" in m:
            logger.info("epoch %d step %d val/acc %.4f val/loss %.4f", trainer.current_epoch,
                        trainer.global_step, float(m["val/acc"]), float(m["val/loss"]))  # fmt: skip

    def median(self) -> float | None:
        rates = self.rates[min(5, len(self.rates) // 2) :]  # skip the warm-up steps
        return round(statistics.median(rates), 1) if rates else None
