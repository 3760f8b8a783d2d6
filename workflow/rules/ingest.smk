# Stage 3: instrument files into the image store (sarise ingest). With `archive.sources`
# set, the run ingests exactly those files (the same command a user types: sources,
# sidecar, root and exclusions come from the config's `archive` section). Without it, the
# demo ingests an archive it writes itself, plus ../shared/data (or $SARISE_SHARED_DATA)
# when present.


if config["archive"]["sources"]:

    rule ingest:
        output:
            directory("results/{run}/store"),
        log:
            "logs/{run}/ingest.log",
        conda:
            CPU_ENV
        threads: workflow.cores
        params:
            config=CONFIG_FILE,
            settings=get_settings("ingest", "archive"),
        shell:
            "sarise ingest {output} --config {params.config}"
            " --workers {threads} --no-progress > {log} 2>&1"

else:

    rule demo_archive:
        output:
            directory("results/{run}/archive"),
        log:
            "logs/{run}/demo_archive.log",
        conda:
            CPU_ENV
        shell:
            "sarise demo-archive {output} > {log} 2>&1"

    rule ingest:
        input:
            archive="results/{run}/archive",
        output:
            directory("results/{run}/store"),
        log:
            "logs/{run}/ingest.log",
        conda:
            CPU_ENV
        threads: workflow.cores
        params:
            extra=get_ingest_extra_sources(),
            config=CONFIG_FILE,
            settings=get_settings("ingest"),
        shell:
            "sarise ingest {output} {input.archive} {params.extra} --config {params.config}"
            " --sidecar {input.archive}/sidecar.csv --root {input.archive}"
            " --workers {threads} --no-progress > {log} 2>&1"
