import os
from pathlib import Path

SPLITS = ["train", "val", "test"]
RUN = config["run"]
# envs/*.yaml install sarise from this checkout (pip expands the variable).
os.environ.setdefault("SARISE_ROOT", workflow.basedir)


wildcard_constraints:
    run=r"[A-Za-z0-9_.-]+",
    split="|".join(SPLITS),


def get_config_file():
    """The YAML file the sarise commands read: the last --configfile given.

    The commands read the same file Snakemake validated, so `--config key=value`
    overrides of sarise settings cannot reach them: refuse those rather than run
    with a config that differs from what was asked.
    """
    overrides = set(workflow.config_settings.overwrite_config or {})
    if overrides & {"symmetry"}:
        raise WorkflowError(
            "sarise settings cannot be changed with --config; write them in a YAML file "
            "and pass it with --configfile"
        )
    return os.path.relpath(workflow.configfiles[-1])


def get_final_outputs():
    outputs = [f"results/{RUN}/symmetry/preview.png"]
    outputs += expand("results/{run}/symmetry/{split}.zarr", run=RUN, split=SPLITS)
    return outputs
