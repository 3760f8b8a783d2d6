"""The training-free symmetry measurement (``sarise.symmetry_measure``), checked against the
plane groups the generator was asked for. The expected answers (rotation order, whether
there is a reflection, the primitive lattice) come from the group definitions, never from
the measuring code."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from sarise.config import SymmetryConfig
from sarise.symmetry import GROUPS, get_group, sample
from sarise.symmetry_measure import cell_size_px, measure

PER_GROUP = 6


def expected(name: str) -> tuple[int, bool]:
    """Rotation order and whether a reflection (mirror or glide) occurs, from the group's
    linear parts."""
    g = get_group(name)
    return g.rotation_order, g.reflects


def primitive(image) -> np.ndarray:
    """The primitive basis of the generated lattice (centred cells halved)."""
    b = image.basis.copy()
    if get_group(image.group).centred:
        b = np.stack([(b[:, 0] + b[:, 1]) / 2, b[:, 1]], axis=1)
    return b


def same_lattice(found, basis, tol=0.02) -> bool:
    """Whether ``found`` (columns a, b) spans the lattice of ``basis`` to within ``tol``."""
    ij = np.rint(np.linalg.solve(basis, found))
    if abs(abs(np.linalg.det(ij)) - 1) > 1e-6:
        return False
    err = np.linalg.norm(found - basis @ ij, axis=0)
    return bool(err.max() <= tol * np.linalg.norm(found, axis=0).min())


@pytest.fixture(scope="module")
def images():
    cfg = SymmetryConfig(size=256)
    return [sample(i, seed=0, split="test", config=cfg, augment=False)
            for i in range(17 * PER_GROUP)]  # fmt: skip


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_rotation_order_reflection_and_lattice_of_generated_images(images, noise):
    rng = np.random.default_rng(1)
    right, lattice, wrong = 0, 0, []
    for im in images:
        x = im.image + noise * rng.standard_normal(im.image.shape)
        m = measure(x)
        order, refl = expected(im.group)
        ok = m.has_lattice and m.rotation_order == order and m.reflection == refl
        right += ok
        if not ok:
            wrong.append((im.group, m.group, m.rotation_order, m.reflection))
        lattice += m.has_lattice and same_lattice(np.stack([m.a, m.b], axis=1), primitive(im))
    n = len(images)
    need = 0.98 if noise == 0 else 0.95
    assert right / n >= need, f"{right}/{n} right at noise {noise}: {wrong}"
    assert lattice / n >= 0.95, f"lattice within 2% for {lattice}/{n}"


def test_groups_of_exact_images(images):
    # the full group (family, mirror vs glide, p3m1 vs p31m) for almost every image
    right = sum(measure(im.image).group == im.group for im in images)
    assert right / len(images) >= 0.95, right


@pytest.mark.parametrize("shear", [2.0, 5.0])
def test_groups_of_sheared_images(images, shear):
    # a scan's slow drift shears its lattice by a few degrees: the measurement makes the
    # lattice exact before scoring, so mirrors, glides and rotations still hold (without
    # it, 40 of these 102 images kept their group at 2 degrees)
    t = np.tan(np.radians(shear))
    right, wrong = 0, []
    for im in images:
        x = ndi.affine_transform(im.image, np.array([[1.0, t], [0.0, 1.0]]), offset=(-t * 128, 0),
                                 order=3, mode="reflect")  # fmt: skip
        m = measure(x)
        right += m.group == im.group
        if m.group != im.group:
            wrong.append((im.group, m.group))
    assert right / len(images) >= 0.95, wrong


def _labyrinth(rng, n=256, k=0.05):
    f = np.fft.fft2(rng.standard_normal((n, n)))
    r = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n)))
    return (np.fft.ifft2(f * np.exp(-(((r - k) / 0.01) ** 2))).real > 0).astype(float)


@pytest.mark.parametrize("kind", ["white", "field", "domains", "labyrinth"])
def test_aperiodic_images_have_no_lattice(kind):
    rng = np.random.default_rng(len(kind))
    for scale in (1, 2, 4, 8, 16):
        if kind == "white":
            x = rng.standard_normal((256, 256))
        elif kind == "labyrinth":
            x = _labyrinth(rng, k=0.2 / scale)
        else:
            x = ndi.gaussian_filter(rng.standard_normal((256, 256)), scale)
            x = (x > 0).astype(float) if kind == "domains" else x
        m = measure(x)
        assert not m.has_lattice and m.groups == {}, (kind, scale, m)


def test_flat_and_non_finite_images_are_no_lattice():
    assert not measure(np.zeros((64, 64))).has_lattice
    x = np.ones((64, 64))
    x[3, 3] = np.nan
    assert not measure(x).has_lattice


@pytest.mark.parametrize("shape", [(0, 0), (1, 1), (2, 2), (5, 300), (300, 3)])
def test_images_too_small_for_a_lattice_have_none_without_warnings(shape):
    import warnings

    x = np.random.default_rng(0).random(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing for a user's log but the answer
        assert not measure(x).has_lattice
        assert cell_size_px(x) is None


def test_measurements_are_invariant_to_the_lattice_orientation():
    cfg = SymmetryConfig(size=256, rotate=False)
    im = sample(10, seed=2, split="test", config=cfg, augment=False)  # p4m
    m0 = measure(im.image)
    m1 = measure(np.rot90(im.image))
    assert m0.group == m1.group == "p4m"
    assert np.isclose(np.linalg.norm(m0.a), np.linalg.norm(m1.a), rtol=0.01)


def test_scores_do_not_follow_rounding_noise():
    # the autocorrelation is centrosymmetric: rounding alone chose between the bases
    # (a, b) and (-a, -b), and this p3m1 image's scores moved by 5e-5 under a 1e-11
    # change of its pixels (a GPU's FFT, another library version); the basis now has one
    # sign, and the scores stay put
    im = np.asarray(sample(47 % 17, seed=47).image, np.float64)
    a, b = measure(im), measure(im * (1 + 1e-11) + 1e-12)
    assert a.has_lattice and a.group == b.group
    np.testing.assert_allclose(b.a, a.a, atol=1e-8)
    assert a.scores.keys() == b.scores.keys()
    assert max(abs(a.scores[k] - b.scores[k]) for k in a.scores) < 1e-8
    assert a.a[1] > 0 or a.a[0] > 0


def test_cupy_gives_the_numpy_answer():
    cupy = pytest.importorskip("cupy", reason="CuPy (sarise[gpu]) is not installed")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception:
        pytest.skip("no CUDA device")
    im = sample(13, seed=0, split="test", config=SymmetryConfig(size=256), augment=False)
    cpu, gpu = measure(im.image), measure(cupy.asarray(im.image), xp=cupy)
    assert cpu.group == gpu.group
    np.testing.assert_allclose(gpu.a, cpu.a, atol=1e-6)
    for k, v in cpu.scores.items():
        assert abs(gpu.scores[k] - v) < 1e-6, k


def test_every_group_is_reachable():
    assert {expected(g) for g in GROUPS} == {(1, False), (2, False), (1, True), (2, True),
                                             (4, False), (4, True), (3, False), (3, True),
                                             (6, False), (6, True)}  # fmt: skip


@pytest.mark.parametrize("skew", [0.0, 1.5, 3.5])
def test_mirror_and_glide_stay_apart_on_a_slightly_skewed_lattice(skew):
    # a measured lattice is never exact (drift, shear): along the axes of a square or
    # rectangular lattice mirror and glide differ (p4g, pmg, pgg need it), along its
    # diagonals and every hexagonal direction they do not
    from sarise.symmetry_measure import _family

    g = np.radians(90.0 - skew)
    for ratio, family in ((1.0, "square"), (1.45, "rectangular")):
        a, b = np.array([14.0, 0.0]), 14.0 * ratio * np.array([np.cos(g), np.sin(g)])
        got, lines = _family(a, b)
        assert got == family
        distinct = {round(d) % 180: flag for d, _, flag in lines}
        axes = {0, round(90 - skew)}
        assert all(distinct[d] for d in axes), lines
        assert not any(flag for d, flag in distinct.items() if d not in axes), lines
    h = np.radians(60.0 + skew)
    _, lines = _family(np.array([14.0, 0.0]), 14.0 * np.array([np.cos(h), np.sin(h)]))
    assert len(lines) == 6 and not any(flag for _, _, flag in lines), lines


def _harmonics(first: float, shell: int, weights: tuple[float, float], n: int = 128):
    """A pattern of the square (``shell`` 4) or hexagonal (6) lattice: its first shell of
    wave vectors, which alone is as symmetric as the lattice (p4m, p6m), plus the orbit of
    a longer vector off every mirror line under the rotations, and that orbit's mirror
    image, weighted ``weights``: unequal weights break every mirror, only in the detail."""
    step = 360.0 / shell
    b1 = np.array([1.0, 0.0])
    b2 = np.array([0.0, 1.0]) if shell == 4 else np.array([0.5, 3**0.5 / 2])
    y, x = np.mgrid[:n, :n].astype(float) * (2 * np.pi / first)

    def rot(v, deg):
        c, s_ = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        return np.array([c * v[0] - s_ * v[1], s_ * v[0] + c * v[1]])

    def orbit(k):  # cos is even: half the rotations give the whole orbit
        turns = (rot(k, j * step) for j in range(shell // 2))
        return sum(np.cos(q[0] * x + q[1] * y) for q in turns)

    k = 2 * b1 + b2  # off the mirror lines of both lattices
    mirror = np.array([k[0], -k[1]])
    return orbit(b1) + weights[0] * orbit(k) + weights[1] * orbit(mirror)


@pytest.mark.parametrize(("shell", "group", "holohedry"), [(4, "p4", "p4m"), (6, "p6", "p6m")])
def test_a_mirror_only_the_smooth_part_of_a_pattern_has_is_not_measured(shell, group, holohedry):
    # as independent generators make them: a smooth motif is nearly its lattice's holohedry
    # (its false mirrors score above the threshold on the image as it is); the detail decides
    assert measure(_harmonics(14.0, shell, (0.15, 0.0))).group == group
    assert measure(_harmonics(14.0, shell, (0.15, 0.15))).group == holohedry
    noise = np.random.default_rng(3).normal(0, 0.5, (128, 128))
    assert measure(_harmonics(14.0, shell, (0.15, 0.15)) + noise).group == holohedry


def _pattern(
    group: str, seed: int, blur: float, lengths: tuple[float, float], aspect: float, n: int = 128
):
    """A noise motif of ``group``, blurred ``blur`` px, on a lattice of side ``lengths`` px
    (uniform) at a random orientation, hexagonal, square (p4 groups) or rectangular of
    sides 1 : ``aspect``; and its conventional basis."""
    from sarise.symmetry._render import blur_raster, render_raster, symmetrise

    rng = np.random.default_rng(seed)
    g = get_group(group)
    length, theta = rng.uniform(*lengths), rng.uniform(0, np.pi / (3 if g.hexagonal else 2))
    a1 = length * np.array([np.cos(theta), np.sin(theta)])
    if g.hexagonal:
        a2 = length * np.array([np.cos(theta + 2 * np.pi / 3), np.sin(theta + 2 * np.pi / 3)])
    else:
        a2 = np.array([-a1[1], a1[0]]) * (1.0 if group.startswith("p4") else aspect)
    basis = np.stack([a1, a2], 1)
    raster = symmetrise(blur_raster(symmetrise(rng.standard_normal((64, 64)), g), basis, blur), g)
    image = render_raster(raster, (n, n), inv_basis=np.linalg.inv(basis), phase=rng.random(2),
                          hexagonal=g.hexagonal)  # fmt: skip
    return image, basis


def _cells(m, basis) -> float:
    """The measured cell's area in cells of ``basis``."""
    return abs(m.a[0] * m.b[1] - m.a[1] * m.b[0]) / abs(np.linalg.det(basis))


