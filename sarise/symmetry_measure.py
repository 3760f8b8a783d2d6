"""Measured symmetry of an image, without training: its lattice, the scores of the
rotations, mirrors and glides that lattice allows, and the plane groups consistent with
them. One code path for NumPy and CuPy (``xp``), so the same functions run on CPU or GPU.

1. **Lattice.** The normalised autocorrelation of the (lightly smoothed) image, from one
   FFT, has a peak at every lattice vector. The strongest peaks give a first basis; every
   lattice point in view refines it by least squares, and the basis is reduced to the two
   shortest independent vectors (``|a| <= |b|``, angle in [60, 90] degrees). An image
   whose autocorrelation has no strong, lattice-consistent peaks has *no lattice*; a
   large one is then searched in windows of half its side (an island or a terrace of
   molecules on part of a scan), and the most confident window's lattice is measured.
2. **The lattice's own symmetry** decides which operations can occur (its family): the
   directions along which a reflection maps the lattice onto itself (none: oblique; two:
   rectangular or centred; four: square; six: hexagonal), and 4- or 6-fold rotations only
   for square and hexagonal lattices. Within a family's tolerances the image is then
   resampled (an affine map about its centre) so that its lattice is the family's exact
   one: a scan's slow drift or shear bends a square lattice a degree or two, and bends a
   symmetry of the pattern with it.
3. **Scores.** For each allowed operation ``g`` (a rotation about the image centre, or a
   reflection in a line through it), the central disc of ``g(image)`` is compared with the
   image at every translation by masked normalised cross-correlation (batched FFTs): an
   operation of the pattern about *any* centre or line gives a correlation near that of a
   lattice translation. A score is that ratio (1: as symmetric as the pattern is periodic).
   For reflections, translations with a parallel component of half the period along the
   line are glides, the others mirrors, scored apart where the lattice distinguishes them.
   Every score is taken again on the image high-passed at a tenth of the cell, and the
   smaller counts (the fine one with a slack for noise): an operation of the pattern
   holds at every scale, while a pattern's lowest harmonics are often more symmetric than
   the pattern (a smooth p4 motif is nearly p4m, a smooth p6 one nearly p6m).
4. **Groups.** Rotation order (1, 2, 3, 4, 6), reflections per direction and the family
   give each plane group the lattice allows a signed margin: how far the weakest deciding
   score is from its threshold, positive on the side the group needs. The measured group
   is the one consistent with every score (the largest margin); the others' margins say
   how nearly the scores allow them, which :func:`combined_log_probabilities` weighs
   against the model.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sarise.symmetry import GROUPS, LATTICES

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "COMBINED_WEIGHTS",
    "MARGIN_COLUMNS",
    "REFLECTION_THRESHOLD",
    "SCORE_COLUMNS",
    "SETTINGS",
    "THRESHOLD",
    "Measurement",
    "cell_size_px",
    "combined_log_probabilities",
    "measure",
    "measured_classes",
    "score_rows",
    "score_table",
    "stored_pixel_nm",
]

#: A rotation score at or above this is a symmetry of the image.
THRESHOLD = 0.90
#: A mirror or glide score at or above this is a symmetry of the image. Reflections get a
#: stricter bar: on exact generated images true ones score 0.99-1 and accidental near-
#: mirrors up to 0.95, while drift and shear lower true rotations more than mirrors
#: (both chosen on the validation splits, ``benchmarks/bench_combined.py``).
REFLECTION_THRESHOLD = 0.93
#: Autocorrelation peaks below this (relative to the origin) are not lattice points.
MIN_PEAK = 0.25
#: Images (their shorter side) below this many pixels hold no lattice that could be told
#: from their edges: two cells of at least 3 px across.
MIN_SIDE = 6
#: Images from this side up are also searched in windows of half the side where the
#: whole holds no lattice (:func:`_find_lattice`). A window's lattice counts from this
#: confidence, or where two windows find it: on the real scans of ``../shared/data``, a
#: molecular island's lattice reaches 0.6 in a window, and a "lattice" fitted to the faint
#: noise of a flat channel or to the steps of a vicinal surface 0.23-0.43, each window
#: another.
WINDOW_MIN, WINDOW_CONFIDENCE = 192, 0.5
#: Step 3 also scores the image high-passed at this fraction of the cell (Gaussian sigma),
#: and an operation's score is the smaller of the two, the fine one raised by this slack
#: times one minus the fine image's own translation score (noise weighs more in the
#: detail): on exact images a smooth motif's false mirror scores 0.96-0.99 as it is and
#: 0.84-0.94 high-passed, a true one 1 in both (chosen on the validation splits,
#: ``benchmarks/bench_combined.py``).
FINE_SIGMA, FINE_SLACK = 0.1, 0.1
#: Tolerances of the lattice's own symmetry (relative length, and angle in degrees). A
#: lattice within them is made exact before scoring (:func:`_rectify`), so they are as wide
#: as a drifting scan bends a lattice: at 0.06 and 4 degrees, images sheared by 5 degrees
#: kept their group for 19 of 51; now all do, and the generated and simulated test sets
#: move by at most 3 images in 1088 (lower groups stay reachable in a wider family).
LENGTH_TOL, ANGLE_TOL = 0.10, 7.0
#: A lattice found is checked against the image smoothed at this sigma (px): where that
#: shows a lattice of which the one found is a supercell of index 3 or more, with
#: autocorrelation peaks at least this share of the found lattice's there, the finer one
#: is the pattern's and the supercell only where its aliased detail repeats
#: (:func:`_finer_lattice`; both chosen on the validation splits).
ALIAS_SIGMA, ALIAS_SHARE = 1.5, 0.95
#: A lattice found is also checked for a pseudo-translation: where, in the autocorrelation
#: of the image high-passed as for step 3's fine scale, the peaks of one of its three index-2
#: cosets reach less than this share of their neighbours on the sublattice (the median over
#: the points in view), the translations of that coset are not the pattern's, and the
#: sublattice is its lattice (:func:`_coarser_lattice`; chosen on the validation splits:
#: 0.80-0.85 tie, 0.88 and up lose).
PSEUDO_SHARE = 0.85
#: What decides the measured scores and groups (kept with every stored measurement;
#: ``rectified``: the lattice made exact within its family before scoring;
#: ``hexagonal_supercell``: a sqrt3 x 1 rectangular lattice is tried as hexagonal).
SETTINGS = {"threshold": THRESHOLD, "reflection_threshold": REFLECTION_THRESHOLD,
            "length_tol": LENGTH_TOL, "angle_tol": ANGLE_TOL, "rectified": True,
            "fine_sigma": FINE_SIGMA, "fine_slack": FINE_SLACK,
            "alias_sigma": ALIAS_SIGMA, "alias_share": ALIAS_SHARE,
            "hexagonal_supercell": True, "pseudo_share": PSEUDO_SHARE}  # fmt: skip

#: The per-image columns of :meth:`Measurement.row` (``symmetry_scores[image, k]``).
COLUMNS = ("lattice_a_px", "lattice_b_px", "lattice_angle_deg", "lattice_confidence",
           "rot2", "rot3", "rot4", "rot6", "mirror", "glide", "rotation_order")  # fmt: skip


@dataclass
class Measurement:
    """What :func:`measure` found in one image (lengths in pixels; ``a``, ``b`` as (x, y)
    with y pointing down the rows)."""

    has_lattice: bool
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    confidence: float = 0.0
    family: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # rot2.., mirror@deg, glide@deg
    rotation_order: int | None = None
    reflection: bool | None = None
    groups: dict[str, float] = field(default_factory=dict)  # group -> signed margin

    @property
    def angle_deg(self) -> float:
        if self.a is None:
            return math.nan
        c = float(self.a @ self.b / (np.linalg.norm(self.a) * np.linalg.norm(self.b)))
        return math.degrees(math.acos(max(-1.0, min(1.0, c))))

    @property
    def group(self) -> str | None:
        """The measured group (the largest margin), None without a lattice."""
        return max(self.groups, key=self.groups.get) if self.groups else None

    def row(self) -> dict[str, Any]:
        """Flat values, named like :data:`COLUMNS` (NaN where not measured)."""
        nan = math.nan
        mirrors = [v for k, v in self.scores.items() if k.startswith("mirror@")]
        glides = [v for k, v in self.scores.items() if k.startswith("glide@")]
        return {
            "lattice_a_px": float(np.linalg.norm(self.a)) if self.has_lattice else nan,
            "lattice_b_px": float(np.linalg.norm(self.b)) if self.has_lattice else nan,
            "lattice_angle_deg": self.angle_deg,
            "lattice_confidence": self.confidence,
            **{k: self.scores.get(k, nan) for k in ("rot2", "rot3", "rot4", "rot6")},
            "mirror": max(mirrors) if mirrors else nan,
            "glide": max(glides) if glides else nan,
            "rotation_order": self.rotation_order or 0,
        }


# -- array helpers (NumPy or CuPy) ------------------------------------------------------
def _ndimage(xp):
    if xp is np:
        import scipy.ndimage as ndi
    else:  # pragma: no cover - GPU
        import cupyx.scipy.ndimage as ndi
    return ndi


def _to_host(x) -> np.ndarray:
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _prepare(image, xp, smooth: float):
    a = xp.asarray(image, dtype=xp.float64)
    a = _ndimage(xp).gaussian_filter(a, smooth) if smooth > 0 else a
    a = a - a.mean()
    sd = float(a.std())
    return a / sd if sd > 0 else a


def _highpass(a, xp, sigma: float):
    return a - _ndimage(xp).gaussian_filter(a, sigma)


# -- 1. lattice ---------------------------------------------------------------------------
def _autocorrelation(a, xp):
    """Normalised autocorrelation for shifts |dx|, |dy| < n/2, origin at the centre."""
    ny, nx = a.shape
    f = xp.fft.rfft2(a, s=(2 * ny, 2 * nx))
    acf = xp.fft.irfft2(f * xp.conj(f), s=(2 * ny, 2 * nx))
    # the pixels that overlap at shift (dy, dx): (ny - |dy|) (nx - |dx|), in FFT order
    dy = xp.minimum(xp.arange(2 * ny), 2 * ny - xp.arange(2 * ny))
    dx = xp.minimum(xp.arange(2 * nx), 2 * nx - xp.arange(2 * nx))
    overlap = (ny - dy)[:, None].astype(xp.float64) * (nx - dx)[None, :]
    acf = xp.fft.fftshift(acf / xp.maximum(overlap, 1.0))
    cy, cx = ny, nx
    hy, hx = ny // 2, nx // 2
    win = acf[cy - hy : cy + hy + 1, cx - hx : cx + hx + 1]
    return _to_host(win / win[hy, hx])


def _peaks(acf: np.ndarray, min_value: float) -> np.ndarray:
    """Local maxima (3x3) above ``min_value``, as sub-pixel (dx, dy) and value, origin out."""
    hy, hx = acf.shape[0] // 2, acf.shape[1] // 2
    c = acf[1:-1, 1:-1]
    is_max = c >= min_value
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_max &= c >= acf[1 + dy : acf.shape[0] - 1 + dy, 1 + dx : acf.shape[1] - 1 + dx]
    ys, xs = np.nonzero(is_max)
    ys, xs = ys + 1, xs + 1
    keep = (np.abs(ys - hy) > 1) | (np.abs(xs - hx) > 1)  # not the origin's own peak
    ys, xs = ys[keep], xs[keep]
    z = acf[ys, xs]
    # a parabola through each axis' three samples: its vertex's offset and lift
    offsets, lifts = [], []
    for m, p in ((acf[ys, xs - 1], acf[ys, xs + 1]), (acf[ys - 1, xs], acf[ys + 1, xs])):
        d = m - 2 * z + p
        curved = d < 0
        d = np.where(curved, d, -1.0)
        offsets.append(np.where(curved, 0.5 * (m - p) / d, 0.0))
        lifts.append(np.where(curved, -((m - p) ** 2) / (8 * d), 0.0))
    out = np.stack([xs - hx + offsets[0], ys - hy + offsets[1], z + lifts[0] + lifts[1]], 1)
    return out.astype(float).reshape(-1, 3)


def _reduce(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lagrange-Gauss reduction: the two shortest independent vectors, |a| <= |b|, and
    a.b >= 0 (angle at most 90 degrees)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    for _ in range(100):
        if a @ a > b @ b:
            a, b = b, a
        mu = round(float(a @ b / (a @ a)))
        if mu == 0:
            break
        b = b - mu * a
    if a @ b < 0:
        b = -b
    # one sign for the pair: the autocorrelation is symmetric, so rounding alone would
    # choose between (a, b) and (-a, -b), and the scores see the difference
    tol = 1e-9 * math.sqrt(a @ a)
    if a[1] < -tol or (abs(a[1]) <= tol and a[0] < 0):
        a, b = -a, -b
    return a, b


def _lattice(acf: np.ndarray, min_peak: float, *, relaxed: bool = False):
    """``(a, b, confidence)`` from the autocorrelation, or None when it shows no lattice.

    A basis is tried from the strongest peaks (those within 90%, then 75%, then 60% of the
    highest): the finest lattice they span must predict the peaks in view. Near (out to
    four cells) at least 80% of its points must hold a peak within 10% below that share
    (a weaker pseudo-translation of the motif is not a lattice vector), and the median
    height there is the confidence; far (out to the edge of the window) 80% of its points
    must still fall on a peak (a quasicrystal's do not). ``relaxed`` (real scans: decaying,
    anisotropic peaks from drift, creep and finite domains) tries weaker shares, counts
    any peak and looks three cells out.
    """
    floor = 0.4 * min_peak if relaxed else min_peak
    peaks = _peaks(acf, floor)
    if len(peaks) < 2:
        return None
    vec, val = peaks[:, :2], peaks[:, 2]
    half = np.asarray(acf.shape[::-1]) // 2 - 2
    for share in (0.9, 0.75, 0.6, 0.45, 0.3) if relaxed else (0.9, 0.75, 0.6):
        basis = _first_basis(vec[val >= share * val.max()])
        if basis is None:
            continue
        a, b = _refine(*basis, vec[val >= 0.5 * share * val.max()])
        if relaxed and np.linalg.norm(b) > np.min(half) / 3:
            continue  # a scan's lattice shows many cells; a few large "cells" are domains
        near = _predicted(peaks, a, b, half, (3.0 if relaxed else 4.0) * float(np.linalg.norm(b)))
        if near is None or (relaxed and len(near) < 12):
            continue
        need = floor if relaxed else (share - 0.1) * val.max()
        if np.mean(near >= need) < (0.7 if relaxed else 0.8) or np.median(near) < floor:
            continue
        far = _predicted(peaks, a, b, half, np.inf)
        if far is not None and np.mean(far > 0) < (0.6 if relaxed else 0.8):
            continue
        if not relaxed and far is not None and np.median(far) < 0.7 * np.median(near):
            continue  # strong only near: quasi-periodic order, not a lattice
        return a, b, float(np.median(near))
    return None


def _first_basis(cand: np.ndarray):
    order = np.argsort(np.hypot(*cand.T))
    if len(order) < 2:
        return None
    a = cand[order[0]]
    for i in order[1:]:
        v = cand[i]
        if abs(a[0] * v[1] - a[1] * v[0]) > 0.25 * np.linalg.norm(a) * np.linalg.norm(v):
            return _reduce(a, v)
    return None


def _refine(a: np.ndarray, b: np.ndarray, vec: np.ndarray):
    """Least squares of a, b on the peaks near a lattice point, out to four cells."""
    basis = np.stack([a, b], axis=1)
    vec = vec[np.hypot(*vec.T) <= 4.0 * max(np.linalg.norm(a), np.linalg.norm(b))]
    idx = np.linalg.solve(basis, vec.T).T
    near = np.abs(idx - np.round(idx)).max(1) < 0.15
    ij = np.round(idx[near])
    keep = np.abs(ij).sum(1) > 0
    if keep.sum() < 2 or np.linalg.matrix_rank(ij[keep]) < 2:
        return a, b
    sol, *_ = np.linalg.lstsq(ij[keep], vec[near][keep], rcond=None)
    return _reduce(sol[0], sol[1])


def _predicted(peaks: np.ndarray, a: np.ndarray, b: np.ndarray, half: np.ndarray, reach: float):
    """The height of the peak at each lattice point in view out to ``reach`` (0 where none
    is within 1.5 px, or 6% of the point's distance up to 12% of |a|), or None when fewer
    than two are."""
    reach = min(0.85 * float(np.min(half)), reach)
    basis = np.stack([a, b], axis=1)
    area = abs(np.linalg.det(basis))
    if area < 1.0:
        return None
    span = int(np.ceil(reach * max(np.linalg.norm(a), np.linalg.norm(b)) / area)) + 1
    i, j = np.meshgrid(np.arange(-span, span + 1), np.arange(-span, span + 1))
    grid = np.stack([i.ravel(), j.ravel()], axis=1).astype(float)
    grid = grid[np.abs(grid).sum(1) > 0]
    pts = grid @ basis.T
    dist = np.hypot(*pts.T)
    inside = (np.abs(pts) <= half).all(1) & (dist <= reach)
    if inside.sum() < 2:
        return None
    return _heights_at(peaks, pts[inside], a)


def _heights_at(peaks: np.ndarray, pts: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The height of the peak at each point (0 where none is within 1.5 px, or 6% of the
    point's distance up to 12% of |a|)."""
    dist = np.hypot(*pts.T)
    d2 = ((pts[:, None, :] - peaks[None, :, :2]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    tol = np.maximum(1.5, np.minimum(0.06 * dist, 0.12 * float(np.linalg.norm(a)))) ** 2
    return np.where(d2[np.arange(len(pts)), nearest] <= tol, peaks[nearest, 2], 0.0)


# -- 2. the lattice's own symmetry ------------------------------------------------------
def _reflection(deg: float) -> np.ndarray:
    t = math.radians(2 * deg)
    return np.array([[math.cos(t), math.sin(t)], [math.sin(t), -math.cos(t)]])


def _rotation(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


#: Coefficients (i, j) of the small lattice vectors i a + j b that :func:`_family` checks.
_SMALL = np.array([(i, j) for i in range(-3, 4) for j in range(-3, 4) if i or j], float)


def _family(a: np.ndarray, b: np.ndarray):
    """The lattice family of a reduced basis and its mirror directions, from the metric:
    ``[(angle_deg, period, distinct)]`` with the shortest lattice vector along each line,
    and whether mirror and glide differ there (not where lattice vectors have half that
    period along the line, as in centred, square-diagonal and hexagonal directions)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    gamma = math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b) / (na * nb)))))
    equal = abs(nb - na) <= LENGTH_TOL * na
    right = abs(gamma - 90.0) <= ANGLE_TOL
    half = abs(2 * float(a @ b) - na * na) <= 2 * LENGTH_TOL * na * na  # |b - a| = |b|
    h = b - (float(a @ b) / (na * na)) * a  # b's part perpendicular to a
    if equal and right:
        family, dirs = "square", [a, b, a + b, a - b]
    elif equal and abs(gamma - 60.0) <= ANGLE_TOL:
        family, dirs = "hexagonal", [a, b, b - a, a + b, 2 * b - a, 2 * a - b]
    elif right:
        family, dirs = "rectangular", [a, b]
    elif equal:
        family, dirs = "centred", [a + b, a - b]
    elif half:
        family, dirs = "centred", [a, h]
    else:
        return "oblique", []
    small = _SMALL @ np.stack([a, b])  # the lattice vectors i a + j b, |i|, |j| <= 3
    lengths = np.hypot(*small.T)
    cell = np.stack([a, b, a + b, a - b])
    lines = []
    for v in dirs:
        deg = math.degrees(math.atan2(v[1], v[0])) % 180.0
        u = np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])
        parallel = np.abs(small[:, 1] * u[0] - small[:, 0] * u[1]) < 0.05 * na
        along = float(lengths[parallel].min()) if parallel.any() else 2.0 * na  # shortest
        # centred along the line: a vector of the cell reaches half-way between its points
        frac = (cell @ u) / along
        half_way = np.abs(np.abs(frac - np.round(frac)) - 0.5) < 0.15
        lines.append((deg, along, not bool(half_way.any())))
    return family, sorted(lines)


# -- 3. scores ----------------------------------------------------------------------------
class _Correlator:
    """Masked NCC of the image's central disc, transformed, against the whole image at
    every translation that keeps the disc inside (the shared sums computed once)."""

    def __init__(self, a, xp, radius: int):
        self.a, self.xp, self.r = a, xp, radius
        self.coeffs = _ndimage(xp).spline_filter(a, order=3)  # once, for every transform
        n = a.shape[0]
        k = 2 * radius + 1
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        self.mask = xp.asarray((xx**2 + yy**2 <= radius**2).astype(np.float64))
        self.m = float(self.mask.sum())
        self.fa = xp.fft.rfft2(a)
        self.n, self.k = n, k
        fm = xp.fft.rfft2(self.mask, s=a.shape)
        s1 = xp.fft.irfft2(self.fa * xp.conj(fm), s=a.shape)
        s2 = xp.fft.irfft2(xp.fft.rfft2(a * a) * xp.conj(fm), s=a.shape)
        valid = n - k + 1
        s1, s2 = s1[:valid, :valid], s2[:valid, :valid]
        self.local = xp.sqrt(xp.maximum(s2 - s1 * s1 / self.m, 1e-12))
        self.centre = (n - 1) / 2.0
        self.offset = (n - k) / 2.0  # the shift that puts the disc back where it was

    def ncc(self, matrix: np.ndarray):
        """NCC map over translations t (t = index - offset) of the disc of ``g(image)``."""
        xp = self.xp
        r = self.r
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
        inv = np.linalg.inv(matrix)  # template(x) = image(g^-1 x) about the centre
        sx = inv[0, 0] * xx + inv[0, 1] * yy + self.centre
        sy = inv[1, 0] * xx + inv[1, 1] * yy + self.centre
        coords = xp.asarray(np.stack([sy, sx]))
        t = _ndimage(xp).map_coordinates(self.coeffs, coords, order=3, prefilter=False)
        t = (t - (t * self.mask).sum() / self.m) * self.mask
        norm = float(xp.sqrt((t * t).sum()))
        if norm == 0:
            return None
        num = xp.fft.irfft2(self.fa * xp.conj(xp.fft.rfft2(t, s=self.a.shape)), s=self.a.shape)
        valid = self.n - self.k + 1
        return _to_host(num[:valid, :valid] / (norm * self.local))


def _peak_value(ncc: np.ndarray, select=None) -> tuple[float, np.ndarray]:
    """Highest value (optionally among translations ``select`` allows) and where."""
    v = ncc if select is None else np.where(select, ncc, -np.inf)
    i = np.unravel_index(int(np.argmax(v)), v.shape)
    return float(v[i]), np.array([i[1], i[0]], float)


def measure(image, *, xp=np, smooth: float | None = None, threshold: float = THRESHOLD,
            reflection_threshold: float = REFLECTION_THRESHOLD,
            min_peak: float = MIN_PEAK) -> Measurement:  # fmt: skip
    """The lattice, symmetry scores and consistent plane groups of one 2-D image.

    Parameters
    ----------
    image : array (ny, nx)
        Square images are used as they are; others are centre-cropped to a square.
    xp : module
        ``numpy`` or ``cupy``: where the FFTs run.
    smooth : float, optional
        Gaussian sigma in pixels applied first (default: 1 px per 256 px of image).
    threshold, reflection_threshold : float
        The scores at which a rotation, and a mirror or glide, count as present.
    """
    found = _find_lattice(image, xp, smooth, min_peak)
    if found is None:
        return Measurement(False)
    a_img, (a, b, confidence) = found
    family, _ = _family(a, b)
    scores, lines = _two_scale_scores(a_img, xp, a, b, family, confidence)
    hexagonal = _hexagonal_within(a, b) if family == "rectangular" else None
    if scores is not None and hexagonal is not None:
        # the sqrt3 rectangular supercell of a hexagonal lattice (its centring a weaker
        # peak): a 3-fold rotation can only be the hexagonal lattice's
        hex_scores, hex_lines = _two_scale_scores(a_img, xp, *hexagonal, "hexagonal", confidence)
        if hex_scores is not None and hex_scores["rot3"] >= threshold:
            (a, b), family, scores, lines = hexagonal, "hexagonal", hex_scores, hex_lines
    if scores is None:
        return Measurement(False)
    m = Measurement(True, a, b, confidence, family, scores)
    _decide(m, lines, threshold, reflection_threshold)
    return m


def _two_scale_scores(a_img, xp, a, b, family: str, confidence: float):
    """``(scores, lines)`` of step 3 on a lattice of ``family`` and its reflection lines:
    the image resampled so that the lattice is the family's exact one (not an oblique
    one), scored as it is and high-passed; ``(None, lines)`` where it cannot be scored."""
    ia, ib = a, b  # the basis the scores use
    if family != "oblique":  # drift and shear leave a lattice slightly off its family's
        ia, ib = _ideal_basis(a, b, family)
        a_img = _rectify(a_img, xp, (a, b), (ia, ib))
    lines = _family(ia, ib)[1]
    scores, _ = _operation_scores(a_img, xp, ia, ib, family, lines, fallback=confidence)
    if scores is None:
        return None, lines
    # the same at the finer scale: a pattern's lowest harmonics are often more symmetric
    # than the pattern (a smooth p4 motif is nearly p4m), and only its detail tells
    fine = _detail(a_img, xp, ia, ib)
    fine_scores, fine_base = _operation_scores(fine, xp, ia, ib, family, lines)
    if fine_scores is not None:
        slack = FINE_SLACK * (1.0 - fine_base)  # noise weighs more in the detail
        scores = {k: min(v, fine_scores.get(k, v) + slack) for k, v in scores.items()}
    return scores, lines


def _detail(a_img, xp, a: np.ndarray, b: np.ndarray):
    """The image's detail on the lattice ``a, b``: high-passed at :data:`FINE_SIGMA` of the
    cell (its longer side) and standardised."""
    cell = max(float(np.linalg.norm(a)), float(np.linalg.norm(b)))
    return _prepare(_highpass(a_img, xp, FINE_SIGMA * cell), xp, 0.0)


def _hexagonal_within(a: np.ndarray, b: np.ndarray):
    """The hexagonal basis whose sqrt3 x 1 rectangular supercell ``a, b`` is (the
    shorter vector and the centre of the cell, within the length tolerance), or None."""
    short, long = (a, b) if np.linalg.norm(a) <= np.linalg.norm(b) else (b, a)
    ratio = float(np.linalg.norm(long) / np.linalg.norm(short)) / math.sqrt(3.0)
    if abs(ratio - 1.0) > LENGTH_TOL:
        return None
    basis = _reduce(short, (short + long) / 2)
    return basis if _family(*basis)[0] == "hexagonal" else None


def _ideal_basis(a: np.ndarray, b: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray]:
    """The basis of ``family`` nearest the measured one: ``a``'s direction, and equal
    lengths (their mean) at 90 or 60 degrees (square, hexagonal); a right angle
    (rectangular); equal lengths, or ``b`` half-way along ``a`` (centred)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    ua = a / na
    side = 1.0 if ua[0] * b[1] - ua[1] * b[0] >= 0 else -1.0  # b's side of a
    if family in ("square", "hexagonal"):
        length = (na + nb) / 2
        return length * ua, length * (_rotation(side * (90.0 if family == "square" else 60.0)) @ ua)
    if family == "rectangular":
        return a, nb * (_rotation(side * 90.0) @ ua)
    if family == "centred" and abs(nb - na) <= LENGTH_TOL * na:
        length = (na + nb) / 2
        return length * ua, length * b / nb
    if family == "centred":
        return a, b - (float(a @ b) / (na * na) - 0.5) * a
    return a, b


def _rectify(a_img, xp, measured, ideal):
    """``a_img`` resampled about its centre by the affine map that takes the ``measured``
    basis ``(a, b)`` onto the ``ideal`` one (:func:`_ideal_basis`: what a scan's linear
    drift or shear bent; outside the image is its mean, 0), so that a symmetry of the
    pattern holds in the pixels."""
    # an ideal pixel's offset from the centre -> the measured one's
    back = np.stack(measured, axis=1) @ np.linalg.inv(np.stack(ideal, axis=1))
    n = a_img.shape[0]
    c = (n - 1) / 2.0
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) - c
    sx = back[0, 0] * xx + back[0, 1] * yy + c
    sy = back[1, 0] * xx + back[1, 1] * yy + c
    coords = xp.asarray(np.stack([sy, sx]))
    return _ndimage(xp).map_coordinates(a_img, coords, order=3, mode="constant", cval=0.0)


def _operation_scores(a_img, xp, a, b, family: str, lines, fallback: float | None = None):
    """``(scores, base)`` of step 3: each allowed operation's best NCC over the NCC of a
    lattice translation (``base``); ``(None, nan)`` where the image is flat or, without a
    ``fallback`` base, where no lattice translation is in view (cells too large)."""
    n = a_img.shape[0]
    corr = _Correlator(a_img, xp, max(4, n // 4))
    # the baseline: a pure lattice translation (as symmetric as the pattern is periodic)
    ident = corr.ncc(np.eye(2))
    if ident is None:
        return None, math.nan
    base = _translation_score(ident, corr.offset, a, b)
    if not base > 0:  # cells too large for the window: the autocorrelation's own peaks
        if fallback is None:
            return None, math.nan
        base = fallback
    scores: dict[str, float] = {}
    allowed = {"rot2": 180.0}
    if family == "square":
        allowed["rot4"] = 90.0
    if family == "hexagonal":
        allowed.update({"rot3": 120.0, "rot6": 60.0})
    for name, deg in allowed.items():
        ncc = corr.ncc(_rotation(deg))
        scores[name] = 0.0 if ncc is None else min(1.0, _peak_value(ncc)[0] / base)
    ty, tx = np.mgrid[0 : ident.shape[0], 0 : ident.shape[1]]
    t = np.stack([tx - corr.offset, ty - corr.offset], axis=-1)
    for deg, period, distinct in lines:
        ncc = corr.ncc(_reflection(deg))
        if ncc is None:
            continue
        u = np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))])
        par = (t @ u) / period
        frac = np.abs(par - np.round(par))  # 0: a mirror, 0.5: a glide
        key = f"{deg:.1f}"
        if distinct:
            scores[f"mirror@{key}"] = min(1.0, _peak_value(ncc, frac < 0.25)[0] / base)
            scores[f"glide@{key}"] = min(1.0, _peak_value(ncc, frac >= 0.25)[0] / base)
        else:
            scores[f"mirror@{key}"] = min(1.0, _peak_value(ncc)[0] / base)
    return scores, base


