# Stage 4: symmetry features of every stored image (sarise extract) into features.zarr.
# Locally the workers are processes here (`dask: local`). profiles/slurm sets the
# `dask` resource (the cluster factory's kind) per site: `cuda` on a GPU node (one Dask-CUDA worker per GPU), or
# `mpi` with `mpi: "srun --mpi=pmix"` to spread dask-mpi ranks over several nodes.


rule extract:
    input:
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
        dask="local",
    params:
        workers=lambda wildcards, threads, resources: (
            f"--workers {threads}" if resources.dask == "local" else ""
        ),
        config=CONFIG_FILE,
        settings=get_settings("extract"),
    shell:
        "{resources.mpi} sarise extract {input.store} {output} --config {params.config}"
        " --cluster {resources.dask} {params.workers} --no-progress > {log} 2>&1"
