"""``sarise extract``: the image store through the symmetry model into ``features.zarr``.

Feature store (``<run>/features.zarr``, one Zarr chunk per image-store chunk)
--------------------------------------------------------------------------------
``features[image, feature]`` float32 (the model's pooled features), ``logits[image, group]``
and ``probabilities[image, group]`` float32 (softmax), ``image_id[image]`` int64 and
``done[chunk]`` int32: how many images of each chunk are written. Attrs: ``extractor``,
``version``, the model's ``model_sha256``, ``model_info``, the ``preprocessing`` (store's and
extractor's), the ``precision`` (``fp32`` or ``bf16``, :mod:`sarise.precision`) and the
``groups``. With ``extract.symmetry``, also ``symmetry_scores[image, symmetry]`` float32:
the training-free measurement of :mod:`sarise.symmetry_measure`, its columns named in the
attr ``symmetry_columns`` and what decides its scores (thresholds, tolerances, scales) in
``symmetry_settings`` (a store measured with others is never resumed). Every array names
its dimensions, so ``xarray.open_zarr`` reads it as is (:func:`sarise.open_run` joins it
with the metadata).

Execution
---------
The client makes the template (or grows it when the image store grew), then submits one
task per chunk not yet done. A task reads its chunk of ``images.zarr``, runs the model (built
once per worker process by :func:`get_featurizer`, never sent with tasks), writes its own
chunk of every array and finally ``done[chunk]``: one writer per chunk, so a killed run
resumes chunk by chunk and recomputes no finished chunk. On CPU the result is the same bit
for bit whatever the number of workers, the batch size, the threads, or where the run was
killed: every forward pass has the same shape (:data:`CPU_BATCH` rows, the last padded),
and what does change the bits (the model, the preprocessing, the precision) is in the
store's attrs, which a resumed or extended run must match.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarise._lock import exclusive
from sarise._progress import progress
from sarise._version import __version__
from sarise.config import ExtractConfig
from sarise.errors import SariseError
from sarise.store import chunk_sizes
from sarise.symmetry_measure import SCORE_COLUMNS, SETTINGS, score_rows

__all__ = [
    "EXTRACTOR",
    "VERSION",
    "Featurizer",
    "chunk_sizes",
    "embed",
    "extract",
    "get_featurizer",
    "head",
    "inference_model",
    "resolved_precision",
]

EXTRACTOR = "sarise.features"
#: Bumped when the same model and images would give other features.
VERSION = 4  # 2: channels_last, fixed CPU micro-batches, the exact head, the precision;
# 3: standardisation statistics in float64, the d4 mean summed in sorted order;
# 4: BatchNorm folded, bf16 weights instead of autocast, 32-row CPU micro-batches

logger = logging.getLogger(__name__)


def _views(x: torch.Tensor, invariant: str) -> list[torch.Tensor]:
    if invariant == "none":
        return [x]
    flips = (x, x.flip(-1))
    return [torch.rot90(v, k, dims=(-2, -1)) for v in flips for k in range(4)]


def _mean_of_views(parts: list[torch.Tensor]) -> torch.Tensor:
    """The mean over views, summed in sorted order: a turned or flipped image has the same
    views in another order, and its mean is the same bit for bit."""
    if len(parts) == 1:
        return parts[0]
    return torch.stack(parts).sort(dim=0).values.sum(dim=0) / len(parts)


#: Rows of every forward pass on a CPU. Its kernels (MKL's GEMM, oneDNN's convolutions)
#: choose their blocking by the batch's shape, so other batch sizes give other last bits;
#: with one fixed shape (the last micro-batch padded with zeros) an image's features do not
#: depend on the batch size, the chunking, the workers or where a run was killed. 32 rows
#: are the fastest shape for a ResNet-18 at 128 px in bf16 on a 2-core EPYC (16: -17%).
CPU_BATCH = 32


def head(features: torch.Tensor, fc: torch.nn.Linear) -> torch.Tensor:
    """``fc(features)`` in float32 without a GEMM, whose summation order follows the batch
    shape and the thread count: the products are summed by halving a zero-padded
    power-of-two axis, elementwise adds whose order is fixed by construction."""
    w = fc.weight.float()
    x = features.float()[:, None, :] * w[None]  # [n, classes, k]
    k = x.shape[-1]
    size = 1 << max(0, (k - 1).bit_length())
    if size != k:
        x = torch.nn.functional.pad(x, (0, size - k))
    while x.shape[-1] > 1:
        half = x.shape[-1] // 2
        x = x[..., :half] + x[..., half:]
    out = x[..., 0]
    return out if fc.bias is None else out + fc.bias.float()


_inference_models: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _state_key(model: torch.nn.Module) -> tuple | None:
    """Where and at which version every weight of ``model`` is (None: not trackable)."""
    try:
        return tuple((t.data_ptr(), t.dtype, t._version)
                     for t in (*model.parameters(), *model.buffers()))  # fmt: skip
    except RuntimeError:  # tensors made in inference mode carry no version counter
        return None


def inference_model(model: torch.nn.Module, precision: str, layout) -> torch.nn.Module:
    """``model`` as :func:`embed` runs it: BatchNorm folded into the convolutions
    (:func:`sarise.models.resnet.fold_batchnorm`), weights in ``layout`` and, for ``bf16``,
    in bfloat16. Built once per model, precision and layout, and rebuilt when the model's
    weights change (training, ``load_state_dict``, ``.to()``); ``model`` is not touched."""
    from sarise.models.resnet import fold_batchnorm

    key = (precision, layout, _state_key(model))
    cached = _inference_models.get(model)
    if cached is not None and key[-1] is not None and cached[0] == key:
        return cached[1]
    net = fold_batchnorm(model).to(memory_format=layout)
    if precision == "bf16":
        net = net.to(torch.bfloat16)
    for p in net.parameters():
        p.requires_grad_(False)
    _inference_models[model] = (key, net)
    return net


def _forward(model, x: torch.Tensor, precision: str, rows: int | None, layout):
    """Logits and features in float32; on CPU in micro-batches of exactly ``rows`` images."""
    net = inference_model(model, precision, layout)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n = len(x)
    step = rows or n
    lgs, fs = [], []
    for i in range(0, n, step):
        v = x[i : i + step]
        if rows and len(v) < rows:
            v = torch.cat([v, v.new_zeros((rows - len(v), *v.shape[1:]))])
        v = v.to(dtype).contiguous(memory_format=layout)
        f = net.forward_features(v).float()
        lgs.append(head(f, model.fc)[: n - i])
        fs.append(f[: n - i])
    return torch.cat(lgs), torch.cat(fs)


@torch.inference_mode()
def embed(
    model: torch.nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 256,
    invariant: str = "none",
    image_size: int | None = None,
    precision: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Features and logits of images ``[n, H, W]`` or ``[n, C, H, W]`` (any scale).

    The one inference path of the package (extraction, evaluation, search). Each image is
    standardised (zero mean, unit variance, as in training); square images of another size
    than ``image_size`` are rescaled isotropically (antialiased). The network runs with
    its BatchNorm folded into the convolutions, in ``channels_last``, with weights and
    activations in the format :func:`sarise.precision.resolve` picks for ``precision``
    (:func:`inference_model`); the classifier head is the model's own, in float32. On a
    CPU every forward pass has exactly :data:`CPU_BATCH` rows, so an image's result is the
    same bit for bit in any batch; on a GPU ``batch_size`` images go at once.

    Parameters
    ----------
    invariant : {'none', 'd4'}
        ``d4`` averages features and logits over the 8 rotations by 90 degrees and flips.
    precision : {'auto', 'fp32', 'bf16'}

    Returns
    -------
    features : ndarray, float32, ``[n, model.num_features]``
    logits : ndarray, float32, ``[n, model.num_classes]``
    """
    from sarise.models.data import standardize
    from sarise.precision import channels_last_safe, resolve

    device = next(model.parameters()).device
    fmt = resolve(precision, device.type)
    rows = CPU_BATCH if device.type == "cpu" else None
    # the weights' layout changes the bits too: always the same one for a model
    layout = (
        torch.channels_last if channels_last_safe(model, device.type) else torch.contiguous_format
    )
    feats, logits = [], []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
        x = x.float()
        if x.ndim == 3:
            x = x[:, None]
        if image_size and x.shape[-1] != image_size:
            if x.shape[-1] != x.shape[-2]:
                raise SariseError(f"images of {tuple(x.shape[-2:])} px are not square")
            x = torch.nn.functional.interpolate(x, size=(image_size, image_size),
                                                mode="bilinear", antialias=True)  # fmt: skip
        x = standardize(x)
        if x.shape[1] != model.in_chans:
            if x.shape[1] != 1:
                raise SariseError(f"images have {x.shape[1]} channels, the model {model.in_chans}")
            x = x.expand(-1, model.in_chans, -1, -1)
        outs = [_forward(model, v, fmt, rows, layout) for v in _views(x, invariant)]
        logits.append(_mean_of_views([o[0] for o in outs]).cpu().numpy())
        feats.append(_mean_of_views([o[1] for o in outs]).cpu().numpy())
    if not feats:
        return (np.zeros((0, model.num_features), np.float32),
                np.zeros((0, model.num_classes), np.float32))  # fmt: skip
    return np.concatenate(feats), np.concatenate(logits)


