"""Simulated atomic-resolution images of real crystal projections with known plane groups.

An evaluation set that looks like what sarise meets in practice, made by different means
than the training generator (no motif raster, no symmetrisation): each image is the
projected potential of a real structure, atomic columns as peaks whose height grows with
the column's atomic numbers (``sum Z^1.7``, HAADF-like) and whose width is the probe's,
seen at a random orientation, phase and magnification (4 to 40 px per cell), with the
imaging effects of :mod:`._effects` (shot noise, scan-line jitter and offsets, drift,
background, Gaussian noise, inverted contrast).

========================  =========  =========================================
crystal                   group      cell (Angstrom), columns
========================  =========  =========================================
graphene                  p6m        hexagonal 2.46; C at 1/3 2/3 and 2/3 1/3
hBN                       p3m1       hexagonal 2.50; B and N
MoS2 (1H monolayer)       p3m1       hexagonal 3.16; Mo, and S2 columns
SrTiO3 [001]              p4m        square 3.905; Sr, TiO, O
rutile TiO2 [001]         p4g        square 4.59; Ti, O at (u - 1/2, u), u = 0.305
SrTiO3 [110]              pmm        rectangular 2.76 x 3.905; SrO, Ti, O
========================  =========  =========================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sarise.config import AugmentConfig
from sarise.symmetry._effects import drift_matrix, imaging_effects

__all__ = ["CRYSTALS", "Crystal", "potential", "render_crystal", "simulated_set"]

_HEX = ((1.0, 0.0), (-0.5, math.sqrt(3.0) / 2.0))


@dataclass(frozen=True)
class Crystal:
    """A projected structure: cell vectors (Angstrom, as rows) and columns (u, v, weight)."""

    name: str
    group: str
    a: tuple[tuple[float, float], tuple[float, float]]
    columns: tuple[tuple[float, float, float], ...]


def _w(*z: int) -> float:
    """Column weight: HAADF intensity grows about as Z^1.7 per atom."""
    return float(sum(zi**1.7 for zi in z))


def _scaled(a: float, b=None):
    b = b or _HEX
    return tuple((a * x, a * y) for x, y in b)


_U = 0.305  # rutile's oxygen parameter
CRYSTALS: dict[str, Crystal] = {
    c.name: c
    for c in (
        Crystal("graphene", "p6m", _scaled(2.46),
                ((1 / 3, 2 / 3, _w(6)), (2 / 3, 1 / 3, _w(6)))),
        Crystal("hBN", "p3m1", _scaled(2.50),
                ((1 / 3, 2 / 3, _w(5)), (2 / 3, 1 / 3, _w(7)))),
        Crystal("MoS2", "p3m1", _scaled(3.16),
                ((1 / 3, 2 / 3, _w(42)), (2 / 3, 1 / 3, _w(16, 16)))),
        Crystal("SrTiO3-001", "p4m", ((3.905, 0.0), (0.0, 3.905)),
                ((0.0, 0.0, _w(38)), (0.5, 0.5, _w(22, 8)), (0.5, 0.0, _w(8)),
                 (0.0, 0.5, _w(8)))),
        # origin on a 4-fold axis, as the International Tables set p4g: Ti on the 2mm sites
        Crystal("rutile-001", "p4g", ((4.59, 0.0), (0.0, 4.59)),
                ((0.5, 0.0, _w(22)), (0.0, 0.5, _w(22)), (_U - 0.5, _U, _w(8)),
                 (-_U - 0.5, -_U, _w(8)), (_U, 0.5 - _U, _w(8)), (-_U, 0.5 + _U, _w(8)))),
        Crystal("SrTiO3-110", "pmm", ((3.905 / math.sqrt(2.0), 0.0), (0.0, 3.905)),
                ((0.0, 0.0, _w(38, 8)), (0.0, 0.5, _w(22)), (0.5, 0.5, _w(8, 8)))),
    )
}  # fmt: skip

#: The imaging conditions of the simulated set (each effect's probability and strength).
EFFECTS = AugmentConfig(
    noise={"p": 0.7, "range": (0.05, 0.5)},
    scan_lines={"p": 0.5, "range": (0.02, 0.3)},
    drift={"p": 0.5, "range": (0.005, 0.03)},
    background={"p": 0.5, "range": (0.2, 1.5)},
    line_jitter={"p": 0.4, "range": (0.1, 0.6)},
    shot_noise={"p": 0.6, "range": (5.0, 200.0)},
    invert=0.2,
)


def potential(c: Crystal, basis: np.ndarray, origin: np.ndarray, sigma: float, x, y):
    """The projected potential at pixel coordinates ``(x, y)``: every column a peak
    ``weight (1 + r^2 / (8 sigma^2))^-4`` (a Gaussian's shape, rational), over the 5 x 5
    nearest cells; ``basis`` columns are the cell vectors in pixels, ``origin`` the cell origin."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    u = np.linalg.inv(basis) @ np.stack([x.ravel() - origin[0], y.ravel() - origin[1]])
    out = np.zeros(x.size)
    s2 = 1.0 / (8.0 * sigma * sigma)
    for cu, cv, weight in c.columns:
        du = u[0] - cu
        dv = u[1] - cv
        du -= np.floor(du + 0.5)
        dv -= np.floor(dv + 0.5)
        for i in (-2, -1, 0, 1, 2):
            for j in (-2, -1, 0, 1, 2):
                px = basis[0, 0] * (du + i) + basis[0, 1] * (dv + j)
                py = basis[1, 0] * (du + i) + basis[1, 1] * (dv + j)
                t = 1.0 + (px * px + py * py) * s2
                t2 = t * t
                out += weight / (t2 * t2)
    return out.reshape(x.shape)


def render_crystal(
    crystal: str | Crystal,
    size: int,
    rng: np.random.Generator,
    *,
    cell_px: tuple[float, float] = (5.0, 40.0),
    effects: AugmentConfig | None = EFFECTS,
) -> np.ndarray:
    """One simulated image ``[size, size]`` in [0, 1] of a crystal projection."""
    c = CRYSTALS[crystal] if isinstance(crystal, str) else crystal
    a = np.array(c.a, dtype=np.float64).T  # columns a1, a2 in Angstrom
    area = abs(np.linalg.det(a))
    px = math.exp(rng.uniform(math.log(cell_px[0]), math.log(cell_px[1]))) / math.sqrt(area)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    basis = rot @ a * px  # pixels
    if effects is not None and rng.random() < effects.drift.p:
        basis = drift_matrix(rng, rng.uniform(*effects.drift.range)) @ basis
    sigma = rng.uniform(0.25, 0.55) * px  # probe + thermal width, Angstrom -> px
    origin = rng.random(2) * size
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    img = potential(c, basis, origin, sigma, xx.ravel(), yy.ravel())
    img = img.reshape(size, size)
    if effects is not None:
        spread = float(img.std()) or 1.0
        if rng.random() < effects.scan_lines.p:
            amp = rng.uniform(*effects.scan_lines.range) * spread
            img = img + amp * np.cumsum(rng.standard_normal(size))[:, None] / math.sqrt(size)
        if rng.random() < effects.noise.p:
            img = img + rng.uniform(*effects.noise.range) * spread * rng.standard_normal(img.shape)
        img, _ = imaging_effects(img, rng, effects, cell_px=math.sqrt(area) * px, spread=spread)
    lo, hi = float(img.min()), float(img.max())
    return ((img - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)


def simulated_set(per_crystal: int, size: int, seed: int = 0):
    """``(images [n, size, size], groups [n], crystals [n])``, ``per_crystal`` of each."""
    images, groups, names = [], [], []
    for k, (name, c) in enumerate(CRYSTALS.items()):
        rng = np.random.default_rng([seed, 97, k])
        for _ in range(per_crystal):
            images.append(render_crystal(c, size, rng))
            groups.append(c.group)
            names.append(name)
    return np.stack(images) if images else np.zeros((0, size, size), np.float32), groups, names