def _aliased(group: str, seed: int):
    """Fine detail (blurred 0.4 px) on a lattice of 10-16 px whose vectors are not whole
    pixels: the detail is aliased, and repeats exactly only on a supercell whose vectors
    are nearly whole pixels."""
    return _pattern(group, seed, 0.4, (10, 16), 1.3)


def _smooth(group: str, seed: int, blur: float):
    """A smooth motif on a lattice of 14-22 px: nearly centred where the group's two motifs
    of a cell differ only in detail (a glide's, or a 4-fold's of either hand in p4g)."""
    return _pattern(group, seed, blur, (14, 22), 1.4)


@pytest.mark.parametrize(("group", "seed"),
                         [("p2", 9), ("pmm", 9), ("pmg", 2), ("p4", 3), ("p4m", 6), ("pgg", 9)])  # fmt: skip
def test_an_aliased_pattern_is_measured_on_its_own_lattice_not_a_whole_pixel_supercell(group, seed):
    # the autocorrelation of each peaks highest on a supercell of index 3-8 (whole-pixel
    # vectors); smoothed, it shows the pattern's own cell
    image, basis = _aliased(group, seed)
    m = measure(image)
    assert _cells(m, basis) == pytest.approx(1.0, rel=0.05)
    assert m.group == group


@pytest.mark.parametrize(("group", "seed"),
                         [("p3", 0), ("p31m", 4), ("p6", 6), ("p6m", 4), ("p3m1", 7)])  # fmt: skip
