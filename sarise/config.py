"""Typed configuration shared by the CLI and the Snakemake workflow.

One YAML file (``config/config.yaml`` by default) configures a run; each stage
reads its own section. Unknown keys are errors, so a typo never passes silently.
The JSON schema the Snakefile validates against (``workflow/schemas/
config.schema.yaml``) is generated from these models (``sarise config-schema``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "AtomsConfig",
    "AugmentConfig",
    "ClusterConfig",
    "ConfigError",
    "ExtractConfig",
    "FieldConfig",
    "NaturalConfig",
    "ProjectConfig",
    "SarisConfig",
    "SearchConfig",
    "SymmetryConfig",
    "load_config",
]

SPLITS: tuple[str, ...] = ("train", "val", "test")

#: Natural images bundled inside scikit-image's wheel (never downloaded), by name.
NATURAL_IMAGES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "camera": "camera.png",
    "cell": "cell.png",
    "chelsea": "chelsea.png",
    "clock_motion": "clock_motion.png",
    "coffee": "coffee.png",
    "coins": "coins.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
    "microaneurysms": "microaneurysms.png",
    "moon": "moon.png",
    "page": "page.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
    "text": "text.png",
}
MOTIF_SOURCES: tuple[str, ...] = ("natural", "field", "atoms", "texture")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, use_attribute_docstrings=True
    )


Range = Annotated[tuple[float, float], Field(description="[low, high], inclusive")]


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    lo, hi = value
    if not (low <= lo <= hi <= high):
        raise ValueError(f"{name} must satisfy {low} <= low <= high <= {high}, got {list(value)}")


class Probability(_Model):
    """An augmentation applied with probability ``p`` and a strength drawn from ``range``."""

    p: float = Field(0.0, ge=0.0, le=1.0, description="probability of applying it")
    range: Range = (0.0, 0.0)

    @field_validator("range")
    @classmethod
    def _range(cls, v):
        _check_range("range", v, 0.0, math.inf)
        return v


class AugmentConfig(_Model):
    """Artefacts added after rendering. They never change the group label."""

    noise: Probability = Field(default_factory=lambda: Probability(p=0.5, range=(0.02, 0.15)))
    """Additive Gaussian noise, sigma relative to the image's standard deviation."""
    blur: Probability = Field(default_factory=lambda: Probability(p=0.3, range=(0.5, 1.5)))
    """Isotropic blur (probe resolution), sigma in pixels. Applied to the continuous
    pattern, so it keeps the symmetry exact."""
    scan_lines: Probability = Field(default_factory=lambda: Probability(p=0.3, range=(0.02, 0.2)))
    """Per-line offsets (random walk plus jumps), relative to the image's standard deviation."""
    # Imaging effects of real scans (off by default; the shipped model's recipe turns them
    # on). Each is recorded per image with its strength, like the three above.
    drift: Probability = Field(default_factory=Probability)
    """Slow drift: the frame sheared and stretched by up to this fraction (e.g. 0.03)."""
    background: Probability = Field(default_factory=Probability)
    """Low-frequency background (plane tilt, bow, illumination gradient), peak amplitude
    relative to the image's standard deviation."""
    defects: Probability = Field(default_factory=Probability)
    """Sparse point defects (vacancies, adatoms): blobs of about a quarter cell, this
    many per cell."""
    line_jitter: Probability = Field(default_factory=Probability)
    """Horizontal displacement of each scan line (fast-scan jitter), sigma in pixels."""
    shot_noise: Probability = Field(default_factory=Probability)
    """Shot (Poisson) noise: the dose, counts at the brightest pixel (lower is noisier)."""
    gamma: Probability = Field(default_factory=Probability)
    """A non-linear detector response ``x / (x + k (1 - x))``: ``log2 k`` drawn in
    ``[-range[1], range[1]]`` (``range[0]`` its least magnitude)."""
    invert: float = Field(0.0, ge=0.0, le=1.0)
    """Probability of inverted contrast (dark columns: ABF vs HAADF, attractive vs repulsive)."""
    clip: Probability = Field(default_factory=Probability)
    """Saturation: this fraction of the pixels clipped at the top, or at the bottom."""