@dataclass
class Featurizer:
    """A loaded model with its inference settings: ``featurizer(images)`` -> (features, logits)."""

    model: torch.nn.Module
    info: dict[str, Any]
    batch_size: int
    invariant: str
    precision: str = "auto"

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return embed(self.model, images, batch_size=self.batch_size, invariant=self.invariant,
                     image_size=self.info["image_size"], precision=self.precision)  # fmt: skip


def _device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SariseError("extract.device is 'cuda' but this worker sees no GPU")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _array_module(model: torch.nn.Module):
    """CuPy where the model runs on a GPU (the symmetry measurement follows it), else NumPy."""
    if next(model.parameters()).device.type == "cuda":  # pragma: no cover - GPU
        import cupy

        return cupy
    return np


_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _cached(model: str | None, device: str, batch_size: int, invariant: str,
            precision: str) -> Featurizer:  # fmt: skip
    from sarise.models import load_model

    net, info = load_model(model, device=_device(device))
    logger.info("model %s (sha256 %s) on %s", model or "shipped", info["sha256"][:12],
                next(net.parameters()).device)  # fmt: skip
    return Featurizer(net, info, batch_size, invariant, precision)


def get_featurizer(cfg: ExtractConfig, threads: int | None = None) -> Featurizer:
    """The worker process's model for ``cfg``: built on first use, then reused."""
    if threads:
        torch.set_num_threads(threads)
    with _lock:
        return _cached(cfg.model, cfg.device, cfg.batch_size, cfg.invariant, cfg.precision)


