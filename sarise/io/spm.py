"""Bruker (Veeco, Digital Instruments) Nanoscope ``.spm`` / ``.001`` reader, by hand.

File layout
-----------
A Latin-1 text header of ``\\key: value`` lines in sections that start with ``\\*``
(``\\*File list``, ``\\*Scanner list``, ``\\*Ciao scan list``, one ``\\*Ciao image list``
per channel, ...) up to ``\\*File list end``; then the images as little-endian signed
integers of ``Bytes/pixel`` bytes. Each image section gives ``Data offset``, ``Data
length``, ``Samps/line`` and ``Number of lines`` (``Valid data len X/Y`` when the scan
was stopped early), its name in ``@2:Image Data: S [Height] "Height"`` and its scale in
``@2:Z scale: V [Sens. Zsens] (0.0067 V/LSB) 440.0 V``.

Values
------
``value = raw * full_scale / 256**bytes_per_pixel * sensitivity``: the full scale is
the last number of the ``Z scale`` line (volts over the integer range), the sensitivity
the value of the ``@Sens. <name>`` key named in its brackets (e.g. ``22.2 nm/V``),
which also gives the unit (``nm``, converted to ``m``; ``deg``; ``V`` when the key is
absent). The same rule as pySPM and Gwyddion for Nanoscope 5 and later files.

Orientation
-----------
Nanoscope stores the bottom line first; images are returned as displayed (row 0 at
the top). Channels are named ``<name>`` or ``<name>_retrace``/``<name>_trace`` when
the file holds both directions of one signal.

Metadata
--------
``raw`` holds every header key as ``<section>/<key>`` (numbered when a section repeats).
Normalised: ``instrument`` "Bruker" plus the ``Description`` or ``Microscope``
(e.g. "Bruker Dimension Icon"); ``scan_size_m`` from the ``Scan Size`` (``x y unit``,
or one edge for a square scan); ``date`` from ``Date`` (``03:31:24 PM Tue Jun 28 2016``)
as ISO 8601; ``imaging_mode`` from ``Operating mode`` or ``Feedback type``;
``drive_frequency_hz`` from ``Drive frequency``; ``material`` None; ``sample`` from a
``Sample`` key when present.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np

from sarise.io._base import METADATA_KEYS, Channel, ReaderError, Scan, check_pixels, clean_name

__all__ = ["EXTRA", "FORMAT", "SUFFIXES", "read", "sniff"]

FORMAT = "spm"
#: ``.spm`` and the numbered captures Nanoscope writes (``name.001`` ... ``name.999``).
SUFFIXES = (".spm", *(f".{i:03d}" for i in range(1000)))
EXTRA = None

_MAGICS = (b"\\*File list", b"\\*EC File list", b"?*File list")
_HEADER_END = b"\\*File list end"
_MAX_HEADER = 1 << 20
_SCALE = re.compile(r"^\s*\w+\s*(?:\[(?P<sens>[^\]]*)\])?\s*(?:\([^)]*\))?\s*(?P<v>[-+\d.eE]+)")
_GROUP_KEY = re.compile(r"^(@\d+:[^:]+):(.*)$")
_NAME = re.compile(r'\[(?P<tag>[^\]]*)\]\s*"(?P<name>[^"]*)"')
_LENGTH_M = {"pm": 1e-12, "nm": 1e-9, "um": 1e-6, "~m": 1e-6, "µm": 1e-6, "mm": 1e-3, "m": 1.0}


def sniff(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts a Nanoscope header.

    >>> sniff(b"\\\\*File list\\r\\n\\\\Version: 0x09200000\\r\\n")
    True
    >>> sniff(b"GWYP")
    False
    """
    return head.startswith(_MAGICS)


def _header(path: Path, blob: bytes) -> list[tuple[str, dict[str, str]]]:
    end = blob.find(_HEADER_END, 0, _MAX_HEADER)
    if end < 0:
        raise ReaderError(path, "Nanoscope header has no '\\*File list end' (truncated)")
    sections: list[tuple[str, dict[str, str]]] = []
    for line in blob[:end].decode("latin-1").splitlines():
        line = line.strip().lstrip("\\")
        if line.startswith("*"):
            sections.append((line[1:].strip(), {}))
        elif ":" in line and sections:
            m = _GROUP_KEY.match(line)  # "@2:Z scale: V ..." keeps its "@2:" group prefix
            key, value = m.groups() if m else line.split(":", 1)
            sections[-1][1].setdefault(key.strip(), value.strip())
    return sections


def _number(path: Path, text: str | None, what: str) -> float:
    try:
        return float(str(text).split()[0])
    except (ValueError, IndexError):
        raise ReaderError(path, f"Nanoscope header: bad or missing {what} ({text!r})") from None


def _scan_size(text: str | None) -> list[float] | None:
    if not text:
        return None
    parts = text.replace("\xb5", "u").split()
    unit = parts[-1] if parts and not re.match(r"^[-+\d.]", parts[-1]) else "nm"
    nums = [float(p) for p in parts if re.match(r"^[-+\d.eE]+$", p)]
    if not nums or unit not in _LENGTH_M:
        return None
    x, y = (nums[0], nums[1]) if len(nums) > 1 else (nums[0], nums[0])
    return [x * _LENGTH_M[unit], y * _LENGTH_M[unit]]


