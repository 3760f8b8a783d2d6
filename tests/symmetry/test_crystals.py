"""The simulated crystal projections carry the plane groups they are labelled with,
checked with the independent symmetry elements of tests/symmetry/geometry.py."""

import numpy as np
import pytest

from sarise.symmetry import GROUPS
from sarise.symmetry.crystals import CRYSTALS, potential, render_crystal, simulated_set
from tests.symmetry.geometry import ABSENT, ELEMENTS, cartesian_map


@pytest.mark.parametrize("name", list(CRYSTALS))
def test_each_crystal_has_its_plane_group_and_no_more(name):
    c = CRYSTALS[name]
    basis = np.array(c.a, dtype=float).T * 5.0  # 5 px per Angstrom
    origin = np.array([3.0, -2.0])
    pts = np.random.default_rng(0).uniform(-30, 30, size=(2, 500))
    v = potential(c, basis, origin, 1.5, pts[0], pts[1])
    assert v.std() > 0.01
    for element in ELEMENTS[c.group]:
        a, b = cartesian_map(element, basis, origin)
        q = a @ pts + b[:, None]
        err = np.abs(potential(c, basis, origin, 1.5, q[0], q[1]) - v).max()
        assert err < 1e-4 * v.max(), (name, element, err)  # the tails beyond 2 cells
    # and none of the operations its group lacks (the label is the full symmetry)
    for element in ABSENT.get(c.group, []):
        a, b = cartesian_map(element, basis, origin)
        q = a @ pts + b[:, None]
        err = np.abs(potential(c, basis, origin, 1.5, q[0], q[1]) - v).max()
        assert err > 1e-2 * v.max(), (name, "has extra", element)


def test_the_simulated_set_is_balanced_reproducible_and_realistic():
    x, groups, crystals = simulated_set(3, 96, seed=1)
    assert x.shape == (18, 96, 96) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0 and np.isfinite(x).all()
    assert set(groups) <= set(GROUPS) and [crystals.count(c) for c in CRYSTALS] == [3] * 6
    again, _, _ = simulated_set(3, 96, seed=1)
    np.testing.assert_array_equal(x, again)
    clean = render_crystal("SrTiO3-001", 96, np.random.default_rng(2), effects=None)
    noisy = render_crystal("SrTiO3-001", 96, np.random.default_rng(2))
    assert not np.array_equal(clean, noisy)
