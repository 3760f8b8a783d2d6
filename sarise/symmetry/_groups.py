"""The 17 plane (wallpaper) groups: names, lattice types and general positions.

Operations are written in the *conventional* fractional coordinates of the
International Tables for Crystallography, Vol. A (ITA), plane-group tables:
an operation maps ``u -> M @ u + t`` with ``M`` an integer matrix and ``t`` a
translation in units of the cell (0 or 1/2 here). Hexagonal groups use the ITA
setting ``|a1| = |a2|`` and an angle of 120 degrees between ``a1`` and ``a2``.
Centred groups (cm, cmm) use the conventional rectangular cell; the centring
translation (1/2, 1/2) is listed separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = [
    "GROUPS",
    "LATTICES",
    "PlaneGroup",
    "get_group",
    "group_lattices",
    "group_name",
    "holohedry",
]

#: Group names in label order (ids 0-16).
GROUPS: tuple[str, ...] = (
    "p1", "p2", "pm", "pg", "cm", "pmm", "pmg", "pgg", "cmm",
    "p4", "p4m", "p4g", "p3", "p3m1", "p31m", "p6", "p6m",
)  # fmt: skip

#: Other names of the groups: full Hermann-Mauguin symbols (both settings of the
#: rectangular ones) and Conway's orbifold symbols (``x`` for the cross-cap).
GROUP_ALIASES: dict[str, str] = {
    "p211": "p2", "p1m1": "pm", "p11m": "pm", "p1g1": "pg", "p11g": "pg", "c1m1": "cm",
    "c11m": "cm", "p2mm": "pmm", "p2mg": "pmg", "p2gm": "pmg", "p2gg": "pgg", "c2mm": "cmm",
    "p4mm": "p4m", "p4gm": "p4g", "p6mm": "p6m",
    "o": "p1", "2222": "p2", "**": "pm", "xx": "pg", "*x": "cm", "*2222": "pmm",
    "22*": "pmg", "22x": "pgg", "2*22": "cmm", "442": "p4", "*442": "p4m", "4*2": "p4g",
    "333": "p3", "*333": "p3m1", "3*3": "p31m", "632": "p6", "*632": "p6m",
}  # fmt: skip


#: Lattice types in id order.
LATTICES: tuple[str, ...] = ("oblique", "rectangular", "centred", "square", "hexagonal")

# General positions as (M rows, t): "x,y" notation from ITA translated by hand.
_X = ((1, 0), (0, 1))
_ops: dict[str, list[tuple[tuple[tuple[int, int], tuple[int, int]], tuple[float, float]]]] = {}


def _op(m11, m12, m21, m22, t1=0.0, t2=0.0):
    return ((m11, m12), (m21, m22)), (t1, t2)


_P2 = [_op(1, 0, 0, 1), _op(-1, 0, 0, -1)]
_PMM = [*_P2, _op(-1, 0, 0, 1), _op(1, 0, 0, -1)]
_P4 = [*_P2, _op(0, -1, 1, 0), _op(0, 1, -1, 0)]
_P3 = [_op(1, 0, 0, 1), _op(0, -1, 1, -1), _op(-1, 1, -1, 0)]
_P6 = [*_P3, _op(-1, 0, 0, -1), _op(0, 1, -1, 1), _op(1, -1, 1, 0)]
_M3_1 = [_op(0, -1, -1, 0), _op(-1, 1, 0, 1), _op(1, 0, 1, -1)]  # mirrors of p3m1
_M31 = [_op(0, 1, 1, 0), _op(1, -1, 0, -1), _op(-1, 0, -1, 1)]  # mirrors of p31m

_ops = {
    "p1": [_op(1, 0, 0, 1)],
    "p2": _P2,
    "pm": [_op(1, 0, 0, 1), _op(-1, 0, 0, 1)],
    "pg": [_op(1, 0, 0, 1), _op(-1, 0, 0, 1, 0.0, 0.5)],
    "cm": [_op(1, 0, 0, 1), _op(-1, 0, 0, 1)],
    "pmm": _PMM,
    "pmg": [*_P2, _op(-1, 0, 0, 1, 0.5, 0.0), _op(1, 0, 0, -1, 0.5, 0.0)],
    "pgg": [*_P2, _op(-1, 0, 0, 1, 0.5, 0.5), _op(1, 0, 0, -1, 0.5, 0.5)],
    "cmm": _PMM,
    "p4": _P4,
    "p4m": [*_P4, _op(-1, 0, 0, 1), _op(1, 0, 0, -1), _op(0, 1, 1, 0), _op(0, -1, -1, 0)],
    "p4g": [
        *_P4,
        _op(-1, 0, 0, 1, 0.5, 0.5),
        _op(1, 0, 0, -1, 0.5, 0.5),
        _op(0, 1, 1, 0, 0.5, 0.5),
        _op(0, -1, -1, 0, 0.5, 0.5),
    ],
    "p3": _P3,
    "p3m1": [*_P3, *_M3_1],
    "p31m": [*_P3, *_M31],
    "p6": _P6,
    "p6m": [*_P6, *_M3_1, *_M31],
}

# Lattice types a pattern of each group can sit on. A group of lower symmetry may
# sit on a lattice of higher metric symmetry (p1 and p2 on every lattice type).
_lattices = {
    "p1": LATTICES,
    "p2": LATTICES,
    "pm": ("rectangular", "square"),
    "pg": ("rectangular", "square"),
    "cm": ("centred", "square", "hexagonal"),
    "pmm": ("rectangular", "square"),
    "pmg": ("rectangular", "square"),
    "pgg": ("rectangular", "square"),
    "cmm": ("centred", "square", "hexagonal"),
    "p4": ("square",),
    "p4m": ("square",),
    "p4g": ("square",),
    "p3": ("hexagonal",),
    "p3m1": ("hexagonal",),
    "p31m": ("hexagonal",),
    "p6": ("hexagonal",),
    "p6m": ("hexagonal",),
}

# The cell family the ITA setting of each group is written in.
_family = {
    "p1": "oblique",
    "p2": "oblique",
    **dict.fromkeys(("pm", "pg", "pmm", "pmg", "pgg"), "rectangular"),
    **dict.fromkeys(("cm", "cmm"), "centred"),
    **dict.fromkeys(("p4", "p4m", "p4g"), "square"),
    **dict.fromkeys(("p3", "p3m1", "p31m", "p6", "p6m"), "hexagonal"),
}


@dataclass(frozen=True)
class PlaneGroup:
    """One plane group.

    Attributes
    ----------
    name : str
        Hermann-Mauguin short symbol, e.g. ``"p4g"``.
    label : int
        Index in :data:`GROUPS`.
    family : str
        Cell family of the ITA setting (``oblique``, ``rectangular``, ``centred``,
        ``square`` or ``hexagonal``).
    lattices : tuple of str
        Lattice types a pattern of this group can sit on.
    linear : ndarray of int, shape (k, 2, 2)
        Linear parts of the coset representatives, centring included.
    translation : ndarray of float, shape (k, 2)
        Their translations, in conventional cell units.
    """

    name: str
    label: int
    family: str
    lattices: tuple[str, ...]
    linear: np.ndarray
    translation: np.ndarray

    @property
    def order(self) -> int:
        """Number of operations per conventional cell (the orbit size)."""
        return len(self.linear)

    @property
    def centred(self) -> bool:
        return self.family == "centred"

    @property
    def hexagonal(self) -> bool:
        return self.family == "hexagonal"

    @property
    def rotation_order(self) -> int:
        """The highest rotation order among the operations (1, 2, 3, 4 or 6).

        >>> get_group("p31m").rotation_order, get_group("pgg").rotation_order
        (3, 2)
        """
        orders = []
        for m in self.linear:
            if round(np.linalg.det(m)) != 1:
                continue
            p = np.eye(2, dtype=np.int64)
            for k in range(1, 7):
                p = p @ m
                if np.array_equal(p, np.eye(2, dtype=np.int64)):
                    orders.append(k)
                    break
        return max(orders)

    @property
    def reflects(self) -> bool:
        """Whether the group holds a mirror or a glide (an operation of determinant -1).

        >>> get_group("pg").reflects, get_group("p6").reflects
        (True, False)
        """
        return any(round(np.linalg.det(m)) == -1 for m in self.linear)


def group_name(name: str) -> str | None:
    """The short name (as in :data:`GROUPS`) of a wallpaper group written any usual way,
    or None: any case, spaces, ``_`` and ``-`` ignored, full Hermann-Mauguin or orbifold
    symbols (:data:`GROUP_ALIASES`).

    >>> group_name("P4MM"), group_name("c2mm"), group_name("p3m1"), group_name("*632")
    ('p4m', 'cmm', 'p3m1', 'p6m')
    >>> group_name("p5") is None
    True
    """
    key = "".join(name.split()).lower().replace("_", "").replace("-", "").replace("×", "x")
    return key if key in GROUPS else GROUP_ALIASES.get(key)


def get_group(group: str | int) -> PlaneGroup:
    """Return the :class:`PlaneGroup` for a name or label.

    Parameters
    ----------
    group : str or int
        A name from :data:`GROUPS` or its index.

    Examples
    --------
    >>> get_group("p4m").order
    8
    >>> get_group(8).name, get_group("cmm").order
    ('cmm', 8)
    """
    if isinstance(group, (int, np.integer)) and not isinstance(group, bool):
        if not 0 <= int(group) < len(GROUPS):
            raise ValueError(f"group label must be in 0..16, got {group!r}")
        name = GROUPS[int(group)]
    elif isinstance(group, str) and group in _ops:
        name = group
    else:
        raise ValueError(f"group must be one of the 17 wallpaper groups {GROUPS}, got {group!r}")
    return _build(name)


@cache
def _build(name: str) -> PlaneGroup:
    ops = list(_ops[name])
    if _family[name] == "centred":
        ops += [(m, ((t[0] + 0.5) % 1.0, (t[1] + 0.5) % 1.0)) for m, t in ops]
    linear = np.array([m for m, _ in ops], dtype=np.int64)
    translation = np.array([t for _, t in ops], dtype=np.float64)
    linear.setflags(write=False)
    translation.setflags(write=False)
    return PlaneGroup(name, GROUPS.index(name), _family[name], _lattices[name], linear, translation)


def group_lattices(group: str | int) -> tuple[str, ...]:
    """Lattice types a pattern of ``group`` can sit on (see :data:`LATTICES`)."""
    return get_group(group).lattices


def holohedry(family: str) -> np.ndarray:
    """Integer matrices of the lattice point symmetry, in the family's ITA basis.

    Used to look for accidental extra symmetry of a motif (a p2 motif that also
    happens to be mirror symmetric would be mislabelled).
    """
    if family in ("oblique",):
        mats = [op[0] for op in _P2]
    elif family in ("rectangular", "centred"):
        mats = [op[0] for op in _PMM]
    elif family == "square":
        mats = [op[0] for op in _ops["p4m"]]
    elif family == "hexagonal":
        mats = [op[0] for op in _ops["p6m"]]
    else:
        raise ValueError(f"family must be one of {LATTICES}, got {family!r}")
    return np.array(mats, dtype=np.int64)
