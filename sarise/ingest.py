"""``sarise ingest``: instrument files into the image store, in parallel, resumably.

Files are listed (folders walked, globs expanded), sorted, and read in batches of
``ingest.chunk`` files by Dask workers (:func:`sarise.cluster.get_client`): each worker
reads, selects channels, preprocesses and returns the images with their metadata rows;
the client appends the batches in input order (one writer, :class:`sarise.store.ImageStore`).
A file whose sha256 is already in the store is skipped, so a rerun appends only new files
and a killed run resumes without duplicates or holes. A file that fails is recorded in
``errors.parquet`` with the reason, and the rest continue.
"""

from __future__ import annotations

import fnmatch
import glob as globmod
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from sarise._lock import exclusive
from sarise._progress import progress
from sarise.config import IngestConfig
from sarise.errors import SariseError

__all__ = ["NOT_DATA", "IngestSummary", "Prepared", "ingest", "list_files", "prepare_file",
           "preprocess_scan"]  # fmt: skip

#: Suffixes folder walks skip: documents and tables that sit beside scans.
NOT_DATA = (".txt", ".md", ".rst", ".csv", ".tsv", ".yaml", ".yml", ".json", ".pdf", ".log",
            ".py", ".ipynb", ".html", ".xml", ".doc", ".docx", ".xls", ".xlsx")  # fmt: skip

logger = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    """Counts per format: ``read``, ``failed``, ``skipped`` (already in the store)."""

    counts: dict[str, Counter] = field(default_factory=dict)
    images: int = 0
    retired: Counter = field(default_factory=Counter)  # replaced, removed, restored images

    def add(self, fmt: str, what: str, n: int = 1) -> None:
        self.counts.setdefault(fmt, Counter())[what] += n

    @property
    def files(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    @property
    def failed(self) -> int:
        return sum(c["failed"] for c in self.counts.values())

    def table(self) -> str:
        lines = [f"{'format':<10}{'read':>8}{'failed':>8}{'skipped':>9}"]
        for fmt in sorted(self.counts):
            c = self.counts[fmt]
            lines.append(f"{fmt:<10}{c['read']:>8}{c['failed']:>8}{c['skipped']:>9}")
        lines.append(f"{self.files} files, {self.images} images stored, {self.failed} failed")
        if self.retired:
            lines.append("retired: " + ", ".join(
                f"{n} {what}" for what, n in sorted(self.retired.items())))  # fmt: skip
        return "\n".join(lines)


def excluded(path: Path, patterns, root: Path | None) -> bool:
    """Whether ``path`` matches one of the ``exclude`` globs: against its path relative to
    ``root`` (as the store names it) or its file name."""
    from sarise.io.metadata import store_path

    name = store_path(path, root)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(path.name, p)
               for p in patterns)  # fmt: skip


def list_files(sources: list[str | Path], errors: list | None = None) -> list[Path]:
    """Files under folders (recursively), matched by globs, or named; sorted, unique.
    A source that exists is taken literally, glob characters in its name and all.

    Folder walks leave out hidden files and documents that are never images
    (:data:`NOT_DATA`: notes, licences, sidecars), and never enter a sarise store, feature
    store or run folder (one kept inside its own source folder would otherwise be
    ingested on the next run); any other entry is tried and reported if unreadable (FIFOs,
    devices and sockets among them: only regular files are read, and nothing blocks on
    them). A folder that cannot be listed is appended to ``errors`` as ``(path, reason)``.
    A named file is always kept.
    """
    found: set[Path] = set()
    for src in sources:
        s = str(src)
        if Path(s).is_dir():
            found.update(_walk(Path(s), errors))
        elif any(ch in s for ch in "*?[") and not Path(s).exists():
            # a pattern; a path that exists is taken as named ("scan [2]/", "*632/")
            found.update(Path(p) for p in globmod.glob(s, recursive=True) if Path(p).is_file())
        else:
            found.add(Path(s))
    return sorted(found)


