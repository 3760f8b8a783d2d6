import os

from snakemake.utils import validate

SPLITS = ["train", "val", "test"]
# envs/*.yaml install sarise from this checkout (pip expands the variable).
os.environ.setdefault("SARISE_ROOT", workflow.basedir)
# Conda environments (--software-deployment-method conda), relative to workflow/rules/:
# CPU_ENV for rules that never use a GPU, GPU_ENV for those that can (config conda_env).
CPU_ENV = "../../envs/sarise-cpu.yaml"


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    split="|".join(SPLITS),


def check_no_overrides():
    """The sarise commands read the YAML file Snakemake loaded, so `--config key=value`
    overrides cannot reach them: refuse those rather than run with another config."""
    overrides = set(workflow.config_settings.config or {})
    if overrides - {"run"}:
        raise WorkflowError(
            f"sarise settings ({', '.join(sorted(overrides))}) cannot be changed with "
            "--config; write them in a YAML file and pass it with --configfile"
        )


def get_config_file():
    """The YAML file the sarise commands read: the last --configfile given, else the
    Snakefile's config/config.yaml."""
    given = workflow.config_settings.configfiles
    return os.path.relpath(given[-1] if given else workflow.configfiles[-1])


def load_run_config():
    """Make `config` the one file the sarise commands read, validated, defaults filled in.

    Snakemake would merge a --configfile over config/config.yaml where both exist; the
    commands read only the file they are given, so the workflow reads only that one too.
    """
    from snakemake.common.configfile import load_configfile

    run = workflow.config_settings.config.get("run")
    check_config(run)
    config.clear()
    config.update(load_configfile(CONFIG_FILE))
    if run is not None:
        config["run"] = run
    validate(config, schema="../schemas/config.schema.yaml")


def check_config(run):
    """Every mistake in the config file at once, one line per key (sarise's own checks,
    which also cover what a JSON schema cannot say, like disjoint splits), before the
    schema validation that reports only the first. Skipped where Snakemake runs outside
    sarise's environment; the schema still applies."""
    try:
        from sarise.config import ConfigError, load_config
    except ImportError:
        return
    try:
        load_config(CONFIG_FILE, **({} if run is None else {"run": run}))
    except ConfigError as exc:
        raise WorkflowError(str(exc)) from None


def get_settings(*sections):
    """The config sections a rule's command reads (defaults filled in by the schema).

    Rules hold them as a param instead of taking the config file as an input, so that
    Snakemake's params trigger reruns exactly the rules whose settings changed. `cluster`
    is never among them: where the workers run does not change any output."""
    return {section: config[section] for section in sections}


def get_launcher(wildcards, resources):
    """What starts a rule's command as several MPI tasks, from its `mpi` resource: nothing
    locally (`mpi` empty), else `{mpi} -n {tasks}`, or, with `tasks_per_node`, srun's
    `--nodes {nodes} --ntasks-per-node {tasks_per_node}`. The counts are explicit because
    the SLURM executor runs the job's shell without SLURM's task variables."""
    if not resources.mpi:
        return ""
    per_node = getattr(resources, "tasks_per_node", None)
    if per_node:
        nodes = getattr(resources, "nodes", None) or 1
        return f"{resources.mpi} --nodes {nodes} --ntasks-per-node {per_node}"
    return f"{resources.mpi} -n {getattr(resources, 'tasks', None) or 1}"


def get_ingest_extra_sources():
    """The shared real-data folder, when this machine has one (quoted for the shell)."""
    shared = os.environ.get(
        "SARISE_SHARED_DATA", os.path.join(workflow.basedir, "..", "shared", "data")
    )
    return f"'{os.path.abspath(shared)}'" if os.path.isdir(shared) else ""


def get_map_outputs():
    """The map of the archive: store, features, root projection, index and report (the
    `map` target; no generated data, no training)."""
    return [
        f"results/{RUN}/store",
        f"results/{RUN}/features.zarr",
        f"results/{RUN}/projections/root/node.json",
        f"results/{RUN}/index/index.json",
        f"results/{RUN}/report/report.html",
    ]


def get_final_outputs():
    """Everything: the map, and for the demo (no `archive.sources`) also the generated
    dataset, a trained model and its evaluation."""
    if config["archive"]["sources"]:
        return get_map_outputs()
    outputs = [f"results/{RUN}/symmetry/preview.png"]
    outputs += expand("results/{run}/symmetry/{split}.zarr", run=RUN, split=SPLITS)
    outputs += [
        f"results/{RUN}/model/model.safetensors",
        f"results/{RUN}/evaluation/report.json",
    ]
    return outputs + get_map_outputs()


check_no_overrides()
CONFIG_FILE = get_config_file()
load_run_config()
RUN = config["run"]
GPU_ENV = f"../../envs/sarise-{config['conda_env']}.yaml"
