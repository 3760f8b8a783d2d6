import hashlib
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from sarise.config import MOTIF_SOURCES, SymmetryConfig
from sarise.symmetry import GROUPS, get_group, render, sample, sample_seed
from sarise.symmetry._motifs import NATURAL_IMAGES, natural_image

SMALL = SymmetryConfig(size=48, cell_px=(10.0, 20.0))


def _digest(index, split="train", config=SMALL):
    return hashlib.sha256(sample(index, split=split, config=config).image.tobytes()).hexdigest()


def test_same_image_in_any_order():
    forward = [_digest(i) for i in range(40)]
    backward = [_digest(i) for i in reversed(range(40))][::-1]
    assert forward == backward
    assert len(set(forward)) == 40


def test_same_image_in_another_process():
    code = (
        "import hashlib; from sarise.config import SymmetryConfig; from sarise.symmetry import sample\n"
        "c = SymmetryConfig(size=48, cell_px=(10.0, 20.0))\n"
        "print(' '.join(hashlib.sha256(sample(i, config=c).image.tobytes()).hexdigest()"
        " for i in (3, 17, 150)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [_digest(i) for i in (3, 17, 150)]


def test_seed_and_split_change_the_stream():
    assert sample_seed(0, "train", 5) != sample_seed(0, "val", 5) != sample_seed(1, "train", 5)
    assert _digest(5, "train") != _digest(5, "val")
    with pytest.raises(ValueError, match="split"):
        sample_seed(0, "validation", 1)
    with pytest.raises(ValueError, match="index"):
        sample(-1)


def test_classes_lattices_and_motifs_are_balanced():
    per_group = 30
    images = [sample(i, config=SMALL) for i in range(17 * per_group)]
    assert Counter(im.label for im in images) == dict.fromkeys(range(17), per_group)
    for name in ("p1", "p2", "cmm", "p6m"):
        g = get_group(name)
        mine = [im for im in images if im.group == name]
        lattices = Counter(im.lattice for im in mine)
        assert set(lattices) == set(g.lattices)
        assert max(lattices.values()) - min(lattices.values()) <= 1
        motifs = Counter(im.motif_source for im in mine)
        assert set(motifs) == set(MOTIF_SOURCES)
        assert max(motifs.values()) - min(motifs.values()) <= 1
        pairs = Counter((im.lattice, im.motif_source) for im in mine)
        assert len(pairs) == len(g.lattices) * len(MOTIF_SOURCES)


def test_images_are_never_blank():
    for i in range(17 * 12):
        im = sample(i, config=SMALL)
        assert im.image.dtype == np.float32 and im.image.shape == (48, 48)
        assert 0.0 <= im.image.min() and im.image.max() <= 1.0
        assert im.image.std() > 0.05, (i, im.group, im.motif_source)


def test_degenerate_motifs_are_rejected_with_a_clear_error():
    impossible = SymmetryConfig(size=32, cell_px=(8.0, 14.0), min_contrast=50.0)
    with pytest.raises(RuntimeError, match=r"no usable \w+ motif for p\w+ on a \w+ lattice"):
        sample(0, config=impossible)


def test_augmentations_are_recorded_and_optional():
    always = SymmetryConfig(
        size=48, cell_px=(10.0, 20.0),
        augment={"noise": {"p": 1.0, "range": (0.1, 0.1)}, "blur": {"p": 1.0, "range": (1.0, 1.0)},
                 "scan_lines": {"p": 1.0, "range": (0.1, 0.1)}},
    )  # fmt: skip
    im = sample(4, config=always)
    assert (im.noise, im.blur, im.scan_lines) == (0.1, 1.0, 0.1)
    clean = sample(4, config=always, augment=False)
    assert (clean.noise, clean.blur, clean.scan_lines) == (0.0, 0.0, 0.0)
    yy, xx = np.mgrid[0:48, 0:48]
    np.testing.assert_allclose(clean.pattern(xx, yy), clean.image, atol=1e-6)
    assert (
        np.abs(im.pattern(xx, yy) - im.image).mean() > 0.01
    )  # noise and lines are raster artefacts


def test_render_arguments_are_checked():
    with pytest.raises(ValueError, match="lattice must be one of"):
        render("p4", 32, lattice="hexagonal", config=SMALL)
    with pytest.raises(ValueError, match="motif must be one of"):
        render("p4", 32, motif="noise", config=SMALL)
    with pytest.raises(ValueError, match="split must be one of"):
        render("p4", 32, split="validation", config=SMALL)
    with pytest.raises(ValueError, match="cell_px must satisfy"):
        render("p4", 16)  # default cells do not fit a 16 px image
    im = render(3, 32, lattice="square", motif="atoms", rng=np.random.default_rng(0), config=SMALL)
    assert (im.group, im.lattice, im.motif_source) == ("pg", "square", "atoms")


@pytest.mark.parametrize("name", sorted(NATURAL_IMAGES))
def test_natural_images_ship_with_the_wheel(name):
    img = natural_image(name)
    assert img.ndim == 2 and min(img.shape) >= 100
    assert 0.0 <= img.min() < img.max() <= 1.0


def test_group_labels_match_names():
    for i in range(17):
        assert sample(i, config=SMALL).group == GROUPS[i]
