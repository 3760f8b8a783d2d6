"""Materialise fixed dataset splits as Zarr stores, and the preview montage.

Each split is ``<out>/<split>.zarr`` (schema in ``shared/design.md``), built in
``<split>.zarr.partial`` and renamed when complete, so a store under the final name
is always whole. Work is split into Zarr chunks, generated in parallel processes,
each written by one process as an aligned region; a ``chunk_done`` flag is written
last, so a killed run resumes chunk by chunk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from sarise._files import open_zarr_dataset
from sarise._progress import progress
from sarise._version import __version__
from sarise.config import MOTIF_SOURCES, SPLITS, SarisConfig, SymmetryConfig, load_config
from sarise.errors import SariseError
from sarise.symmetry._effects import EFFECTS
from sarise.symmetry._groups import GROUPS, LATTICES, get_group
from sarise.symmetry._motifs import NATURAL_IMAGES
from sarise.symmetry._sample import render, sample

__all__ = ["GENERATOR_VERSION", "generate", "open_split", "write_preview", "write_split"]

logger = logging.getLogger(__name__)

#: Bumped whenever the same config and seed would give different images.
GENERATOR_VERSION = 3  # 2: texture motifs, imaging effects, log-uniform cells; 3: antialias

_SCALARS = {
    "label": "int8",
    "lattice": "int8",
    "motif_source": "int8",
    "motif_id": "uint64",
    "seed": "uint64",
    "rotation": "float64",
    "noise": "float32",
    "blur": "float32",
    "scan_lines": "float32",
    "drift": "float32",
    **dict.fromkeys(EFFECTS, "float32"),
    "rejected": "int16",
}


def _fingerprint(config: SymmetryConfig, split: str) -> str:
    payload = json.dumps(
        {"config": config.model_dump(mode="json"), "split": split, "version": GENERATOR_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("numpy", "numba", "scipy", "zarr", "scikit-image", "pillow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _n_images(config: SymmetryConfig, split: str) -> int:
    return len(GROUPS) * config.per_group.get(split, 0)


def _create(path: Path, config: SymmetryConfig, split: str, fingerprint: str) -> None:
    import zarr
    from zarr.codecs import BloscCodec

    n, size, chunk = _n_images(config, split), config.size, config.chunk
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs.update(
        {
            "groups": list(GROUPS),
            "lattices": list(LATTICES),
            "motif_sources": list(MOTIF_SOURCES),
            "natural_images": list(NATURAL_IMAGES),
            "split": split,
            "size": size,
            "seed": config.seed,
            "generator": "sarise.symmetry",
            "generator_version": GENERATOR_VERSION,
            "sarise_version": __version__,
            "versions": _versions(),
            "config": config.model_dump(mode="json"),
            "fingerprint": fingerprint,
            "complete": False,
        }
    )
    cn = max(1, min(chunk, n))
    # Byte-shuffled LZ4: 2.6x faster to write than Zarr's default zstd, and smaller here.
    fast = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    root.create_array(
        "images", shape=(n, size, size), chunks=(cn, size, size), dtype=config.dtype,
        dimension_names=["image", "y", "x"], fill_value=0, compressors=fast,
    )  # fmt: skip
    root.create_array(
        "image", shape=(n,), chunks=(max(n, 1),), dtype="int64", dimension_names=["image"]
    )
    for name, dtype in _SCALARS.items():
        root.create_array(
            name, shape=(n,), chunks=(cn,), dtype=dtype, dimension_names=["image"], fill_value=0
        )
    root.create_array(
        "basis", shape=(n, 2, 2), chunks=(cn, 2, 2), dtype="float64",
        dimension_names=["image", "axis", "vector"], fill_value=0,
    )  # fmt: skip
    root.create_array(
        "phase", shape=(n, 2), chunks=(cn, 2), dtype="float64",
        dimension_names=["image", "vector"], fill_value=0,
    )  # fmt: skip
    n_chunks = -(-n // cn) if n else 0
    root.create_array(
        "chunk_done", shape=(n_chunks,), chunks=(1,), dtype="bool",
        dimension_names=["chunk"], fill_value=False,
    )  # fmt: skip
    root["image"][:] = np.arange(n, dtype=np.int64)


def _write_chunk(path: str, split: str, config_json: str, start: int, stop: int, chunk: int) -> int:
    """Generate images ``[start, stop)`` and write them as one region (runs in a worker)."""
    import zarr

    config = SymmetryConfig.model_validate_json(config_json)
    count = stop - start
    images = np.empty((count, config.size, config.size), dtype=config.dtype)
    cols = {name: np.zeros(count, dtype=dtype) for name, dtype in _SCALARS.items()}
    basis = np.empty((count, 2, 2))
    phase = np.empty((count, 2))
    for k, index in enumerate(range(start, stop)):
        im = sample(index, seed=config.seed, split=split, config=config)
        images[k] = im.image
        cols["label"][k] = im.label
        cols["lattice"][k] = LATTICES.index(im.lattice)
        cols["motif_source"][k] = MOTIF_SOURCES.index(im.motif_source)
        cols["motif_id"][k] = im.motif_id
        cols["seed"][k] = im.seed
        cols["rotation"][k] = im.rotation
        cols["noise"][k] = im.noise
        cols["blur"][k] = im.blur
        cols["scan_lines"][k] = im.scan_lines
        cols["drift"][k] = im.drift
        for name in EFFECTS:
            cols[name][k] = im.effects[name]
        cols["rejected"][k] = im.rejected
        basis[k] = im.basis
        phase[k] = im.phase
    root = zarr.open_group(path, mode="r+")
    region = slice(start, stop)
    root["images"][region] = images
    for name, values in cols.items():
        root[name][region] = values
    root["basis"][region] = basis
    root["phase"][region] = phase
    root["chunk_done"][chunk] = True  # last: the chunk is whole
    return count


def _pool(workers: int) -> ProcessPoolExecutor:
    # Zarr runs an event-loop thread: fork from a clean server, not from this process.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sarise.symmetry._dataset"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def default_workers() -> int:
    """Usable cores (the CPU affinity mask, e.g. a SLURM allocation)."""
    return len(os.sched_getaffinity(0))


def write_split(
    out: str | Path,
    split: str,
    config: SymmetryConfig | None = None,
    *,
    workers: int | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> Path:
    """Write one dataset split to ``<out>/<split>.zarr``.

    Parameters
    ----------
    out : str or Path
        Folder holding the splits.
    split : {'train', 'val', 'test'}
    config : SymmetryConfig, optional
    workers : int, optional
        Worker processes; all usable cores by default, 1 runs in this process.
    overwrite : bool, optional
        Replace a complete store made with another configuration.
    show_progress : bool, optional

    Returns
    -------
    Path
        The store. A complete store made with the same configuration is kept as it is
        (nothing is regenerated); an interrupted run resumes from its finished chunks.

    Raises
    ------
    SariseError
        If a store with another configuration exists and ``overwrite`` is False, or if
        some chunks failed (the others are kept for the next run).
    """
    import zarr

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    config = config or SymmetryConfig()
    out = Path(out)
    final = out / f"{split}.zarr"
    partial = out / f"{split}.zarr.partial"
    fingerprint = _fingerprint(config, split)
    if final.exists():
        attrs = _attrs(final)
        if attrs.get("fingerprint") == fingerprint and attrs.get("complete"):
            logger.info("%s is complete and up to date: nothing to do", final)
            return final
        if not overwrite:
            raise SariseError(
                f"{final} exists and was made with another configuration; "
                "remove it or pass --overwrite"
            )
    if partial.exists() and _attrs(partial).get("fingerprint") != fingerprint:
        logger.warning("%s was started with another configuration: starting over", partial)
        shutil.rmtree(partial)
    out.mkdir(parents=True, exist_ok=True)
    if not partial.exists():
        _create(partial, config, split, fingerprint)
    root = zarr.open_group(str(partial), mode="r+")
    done = root["chunk_done"][:]
    n = root["images"].shape[0]
    cn = root["images"].chunks[0]
    todo = [c for c in range(len(done)) if not done[c]]
    if len(todo) < len(done):
        logger.info(
            "%s: resuming, %d of %d chunks already written",
            partial,
            len(done) - len(todo),
            len(done),
        )
    workers = max(1, min(workers or default_workers(), len(todo) or 1))
    logger.info("%s: %d images of %dx%d px, %d chunks to write with %d worker(s)",
                final, n, config.size, config.size, len(todo), workers)  # fmt: skip
    failures = _run_chunks(partial, split, config, todo, n, cn, workers, show_progress)
    if failures:
        detail = "; ".join(f"chunk {c}: {msg}" for c, msg in failures[:5])
        raise SariseError(
            f"{len(failures)} of {len(done)} chunks of {final} failed ({detail}); "
            f"the {len(done) - len(failures)} finished ones are kept in {partial}: rerun to resume"
        )
    root.attrs["complete"] = True
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    logger.info("wrote %s", final)
    return final


def _run_chunks(
    partial, split, config, todo, n, cn, workers, show_progress
) -> list[tuple[int, str]]:
    config_json = config.model_dump_json()
    jobs = [(str(partial), split, config_json, c * cn, min(n, (c + 1) * cn), c) for c in todo]
    failures: list[tuple[int, str]] = []
    total = sum(j[4] - j[3] for j in jobs)
    with progress(total, f"{split}.zarr", enabled=show_progress, logger=logger) as bar:
        if workers == 1:
            for job in jobs:
                try:
                    bar.advance(_write_chunk(*job))
                except Exception as exc:  # reported with its chunk, the rest go on
                    logger.error("chunk %d of %s failed: %s", job[5], partial, exc)
                    failures.append((job[5], str(exc)))
            return failures
        with _pool(workers) as pool:
            pending = {pool.submit(_write_chunk, *job): job for job in jobs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    job = pending.pop(fut)
                    try:
                        bar.advance(fut.result())
                    except Exception as exc:  # reported with its chunk, the rest go on
                        logger.error("chunk %d of %s failed: %s", job[5], partial, exc)
                        failures.append((job[5], str(exc)))
    return failures


def _attrs(path: Path) -> dict:
    import zarr

    try:
        return dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception as exc:  # an unreadable store is treated as foreign
        logger.warning("cannot read %s (%s)", path, exc)
        return {}


def open_split(path: str | Path):
    """Open a split as an :class:`xarray.Dataset` (dims ``image, y, x``)."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise SariseError(f"{path} is not a symmetry dataset store (no zarr.json)")
    return open_zarr_dataset(path)