def _is_sarise_output(folder: Path, names: set[str]) -> bool:
    """A folder sarise wrote: an image store, a Zarr store or a run (never data to ingest)."""
    from sarise._lock import LOCK_NAME

    return bool({LOCK_NAME, "zarr.json", "images.zarr", "features.zarr"} & names) or (
        "metadata.parquet" in names and "errors.parquet" in names
    )


def _walk(top: Path, errors: list | None) -> list[Path]:
    def failed(exc: OSError) -> None:
        reason = f"cannot list folder: {exc.strerror or exc}"
        logger.error("%s: %s", exc.filename, reason)
        if errors is not None:
            errors.append((str(exc.filename), reason))

    out = []
    for folder, dirs, files in os.walk(top, onerror=failed):
        here = Path(folder)
        if _is_sarise_output(here, set(dirs) | set(files)):
            logger.info("%s: a sarise store or run, not walked", here)
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:  # files here include FIFOs, sockets and symlinks
            p = here / name
            if name.startswith(".") or p.suffix.lower() in NOT_DATA or p.is_dir():
                continue
            out.append(p)
    return out


def _select(scan, channels):
    """The file's channel for each entry of ``ingest.channels``: a pattern (the first
    channel, in file order, that matches) or a list of patterns in order of preference (the
    first pattern that matches any channel wins)."""
    chosen = []
    for entry in channels:
        patterns = (entry,) if isinstance(entry, str) else tuple(entry)
        match = None
        for pat in patterns:
            rx = re.compile(pat, re.IGNORECASE)
            match = next((c for c in scan.channels if rx.search(c.name)), None)
            if match is not None:
                break
        if match is None:
            names = ", ".join(c.name for c in scan.channels)
            want = " or ".join(repr(p) for p in patterns)
            raise SariseError(f"no channel matches {want} (channels: {names})")
        chosen.append(match)
    return chosen


def _label(entry) -> str:
    return entry if isinstance(entry, str) else ">".join(entry)


def _flatten(cfg: IngestConfig, fmt: str, channel) -> str:
    from sarise.preprocess import auto_flatten

    if cfg.flatten != "auto":
        return cfg.flatten
    return auto_flatten(fmt, channel.name, channel.unit or "")


def preprocess_scan(scan, cfg: IngestConfig) -> tuple[list, np.ndarray]:
    """The channels ``ingest.channels`` selects from a read file, each as ingest stores it
    before the fit: non-finite pixels checked, the background removed (``ingest.flatten``;
    ``auto`` by format and channel), clipped to the ``ingest.clip`` percentiles and scaled
    to [0, 1]. ``sarise ingest`` and ``sarise evaluate --folder`` both read files through it.

    Returns
    -------
    channels : list of :class:`sarise.io.Channel`, the chosen ones
    stack : float array ``[channels, H, W]``

    Raises
    ------
    SariseError
        No channel matches an entry, or a channel is flat or mostly non-finite (named).
    """
    chosen = _select(scan, cfg.channels)
    out = []
    for c in chosen:
        try:
            out.append(_preprocess(c.data, cfg, _flatten(cfg, scan.format, c)))
        except ValueError as exc:  # non-finite or flat: the file fails, naming the channel
            raise SariseError(f"channel {c.name}: {exc}") from None
    return chosen, np.stack(out)


def _preprocess(data: np.ndarray, cfg: IngestConfig, flatten: str | None = None) -> np.ndarray:
    from sarise import preprocess as pp

    raw = pp.check_values(data)
    a = raw
    flatten = flatten or cfg.flatten
    if flatten == "plane":
        a = pp.plane_flatten(raw)
    elif flatten == "line":
        a = pp.line_flatten(raw)
    if a is not raw:
        pp.check_contrast(raw, a)
    return pp.scale_unit(pp.clip_percentiles(a, *cfg.clip))


