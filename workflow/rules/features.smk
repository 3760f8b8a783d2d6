# Stage 4: symmetry features of every stored image (sarise extract) into features.zarr.
# The `dask` resource is the cluster factory's kind: processes here (`local`), one
# Dask-CUDA worker per GPU of a node (`cuda`), or dask-mpi ranks (`mpi`) started by the
# `mpi` launcher (`mpirun` locally, `srun --mpi=pmix` on SLURM) with tasks = 2 + workers.


rule extract:
    input:
        store="results/{run}/store",
    output:
        directory("results/{run}/features.zarr"),
    log:
        "logs/{run}/extract.log",
    conda:
        GPU_ENV
    threads: workflow.cores
    resources:
        mpi="",
        dask="local",
    params:
        workers=lambda wildcards, threads, resources: (
            f"--workers {threads}" if resources.dask == "local" else ""
        ),
        launch=get_launcher,
        config=CONFIG_FILE,
        settings=get_settings("extract"),
    shell:
        "{params.launch} sarise extract {input.store} {output} --config {params.config}"
        " --cluster {resources.dask} {params.workers} --no-progress > {log} 2>&1"