def resolved_precision(cfg: ExtractConfig) -> str:
    """``fp32`` or ``bf16`` for ``cfg`` as decided on this machine (``auto``: bf16 where the
    configured device, or this machine's GPU or CPU, computes it natively)."""
    from sarise.precision import resolve

    gpu = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return resolve(cfg.precision, "cuda" if gpu else "cpu")


# -- the feature store -------------------------------------------------------------------
def _attrs(store, info: dict[str, Any], cfg: ExtractConfig) -> dict[str, Any]:
    model_info = {k: info[k] for k in ("model", "classes", "normalization", "image_size")}
    preprocessing = {"store": store.attrs["preprocessing"], "channel": cfg.channel,
                     "invariant": cfg.invariant, "resize_to": info["image_size"]}  # fmt: skip
    return {
        "extractor": EXTRACTOR,
        "version": VERSION,
        "sarise": __version__,
        "model_sha256": info["sha256"],
        "model": cfg.model,  # as configured (null: the shipped model); the sha256 decides
        "model_info": model_info,
        "preprocessing": preprocessing,
        "groups": list(info["classes"]),
        "chunk": int(store.array("images").chunks[0]),
        "precision": cfg.precision,
        **({"symmetry_columns": list(SCORE_COLUMNS),
            "symmetry_settings": dict(SETTINGS)} if cfg.symmetry else {}),
    }  # fmt: skip


def _same(a: dict, b: dict) -> bool:
    keys = ("extractor", "version", "model_sha256", "preprocessing", "chunk", "precision",
            "symmetry_columns", "symmetry_settings")  # fmt: skip
    return all(a.get(k) == b.get(k) for k in keys)


