"""The 17 wallpaper groups and the exact synthetic dataset the classifier learns from.

>>> from sarise.symmetry import GROUPS, sample
>>> GROUPS[10]
'p4m'
>>> sample(10, seed=0).group
'p4m'
"""

from sarise.symmetry._dataset import generate, open_split, write_preview, write_split
from sarise.symmetry._groups import GROUPS, LATTICES, PlaneGroup, get_group, group_lattices
from sarise.symmetry._render import interpolate, symmetrise
from sarise.symmetry._sample import WallpaperImage, render, sample, sample_seed

__all__ = [
    "GROUPS",
    "LATTICES",
    "PlaneGroup",
    "WallpaperImage",
    "generate",
    "get_group",
    "group_lattices",
    "interpolate",
    "open_split",
    "render",
    "sample",
    "sample_seed",
    "symmetrise",
    "write_preview",
    "write_split",
]
