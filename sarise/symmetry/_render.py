"""Exact wallpaper-pattern rendering.

A pattern is built in two exact steps:

1. A periodic motif raster ``f`` on the unit cell (``n x n`` samples at
   fractional coordinates ``k / n``) is symmetrised by summing it over the group's
   orbit. Every operation of a plane group, in the conventional fractional basis,
   is an integer matrix plus a translation of 0 or 1/2, so for ``n`` a power of two it maps
   raster points onto raster points: the orbit sum is an index gather. The motif
   is quantised to integers first (2**40 levels, exact in float64), so each orbit
   sum is exact in any order and the raster is invariant bit for bit.
2. The image samples the continuous, periodic interpolant of that raster at each
   pixel's fractional coordinates ``u = B^-1 (x - origin)``, for any lattice
   orientation and phase. The interpolant commutes with the group: bilinear on
   the square raster (invariant under the raster's own square symmetry, which
   contains every non-hexagonal point group in its ITA basis) and linear on the
   equilateral triangulation for hexagonal groups.

So the rendered function is exactly invariant under the group at every point in
the plane; nothing is rotated or resampled as a raster.
"""

from __future__ import annotations

import math
from functools import cache

import numba
import numpy as np

from sarise.symmetry._groups import PlaneGroup, get_group, holohedry

_QUANTUM = float(2**40)  # motif levels; 12 terms of 2**40 stay exact in float64

__all__ = [
    "blur_raster",
    "interpolate",
    "orbit_index",
    "render_raster",
    "self_similarity",
    "symmetrise",
]


@cache
def orbit_index(group: str, n: int) -> np.ndarray:
    """Flat raster indices of the orbit of every raster point, shape ``(order, n * n)``:
    row ``k`` is where operation ``k`` takes each point (summed over rows, contiguous)."""
    g = get_group(group)
    _check_resolution(n)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    out = np.empty((g.order, n * n), dtype=np.intp)
    for k, (m, t) in enumerate(zip(g.linear, g.translation, strict=True)):
        ti, tj = round(t[0] * n), round(t[1] * n)
        ii = (m[0, 0] * i + m[0, 1] * j + ti) % n
        jj = (m[1, 0] * i + m[1, 1] * j + tj) % n
        out[k] = (ii * n + jj).ravel()
    out.setflags(write=False)
    return out


def symmetrise(motif: np.ndarray, group: str | PlaneGroup) -> np.ndarray:
    """Average a periodic motif raster over the orbits of ``group``.

    Parameters
    ----------
    motif : ndarray, shape (n, n)
        Samples at fractional cell coordinates ``(i / n, j / n)``; ``n`` a power of two.
    group : str or PlaneGroup

    Returns
    -------
    ndarray, shape (n, n)
        A raster invariant, bit for bit, under every operation of ``group``.
    """
    name = group.name if isinstance(group, PlaneGroup) else get_group(group).name
    n = motif.shape[0]
    if motif.ndim != 2 or motif.shape[1] != n:
        raise ValueError(f"motif must be a square 2-D raster, got shape {motif.shape}")
    _check_resolution(n)
    idx = orbit_index(name, n)
    # Quantise to integers (exact in float64) so that every orbit sum is exact,
    # whatever the order of its terms: the result is invariant bit for bit.
    scale = _QUANTUM / max(float(np.abs(motif).max()), 1e-300)
    q = np.rint(motif * scale)
    return (q.ravel()[idx].sum(axis=0) / (scale * idx.shape[0])).reshape(n, n)