def _template(path: Path, n: int, attrs: dict[str, Any], num_features: int):
    """Create ``features.zarr`` for ``n`` images, or grow an existing one to ``n``."""
    import zarr

    chunk, k = attrs["chunk"], len(attrs["groups"])
    n_chunks = math.ceil(n / chunk)
    if (path / "zarr.json").exists():
        g = zarr.open_group(path, mode="r+")
        if not _same(dict(g.attrs), attrs):
            old = {k: g.attrs.get(k) for k in ("model_sha256", "version", "preprocessing",
                                                "precision")}  # fmt: skip
            raise SariseError(f"{path} was made with another model or preprocessing ({old}); "
                              "remove it or write to another run")  # fmt: skip
        for name in ("features", "logits", "probabilities", "image_id", "symmetry_scores"):
            if name not in g:
                continue
            a = g[name]
            if a.shape[0] < n:
                a.resize((n, *a.shape[1:]))
        if g["done"].shape[0] < n_chunks:
            g["done"].resize((n_chunks,))
        return g
    g = zarr.open_group(path, mode="w")
    spec = {"features": ((n, num_features), (chunk, num_features), "float32", ["image", "feature"]),
            "logits": ((n, k), (chunk, k), "float32", ["image", "group"]),
            "probabilities": ((n, k), (chunk, k), "float32", ["image", "group"]),
            "image_id": ((n,), (chunk,), "int64", ["image"])}  # fmt: skip
    if "symmetry_columns" in attrs:
        m = len(attrs["symmetry_columns"])
        spec["symmetry_scores"] = ((n, m), (chunk, m), "float32", ["image", "symmetry"])
    for name, (shape, chunks, dtype, dims) in spec.items():
        g.create_array(name, shape=shape, chunks=chunks, dtype=dtype, dimension_names=dims,
                       fill_value=-1 if dtype == "int64" else np.nan)  # fmt: skip
    g.create_array("done", shape=(n_chunks,), chunks=(1,), dtype="int32", fill_value=0,
                   dimension_names=["chunk"])  # fmt: skip
    g.attrs.update(attrs)
    return g


def _check_same_images(out: Path, g, images, done: np.ndarray, chunk: int) -> None:
    """Refuse features made from other images: the store was re-made from other files,
    or another store was given (its finished chunks would be paired with the wrong ids)."""
    n_done = int(min(len(done), math.ceil(len(images) / chunk)))
    finished = [c for c in range(n_done) if done[c] > 0]
    if not finished:
        return
    stored = images.array("image_id")[:]
    have = g["image_id"][:]
    for c in finished:
        lo, hi = c * chunk, c * chunk + int(done[c])
        if hi > len(stored) or not np.array_equal(have[lo:hi], stored[lo:hi]):
            raise SariseError(f"{out} holds features of other images than the store's (chunk "
                              f"{c}): the store was re-made or is another one; remove {out} "
                              "or write to another run")  # fmt: skip


def _extract_chunk(store_root: str, out: str, c: int, n: int, cfg_json: str, threads: int) -> int:
    """Worker task: chunk ``c`` of the image store (images ``< n``) into ``features.zarr``."""
    import zarr
    from scipy.special import softmax

    cfg = ExtractConfig.model_validate_json(cfg_json)
    images = zarr.open_array(Path(store_root) / "images.zarr" / "images", mode="r")
    ids = zarr.open_array(Path(store_root) / "images.zarr" / "image_id", mode="r")
    chunk = images.chunks[0]
    lo, hi = c * chunk, min((c + 1) * chunk, n)
    featurizer = get_featurizer(cfg, threads)
    if cfg.channel == "fuse":
        feats, logits = fuse([featurizer(images[lo:hi, ch]) for ch in range(images.shape[1])])
    else:
        feats, logits = featurizer(images[lo:hi, cfg.channel])
    first = 0 if cfg.channel == "fuse" else cfg.channel
    g = zarr.open_group(out, mode="r+")
    g["features"][lo:hi] = feats
    g["logits"][lo:hi] = logits
    g["probabilities"][lo:hi] = softmax(logits.astype(np.float64), axis=1).astype(np.float32)
    if cfg.symmetry:
        g["symmetry_scores"][lo:hi] = score_rows(images[lo:hi, first],
                                                 xp=_array_module(featurizer.model))  # fmt: skip
    g["image_id"][lo:hi] = ids[lo:hi]
    g["done"][c] = hi - lo  # the chunk's commit
    return hi - lo