def _find_lattice(image, xp, smooth: float | None, min_peak: float):
    """``(prepared square, (a, b, confidence))`` or None: step 1 of :func:`measure`.

    The centred square of the image first, as it is and then band-passed (a lattice on a
    background: a tilt, a terrace). Where neither holds a lattice and the square is at
    least :data:`WINDOW_MIN` px, its four corner and its centre windows of half the side
    are tried the same way, and the most confident lattice of cells of at most a sixth
    of the window, found with :data:`WINDOW_CONFIDENCE` or in two windows, is used: an
    island or a terrace of molecules covers part of a scan, and the rest of the scan
    (substrate, step edges) drowns its peaks in the whole image's autocorrelation.
    """
    img = xp.asarray(image)
    n = min(img.shape)
    if n < MIN_SIDE:
        return None
    y0, x0 = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
    img = img[y0 : y0 + n, x0 : x0 + n]
    sigma = n / 256.0 if smooth is None else smooth
    found = _lattice_of_square(img, xp, sigma, min_peak)
    if found is not None or n < WINDOW_MIN:
        return found
    w = n // 2
    corners = ((0, 0), (0, n - w), (n - w, 0), (n - w, n - w), ((n - w) // 2, (n - w) // 2))
    found = []
    for y, x in corners:
        f = _lattice_of_square(img[y : y + w, x : x + w], xp, sigma, min_peak)
        if f is not None and max(np.linalg.norm(f[1][0]), np.linalg.norm(f[1][1])) <= w / 6:
            found.append(f)  # part of a scan holds a lattice only of many cells
    # one window's lattice counts where it is clear, or where another window sees it too
    sure = [f for f in found if f[1][2] >= WINDOW_CONFIDENCE or
            sum(_same_lattice(f[1], g[1]) for g in found) >= 2]  # fmt: skip
    return max(sure, key=lambda f: f[1][2], default=None)


def _same_lattice(one, other, tol: float = 0.1) -> bool:
    """Whether two bases ``(a, b, ...)`` span the same lattice (to ``tol`` of a cell)."""
    index = _supercell_index(one, other, tol)
    return index is not None and abs(index - 1) < 1e-6


def _supercell_index(fine, coarse, tol: float) -> float | None:
    """How many cells of the basis ``fine`` one cell of ``coarse`` holds (both ``(a, b,
    ...)``), or None where ``coarse``'s vectors are not lattice vectors of ``fine`` (to
    ``tol`` of a cell)."""
    m = np.linalg.solve(np.stack(fine[:2], axis=1), np.stack(coarse[:2], axis=1))
    r = np.round(m)
    return float(abs(np.linalg.det(r))) if np.abs(m - r).max() < tol else None


def _lattice_of_square(img, xp, sigma: float, min_peak: float):
    """``(prepared square, (a, b, confidence))`` of one square as it is, else band-passed."""
    a_img = _prepare(img, xp, sigma)
    if not np.isfinite(float(a_img.sum())) or float(a_img.std()) == 0:
        return None
    found = _lattice(_autocorrelation(a_img, xp), min_peak)
    if found is not None and ALIAS_SIGMA > sigma:
        finer = _finer_lattice(img, xp, found, min_peak)
        # an aliased lattice's detail is weaker off its whole-pixel supercell: not a pseudo-
        # translation
        found = _coarser_lattice(a_img, xp, found) if finer is found else finer
    if found is None:
        # a lattice on a background (an island, a terrace, a tilt): band-pass and retry
        n = img.shape[0]
        a_img = _prepare(_highpass(xp.asarray(img, dtype=xp.float64), xp, n / 24.0), xp, sigma)
        found = _lattice(_autocorrelation(a_img, xp), min_peak, relaxed=True)
    return None if found is None else (a_img, found)


def _finer_lattice(img, xp, found, min_peak: float):
    """``found``, or the finer lattice that the square shows smoothed at
    :data:`ALIAS_SIGMA` px, where ``found`` is a supercell of it of index 3 or more and
    the finer lattice's autocorrelation peaks there reach :data:`ALIAS_SHARE` of the
    found one's.

    A pattern whose lattice vectors are not whole pixels is sampled at other sub-pixel
    phases in each cell, so its detail near the pixel scale (aliased) repeats exactly only
    on the lattice vectors that are nearly whole pixels: a supercell, often of index 5-10.
    Smoothing removes that detail, not the pattern's coarser own. Index 2 stays as found:
    a glide's half-cell pseudo-translation grows with smoothing (p4g, pgg).
    """
    acf = _autocorrelation(_prepare(img, xp, ALIAS_SIGMA), xp)
    finer = _lattice(acf, min_peak)
    if finer is None:
        return found
    a, b = found[:2]
    index = _supercell_index(finer, found, tol=0.15)
    if index is None or index < 2.5:
        return found
    half = np.asarray(acf.shape[::-1]) // 2 - 2
    near = _predicted(_peaks(acf, 0.0), a, b, half, 4.0 * float(np.linalg.norm(b)))
    if near is None or finer[2] < ALIAS_SHARE * float(np.median(near)):
        return found
    return finer


#: A basis's three index-2 sublattices, each with a vector of the coset off it: (a, 2b) and b,
#: (2a, b) and a, (a + b, a - b) and a.
_INDEX2 = (((1, 0), (0, 2), (0, 1)), ((2, 0), (0, 1), (1, 0)), ((1, 1), (1, -1), (1, 0)))
_NEAR = np.array([(i, j) for i in range(-4, 5) for j in range(-4, 5)], float)


def _coarser_lattice(a_img, xp, found):
    """``found``, or its index-2 sublattice whose coset's translations are weaker than the
    sublattice's in the pattern's detail (below :data:`PSEUDO_SHARE` of them): a pseudo-
    translation.

    Two motifs alike but not the same in a cell (pmm, pmg or pgg whose corner and centre
    motifs differ a little; a smooth p4g, nearly centred as its lowest harmonics are; a
    crystal's two sites of one element, rotated) make a centring translation the
    autocorrelation finds nearly as strong as the lattice's, and a finer lattice on which
    the true group is out of reach. The detail (the image high-passed at
    :data:`FINE_SIGMA` of the cell) tells them apart. Each coset point is compared with
    its two sublattice neighbours along the coset vector, so that peaks decaying across
    the view (drift, a few large cells) weigh on both alike.
    """
    a, b, _ = found
    acf = _autocorrelation(_detail(a_img, xp, a, b), xp)
    peaks = _peaks(acf, -1.0)
    half = np.asarray(acf.shape[::-1]) // 2 - 2
    basis = np.stack([a, b])
    best = (PSEUDO_SHARE, None)
    for *sub, off in _INDEX2:
        sa, sb = _reduce(*(np.asarray(m, float) @ basis for m in sub))
        c = np.asarray(off, float) @ basis
        pts = _NEAR @ np.stack([sa, sb]) + c
        reach = 4.0 * float(np.linalg.norm(sb))
        ok = np.ones(len(pts), bool)
        for q in (pts, pts - c, pts + c):
            ok &= (np.abs(q) <= half).all(1) & (np.hypot(*q.T) <= reach) & (np.hypot(*q.T) > 1)
        if ok.sum() < 2:
            continue
        on, below, above = (_heights_at(peaks, q[ok], a) for q in (pts, pts - c, pts + c))
        share = float(np.median(on / np.maximum(0.5 * (below + above), 1e-6)))
        if share < best[0]:
            best = (share, (sa, sb))
    return found if best[1] is None else (*best[1], found[2])


def cell_size_px(image, *, max_side: int = 512, xp=np) -> float | None:
    """The longer of the two shortest lattice vectors of ``image`` in its own pixels (the
    cell's size), or None where :func:`measure` would find no lattice. Images larger than
    ``max_side`` are measured on their centred ``max_side`` square: the lattice is the
    same everywhere, and the FFTs stay small.

    >>> y, x = np.mgrid[:300, :300] * (2 * np.pi / 20)
    >>> round(cell_size_px(np.cos(x) + np.cos(y)), 1)
    20.0
    """
    a = xp.asarray(image, dtype=xp.float64)
    h, w = a.shape
    n = min(h, w, max_side)
    a = a[(h - n) // 2 : (h - n) // 2 + n, (w - n) // 2 : (w - n) // 2 + n]
    found = _find_lattice(a, xp, 0.5, MIN_PEAK)
    if found is None:
        return None
    _, (va, vb, _) = found
    return float(max(np.linalg.norm(va), np.linalg.norm(vb)))


def _translation_score(ident: np.ndarray, offset: float, a: np.ndarray, b: np.ndarray) -> float:
    """The NCC at the shortest lattice translations in view (their mean)."""
    vals = []
    for v in (a, b, a + b, a - b, -a, -b):
        x, y = v[0] + offset, v[1] + offset
        if 1 <= x < ident.shape[1] - 2 and 1 <= y < ident.shape[0] - 2:
            xi, yi = int(np.rint(x)), int(np.rint(y))
            vals.append(float(ident[yi - 1 : yi + 2, xi - 1 : xi + 2].max()))
    return float(np.mean(sorted(vals)[-2:])) if vals else math.nan


# -- 4. groups ----------------------------------------------------------------------------
#: The rotations each order implies present, and those it implies absent (of the ones the
#: lattice family lets :func:`measure` score).
_PRESENT = {1: (), 2: ("rot2",), 3: ("rot3",), 4: ("rot2", "rot4"), 6: ("rot2", "rot3", "rot6")}
_ABSENT = {1: ("rot2", "rot3"), 2: ("rot3", "rot4"), 3: ("rot2",), 4: (), 6: ()}


def _decide(m: Measurement, lines, thr: float, thr_refl: float) -> None:
    """Every plane group the lattice family allows, with its signed margin.

    A group is reached by a rotation order and a kind per reflection line (mirror, glide
    or none). Its margin is the smallest of the distances of each deciding score from its
    threshold, signed: positive where the score is on the side the group needs (present
    above, absent below), negative otherwise, taken over the best way to reach the group.
    The measured group is the one with the largest margin: the only one with a positive
    margin, where the scores are not exactly at a threshold.
    """
    s = m.scores
    orders = [o for o in (1, 2, 3, 4, 6) if all(k in s for k in _PRESENT[o])]
    line_options = []
    for deg, _period, distinct in lines:
        key = f"{deg:.1f}"
        mir = s.get(f"mirror@{key}")
        gli = s.get(f"glide@{key}") if distinct else None
        options = []
        for kind in ("m", "g", "") if distinct else ("m", ""):
            terms = [] if mir is None else [mir - thr_refl if kind == "m" else thr_refl - mir]
            if gli is not None:
                terms.append(gli - thr_refl if kind == "g" else thr_refl - gli)
            options.append((kind, min(terms, default=math.inf)))
        line_options.append(options)
    reached = []
    for order in orders:
        rot = [s[k] - thr for k in _PRESENT[order]]
        rot += [thr - s[k] for k in _ABSENT[order] if k in s]
        rot_margin = min(rot, default=math.inf)
        for choice in itertools.product(*line_options):
            margin = min([rot_margin, *(v for _, v in choice)])
            kinds = {line[0]: kind for line, (kind, _) in zip(lines, choice, strict=True)}
            reached.append((margin, order, kinds))
    reached.sort(key=lambda r: -r[0])  # stable: ties keep the enumeration order
    margin, order, kinds = reached[0]
    m.rotation_order = order
    m.reflection = any(kinds.values())
    for margin, order, kinds in reached:
        for name in _groups(m.family, order, kinds, lines, m.a):
            m.groups.setdefault(name, round(float(min(margin, 1.0)), 4))


def _groups(family: str, order: int, kinds: dict[float, str], lines, a: np.ndarray) -> list[str]:
    """Plane groups consistent with the rotation order and the reflections found."""
    mirrors = [d for d, k in kinds.items() if k == "m"]
    glides = [d for d, k in kinds.items() if k == "g"]
    if order == 1 and not mirrors and not glides:
        return ["p1"]
    if order == 2 and not mirrors and not glides:
        return ["p2"]
    if order == 3:
        if not mirrors:
            return ["p3"]
        # p31m: mirrors along the shortest lattice vectors; p3m1: perpendicular to them
        along = _along_shortest(mirrors[0], lines)
        return ["p31m"] if along else ["p3m1"]
    if order == 6:
        return ["p6m"] if mirrors else ["p6"]
    if order == 4:
        if not mirrors and not glides:
            return ["p4"]
        axes = [d for d, _p, distinct in lines if distinct]  # along the square's axes
        if all(kinds.get(d) == "m" for d in axes) and mirrors:
            return ["p4m"]
        return ["p4g"]
    if family in ("rectangular", "centred", "square", "hexagonal"):
        centred = [d for d, _p, distinct in lines if not distinct]
        if order == 1:
            if mirrors:
                return ["cm"] if mirrors[0] in centred else ["pm"]
            return ["pg"] if glides else ["p1"]
        if order == 2:
            if len(mirrors) >= 2:
                return ["cmm"] if all(d in centred for d in mirrors[:2]) else ["pmm"]
            if mirrors and glides:
                return ["pmg"]
            if len(glides) >= 2:
                return ["pgg"]
            if mirrors:
                return ["cmm"] if mirrors[0] in centred else ["pmm", "pmg"]
            return ["pgg", "pmg"] if glides else ["p2"]
    return ["p2"] if order == 2 else ["p1"]


def _along_shortest(deg: float, lines) -> bool:
    """Whether a hexagonal lattice's mirror direction runs along its shortest vectors."""
    shortest = min(p for _, p, _ in lines)
    return any(abs(d - deg) < 1.0 and abs(p - shortest) < 0.05 * shortest for d, p, _ in lines)


#: The columns of ``symmetry_scores[image, k]`` in the feature store: :data:`COLUMNS`,
#: then the lattice family and the measured group as indices into
#: ``sarise.symmetry.LATTICES`` and ``GROUPS`` (-1: no lattice), then the group's margin,
#: then every group's signed margin in ``GROUPS`` order (:data:`MARGIN_COLUMNS`; NaN for
#: groups the lattice family does not allow, and without a lattice).
MARGIN_COLUMNS = tuple(f"margin_{g}" for g in GROUPS)
SCORE_COLUMNS = (*COLUMNS, "lattice_family", "symmetry_group", "symmetry_margin",
                 *MARGIN_COLUMNS)  # fmt: skip


def score_rows(images, *, xp=np) -> np.ndarray:
    """``symmetry_scores`` rows (float32, :data:`SCORE_COLUMNS`) of a stack of images."""
    out = np.full((len(images), len(SCORE_COLUMNS)), np.nan, np.float32)
    for i, im in enumerate(images):
        m = measure(xp.asarray(im, dtype=xp.float64), xp=xp)
        row = m.row()
        out[i, : len(COLUMNS)] = [row[c] for c in COLUMNS]
        out[i, len(COLUMNS)] = LATTICES.index(m.family) if m.has_lattice else -1
        out[i, len(COLUMNS) + 1] = GROUPS.index(m.group) if m.group else -1
        out[i, len(COLUMNS) + 2] = m.groups.get(m.group, np.nan) if m.group else np.nan
        out[i, len(COLUMNS) + 3 :] = [m.groups.get(g, np.nan) for g in GROUPS]
    return out


def score_table(scores: np.ndarray, pixel_nm: np.ndarray | None = None):
    """``symmetry_scores`` as named columns (a DataFrame): the family and group as text
    ("" without a lattice), and ``lattice_a_nm``/``lattice_b_nm`` where the stored pixel
    size (``pixel_nm``, one per image, NaN where unknown) is given."""
    import pandas as pd

    table = pd.DataFrame(np.asarray(scores, np.float64), columns=list(SCORE_COLUMNS))
    fam = table.pop("lattice_family").fillna(-1).astype(int)
    grp = table.pop("symmetry_group").fillna(-1).astype(int)
    table = table.drop(columns=list(MARGIN_COLUMNS))
    table["lattice_family"] = [LATTICES[i] if i >= 0 else "" for i in fam]
    table["symmetry_group"] = [GROUPS[i] if i >= 0 else "" for i in grp]
    table["rotation_order"] = table["rotation_order"].fillna(0).astype(int)
    if pixel_nm is not None:
        table["lattice_a_nm"] = table["lattice_a_px"] * pixel_nm
        table["lattice_b_nm"] = table["lattice_b_px"] * pixel_nm
    return table


#: Weights of :func:`combined_log_probabilities`: the model's log-probability, the bonus
#: of a group the measurement finds, and the margin (in score units) at which a group gets
#: half of it. Fitted by maximum likelihood to the shipped model's logits and the
#: measurement of 1,088 validation images of its two training recipes
#: (``python benchmarks/bench_combined.py --fit``).
COMBINED_WEIGHTS = (0.78, 3.50, 0.027)


def measured_classes(scores, classes=None) -> np.ndarray:
    """The measured group of each ``symmetry_scores`` row as an index into ``classes``
    (default: ``sarise.symmetry.GROUPS``); -1 without a lattice or for a group not in
    ``classes``."""
    classes = list(GROUPS if classes is None else classes)
    column = np.array([classes.index(g) if g in classes else -1 for g in GROUPS] + [-1])
    group = np.nan_to_num(np.asarray(scores, np.float64)[:, len(COLUMNS) + 1], nan=-1)
    return column[group.astype(int)]


def combined_log_probabilities(logits, scores, classes=None, weights=COMBINED_WEIGHTS):
    """The plane group of each image from the classifier and the measurement together.

    ``w0 * log_softmax(logits)[g] + w1 * sigmoid(margin_g / w2)``, renormalised, where
    ``margin_g`` is group ``g``'s signed margin in the ``symmetry_scores`` row
    (:data:`MARGIN_COLUMNS`). The measured group gets nearly the whole bonus ``w1``; a
    group whose scores only just miss a threshold gets about half of it, so the model
    decides between the groups the measurement barely separates; a group the scores
    contradict gets nothing. The measurement never reads the generator the model learnt
    from, so it carries over to images of other origins; where it finds no lattice (NaN
    margins) the model decides alone.

    Parameters
    ----------
    logits : array ``[n, k]``
        The model's logits, one column per name in ``classes``.
    scores : array ``[n, len(SCORE_COLUMNS)]``
        :func:`score_rows` of the same images.
    classes : list of str, optional
        The model's group names in column order (default: ``sarise.symmetry.GROUPS``).

    Returns
    -------
    ndarray, float64 ``[n, k]``: log-probabilities.
    """
    from scipy.special import expit, log_softmax

    classes = list(GROUPS if classes is None else classes)
    z = weights[0] * log_softmax(np.asarray(logits, np.float64), axis=1)
    first = len(SCORE_COLUMNS) - len(MARGIN_COLUMNS)
    columns = [first + GROUPS.index(c) if c in GROUPS else None for c in classes]
    scores = np.asarray(scores, np.float64)
    margin = np.stack([scores[:, j] if j is not None else np.full(len(scores), np.nan)
                       for j in columns], axis=1)  # fmt: skip
    z += weights[1] * expit(np.nan_to_num(margin, nan=-np.inf) / weights[2])
    return log_softmax(z, axis=1)


def stored_pixel_nm(meta, size: int, fit: str) -> np.ndarray:
    """The size in nm of one stored pixel of each image (NaN where the file gave none):
    the file's pixel over the row's ``zoom`` (stored pixels per file pixel); in rows
    stored before ingest recorded it, from ``fit``: a square crop (``crop``) or pad
    (``pad``) of the scan resampled to ``size``, or a tile at native resolution (``tile``).

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"pixel_size_x_m": [1e-10] * 2, "pixels_x": [512] * 2,
    ...                      "pixels_y": [256] * 2, "zoom": [2.0, None]})
    >>> stored_pixel_nm(rows, 128, "crop").tolist()  # the second: 256 px cropped to 128
    [0.05, 0.2]
    """
    import pandas as pd

    n = len(meta)
    if "pixel_size_x_m" not in meta:
        return np.full(n, np.nan)
    px = pd.to_numeric(meta["pixel_size_x_m"], errors="coerce").to_numpy(np.float64) * 1e9
    zoom = (pd.to_numeric(meta["zoom"], errors="coerce").to_numpy(np.float64) if "zoom" in meta
            else np.full(n, np.nan))  # fmt: skip
    if fit != "auto" and "pixels_x" in meta and "pixels_y" in meta:
        nx, ny = (pd.to_numeric(meta[c], errors="coerce").to_numpy(np.float64)
                  for c in ("pixels_x", "pixels_y"))  # fmt: skip
        side = np.minimum(nx, ny) if fit == "crop" else np.maximum(nx, ny)
        zoom = np.where(np.isnan(zoom), 1.0 if fit == "tile" else size / side, zoom)
    return px / zoom


def run_columns(features_group, meta, preprocessing: dict):
    """The measured symmetry of a run's images as named columns aligned with ``meta`` (its
    first rows), or None when ``features.zarr`` has no ``symmetry_scores``; with the
    model's logits, also ``combined_group`` and ``combined_confidence``
    (:func:`combined_log_probabilities`)."""
    if "symmetry_scores" not in features_group:
        return None
    if list(features_group.attrs.get("symmetry_columns", [])) != list(SCORE_COLUMNS):
        logger.warning("the measured symmetry of this run has other columns (an older "
                       "sarise): run `sarise extract` again to see it")  # fmt: skip
        return None
    scores = features_group["symmetry_scores"][: len(meta)]
    nm = stored_pixel_nm(meta, int(preprocessing.get("size", 0) or 1),
                         str(preprocessing.get("fit", "crop")))  # fmt: skip
    table = score_table(scores, nm[: len(scores)])
    if "logits" in features_group:
        classes = list(features_group.attrs["groups"])
        logp = combined_log_probabilities(features_group["logits"][: len(scores)], scores,
                                          classes)  # fmt: skip
        best = logp.argmax(axis=1)
        table["combined_group"] = np.asarray(classes)[best]
        table["combined_confidence"] = np.exp(logp[np.arange(len(best)), best])
    return table.set_index(meta.index[: len(scores)])


def symmetry_descriptor(scores: np.ndarray) -> np.ndarray:
    """A scale-free descriptor from ``symmetry_scores`` rows: the rotation, mirror and
    glide scores, the lattice family (one-hot, and a "no lattice" flag), b/a and the cell
    angle / 90 (NaN as 0). The lattice constant is left out: magnifications differ."""
    x = np.asarray(scores, np.float64)
    col = {c: i for i, c in enumerate(SCORE_COLUMNS)}
    parts = [x[:, [col[c] for c in ("rot2", "rot3", "rot4", "rot6", "mirror", "glide")]]]
    fam = x[:, col["lattice_family"]]
    parts.append((fam[:, None] == np.arange(len(LATTICES))[None, :]).astype(float))
    parts.append((fam < 0)[:, None].astype(float))
    a, b = x[:, col["lattice_a_px"]], x[:, col["lattice_b_px"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        parts.append(np.stack([b / a, x[:, col["lattice_angle_deg"]] / 90.0], axis=1))
    return np.nan_to_num(np.concatenate(parts, axis=1), nan=0.0, posinf=0.0, neginf=0.0)


def combine(cnn: np.ndarray, scores: np.ndarray | None, kind: str, weight: float = 1.0):
    """The descriptor ``kind`` (``cnn``, ``symmetry`` or ``both``) of images with these
    model features and ``symmetry_scores`` rows, float32."""
    if kind == "cnn":
        return np.asarray(cnn, np.float32)
    if scores is None:
        from sarise.errors import SariseError

        raise SariseError(f"descriptor {kind!r} needs the measured symmetry: extract with "
                          "extract.symmetry: true")  # fmt: skip
    sym = symmetry_descriptor(scores)
    if kind == "symmetry":
        return sym.astype(np.float32)
    from sarise.project import _normalise

    both = [_normalise(cnn, "cosine"), weight * _normalise(sym, "cosine")]
    return np.concatenate(both, axis=1).astype(np.float32)
