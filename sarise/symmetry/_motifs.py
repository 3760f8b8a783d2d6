"""Motif sources: periodic rasters on the unit cell, before symmetrisation.

Every motif is an ``(n, n)`` float64 raster sampled at fractional cell
coordinates ``(i / n, j / n)``, periodic by construction (row index = ``u1``,
column index = ``u2``). Only basic IEEE arithmetic, FFTs and lookups are used, so a
motif is the same bit for bit in any process.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from sarise.config import NATURAL_IMAGES  # named there: the config validates the names

__all__ = [
    "NATURAL_IMAGES",
    "atoms_motif",
    "field_motif",
    "natural_image",
    "natural_motif",
    "texture_motif",
]

#: Stable ids of natural images (the ``motif_id`` of a natural motif).
NATURAL_IDS: dict[str, int] = {name: i for i, name in enumerate(NATURAL_IMAGES)}


@cache
def natural_image(name: str) -> np.ndarray:
    """Load a bundled natural image as grey levels in [0, 1] (float32).

    Reads the file from scikit-image's installed data folder; nothing is fetched.
    """
    import skimage.data
    from PIL import Image

    if name not in NATURAL_IMAGES:
        raise ValueError(f"natural image must be one of {sorted(NATURAL_IMAGES)}, got {name!r}")
    path = Path(skimage.data.__file__).parent / NATURAL_IMAGES[name]
    try:
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except OSError as exc:
        raise RuntimeError(f"cannot read bundled natural image {path}: {exc}") from None
    grey.setflags(write=False)
    return grey


def natural_motif(
    names: tuple[str, ...], n: int, rng: np.random.Generator, *, crop: tuple[float, float]
) -> tuple[np.ndarray, int]:
    """A random crop of a random natural image, resampled to ``(n, n)``.

    Returns the raster and the image's id in :data:`NATURAL_IDS`.
    """
    name = names[int(rng.integers(len(names)))]
    img = natural_image(name)
    h, w = img.shape
    edge = min(h, w) * (crop[0] + (crop[1] - crop[0]) * rng.random())
    r0 = (h - edge) * rng.random()
    c0 = (w - edge) * rng.random()
    t = (np.arange(n) + 0.5) * (edge / n) - 0.5
    rr, cc = np.meshgrid(r0 + t, c0 + t, indexing="ij")
    out = ndimage.map_coordinates(img, [rr, cc], order=1, mode="nearest").astype(np.float64)
    k = int(rng.integers(8))  # one of the 8 orientations of the square
    out = np.rot90(out, k % 4)
    if k >= 4:
        out = out.T
    return np.ascontiguousarray(out), NATURAL_IDS[name]


@cache
def _freq2(n: int) -> tuple[np.ndarray, np.ndarray]:
    f = np.fft.fftfreq(n) * n
    h = f[:, None]
    k = np.fft.rfftfreq(n)[None, :] * n
    return np.broadcast_to(h, (n, n // 2 + 1)).copy(), np.broadcast_to(k, (n, n // 2 + 1)).copy()


def field_motif(
    n: int,
    rng: np.random.Generator,
    metric: np.ndarray,
    *,
    scale: tuple[float, float],
    sharpen: float,
) -> np.ndarray:
    """A smooth periodic random field on the cell (Matérn-like spectrum).

    Parameters
    ----------
    n : int
        Raster edge.
    rng : numpy.random.Generator
        Source of randomness.
    metric : ndarray, shape (2, 2)
        Cell metric tensor at unit cell area; makes the field isotropic in real space.
    scale : (float, float)
        Range of correlation lengths, fraction of the cell size (drawn log-uniformly).
    sharpen : float
        Probability of a soft threshold turning the field into domain-like patches.
    """
    length = math.exp(math.log(scale[0]) + (math.log(scale[1]) - math.log(scale[0])) * rng.random())
    white = rng.random((n, n)) - 0.5
    h, k = _freq2(n)
    ginv = np.linalg.inv(metric)
    q2 = ginv[0, 0] * h * h + 2.0 * ginv[0, 1] * h * k + ginv[1, 1] * k * k
    x = (2.0 * math.pi * length) ** 2 * q2
    amp = 1.0 / ((1.0 + x) * (1.0 + x))
    out = np.fft.irfft2(np.fft.rfft2(white) * amp, s=(n, n))
    if rng.random() < sharpen:
        std = out.std()
        if std > 0:
            gain = 2.0 + 8.0 * rng.random()
            z = (out - out.mean()) * (gain / std) + (rng.random() - 0.5)
            out = z / np.sqrt(1.0 + z * z)
    return out


def texture_motif(
    n: int,
    rng: np.random.Generator,
    metric: np.ndarray,
    *,
    frequency: tuple[float, float],
    width: tuple[float, float],
) -> np.ndarray:
    """Band-pass filtered white noise on the cell: a texture of one dominant length scale.

    The pass band is a ring of ``|q|`` around a centre frequency (cycles per cell edge,
    measured with the cell ``metric`` so that the ring is round in real space), of
    relative width ``width``; its profile ``(1 + d^2)^-4`` needs no transcendental
    function.
    """
    lo, hi = math.log(frequency[0]), math.log(frequency[1])
    centre = math.exp(lo + (hi - lo) * rng.random())
    sigma = centre * (width[0] + (width[1] - width[0]) * rng.random())
    white = rng.random((n, n)) - 0.5
    h, k = _freq2(n)
    ginv = np.linalg.inv(metric)
    q = np.sqrt(ginv[0, 0] * h * h + 2.0 * ginv[0, 1] * h * k + ginv[1, 1] * k * k)
    d = (q - centre) / sigma
    x = 1.0 + d * d
    x2 = x * x
    amp = 1.0 / (x2 * x2)
    amp[0, 0] = 0.0
    return np.fft.irfft2(np.fft.rfft2(white) * amp, s=(n, n))


#: Special positions (fractional cell coordinates) real atoms favour: corners, edge and
#: face centres; the 1/3-2/3 points of hexagonal cells come last.
_SPECIAL = np.array([[0.0, 0.0], [0.5, 0.5], [0.5, 0.0], [0.0, 0.5],
                     [1 / 3, 2 / 3], [2 / 3, 1 / 3]])  # fmt: skip


def atoms_motif(
    n: int,
    rng: np.random.Generator,
    metric: np.ndarray,
    *,
    species: tuple[int, int],
    count: tuple[int, int],
    radius: tuple[float, float],
    elongation: tuple[float, float],
    special: float = 0.0,
    hexagonal: bool = False,
) -> np.ndarray:
    """Blobs of 1-3 species at random positions (one asymmetric unit's worth).

    With probability ``special`` each atom sits on a special position (:data:`_SPECIAL`;
    the 1/3-2/3 points only on hexagonal cells) instead, round rather than elongated.

    Each blob is the compact bump ``(1 - r^2)^3`` (no transcendental functions),
    elongated and turned at random. ``count`` atoms are drawn per asymmetric unit;
    drawing their positions anywhere in the cell is the same as drawing them in the
    asymmetric unit, since symmetrisation maps each position onto its orbit.
    """
    n_species = int(rng.integers(species[0], species[1] + 1))
    amp = 0.4 + 0.6 * rng.random(n_species)
    amp[rng.random(n_species) < 0.25] *= -1.0
    rad = radius[0] + (radius[1] - radius[0]) * rng.random(n_species)
    n_atoms = int(rng.integers(count[0], count[1] + 1))
    kinds = rng.integers(n_species, size=n_atoms)
    kinds[:n_species] = np.arange(min(n_species, n_atoms))
    pos = rng.random((n_atoms, 2))
    el = elongation[0] + (elongation[1] - elongation[0]) * rng.random(n_atoms)
    if special > 0.0:
        on = rng.random(n_atoms) < special
        choice = rng.integers(len(_SPECIAL) if hexagonal else 4, size=n_atoms)
        pos[on] = _SPECIAL[choice[on]]
        el[on] = 1.0
    # Orientation from a uniform point on the unit circle (no trigonometry).
    c, s = _unit_vectors(rng, n_atoms)
    u = np.arange(n) / n
    d1 = (u[None, :] - pos[:, :1] + 0.5) % 1.0 - 0.5  # (atoms, n) periodic offsets
    d2 = (u[None, :] - pos[:, 1:] + 0.5) % 1.0 - 0.5
    # Cartesian offsets in a frame where the metric is g: x = L d with L L^T = g.
    g = metric
    l00 = math.sqrt(g[0, 0])
    l01 = g[0, 1] / l00
    l11 = math.sqrt(g[1, 1] - l01 * l01)
    x = l00 * d1[:, :, None] + l01 * d2[:, None, :]
    y = np.broadcast_to(l11 * d2[:, None, :], x.shape)
    r = rad[kinds] * el
    ca = (c / r)[:, None, None]
    sa = (s / r)[:, None, None]
    cb = (c * el / rad[kinds])[:, None, None]
    sb = (s * el / rad[kinds])[:, None, None]
    along = ca * x + sa * y
    across = cb * y - sb * x
    r2 = along * along + across * across
    bump = np.maximum(1.0 - r2, 0.0)
    bump = bump * bump * bump
    return np.tensordot(amp[kinds], bump, axes=1)


def _unit_vectors(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.empty(k)
    s = np.empty(k)
    for i in range(k):
        while True:
            x, y = 2.0 * rng.random(2) - 1.0
            r2 = x * x + y * y
            if 1e-6 < r2 <= 1.0:
                r = math.sqrt(r2)
                c[i], s[i] = x / r, y / r
                break
    return c, s
