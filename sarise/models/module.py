"""The LightningModule that trains a ResNet to tell the 17 wallpaper groups apart."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import torch
from torch import nn

from sarise.models.resnet import create_model

__all__ = ["SymmetryClassifier"]


class SymmetryClassifier(L.LightningModule):
    """A classifier whose hyper-parameters hold everything inference needs.

    Parameters
    ----------
    model : dict
        ``arch``, ``width``, ``in_chans`` (see :func:`sarise.models.create_model`).
    classes : list of str
        Class names in label order (the 17 plane groups).
    normalization : dict
        Input normalisation (``sarise.models.data.NORMALIZATION``).
    image_size : int
        Edge of the training images in pixels.
    optim : dict
        ``optimizer, lr, weight_decay, schedule, warmup, label_smoothing, steps,
        channels_last, compile`` from :class:`sarise.config.TrainConfig`.
    config : dict
        The whole run configuration, for the record.
    version : str
        sarise version that trained it.

    All arguments are plain Python data, so a checkpoint loads with ``weights_only=True``.
    """

    def __init__(
        self,
        model: dict[str, Any],
        classes: list[str],
        normalization: dict[str, Any],
        image_size: int,
        optim: dict[str, Any],
        config: dict[str, Any] | None = None,
        version: str = "",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(**model, num_classes=len(classes))
        self.criterion = nn.CrossEntropyLoss(label_smoothing=optim.get("label_smoothing", 0.0))
        n = len(classes)
        self.register_buffer("_train_cm", torch.zeros(n, n, dtype=torch.long), persistent=False)
        self.register_buffer("_val_cm", torch.zeros(n, n, dtype=torch.long), persistent=False)
        self.register_buffer("_val_loss", torch.zeros(2, dtype=torch.float64), persistent=False)
        self._t0: float | None = None

    # -- forward -----------------------------------------------------------------------
    def _channels_last(self) -> bool:
        """``channels_last`` as configured, where :func:`sarise.precision.channels_last_safe`."""
        from sarise.precision import channels_last_safe

        if not self.hparams.optim.get("channels_last", False):
            return False
        return channels_last_safe(self.model, next(self.model.parameters()).device.type)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._channels_last():
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def configure_model(self) -> None:
        if self._channels_last():
            self.model.to(memory_format=torch.channels_last)
        if self.hparams.optim.get("compile", False) and not isinstance(
            self.model, torch._dynamo.eval_frame.OptimizedModule
        ):
            self.model = torch.compile(self.model)

    # -- training ----------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits, _ = self(x)
        loss = self.criterion(logits.float(), y)
        pred = logits.argmax(1)
        self._train_cm += _confusion(y, pred, len(self.hparams.classes))
        world = self.trainer.world_size if self._trainer else 1
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/acc", (pred == y).float().mean(), on_step=True, on_epoch=True,
                 prog_bar=True, sync_dist=True)  # fmt: skip
        self.log("train/global_batch", float(x.shape[0] * world), on_step=True, on_epoch=False)
        return loss

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        world = self.trainer.world_size
        rate = batch[0].shape[0] * world / max(now - self._t0, 1e-9)
        self._t0 = now
        self.log("train/images_per_s", rate, on_step=True, on_epoch=False, prog_bar=True)

    def on_train_epoch_end(self) -> None:
        cm = self.trainer.strategy.reduce(self._train_cm.clone(), reduce_op="sum")
        self._log_groups("train", cm)
        self._train_cm.zero_()

    # -- validation --------------------------------------------------------------------
    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits, _ = self(x)
        loss = nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        self._val_cm += _confusion(y, logits.argmax(1), len(self.hparams.classes))
        self._val_loss[0] += loss.double()
        self._val_loss[1] += len(y)

    def on_validation_epoch_end(self) -> None:
        # one reduction per epoch: ranks may hold different numbers of batches
        # (clones: a single-process strategy returns its input, which is zeroed below)
        cm = self.trainer.strategy.reduce(self._val_cm.clone(), reduce_op="sum")
        total = self.trainer.strategy.reduce(self._val_loss.clone(), reduce_op="sum")
        self._val_cm.zero_()
        self._val_loss.zero_()
        if total[1] == 0:
            return
        acc = cm.diagonal().sum().double() / cm.sum()
        self.log("val/loss", float(total[0] / total[1]), prog_bar=True)
        self.log("val/acc", float(acc), prog_bar=True)
        self._log_groups("val", cm)

    def _log_groups(self, stage: str, cm: torch.Tensor) -> None:
        per = cm.diagonal().double() / cm.sum(1).clamp(min=1)
        for name, a, n in zip(self.hparams.classes, per.tolist(), cm.sum(1).tolist(), strict=True):
            if n:
                self.log(f"{stage}_group/{name}", a, sync_dist=True)  # same on every rank

    # -- optimisation ------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.hparams.optim
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": o["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if o["optimizer"] == "adamw":
            opt = torch.optim.AdamW(groups, lr=o["lr"])
        else:
            opt = torch.optim.Adam(groups, lr=o["lr"])
        steps = int(o["steps"])
        if o["schedule"] == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=o["lr"], total_steps=steps, pct_start=max(o["warmup"], 1e-3)
            )
        else:
            warm = max(1, int(o["warmup"] * steps))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _WarmupCosine(warm, steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _WarmupCosine:
    """Linear warm-up to 1 then cosine decay to 0 (a picklable LR multiplier)."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        t = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def _confusion(y: torch.Tensor, pred: torch.Tensor, n: int) -> torch.Tensor:
    return torch.bincount(y * n + pred, minlength=n * n).reshape(n, n)