def blur_raster(raster: np.ndarray, basis: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the periodic pattern of a cell raster by an isotropic kernel of ``sigma`` pixels.

    The kernel acts on the continuous pattern (transfer ``(1 + x / 8) ** -8`` with
    ``x = 2 pi^2 sigma^2 |nu|^2``, a Gaussian's to within a few percent, computed
    without transcendental functions), so it commutes with every isometry: the
    symmetry is kept.
    """
    n = raster.shape[0]
    h = (np.fft.fftfreq(n) * n)[:, None]
    k = (np.fft.rfftfreq(n) * n)[None, :]
    ginv = np.linalg.inv(basis.T @ basis)
    nu2 = ginv[0, 0] * h * h + 2.0 * ginv[0, 1] * h * k + ginv[1, 1] * k * k
    x = 1.0 + (2.0 * math.pi**2 * sigma * sigma / 8.0) * nu2
    x2 = x * x
    x4 = x2 * x2
    return np.fft.irfft2(np.fft.rfft2(raster) / (x4 * x4), s=(n, n))


def _check_resolution(n: int) -> None:
    if n < 8 or n & (n - 1):
        raise ValueError(f"cell_resolution must be a power of two >= 8, got {n}")


def _setting_matrices(setting: str) -> np.ndarray:
    # Lattice point symmetries that are integer matrices in the setting's basis (the
    # hexagonal metric of a centred cell adds 3-fold axes that are not: not searched).
    family = {"centred": "rectangular", "centred_square": "square", "rhombic": None}.get(
        setting, setting
    )
    if family is None:  # rhombic primitive cell: mirrors swap a1 and a2
        return np.array(
            [[[1, 0], [0, 1]], [[-1, 0], [0, -1]], [[0, 1], [1, 0]], [[0, -1], [-1, 0]]]
        )
    return holohedry(family)


@cache
def _frequency_permutation(matrix: tuple[int, int, int, int], n: int) -> np.ndarray:
    """Flat indices ``q -> M^-T q (mod n)`` on an ``n x n`` FFT grid: the FFT of
    ``z(M k)`` is ``Z(M^-T q)`` for a unimodular integer matrix ``M``."""
    m = np.array(matrix, dtype=np.int64).reshape(2, 2)
    minv_t = np.rint(np.linalg.inv(m)).astype(np.int64).T
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    ii = (minv_t[0, 0] * i + minv_t[0, 1] * j) % n
    jj = (minv_t[1, 0] * i + minv_t[1, 1] * j) % n
    return (ii * n + jj).ravel()


@cache
def _own_peaks(group: str, setting: str, n: int) -> tuple[tuple[tuple[int, ...], np.ndarray], ...]:
    """For each lattice operation ``M`` of ``setting``: the translations (on an
    ``n x n`` grid) where a pattern of ``group`` correlates perfectly with its
    ``M`` image, widened by a quarter cell; False there, True elsewhere."""
    g = get_group(group)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    out = []
    for m in _setting_matrices(setting):
        keep = np.ones((n, n), dtype=bool)
        for lin, tau in zip(g.linear, g.translation, strict=True):
            if not np.array_equal(lin, m):
                continue
            # Invariance z(k) = z(M k + tau) puts a peak of sum_k z(k + t) z(M k) at
            # t = -M^-1 tau.
            peak = -np.linalg.solve(m, tau) * n
            di = np.abs((i - peak[0] + n / 2) % n - n / 2)
            dj = np.abs((j - peak[1] + n / 2) % n - n / 2)
            keep &= np.maximum(di, dj) >= n / 4
        out.append((tuple(int(v) for v in m.ravel()), keep.ravel()))
    return tuple(out)


def self_similarity(raster: np.ndarray, group: PlaneGroup, setting: str) -> float:
    """Largest correlation of a symmetrised raster with its image under a lattice
    operation the group lacks.

    Every point operation ``M`` of the lattice is tried at every raster translation,
    away from the translations where the group itself makes the pattern invariant:
    this finds accidental extra rotations and mirrors (a p2 pattern that is also
    mirror symmetric), pure mirrors where the group has glides (a p4g pattern that is
    nearly p4m) and extra translations (a smaller cell). Values near 1 mean the motif
    would carry the wrong label. Computed on every other raster sample (which integer
    matrices map onto itself) with one FFT: the other orientations are index
    permutations of its spectrum.
    """
    z = raster[::2, ::2]
    n = z.shape[0]
    z = z - z.mean()
    var = float((z * z).sum())
    if var == 0.0:
        return 1.0
    perms, keep = _similarity_tables(group.name, setting, n)
    fz = np.fft.fft2(z).ravel()
    corr = np.fft.ifft2((fz[None, :] * np.conj(fz[perms])).reshape(-1, n, n)).real
    return float(corr[keep].max()) / var


@cache
def _similarity_tables(group: str, setting: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`self_similarity`'s spectrum permutations (one row per lattice operation)
    and the mask of the translations it searches, shape ``(operations, n, n)``."""
    peaks = _own_peaks(group, setting, n)
    perms = np.stack([_frequency_permutation(m, n) for m, _ in peaks])
    keep = np.stack([k for _, k in peaks]).reshape(-1, n, n)
    perms.setflags(write=False)
    keep.setflags(write=False)
    return perms, keep


def _padded(raster: np.ndarray) -> np.ndarray:
    """The raster with its first row and column repeated after the last (periodic)."""
    n = raster.shape[0]
    out = np.empty((n + 1, n + 1), dtype=np.float64)
    out[:n, :n] = raster
    out[n, :n] = raster[0]
    out[:, n] = out[:, 0]
    return out.ravel()


@numba.njit(cache=True, nogil=True, inline="always")
def _value(flat, n, hexagonal, g1, g2):  # pragma: no cover - compiled
    f1 = math.floor(g1)
    f2 = math.floor(g2)
    a = g1 - f1
    b = g2 - f2
    # n is a power of two: two's-complement masking is the periodic wrap, negatives too.
    k = (int(f1) & (n - 1)) * (n + 1) + (int(f2) & (n - 1))
    v00 = flat[k]
    v11 = flat[k + n + 2]
    if hexagonal:
        if a >= b:
            p = flat[k + n + 1]
            return v00 + a * (p - v00) + b * (v11 - p)
        p = flat[k + 1]
        return v00 + b * (p - v00) + a * (v11 - p)
    top = v00 + b * (flat[k + 1] - v00)
    bottom = flat[k + n + 1] + b * (v11 - flat[k + n + 1])
    return top + a * (bottom - top)


@numba.njit(cache=True, nogil=True)
def _points_kernel(flat, n, hexagonal, m, c, xs, ys, out):  # pragma: no cover - compiled
    m00, m01, m10, m11, c0, c1 = m[0, 0], m[0, 1], m[1, 0], m[1, 1], c[0], c[1]
    for p in range(xs.size):
        x = xs[p]
        y = ys[p]
        out[p] = _value(flat, n, hexagonal, m00 * x + m01 * y + c0, m10 * x + m11 * y + c1)


@numba.njit(cache=True, nogil=True)
def _grid_kernel(flat, n, hexagonal, m, c, out):  # pragma: no cover - compiled
    m00, m01, m10, m11, c0, c1 = m[0, 0], m[0, 1], m[1, 0], m[1, 1], c[0], c[1]
    for i in range(out.shape[0]):
        y = float(i)
        for j in range(out.shape[1]):
            x = float(j)
            out[i, j] = _value(flat, n, hexagonal, m00 * x + m01 * y + c0, m10 * x + m11 * y + c1)


def _affine(inv_basis: np.ndarray, phase: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    m = np.ascontiguousarray(inv_basis, dtype=np.float64) * n
    c = np.ascontiguousarray(phase, dtype=np.float64) * n
    return m, c


def interpolate(
    raster: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    inv_basis: np.ndarray,
    phase: np.ndarray,
    hexagonal: bool,
) -> np.ndarray:
    """Evaluate the periodic interpolant of a cell raster at pixel coordinates.

    The fractional cell coordinates of a point are ``u = inv_basis @ (x, y) + phase``.

    Parameters
    ----------
    raster : ndarray, shape (n, n)
        Cell samples at ``(i / n, j / n)``.
    x, y : array_like
        Pixel coordinates (column, row) of the points, any real values, broadcast together.
    inv_basis : ndarray, shape (2, 2)
        Inverse of the cell-vector matrix (columns ``a1, a2`` in pixels).
    phase : ndarray, shape (2,)
        Fractional coordinates of the pixel ``(0, 0)``.
    hexagonal : bool
        Linear interpolation on the equilateral triangles of a 120-degree cell
        (split along ``u1 = u2``) instead of bilinear.

    Returns
    -------
    ndarray, float64
        Values at the points, the shape of ``x`` and ``y`` broadcast.
    """
    n = raster.shape[0]
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    m, c = _affine(inv_basis, phase, n)
    out = np.empty(x.size, dtype=np.float64)
    _points_kernel(_padded(raster), n, bool(hexagonal), m, c, x.ravel(), y.ravel(), out)
    return out.reshape(x.shape)


def render_raster(
    raster: np.ndarray,
    shape: tuple[int, int],
    *,
    inv_basis: np.ndarray,
    phase: np.ndarray,
    hexagonal: bool,
) -> np.ndarray:
    """Sample the interpolant at every pixel centre ``(x, y) = (j, i)`` of an image.

    Same arithmetic as :func:`interpolate` at integer coordinates, bit for bit.
    """
    n = raster.shape[0]
    m, c = _affine(inv_basis, phase, n)
    out = np.empty(shape, dtype=np.float64)
    _grid_kernel(_padded(raster), n, bool(hexagonal), m, c, out)
    return out
