# Stage 5: the root UMAP projection of the archive (sarise project) and the similarity
# index (sarise index). Child nodes of the projection tree are made interactively
# (sarise explore select, or the viewer); each records the command that reproduces it.


rule project:
    input:
        "results/{run}/features.zarr",
    output:
        "results/{run}/projections/root/node.json",
    log:
        "logs/{run}/project.log",
    conda:
        GPU_ENV
    threads: workflow.cores
    params:
        run=lambda wildcards: f"results/{wildcards.run}",
        config=CONFIG_FILE,
        settings=get_settings("project"),
    shell:
        "sarise project {params.run} --config {params.config} > {log} 2>&1"


rule index:
    input:
        "results/{run}/features.zarr",
    output:
        "results/{run}/index/index.json",
    log:
        "logs/{run}/index.log",
    conda:
        GPU_ENV
    params:
        run=lambda wildcards: f"results/{wildcards.run}",
        config=CONFIG_FILE,
        settings=get_settings("search"),
    shell:
        "sarise index {params.run} --config {params.config} > {log} 2>&1"


rule report:
    input:
        root="results/{run}/projections/root/node.json",
        index="results/{run}/index/index.json",
    output:
        html="results/{run}/report/report.html",
        mosaic=report(
            "results/{run}/report/mosaic.png",
            caption="../report/mosaic.rst",
            category="Archive map",
        ),
        groups=report(
            "results/{run}/report/groups.png",
            caption="../report/groups.rst",
            category="Archive map",
        ),
    log:
        "logs/{run}/report.log",
    conda:
        CPU_ENV
    params:
        run=lambda wildcards: f"results/{wildcards.run}",
        out=lambda wildcards, output: os.path.dirname(output.html),
        config=CONFIG_FILE,
        settings=get_settings("project", "search"),
    shell:
        "sarise report {params.run} --out {params.out} --config {params.config} > {log} 2>&1"
