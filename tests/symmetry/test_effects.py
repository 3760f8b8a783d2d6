"""The realistic training distribution: texture motifs, atoms on special positions,
log-uniform cells and the imaging effects of real scans, each recorded per image."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from sarise.config import SymmetryConfig
from sarise.symmetry import GROUPS, get_group, render, sample
from sarise.symmetry._effects import EFFECTS
from tests.symmetry.geometry import ELEMENTS, cartesian_map

ALL_EFFECTS = {
    "noise": {"p": 1.0, "range": (0.2, 0.2)},
    "drift": {"p": 1.0, "range": (0.02, 0.02)},
    "background": {"p": 1.0, "range": (1.0, 1.0)},
    "defects": {"p": 1.0, "range": (0.05, 0.05)},
    "line_jitter": {"p": 1.0, "range": (0.5, 0.5)},
    "shot_noise": {"p": 1.0, "range": (20.0, 20.0)},
    "gamma": {"p": 1.0, "range": (1.0, 1.0)},
    "invert": 1.0,
    "clip": {"p": 1.0, "range": (0.02, 0.02)},
}
REAL = SymmetryConfig(size=64, cell_px=(6.0, 20.0), cell_scale="log", augment=ALL_EFFECTS,
                      atoms={"special": 0.5})  # fmt: skip


def _invariant(im, pts):
    v = im.pattern(pts[0], pts[1])
    assert v.std() > 0.02
    for element in ELEMENTS[im.group]:
        a, b = cartesian_map(element, im.basis, im.origin)
        q = a @ pts + b[:, None]
        assert np.abs(im.pattern(q[0], q[1]) - v).max() < 1e-9, (im.group, element)


def _affine_invariant(im, pts):
    """Invariance under the group's operations in cell coordinates, for any basis."""
    g = get_group(im.group)
    inv = np.linalg.inv(im.basis)
    u = inv @ (pts - im.origin[:, None])
    v = im.pattern(pts[0], pts[1])
    for m, t in zip(g.linear, g.translation, strict=True):
        q = im.origin[:, None] + im.basis @ (m @ u + t[:, None])
        assert np.abs(im.pattern(q[0], q[1]) - v).max() < 1e-9, (im.group, m.tolist(), t)


@pytest.mark.parametrize("group", GROUPS)
def test_atoms_on_special_positions_keep_the_exact_symmetry_and_drift_shears_it(group):
    pts = np.random.default_rng(5).uniform(-20, 80, size=(2, 200))
    atoms = REAL.atoms.model_copy(update={"special": 0.7})
    still = REAL.augment.model_copy(update={"drift": type(REAL.augment.drift)()})
    for lattice in get_group(group).lattices:
        im = render(group, 64, lattice=lattice, motif="atoms", rng=[3, 1], augment=True,
                    config=REAL.model_copy(update={"atoms": atoms, "augment": still}))  # fmt: skip
        assert im.drift == 0.0
        _invariant(im, pts)  # the Cartesian symmetry elements, checked independently
        drifted = render(group, 64, lattice=lattice, motif="atoms", rng=[3, 1], augment=True,
                         config=REAL.model_copy(update={"atoms": atoms}))  # fmt: skip
        assert drifted.drift == 0.02  # the frame is sheared: the group acts in cell coordinates
        _affine_invariant(drifted, pts)


def test_every_effect_is_applied_and_recorded_with_its_strength():
    im = sample(7, config=REAL)
    assert set(im.effects) == set(EFFECTS)
    expected = {"background": 1.0, "defects": 0.05, "shot_noise": 20.0, "line_jitter": 0.5,
                "invert": 1.0, "clip": 0.02}  # fmt: skip
    assert {k: im.effects[k] for k in expected} == expected
    assert all(v != 0 for v in im.effects.values()), im.effects
    assert abs(im.effects["gamma"]) == 1.0 and im.drift == 0.02 and im.noise == 0.2
    assert np.isfinite(im.image).all() and im.image.min() == 0.0 and im.image.max() == 1.0
    clean = sample(7, config=REAL, augment=False)
    assert set(clean.effects.values()) == {0.0} and clean.drift == 0.0
    yy, xx = np.mgrid[0:64, 0:64]
    np.testing.assert_allclose(clean.pattern(xx, yy), clean.image, atol=1e-6)
    # the raster artefacts move the image away from the exact pattern
    assert np.abs(im.pattern(xx, yy) - im.image).mean() > 0.05


def test_each_effect_changes_the_image_on_its_own():
    base = SymmetryConfig(size=64, cell_px=(8.0, 16.0), augment={"noise": {"p": 0.0},
                          "blur": {"p": 0.0}, "scan_lines": {"p": 0.0}})  # fmt: skip
    plain = sample(3, config=base).image
    for name, setting in ALL_EFFECTS.items():
        if name == "noise":
            continue
        cfg = base.model_copy(update={"augment": base.augment.model_copy(
            update={name: setting if name == "invert" else type(base.augment.drift)(**setting)})})  # fmt: skip
        img = sample(3, config=cfg).image
        assert not np.array_equal(img, plain), name
    inverted = sample(3, config=base.model_copy(update={
        "augment": base.augment.model_copy(update={"invert": 1.0})})).image  # fmt: skip
    np.testing.assert_allclose(inverted, 1.0 - plain, atol=1e-6)


def test_realistic_images_are_the_same_in_another_process():
    code = (
        "import hashlib; from tests.symmetry.test_effects import REAL; "
        "from sarise.symmetry import sample\n"
        "print(' '.join(hashlib.sha256(sample(i, config=REAL).image.tobytes()).hexdigest()"
        " for i in (2, 19, 40)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mine = [hashlib.sha256(sample(i, config=REAL).image.tobytes()).hexdigest() for i in (2, 19, 40)]
    assert out.stdout.split() == mine


def test_log_uniform_cells_favour_small_lattices():
    def sizes(scale):
        cfg = SymmetryConfig(size=128, cell_px=(5.0, 40.0), cell_scale=scale,
                             motif_sources=("field",))  # fmt: skip
        out = []
        for i in range(170):
            b = sample(i, config=cfg, augment=False).basis
            centred = get_group(GROUPS[i % 17]).centred
            out.append(np.sqrt(abs(np.linalg.det(b)) / (2.0 if centred else 1.0)))
        return np.array(out)

    log, uniform = sizes("log"), sizes("uniform")
    assert 5.0 - 1e-9 <= log.min() and log.max() <= 40.0 + 1e-9
    assert np.median(log) < 18.0 < np.median(uniform)  # sqrt(5 * 40) = 14.1 vs 22.5
    assert (log < 10).mean() > 0.2


def test_texture_motifs_have_one_dominant_length_scale():
    cfg = SymmetryConfig(size=128, cell_px=(60.0, 60.0), texture={"frequency": (8.0, 8.0),
                         "width": (0.1, 0.1)}, rotate=False)  # fmt: skip
    im = render("p1", 128, lattice="square", motif="texture", rng=0, config=cfg)
    spec = np.abs(np.fft.fft2(im.image - im.image.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128))) * 60.0  # cycles/cell
    inside = spec[(f > 6) & (f < 10)].sum()
    assert inside / spec.sum() > 0.6


def test_generated_splits_record_every_effect(tmp_path):
    from sarise.symmetry import open_split, write_split

    cfg = REAL.model_copy(update={"per_group": {"train": 0, "val": 1, "test": 0}, "chunk": 17})
    write_split(tmp_path, "val", cfg, show_progress=False)
    ds = open_split(tmp_path / "val.zarr")
    for name in (*EFFECTS, "drift"):
        assert (ds[name].values != 0).all(), name
