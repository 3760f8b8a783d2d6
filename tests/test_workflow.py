"""The Snakemake workflow: lint, format, config handling, the demo DAG for real, reruns
that redo exactly what changed, bit-identical runs, and the same DAG on a real SLURM
cluster and under mpirun."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sarise.record import read_records, run_digest
from tests._system import MPI_ENV, need_mpirun, need_slurm
from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ".test/config/config.yaml"


def snakemake(args, env, cwd=ROOT, timeout=900):
    return subprocess.run(
        ["snakemake", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def job_stats(out) -> dict[str, int]:
    """Snakemake's own summary of what a (dry) run does: the "Job stats" table, by rule."""
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].strip().split("\n\n", 1)[0].splitlines()
    rows = (line.split() for line in table[2:])
    return {rule: int(n) for rule, n in rows if rule != "total"}


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
def test_rules_are_snakefmt_formatted(cli_env):
    out = subprocess.run(["snakefmt", "--check", "Snakefile", "workflow/rules"], cwd=ROOT,
                         env=cli_env, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.integration
def test_bad_config_is_refused_with_every_mistake_named(cli_env, workdir):
    (workdir / "bad.yaml").write_text("run: bad\nsymmetry: {size: 8}\nproject: {n_neigbors: 5}\n")
    out = snakemake(["-n", "--directory", str(workdir), "--configfile", str(workdir / "bad.yaml")],
                    cli_env)  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert ("invalid config bad.yaml: symmetry.size: Input should be greater than or equal to "
            "16; project.n_neigbors: Extra inputs are not permitted") in text  # fmt: skip


@pytest.mark.integration
def test_a_configfile_is_the_whole_config(cli_env, workdir):
    """With config/config.yaml in the work directory too, Snakemake would merge the two;
    the rules see only the file the commands read."""
    shutil.copytree(ROOT / ".test", workdir / ".test")
    out = snakemake(["-n", "-p", "--directory", str(workdir), "--configfile",
                     str(workdir / TEST_CONFIG)], cli_env)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "results/test/features.zarr" in out.stdout and "results/demo" not in out.stdout
    assert "--config .test/config/config.yaml" in out.stdout
    assert "--config config/config.yaml" not in out.stdout


@pytest.mark.integration
def test_profiles_are_valid_and_the_site_example_asks_for_gpus(cli_env, workdir):
    """profiles/slurm and profiles/site-example in a dry run: the sbatch settings per rule."""
    for name in ("slurm", "site-example"):
        profile = yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())
        assert profile["executor"] == "slurm"
        extract = profile["set-resources"]["extract"]
        assert "cluster" not in extract  # the plugin would pass it to sbatch --clusters
    site = yaml.safe_load((ROOT / "profiles" / "site-example" / "config.yaml").read_text())
    train = site["set-resources"]["train"]
    assert train["mpi"] == "srun" and train["tasks_per_node"] == train["gpu"]
    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    assert "executor" not in default
    # the commands the site's jobs run (conda left out: this machine has none)
    site.pop("software-deployment-method")
    (workdir / "site").mkdir()
    (workdir / "site" / "config.yaml").write_text(yaml.safe_dump(site))
    out = snakemake(["-n", "-p", "--directory", str(workdir), "--profile", str(workdir / "site")],
                    cli_env)  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "srun --nodes 2 --ntasks-per-node 4 sarise train results/demo/model" in text
    assert re.search(r"  sarise extract \S+ \S+ --config \S+ --cluster cuda\s+--no-progress", text)
    for env in ("cpu", "cuda"):
        spec = yaml.safe_load((ROOT / "envs" / f"sarise-{env}.yaml").read_text())
        pip = spec["dependencies"][-1]["pip"]
        assert "torch==2.13.0" in pip
        assert any(p.startswith("${SARISE_ROOT}[") and ("gpu" in p) == (env == "cuda") for p in pip)


