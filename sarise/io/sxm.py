"""Nanonis ``.sxm`` scan reader, written by hand (``nanonispy`` breaks on numpy 2).

File layout
-----------
A text header of ``:KEY:`` lines, each followed by zero or more value lines, up to the
line ``:SCANIT_END:``; then the two bytes ``\\x1a\\x04``; then the images as float32
(big-endian when ``SCANIT_TYPE`` says ``MSBFIRST``), already in physical units.
``SCAN_PIXELS`` gives ``nx ny`` and ``DATA_INFO`` is a tab-separated table
(Channel, Name, Unit, Direction, Calibration, Offset). A channel whose direction is
``both`` stores its forward image, then its backward image, each ``ny * nx`` values.

Channels
--------
One :class:`~sarise.io._base.Channel` per stored image, in file order, named
``<Name>_fwd`` or ``<Name>_bwd`` (e.g. ``Z_fwd``, ``Z_bwd``) with the unit from
``DATA_INFO``. Values are float64; NaN (an incomplete scan) is kept as NaN.

Orientation
-----------
Every image is returned as displayed: row 0 at the top of the frame, column 0 at the left.
Nanonis stores rows in acquisition order and backward lines in the order the tip travelled,
so a backward image is mirrored in x (flipped left-right here) and a scan with ``SCAN_DIR``
``up`` starts at the bottom of the frame (flipped top-bottom here). ``down`` scans are
stored top-first and are not flipped vertically.

Metadata
--------
``raw`` holds every header key (value lines stripped and joined by ``\\n``).
Normalised: ``instrument`` "Nanonis"; ``scan_size_m`` from ``SCAN_RANGE``; ``date`` from
``REC_DATE`` (dd.mm.yyyy) and ``REC_TIME`` as ISO 8601; ``imaging_mode`` from the Z
controller state (``Z-Controller>Controller status`` ON with a current controller:
"constant current"; OFF: "constant height"; ON on another signal: "feedback on <name>"),
with " nc-AFM" appended when ``Oscillation Control>Phase controller on`` is TRUE, None when
the header has no Z-controller status; ``drive_frequency_hz`` is
``Oscillation Control>Center Frequency (Hz)`` (the PLL centre frequency) only while the
phase controller is on, since the key is written for plain STM scans too, else None;
``material`` and ``sample`` None.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np

from sarise.io._base import METADATA_KEYS, Channel, ReaderError, Scan, check_pixels, clean_name

__all__ = ["EXTRA", "FORMAT", "SUFFIXES", "read", "sniff"]

FORMAT = "sxm"
SUFFIXES = (".sxm",)
EXTRA = None

_MAGIC = b":NANONIS_VERSION:"
_HEADER_END = b":SCANIT_END:"
_DATA_START = b"\x1a\x04"
_KEY_LINE = re.compile(r"^:(.+):$")
_DIRECTIONS = {"both": ("fwd", "bwd"), "forward": ("fwd",), "backward": ("bwd",)}
_PLL_ON_KEY = "Oscillation Control>Phase controller on"
_DRIVE_FREQUENCY_KEY = "Oscillation Control>Center Frequency (Hz)"


def sniff(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) looks like a Nanonis ``.sxm`` file.

    >>> sniff(b":NANONIS_VERSION:\\n2\\n")
    True
    >>> sniff(b"GWYP")
    False
    """
    return head.startswith(_MAGIC)


def read(path: Path, max_pixels: int | None = None) -> Scan:
    """Read a Nanonis ``.sxm`` file.

    Parameters
    ----------
    path
        The ``.sxm`` file.

    Returns
    -------
    Scan
        One channel per stored image (``<Name>_fwd`` / ``<Name>_bwd``), oriented for
        display (see the module docstring), with normalised and raw metadata.

    Raises
    ------
    ReaderError
        For any failure: unreadable file, bad or truncated header, missing keys,
        data of the wrong size.
    """
    path = Path(path)
    try:
        return _read(path, max_pixels)
    except ReaderError:
        raise
    except Exception as exc:  # any other failure is still a reader failure
        raise ReaderError(path, f"cannot read .sxm: {type(exc).__name__}: {exc}") from exc


