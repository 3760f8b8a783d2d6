# Stage 1: the synthetic wallpaper-group dataset (sarise generate).


rule symmetry_split:
    input:
        config=get_config_file(),
    output:
        directory("results/{run}/symmetry/{split}.zarr"),
    log:
        "logs/{run}/symmetry_{split}.log",
    conda:
        "../../envs/sarise.yaml"
    threads: workflow.cores
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
    shell:
        "sarise generate {params.out} --config {input.config} --split {wildcards.split}"
        " --workers {threads} --no-progress > {log} 2>&1"


rule symmetry_preview:
    input:
        config=get_config_file(),
    output:
        report(
            "results/{run}/symmetry/preview.png",
            caption="../report/symmetry_preview.rst",
            category="Symmetry dataset",
        ),
    log:
        "logs/{run}/symmetry_preview.log",
    conda:
        "../../envs/sarise.yaml"
    shell:
        "sarise generate --config {input.config} --preview {output} > {log} 2>&1"