def test_a_hexagonal_lattice_found_as_its_rectangular_supercell_is_made_hexagonal(group, seed):
    # the autocorrelation of each shows the sqrt3 x 1 rectangular cell (the centring, aliased,
    # is a weaker peak); a 3-fold rotation can only be a hexagonal lattice's
    image, basis = _aliased(group, seed)
    m = measure(image)
    assert m.family == "hexagonal" and m.group == group
    assert _cells(m, basis) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize(("group", "blur", "seed"),
                         [("p4g", 1.5, 5), ("pgg", 2.5, 11), ("pmg", 2.5, 1), ("p4", 1.5, 7)])  # fmt: skip
def test_a_pseudo_translation_of_a_smooth_motif_is_not_a_lattice_vector(group, blur, seed):
    # each one's autocorrelation peaks at the centre of the cell nearly as high as on the
    # lattice (a centred cell of half the area, on which the group is out of reach); in the
    # detail that peak is weak
    image, basis = _smooth(group, seed, blur)
    m = measure(image)
    assert _cells(m, basis) == pytest.approx(1.0, rel=0.05)
    if group != "p4":  # its smooth motif is nearly p4m: the lattice is what this checks
        assert m.group == group


@pytest.mark.parametrize(("group", "seed"), [("cm", 0), ("cm", 2), ("cmm", 0), ("cmm", 3)])
def test_a_centred_lattice_keeps_its_centring(group, seed):
    # the same smooth motifs with a true centring: its peak is as high in the detail
    image, basis = _smooth(group, seed, 2.5)
    m = measure(image)
    assert _cells(m, basis) == pytest.approx(0.5, rel=0.05)
    assert m.group == group


