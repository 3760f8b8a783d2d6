# Stage 5: the root UMAP projection of the archive (sarise project) and the similarity
# index (sarise index). Child nodes of the projection tree are made interactively
# (sarise explore select, or the viewer); each records the command that reproduces it.


rule project:
    input:
        config=get_config_file(),
        features="results/{run}/features.zarr",
    output:
        "results/{run}/projections/root/node.json",
    log:
        "logs/{run}/project.log",
    conda:
        "../../envs/sarise.yaml"
    threads: workflow.cores
    params:
        run=lambda wildcards: f"results/{wildcards.run}",
    shell:
        "sarise project {params.run} --config {input.config} > {log} 2>&1"


rule index:
    input:
        config=get_config_file(),
        features="results/{run}/features.zarr",
    output:
        "results/{run}/index/index.json",
    log:
        "logs/{run}/index.log",
    conda:
        "../../envs/sarise.yaml"
    params:
        run=lambda wildcards: f"results/{wildcards.run}",
    shell:
        "sarise index {params.run} --config {input.config} > {log} 2>&1"
