"""Preprocessing of microscope channels before the model sees them.

Small functions on 2-D float arrays (``data[y, x]``), composed by ingest in this order:
:func:`plane_flatten` and/or :func:`line_flatten`, :func:`clip_percentiles`,
:func:`scale_unit`, then :func:`fit_square` (crop or pad, the aspect ratio kept: a
distorting resize would change the lattice angles), :func:`tiles`, or :func:`fit_cells`
(the scale chosen from the image's own lattice), and
:func:`thumbnail` for the viewer. NaN pixels (incomplete scans) are ignored by the fits
and statistics and set to the image's median before scaling.
"""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = [
    "SPM_FORMATS",
    "FlatImageError",
    "auto_flatten",
    "check_contrast",
    "check_values",
    "clip_percentiles",
    "fill_nan",
    "fit_cells",
    "fit_square",
    "line_flatten",
    "plane_flatten",
    "scale_unit",
    "thumbnail",
    "tiles",
]


#: Formats written by scanning-probe instruments (raster scans, line by line).
SPM_FORMATS = frozenset({"ibw", "sxm", "gwy", "spm", "hdf5"})

_TOPOGRAPHY = re.compile(r"height|topo|^z(?![a-z])|z[ _-]?sensor|z[ _-]?piezo", re.IGNORECASE)
#: Signals that are never topography, whatever their unit (an oscillation amplitude is
#: in metres too).
_NOT_TOPOGRAPHY = re.compile(
    r"amp|phase|current|freq|excitation|deflection|error|bias|dissipation|lateral|friction|"
    r"potential|intensity|haadf|adf|counts|signal|drive|channel_",
    re.IGNORECASE,
)
_LENGTH_UNITS = {"m", "mm", "um", "µm", "μm", "nm", "pm", "a", "å", "angstrom"}


def auto_flatten(fmt: str, channel: str, unit: str = "") -> str:
    """The background removal ``ingest.flatten: auto`` applies to one channel.

    Levelling removes the tilt and the line-to-line offsets a probe's height signal
    carries, but in any other signal it removes real contrast (an atomic lattice's rows in
    a current or HAADF image). So only topography is levelled: a channel named like
    height (``Height``, ``Topography``, ``Z``, ``ZSensor``) or measured in a length unit.
    Topography from a scanning-probe format (:data:`SPM_FORMATS`) gets ``line`` (each
    scan line's own fit), from any other format ``plane``; everything else (phase,
    amplitude, current, deflection, frequency shift, STEM/TEM and optical intensities)
    gets ``none``; a signal named like amplitude, phase, current, frequency, deflection,
    bias or intensity is never levelled, whatever its unit.

    >>> auto_flatten("ibw", "HeightRetrace"), auto_flatten("ibw", "Phase1Retrace")
    ('line', 'none')
    >>> auto_flatten("sxm", "Z", "m"), auto_flatten("sxm", "Current", "A")
    ('line', 'none')
    >>> auto_flatten("tiff", "Height", "nm"), auto_flatten("image", "intensity")
    ('plane', 'none')
    >>> auto_flatten("sxm", "OC_D1_Amplitude_fwd", "m")  # an oscillation amplitude, in m
    'none'

    """
    length = unit.strip().lower() in _LENGTH_UNITS
    if _NOT_TOPOGRAPHY.search(channel) or not (_TOPOGRAPHY.search(channel) or length):
        return "none"
    return "line" if fmt in SPM_FORMATS else "plane"


class FlatImageError(ValueError):
    """A channel without contrast (constant, or contrast at rounding level only)."""


def check_values(image: np.ndarray, max_nonfinite: float = 0.5) -> np.ndarray:
    """The channel as float64 with every non-finite pixel (NaN, +-inf) set to NaN, which the
    fits and statistics below ignore; values of extreme magnitude are rescaled first, so
    that no fit overflows.

    Raises
    ------
    ValueError
        More than ``max_nonfinite`` of the pixels are not finite.
    FlatImageError
        The finite values span no more than rounding (a constant channel, e.g. the Z of a
        scan taken with the feedback off): stretching it to [0, 1] would store noise.

    >>> check_values(np.array([[1.0, np.inf], [3.0, 4.0]])).tolist()
    [[1.0, nan], [3.0, 4.0]]
    """
    a = np.array(image, dtype=np.float64)
    ok = np.isfinite(a)
    bad = 1.0 - ok.mean() if a.size else 1.0
    if bad > max_nonfinite:
        raise ValueError(f"{100 * bad:.0f}% of the pixels are not finite (NaN or infinite)")
    a[~ok] = np.nan
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    scale = max(abs(lo), abs(hi))
    if hi - lo <= 1e-9 * scale or hi == lo:
        raise FlatImageError(f"flat channel: no contrast (every value {lo:.6g})")
    if scale > 1e100 or scale < 1e-100:
        a /= scale
    return a