@pytest.mark.integration
def test_config_overrides_are_refused(cli_env, workdir):
    out = snakemake(
        ["-n", "--directory", str(workdir), "--config", "symmetry={'size': 64}"], cli_env
    )
    assert out.returncode != 0 and "--configfile" in out.stdout + out.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`make demo`'s DAG, run once in a scratch work directory with the demo config."""
    work = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "config", work / "config")
    env = subprocess_env(work.parent / f"{work.name}-home")
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2"]
    out = snakemake(args, env, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr
    return SimpleNamespace(work=work, env=env, args=args, run=work / "results" / "demo")


@pytest.mark.integration
@pytest.mark.slow
def test_demo_runs_end_to_end(demo):
    work = demo.work
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
    # every file is stored but the shared example_nc-AFM.sxm (when present), whose Z is one
    # constant: refused as a flat channel, recorded, and the run goes on
    errors = store.errors()
    assert all(p.endswith("example_nc-AFM.sxm") for p in errors["path"]), errors
    assert errors["reason"].str.contains("flat channel").all()
    assert f"{len(errors)} failed" in (work / "logs/demo/ingest.log").read_text()
    from sarise import open_run

    ds = open_run(work / "results/demo")
    assert ds.sizes["image"] == len(store) and bool(ds["done"].all())
    assert ds["features"].notnull().all() and ds["material"].size == len(store)
    root = json.loads((work / "results/demo/projections/root/node.json").read_text())
    assert root["n"] == len(store) and root["quality"]["trustworthiness"] > 0.8
    assert json.loads((work / "results/demo/index/index.json").read_text())["n"] == len(store)
    ds = open_run(work / "results/demo")
    assert ds.attrs["projection"] == "root" and bool(ds["x"].notnull().all())
    report = snakemake([*demo.args, "--report", str(work / "report.html")], demo.env)
    assert report.returncode == 0, report.stdout + report.stderr
    html = (work / "report.html").read_text(errors="replace")
    assert "preview.png" in html and "confusion-test.png" in html and "mosaic.png" in html
    page = (work / "results/demo/report/report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 and "<td>root</td>" in page


#: Every stage's record, and the model each used: the trained one for evaluate, the
#: shipped one (features.zarr) from extract on.
STAGES = {"generate-train", "generate-val", "generate-test", "generate-preview", "train",
          "evaluate", "ingest", "extract", "project", "index", "report"}  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
def test_two_clean_demo_runs_are_bit_identical(demo, tmp_path):
    """A second clean run of the demo: every array, table, model and figure is the same
    (run_digest leaves out only wall-clock fields, TensorBoard event files and records)."""
    work = tmp_path / "again"
    shutil.copytree(ROOT / "config", work / "config")
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "2"]
    out = snakemake(args, demo.env, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr
    first, second = run_digest(demo.run), run_digest(work / "results" / "demo")
    assert set(first) == set(second)
    assert [k for k in first if first[k] != second[k]] == []
    for key in ("symmetry/train.zarr/images", "symmetry/train.zarr/label",
                "model/model.safetensors", "model/model.ckpt", "model/metrics.csv",
                "evaluation/report.json", "store/images.zarr/images", "features.zarr/features",
                "features.zarr/logits", "projections/root/members.parquet",
                "projections/root/node.json", "index/index.faiss", "report/mosaic.png"):  # fmt: skip
        assert key in first, key
    assert any(k.startswith("store/metadata.parquet/") for k in first)
    records = read_records(demo.run)
    assert set(records) == STAGES
    info = subprocess.run(["sarise", "info", str(demo.run)], env=demo.env, capture_output=True,
                          text=True)  # fmt: skip
    assert info.returncode == 0 and "one config" in info.stdout
    model_sha = json.loads((demo.run / "model" / "model.json").read_text())["sha256"]
    assert records["evaluate"]["model_sha256"] == model_sha
    assert len({records[s]["model_sha256"] for s in ("extract", "project", "index", "report")}) == 1


def _edit_config(path: Path, dotted: str, value) -> None:
    cfg = yaml.safe_load(path.read_text())
    *parents, leaf = dotted.split(".")
    node = cfg
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.integration
@pytest.mark.slow
def test_reruns_redo_exactly_what_one_parameter_changes(demo):
    """Snakemake's own dry-run summary: nothing for a finished target; for one edited key,
    the rules that read it and those downstream, no others. A real rerun does that much,
    and editing the key back restores the outputs bit for bit."""
    config = demo.work / "config" / "config.yaml"
    original = config.read_text()
    dry = [*demo.args, "-n"]
    assert job_stats(snakemake(dry, demo.env)) == {}
    after_ingest = {"ingest": 1, "extract": 1, "project": 1, "index": 1, "report": 1, "all": 1}
    cases = [
        ("symmetry.seed", 5, {"symmetry_split": 3, "symmetry_preview": 1, "train": 1,
                              "export_model": 1, "evaluate": 1, "all": 1}),
        ("train.lr", 0.002, {"train": 1, "export_model": 1, "evaluate": 1, "all": 1}),
        ("evaluate.ood_per_group", 3, {"evaluate": 1, "all": 1}),
        ("ingest.size", 96, after_ingest),
        ("extract.batch_size", 32, {k: v for k, v in after_ingest.items() if k != "ingest"}),
        ("project.n_neighbors", 10, {"project": 1, "report": 1, "all": 1}),
        ("search.exact_max", 10, {"index": 1, "report": 1, "all": 1}),
        ("cluster.workers", 1, {}),  # where workers run changes no output
    ]  # fmt: skip
    try:
        for key, value, expected in cases:
            config.write_text(original)
            _edit_config(config, key, value)
            out = snakemake(dry, demo.env)
            assert out.returncode == 0, out.stdout + out.stderr
            assert job_stats(out) == expected, (key, out.stdout)
            if expected:
                assert "Params have changed" in out.stdout
        # for real: only project and report run, then nothing is left to do
        before = run_digest(demo.run)
        config.write_text(original)
        _edit_config(config, "project.n_neighbors", 10)
        out = snakemake(demo.args, demo.env)
        assert out.returncode == 0 and job_stats(out) == cases[5][2], out.stdout + out.stderr
        assert job_stats(snakemake(dry, demo.env)) == {}
        changed = run_digest(demo.run)
        assert changed["projections/root/node.json"] != before["projections/root/node.json"]
        assert changed["features.zarr/features"] == before["features.zarr/features"]
    finally:
        config.write_text(original)
    out = snakemake(demo.args, demo.env)
    assert out.returncode == 0 and job_stats(out) == cases[5][2], out.stdout + out.stderr
    assert run_digest(demo.run) == before


@pytest.fixture(scope="module")
def small_dag(tmp_path_factory):
    """The test DAG (.test/config) run locally: what the SLURM and MPI runs must equal."""
    work = tmp_path_factory.mktemp("test-dag-local")
    shutil.copytree(ROOT / ".test", work / ".test")
    env = subprocess_env(work.parent / f"{work.name}-home")
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
            "--configfile", str(work / TEST_CONFIG)]  # fmt: skip
    out = snakemake([*args, "--cores", "2"], env, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr
    run = work / "results" / "test"
    return SimpleNamespace(work=work, env=env, args=args, run=run, digest=run_digest(run))


def _jobcomp() -> dict[str, dict[str, str]]:
    """The scheduler's record of finished jobs (slurm.conf JobCompType=jobcomp/filetxt, as
    profiles/slurm/local-cluster.sh sets it), by job id."""
    conf = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    settings = dict(re.findall(r"^(\w+)\s*=\s*(.*?)\s*$", conf, flags=re.M))
    assert settings.get("JobCompType") == "jobcomp/filetxt", (
        "the cluster keeps no job completion records (profiles/slurm/local-cluster.sh sets them)"
    )
    jobs = {}
    for line in Path(settings["JobCompLoc"]).read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        jobs[fields["JobId"]] = fields
    return jobs


def _slurm_profile(folder: Path, rule: str, **resources) -> Path:
    """profiles/slurm with more resources for one rule, written to ``folder/profile``."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile["set-resources"][rule].update(resources)
    (folder / "profile").mkdir()
    (folder / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder / "profile"


#: The jobs of the test DAG: every rule but `all` (a local rule) becomes a SLURM job.
SLURM_JOBS = {"symmetry_split": 3, "symmetry_preview": 1, "train": 1, "export_model": 1,
              "evaluate": 1, "demo_archive": 1, "ingest": 1, "extract": 1, "project": 1,
              "index": 1, "report": 1}  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
def test_slurm_profile_runs_every_rule_as_a_slurm_job_equal_to_local(small_dag, tmp_path):
    """The test DAG with --profile profiles/slurm on the local cluster (`make slurm`), with
    extraction as dask-mpi ranks under `srun --mpi=pmix` (what a multi-node site sets):
    every rule is a SLURM job the scheduler recorded as completed in this work directory,
    and every output equals the local run's."""
    need_slurm()
    work = tmp_path / "slurm"
    shutil.copytree(ROOT / ".test", work / ".test")
    # three ranks on this 2-core node: scheduler, the command, one worker (overcommitted)
    profile = _slurm_profile(tmp_path, "extract", dask="mpi", mpi="srun --mpi=pmix --overcommit",
                             tasks=3, cpus_per_task=1, slurm_extra="'--overcommit'")  # fmt: skip
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
            "--configfile", str(work / TEST_CONFIG), "--profile", str(profile)]  # fmt: skip
    out = snakemake(args, small_dag.env, timeout=1800)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", text)
    by_rule: dict[str, list[str]] = {}
    for job, rule in submitted:
        by_rule.setdefault(rule, []).append(job)
    assert {rule: len(jobs) for rule, jobs in by_rule.items()} == SLURM_JOBS
    records = _jobcomp()
    for rule, jobs in by_rule.items():
        for job in jobs:
            rec = records.get(job)
            assert rec is not None, f"no scheduler record of job {job} ({rule})"
            assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", (rule, rec)
            assert Path(rec["WorkDir"]).resolve() == work.resolve(), (rule, rec)
    assert records[by_rule["extract"][0]]["ProcCnt"]  # the 3-task allocation
    # the commands ran inside those jobs: their run records carry SLURM's job id
    run = work / "results" / "test"
    stages = read_records(run)
    for stage, rule in (("train", "train"), ("ingest", "ingest"), ("extract", "extract"),
                        ("project", "project"), ("index", "index"), ("report", "report")):  # fmt: skip
        assert stages[stage]["slurm_job_id"] == by_rule[rule][0], stage
    assert "dask-mpi: 1 workers" in (work / "logs" / "test" / "extract.log").read_text()
    local, remote = small_dag.digest, run_digest(run)
    assert set(local) == set(remote) and len(local) > 50
    assert [k for k in local if local[k] != remote[k]] == []


@pytest.mark.integration
@pytest.mark.slow
def test_mpirun_extraction_through_the_dag_equals_local(small_dag, tmp_path):
    """The extract rule with `mpi: mpirun` and `dask: mpi` (profile resources, set on the
    command line here): dask-mpi ranks under mpirun give the local features bit for bit."""
    need_mpirun()
    run = small_dag.run
    target = str(run.relative_to(small_dag.work) / "features.zarr")  # first: options take lists
    out = snakemake([target, *small_dag.args, "--cores", "2", "--forcerun", "extract",
                     "--set-resources", "extract:mpi=mpirun", "extract:tasks=3",
                     "extract:dask=mpi"], {**small_dag.env, **MPI_ENV})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert job_stats(out) == {"extract": 1}
    assert "mpirun -n 3 sarise extract" in out.stdout + out.stderr
    assert "dask-mpi: 1 workers" in (small_dag.work / "logs" / "test" / "extract.log").read_text()
    before = {k: v for k, v in small_dag.digest.items() if k.startswith("features.zarr")}
    after = {k: v for k, v in run_digest(run).items() if k.startswith("features.zarr")}
    assert len(before) >= 5 and after == before


@pytest.mark.integration
@pytest.mark.slow
def test_slurm_training_runs_one_task_per_process_through_the_dag(tmp_path, cli_env):
    """What profiles/site-example sets for GPU nodes, on this node's 2 cores: the train job
    with `mpi: srun` and `tasks_per_node: 2` runs `srun --nodes 1 --ntasks-per-node 2 sarise
    train`, two DDP processes that take their ranks from SLURM, inside one SLURM job."""
    need_slurm()
    work = tmp_path / "work"
    shutil.copytree(ROOT / ".test", work / ".test")
    profile = _slurm_profile(tmp_path, "train", mpi="srun", tasks_per_node=2, cpus_per_task=1)
    out = snakemake(["results/test/model/model.ckpt", "--snakefile", str(ROOT / "Snakefile"),
                     "--directory", str(work), "--configfile", str(work / TEST_CONFIG),
                     "--profile", str(profile)], cli_env, timeout=1200)  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "srun --nodes 1 --ntasks-per-node 2 sarise train results/test/model" in text
    [job] = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_train/", text)
    record = _jobcomp()[job]
    assert record["JobState"] == "COMPLETED" and record["ProcCnt"] == "2", record
    summary = json.loads((work / "results/test/model/train.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 10
    assert read_records(work / "results" / "test")["train"]["slurm_job_id"] == job


@pytest.mark.integration
@pytest.mark.slow
def test_an_archive_config_maps_exactly_its_files(tmp_path, shared_data):
    """A user's own folder, mapped from a work directory of the user's: `snakemake map`
    with an `archive` section ingests exactly those files (the channel preference per
    file), generates and trains nothing, and keeps Dask's chatter out of the logs."""
    from sarise.store import ImageStore

    work = tmp_path / "mymap"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump({
        "run": "pfm",
        "archive": {"sources": [str(shared_data)], "exclude": ["sxm/example_FFT.sxm"]},
        "ingest": {"channels": [["phase", "^z_fwd$", "height"]]},
    }))  # fmt: skip
    env = subprocess_env(tmp_path / "home")
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--configfile",
            str(work / "config.yaml"), "--cores", "2"]  # fmt: skip
    dry = snakemake([*args, "-n"], env)  # the default target is the map too
    assert dry.returncode == 0 and job_stats(dry) == {
        "ingest": 1,
        "extract": 1,
        "project": 1,
        "index": 1,
        "report": 1,
        "all": 1,
    }, dry.stdout
    out = snakemake([*args, "map"], env, timeout=1200)
    assert out.returncode == 0, out.stdout + out.stderr
    run = work / "results" / "pfm"
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == [
        "features.zarr",
        "index",
        "projections",
        "records",
        "report",
        "store",
    ]
    meta = ImageStore.open(run / "store").metadata()
    expected = sorted(p.relative_to(shared_data).as_posix()
                      for p in shared_data.rglob("*") if p.suffix in (".h5", ".ibw", ".gwy", ".sxm"))  # fmt: skip
    expected.remove("sxm/example_FFT.sxm")
    assert sorted(meta["path"]) == expected and len(expected) == 26
    channels = meta.set_index("path")["channel"]
    # the phase channel where a file has one, else its Z, else its height
    assert channels.pop("sxm/example_TOPO.sxm") == "Z_fwd"
    assert channels.pop("ibw/SrTiO3_treated_213nm-substrate.ibw") == "HeightRetrace"
    assert channels.str.contains("Phase").all()
    for log in (work / "logs" / "pfm").glob("*.log"):
        text = log.read_text()
        assert not re.search(r"INFO distributed\.|distributed\.\w+ - INFO", text), log.name
        assert "8787" not in text, log.name
    assert (work / "logs" / "pfm" / "ingest.log").read_text().count("ingest summary") == 1