def _hexagonal_atoms(spacing: float, bright: float, n: int = 128):
    """Gaussian atoms on a hexagonal lattice, one in three (a sqrt3 x sqrt3 R30
    superstructure, index 3) brighter by ``bright``."""
    a1 = spacing * np.array([np.cos(0.3), np.sin(0.3)])
    a2 = spacing * np.array([np.cos(0.3 + np.pi / 3), np.sin(0.3 + np.pi / 3)])
    y, x = np.mgrid[:n, :n].astype(float)
    image = np.zeros((n, n))
    k = int(n / spacing) + 3
    for i in range(-k, 2 * k):
        for j in range(-k, 2 * k):
            px, py = i * a1 + j * a2 + (3.3, 5.1)
            if -3 * spacing < px < n + 3 * spacing and -3 * spacing < py < n + 3 * spacing:
                w = 1.0 + (bright if (i - j) % 3 == 0 else 0.0)
                image += w * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * (0.22 * spacing) ** 2))
    return image


@pytest.mark.parametrize("spacing", [7.3, 10.7])
def test_a_superstructure_keeps_its_supercell(spacing):
    # a reconstruction is coarser than the pixel scale: smoothing keeps it (and a faint one
    # is below the lattice's own peaks in any case)
    assert np.linalg.norm(measure(_hexagonal_atoms(spacing, 0.4)).a) == pytest.approx(
        spacing * 3**0.5, rel=0.02
    )
    assert np.linalg.norm(measure(_hexagonal_atoms(spacing, 0.05)).a) == pytest.approx(
        spacing, rel=0.02
    )


