"""TIFF and OME-TIFF (``tifffile``): one channel per page or per OME channel.

RGB(A) images become one ``intensity`` channel (the mean of the colour channels): colour
in a microscope TIFF is a rendering, not a measurement. Scan size comes from OME
``PhysicalSizeX/Y`` when present; the date from the ``DateTime`` tag.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np

from sarise.io._base import Channel, ReaderError, Scan, check_pixels

FORMAT = "tiff"
SUFFIXES = (".tif", ".tiff")
EXTRA = "tifffile"

_UNITS = {"m": 1.0, "mm": 1e-3, "µm": 1e-6, "um": 1e-6, "nm": 1e-9, "pm": 1e-12, "Å": 1e-10}


def sniff(head: bytes) -> bool:
    """Classic or BigTIFF, either byte order."""
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def read(path: Path, max_pixels: int | None = None) -> Scan:
    """Read a TIFF's images as channels ``data[y, x]``."""
    try:
        import tifffile
    except ImportError:
        raise ReaderError(path, "reading TIFF needs tifffile: pip install tifffile") from None
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            spatial = series.shape[-3:-1] if series.axes.endswith("S") else series.shape[-2:]
            if len(spatial) == 2:
                check_pixels(path, spatial, max_pixels)
            data = np.asarray(series.asarray())
            axes = series.axes
            page = tif.pages[0]
            raw = {t.name: _plain(t.value) for t in page.tags.values() if _small(t.value)}
            ome = tif.ome_metadata
    except ReaderError:
        raise
    except Exception as exc:
        raise ReaderError(path, f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    channels = _channels(path, data, axes)
    meta = {"instrument": None, "scan_size_m": None, "date": _date(raw.get("DateTime"))}
    if ome:
        raw["ome_metadata"] = ome[:20000]
        meta["scan_size_m"] = _ome_size(ome, channels[0].data.shape)
        names = re.findall(r'<Channel\b[^>]*\bName="([^"]*)"', ome)
        if len(names) == len(channels):
            for c, name in zip(channels, names, strict=True):
                c.name = name or c.name
    return Scan(path=path, format=FORMAT, channels=channels, metadata=meta, raw=raw)


def _channels(path: Path, data: np.ndarray, axes: str) -> list[Channel]:
    if data.ndim < 2 or 0 in data.shape:
        raise ReaderError(path, f"no 2-D image in the TIFF (shape {data.shape})")
    if axes.endswith("S") and data.shape[-1] in (3, 4):  # samples per pixel: colour
        data = data[..., :3].astype(np.float64).mean(axis=-1)
        axes = axes[:-1]
        names = ["intensity"]
    else:
        names = None
    if data.ndim == 2:
        return [Channel(names[0] if names else "channel_0", data.astype(np.float64))]
    stack = data.reshape(-1, *data.shape[-2:])
    return [Channel(f"channel_{i}", a.astype(np.float64)) for i, a in enumerate(stack)]


def _small(value) -> bool:
    return isinstance(value, str | int | float) or (
        isinstance(value, tuple | bytes) and len(value) <= 64
    )


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, str | int | float) else str(value)


def _date(value) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.strptime(value.strip()[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except ValueError:
        return None


def _ome_size(ome: str, shape: tuple[int, int]) -> list[float] | None:
    sizes = []
    for axis, n in (("X", shape[1]), ("Y", shape[0])):
        m = re.search(rf'PhysicalSize{axis}="([0-9.eE+-]+)"', ome)
        u = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', ome)
        scale = _UNITS.get(u.group(1) if u else "µm")
        if not m or scale is None:
            return None
        sizes.append(float(m.group(1)) * scale * n)
    return sizes