class NaturalConfig(_Model):
    """Natural-image motifs: crops of images bundled inside scikit-image's wheel."""

    train: tuple[str, ...] = (
        "astronaut", "brick", "camera", "chelsea", "coffee", "grass", "hubble_deep_field",
        "ihc", "microaneurysms", "page", "retina", "rocket",
    )  # fmt: skip
    val: tuple[str, ...] = ("coins", "gravel", "clock_motion")
    test: tuple[str, ...] = ("moon", "cell", "text")
    crop: Range = (0.1, 0.5)
    """Crop edge as a fraction of the image's shorter side."""

    @model_validator(mode="after")
    def _disjoint(self):
        seen: dict[str, str] = {}
        for split in SPLITS:
            names = getattr(self, split)
            for name in names:
                if name not in NATURAL_IMAGES:
                    raise ValueError(
                        f"{split}: unknown natural image {name!r}; choose from {sorted(NATURAL_IMAGES)}"
                    )
                if name in seen:
                    raise ValueError(
                        f"natural image {name!r} is in both {seen[name]} and {split}: "
                        "splits must be disjoint by motif source"
                    )
                seen[name] = split
        _check_range("crop", self.crop, 0.01, 1.0)
        return self


class FieldConfig(_Model):
    """Smooth periodic random fields (Matérn-like spectrum) at several scales."""

    scale: Range = (0.03, 0.3)
    """Correlation length as a fraction of the cell size (log-uniform)."""
    sharpen: float = Field(0.3, ge=0.0, le=1.0)
    """Probability of a soft threshold, which turns a field into domain-like patches."""

    @field_validator("scale")
    @classmethod
    def _scale(cls, v):
        _check_range("scale", v, 1e-3, 10.0)
        return v


class TextureConfig(_Model):
    """Band-pass filtered noise on the cell: textures with one dominant length scale."""

    frequency: Range = (2.0, 12.0)
    """Centre of the pass band, in cycles per cell edge (log-uniform)."""
    width: Range = (0.15, 0.5)
    """Width of the pass band relative to its centre."""

    @model_validator(mode="after")
    def _ranges(self):
        _check_range("frequency", self.frequency, 0.5, 64.0)
        _check_range("width", self.width, 0.01, 2.0)
        return self


class AtomsConfig(_Model):
    """Blobs of 1-3 species at random positions in the asymmetric unit."""

    species: tuple[int, int] = (1, 3)
    count: tuple[int, int] = (3, 6)
    """Atoms per asymmetric unit. Fewer than 3 round atoms can add symmetry by accident."""
    special: float = Field(0.0, ge=0.0, le=1.0)
    """Probability that an atom sits on a special position of the cell (its corners, edge
    and face centres, and the 1/3-2/3 points of hexagonal cells), as in real crystals;
    motifs that gain symmetry this way are rejected like any other."""
    radius: Range = (0.06, 0.16)
    """Blob radius as a fraction of the cell size."""
    elongation: Range = (1.0, 1.8)

    @model_validator(mode="after")
    def _ranges(self):
        _check_range("species", self.species, 1, 3)
        _check_range("count", self.count, 1, 64)
        _check_range("radius", self.radius, 0.005, 0.25)
        _check_range("elongation", self.elongation, 1.0, 5.0)
        return self


