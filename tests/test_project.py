"""Projection tree, re-projection and search, on a run made from generated wallpaper images
written as PNG files and taken through ingest and extract like any archive."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sarise.cluster import get_client
from sarise.config import ProjectConfig, SearchConfig
from sarise.errors import SariseError
from sarise.project import ProjectionTree, breadcrumb
from sarise.query import QueryError
from sarise.search import SearchIndex, build_index, search
from sarise.symmetry import GROUPS

pytestmark = pytest.mark.slow

PER_GROUP = 6


@pytest.fixture(scope="module")
def run(wallpaper_run, tmp_path_factory):
    """A private copy of the shared wallpaper run (these tests add and remove nodes)."""
    copy = tmp_path_factory.mktemp("project") / "run"
    shutil.copytree(wallpaper_run, copy)
    return copy


@pytest.fixture(scope="module")
def tree(run):
    t = ProjectionTree(run, ProjectConfig(seed=3, cluster_min_size=5))
    assert t.project_root() == "root"
    return t


def test_seeded_projection_is_identical_across_reruns(run, tree, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run / "store", copy / "store")
    shutil.copytree(run / "features.zarr", copy / "features.zarr")
    again = ProjectionTree(copy, ProjectConfig(seed=3, cluster_min_size=5))
    again.project_root()
    pd.testing.assert_frame_equal(tree.members("root"), again.members("root"))
    info = tree.info("root")
    assert info["n"] == 17 * PER_GROUP and info["params"]["seed"] == 3
    assert info["backend"] == "cpu" and info["how"] == {"method": "fit"}
    assert 0.5 < info["quality"]["trustworthiness"] <= 1 and info["clusters"] >= 1
    with pytest.raises(SariseError, match="remove the projections folder"):
        ProjectionTree(copy, ProjectConfig(seed=4)).project_root()


def test_children_hold_exactly_the_selection(tree):
    root = tree.members("root")
    meta = tree.metadata().set_index("image_id")
    x0, y0 = root[["x", "y"]].quantile(0.2)
    x1, y1 = root[["x", "y"]].quantile(0.7)
    inside = root[(root.x >= x0) & (root.x <= x1) & (root.y >= y0) & (root.y <= y1)]
    cases = {
        "box": ({"box": [x1, y1, x0, y0]}, set(inside.image_id)),  # corners in any order
        "ids": ({"ids": root.image_id[:7].tolist()}, set(root.image_id[:7])),
        "query": ({"query": 'group in ["p4m", "p6m"] and batch != 1'},
                  # sidecar values are stored as text; a number in a query compares as numbers
                  set(meta[meta.group.isin(["p4m", "p6m"]) & (meta.batch.astype(int) != 1)].index)),
        "polygon": ({"polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}, set(inside.image_id)),
        "cluster": ({"cluster": [0]}, set(root[root.cluster == 0].image_id)),
    }  # fmt: skip
    for name, (selection, expected) in cases.items():
        node = tree.child("root", selection)
        members = tree.members(node)
        assert set(members.image_id) == expected, name
        info = tree.info(node)
        assert info["parent"] == "root" and info["selection"] == selection
        assert info["how"]["method"] == "refine" and info["n"] == len(expected)
        assert np.isfinite(members[["x", "y"]].to_numpy()).all()
    # the same selection reopens the node; a grandchild has a breadcrumb
    box = tree.child("root", cases["box"][0])
    assert tree.child("root", cases["box"][0]) == box
    grand = tree.child(box, {"ids": tree.members(box).image_id[:5].tolist()}, refit=True)
    assert breadcrumb(tree, grand) == ["root", box, grand]
    assert tree.info(grand)["how"] == {"method": "refit"}
    assert set(tree.remove(box)) == {box, grand} and box not in tree.ids()


def test_bad_selections_are_refused(tree):
    with pytest.raises(QueryError, match="unknown column 'colour'"):
        tree.child("root", {"query": "colour == 'red'"})
    with pytest.raises(SariseError, match="holds 0 images"):
        tree.child("root", {"ids": [1, 2]})
    with pytest.raises(SariseError, match="exactly one of"):
        tree.child("root", {"ids": [1], "box": [0, 0, 1, 1]})
    with pytest.raises(SariseError, match="no projection node 'nope'"):
        tree.child("nope", {"ids": [1]})


def test_explore_cli_makes_lists_and_removes_nodes(run, tree, cli_env):
    def sarise(*args):
        res = subprocess.run([sys.executable, "-m", "sarise.cli", *map(str, args)], env=cli_env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        return res.stdout

    out = sarise("explore", "select", run, "root", "--query", "group == 'p2'", "--refit")
    node = out.split(":")[0]
    assert "6 images, refit" in out and f"root > {node}" in out
    assert node in sarise("explore", "list", run)
    assert json.loads(sarise("explore", "show", run, node).split("\n" + node)[0])["n"] == 6
    assert f"removed {node}" in sarise("explore", "remove", run, node)


def test_a_cold_reprojection_imports_no_umap_learn_and_reruns_bit_for_bit(run, tree, cli_env):
    """``explore select`` (a refinement) in a new process: the 3-4 s import of umap-learn,
    scikit-learn and numba is what kept it slow."""
    code = ("import sys\nfrom sarise.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('IMPORTED', sorted(m for m in ('umap', 'sklearn', 'numba', 'pynndescent') "
            "if m in sys.modules))")  # fmt: skip

    def select():
        res = subprocess.run([sys.executable, "-c", code, "explore", "select", str(run), "root",
                              "--query", "group in ['p3', 'p31m', 'p3m1']"], env=cli_env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert res.returncode == 0 and "18 images" in res.stdout, res.stdout + res.stderr[-3000:]
        return res.stdout.split(":")[0], res.stdout.split("IMPORTED")[1].strip()

    node, imported = select()
    assert imported == "[]"
    first = tree.members(node)
    assert tree.info(node)["how"] == {"method": "refine", "epochs": 15, "learning_rate": 0.05,
                                      "sgd": "batch"}  # fmt: skip
    tree.remove(node)
    assert select()[0] == node
    pd.testing.assert_frame_equal(tree.members(node), first)


def test_search_finds_the_image_then_its_group(run, tree, wallpaper_run):
    build_index(run, config=SearchConfig())
    meta = tree.metadata()
    hits = []
    for _, row in meta.iloc[::4].iterrows():
        found = search(run, ids=[int(row.image_id)], k=4)
        assert found.image_id.iloc[0] == row.image_id and found.distance.iloc[0] < 1e-5
        hits.append((found.group.iloc[1:] == row.group).mean())
    assert np.mean(hits) > 0.3  # 5 of 101 (0.05) by chance; 0.42 measured
    # a new file, read and featurised like the archive: its stored twin comes first
    png = wallpaper_run.parent / "files" / meta.path.iloc[10]
    found = search(run, files=[png], k=3)
    assert found.image_id.iloc[0] == meta.image_id.iloc[10] and found.distance.iloc[0] < 1e-5
    limited = search(run, ids=[int(meta.image_id.iloc[0])], k=5, where="batch == 2")
    assert len(limited) == 5 and (limited.batch.astype(int) == 2).all()


def test_ivf_index_reaches_its_recall_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1, (30, 64))
    x = (centers[rng.integers(0, 30, 6000)] + 0.3 * rng.normal(size=(6000, 64))).astype(np.float32)
    ids = np.arange(6000, dtype=np.int64) * 7
    index = SearchIndex.build(x, ids, SearchConfig(exact_max=1000, target_recall=0.95))
    assert index.info["kind"] == "ivf" and index.info["recall_at_10"] >= 0.95
    index.save(tmp_path / "ix")
    loaded = SearchIndex.load(tmp_path / "ix")
    exact = SearchIndex.build(x, ids, SearchConfig())
    q = x[::97]
    got, _ = loaded.search(q, 10)
    truth, _ = exact.search(q, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)]) > 0.9
    assert set(got.ravel()) <= set(ids)


def _feature_run(path, x):
    """A run directory holding only a feature store (what projection reads)."""
    from sarise.features import _template, chunk_sizes

    attrs = {"extractor": "test", "version": 1, "model_sha256": "0" * 64, "preprocessing": {},
             "groups": list(GROUPS), "chunk": 500}  # fmt: skip
    g = _template(path / "features.zarr", len(x), attrs, x.shape[1])
    g["features"][:] = x
    g["image_id"][:] = np.arange(len(x)) * 3 + 1
    g["done"][:] = chunk_sizes(len(x), 500)


def test_large_archives_fit_a_sample_and_transform_the_rest_on_workers(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1, (12, 32))
    x = (centers[rng.integers(0, 12, 2600)] + 0.2 * rng.normal(size=(2600, 32))).astype(np.float32)
    coords = []
    for name in ("a", "b"):
        _feature_run(tmp_path / name, x)
        tree = ProjectionTree(tmp_path / name, ProjectConfig(fit_max=1000, quality_sample=500))
        with get_client(workers=2) as client:
            tree.project_root(client=client)
        info = tree.info("root")
        assert info["how"] == {"method": "fit-sample-transform", "fit_sample": 1000}
        assert info["quality"]["trustworthiness"] > 0.8
        coords.append(tree.members("root"))
    pd.testing.assert_frame_equal(coords[0], coords[1])  # seeded: same sample, same map
    assert coords[0].image_id.tolist() == (np.arange(2600) * 3 + 1).tolist()


def test_report_is_one_self_contained_page(run, tree, tmp_path):
    from PIL import Image

    from sarise.viewer.report import write_report

    tree.child("root", {"query": "group == 'p4'"})
    # an earlier report of the folder had more clusters and another node; a user's file
    (tmp_path / "report").mkdir()
    for name in ("cluster-99.png", "node-gone.png", "map-old.png", "notes.txt"):
        (tmp_path / "report" / name).write_bytes(b"old")
    page = write_report(run, tmp_path / "report").read_text()
    assert (tmp_path / "report" / "notes.txt").read_bytes() == b"old"
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert {"mosaic.png", "groups.png", "map-predicted_group.png", "map-group.png"} <= set(pngs)
    assert page.count("data:image/png;base64,") == len(pngs) and 'src="http' not in page
    assert "<td>root</td>" in page and "--query &quot;group == &#x27;p4&#x27;&quot;" in page
    # a map for every node below the root
    kids = tree.children("root")
    assert kids and all(f"node-{k}.png" in pngs for k in kids)
    assert f"{len(tree.ids()) - 1} nodes below the root" in page
    # a gallery per cluster of the root map: the images nearest its centre, with its size
    clusters = re.findall(r"<figcaption>cluster -?\d+: (\d+) images", page)
    assert len(clusters) >= 2 and sum(map(int, clusters)) <= 17 * 6
    gallery = np.asarray(Image.open(tmp_path / "report" / "cluster-00.png"))
    assert gallery.shape == (64, 10 * 66) and gallery.std() > 0


def test_a_grown_archive_is_projected_again_never_served_stale(wallpaper_run, tmp_path):
    from PIL import Image

    from sarise.config import IngestConfig, SymmetryConfig
    from sarise.features import extract
    from sarise.ingest import ingest
    from sarise.symmetry import sample

    copy = tmp_path / "run"
    shutil.copytree(wallpaper_run, copy)
    first = ProjectionTree(copy, ProjectConfig(seed=3))
    first.project_root()
    n0, made_from = first.info("root")["n"], first.info("root")["features"]
    more = tmp_path / "more"
    more.mkdir()
    cfg = SymmetryConfig(size=128, motif_sources=("field",))
    for i in range(17):
        im = sample(1000 + i, seed=5, split="test", config=cfg, augment=False)
        Image.fromarray((im.image * 255).round().astype(np.uint8)).save(more / f"m{i}.png")
    ingest([more], copy / "store", config=IngestConfig(size=128, flatten="none", chunk=32),
           workers=1, show_progress=False)  # fmt: skip
    extract(copy / "store", copy / "features.zarr", show_progress=False)
    again = ProjectionTree(copy, ProjectConfig(seed=3))
    assert again.project_root() == "root"
    assert again.info("root")["n"] == n0 + 17 == len(again.members("root"))
    assert again.info("root")["features"] != made_from


def test_tiny_sets_project_or_fail_in_one_line():
    from sarise.project import fit_umap, umap_params

    params = umap_params(ProjectConfig())
    x = np.random.default_rng(0).random((7, 32)).astype(np.float32)
    for n in (3, 4, 7):  # the spectral layout failed below 8 points (k >= N)
        coords = fit_umap(x[:n], params, seed=0).embedding_
        assert coords.shape == (n, 2) and np.isfinite(coords).all()
    with pytest.raises(SariseError, match="2 images: a projection needs at least 3"):
        fit_umap(x[:2], params, seed=0)


def test_retired_images_leave_projections_index_and_search(wallpaper_run, tmp_path):
    from sarise.run import open_run
    from sarise.store import ImageStore
    from sarise.viewer.report import write_report

    copy = tmp_path / "run"
    shutil.copytree(wallpaper_run, copy)
    first = ProjectionTree(copy, ProjectConfig(seed=3))
    first.project_root()
    build_index(copy)
    store = ImageStore.open(copy / "store")
    meta = store.metadata()
    n0 = len(meta)
    gone = meta.iloc[:5]
    store.retire(gone.assign(reason="removed")[["image_id", "path", "reason"]])
    # the old index is refused; the old root is projected again without them
    with pytest.raises(SariseError, match="built from other features"):
        search(copy, ids=[int(meta.image_id.iloc[10])])
    again = ProjectionTree(copy, ProjectConfig(seed=3))
    assert again.project_root() == "root"
    assert again.info("root")["n"] == n0 - 5
    assert not set(gone.image_id) & set(again.members("root").image_id)
    assert build_index(copy)["n"] == n0 - 5
    found = search(copy, ids=[int(meta.image_id.iloc[10])], k=n0)
    assert len(found) == n0 - 5 and not set(gone.image_id) & set(found.image_id)
    ds = open_run(copy)
    assert (ds.retired.sel(image=gone.image_id.to_numpy()) == "removed").all()
    assert (ds.retired != "").sum() == 5
    # restored, they are back
    store.retire(gone.assign(reason=None)[["image_id", "path", "reason"]])
    assert ProjectionTree(copy, ProjectConfig(seed=3)).features()[0].tolist() == \
        meta.image_id.tolist()  # fmt: skip

    # a node of 5 images: projected, reported, its quality "n/a" rather than a crash
    store.retire(meta.iloc[5:].assign(reason="removed")[["image_id", "path", "reason"]])
    shutil.rmtree(copy / "projections")
    small = ProjectionTree(copy, ProjectConfig(seed=3))
    small.project_root()
    assert small.info("root")["n"] == 5
    page = write_report(copy, tmp_path / "report").read_text()
    assert "trustworthiness n/a (too few images)" in page and "<td>root</td>" in page
