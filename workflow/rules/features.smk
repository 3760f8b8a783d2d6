# Stage 4: symmetry features of every stored image (sarise extract) into features.zarr.
# Locally the workers are processes here (`cluster: local`). profiles/slurm sets the
# `cluster` resource per site: `cuda` on a GPU node (one Dask-CUDA worker per GPU), or
# `mpi` with `mpi: "srun --mpi=pmix"` to spread dask-mpi ranks over several nodes.


rule extract:
    input:
        config=get_config_file(),
        store="results/{run}/store",
    output:
        directory("results/{run}/features.zarr"),
    log:
        "logs/{run}/extract.log",
    conda:
        "../../envs/sarise.yaml"
    threads: workflow.cores
    resources:
        mpi="",
        tasks=1,
        cluster="local",
    params:
        workers=lambda wildcards, threads, resources: (
            f"--workers {threads}" if resources.cluster == "local" else ""
        ),
    shell:
        "{resources.mpi} sarise extract {input.store} {output} --config {input.config}"
        " --cluster {resources.cluster} {params.workers} --no-progress > {log} 2>&1"