@pytest.mark.slow
def test_extract_measures_symmetry_into_the_feature_store_queryable(wallpaper_run, tmp_path):
    import shutil

    from sarise.config import ExtractConfig
    from sarise.features import extract
    from sarise.project import ProjectionTree
    from sarise.query import filter_table
    from sarise.run import open_run

    run = tmp_path / "run"
    shutil.copytree(wallpaper_run / "store", run / "store")
    extract(run / "store", run / "features.zarr", config=ExtractConfig(symmetry=True),
            show_progress=False)  # fmt: skip
    ds = open_run(run)
    for col in ("lattice_a_px", "lattice_a_nm", "rotation_order", "mirror", "glide", "rot4",
                "lattice_family", "symmetry_group", "combined_group", "combined_confidence"):  # fmt: skip
        assert col in ds, col
    # the combined group is the measured one where the measurement is sure, else the model's
    sure = ds["symmetry_margin"].values >= 0.1
    assert sure.any() and (ds["combined_group"].values[sure] ==
                           ds["symmetry_group"].values[sure]).mean() >= 0.8  # fmt: skip
    no_lattice = ds["symmetry_group"].values == ""
    model = ds["probabilities"].values.argmax(1)
    assert (ds["combined_group"].values[no_lattice] ==
            np.asarray(GROUPS)[model[no_lattice]]).all()  # fmt: skip
    assert ((ds["combined_confidence"].values > 0) & (ds["combined_confidence"].values <= 1)).all()
    truth = ds["group"].values  # the sidecar's label of each generated file
    orders = np.array([expected(t)[0] for t in truth])
    order = ds["rotation_order"].values
    found = order > 0
    # 128 px 8-bit PNGs of cells 20-64 px: the largest leave too few cells in view to be
    # called a lattice (about three across are needed); where one is found it is right
    assert found.mean() >= 0.6, found.mean()
    assert np.mean(order[found] == orders[found]) >= 0.95
    # the columns are queryable like any metadata, on the projection tree's table
    table = ProjectionTree(run).metadata()
    six = filter_table(table, "rotation_order == 6 and lattice_family == 'hexagonal'")
    assert six.sum() > 0 and set(table["symmetry_group"][six]) <= {"p6", "p6m"}
    # maps and search can be made of it, alone or beside the model's features
    from sarise.config import ProjectConfig, SearchConfig
    from sarise.search import build_index, search

    sym = ProjectionTree(run, ProjectConfig(descriptor="symmetry", seed=1))
    assert sym.project_root() == "root" and sym.info("root")["params"]["descriptor"] == "symmetry"
    assert build_index(run, config=SearchConfig(descriptor="both"))["descriptor"] == "both"
    first = int(ds.image.values[0])
    found = search(run, ids=[first], k=5)
    assert found["image_id"].iloc[0] == first and len(found) == 5
    # the report has a section on it: lattices found, by family and rotation order
    from sarise.viewer.report import write_report

    page = write_report(run, tmp_path / "report").read_text()
    assert "<h2>Measured symmetry</h2>" in page
    assert f"{int(found_any := (order > 0).sum())} of {len(order)} images hold a lattice" in page
    assert found_any > 0 and "<th>6-fold</th>" in page and "lies in the measured lattice" in page
    # the viewer and the report colour by the best group first: the combined one
    from sarise.viewer.data import RunData

    data = RunData(run)
    assert data.group_column == "combined_group" == data.categories[0]
    assert "predicted_group" in data.categories
    assert len(set(data.categories)) == len(data.categories)
    assert (tmp_path / "report" / "map-combined_group.png").exists()
    # a store made without it is refused, not mixed; and without it there is no such map
    with pytest.raises(Exception, match="another model or preprocessing"):
        extract(run / "store", run / "features.zarr", show_progress=False)
    # nor is one measured with other settings (an older sarise): its groups would differ
    import zarr

    from sarise.symmetry_measure import SETTINGS

    older = {**SETTINGS, "fine_slack": 0.2}
    zarr.open_group(run / "features.zarr", mode="r+").attrs["symmetry_settings"] = older
    with pytest.raises(Exception, match="another model or preprocessing"):
        extract(run / "store", run / "features.zarr", config=ExtractConfig(symmetry=True),
                show_progress=False)  # fmt: skip
    with pytest.raises(Exception, match=r"extract\.symmetry: true"):
        ProjectionTree(wallpaper_run, ProjectConfig(descriptor="both")).features()
    # a run measured by an older sarise, with other columns, is not read as these columns
    from sarise.symmetry_measure import MARGIN_COLUMNS, SCORE_COLUMNS

    old = list(SCORE_COLUMNS[: -len(MARGIN_COLUMNS)])
    zarr.open_group(run / "features.zarr", mode="r+").attrs["symmetry_columns"] = old
    again = open_run(run)
    assert "symmetry_group" not in again and "combined_group" not in again


