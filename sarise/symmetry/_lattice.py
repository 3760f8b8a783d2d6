"""Lattice sampling: cell vectors in pixels for a group on a lattice type."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sarise.symmetry._groups import PlaneGroup

__all__ = ["Lattice", "sample_lattice"]

_SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class Lattice:
    """A lattice in the basis the group's operations are written in.

    Attributes
    ----------
    kind : str
        Lattice type, one of :data:`~sarise.symmetry.LATTICES`.
    setting : str
        Basis the motif raster is laid on: ``oblique``, ``rectangular``, ``centred``
        (conventional rectangular cell with centring), ``rhombic``, ``square`` or
        ``hexagonal`` (120 degrees).
    basis : ndarray, shape (2, 2)
        Columns are the cell vectors ``a1, a2`` in pixels, ``(x, y)`` = (column, row),
        before rotation.
    """

    kind: str
    setting: str
    basis: np.ndarray

    @property
    def cell_px(self) -> float:
        """Square root of the primitive cell area, in pixels."""
        area = abs(np.linalg.det(self.basis)) / (2.0 if self.setting.startswith("centred") else 1.0)
        return math.sqrt(area)

    @property
    def metric(self) -> np.ndarray:
        """Metric tensor ``B.T @ B`` scaled to unit primitive-cell area."""
        g = self.basis.T @ self.basis
        area = abs(np.linalg.det(self.basis)) / (2.0 if self.setting.startswith("centred") else 1.0)
        return g / area


def _cell(a: float, b: float, gamma_deg: float) -> np.ndarray:
    g = math.radians(gamma_deg)
    return np.array([[a, b * math.cos(g)], [0.0, b * math.sin(g)]])


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * rng.random()


def _aspect(rng, lo, hi, tol, avoid=()):
    """An edge ratio in [lo, hi], inverted half the time, away from ``avoid`` values."""
    for _ in range(1000):
        r = _uniform(rng, lo, hi)
        if all(abs(r - v) / v > tol for v in (1.0, *avoid)):
            return r if rng.random() < 0.5 else 1.0 / r
    raise ValueError(f"aspect range [{lo}, {hi}] leaves no ratio away from {(1.0, *avoid)}")


def _is_special(basis: np.ndarray, tol: float) -> bool:
    """True if a 2-D lattice is within ``tol`` of a lattice of higher symmetry."""
    a1, a2 = basis[:, 0].copy(), basis[:, 1].copy()
    for _ in range(100):  # Lagrange-Gauss reduction
        if a1 @ a1 > a2 @ a2:
            a1, a2 = a2, a1
        mu = round((a1 @ a2) / (a1 @ a1))
        if mu == 0:
            break
        a2 = a2 - mu * a1
    n1, n2, d = a1 @ a1, a2 @ a2, abs(a1 @ a2)
    cos = d / math.sqrt(n1 * n2)
    return cos < tol or (n2 - n1) / n1 < tol or abs(2 * d - n1) / n1 < tol


def sample_lattice(
    group: PlaneGroup,
    kind: str,
    rng: np.random.Generator,
    *,
    cell_px: tuple[float, float],
    aspect: tuple[float, float],
    oblique_angle: tuple[float, float],
    tol: float,
    cell_scale: str = "uniform",
) -> Lattice:
    """Draw cell vectors for ``group`` on lattice type ``kind``.

    Parameters
    ----------
    group : PlaneGroup
        The group; its family fixes the basis the operations act in.
    kind : str
        One of ``group.lattices``.
    rng : numpy.random.Generator
        Source of randomness.
    cell_px : (float, float)
        Range of the square root of the primitive cell area, in pixels.
    aspect : (float, float)
        Range of edge ratios of rectangular and centred cells.
    oblique_angle : (float, float)
        Range of the oblique cell angle, in degrees.
    tol : float
        Minimal relative distance from a metric of higher symmetry.
    cell_scale : {'uniform', 'log'}
        How the cell size is drawn from ``cell_px``.

    Returns
    -------
    Lattice
    """
    if kind not in group.lattices:
        raise ValueError(f"lattice must be one of {group.lattices} for {group.name}, got {kind!r}")
    if cell_scale == "log":
        size = math.exp(_uniform(rng, math.log(cell_px[0]), math.log(cell_px[1])))
    else:
        size = _uniform(rng, *cell_px)
    family = group.family
    if family in ("oblique", "rectangular"):
        # Primitive bases. p1/p2 on a centred lattice use the rhombic primitive cell.
        if kind == "oblique":
            for _ in range(1000):
                basis = _cell(1.0, _uniform(rng, 1.0, aspect[1]), _uniform(rng, *oblique_angle))
                if not _is_special(basis, tol):
                    break
            else:
                raise ValueError("oblique_angle and aspect leave no generic oblique lattice")
            setting = "oblique"
        elif kind == "rectangular":
            basis, setting = _cell(1.0, _aspect(rng, *aspect, tol), 90.0), "rectangular"
        elif kind == "centred":
            r = _aspect(rng, *aspect, tol, avoid=(_SQRT3,))
            gamma = 2.0 * math.degrees(math.atan(r))  # rhombus from a centred a x (r a) cell
            basis, setting = _cell(1.0, 1.0, gamma), "rhombic"
        elif kind == "square":
            basis, setting = _cell(1.0, 1.0, 90.0), "square"
        else:
            basis, setting = _cell(1.0, 1.0, 120.0), "hexagonal"
    elif family == "centred":
        r = {"square": 1.0, "hexagonal": _SQRT3}.get(kind)
        if r is None:
            r = _aspect(rng, *aspect, tol, avoid=(_SQRT3,))
        elif rng.random() < 0.5:
            r = 1.0 / r
        basis = _cell(1.0, r, 90.0)
        setting = "centred_square" if r == 1.0 else "centred"
    elif family == "square":
        basis, setting = _cell(1.0, 1.0, 90.0), "square"
    else:
        basis, setting = _cell(1.0, 1.0, 120.0), "hexagonal"
    area = abs(np.linalg.det(basis)) / (2.0 if setting.startswith("centred") else 1.0)
    basis = basis * (size / math.sqrt(area))
    return Lattice(kind=kind, setting=setting, basis=basis)