def write_preview(
    path: str | Path,
    config: SymmetryConfig | None = None,
    *,
    columns: int = 8,
    tile: int = 96,
) -> Path:
    """Write a montage PNG: one row per group, columns cycling through the group's
    lattices and the motif sources; the last two columns show augmented images.
    """
    from PIL import Image, ImageDraw, ImageFont

    config = config or SymmetryConfig()
    label_w, pad, caption = 64, 4, 14
    font = ImageFont.load_default(size=12)
    small = ImageFont.load_default(size=9)
    width = label_w + columns * (tile + pad)
    height = len(GROUPS) * (tile + caption + pad) + pad
    sheet = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(sheet)
    sources = config.motif_sources
    for label, name in enumerate(GROUPS):
        g = get_group(name)
        y0 = pad + label * (tile + caption + pad)
        draw.text((6, y0 + tile // 2 - 8), name, fill=0, font=font)
        for col in range(columns):
            lattice = g.lattices[col % len(g.lattices)]
            motif = sources[(col // len(g.lattices) + col) % len(sources)]
            augment = col >= columns - 2
            im = render(
                name, lattice=lattice, motif=motif, rng=[config.seed, label, col],
                config=config, augment=augment,
            )  # fmt: skip
            pic = Image.fromarray(np.uint8(np.clip(im.image, 0, 1) * 255))
            pic = pic.resize((tile, tile), Image.Resampling.LANCZOS)
            x0 = label_w + col * (tile + pad)
            sheet.paste(pic, (x0, y0))
            text = f"{lattice[:4]} {motif}" + (" +aug" if augment else "")
            draw.text((x0, y0 + tile + 1), text, fill=0, font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    sheet.save(tmp)
    os.replace(tmp, path)
    logger.info("wrote %s", path)
    return path


def generate(
    out: str | Path | None = None,
    *,
    config: SarisConfig | SymmetryConfig | str | Path | None = None,
    splits: Sequence[str] | Iterable[str] = SPLITS,
    preview: str | Path | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> dict[str, Path]:
    """Generate the symmetry dataset splits and/or the preview montage.

    Parameters
    ----------
    out : str or Path, optional
        Folder for ``<split>.zarr``; no split is written if None.
    config : SarisConfig, SymmetryConfig, path or None
        A run config (its ``symmetry`` section is used), the section itself, or a YAML file.
    splits : sequence of str, optional
        Splits to write.
    preview : str or Path, optional
        Montage PNG to write.
    workers, overwrite, show_progress
        See :func:`write_split`.

    Returns
    -------
    dict
        What was written, by split name (and ``"preview"``).
    """
    if out is None and preview is None:
        raise ValueError("nothing to do: give an output folder, a preview path, or both")
    if isinstance(config, SymmetryConfig):
        sym = config
    elif isinstance(config, SarisConfig):
        sym = config.symmetry
    else:
        sym = load_config(config).symmetry
    written: dict[str, Path] = {}
    if out is not None:
        for split in splits:
            written[split] = write_split(
                out, split, sym, workers=workers, overwrite=overwrite, show_progress=show_progress
            )
    if preview is not None:
        written["preview"] = write_preview(preview, sym)
    return written
