"""Instrument file readers: one registry, one module per format.

:func:`read_scan` chooses the reader by content (magic bytes) as well as by suffix: a
file with a wrong suffix is read by the reader its content names; a file whose content
matches no reader is refused with the reason. Every failure is a :class:`ReaderError`
naming the file.

Each reader module defines ``FORMAT``, ``SUFFIXES``, ``EXTRA`` (the pip package it needs,
or None), ``sniff(head) -> bool`` and ``read(path) -> Scan``.
"""

from __future__ import annotations

import importlib
import logging
import os
import stat
from pathlib import Path
from types import ModuleType

from sarise.io._base import METADATA_KEYS, Channel, ReaderError, Scan, check_pixels, clean_name

__all__ = [
    "METADATA_KEYS",
    "READERS",
    "Channel",
    "ReaderError",
    "Scan",
    "clean_name",
    "detect_format",
    "read_scan",
    "reader",
]

logger = logging.getLogger(__name__)

#: Reader modules, strongest signature first (IBW's two-byte version is the weakest).
READERS = ("hdf5", "sxm", "spm", "gwy", "tiff", "image", "ibw")
_MODULES = {"hdf5": "h5", "sxm": "sxm", "spm": "spm", "gwy": "gwy", "tiff": "tiff",
            "image": "image", "ibw": "ibw"}  # fmt: skip
_HEAD = 64


def reader(fmt: str) -> ModuleType:
    """The reader module of a format name (one of :data:`READERS`)."""
    if fmt not in _MODULES:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(READERS)}")
    return importlib.import_module(f"sarise.io.{_MODULES[fmt]}")


def _available() -> list[ModuleType]:
    mods = []
    for fmt in READERS:
        try:
            mods.append(reader(fmt))
        except ModuleNotFoundError as exc:  # a reader module not written yet
            if exc.name != f"sarise.io.{_MODULES[fmt]}":
                raise
    return mods


def _read_head(path: Path) -> bytes:
    """The first bytes of a regular file; anything else (a FIFO, a device, a socket, a
    folder, directly or through a symlink) is refused without blocking on it."""
    if path.is_dir():
        raise ReaderError(path, "is a folder, not a file")
    try:
        # non-blocking: opening a FIFO with no writer would otherwise wait forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ReaderError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ReaderError(path, "is a folder, not a file")
        if not stat.S_ISREG(mode):
            kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "a device")  # fmt: skip
            raise ReaderError(path, f"not a regular file ({kind}); only regular files are read")
        return os.read(fd, _HEAD)
    except OSError as exc:
        raise ReaderError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def detect_format(path: str | Path) -> str:
    """The format of a file, from its first bytes (and its suffix where they agree).

    Raises
    ------
    ReaderError
        Unreadable, empty, or no reader recognises the content.
    """
    path = Path(path)
    head = _read_head(path)
    if not head:
        raise ReaderError(path, "empty file (0 bytes)")
    mods = _available()
    matches = [m for m in mods if m.sniff(head)]
    suffix = path.suffix.lower()
    by_suffix = [m for m in mods if suffix in m.SUFFIXES]
    for m in matches:
        if m in by_suffix:
            return m.FORMAT
    if matches:
        fmt = matches[0].FORMAT
        logger.warning("%s: suffix %r but the content is %s; reading it as %s", path,
                       suffix, fmt, fmt)  # fmt: skip
        return fmt
    if by_suffix:
        raise ReaderError(path, f"suffix {suffix} but the content is not {by_suffix[0].FORMAT} "
                                "(corrupt, truncated or misnamed)")  # fmt: skip
    raise ReaderError(path, f"unknown file format (suffix {suffix or 'none'}, first bytes "
                            f"{head[:8]!r})")  # fmt: skip


def read_scan(path: str | Path, *, max_pixels: int | None = None) -> Scan:
    """Read any supported file: its channels, normalised metadata and raw metadata.

    ``max_pixels`` bounds each 2-D image: a file declaring a larger one fails before its
    pixels are read (:func:`sarise.io._base.check_pixels`).

    Raises
    ------
    ReaderError
        With the file and the reason, whatever went wrong inside the reader.
    """
    path = Path(path)
    fmt = detect_format(path)
    try:
        scan = reader(fmt).read(path, max_pixels=max_pixels)
        for c in scan.channels:  # whatever a reader could not check before reading
            check_pixels(path, c.data.shape, max_pixels, f"channel {c.name!r}")
    except ReaderError:
        raise
    except MemoryError:
        raise ReaderError(path, "too large to read into memory") from None
    except Exception as exc:  # a reader bug or a file it did not foresee: never a crash
        raise ReaderError(path, f"{fmt} reader failed: {type(exc).__name__}: {exc}") from None
    if not scan.channels:
        raise ReaderError(path, "no image channels")
    for key in METADATA_KEYS:
        scan.metadata.setdefault(key, None)
    return scan