def check_contrast(raw: np.ndarray, levelled: np.ndarray) -> None:
    """Refuse a channel whose levelled contrast is rounding noise of its raw values (a
    perfect plane, or a constant offset per line)."""
    scale = float(np.nanmax(np.abs(raw)))
    spread = float(np.nanmax(levelled) - np.nanmin(levelled))
    if not spread > 1e-9 * scale:
        raise FlatImageError("flat channel: no contrast left after levelling (a plane or "
                             "per-line offsets only)")  # fmt: skip


def plane_flatten(image: np.ndarray) -> np.ndarray:
    """Subtract the least-squares plane ``a + b·x + c·y`` (sample tilt).

    >>> y, x = np.mgrid[0:4, 0:5]
    >>> bool(np.abs(plane_flatten(2.0 + 0.5 * x - 0.25 * y)).max() < 1e-12)
    True
    """
    a = np.asarray(image, dtype=np.float64)
    yy, xx = np.mgrid[0 : a.shape[0], 0 : a.shape[1]]
    ok = np.isfinite(a)
    if ok.sum() < 3:
        return a - np.nanmean(a) if ok.any() else a.copy()
    design = np.stack([np.ones(ok.sum()), xx[ok], yy[ok]], axis=1)
    coef, *_ = np.linalg.lstsq(design, a[ok], rcond=None)
    return a - (coef[0] + coef[1] * xx + coef[2] * yy)


def line_flatten(image: np.ndarray, order: int = 1) -> np.ndarray:
    """Subtract from each scan line (row) its own polynomial fit of ``order`` (0: median).

    Removes the line-to-line offsets and slopes of a raster scan.

    >>> img = np.arange(3.0)[:, None] * 10 + np.zeros((3, 4))
    >>> float(np.abs(line_flatten(img, order=0)).max())
    0.0
    """
    a = np.asarray(image, dtype=np.float64).copy()
    x = np.arange(a.shape[1], dtype=np.float64)
    for row in a:
        ok = np.isfinite(row)
        if order == 0 or ok.sum() <= order:
            if ok.any():
                row -= np.median(row[ok])
            continue
        row -= np.polyval(np.polyfit(x[ok], row[ok], order), x)
    return a


