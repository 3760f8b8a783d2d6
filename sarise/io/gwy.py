"""Gwyddion ``.gwy`` reader (GWYP, Gwyddion 2.x), built on the optional ``gwyfile`` package.

Channels
--------
One :class:`~sarise.io._base.Channel` per data field (``/N/data``), in channel-number order,
named by its ``/N/data/title`` (cut at a NUL and stripped; ``channel<N>`` when empty) with
the unit ``si_unit_z``. Values are float64 as Gwyddion stores them, row 0 at the top.

Metadata
--------
``instrument`` is "Gwyddion": it names the file format, not the microscope that recorded the
data, which is unknown unless the metadata says so (the raw ``/N/meta`` containers often
hold the original instrument's keys, e.g. Asylum ``MicroscopeModel``). ``scan_size_m`` is
``[xreal, yreal]`` of the first channel when its ``si_unit_xy`` is "m" (None otherwise).
When the ``/N/meta`` containers hold Asylum Research keys (``Date``, ``Time``,
``ImagingMode``, ``DriveFrequency``, ``BaseName``), they fill ``date``, ``imaging_mode``,
``drive_frequency_hz`` and ``sample``; otherwise those stay None. ``raw`` holds
``titles`` (channel number -> title), per-channel ``sizes``, ``filename`` and every
``/N/meta`` container as a plain ``dict`` of strings.

The old Gwyddion 1.x format (magic ``GWYO``) is rejected with a :class:`ReaderError`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from sarise.io._base import METADATA_KEYS, Channel, ReaderError, Scan, check_pixels, clean_name
from sarise.io.ibw import sample_name

__all__ = ["EXTRA", "FORMAT", "SUFFIXES", "read", "sniff"]

FORMAT = "gwy"
SUFFIXES = (".gwy",)
EXTRA = "gwyfile"

_MAGIC = b"GWYP"
_OLD_MAGIC = b"GWYO"


def sniff(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) is a Gwyddion 2.x ``.gwy`` file.

    >>> sniff(b"GWYPGwyContainer")
    True
    >>> sniff(b"GWYO")
    False
    """
    return head.startswith(_MAGIC)


def read(path: Path, max_pixels: int | None = None) -> Scan:
    """Read a Gwyddion ``.gwy`` file.

    Parameters
    ----------
    path
        The ``.gwy`` file (GWYP format).

    Returns
    -------
    Scan
        One channel per data field, with normalised and raw metadata (see the module
        docstring).

    Raises
    ------
    ReaderError
        For any failure: unreadable file, old GWYO format, ``gwyfile`` not installed,
        a file ``gwyfile`` cannot parse, no data fields, malformed data fields.
    """
    path = Path(path)
    try:
        return _read(path, max_pixels)
    except ReaderError:
        raise
    except Exception as exc:  # any other failure is still a reader failure
        raise ReaderError(path, f"cannot read .gwy: {type(exc).__name__}: {exc}") from exc


def _read(path: Path, max_pixels: int | None = None) -> Scan:
    _check_magic(path)
    obj = _load(path)
    numbered = _datafields(path, obj)
    channels = [
        _channel(path, number, title, field, max_pixels) for number, title, field in numbered
    ]
    raw = _raw(obj, numbered)
    return Scan(path, FORMAT, channels, _metadata(raw, numbered[0][2]), raw)


