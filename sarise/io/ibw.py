"""Asylum Research Igor binary wave (``.ibw``) images, read with ``igor2``.

An Asylum image is one Igor wave ``wave[x][y][channel]``: Igor's dimension 0 (the fast-scan
axis, x) varies fastest, dimension 1 is the slow-scan axis (y) and dimension 2 the channel.
Asylum stores slow-scan line 0 at the *bottom* of the image (note: ``BottomLine: 0``,
``TopLine: 255``; Igor plots y upwards). Each channel is returned as ``data[y, x]`` with rows
top to bottom, i.e. ``np.flipud(wave[:, :, k].T)``: shape ``(ScanLines, ScanPoints)``.

Channel names come from the layer dimension labels, read from the raw label block (32-byte
C strings): ``igor2`` drops the NUL inside each field, so a label like
``PhaseRetrace\\x00race`` would come back as ``PhaseRetracerace``. The wave note holds the
Asylum parameters as ``key: value`` lines; all of them go to ``Scan.raw`` and the usual ones
(ScanSize, Date, Time, BaseName, ImagingMode, DriveFrequency) are normalised by
:func:`asylum_metadata`, which the HDF5 reader shares. A wave without a note (e.g. one
re-exported by Gwyddion) gets ``instrument`` None and no metadata: nothing in it says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import math
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sarise.io._base import Channel, ReaderError, Scan, check_pixels, clean_name

__all__ = ["EXTRA", "FORMAT", "SUFFIXES", "asylum_metadata", "asylum_unit", "read", "sniff"]

FORMAT = "ibw"
SUFFIXES = (".ibw",)
EXTRA = "igor2"

_VERSIONS = (1, 2, 3, 5)
_BIN_HEADER5 = 64  # bytes of BinHeader5; WaveHeader5 and the data follow (wfmSize)
_LABEL = 32  # bytes per dimension label (a C string)
#: Asylum ``ImagingMode`` codes seen with their names in these notes (``Initial ImagingMode``).
_MODES = {1: "AC Mode", 3: "PFM Mode"}
_DATE_FORMATS = ("%Y-%m-%d", "%a, %b %d, %Y", "%b %d, %Y", "%m/%d/%Y", "%d.%m.%Y")
_TIME_FORMATS = ("%I:%M:%S %p", "%H:%M:%S", "%I:%M %p", "%H:%M")


def sniff(head: bytes) -> bool:
    """True when the first two bytes are an IBW version (1, 2, 3 or 5), either byte order.

    >>> sniff(b"\\x05\\x00rest"), sniff(b"\\x00\\x05"), sniff(b"\\x89HDF")
    (True, True, False)
    """
    if len(head) < 2:
        return False
    return any(struct.unpack(order + "h", head[:2])[0] in _VERSIONS for order in "<>")


def read(path: Path, max_pixels: int | None = None) -> Scan:
    """Read an Asylum ``.ibw`` image: its channels ``data[y, x]`` and its note.

    Parameters
    ----------
    path
        The ``.ibw`` file.

    Returns
    -------
    Scan
        One :class:`Channel` per layer; ``raw`` holds every ``key: value`` note line.

    Raises
    ------
    ReaderError
        igor2 missing, or the file is not a complete 2-D/3-D Igor image wave.
    """
    path = Path(path)
    try:
        from igor2 import binarywave
    except ImportError:
        raise ReaderError(path, "reading .ibw needs igor2: pip install igor2") from None
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ReaderError(path, f"cannot open: {exc.strerror or exc}") from None
    if not sniff(blob[:2]):
        raise ReaderError(path, f"not an Igor binary wave (first bytes {blob[:8]!r})")
    try:
        with _quiet_igor2():
            loaded = binarywave.load(io.BytesIO(blob))
    except Exception as exc:
        raise ReaderError(path, f"not a readable .ibw ({_brief(exc)})") from None
    try:
        return _scan(path, loaded, blob, max_pixels)
    except ReaderError:
        raise
    except Exception as exc:  # a header igor2 accepted but this reader cannot use
        raise ReaderError(path, f"malformed .ibw ({_brief(exc)})") from None


@contextlib.contextmanager
def _quiet_igor2() -> Iterator[None]:
    """Silence igor2's error logs (it logs whole data buffers) while it parses a bad file."""
    loggers = [logging.getLogger(f"igor2.{name}") for name in ("binarywave", "struct")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _brief(exc: Exception) -> str:
    """An exception as ``Type: message``, cut to 200 characters."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."


def _scan(
    path: Path, loaded: Mapping[str, Any], blob: bytes, max_pixels: int | None = None
) -> Scan:
    """Build the :class:`Scan` from igor2's parse and the raw file bytes."""
    if loaded.get("version") != 5:
        raise ReaderError(path, f"IBW version {loaded.get('version')}: images need version 5")
    wave = loaded["wave"]
    _check_size(path, wave["bin_header"], len(blob))
    stack = _stack(path, np.asarray(wave["wData"]))
    check_pixels(path, stack.shape[1::-1], max_pixels)
    raw = parse_note(wave.get("note") or b"")
    names = _names(path, wave, blob, stack.shape[2])
    wave_unit = _text(wave["wave_header"].get("dataUnits", b""))
    channels = []
    for k, name in enumerate(names):
        data = np.flipud(stack[:, :, k].T).astype(np.float64)
        channels.append(Channel(name, data, asylum_unit(name, data, raw, wave_unit)))
    return Scan(path, FORMAT, channels, asylum_metadata(raw, instrument=bool(raw)), raw)


def _check_size(path: Path, header: Mapping[str, Any], size: int) -> None:
    """Raise when the file is shorter than its BinHeader5 says (truncated)."""
    parts = ("wfmSize", "formulaSize", "noteSize", "dataEUnitsSize", "sIndicesSize")
    need = _BIN_HEADER5 + sum(int(header[p]) for p in parts)
    need += int(np.sum(header["dimEUnitsSize"])) + int(np.sum(header["dimLabelsSize"]))
    if size < need:
        raise ReaderError(path, f"truncated .ibw: {size} bytes, header says {need}")


def _stack(path: Path, data: np.ndarray) -> np.ndarray:
    """The wave as ``[x, y, channel]`` (a 2-D wave is one channel)."""
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3 or min(data.shape[:2]) < 2 or data.shape[2] < 1:
        raise ReaderError(path, f"not an image wave: data shape {data.shape} (need x, y[, ch])")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ReaderError(path, f"not a real-valued image wave (dtype {data.dtype})")
    return data


def _names(path: Path, wave: Mapping[str, Any], blob: bytes, count: int) -> list[str]:
    """Channel names from the layer labels; ``channel_<k>`` (or the wave name) where missing."""
    labels = _raw_labels(wave["bin_header"], blob, dim=2)
    if len(labels) == count + 1:  # Igor: label -1 names the dimension as a whole
        labels = labels[1:]
    if count == 1 and not any(labels):
        return [clean_name(wave["wave_header"].get("bname", b"")) or "channel_0"]
    return [labels[k] if k < len(labels) and labels[k] else f"channel_{k}" for k in range(count)]


def _raw_labels(header: Mapping[str, Any], blob: bytes, dim: int) -> list[str]:
    """The cleaned 32-byte dimension labels of one dimension, straight from the file."""
    start = _BIN_HEADER5 + int(header["wfmSize"]) + int(header["formulaSize"])
    start += int(header["noteSize"]) + int(header["dataEUnitsSize"])
    start += int(np.sum(header["dimEUnitsSize"]))
    sizes = [int(s) for s in header["dimLabelsSize"]]
    start += sum(sizes[:dim])
    block = blob[start : start + sizes[dim]]
    return [clean_name(block[i : i + _LABEL]) for i in range(0, len(block), _LABEL)]


def _text(value: Any) -> str:
    """Igor bytes (or an array of them) as one cleaned string."""
    if isinstance(value, np.ndarray):
        value = b"".join(v if isinstance(v, bytes) else bytes(v) for v in value.ravel())
    if isinstance(value, bytes):
        return _decode(value).split("\x00", 1)[0].strip()
    return str(value).strip()


def _decode(data: bytes) -> str:
    """UTF-8 where valid, else Latin-1 (old Asylum notes write the degree sign as 0xB0)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_note(note: bytes | str) -> dict[str, str]:
    """Every ``key: value`` line of an Asylum wave note (keys and values stripped).

    A later line with the same key wins. Lines without a colon are skipped.

    >>> parse_note(b"ScanSize: 2e-06\\rImagingMode:AC Mode\\rjunk\\rDate: ")
    {'ScanSize': '2e-06', 'ImagingMode': 'AC Mode', 'Date': ''}
    """
    text = _decode(note) if isinstance(note, bytes) else note
    raw: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            raw[key.strip()] = value.strip()
    return raw


def asylum_unit(name: str, data: np.ndarray, meta: Mapping[str, Any], hint: str = "") -> str:
    """The unit of an Asylum channel, from its name (``Nap`` and ``Retrace`` stripped).

    Height and ZSensor are metres and Phase degrees. Amplitude and Deflection are metres when
    the values are displacements (all below 1e-3; Asylum applies the InvOLS) and volts
    otherwise. UserIn/Lateral inputs take the note's ``<input>Unit``. Anything else gets
    ``hint`` (the file's own unit), which may be empty.

    >>> asylum_unit("NapPhaseRetrace", np.zeros((2, 2)), {}, "m")
    'deg'
    """
    base = name.removeprefix("Nap")
    for suffix in ("Retrace", "Trace"):
        base = base.removesuffix(suffix)
    if base in ("Height", "ZSensor"):
        return "m"
    if base == "Phase":
        return "deg"
    if base in ("Amplitude", "Deflection"):
        finite = data[np.isfinite(data)]
        return "m" if finite.size and float(np.abs(finite).max()) < 1e-3 else "V"
    if base.startswith(("UserIn", "Lateral")):
        return str(meta.get(f"{base}Unit", "") or "").strip()
    return hint


def asylum_metadata(raw: Mapping[str, Any], instrument: bool) -> dict[str, Any]:
    """Normalised metadata (:data:`~sarise.io._base.METADATA_KEYS`) from Asylum parameters.

    Parameters
    ----------
    raw
        Asylum ``key: value`` parameters (note strings or HDF5 attribute values).
    instrument
        Whether the parameters are Asylum's (sets ``instrument``).

    >>> m = asylum_metadata({"ScanSize": "2e-06", "Date": "2021-01-07", "Time": "5:18:38 PM"},
    ...                     instrument=True)
    >>> m["scan_size_m"], m["date"]
    ([2e-06, 2e-06], '2021-01-07T17:18:38')
    """
    return {
        "instrument": "Asylum Research" if instrument else None,
        "scan_size_m": _scan_size(raw),
        "date": _iso_date(raw.get("Date"), raw.get("Time")),
        "material": None,  # Asylum files do not say; a sidecar does
        "sample": sample_name(raw.get("BaseName")),
        "imaging_mode": _imaging_mode(raw.get("ImagingMode")),
        "drive_frequency_hz": _number(raw.get("DriveFrequency")),
    }


def sample_name(base: Any) -> str | None:
    """Asylum's ``BaseName`` (the save-file prefix an operator types, usually the sample's
    name, e.g. ``PZT_final``, ``pm2c_441_``) as a sample name: trailing separators cut.

    >>> sample_name("pm2c_441_"), sample_name(""), sample_name(None)
    ('pm2c_441', None, None)
    """
    name = _string(base)
    name = name.strip().rstrip("_-. ") if name else None
    return name or None


def _number(value: Any) -> float | None:
    """A finite float, or None (empty, NaN, not a number)."""
    try:
        number = float(str(value).strip()) if isinstance(value, str | bytes) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _string(value: Any) -> str | None:
    """A non-empty stripped string, or None."""
    if value is None:
        return None
    text = _decode(value) if isinstance(value, bytes) else str(value)
    return text.strip() or None


def _scan_size(raw: Mapping[str, Any]) -> list[float] | None:
    """``[x, y]`` in metres from Fast/SlowScanSize, else the square ScanSize; None if empty."""
    fast, slow = _number(raw.get("FastScanSize")), _number(raw.get("SlowScanSize"))
    if fast and slow and fast > 0 and slow > 0:
        return [fast, slow]
    size = _number(raw.get("ScanSize"))
    return [size, size] if size and size > 0 else None


def _imaging_mode(value: Any) -> str | None:
    """The imaging mode name; old notes store a code (1 AC Mode, 3 PFM Mode)."""
    text = _string(value)
    if text is None:
        return None
    number = _number(text)
    if number is not None and number.is_integer():
        return _MODES.get(int(number), f"mode {int(number)}")
    return text


def _iso_date(date: Any, time: Any = None) -> str | None:
    """ISO 8601 from an Asylum ``Date`` (and ``Time``); None when empty or unparsable."""
    date_text, time_text = _string(date), _string(time)
    if date_text is None:
        return None
    day = _parse(date_text, _DATE_FORMATS)
    if day is None:
        return None
    clock = _parse(time_text, _TIME_FORMATS) if time_text else None
    if clock is None:
        return day.date().isoformat()
    return dt.datetime.combine(day.date(), clock.time()).isoformat()


def _parse(text: str, formats: tuple[str, ...]) -> dt.datetime | None:
    """The first format that parses ``text``, or None."""
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None