def _read(path: Path, max_pixels: int | None = None) -> Scan:
    blob = _read_bytes(path)
    header_text, data = _split(path, blob)
    raw = parse_header(header_text)
    nx, ny = _pixels(path, raw)
    check_pixels(path, (ny, nx), max_pixels, "SCAN_PIXELS")
    images = _image_table(path, raw)
    values = _data_values(path, raw, data, len(images) * nx * ny)
    scan_up = _scan_dir_up(path, raw)
    channels = [
        Channel(name, _orient(block.reshape(ny, nx), direction, scan_up), unit)
        for (name, unit, direction), block in zip(
            images, np.split(values, len(images)), strict=True
        )
    ]
    return Scan(path, FORMAT, channels, _metadata(raw), raw)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ReaderError(path, f"cannot open file: {exc.strerror or exc}") from exc


def _split(path: Path, blob: bytes) -> tuple[str, bytes]:
    """The header text (before ``:SCANIT_END:``) and the bytes after ``\\x1a\\x04``."""
    if not blob:
        raise ReaderError(path, "empty file (0 bytes)")
    if not sniff(blob):
        raise ReaderError(path, "not a Nanonis .sxm file (no :NANONIS_VERSION: at the start)")
    end = blob.find(_HEADER_END)
    if end < 0:
        raise ReaderError(path, "truncated header: no :SCANIT_END: line")
    start = blob.find(_DATA_START, end + len(_HEADER_END))
    if start < 0:
        raise ReaderError(path, "truncated file: no data marker \\x1a\\x04 after :SCANIT_END:")
    return blob[:end].decode("latin-1"), blob[start + len(_DATA_START) :]


def parse_header(text: str) -> dict[str, str]:
    """The header's ``:KEY:`` entries, each value's lines stripped and joined by newlines.

    >>> parse_header(":SCAN_PIXELS:\\n       256       256\\n:COMMENT:\\n")
    {'SCAN_PIXELS': '256       256', 'COMMENT': ''}
    """
    raw: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        match = _KEY_LINE.match(line.strip())
        if match:
            key = match.group(1)
            raw[key] = []
        elif key is not None:
            raw[key].append(line.strip())
    return {k: "\n".join(lines).strip() for k, lines in raw.items()}


def _required(path: Path, raw: dict[str, str], key: str) -> str:
    if key not in raw:
        raise ReaderError(path, f"header has no :{key}: entry")
    return raw[key]


def _pixels(path: Path, raw: dict[str, str]) -> tuple[int, int]:
    """``(nx, ny)`` from ``SCAN_PIXELS``."""
    text = _required(path, raw, "SCAN_PIXELS")
    try:
        nx, ny = (int(v) for v in text.split())
    except ValueError:
        raise ReaderError(path, f"SCAN_PIXELS is not 'nx ny': {text!r}") from None
    if nx <= 0 or ny <= 0:
        raise ReaderError(path, f"SCAN_PIXELS must be positive: {text!r}")
    return nx, ny


def _image_table(path: Path, raw: dict[str, str]) -> list[tuple[str, str, str]]:
    """``(channel name, unit, 'fwd' | 'bwd')`` for every stored image, in file order."""
    lines = [line for line in _required(path, raw, "DATA_INFO").splitlines() if line.strip()]
    if len(lines) < 2:
        raise ReaderError(path, "DATA_INFO lists no channels")
    columns = [c.strip().lower() for c in lines[0].split("\t")]
    missing = {"name", "unit", "direction"} - set(columns)
    if missing:
        raise ReaderError(path, f"DATA_INFO lacks column(s) {sorted(missing)}")
    images = []
    for line in lines[1:]:
        row = dict(zip(columns, (c.strip() for c in line.split("\t")), strict=False))
        direction = row.get("direction", "").lower()
        if direction not in _DIRECTIONS or not row.get("name"):
            raise ReaderError(path, f"bad DATA_INFO row: {line!r}")
        name = clean_name(row["name"])
        images += [(f"{name}_{d}", row.get("unit", ""), d) for d in _DIRECTIONS[direction]]
    return images