def clip_percentiles(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Clip to the ``low`` and ``high`` percentiles (outliers: spikes, dust, tip changes)."""
    a = np.asarray(image, dtype=np.float64)
    if not np.isfinite(a).any():
        return a.copy()
    lo, hi = np.nanpercentile(a, [low, high])
    return np.clip(a, lo, hi)


def fill_nan(image: np.ndarray) -> np.ndarray:
    """Replace NaN and infinite pixels by the median of the finite ones (0 if none)."""
    a = np.asarray(image, dtype=np.float64)
    ok = np.isfinite(a)
    if ok.all():
        return a.copy()
    return np.where(ok, a, np.median(a[ok]) if ok.any() else 0.0)


def scale_unit(image: np.ndarray) -> np.ndarray:
    """Scale linearly to [0, 1]; a constant image becomes all zeros.

    >>> scale_unit(np.array([[2.0, 4.0], [3.0, 6.0]])).tolist()
    [[0.0, 0.5], [0.25, 1.0]]
    """
    a = fill_nan(image)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def fit_square(image: np.ndarray, size: int, mode: str = "crop", fill: float = 0.0) -> np.ndarray:
    """A ``size`` x ``size`` image with the aspect ratio kept.

    ``crop`` takes the centred square of the shorter side, ``pad`` pads the longer side's
    square with ``fill``; the square is then resampled isotropically to ``size``
    (anti-aliased when shrinking). Nothing is stretched along one axis only.

    >>> fit_square(np.ones((100, 200)), 50).shape
    (50, 50)
    """
    if mode not in ("crop", "pad"):
        raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
    a = np.asarray(image, dtype=np.float64)
    h, w = a.shape
    if mode == "crop":
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        a = a[y0 : y0 + s, x0 : x0 + s]
    else:
        s = max(h, w)
        out = np.full((s, s), fill, dtype=np.float64)
        y0, x0 = (s - h) // 2, (s - w) // 2
        out[y0 : y0 + h, x0 : x0 + w] = a
        a = out
    if s == size:
        return a
    from skimage.transform import resize

    return resize(a, (size, size), order=1, anti_aliasing=s > size, preserve_range=True)


#: Cell sizes the model sees well, as fractions of its input: those of its training images
#: (6-42 px at 128 px) less their extremes, 8-32 px at 128 px. :func:`fit_cells` brings
#: lattices below them to :data:`CELL_TARGET` (16 px at 128 px).
CELL_RANGE = (1 / 16, 1 / 4)
CELL_TARGET = 1 / 8


def fit_cells(image: np.ndarray, size: int, *, max_tiles: int = 16, max_zoom: float = 2.0):
    """``size`` x ``size`` views of ``image`` at a scale chosen from its own lattice, and
    the zoom factor (view pixels per image pixel).

    An atomic lattice of a large scan (a 1024 px STEM image with 10 px cells) shrinks to
    2-3 px cells, below what any model resolves, when the whole image is resampled to
    ``size``; a coarse pattern cut into native tiles keeps one cell per tile. Here the cell
    size is measured first (:func:`cell_zoom`), then the views are cut
    (:func:`views_at_zoom`).

    Returns
    -------
    views : ndarray ``[k, size, size]`` float64
    zoom : float

    >>> y, x = np.mgrid[:1024, :1024] * (2 * np.pi / 8)    # 8 px cells, 128 across
    >>> views, zoom = fit_cells(np.cos(x) + np.cos(y), 128)
    >>> views.shape, zoom                                     # 16 px cells in the views
    ((16, 128, 128), 2.0)
    >>> y, x = np.mgrid[:512, :512] * (2 * np.pi / 128)     # 4 cells across
    >>> fit_cells(np.cos(x) + np.cos(y), 128)[1]              # the whole image
    0.25
    """
    zoom = cell_zoom(image, size, max_zoom=max_zoom)
    views, _ = views_at_zoom(image, size, zoom, max_tiles=max_tiles)
    return views, size / min(np.shape(image)) if zoom is None else zoom


def cell_zoom(image: np.ndarray, size: int, *, max_zoom: float = 2.0) -> float | None:
    """The zoom (view pixels per image pixel) that brings ``image``'s lattice cells to
    :data:`CELL_TARGET` of ``size``, or None where the whole image, cropped to a square
    and resampled to ``size`` (:func:`fit_square`), already has cells of
    ``CELL_RANGE[0] * size`` px or larger, or no lattice is found
    (:func:`sarise.symmetry_measure.cell_size_px`).
    Never more than ``max_zoom``: a lattice of 2 px cells is enlarged, not invented."""
    from sarise.symmetry_measure import cell_size_px

    a = np.asarray(image, dtype=np.float64)
    cell = cell_size_px(a)
    if cell is None or cell / min(a.shape) >= CELL_RANGE[0]:
        return None
    return min(CELL_TARGET * size / cell, max_zoom)


def views_at_zoom(image: np.ndarray, size: int, zoom: float | None, *, max_tiles: int = 16):
    """The views of ``image`` at ``zoom`` (:func:`cell_zoom`) and their corners in image
    pixels: ``None`` gives the whole image (:func:`fit_square`, corner ``(-1, -1)``); a
    zoom gives the ``max_tiles`` non-overlapping ``size`` px tiles nearest the centre of
    the image resampled by it, in row order. Only the centre is resampled: a 4096 px scan
    never is whole."""
    a = np.asarray(image, dtype=np.float64)
    if zoom is None:
        return fit_square(a, size, "crop")[None], np.full((1, 2), -1, np.int64)
    reach = math.ceil(math.ceil(math.sqrt(max_tiles)) * size / zoom) + 2
    y0, x0 = (max(0, (n - reach) // 2) for n in a.shape)
    a = a[y0 : y0 + reach, x0 : x0 + reach]
    crop = np.array(a.shape)
    h, w = (max(size, round(n * zoom)) for n in a.shape)
    if (h, w) != a.shape:
        from skimage.transform import resize

        a = resize(a, (h, w), order=1, anti_aliasing=zoom < 1, preserve_range=True)
    views, corners = tiles(a, size)
    centre = np.array([h - size, w - size]) / 2
    nearest = np.sort(np.argsort(((corners - centre) ** 2).sum(1), kind="stable")[:max_tiles])
    at = np.round(corners[nearest] * crop / [h, w])
    return views[nearest], (at + np.array([y0, x0])).astype(np.int64)


def tiles(image: np.ndarray, size: int, stride: int | None = None):
    """Patches of ``size`` x ``size`` at native resolution and their ``(y, x)`` corners.

    ``stride`` defaults to ``size`` (no overlap); the grid is centred, so the margins
    left over are split evenly. An image smaller than ``size`` gives no tile.

    >>> patches, corners = tiles(np.zeros((10, 25)), 10)
    >>> patches.shape, corners.tolist()
    ((2, 10, 10), [[0, 2], [0, 12]])
    """
    a = np.asarray(image)
    stride = stride or size
    h, w = a.shape
    if h < size or w < size:
        return np.zeros((0, size, size), a.dtype), np.zeros((0, 2), np.int64)
    ny, nx = (h - size) // stride + 1, (w - size) // stride + 1
    oy = (h - (size + (ny - 1) * stride)) // 2
    ox = (w - (size + (nx - 1) * stride)) // 2
    corners = np.array([(oy + i * stride, ox + j * stride) for i in range(ny) for j in range(nx)])
    patches = np.stack([a[y : y + size, x : x + size] for y, x in corners])
    return patches, corners.astype(np.int64)


def thumbnail(image: np.ndarray, size: int = 64) -> np.ndarray:
    """A ``uint8`` thumbnail of a [0, 1] image, the longer side ``size``, aspect kept."""
    from skimage.transform import resize

    a = fill_nan(image)
    h, w = a.shape
    scale = size / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    small = resize(a, shape, order=1, anti_aliasing=scale < 1, preserve_range=True)
    return np.clip(np.round(small * 255), 0, 255).astype(np.uint8)
