"""What every reader returns: channels (2-D float arrays with names and units) and metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sarise.errors import SariseError

__all__ = ["METADATA_KEYS", "Channel", "ReaderError", "Scan", "check_pixels", "clean_name"]

#: Normalised metadata keys a reader fills when the file holds them (None otherwise).
METADATA_KEYS = (
    "instrument",  # e.g. "Asylum Research", "Nanonis", "Gwyddion"
    "scan_size_m",  # [x, y] in metres
    "date",  # ISO 8601 (date or date and time)
    "material",  # e.g. Asylum BaseName
    "sample",
    "imaging_mode",  # e.g. "AC Mode", "PFM Mode", "constant current"
    "drive_frequency_hz",
)


class ReaderError(SariseError):
    """A file could not be read; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class Channel:
    """One 2-D image channel: ``data[y, x]`` (rows top to bottom), float."""

    name: str
    data: np.ndarray
    unit: str = ""


@dataclass
class Scan:
    """A file's channels, normalised metadata (:data:`METADATA_KEYS`) and raw metadata."""

    path: Path
    format: str
    channels: list[Channel]
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def clean_name(name: str | bytes) -> str:
    """A channel or key name cut at the first NUL and stripped (Igor labels carry junk).

    >>> clean_name(b"Phase\\x00Retrace")
    'Phase'
    """
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="replace")
    return name.split("\x00", 1)[0].strip()


def check_pixels(path: str | Path, shape, max_pixels: int | None, what: str = "image") -> None:
    """Refuse, before reading them, a 2-D image of more than ``max_pixels`` pixels.

    ``shape`` is the declared ``(ny, nx)`` (or ``(..., ny, nx)``); ``None`` means no limit.

    >>> check_pixels("a.png", (4, 4), 16)
    >>> check_pixels("a.png", (5, 4), 16)
    Traceback (most recent call last):
    ...
    sarise.io._base.ReaderError: a.png: image of 5 x 4 = 20 pixels declared, more than \
ingest.max_pixels (16); raise it to read this file
    """
    if max_pixels is None:
        return
    ny, nx = (int(v) for v in tuple(shape)[-2:])
    if ny * nx > max_pixels:
        raise ReaderError(
            path,
            f"{what} of {ny} x {nx} = {ny * nx} pixels declared, more than "
            f"ingest.max_pixels ({max_pixels}); raise it to read this file",
        )
