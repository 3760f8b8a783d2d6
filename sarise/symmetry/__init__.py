"""The 17 wallpaper groups and the exact synthetic dataset the classifier learns from.

>>> from sarise.symmetry import GROUPS, sample
>>> GROUPS[10]
'p4m'
>>> sample(10, seed=0).group
'p4m'
"""

import importlib

from sarise.symmetry._groups import (
    GROUPS,
    LATTICES,
    PlaneGroup,
    get_group,
    group_lattices,
    group_name,
)

# The generator loads on first use (as scikit-image's lazy loading does): code that needs
# only the groups' names, such as a measured-symmetry column, skips its 0.7 s import.
_LAZY = {
    "generate": "_dataset",
    "open_split": "_dataset",
    "write_preview": "_dataset",
    "write_split": "_dataset",
    "interpolate": "_render",
    "symmetrise": "_render",
    "WallpaperImage": "_sample",
    "render": "_sample",
    "sample": "_sample",
    "sample_seed": "_sample",
}

__all__ = [
    "GROUPS",
    "LATTICES",
    "PlaneGroup",
    "WallpaperImage",
    "generate",
    "get_group",
    "group_lattices",
    "group_name",
    "interpolate",
    "open_split",
    "render",
    "sample",
    "sample_seed",
    "symmetrise",
    "write_preview",
    "write_split",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"sarise.symmetry.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