class SymmetryConfig(_Model):
    """The synthetic wallpaper-group dataset (``sarise generate``)."""

    seed: int = Field(0, ge=0)
    size: int = Field(256, ge=16, le=4096)
    """Image edge in pixels."""
    per_group: dict[Literal["train", "val", "test"], int] = {"train": 64, "val": 16, "test": 16}
    """Images per group and split; each split holds 17 x per_group images, exactly balanced."""
    motif_sources: tuple[Literal["natural", "field", "atoms", "texture"], ...] = MOTIF_SOURCES
    cell_px: Range = (20.0, 64.0)
    """Square root of the primitive cell area, in pixels."""
    cell_scale: Literal["uniform", "log"] = "uniform"
    """How ``cell_px`` is drawn: uniformly, or log-uniformly (as many atomic lattices of
    4-20 px per cell as mesoscale patterns)."""
    aspect: Range = (1.25, 2.2)
    """Edge ratio of rectangular and centred-rectangular cells (1 and sqrt(3) are excluded)."""
    oblique_angle: Range = (60.0, 120.0)
    """Angle between the oblique cell's vectors, in degrees."""
    metric_tolerance: float = Field(0.06, gt=0.0, lt=0.5)
    """Minimal relative distance of a sampled cell from a lattice of higher symmetry."""
    rotate: bool = True
    """Draw the lattice orientation uniformly in [0, 360) degrees."""
    cell_resolution: int = Field(64, ge=8, le=1024)
    """Samples per cell edge of the motif raster (a power of two)."""
    min_contrast: float = Field(0.25, ge=0.0)
    """Reject a motif whose symmetrised standard deviation, times sqrt(orbit size), is below this."""
    max_self_similarity: float = Field(0.8, gt=0.0, le=1.0)
    """Reject a motif whose correlation with a lattice operation its group lacks exceeds this
    (a source so smooth that no motif gets below it in 50 draws gives its least
    self-similar one)."""
    antialias: float = Field(0.6, ge=0.0, le=4.0)
    """Gaussian sigma, in image pixels, of the low-pass the pattern gets before it is sampled
    (as a detector integrates over its pixel). Without it, a cell of a few pixels aliases:
    the image is then periodic only for the lattice vectors that happen to be whole pixels,
    and its symmetry is lost at the pixel level. 0: off (generator version 2)."""
    natural: NaturalConfig = Field(default_factory=NaturalConfig)
    field: FieldConfig = Field(default_factory=FieldConfig)
    atoms: AtomsConfig = Field(default_factory=AtomsConfig)
    texture: TextureConfig = Field(default_factory=TextureConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    chunk: int = Field(64, ge=1, le=4096)
    """Images per Zarr chunk (and per unit of parallel work)."""
    dtype: Literal["float32", "float16"] = "float32"

    @model_validator(mode="after")
    def _check(self):
        _check_range("cell_px", self.cell_px, 2.0, float(self.size))
        _check_range("aspect", self.aspect, 1.0, 10.0)
        _check_range("oblique_angle", self.oblique_angle, 30.0, 150.0)
        if self.cell_resolution & (self.cell_resolution - 1):
            raise ValueError(f"cell_resolution must be a power of two, got {self.cell_resolution}")
        if not self.motif_sources:
            raise ValueError(
                "motif_sources must name at least one of natural, field, atoms, texture"
            )
        if len(set(self.motif_sources)) != len(self.motif_sources):
            raise ValueError(f"motif_sources has duplicates: {list(self.motif_sources)}")
        for split, n in self.per_group.items():
            if n < 0:
                raise ValueError(f"per_group.{split} must be >= 0, got {n}")
            if n and "natural" in self.motif_sources and not getattr(self.natural, split):
                raise ValueError(
                    f"natural.{split} lists no image but natural motifs are enabled for {split}"
                )
        return self


class ModelConfig(_Model):
    """The classifier network (plain-torch ResNet)."""

    arch: Literal["resnet18", "resnet34", "resnet50"] = "resnet18"
    width: int = Field(64, ge=4, le=256)
    """Channels of the first stage (64 is the standard ResNet; the pooled feature vector has
    ``8 * width`` entries, times 4 for resnet50)."""
    in_chans: int = Field(1, ge=1, le=16)
    """Input channels (1 for a single microscope channel)."""


class TrainConfig(_Model):
    """Training the symmetry classifier (``sarise train``) on images generated on the fly."""

    seed: int = Field(0, ge=0)
    """Seed of the weight initialisation (the data follow ``symmetry.seed``)."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    init: str | None = None
    """Start from the weights of this model (a ``.safetensors`` from ``sarise export``, or a
    training ``.ckpt``; ``shipped``: the shipped model) instead of a random initialisation:
    fine-tuning. Its architecture must equal ``model``; its sha256 is part of the run's
    fingerprint. Relative paths are relative to the working directory."""
    steps: int = Field(20000, ge=1)
    """Optimiser steps in total (the run length; a resumed run ends at the same step)."""
    steps_per_epoch: int = Field(1000, ge=1)
    """Steps between validations and checkpoints (the unit a killed run resumes from)."""
    batch_size: int = Field(256, ge=1)
    """Global batch (all processes together); must divide by the number of processes."""
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(2e-3, gt=0.0)
    """Peak learning rate."""
    weight_decay: float = Field(0.05, ge=0.0)
    schedule: Literal["onecycle", "cosine"] = "onecycle"
    warmup: float = Field(0.05, ge=0.0, lt=1.0)
    """Fraction of the steps spent warming the learning rate up."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    sync_batchnorm: bool = False
    """Synchronise BatchNorm statistics across GPU processes (slower; torch has none on CPU)."""
    channels_last: bool = True
    compile: bool = False
    """``torch.compile`` the network (GPU runs; slow to start)."""
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    """``auto``: bf16 autocast on GPU and on CPUs with native bfloat16 (:mod:`sarise.precision`),
    float32 elsewhere."""
    workers: int = Field(2, ge=0)
    """Data-loader processes per training process generating images."""
    threads: int = Field(0, ge=0)
    """torch threads per process on CPU (0: cores divided by the local processes)."""

    @model_validator(mode="after")
    def _check(self):
        if self.steps_per_epoch > self.steps:
            raise ValueError(
                f"steps_per_epoch ({self.steps_per_epoch}) is larger than steps ({self.steps})"
            )
        return self


class EvaluateConfig(_Model):
    """Evaluating a classifier (``sarise evaluate``)."""

    ood_per_group: int = Field(64, ge=0)
    """Images per group of each out-of-distribution set (motif sources never trained on)."""
    noise: tuple[float, ...] = (0.1, 0.3)
    """Standard deviations of additive Gaussian noise on [0, 1] test images."""
    invariance_per_group: int = Field(16, ge=0)
    """Patterns per group rendered at two orientations and phases for embedding invariance."""
    batch_size: int = Field(64, ge=1)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """As ``extract.precision``: bf16 where the hardware computes it natively."""
    invariant: Literal["none", "d4"] = "none"
    """As ``extract.invariant``: ``d4`` averages the logits over the 8 rotations by 90
    degrees and flips of each image (8x the compute)."""
    simulated_per_crystal: int = Field(32, ge=0)
    """Images per crystal of the simulated atomic-resolution set (0: none)."""
    measured: bool = True
    """Also score each set by the training-free symmetry measurement
    (:mod:`sarise.symmetry_measure`, about 9 ms per 128-px image on one core) and by the
    model and the measurement combined (``combined_log_probabilities``)."""


class IngestConfig(_Model):
    """Turning instrument files into the image store (``sarise ingest``)."""

    channels: tuple[str | tuple[str, ...], ...] = (".*",)
    """One store channel per entry, each a channel-name pattern (regular expression,
    case-insensitive: the first channel of the file, in file order, that matches) or a list
    of patterns in order of preference (``[phase, height]``: the phase channel where the
    file has one, else height). A file with no match for an entry fails with the reason.
    Several entries store several channels per image (``[height, amplitude, phase]``);
    ``extract.channel`` says which the model sees, or ``fuse`` for all of them."""
    flatten: Literal["auto", "none", "plane", "line"] = "auto"
    """Background removal: a fitted plane, or each scan line's own line fit; ``auto``
    levels topography only (:func:`sarise.preprocess.auto_flatten`): ``line`` for height
    channels of scanning-probe formats, ``plane`` for height in other formats, ``none``
    for phase, amplitude, current and STEM/TEM/optical intensities."""
    clip: Range = (0.5, 99.5)
    """Percentiles the values are clipped to (outliers) before scaling to [0, 1]."""

    @field_validator("channels")
    @classmethod
    def _channels(cls, v):
        import re

        if not v:
            raise ValueError("channels needs at least one pattern")
        for i, entry in enumerate(v):
            patterns = (entry,) if isinstance(entry, str) else entry
            if not patterns:
                raise ValueError(f"channels[{i}] is an empty list of patterns")
            for pat in patterns:
                try:
                    re.compile(pat, re.IGNORECASE)
                except (re.error, OverflowError, RecursionError, TypeError) as exc:
                    raise ValueError(f"channels[{i}] = {pat!r} is not a regular expression: "
                                     f"{exc}") from None  # fmt: skip
        return v

    @field_validator("clip")
    @classmethod
    def _clip(cls, v):
        if not (0.0 <= v[0] < v[1] <= 100.0):
            raise ValueError(f"clip must be two percentiles 0 <= low < high <= 100, got {list(v)}")
        return v

    size: int = Field(128, ge=16, le=4096)
    """Edge of the stored images (the model's input size)."""
    fit: Literal["auto", "crop", "pad", "tile"] = "auto"
    """Square images without distortion. ``auto``: the scale from each file's own lattice
    (:func:`sarise.preprocess.fit_cells`, as ``sarise evaluate --fit auto``): the centred
    crop where its cells stay >= ``size`` / 16 px (8 at 128) or no lattice is found, else
    up to 16 tiles of the image rescaled to ``size`` / 8 px cells (an atomic lattice never
    shrinks to a blur).
    ``crop``: the centred square resampled to ``size``; ``pad``: the whole image padded
    to a square; ``tile``: native-resolution tiles. Each image's ``zoom`` (stored pixels
    per file pixel) is in the metadata."""
    dtype: Literal["float32", "float16"] = "float16"
    chunk: int = Field(64, ge=1, le=4096)
    """Images per Zarr chunk and files per task (a chunk of ``size`` px images is held in
    memory at once: 4096 images of 128 px take 256 MiB)."""
    thumbnail: int = Field(64, ge=8, le=512)
    max_pixels: int = Field(2**26, ge=1)
    """Pixels of one 2-D image a file may declare (default 64 Mi, 8192 x 8192: about
    0.5 GiB as float64 while it is preprocessed). A file declaring more fails with the
    reason before its pixels are read, so a corrupt or hostile header never exhausts memory."""
    max_failed_fraction: float = Field(0.0, ge=0.0, le=1.0)
    """Exit non-zero when more than this fraction of the files failed."""
    precedence: Literal["sidecar", "file"] = "sidecar"
    """Where a sidecar and a file's header both give ``material``, ``sample``, ``operator``,
    ``date`` or ``imaging_mode``: ``sidecar`` (the sidecar's value replaces the header's)
    or ``file`` (the sidecar only fills what the header left empty)."""


class ArchiveConfig(_Model):
    """Your own archive: the instrument files a run maps (``snakemake map``, and
    ``sarise ingest`` when it is given no sources).

    Set ``sources`` and the DAG ingests exactly these files, nothing of its own: no demo
    archive, no shared example data, no generated dataset and no training (extraction uses
    ``extract.model``, by default the shipped model). Relative paths are relative to the
    working directory (Snakemake's ``--directory``)."""

    sources: tuple[str, ...] = ()
    """Folders (walked recursively), files or glob patterns (``scans/**/*.ibw``)."""
    sidecar: str | None = None
    """A CSV or YAML table of metadata keyed by path or glob (``config/README.md``,
    "Sidecars"); applied again on every ingest, so an edited sidecar updates the store."""
    root: str | None = None
    """Paths in the store (and sidecar keys) are relative to this folder; default: the
    single folder in ``sources``, if there is one."""
    exclude: tuple[str, ...] = ()
    """Glob patterns of files to leave out, matched against the path relative to ``root``
    and against the file name (``*_old.ibw``, ``calibration/*``)."""


class ClusterConfig(_Model):
    """Where Dask workers come from (:func:`sarise.cluster.get_client`), for every stage."""

    kind: Literal["local", "cuda", "slurm", "mpi"] = "local"
    """``local``: processes here; ``cuda``: one Dask-CUDA worker per GPU here; ``slurm``:
    batch jobs of workers (dask-jobqueue); ``mpi``: the ranks of an ``mpirun``/``srun``
    launch (rank 0 the scheduler, rank 1 the command, the rest workers)."""
    workers: int | None = Field(None, ge=1)
    """Worker processes (local: default one per core; cuda: one per visible GPU; slurm:
    in total, over ``jobs``; mpi: set by the launch)."""
    threads_per_worker: int = Field(1, ge=1)
    """Tasks each worker runs at once (torch uses the worker's cores inside one task)."""
    rmm_pool_size: str | None = None
    """cuda: an RMM pool per GPU (e.g. "24GB") shared with torch and CuPy; null: none."""
    jobs: int = Field(1, ge=1)
    """slurm: batch jobs to submit."""
    cores: int = Field(4, ge=1)
    """slurm: cores per job."""
    memory: str = "16GB"
    """slurm: memory per job."""
    walltime: str = "01:00:00"
    """slurm: time limit per job."""
    queue: str | None = None
    """slurm: partition (``--partition``)."""
    account: str | None = None
    """slurm: account (``--account``)."""
    job_extra: tuple[str, ...] = ()
    """slurm: more ``#SBATCH`` options, e.g. ``["--gpus-per-node=4"]``."""
    timeout: float = Field(300.0, gt=0)
    """Seconds to wait for the first worker (slurm jobs may queue)."""
    dashboard: str | None = None
    """Serve Dask's dashboard at this address (e.g. ``":8787"``); null: no dashboard, and
    the scheduler's own HTTP endpoints take a free port (never "port already in use")."""


class ExtractConfig(_Model):
    """Feature extraction (``sarise extract``)."""

    model: str | None = None
    """An exported ``.safetensors`` model (or a training ``.ckpt``); null: the shipped model."""
    channel: int | Literal["fuse"] = 0
    """Store channel fed to the model, or ``fuse``: every store channel through the model,
    their features in one descriptor (:func:`sarise.features.fuse`: each channel's unit
    vector side by side, so height, amplitude and phase weigh the same)."""

    @field_validator("channel")
    @classmethod
    def _channel(cls, v):
        if isinstance(v, int) and v < 0:
            raise ValueError(f"channel must be >= 0 or 'fuse', got {v}")
        return v

    batch_size: int = Field(256, ge=1)
    invariant: Literal["none", "d4"] = "none"
    """``d4``: average features and logits over the 8 rotations by 90 degrees and flips
    (a microscope image's lattice orientation is arbitrary); 8x the compute."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto``: the GPU when the worker has one."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """``auto``: bfloat16 (weights and activations) on a GPU and on CPUs with native
    bfloat16 (flags ``avx512_bf16`` or ``amx_bf16``), float32 elsewhere; decided where the
    command runs and recorded in the feature store (force ``bf16`` for GPU workers started
    from a CPU login node)."""
    symmetry: bool = False
    """Also measure each image's lattice and symmetry without the model
    (:mod:`sarise.symmetry_measure`: lattice vectors, rotation, mirror and glide scores,
    plane-group candidates) into ``symmetry_scores[image, k]``, with NumPy on CPU workers
    and CuPy on GPU workers; about 110 images/s per CPU core at 128 px."""


#: Descriptors a map or an index can be made of (``project.descriptor``, ``search.descriptor``).
Descriptor = Literal["cnn", "symmetry", "both"]


#: Named UMAP parameter sets (``project.preset``); ``paper`` is Nguyen et al. (2021).
PRESETS = {"paper": {"n_neighbors": 5, "min_dist": 0.3, "metric": "correlation"}}


class ProjectConfig(_Model):
    """UMAP projections and their tree (``sarise project``, ``sarise explore``)."""

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data):
        # the preset's values are the config's, so `sarise config` prints what is used
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            return {**data, **PRESETS[data["preset"]]}
        return data

    preset: Literal["default", "paper"] = "default"
    """``paper``: Nguyen et al.'s settings (n_neighbors 5, min_dist 0.3, metric
    correlation), replacing the three keys below."""
    n_neighbors: int = Field(15, ge=2)
    min_dist: float = Field(0.1, ge=0.0)
    metric: Literal["cosine", "correlation", "euclidean"] = "cosine"
    seed: int = 0
    backend: Literal["auto", "cpu", "gpu"] = "auto"
    """``auto``: cuML when it and a GPU are present, else umap-learn."""
    fit_max: int = Field(200_000, ge=1000)
    """Above this many images UMAP is fitted on a seeded sample of this size and the rest
    is transformed in parallel through the cluster factory."""
    refine_epochs: int = Field(15, ge=0)
    """Child nodes: epochs of UMAP refinement that start from the parent's coordinates
    (0 keeps them); ``sarise explore --refit`` refits from scratch instead."""
    refine_learning_rate: float = Field(0.05, gt=0.0)
    quality_sample: int = Field(2000, ge=100)
    """Images on which trustworthiness and kNN preservation (k = 10) are measured."""
    cluster_min_size: int = Field(0, ge=0)
    """HDBSCAN on the coordinates with this minimum cluster size (0: no clustering)."""
    descriptor: Descriptor = "cnn"
    """What the map is made of: ``cnn`` (the model's features), ``symmetry`` (the measured
    symmetry of ``extract.symmetry``: rotation, mirror and glide scores, lattice family and
    cell shape) or ``both`` (each block of unit length, the symmetry one weighted)."""
    symmetry_weight: float = Field(1.0, gt=0.0)
    """``both``: the symmetry block's weight against the model's features."""


#: The most results one similarity query returns (``search.k``, ``sarise search --k``).
MAX_K = 10_000


class SearchConfig(_Model):
    """The similarity index over features (``sarise index``, ``sarise search``)."""

    exact_max: int = Field(50_000, ge=1)
    """Up to this many images the index is exhaustive (exact); above, an inverted-file
    (IVF) index whose ``nprobe`` is tuned at build time to reach ``target_recall``."""
    target_recall: float = Field(0.98, gt=0.0, le=1.0)
    """recall@10 against exact search the IVF index must reach on held-out queries."""
    nlist: int | None = Field(None, ge=1)
    """IVF lists (null: about the square root of the number of images)."""
    k: int = Field(10, ge=1, le=MAX_K)
    """Results per query."""
    descriptor: Descriptor = "cnn"
    """What similarity is measured on: ``cnn``, ``symmetry`` or ``both`` (as
    ``project.descriptor``); the index records it and queries use the same."""
    symmetry_weight: float = Field(1.0, gt=0.0)
    """``both``: the symmetry block's weight against the model's features."""


class SarisConfig(_Model):
    """The whole run configuration (one YAML file)."""

    run: str = Field("demo", pattern=r"^[A-Za-z0-9_.-]+$")
    """Run name: outputs go to ``results/<run>/``."""
    conda_env: Literal["cpu", "cuda"] = "cpu"
    """Which ``envs/sarise-<conda_env>.yaml`` the rules that can use a GPU (train, evaluate,
    extract, project, index) run in under ``--software-deployment-method conda``; read by
    the Snakefile only (the commands pick GPU or CPU by themselves)."""
    symmetry: SymmetryConfig = Field(default_factory=SymmetryConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    project: ProjectConfig = Field(default_factory=ProjectConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)


def _format_error(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return f"invalid config {source}: " + "; ".join(parts)


def load_config(source: str | Path | dict[str, Any] | None = None, **overrides: Any) -> SarisConfig:
    """Read and validate a run configuration.

    Parameters
    ----------
    source : str, Path, dict or None
        A YAML file, an already-parsed mapping, or None for the defaults.
    **overrides
        Dotted keys replacing values, e.g. ``{"symmetry.size": 128}``.

    Returns
    -------
    SarisConfig

    Raises
    ------
    ConfigError
        If the file cannot be read or a value is invalid; the message names the key.
    """
    name = "<defaults>"
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, dict):
        data, name = dict(source), "<mapping>"
    else:
        path = Path(source)
        name = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping, got {type(data).__name__}")
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {p} is not a section")
        node[leaf] = value
    try:
        return SarisConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, name)) from None


def config_schema() -> dict[str, Any]:
    """JSON schema of :class:`SarisConfig`, for ``snakemake.utils.validate``.

    Every section (a nested model) gets ``default: {}``, so that ``validate`` fills in a
    section the YAML file leaves out, with all its defaults: a rule's settings param is
    then the same whether a default is written out or not."""
    schema = SarisConfig.model_json_schema()
    for node in [schema, *schema["$defs"].values()]:
        for prop in node.get("properties", {}).values():
            if "$ref" in prop and "default" not in prop:
                prop["default"] = {}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
