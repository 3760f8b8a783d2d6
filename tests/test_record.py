"""Run records (``<run>/records/``), ``sarise info`` and the run digest."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import zarr

from sarise.config import SarisConfig
from sarise.record import read_records, run_digest, run_info, seeds, write_record
from sarise.train import launch_rank


def _small_run(path):
    """A run directory with a Zarr array, a Parquet table, JSON with timings and a log."""
    arr = zarr.create_array(path / "features.zarr" / "features", shape=(6, 4), chunks=(3, 4),
                            dtype="float32")  # fmt: skip
    arr[...] = np.arange(24, dtype=np.float32).reshape(6, 4)
    arr.attrs["model_sha256"] = "ab" * 32
    pd.DataFrame({"image_id": [1, 2], "path": ["a.tif", "b.tif"]}).to_parquet(
        path / "members.parquet"
    )
    (path / "node.json").write_text(json.dumps({"n": 6, "seconds": 1.5, "created": "today"}))
    (path / "tensorboard").mkdir()
    (path / "tensorboard" / "events").write_bytes(b"wall time 1")
    return path


def test_digest_ignores_timings_logs_and_chunking_but_not_values(tmp_path):
    a = _small_run(tmp_path / "a")
    b = _small_run(tmp_path / "b")
    (b / "node.json").write_text(json.dumps({"n": 6, "seconds": 99.0, "created": "tomorrow"}))
    (b / "tensorboard" / "events").write_bytes(b"wall time 2")
    write_record(b, "project", SarisConfig(), outputs=[b / "node.json"], started=0.0)
    # the same values in other chunks and codecs: equal digests
    shutil.rmtree(b / "features.zarr")
    arr = zarr.create_array(b / "features.zarr" / "features", shape=(6, 4), chunks=(2, 2),
                            dtype="float32", compressors=None)  # fmt: skip
    arr[...] = np.arange(24, dtype=np.float32).reshape(6, 4)
    arr.attrs["model_sha256"] = "ab" * 32
    da, db = run_digest(a), run_digest(b)
    assert da == db
    assert set(da) == {"features.zarr/features", "members.parquet", "node.json"}
    # one value, one attribute or one table cell changed: that entry differs
    arr[0, 0] = -1
    assert run_digest(b)["features.zarr/features"] != da["features.zarr/features"]
    arr[0, 0] = 0
    arr.attrs["model_sha256"] = "cd" * 32
    assert run_digest(b)["features.zarr/features"] != da["features.zarr/features"]
    pd.DataFrame({"image_id": [1, 3], "path": ["a.tif", "b.tif"]}).to_parquet(b / "members.parquet")
    assert run_digest(b)["members.parquet"] != da["members.parquet"]
    (b / "node.json").write_text(json.dumps({"n": 7, "seconds": 1.5}))
    assert run_digest(b)["node.json"] != da["node.json"]


def test_record_holds_what_made_the_stage(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setattr(sys, "argv", ["sarise", "project", str(tmp_path)])
    cfg = SarisConfig.model_validate({"symmetry": {"seed": 3}, "project": {"seed": 7}})
    path = write_record(tmp_path, "project", cfg, outputs=["projections/root"], started=100.0,
                        model_sha256="ef" * 32, nodes=1)  # fmt: skip
    assert path == tmp_path / "records" / "project.json"
    rec = read_records(tmp_path)["project"]
    assert rec["command"] == f"sarise project {tmp_path}"
    assert rec["slurm_job_id"] == "4242" and rec["model_sha256"] == "ef" * 32
    assert rec["seeds"] == {"symmetry.seed": 3, "train.seed": 0, "project.seed": 7}
    assert rec["config"] == cfg.model_dump(mode="json") and rec["nodes"] == 1
    assert {"numpy", "torch", "zarr", "sarise"} <= set(rec["packages"])
    assert rec["started"].startswith("1970-01-01T00:01:40")
    assert not list((tmp_path / "records").glob(".*"))  # no temporary file left behind


def test_config_sha_leaves_out_where_the_workers_ran(tmp_path):
    a = SarisConfig.model_validate({"cluster": {"kind": "local", "workers": 2}})
    b = SarisConfig.model_validate({"cluster": {"kind": "slurm", "workers": 8}})
    c = SarisConfig.model_validate({"project": {"n_neighbors": 5}})
    for stage, cfg in (("ingest", a), ("extract", b)):
        write_record(tmp_path, stage, cfg, outputs=[], started=0.0)
    assert len(run_info(tmp_path)["configs"]) == 1
    write_record(tmp_path, "project", c, outputs=[], started=0.0)
    assert len(run_info(tmp_path)["configs"]) == 2


def test_seeds_are_found_at_any_depth():
    assert seeds({"a": {"seed": 1, "b": {"seed": 2}}, "seed": 3, "c": [1]}) == {
        "a.seed": 1, "a.b.seed": 2, "seed": 3}  # fmt: skip


@pytest.mark.parametrize(
    ("env", "rank"),
    [({}, 0), ({"OMPI_COMM_WORLD_RANK": "2"}, 2), ({"SLURM_PROCID": "3"}, 0),
     ({"SLURM_PROCID": "3", "SLURM_STEP_ID": "0"}, 3), ({"LOCAL_RANK": "1"}, 1)],
)  # fmt: skip
def test_launch_rank(monkeypatch, env, rank):
    for key in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "RANK", "LOCAL_RANK",
                "SLURM_PROCID", "SLURM_STEP_ID"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launch_rank() == rank


@pytest.mark.integration
def test_info_of_a_run_made_by_the_cli(wallpaper_run, tmp_path, cli_env):
    """`sarise project` and `sarise index` leave records; `sarise info` reads them back."""
    run = tmp_path / "run"
    shutil.copytree(wallpaper_run, run)
    for args in (["project", str(run)], ["index", str(run)]):
        out = subprocess.run([sys.executable, "-m", "sarise.cli", *args], env=cli_env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
        assert out.returncode == 0, out.stderr
    info = subprocess.run([sys.executable, "-m", "sarise.cli", "info", str(run)], env=cli_env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert info.returncode == 0, info.stderr
    text = info.stdout
    features = zarr.open_group(run / "features.zarr", mode="r").attrs["model_sha256"]
    assert f"model_sha256 {features}" in text and "store            images 102" in text
    assert "one config" in text and "project.seed=0" in text and "torch" in text
    assert "sarise project" in text and "sarise index" in text
    records = read_records(run)
    assert records["project"]["model_sha256"] == features
    js = json.loads(subprocess.run([sys.executable, "-m", "sarise.cli", "info", str(run), "--json"],
                                   env=cli_env, capture_output=True, text=True).stdout)  # fmt: skip
    assert js["contents"]["index"]["images"] == 102 and set(js["stages"]) == {"project", "index"}
    digest = subprocess.run([sys.executable, "-m", "sarise.cli", "info", str(run), "--digest"],
                            env=cli_env, capture_output=True, text=True).stdout  # fmt: skip
    assert "  features.zarr/features\n" in digest and "records" not in digest


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "a JSON list, not an object"),
        ('"just text"', "a JSON str, not an object"),
        ('{"stage": "x"}', "no 'command'"),
        ('{"command": "c", "started": "s", "seconds": "slow", "host": "h"}', "'seconds' is a JSON str"),
        ('{"command": "c", "started": "s", "seconds": 1, "host": "h", "seeds": [1]}', "'seeds' is a JSON list"),
        ('{"command": "c", "started": "s", "seconds": 1, "host": "h", "seeds": {"a": "b"}}', "not an integer"),
        ('{"command": "c", "started": "s", "seconds": true, "host": "h"}', "'seconds' is a JSON bool"),
        ('{"command": "c", "started": "s", "seconds": 1, "host": "h", "packages": {"x": 1}}', "not text"),
        ("{not json", "unreadable record"),
    ],
)  # fmt: skip
def test_info_reports_malformed_records_and_files_without_failing(tmp_path, text, problem):
    from sarise.errors import SariseError
    from sarise.record import format_info

    run = tmp_path / "run"
    (run / "records").mkdir(parents=True)
    (run / "records" / "ingest.json").write_text(text)
    info = run_info(run)
    assert problem in info["stages"]["ingest"]["error"]
    assert f"ingest           {info['stages']['ingest']['error']}" in format_info(info)
    (run / "index").mkdir()
    (run / "index" / "index.json").write_text("[]")
    with pytest.raises(SariseError, match=r"index\.json: a JSON list, not an object"):
        run_info(run)