class Prepared(NamedTuple):
    """One file, read and preprocessed (``status``: ``read``, ``skipped`` or ``failed``)."""

    format: str
    status: str
    images: np.ndarray | None = None
    corners: np.ndarray | None = None
    thumbnails: np.ndarray | None = None
    rows: list[dict] | None = None
    reason: str | None = None
    sha256: str | None = None  # the content read (also for a skipped file)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def prepare_file(path: Path, cfg: IngestConfig, known: frozenset[str], root: Path | None):
    """Read and preprocess one file (:class:`Prepared`); a file whose sha256 is ``known``
    is skipped, one that changes while it is read fails (a rerun reads its new content)."""
    from sarise import preprocess as pp
    from sarise.io import ReaderError, detect_format, read_scan
    from sarise.io.metadata import file_sha256, metadata_row
    from sarise.store import image_id

    fmt, sha = "?", None
    try:
        fmt = detect_format(path)
        before = _stamp(path)
        sha = file_sha256(path)
        if sha in known:
            return Prepared(fmt, "skipped", sha256=sha)
        scan = read_scan(path, max_pixels=cfg.max_pixels)
        if _stamp(path) != before:
            raise SariseError("the file changed while it was read (size or modification "
                              "time); run ingest again to store its new content")  # fmt: skip
        chosen, stack = preprocess_scan(scan, cfg)
        side = min(stack.shape[1:]) if cfg.fit != "pad" else max(stack.shape[1:])
        zoom = cfg.size / side  # stored pixels per file pixel
        if cfg.fit == "tile":
            per = [pp.tiles(c, cfg.size) for c in stack]
            images = np.stack([p[0] for p in per], axis=1)
            corners, zoom = per[0][1], 1.0
            if len(images) == 0:
                raise SariseError(f"smaller than one {cfg.size} px tile ({stack.shape[1:]})")
        elif cfg.fit == "auto":  # the first channel's lattice sets the scale of all
            cells = pp.cell_zoom(stack[0], cfg.size)
            per = [pp.views_at_zoom(c, cfg.size, cells) for c in stack]
            images = np.stack([p[0] for p in per], axis=1)
            corners, zoom = per[0][1], zoom if cells is None else cells
        else:
            images = np.stack([pp.fit_square(c, cfg.size, cfg.fit) for c in stack])[None]
            corners = np.full((1, 2), -1)
        row = metadata_row(scan, root=root, sha256=sha)
        row["channel"] = ";".join(c.name for c in chosen)
        row["zoom"] = float(zoom)
        rows = [{"image_id": image_id(sha, t), **row, "tile": t} for t in range(len(images))]
        thumbs = np.stack([[_pad_thumb(pp.thumbnail(c, cfg.thumbnail), cfg.thumbnail) for c in im]
                           for im in images])  # fmt: skip
        return Prepared(fmt, "read", images.astype(np.float32), corners, thumbs, rows, None, sha)
    except (ReaderError, SariseError, OSError, ValueError, MemoryError) as exc:
        reason = exc.reason if isinstance(exc, ReaderError) else str(exc)
        return Prepared(fmt, "failed", reason=reason)


def _pad_thumb(t: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, size), np.uint8)
    out[: t.shape[0], : t.shape[1]] = t
    return out


def _prepare_batch(paths: list[str], cfg_json: str, known: frozenset[str], root: str | None):
    cfg = IngestConfig.model_validate_json(cfg_json)
    return [prepare_file(Path(p), cfg, known, Path(root) if root else None) for p in paths]


