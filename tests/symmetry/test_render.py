"""Exact symmetry, checked with the independent geometry of tests/symmetry/geometry.py."""

import numpy as np
import pytest
from scipy import ndimage

from sarise.config import SymmetryConfig
from sarise.symmetry import GROUPS, get_group, interpolate, render, symmetrise
from sarise.symmetry._render import self_similarity
from tests.symmetry.geometry import ABSENT, ELEMENTS, cartesian_map

CASES = [(g, lat) for g in GROUPS for lat in get_group(g).lattices]


def _mapped(im, element, pts):
    a, b = cartesian_map(element, im.basis, im.origin)
    return a @ pts + b[:, None]


@pytest.mark.parametrize(("group", "lattice"), CASES)
@pytest.mark.parametrize("motif", ["natural", "field", "atoms", "texture"])
def test_invariant_under_every_symmetry_element(group, lattice, motif):
    """At any orientation and phase, to numerical precision, blur included."""
    rng = np.random.default_rng([GROUPS.index(group), len(lattice), len(motif)])
    pts = rng.uniform(-50, 150, size=(2, 300))
    for seed in range(3):
        im = render(group, 96, lattice=lattice, motif=motif, rng=[seed, 7], augment=True)
        assert im.group == group and im.lattice == lattice
        v = im.pattern(pts[0], pts[1])
        assert v.std() > 0.02
        for element in ELEMENTS[group]:
            q = _mapped(im, element, pts)
            err = np.abs(im.pattern(q[0], q[1]) - v).max()
            assert err < 1e-9, (group, lattice, motif, seed, element, err)


@pytest.mark.parametrize("group", GROUPS)
def test_not_invariant_under_operations_the_group_lacks(group):
    pts = np.random.default_rng(3).uniform(0, 96, size=(2, 400))
    for lattice in get_group(group).lattices:
        for motif in ("natural", "field", "atoms"):
            im = render(group, 96, lattice=lattice, motif=motif, rng=11)
            v = im.pattern(pts[0], pts[1])
            for element in ABSENT[group]:
                q = _mapped(im, element, pts)
                diff = np.abs(im.pattern(q[0], q[1]) - v).mean()
                assert diff > 0.01, (group, lattice, motif, element, diff)


def _resampled_correlation(image, a, b, margin=20):
    """Correlation of the image with itself resampled under x -> a x + b (cubic spline)."""
    h, w = image.shape
    yy, xx = np.mgrid[margin : h - margin, margin : w - margin]
    pts = np.stack([xx.ravel(), yy.ravel()]).astype(float)
    q = a @ pts + b[:, None]
    inside = (q[0] > 3) & (q[0] < w - 4) & (q[1] > 3) & (q[1] < h - 4)
    assert inside.sum() > 200
    moved = ndimage.map_coordinates(image.astype(float), [q[1][inside], q[0][inside]], order=3)
    here = image[yy.ravel()[inside], xx.ravel()[inside]]
    return np.corrcoef(moved, here)[0, 1]


SMOOTH = SymmetryConfig(
    size=224, cell_px=(44.0, 60.0), field={"scale": (0.12, 0.25), "sharpen": 0.0},
    motif_sources=("field",),
)  # fmt: skip


@pytest.mark.parametrize("group", GROUPS)
def test_rendered_pixels_resample_onto_themselves(group):
    """Independent of the renderer: resample the raster image itself under each element."""
    for lattice in get_group(group).lattices:
        im = render(group, lattice=lattice, rng=5, config=SMOOTH)
        for element in ELEMENTS[group]:
            corr = _resampled_correlation(im.image, *_near_centre(element, im))
            assert corr > 0.99, (group, lattice, element, corr)
        for element in ABSENT[group]:
            corr = _resampled_correlation(im.image, *_near_centre(element, im))
            assert corr < 0.95, (group, lattice, element, corr)


def _near_centre(element, im):
    """The element moved by a lattice vector ``s`` so that it acts near the image centre:
    ``x -> a (x - s) + b + s``, a symmetry exactly when ``x -> a x + b`` is one."""
    a, b = cartesian_map(element, im.basis, im.origin)
    point = im.origin + im.basis @ np.asarray(element[1], float)
    centre = np.array(im.image.shape[::-1], float) / 2
    cell = np.linalg.solve(im.basis, centre - point)
    s = im.basis @ np.round(cell)
    return a, b + s - a @ s


@pytest.mark.parametrize(
    ("group", "transform"),
    [
        ("p2", lambda s: np.roll(s[::-1, ::-1], 1, axis=(0, 1))),
        ("pm", lambda s: np.roll(s[::-1, :], 1, axis=0)),
        ("p4", lambda s: np.roll(s.T[:, ::-1], 1, axis=1)),
        ("p4m", lambda s: s.T),
    ],
)
def test_symmetrised_raster_is_invariant_bit_for_bit(group, transform):
    motif = np.random.default_rng(0).standard_normal((32, 32))
    s = symmetrise(motif, group)
    assert np.array_equal(transform(s), s)
    assert not np.array_equal(transform(motif), motif)


def test_interpolant_passes_through_the_raster():
    raster = np.random.default_rng(1).random((16, 16))
    i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    for hexagonal in (False, True):
        v = interpolate(
            raster, i, j, inv_basis=np.eye(2) / 16, phase=np.zeros(2), hexagonal=hexagonal
        )
        np.testing.assert_allclose(v, raster, rtol=0, atol=1e-12)
        v = interpolate(
            raster, i + 16 * 3, j - 16 * 5, inv_basis=np.eye(2) / 16, phase=np.zeros(2),
            hexagonal=hexagonal,
        )  # fmt: skip
        np.testing.assert_allclose(v, raster, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [6, 24, 30])
def test_raster_size_must_be_a_power_of_two(n):
    with pytest.raises(ValueError, match="cell_resolution must be a power of two"):
        symmetrise(np.zeros((n, n)), "p2")


def test_accidental_extra_symmetry_is_detected():
    motif = np.random.default_rng(2).standard_normal((32, 32))
    p4 = get_group("p4")
    assert self_similarity(symmetrise(motif, "p4m"), p4, "square") > 0.99
    assert self_similarity(symmetrise(motif, "p4"), p4, "square") < 0.8
    # a p1 pattern with a 2-fold axis somewhere, and a p4g pattern that is really p4m
    assert (
        self_similarity(
            np.roll(symmetrise(motif, "p2"), (5, 9), axis=(0, 1)), get_group("p1"), "oblique"
        )
        > 0.99
    )
    assert self_similarity(symmetrise(motif, "p4g"), get_group("p4g"), "square") < 0.8
    assert self_similarity(symmetrise(motif, "p4m"), get_group("p4g"), "square") > 0.99
    shifted = symmetrise(symmetrise(motif, "p4g"), "p4m")  # p4g and p4m: a smaller cell
    assert self_similarity(shifted, get_group("p4g"), "square") > 0.99
