"""Training data generated on the fly and validation data read from the Zarr splits.

Image ``i`` of training is :func:`sarise.symmetry.sample` ``(i, split="train")``: the
same bit for bit in any process, worker or rank. Step ``s`` of training uses the global
indices ``[s * batch, (s + 1) * batch)``, and each of ``world`` processes takes every
``world``-th of them, so the data seen at each step do not depend on the number of
processes, loader workers or restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sarise.config import SymmetryConfig, TrainConfig
from sarise.errors import SariseError

__all__ = [
    "NORMALIZATION",
    "GeneratedImages",
    "SplitImages",
    "StepSampler",
    "SymmetryDataModule",
    "standardize",
]

#: Input normalisation every model of this package expects, recorded in checkpoints.
NORMALIZATION = {"method": "standardize", "eps": 1e-6}


def standardize(x: torch.Tensor | np.ndarray, eps: float = 1e-6):
    """Per image (and channel): subtract the mean and divide by the standard deviation.

    Microscope channels come in arbitrary units and offsets, so each image is brought to
    zero mean and unit variance over its last two axes.

    >>> x = standardize(np.array([[1.0, 3.0]], dtype=np.float32))
    >>> x.round(4).tolist()
    [[-1.0, 1.0]]
    """
    # the statistics in float64, rounded to float32: the order of a float32 sum (which a
    # turned or flipped copy of an image changes) moves them by an ulp, and in bfloat16
    # that ulp flips roundings all through the network
    if isinstance(x, np.ndarray):
        x = x.astype(np.float32, copy=False)
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=(-2, -1), keepdims=True).astype(np.float32)
        std = x64.std(axis=(-2, -1), keepdims=True).astype(np.float32)
        return (x - mean) / (std + np.float32(eps))
    x = x.float()
    x64 = x.double()
    mean = x64.mean(dim=(-2, -1), keepdim=True).float()
    std = x64.std(dim=(-2, -1), keepdim=True, correction=0).float()
    return (x - mean) / (std + eps)


class GeneratedImages(Dataset):
    """Wallpaper images made on demand: item ``i`` is ``(image[1, H, W], label)``."""

    def __init__(self, config: SymmetryConfig, split: str = "train", in_chans: int = 1):
        self.config = config
        self.split = split
        self.in_chans = in_chans

    def __len__(self) -> int:
        return 2**62  # indices come from StepSampler; any index is valid

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from sarise.symmetry import sample

        im = sample(int(index), seed=self.config.seed, split=self.split, config=self.config)
        x = torch.from_numpy(standardize(im.image))[None]
        return x.expand(self.in_chans, -1, -1).contiguous(), im.label


class SplitImages(Dataset):
    """A materialised split (``<split>.zarr``): item ``i`` is ``(image[C, H, W], label)``.

    Reads a whole Zarr chunk at a time and keeps the last one, so sequential access costs
    one decompression per chunk.
    """

    def __init__(self, path: str | Path, in_chans: int = 1):
        import zarr

        self.path = Path(path)
        self.in_chans = in_chans
        if not (self.path / "zarr.json").exists():
            raise SariseError(f"{self.path} is not a symmetry dataset store (no zarr.json)")
        group = zarr.open_group(self.path, mode="r")
        self.labels = np.asarray(group["label"][:], dtype=np.int64)
        self.chunk = group["images"].chunks[0]
        self.shape = group["images"].shape
        self._images = None
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        import zarr

        if self._images is None:  # opened lazily, once per loader worker
            self._images = zarr.open_group(self.path, mode="r")["images"]
        c = index // self.chunk
        if self._cached is None or self._cached[0] != c:
            self._cached = (c, np.asarray(self._images[c * self.chunk : (c + 1) * self.chunk]))
        im = self._cached[1][index - c * self.chunk]
        x = torch.from_numpy(standardize(im))
        if x.ndim == 2:
            x = x[None]
        if x.shape[0] != self.in_chans:
            x = x.expand(self.in_chans, -1, -1)
        return x.contiguous(), int(self.labels[index])


class StepSampler(Sampler[int]):
    """Global image indices of one epoch for one process.

    An epoch is ``steps`` steps starting at step ``start_step()`` (read when iteration
    begins: the trainer's global step, so a resumed run continues with the images the
    uninterrupted run would have used), or at ``epoch * steps`` without it. Process
    ``rank`` of ``world`` takes every ``world``-th index of each global batch, so its
    batches (``batch // world`` images) together with the others' form the global batch.

    >>> list(StepSampler(steps=2, batch=4, rank=1, world=2))
    [1, 3, 5, 7]
    >>> list(StepSampler(steps=1, batch=4, start_step=lambda: 3))
    [12, 13, 14, 15]
    """

    def __init__(
        self,
        steps: int,
        batch: int,
        rank: int = 0,
        world: int = 1,
        epoch: int = 0,
        start_step: Callable[[], int] | None = None,
    ):
        if batch % world:
            raise SariseError(f"the global batch {batch} does not divide by {world} processes")
        self.steps, self.batch, self.rank, self.world, self.epoch = steps, batch, rank, world, epoch
        self.start_step = start_step

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        step = self.start_step() if self.start_step else self.epoch * self.steps
        start = step * self.batch
        return iter(range(start + self.rank, start + self.steps * self.batch, self.world))

    def __len__(self) -> int:
        return self.steps * self.batch // self.world


class _ShardSampler(Sampler[int]):
    """Every ``world``-th index from ``rank``, without padding (evaluation only)."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = range(rank, n, world)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _seed_worker(worker_id: int) -> None:
    torch.set_num_threads(1)


class SymmetryDataModule(L.LightningDataModule):
    """On-the-fly training images and the materialised validation (and test) splits.

    Parameters
    ----------
    symmetry : SymmetryConfig
        Generator settings (training images follow ``symmetry.seed``).
    train : TrainConfig
        Batch size, steps per epoch, loader workers.
    val : path, optional
        ``val.zarr`` written by ``sarise generate``; without it no validation runs.
    test : path, optional
        ``test.zarr``, for ``trainer.test``.
    """

    def __init__(
        self,
        symmetry: SymmetryConfig,
        train: TrainConfig,
        val: str | Path | None = None,
        test: str | Path | None = None,
    ):
        super().__init__()
        self.symmetry, self.train_cfg = symmetry, train
        self.val_path = Path(val) if val else None
        self.test_path = Path(test) if test else None

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def _loader(self, dataset: Dataset, sampler: Sampler, batch: int) -> DataLoader:
        workers = self.train_cfg.workers
        return DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            num_workers=workers,
            worker_init_fn=_seed_worker,
            multiprocessing_context="forkserver" if workers else None,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._world()
        cfg = self.train_cfg
        trainer = self.trainer
        sampler = StepSampler(cfg.steps_per_epoch, cfg.batch_size, rank, world,
                              start_step=(lambda: trainer.global_step) if trainer else None)  # fmt: skip
        data = GeneratedImages(self.symmetry, "train", cfg.model.in_chans)
        return self._loader(data, sampler, cfg.batch_size // world)

    def _split_loader(self, path: Path) -> DataLoader:
        rank, world = self._world()
        data = SplitImages(path, self.train_cfg.model.in_chans)
        batch = max(1, self.train_cfg.batch_size // world)
        return self._loader(data, _ShardSampler(len(data), rank, world), batch)

    def val_dataloader(self) -> DataLoader | list:
        return self._split_loader(self.val_path) if self.val_path else []

    def test_dataloader(self) -> DataLoader:
        if self.test_path is None:
            raise SariseError("no test split given")
        return self._split_loader(self.test_path)
