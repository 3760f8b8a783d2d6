import json
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sarise.config import EvaluateConfig, IngestConfig
from sarise.errors import SariseError
from sarise.evaluate import _image_tiles, evaluate, read_labelled_folder
from sarise.ingest import ingest
from sarise.store import ImageStore
from sarise.symmetry import GROUPS, render


@pytest.mark.slow
def test_report_holds_every_set(tiny_model, tiny_splits, tmp_path):
    _, model = tiny_model
    cfg = EvaluateConfig(ood_per_group=2, invariance_per_group=1, noise=(0.1, 0.3),
                         simulated_per_crystal=2)  # fmt: skip
    report = evaluate(model, tmp_path, test=tiny_splits / "test.zarr", config=cfg,
                      show_progress=False)  # fmt: skip
    sets = report["sets"]
    assert list(sets) == ["test", "noise-0.1", "noise-0.3", "ood-atoms", "ood-texture",
                          "simulated"]  # fmt: skip
    crystals = sets["simulated"]["per_crystal"]
    assert sets["simulated"]["n"] == 12 and len(crystals) == 6
    assert crystals["graphene"]["group"] == "p6m" and crystals["rutile-001"]["group"] == "p4g"
    assert sets["test"]["n"] == 34 and sets["ood-atoms"]["n"] == sets["ood-texture"]["n"] == 34
    assert report["precision"] in ("fp32", "bf16")
    for s in sets.values():
        cm = np.asarray(s["confusion"])
        assert cm.shape == (17, 17) and cm.sum() == s["n"]
        assert s["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
        assert s["family_accuracy"] >= s["accuracy"]  # the right group has the right lattice
        assert set(s["per_group"]) == set(GROUPS)
        # the measurement alone and combined with the model, scored on the same images
        both = s["combined"]
        assert np.asarray(both["confusion"]).sum() == s["n"] and set(both["per_group"]) == set(
            GROUPS
        )
        assert 0 <= s["measured"]["no_lattice"] <= 1
        assert s["measured"]["accuracy"] <= 1 - s["measured"]["no_lattice"]
    # a generated test split: the measurement knows most groups a tiny model does not
    assert sets["test"]["measured"]["accuracy"] > sets["test"]["accuracy"]
    inv = report["invariance"]
    assert inv["n_pairs"] == 17 and -1 <= inv["mean_cosine"] <= 1
    assert set(inv["per_group"]) == set(GROUPS)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    md = (tmp_path / "report.md").read_text()
    assert "| ood-atoms | 34 |" in md and "Embedding invariance" in md
    assert "| SrTiO3-001 | p4m | 2 |" in md
    assert "| set | images | model | measured | combined | what |" in md
    assert f"| test | 34 | {sets['test']['accuracy']:.4f} / " in md
    for name in sets:
        for png in (f"confusion-{name}.png", f"confusion-{name}-combined.png"):
            with Image.open(tmp_path / png) as im:
                assert im.size[0] > 500
    # without the measurement: the model's scores only
    cfg = cfg.model_copy(update={"measured": False})
    alone = evaluate(model, tmp_path / "alone", test=tiny_splits / "test.zarr", config=cfg,
                     sets=["test"], show_progress=False)["sets"]["test"]  # fmt: skip
    assert "combined" not in alone and alone["accuracy"] == sets["test"]["accuracy"]


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.mark.slow
def test_labelled_folder_with_bad_files(tiny_model, tmp_path, cli_env):
    _, model = tiny_model
    root = tmp_path / "mine"
    for g in ("p4", "p6", "cm"):
        im = render(g, 80, rng=3).image
        _write(root / g / "grey.png", (im * 255).astype(np.uint8))
        _write(root / g / "rgb.png", np.repeat((im[:, :60, None] * 255).astype(np.uint8), 3, 2))
    (root / "p4" / "broken.png").write_bytes(b"not a png")
    _write(root / "p9" / "x.png", np.zeros((8, 8), np.uint8))
    res = subprocess.run(
        [sys.executable, "-m", "sarise.cli", "evaluate", str(tmp_path / "out"), "--model", str(model),
         "--folder", str(root), "--only", "test", "--no-progress"],
        env=cli_env, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "2 file(s) could not be evaluated" in res.stderr
    assert re.search(
        r"folder  \d\.\d{4}  family \d\.\d{4}  measured \d\.\d{4}  combined", res.stdout
    )
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    folder = report["sets"]["folder"]
    assert folder["n"] == 6
    assert {f["label"] for f in folder["files"]} == {"p4", "p6", "cm"}
    reasons = {e["path"].split("/")[-1]: e["reason"] for e in folder["errors"]}
    assert "broken.png" in reasons and "not a group name" in reasons["p9"]
    assert all(f["combined"] in GROUPS and f["measured"] in (*GROUPS, None)
               for f in folder["files"])  # fmt: skip


def test_images_are_cropped_or_tiled_never_distorted():
    a = np.arange(100 * 160, dtype=np.float32).reshape(100, 160)
    crop = _image_tiles(a, 100, "crop")
    assert crop.shape == (1, 100, 100)
    np.testing.assert_array_equal(crop[0], a[:, 30:130])  # the centred square, as is
    tiles = _image_tiles(a, 50, "tile")
    assert tiles.shape == (6, 50, 50)  # 2 x 3 tiles at native resolution
    np.testing.assert_array_equal(tiles[0], a[0:50, 5:55])
    np.testing.assert_array_equal(tiles[5], a[50:100, 105:155])
    small = _image_tiles(a, 200, "tile")  # too small to tile: square crop, scaled
    assert small.shape == (1, 200, 200)
    # auto: no lattice in a ramp, so the whole image; a fine lattice, tiles at its scale
    np.testing.assert_array_equal(_image_tiles(a, 100, "auto"), crop)
    y, x = np.mgrid[:400, :400] * (2 * np.pi / 5)
    fine = _image_tiles(np.cos(x) + np.cos(y), 100, "auto")  # 5 px cells -> 10 px
    assert fine.shape == (16, 100, 100)
    with pytest.raises(ValueError, match="mode must be one of auto, crop, tile"):
        _image_tiles(a, 100, "stretch")


def test_evaluate_refuses_an_unknown_fit(tmp_path, cli_env):
    res = subprocess.run(
        [sys.executable, "-m", "sarise.cli", "evaluate", str(tmp_path / "out"),
         "--folder", str(tmp_path), "--fit", "stretch"],
        env=cli_env, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2 and "--fit" in res.stderr and "stretch" in res.stderr


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "p1").mkdir()
    with pytest.raises(SariseError, match="no readable labelled images"):
        read_labelled_folder(tmp_path, 32, list(GROUPS))
    with pytest.raises(SariseError, match="is not a folder"):
        read_labelled_folder(tmp_path / "nope", 32, list(GROUPS))


@pytest.mark.slow
def test_d4_scores_a_turned_or_flipped_folder_exactly_alike(tiny_model, tmp_path):
    # evaluate.invariant: d4 averages the logits over the 8 right-angle turns and flips,
    # so the same images turned or flipped get the same logits, bit for bit
    _, model = tiny_model
    for name, op in (("plain", lambda a: a), ("turned", np.rot90),
                     ("flipped", lambda a: a[:, ::-1])):  # fmt: skip
        for g in ("p4", "pm", "p6"):
            for seed in (1, 2):
                im = (render(g, 96, rng=seed).image * 255).astype(np.uint8)
                _write(tmp_path / name / g / f"{seed}.png", np.ascontiguousarray(op(im)))
    files = {}
    for inv in ("none", "d4"):
        cfg = EvaluateConfig(invariant=inv, measured=False)
        for name in ("plain", "turned", "flipped"):
            report = evaluate(model, tmp_path / f"out-{inv}-{name}", folder=tmp_path / name,
                              folder_mode="crop", config=cfg, sets=[], show_progress=False)  # fmt: skip
            assert report["invariant"] == inv
            rows = sorted(
                report["sets"]["folder"]["files"], key=lambda f: f["path"].split("/")[-2:]
            )
            files[inv, name] = np.array([f["probability"] for f in rows])
    np.testing.assert_array_equal(files["d4", "turned"], files["d4", "plain"])
    np.testing.assert_array_equal(files["d4", "flipped"], files["d4", "plain"])
    assert not np.allclose(files["none", "turned"], files["none", "plain"], atol=1e-4)


def test_a_labelled_folder_is_read_as_ingest_stores_it(shared_data, tmp_path):
    # an STM topography scan (.sxm, which the folder walk once skipped): evaluation must
    # see what extraction will, so the file is levelled line by line (ingest.flatten: auto,
    # an SPM height channel) and clipped as ingest does
    src = shared_data / "sxm" / "example_LineProfile.sxm"
    (tmp_path / "p4m").mkdir()
    (tmp_path / "p4m" / src.name).symlink_to(src)
    cfg = IngestConfig(channels=("^z",), size=128, fit="crop")
    inputs, _, _, errors = read_labelled_folder(tmp_path, 128, list(GROUPS),
                                                mode="crop", ingest=cfg)  # fmt: skip
    assert not errors and len(inputs) == 1 and inputs[0].shape == (1, 128, 128)
    ingest([src], tmp_path / "store", config=cfg, workers=1, show_progress=False)
    stored = ImageStore.open(tmp_path / "store").array("images")[0, 0]
    np.testing.assert_allclose(inputs[0][0], stored.astype(np.float32), atol=1e-3)
    # without levelling (the folder read before) the same file gives another image
    raw, *_ = read_labelled_folder(tmp_path, 128, list(GROUPS), mode="crop",
                                   ingest=cfg.model_copy(update={"flatten": "none"}))  # fmt: skip
    assert np.abs(raw[0][0] - inputs[0][0]).mean() > 0.05


def test_group_folders_may_use_full_or_orbifold_symbols(tmp_path):
    # other generators name their folders p4mm, c2mm or *632: the same groups
    im = (render("p4", 64, rng=0).image * 255).astype(np.uint8)
    for name in ("P4MM", "c2mm", "*632", "p3m1", "p5"):
        _write(tmp_path / name / "a.png", im)
    inputs, labels, paths, errors = read_labelled_folder(tmp_path, 32, list(GROUPS), mode="crop")
    got = {p.split("/")[-2]: GROUPS[k] for p, k in zip(paths, labels, strict=True)}
    assert got == {"P4MM": "p4m", "c2mm": "cmm", "*632": "p6m", "p3m1": "p3m1"}
    assert len(inputs) == 4 and [e[0].split("/")[-1] for e in errors] == ["p5"]


def test_a_file_is_measured_where_its_tiles_hold_a_lattice():
    """A lattice on part of a scan (an island on a substrate) is measured in some of the
    file's tiles: the file takes their group and combined probabilities, not the bare
    substrate's (most tiles here), and the model alone where no tile holds one."""
    from sarise.evaluate import _file_measured

    measured = np.array([-1, -1, -1, 5, 5, 7])
    combined = np.log(np.full((6, 17), 1 / 17))
    combined[3:] = np.log(np.where(np.arange(17) == 5, 0.9, 0.1 / 16))
    group, logp = _file_measured(measured, combined)
    assert group == 5 and logp.argmax() == 5 and np.allclose(logp, combined[3:].mean(0))
    group, logp = _file_measured(np.full(6, -1), combined)
    assert group == -1 and np.allclose(logp, combined.mean(0))