def ingest(
    sources: list[str | Path],
    out: str | Path,
    *,
    config: IngestConfig | None = None,
    sidecar: str | Path | None = None,
    root: str | Path | None = None,
    client=None,
    workers: int | None = None,
    show_progress: bool = True,
    prune: bool = False,
    exclude: tuple[str, ...] | list[str] = (),
) -> IngestSummary:
    """Ingest files into the image store at ``out`` (created on first use).

    A rerun stores only new content. A file whose content changed since it was stored
    (same path, another sha256) has its new content stored and its old images retired as
    ``replaced``; content that is back (a file restored) is live again. With ``prune``,
    the images of files that are gone (under this run's folders or globs, not found by
    this walk, and absent from disk) are retired as ``removed``. Retired images stay in the
    store (:meth:`sarise.store.ImageStore.retired`); projections and the search index
    leave them out. A file that now fails keeps its stored images live, and
    ``errors.parquet`` names it.

    Parameters
    ----------
    sources : list of path or glob
        Files, folders (walked) or glob patterns.
    out : path
        The store folder (``images.zarr``, ``metadata.parquet``, ``errors.parquet``).
    sidecar : path, optional
        CSV or YAML joined to the metadata by ``path`` (relative to ``root``) or glob.
    root : path, optional
        Paths in the metadata are relative to it (default: the single folder given, if any).
    client : distributed.Client, optional
        Workers to use; by default a local cluster of ``workers`` processes.
    prune : bool
        Retire the images of files that are gone (see above).
    exclude : list of glob
        Files to leave out (:func:`excluded`); an excluded file is neither read nor pruned.

    Raises
    ------
    SariseError
        When more than ``max_failed_fraction`` of the files failed (after storing the rest).
    """
    from sarise.io.metadata import read_sidecar

    cfg = config or IngestConfig()
    out = Path(out)
    if root is None and len(sources) == 1 and Path(sources[0]).is_dir():
        root = Path(sources[0])
    side = read_sidecar(sidecar) if sidecar else None
    walk_errors: list[tuple[str, str]] = []
    files = list_files(sources, walk_errors)
    if exclude:
        kept = [f for f in files if not excluded(f, exclude, Path(root) if root else None)]
        logger.info("exclude: %d of %d files left out", len(files) - len(kept), len(files))
        files = kept
    if not files and not walk_errors:
        raise SariseError(f"no files found in {', '.join(map(str, sources))}")
    prep = {"channels": list(cfg.channels), "flatten": cfg.flatten, "clip": list(cfg.clip),
            "size": cfg.size, "fit": cfg.fit, "scale": "unit"}  # fmt: skip
    scopes = _scopes(sources, root) if prune else None
    with exclusive(out, "an image store"):
        summary = _ingest_locked(out, files, cfg, prep, side, root, client, workers,
                                 show_progress, walk_errors, scopes)  # fmt: skip
    return summary


def _scopes(sources, root) -> list[str]:
    """Where this run looked, as the store names paths: a folder's (or a glob's fixed
    part's) name followed by ``/``, or a named file's name."""
    from sarise.io.metadata import store_path

    out = []
    for src in map(str, sources):
        if any(ch in src for ch in "*?["):
            fixed = []
            for part in Path(src).parts:
                if any(ch in part for ch in "*?["):
                    break
                fixed.append(part)
            src, is_dir = str(Path(*fixed)) if fixed else ".", True
        else:
            is_dir = Path(src).is_dir()
        name = store_path(Path(src), root)
        out.append("" if name == "." else name.rstrip("/") + "/" if is_dir else name)
    return out


