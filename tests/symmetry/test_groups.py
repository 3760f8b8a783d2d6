import numpy as np
import pytest

from sarise.symmetry import GROUPS, LATTICES, get_group, group_lattices

ORDERS = {"p1": 1, "p2": 2, "pm": 2, "pg": 2, "cm": 4, "pmm": 4, "pmg": 4, "pgg": 4, "cmm": 8,
          "p4": 4, "p4m": 8, "p4g": 8, "p3": 3, "p3m1": 6, "p31m": 6, "p6": 6, "p6m": 12}  # fmt: skip


def test_group_order_and_ids():
    assert GROUPS == tuple("p1 p2 pm pg cm pmm pmg pgg cmm p4 p4m p4g p3 p3m1 p31m p6 p6m".split())
    for label, name in enumerate(GROUPS):
        g = get_group(name)
        assert g.label == label and get_group(label) is g
        assert g.order == ORDERS[name]


@pytest.mark.parametrize("name", GROUPS)
def test_operations_form_a_group_modulo_lattice(name):
    g = get_group(name)
    ops = {
        (tuple(m.ravel()), tuple(np.round(t % 1, 9)))
        for m, t in zip(g.linear, g.translation, strict=False)
    }
    assert len(ops) == g.order
    assert ((1, 0, 0, 1), (0.0, 0.0)) in ops
    for m1, t1 in zip(g.linear, g.translation, strict=False):
        assert round(abs(np.linalg.det(m1))) == 1
        for m2, t2 in zip(g.linear, g.translation, strict=False):
            m, t = m1 @ m2, (m1 @ t2 + t1) % 1
            assert (tuple(m.ravel()), tuple(np.round(t, 9) % 1)) in ops


def test_lattices():
    assert group_lattices("p1") == LATTICES and group_lattices("p2") == LATTICES
    assert set(group_lattices("pm")) == {"rectangular", "square"}
    assert set(group_lattices("cmm")) == {"centred", "square", "hexagonal"}
    assert group_lattices("p4g") == ("square",) and group_lattices("p31m") == ("hexagonal",)


@pytest.mark.parametrize("bad", ["p7", "P4", 17, -1, None, True])
def test_unknown_group_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="group"):
        get_group(bad)
