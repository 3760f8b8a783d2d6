"""The Snakemake workflow: lint, dry run, and the demo DAG for real."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def snakemake(args, env, cwd=ROOT, timeout=900):
    return subprocess.run(
        ["snakemake", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.integration
def test_lint_has_no_findings(cli_env):
    out = snakemake(["--lint"], cli_env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Congratulations, your workflow is in a good condition!" in out.stdout + out.stderr


@pytest.fixture
def workdir(tmp_path):
    """A scratch work directory holding the demo config."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    return tmp_path


@pytest.mark.integration
def test_dry_run(cli_env, workdir):
    out = snakemake(["-n", "--directory", str(workdir)], cli_env)
    assert out.returncode == 0, out.stdout + out.stderr
    for rule in ("symmetry_split", "symmetry_preview", "train", "export_model", "evaluate",
                 "demo_archive", "ingest", "extract", "project", "index", "report", "all"):  # fmt: skip
        assert rule in out.stdout


@pytest.mark.integration
def test_config_overrides_are_refused(cli_env, workdir):
    out = snakemake(
        ["-n", "--directory", str(workdir), "--config", "symmetry={'size': 64}"], cli_env
    )
    assert out.returncode != 0 and "--configfile" in out.stdout + out.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_demo_runs_end_to_end_and_reruns_are_no_ops(cli_env, workdir):
    """`make demo`'s DAG, in a scratch work directory with the demo config."""
    work = workdir
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2"]
    out = snakemake(args, cli_env)
    assert out.returncode == 0, out.stdout + out.stderr
    results = work / "results" / "demo" / "symmetry"
    assert {p.name for p in results.iterdir()} == {
        "train.zarr",
        "val.zarr",
        "test.zarr",
        "preview.png",
    }
    log = (work / "logs" / "demo" / "symmetry_train.log").read_text()
    assert "wrote results/demo/symmetry/train.zarr" in log
    model = work / "results" / "demo" / "model"
    summary = json.loads((model / "train.json").read_text())
    assert summary["steps"] == 60 and summary["images_per_s"] > 0
    assert (model / "checkpoints" / "last.ckpt").exists()
    assert json.loads((model / "model.json").read_text())["sha256"]
    evaluation = json.loads((work / "results/demo/evaluation/report.json").read_text())
    assert {"test", "ood-atoms", "noise-0.1", "noise-0.3"} <= set(evaluation["sets"])
    assert "step 60/60" in (work / "logs/demo/train.log").read_text()
    from sarise.store import ImageStore

    store = ImageStore.open(work / "results/demo/store")
    meta = store.metadata()
    assert len(store) >= 48 and (meta["path"].str.count("/") >= 1).all()
    assert {"grower", "outcome", "substrate"} <= set(meta.columns)
    assert "0 failed" in (work / "logs/demo/ingest.log").read_text()
    from sarise import open_run

    ds = open_run(work / "results/demo")
    assert ds.sizes["image"] == len(store) and bool(ds["done"].all())
    assert ds["features"].notnull().all() and ds["material"].size == len(store)
    root = json.loads((work / "results/demo/projections/root/node.json").read_text())
    assert root["n"] == len(store) and root["quality"]["trustworthiness"] > 0.8
    assert json.loads((work / "results/demo/index/index.json").read_text())["n"] == len(store)
    ds = open_run(work / "results/demo")
    assert ds.attrs["projection"] == "root" and bool(ds["x"].notnull().all())
    again = snakemake(args, cli_env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    report = snakemake([*args, "--report", str(work / "report.html")], cli_env)
    assert report.returncode == 0, report.stdout + report.stderr
    html = (work / "report.html").read_text(errors="replace")
    assert "preview.png" in html and "confusion-test.png" in html and "mosaic.png" in html
    page = (work / "results/demo/report/report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "<td>root</td>" in page