def _retire(state: _Run, scopes: list[str] | None) -> None:
    """Retire the images whose file now holds other content (or, when pruning, is gone),
    and restore retired images whose content is back."""
    store, root = state.store, state.root
    meta = store.metadata()
    if meta.empty:
        return
    retired = store.retired()
    was = meta["image_id"].map(retired).astype(object)  # NaN: live
    now = was.copy()
    live = meta["sha256"].isin(set(state.contents.values()))
    replaced = ~live & meta["path"].isin(state.contents.keys())
    now[live] = np.nan
    now[replaced] = "replaced"
    if scopes is not None:
        maybe = ~live & ~replaced & ~meta["path"].isin(state.paths)
        for i in np.flatnonzero(maybe.to_numpy()):
            path = meta["path"].iat[i]
            if _in_scope(path, scopes) and not _on_disk(path, root):
                now.iat[i] = "removed"
    changed = (now.fillna("") != was.fillna("")).to_numpy()
    if not changed.any():
        return
    reasons = [r if isinstance(r, str) else None for r in now[changed]]  # None: restored
    rows = meta.loc[changed, ["image_id", "path"]].assign(reason=reasons)
    for reason in reasons:
        state.summary.retired[reason or "restored"] += 1
    for what, n in sorted(state.summary.retired.items()):
        logger.info("%d stored images %s", n, what)
    store.retire(rows)


def _in_scope(path: str, scopes: list[str]) -> bool:
    return any(path == s or ((s.endswith("/") or s == "") and path.startswith(s)) for s in scopes)


def _on_disk(path: str, root: Path | None) -> bool:
    p = Path(path)
    if root is not None and not p.is_absolute():
        p = Path(root) / p
    return os.path.lexists(p)


def _ingest_locked(out, files, cfg, prep, side, root, client, workers, show_progress,
                   walk_errors, scopes):  # fmt: skip
    from sarise.store import ImageStore

    if (out / "images.zarr").exists():
        store = ImageStore.open(out)
        if store.attrs["preprocessing"] != prep:
            raise SariseError(f"{out} was made with other preprocessing: "
                              f"{store.attrs['preprocessing']}; use another folder")  # fmt: skip
        if store.attrs.get("thumbnail", cfg.thumbnail) != cfg.thumbnail:
            raise SariseError(f"{out} holds {store.attrs['thumbnail']} px thumbnails, "
                              f"ingest.thumbnail is {cfg.thumbnail}; use the same or another "
                              "folder")  # fmt: skip
    else:
        store = ImageStore.create(out, channels=[f"c{i}:{_label(p)}" for i, p in enumerate(cfg.channels)],
                                  size=cfg.size, dtype=cfg.dtype, chunk=cfg.chunk,
                                  thumbnail=cfg.thumbnail, preprocessing=prep)  # fmt: skip
    known = frozenset(store.known_sha256())
    summary = IngestSummary()
    batches = [files[i : i + cfg.chunk] for i in range(0, len(files), cfg.chunk)]
    from sarise.io.metadata import store_path

    state = _Run(store, summary, side, dict.fromkeys(known, ""),
                 dict(store.errors()[["path", "reason"]].itertuples(index=False, name=None)),
                 root, frozenset(store_path(f, root) for f in files))  # fmt: skip
    _record_walk_errors(walk_errors, state)
    if batches and client is None:
        from sarise.cluster import get_client

        with get_client(workers=workers) as own:
            _run(own, batches, cfg, known, state, show_progress)
    elif batches:
        _run(client, batches, cfg, known, state, show_progress)
    _retire(state, scopes)
    if side is not None:
        _apply_sidecar(store, side, cfg)
    logger.info("ingest summary\n%s", summary.table())
    if summary.files and summary.failed / summary.files > cfg.max_failed_fraction:
        raise SariseError(f"{summary.failed} of {summary.files} files failed (see "
                          f"{out / 'errors.parquet'}); max_failed_fraction is "
                          f"{cfg.max_failed_fraction}")  # fmt: skip
    return summary


def _apply_sidecar(store, side: pd.DataFrame, cfg: IngestConfig) -> None:
    """Match the sidecar to every stored path and make it the store's: a rerun with a new
    sidecar updates the metadata without reading any file again."""
    from sarise.io.metadata import match_sidecar

    paths = store.metadata()["path"].dropna().unique().tolist() if len(store) else []
    unused: list[str] = []
    matched = match_sidecar(side, paths, unused)
    store.set_sidecar(matched, file_wins=cfg.precedence == "file")
    logger.info("sidecar: values for %d of %d stored files (%s wins where both say)",
                len(matched), len(paths), cfg.precedence)  # fmt: skip
    if unused:
        logger.warning("sidecar: %d entries match no stored file (first: %s)", len(unused),
                       unused[0])  # fmt: skip


