# sarise: the whole DAG. Stages live in workflow/rules/, one file each.
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


# common.smk replaces this by the last --configfile given, validated against the schema
include: "workflow/rules/common.smk"
include: "workflow/rules/symmetry.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/project.smk"


rule all:
    default_target: True
    input:
        get_final_outputs(),


rule map:
    input:
        get_map_outputs(),
