# sarise: the whole DAG. Stages live in workflow/rules/, one file each.
from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


validate(config, schema="workflow/schemas/config.schema.yaml")


include: "workflow/rules/symmetry.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/project.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),