@dataclass
class _Run:
    """What the client keeps while batches come back: ``seen`` maps the sha256 stored so
    far to a path (two copies of a file are stored once: ids are made from the content);
    ``reported`` maps the paths in ``errors.parquet`` to their reason (a rerun does not
    repeat a failure, and clears it when the file now reads)."""

    store: Any
    summary: IngestSummary
    side: pd.DataFrame | None
    seen: dict[str, str]
    reported: dict[str, str]
    root: Path | None
    paths: frozenset[str] = frozenset()  # every file of the run, as the store names them
    contents: dict[str, str] = field(default_factory=dict)  # path -> sha256 read this run


def _run(client, batches, cfg: IngestConfig, known, state: _Run, show_progress: bool) -> None:
    cfg_json = cfg.model_dump_json()
    root_s = str(state.root) if state.root else None
    # sent to each worker once, not with every task (a large archive has millions)
    [known_f] = client.scatter([frozenset(known)], broadcast=True, hash=False)
    window = 2 * max(1, len(client.scheduler_info()["workers"]))
    futures = []
    total = sum(len(b) for b in batches)
    with progress(total, "ingest", enabled=show_progress, logger=logger) as bar:
        for i in range(len(batches)):
            while len(futures) < window and i + len(futures) < len(batches):
                b = batches[i + len(futures)]
                futures.append(client.submit(_prepare_batch, [str(p) for p in b], cfg_json,
                                             known_f, root_s, pure=False))  # fmt: skip
            _commit(batches[i], futures.pop(0).result(), state)
            bar.advance(len(batches[i]))


def _record_walk_errors(walk_errors: list[tuple[str, str]], state: _Run) -> None:
    """Folders that could not be listed: counted as failures and kept in errors.parquet."""
    from sarise.io.metadata import store_path

    rows = []
    for path, reason in walk_errors:
        state.summary.add("folder", "failed")
        name = store_path(Path(path), state.root)
        if state.reported.get(name) != reason:
            rows.append({"path": name, "format": "folder", "reason": reason})
            state.reported[name] = reason
    if rows:
        state.store.add_errors(pd.DataFrame(rows))


def _commit(paths, results, state: _Run) -> None:
    """Append one batch's images, record its failures."""
    from sarise.io.metadata import store_path

    store, summary, seen, reported = state.store, state.summary, state.seen, state.reported

    images, corners, thumbs, rows, errors = [], [], [], [], []
    for path, r in zip(paths, results, strict=True):
        fmt, status, im, yx, th, rw, reason, sha = r
        if status == "read" and sha in seen:
            logger.info("%s: same content as %s, stored once", path, seen[sha] or
                        "a file already in the store")  # fmt: skip
            status = "skipped"
        summary.add(fmt, status)
        name = store_path(path, state.root)
        if sha is not None and status != "failed":
            state.contents[name] = sha
        if status == "failed":
            logger.error("%s: %s", path, reason)
            if reported.get(name) != reason:
                errors.append({"path": name, "format": fmt, "reason": reason})
                reported[name] = reason
        elif name in reported:  # it reads now
            errors.append({"path": name, "format": fmt, "reason": None})
            del reported[name]
        if status == "read":
            seen[sha] = str(path)
            images.append(im)
            corners.append(yx)
            thumbs.append(th)
            rows.extend(rw)
    if images:
        table = pd.DataFrame(rows)
        store.append(np.concatenate(images), table, tile_yx=np.concatenate(corners),
                     thumbnails=np.concatenate(thumbs))  # fmt: skip
        summary.images += len(table)
    store.add_errors(pd.DataFrame(errors))