def _score_row(margins: dict[str, float]) -> np.ndarray:
    """A ``symmetry_scores`` row with these groups' signed margins (none: no lattice)."""
    from sarise.symmetry_measure import SCORE_COLUMNS

    row = np.full(len(SCORE_COLUMNS), np.nan, np.float32)
    if margins:
        best = max(margins, key=margins.get)
        row[SCORE_COLUMNS.index("symmetry_group")] = GROUPS.index(best)
        row[SCORE_COLUMNS.index("symmetry_margin")] = margins[best]
        for g, v in margins.items():
            row[SCORE_COLUMNS.index(f"margin_{g}")] = v
    return row


def test_combined_groups_weigh_the_measurement_against_the_model():
    from sarise.symmetry_measure import combined_log_probabilities

    logits = np.zeros((5, 17))
    logits[:, GROUPS.index("p4")] = 1.0  # a mild preference for p4
    logits[3, GROUPS.index("p4")] = 12.0  # a model sure of p4
    scores = np.stack([
        _score_row({}),
        _score_row({"p4m": 0.2, "p4": -0.2, "p4g": -0.2}),
        _score_row({"p4m": 0.0, "p4": -0.2, "p4g": -0.2}),
        _score_row({"p4m": 0.2, "p4": -0.2, "p4g": -0.2}),
        _score_row({"p4m": 0.005, "p4": -0.005, "p4g": -0.2}),  # the mirrors barely there
    ])  # fmt: skip
    logp = combined_log_probabilities(logits, scores)
    assert np.allclose(np.exp(logp).sum(1), 1)
    best = [GROUPS[k] for k in logp.argmax(1)]
    # no lattice: the model; a clear measurement beats a mild preference; a sure model
    # keeps its group; where the measurement barely separates two groups, the model decides
    assert best == ["p4", "p4m", "p4m", "p4", "p4"]
    # a measurement at its threshold counts less than one well clear of it
    assert logp[1, GROUPS.index("p4m")] > logp[2, GROUPS.index("p4m")]
    # a group the scores contradict gets no bonus: p4g stays with the groups never measured
    assert np.isclose(logp[1, GROUPS.index("p4g")], logp[1, GROUPS.index("p6")], atol=0.01)
    # a model with its groups in another order gets the same answer in its own order
    order = list(reversed(GROUPS))
    again = combined_log_probabilities(logits[:, ::-1], scores, order)
    assert np.allclose(again[:, ::-1], logp)