def fuse(per_channel: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One descriptor from the features of every channel of an image (``extract.channel:
    fuse``): each channel's features scaled to unit length, side by side, over the square
    root of the channel count (so every channel weighs the same and the whole has unit
    length); the logits are the channels' mean.

    >>> f = fuse([(np.array([[3.0, 4.0]]), np.zeros((1, 17))), (np.array([[0.0, 2.0]]), np.ones((1, 17)))])
    >>> f[0].astype(float).round(3).tolist(), round(float(np.linalg.norm(f[0])), 6), float(f[1][0, 0])
    ([[0.424, 0.566, 0.0, 0.707]], 1.0, 0.5)
    """
    blocks = [f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
              for f, _ in per_channel]  # fmt: skip
    feats = np.concatenate(blocks, axis=1) / np.sqrt(len(blocks))
    logits = np.mean([lg for _, lg in per_channel], axis=0)
    return feats.astype(np.float32), logits.astype(np.float32)


def extract(
    store: str | Path,
    out: str | Path,
    *,
    config: ExtractConfig | None = None,
    client=None,
    show_progress: bool = True,
) -> dict[str, int]:
    """Features of every image in the image store ``store`` into ``out`` (``features.zarr``).

    Parameters
    ----------
    store : path
        An image store folder (``sarise ingest``).
    out : path
        The feature store to create, resume or extend (after more ingest).
    client : distributed.Client, optional
        Workers (:func:`sarise.cluster.get_client`); default: a local cluster.

    Returns
    -------
    dict
        ``images`` in the store, ``chunks`` computed now, ``skipped`` chunks already done.
    """
    from sarise.models import load_model
    from sarise.store import ImageStore

    cfg = config or ExtractConfig()
    # decided here, once, so that every worker computes in the same format
    cfg = cfg.model_copy(update={"precision": resolved_precision(cfg)})
    out = Path(out)
    images = ImageStore.open(store, mode="r")
    n = len(images)
    if n == 0:
        raise SariseError(f"{store}: the image store is empty")
    n_channels = images.array("images").shape[1]
    if cfg.channel != "fuse" and cfg.channel >= n_channels:
        raise SariseError(f"extract.channel {cfg.channel}: the store has {n_channels} channels")
    net, info = load_model(cfg.model)  # checks the weights; workers load their own copy
    attrs = _attrs(images, info, cfg)
    width = net.num_features * (n_channels if cfg.channel == "fuse" else 1)
    del net
    with exclusive(out, "a feature store", beside=True):
        return _extract_locked(out, images, n, attrs, width, cfg, client, show_progress)


def _extract_locked(out, images, n, attrs, width, cfg, client, show_progress) -> dict[str, int]:
    g = _template(out, n, attrs, width)
    chunk = attrs["chunk"]
    n_chunks = math.ceil(n / chunk)
    done = g["done"][:]
    expected = chunk_sizes(n, chunk)
    _check_same_images(out, g, images, done, chunk)
    todo = [c for c in range(n_chunks) if done[c] != expected[c]]
    result = {"images": n, "chunks": len(todo), "skipped": n_chunks - len(todo)}
    if not todo:
        logger.info("%s: all %d chunks already done", out, n_chunks)
        return result
    if client is None:
        from sarise.cluster import get_client

        with get_client() as own:
            _run(own, todo, images.root, out, n, cfg, expected, show_progress)
    else:
        _run(client, todo, images.root, out, n, cfg, expected, show_progress)
    return result


def _run(client, todo, root, out, n, cfg, expected, show_progress) -> None:
    from distributed import as_completed

    from sarise.cluster import worker_threads

    # torch in each task uses the cores its worker may use (the fewest of any worker)
    threads = min(worker_threads(client).values())
    cfg_json = cfg.model_dump_json()
    futures = [client.submit(_extract_chunk, str(root), str(out), c, n, cfg_json, threads,
                             pure=False) for c in todo]  # fmt: skip
    with progress(sum(expected[c] for c in todo), "extract", enabled=show_progress,
                  logger=logger) as bar:  # fmt: skip
        for fut in as_completed(futures):
            bar.advance(fut.result())
