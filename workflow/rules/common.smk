import os

SPLITS = ["train", "val", "test"]
# envs/*.yaml install sarise from this checkout (pip expands the variable).
os.environ.setdefault("SARISE_ROOT", workflow.basedir)


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    split="|".join(SPLITS),


def check_no_overrides():
    """The sarise commands read the YAML file Snakemake loaded, so `--config key=value`
    overrides cannot reach them: refuse those rather than run with another config."""
    overrides = set(workflow.config_settings.overwrite_config or {})
    if overrides - {"run"}:
        raise WorkflowError(
            f"sarise settings ({', '.join(sorted(overrides))}) cannot be changed with "
            "--config; write them in a YAML file and pass it with --configfile"
        )


def get_config_file():
    """The YAML file the sarise commands read: the last --configfile given."""
    return os.path.relpath(workflow.configfiles[-1])


def get_settings(*sections):
    """The config sections a rule's command reads (defaults filled in by the schema).

    Rules hold them as a param instead of taking the config file as an input, so that
    Snakemake's params trigger reruns exactly the rules whose settings changed. `cluster`
    is never among them: where the workers run does not change any output."""
    return {section: config[section] for section in sections}


def get_ingest_extra_sources():
    """The shared real-data folder, when this machine has one (quoted for the shell)."""
    shared = os.environ.get(
        "SARISE_SHARED_DATA", os.path.join(workflow.basedir, "..", "shared", "data")
    )
    return f"'{os.path.abspath(shared)}'" if os.path.isdir(shared) else ""


def get_final_outputs():
    outputs = [f"results/{RUN}/symmetry/preview.png"]
    outputs += expand("results/{run}/symmetry/{split}.zarr", run=RUN, split=SPLITS)
    outputs += [
        f"results/{RUN}/model/model.safetensors",
        f"results/{RUN}/evaluation/report.json",
        f"results/{RUN}/store",
        f"results/{RUN}/features.zarr",
        f"results/{RUN}/projections/root/node.json",
        f"results/{RUN}/index/index.json",
        f"results/{RUN}/report/report.html",
    ]
    return outputs


check_no_overrides()
RUN = config["run"]
CONFIG_FILE = get_config_file()