def _dtype(path: Path, raw: dict[str, str]) -> np.dtype:
    """float32 with the byte order of ``SCANIT_TYPE`` (big-endian when absent)."""
    words = raw.get("SCANIT_TYPE", "FLOAT MSBFIRST").upper().split()
    if "FLOAT" not in words:
        raise ReaderError(path, f"unsupported SCANIT_TYPE {raw['SCANIT_TYPE']!r}")
    return np.dtype("<f4" if "LSBFIRST" in words else ">f4")


def _data_values(path: Path, raw: dict[str, str], data: bytes, count: int) -> np.ndarray:
    """All images' values as one float64 vector; the byte count must match exactly."""
    dtype = _dtype(path, raw)
    expected = count * dtype.itemsize
    if len(data) != expected:
        what = "truncated data" if len(data) < expected else "data size mismatch"
        raise ReaderError(
            path,
            f"{what}: header promises {count} float32 values ({expected} bytes), "
            f"file holds {len(data)} bytes after the header",
        )
    return np.frombuffer(data, dtype=dtype).astype(np.float64)


def _scan_dir_up(path: Path, raw: dict[str, str]) -> bool:
    value = _required(path, raw, "SCAN_DIR").lower()
    if value not in ("up", "down"):
        raise ReaderError(path, f"SCAN_DIR must be 'up' or 'down', not {value!r}")
    return value == "up"


def _orient(image: np.ndarray, direction: str, scan_up: bool) -> np.ndarray:
    """``image`` as displayed: backward lines mirrored back, ``up`` scans flipped to top-first."""
    if direction == "bwd":
        image = image[:, ::-1]
    if scan_up:
        image = image[::-1, :]
    return np.ascontiguousarray(image)


def _metadata(raw: dict[str, str]) -> dict[str, object]:
    meta: dict[str, object] = dict.fromkeys(METADATA_KEYS)
    meta["instrument"] = "Nanonis"
    meta["scan_size_m"] = _floats(raw.get("SCAN_RANGE"), 2)
    meta["date"] = _iso_date(raw.get("REC_DATE"), raw.get("REC_TIME"))
    meta["imaging_mode"] = _imaging_mode(raw)
    if _is_true(raw.get(_PLL_ON_KEY)):
        frequency = _floats(raw.get(_DRIVE_FREQUENCY_KEY), 1)
        meta["drive_frequency_hz"] = frequency[0] if frequency else None
    return meta


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in ("TRUE", "ON", "1")


def _imaging_mode(raw: dict[str, str]) -> str | None:
    """The feedback mode from the Z-controller state (and the PLL state), or None.

    >>> _imaging_mode({"Z-Controller>Controller status": "ON",
    ...                "Z-Controller>Controller name": "log Current"})
    'constant current'
    >>> _imaging_mode({"Z-Controller>Controller status": "OFF",
    ...                "Oscillation Control>Phase controller on": "TRUE"})
    'constant height nc-AFM'
    """
    status = raw.get("Z-Controller>Controller status", "").strip().upper()
    name = raw.get("Z-Controller>Controller name", "").strip()
    if status == "OFF":
        mode = "constant height"
    elif status == "ON":
        mode = "constant current" if "current" in name.lower() else f"feedback on {name}"
    else:
        return None
    return f"{mode} nc-AFM" if _is_true(raw.get(_PLL_ON_KEY)) else mode


def _floats(text: str | None, count: int) -> list[float] | None:
    """``count`` floats from a whitespace-separated value, or None.

    >>> _floats("  5.0E-9   5.0E-9", 2)
    [5e-09, 5e-09]
    """
    try:
        values = [float(v) for v in (text or "").split()]
    except ValueError:
        return None
    return values if len(values) == count else None


def _iso_date(date: str | None, time: str | None) -> str | None:
    """ISO 8601 from ``REC_DATE`` (dd.mm.yyyy) and ``REC_TIME`` (hh:mm:ss), or None.

    >>> _iso_date("03.12.2019", "00:09:40")
    '2019-12-03T00:09:40'
    >>> _iso_date("03.12.2019", None)
    '2019-12-03'
    """
    try:
        day = datetime.strptime((date or "").strip(), "%d.%m.%Y")
    except ValueError:
        return None
    try:
        clock = datetime.strptime((time or "").strip(), "%H:%M:%S").time()
    except ValueError:
        return day.date().isoformat()
    return datetime.combine(day.date(), clock).isoformat()
