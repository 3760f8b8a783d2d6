# Stage 1: the synthetic wallpaper-group dataset (sarise generate).


rule symmetry_split:
    output:
        directory("results/{run}/symmetry/{split}.zarr"),
    log:
        "logs/{run}/symmetry_{split}.log",
    conda:
        CPU_ENV
    threads: workflow.cores
    params:
        out=lambda wildcards, output: os.path.dirname(output[0]),
        config=CONFIG_FILE,
        settings=get_settings("symmetry"),
    shell:
        "sarise generate {params.out} --config {params.config} --split {wildcards.split}"
        " --workers {threads} --no-progress > {log} 2>&1"


rule symmetry_preview:
    output:
        report(
            "results/{run}/symmetry/preview.png",
            caption="../report/symmetry_preview.rst",
            category="Symmetry dataset",
        ),
    log:
        "logs/{run}/symmetry_preview.log",
    conda:
        CPU_ENV
    params:
        config=CONFIG_FILE,
        settings=get_settings("symmetry"),
    shell:
        "sarise generate --config {params.config} --preview {output} > {log} 2>&1"