def _check_magic(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise ReaderError(path, f"cannot open file: {exc.strerror or exc}") from exc
    if not head:
        raise ReaderError(path, "empty file (0 bytes)")
    if head == _OLD_MAGIC:
        raise ReaderError(path, "old Gwyddion 1.x format (GWYO) is not supported")
    if head != _MAGIC:
        raise ReaderError(path, f"not a Gwyddion .gwy file (starts with {head!r}, not b'GWYP')")


def _load(path: Path) -> Any:
    """The file's top-level ``GwyContainer``."""
    try:
        import gwyfile
    except ImportError as exc:
        raise ReaderError(
            path, "reading .gwy needs the gwyfile package: pip install gwyfile"
        ) from exc
    try:
        return gwyfile.load(str(path))
    except Exception as exc:  # gwyfile raises AssertionError, ValueError, struct.error, ...
        detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise ReaderError(path, f"gwyfile cannot parse the file (truncated?): {detail}") from exc


def _datafields(path: Path, obj: Any) -> list[tuple[int, str, Any]]:
    """``(number, title, GwyDataField)`` for every ``/N/data`` with a title, sorted by N.

    Walks the numbers rather than using ``gwyfile.util.get_datafields`` (a dict keyed by
    title) so that two channels with the same title are both kept.
    """
    from gwyfile.util import find_datafields

    numbered = sorted((int(n), str(t), obj[f"/{n}/data"]) for n, t in find_datafields(obj))
    if not numbered:
        raise ReaderError(path, "no data fields (/N/data) in the file")
    return numbered


def _channel(
    path: Path, number: int, title: str, field: Any, max_pixels: int | None = None
) -> Channel:
    expected = (field.get("yres"), field.get("xres"))
    if None not in expected:
        check_pixels(path, expected, max_pixels, f"channel {number} ({title!r})")
    data = np.asarray(field.data, dtype=np.float64)
    if data.ndim != 2 or data.shape != expected:
        raise ReaderError(
            path, f"channel {number} ({title!r}): data shape {data.shape} != yres, xres {expected}"
        )
    return Channel(clean_name(title) or f"channel{number}", data, _unit(field, "si_unit_z"))


def _unit(field: Any, key: str) -> str:
    unit = field.get(key)
    return str(unit.get("unitstr", "")) if unit is not None else ""


def _raw(obj: Any, numbered: list[tuple[int, str, Any]]) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "titles": {n: title for n, title, _ in numbered},
        "sizes": {
            n: {"xreal": f.get("xreal"), "yreal": f.get("yreal"), "unit": _unit(f, "si_unit_xy")}
            for n, _, f in numbered
        },
    }
    if "/filename" in obj:
        raw["filename"] = str(obj["/filename"])
    for key in sorted(k for k in obj if k.endswith("/meta")):
        raw[key] = {str(k): str(v) for k, v in obj[key].items()}
    return raw


def _metadata(raw: dict[str, Any], first: Any) -> dict[str, Any]:
    meta: dict[str, Any] = dict.fromkeys(METADATA_KEYS)
    meta["instrument"] = "Gwyddion"
    if _unit(first, "si_unit_xy") == "m":
        meta["scan_size_m"] = [float(first.get("xreal")), float(first.get("yreal"))]
    asylum = _merged_meta(raw)
    meta["date"] = _iso_date(asylum.get("Date"), asylum.get("Time"))
    meta["imaging_mode"] = asylum.get("ImagingMode") or None
    meta["drive_frequency_hz"] = _float(asylum.get("DriveFrequency"))
    meta["sample"] = sample_name(asylum.get("BaseName"))
    return meta


def _merged_meta(raw: dict[str, Any]) -> dict[str, str]:
    """All ``/N/meta`` containers merged, lower channel numbers winning."""
    merged: dict[str, str] = {}
    for key in sorted((k for k in raw if k.endswith("/meta")), reverse=True):
        merged.update(raw[key])
    return merged


def _float(text: str | None) -> float | None:
    """``text`` as a float, or None.

    >>> _float("434321.97"), _float("NaN"), _float(None)
    (434321.97, None, None)
    """
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _iso_date(date: str | None, time: str | None) -> str | None:
    """ISO 8601 from an Asylum ``Date`` (yyyy-mm-dd) and ``Time`` (hh:mm:ss AM/PM), or None.

    >>> _iso_date("2023-12-20", "11:44:03 AM")
    '2023-12-20T11:44:03'
    >>> _iso_date("2023-12-20", ""), _iso_date("", "11:44:03 AM")
    ('2023-12-20', None)
    """
    try:
        day = datetime.strptime((date or "").strip(), "%Y-%m-%d").date()
    except ValueError:
        return None
    for fmt in ("%I:%M:%S %p", "%H:%M:%S"):
        try:
            clock = datetime.strptime((time or "").strip(), fmt).time()
        except ValueError:
            continue
        return datetime.combine(day, clock).isoformat()
    return day.isoformat()