def test_every_allowed_group_has_a_signed_margin(images):
    """The measured group is the only one clear of every threshold; the others' margins
    say how far their scores are from making them so."""
    from sarise.symmetry_measure import measure

    allowed = {"oblique": {"p1", "p2"}, "rectangular": {"pm", "pg", "pmm", "pmg", "pgg"},
               "centred": {"cm", "cmm"}, "square": {"p4", "p4m", "p4g"},
               "hexagonal": {"p3", "p3m1", "p31m", "p6", "p6m"}}  # fmt: skip
    for im in images[::7]:
        m = measure(im.image)
        if not m.has_lattice:
            continue
        assert m.groups[m.group] == max(m.groups.values())
        assert sum(v > 0 for v in m.groups.values()) <= 1, m.groups
        # p1 and p2 from every lattice, and the groups of the family's own symmetry
        assert {"p1", "p2"} | allowed[m.family] <= set(m.groups), (m.family, m.groups)
        if m.family == "oblique":
            assert set(m.groups) == {"p1", "p2"}


def test_combined_groups_of_generated_images_beat_an_uninformed_model(images):
    from sarise.symmetry_measure import combined_log_probabilities, score_rows

    truth = np.array([GROUPS.index(im.group) for im in images])
    scores = score_rows([im.image for im in images])
    noise = np.random.default_rng(0).normal(0, 1, (len(images), 17))
    best = combined_log_probabilities(noise, scores).argmax(1)
    # the expected groups come from the generator's request, the measurement never reads it
    assert (best == truth).mean() >= 0.85, (best == truth).mean()
    assert (noise.argmax(1) == truth).mean() < 0.2


def test_a_lattice_on_part_of_a_real_scan_is_found_and_domains_stay_no_lattice(
    shared_data, monkeypatch
):
    """A molecular island on a bare substrate (Nanonis STM, ``example_FFT.sxm``) covers
    part of the scan: its lattice is found in windows, where the whole scan shows none.
    In the real PFM and AFM scans of ferroelectric domains and of terraces and steps,
    every channel, the windows add no lattice (faint noise of flat channels, and the
    steps of a vicinal surface, fit a "lattice" in single windows)."""
    import sarise.symmetry_measure as sm
    from sarise.config import IngestConfig
    from sarise.ingest import _flatten, _preprocess, list_files
    from sarise.io import read_scan

    def channels(path):
        scan, cfg = read_scan(path), IngestConfig()
        for c in scan.channels:
            try:
                yield c.name, _preprocess(c.data, cfg, _flatten(cfg, scan.format, c))
            except ValueError:  # a flat channel
                continue

    def lattices(images):
        return [(name, sm.measure(im).has_lattice, sm.cell_size_px(im)) for name, im in images]

    island = dict(channels(shared_data / "sxm" / "example_FFT.sxm"))["Z_fwd"]
    m = sm.measure(island)
    assert m.has_lattice and m.family == "hexagonal", m
    assert 9.5 < np.linalg.norm(m.a) <= np.linalg.norm(m.b) < 11.5, (m.a, m.b)
    assert 9.5 < sm.cell_size_px(island) < 11.5
    scans = list_files([shared_data / "pfm-h5", shared_data / "ibw", shared_data / "gwy"])
    images = [(f"{p.name}:{name}", im) for p in scans for name, im in channels(p)]
    assert len(scans) >= 20 and len(images) >= 80
    found = lattices(images)
    monkeypatch.setattr(sm, "WINDOW_MIN", 10**9)  # the whole scan alone
    assert not sm.measure(island).has_lattice
    assert found == lattices(images)
