# Stage 2: train the symmetry classifier (sarise train), export it, evaluate it.
# On GPU nodes a site profile gives the train job one task per GPU and `mpi: srun`, so
# the same command runs once per task and reads the world from SLURM's environment;
# locally `mpi` is empty and Lightning starts its own processes. A killed job is retried by
# Snakemake (`retries`) and resumes from checkpoints/last.ckpt, which is not an output
# and so survives the failure.


rule train:
    input:
        val="results/{run}/symmetry/val.zarr",
    output:
        model="results/{run}/model/model.ckpt",
        summary="results/{run}/model/train.json",
    log:
        "logs/{run}/train.log",
    retries: 2
    conda:
        GPU_ENV
    resources:
        mpi="",
    params:
        out=lambda wildcards, output: os.path.dirname(output.model),
        launch=get_launcher,
        config=CONFIG_FILE,
        settings=get_settings("symmetry", "train"),
    shell:
        "{params.launch} sarise train {params.out} --config {params.config} --val {input.val}"
        " --no-progress > {log} 2>&1"


rule export_model:
    input:
        "results/{run}/model/model.ckpt",
    output:
        model="results/{run}/model/model.safetensors",
        info="results/{run}/model/model.json",
    log:
        "logs/{run}/export_model.log",
    conda:
        CPU_ENV
    shell:
        "sarise export {input} {output.model} > {log} 2>&1"


rule evaluate:
    input:
        model="results/{run}/model/model.safetensors",
        test="results/{run}/symmetry/test.zarr",
    output:
        json="results/{run}/evaluation/report.json",
        md="results/{run}/evaluation/report.md",
        confusion=report(
            "results/{run}/evaluation/confusion-test.png",
            caption="../report/confusion.rst",
            category="Symmetry classifier",
        ),
    log:
        "logs/{run}/evaluate.log",
    conda:
        GPU_ENV
    params:
        out=lambda wildcards, output: os.path.dirname(output.json),
        config=CONFIG_FILE,
        settings=get_settings("evaluate"),
    shell:
        "sarise evaluate {params.out} --model {input.model} --config {params.config}"
        " --test {input.test} --no-progress > {log} 2>&1"