def _date(text: str | None) -> str | None:
    if not text:
        return None
    for fmt in ("%I:%M:%S %p %a %b %d %Y", "%H:%M:%S %a %b %d %Y", "%I:%M:%S %p %b %d %Y"):
        try:
            return datetime.strptime(" ".join(text.split()), fmt).isoformat()
        except ValueError:
            continue
    return None


def read(path: Path, max_pixels: int | None = None) -> Scan:
    """Read a Nanoscope file: every ``Ciao image list`` section as one channel.

    Raises
    ------
    ReaderError
        Header without its end, a channel whose data runs past the end of the file, an
        unknown pixel size, or no image sections.
    """
    path = Path(path)
    blob = path.read_bytes()
    sections = _header(path, blob)
    glob: dict[str, str] = {}  # first value of each key outside the image sections
    raw: dict[str, str] = {}
    seen: dict[str, int] = {}
    for title, keys in sections:
        seen[title] = seen.get(title, 0) + 1
        label = title if seen[title] == 1 else f"{title} {seen[title]}"
        raw.update({f"{label}/{k}": v for k, v in keys.items()})
        if title != "Ciao image list":
            for k, v in keys.items():
                glob.setdefault(k, v)
    images = [keys for title, keys in sections if title == "Ciao image list"]
    if not images:
        raise ReaderError(path, "Nanoscope header has no image sections ('\\*Ciao image list')")

    found: list[tuple[str, str, np.ndarray, str]] = []  # name, direction, data, unit
    for i, im in enumerate(images):
        name_match = _NAME.search(im.get("@2:Image Data", "") or im.get("Image data", ""))
        name = clean_name(name_match["name"] if name_match else im.get("Image data", f"ch{i}"))
        offset = int(_number(path, im.get("Data offset"), "Data offset"))
        nx = int(_number(path, im.get("Samps/line"), "Samps/line"))
        ny = int(_number(path, im.get("Number of lines"), "Number of lines"))
        length = int(_number(path, im.get("Data length"), "Data length"))
        bpp = int(_number(path, im.get("Bytes/pixel", length // max(nx * ny, 1)), "Bytes/pixel"))
        if bpp not in (2, 4) or nx < 1 or ny < 1:
            raise ReaderError(path, f"channel {name!r}: unsupported layout ({nx}x{ny} px, "
                                    f"{bpp} bytes/pixel)")  # fmt: skip
        check_pixels(path, (ny, nx), max_pixels, f"channel {name!r}")
        if offset + nx * ny * bpp > len(blob):
            raise ReaderError(path, f"channel {name!r}: {nx}x{ny} px at byte {offset} run past "
                                    f"the end of the file ({len(blob)} bytes): truncated")  # fmt: skip
        ints = np.frombuffer(blob, dtype=f"<i{bpp}", count=nx * ny, offset=offset)
        data = ints.reshape(ny, nx)[::-1].astype(np.float64)  # bottom line first on disk
        vx, vy = im.get("Valid data len X"), im.get("Valid data len Y")
        if vx and vy:
            data = data[: int(_number(path, vy, "Valid data len Y")),
                        : int(_number(path, vx, "Valid data len X"))]  # fmt: skip
        scale = _SCALE.match(im.get("@2:Z scale", "") or "")
        unit, factor = "V", 1.0
        if scale:
            factor = float(scale["v"]) / 256.0**bpp
            sens_key = (scale["sens"] or "").strip()
            sens = glob.get(f"@{sens_key}") if sens_key else None
            sm = _SCALE.match(sens or "")
            if sm:
                factor *= float(sm["v"])
                tail = sens.split()[-1] if len(sens.split()) > 2 else ""
                unit = tail.removesuffix("/V") or "V"
        if unit in _LENGTH_M:
            factor, unit = factor * _LENGTH_M[unit], "m"
        found.append((name, (im.get("Line Direction") or "").lower(), data * factor, unit))
    names = [f[0] for f in found]
    channels = [Channel(f"{n}_{d}" if d and names.count(n) > 1 else n, data, unit)
                for n, d, data, unit in found]  # fmt: skip

    size_text = images[0].get("Scan Size") or glob.get("Scan Size") or glob.get("Scan size")
    meta = dict.fromkeys(METADATA_KEYS)
    model = glob.get("Description") or glob.get("Microscope")
    meta.update({
        "instrument": f"Bruker {model}".strip() if model else "Bruker",
        "scan_size_m": _scan_size(size_text),
        "date": _date(glob.get("Date")),
        "imaging_mode": glob.get("Operating mode") or glob.get("Feedback type")
        or images[0].get("Operating mode"),
        "drive_frequency_hz": _drive(glob.get("Drive frequency")),
        "sample": glob.get("Sample") or None,
    })  # fmt: skip
    return Scan(path=path, format=FORMAT, channels=channels, metadata=meta, raw=raw)


def _drive(text: str | None) -> float | None:
    try:
        return float(text.split()[0]) if text else None
    except ValueError:
        return None
