"""The ``sarise`` command: a thin dispatch table from verbs to library functions."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from sarise._version import __version__
from sarise.config import MAX_K

app = typer.Typer(
    name="sarise",
    help="Symmetry-Aware Recursive Image Similarity Exploration for microscopy archives.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sarise {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.", case_sensitive=False)
    ] = "INFO",
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise typer.BadParameter(f"unknown log level {log_level!r}", param_hint="--log-level")
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("faiss.loader").setLevel(max(level, logging.WARNING))  # CPU probing
    _state["debug"] = debug


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Run config YAML (defaults if omitted).")
]
ClusterOpt = Annotated[
    str | None,
    typer.Option("--cluster", help="Dask workers: local, cuda, slurm or mpi (cluster.kind)."),
]
WorkersOpt = Annotated[int | None, typer.Option(min=1, help="Dask workers (cluster.workers).")]


def _record(run: Path, stage: str, cfg, started: float, outputs, **extra) -> None:
    """Leave the run record of a stage in its run directory (``sarise info``)."""
    from sarise.record import write_record

    write_record(run, stage, cfg, outputs=outputs, started=started, **extra)


def _model_sha256(features: Path) -> str | None:
    """sha256 of the model that made a feature store (the one the stages after it used)."""
    import zarr

    try:
        return zarr.open_group(features, mode="r").attrs.get("model_sha256")
    except (FileNotFoundError, ValueError, OSError):
        return None


def _cluster_overrides(cluster: str | None, workers: int | None) -> dict:
    out = {}
    if cluster is not None:
        out["cluster.kind"] = cluster
    if workers is not None:
        out["cluster.workers"] = workers
    return out


@app.command()
def generate(
    out: Annotated[
        Path | None, typer.Argument(help="Folder for <split>.zarr; omit to write only --preview.")
    ] = None,
    config: ConfigOpt = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", "-s", help="Split to write (repeatable).")
    ] = None,
    preview: Annotated[Path | None, typer.Option(help="Write a montage PNG here.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Override symmetry.seed.")] = None,
    size: Annotated[int | None, typer.Option(min=16, help="Override symmetry.size.")] = None,
    per_group: Annotated[
        int | None, typer.Option(min=0, help="Override symmetry.per_group for the chosen splits.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace stores made with another config.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate labelled wallpaper-group images (exact symmetry, all 17 groups)."""
    from sarise.config import SPLITS, load_config
    from sarise.symmetry import generate as run

    started = time.time()
    splits = tuple(split or SPLITS)
    overrides = {}
    if seed is not None:
        overrides["symmetry.seed"] = seed
    if size is not None:
        overrides["symmetry.size"] = size
    cfg = load_config(config, **overrides)
    if per_group is not None:
        counts = dict(cfg.symmetry.per_group) | dict.fromkeys(splits, per_group)
        cfg = load_config(cfg.model_dump(mode="json"), **{"symmetry.per_group": counts})
    for s in splits:
        if s not in SPLITS:
            raise typer.BadParameter(
                f"must be one of {', '.join(SPLITS)}, got {s!r}", param_hint="--split"
            )
    written = run(out, config=cfg, splits=splits, preview=preview, workers=workers,
                  overwrite=overwrite, show_progress=progress)  # fmt: skip
    for name, path in written.items():  # <run>/symmetry/<split>.zarr, <run>/symmetry/preview.png
        _record(Path(path).parent.parent, f"generate-{name}", cfg, started, [path])


@app.command("config")
def show_config(
    path: Annotated[
        Path | None, typer.Argument(help="Run config YAML (defaults if omitted).")
    ] = None,
    schema: Annotated[bool, typer.Option(help="Print the JSON schema instead.")] = False,
) -> None:
    """Validate a run config and print it with every default filled in (YAML)."""
    import yaml

    from sarise.config import config_schema, load_config

    if schema:
        typer.echo(
            yaml.safe_dump(json.loads(json.dumps(config_schema())), sort_keys=False), nl=False
        )
        return
    cfg = load_config(path)
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), nl=False)


@app.command("train")
def train_cmd(
    out: Annotated[Path, typer.Argument(help="Run folder: checkpoints, metrics.csv, model.ckpt.")],
    config: ConfigOpt = None,
    val: Annotated[
        Path | None, typer.Option(help="val.zarr from `sarise generate` (validation per epoch).")
    ] = None,
    accelerator: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    devices: Annotated[
        int | None,
        typer.Option(min=1, help="Local processes (ignored under srun or mpirun: one per task)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Override train.steps.")] = None,
    restart: Annotated[bool, typer.Option(help="Ignore checkpoints in OUT; start again.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on a terminal.")] = True,
) -> None:
    """Train the symmetry classifier on wallpaper images generated on the fly (resumes)."""
    from sarise.openmp import wait_passively

    wait_passively()  # before torch is imported: the loaders get the cores it would spin on
    from sarise.config import load_config
    from sarise.train import train

    overrides = {"train.steps": steps} if steps else {}
    if accelerator not in ("auto", "cpu", "gpu"):
        raise typer.BadParameter(f"must be auto, cpu or gpu, got {accelerator!r}",
                                 param_hint="--accelerator")  # fmt: skip
    from sarise._files import file_sha256
    from sarise.train import launch_rank

    started = time.time()
    cfg = load_config(config, **overrides)
    final = train(cfg, out, val=val, accelerator=accelerator, devices=devices, restart=restart,
                  show_progress=None if progress else False)  # fmt: skip
    if launch_rank() == 0:
        _record(out.parent, "train", cfg, started, [final], model_sha256=file_sha256(final))


@app.command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A .ckpt from `sarise train`.")],
    out: Annotated[
        Path, typer.Argument(help="Weights file to write (.safetensors; .json beside).")
    ],
    dtype: Annotated[str, typer.Option(help="float32, float16 or bfloat16.")] = "float32",
) -> None:
    """Export inference weights as safetensors + JSON (what extraction loads; no pickle)."""
    from sarise.models import export_model

    path = export_model(checkpoint, out, dtype=dtype)
    typer.echo(f"wrote {path} and {path.with_suffix('.json')}")


@app.command("evaluate")
def evaluate_cmd(
    out: Annotated[Path, typer.Argument(help="Folder for report.{json,md} and confusion PNGs.")],
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="A .safetensors model or .ckpt (default: shipped)."),
    ] = None,
    config: ConfigOpt = None,
    test: Annotated[Path | None, typer.Option(help="test.zarr from `sarise generate`.")] = None,
    folder: Annotated[
        Path | None, typer.Option(help="Labelled images laid out as <group>/<image file>.")
    ] = None,
    fit: Annotated[
        str,
        typer.Option(
            help="How folder images become inputs: auto (the scale from each image's lattice), "
            "crop (the whole image resampled) or tile (native-resolution tiles)."
        ),
    ] = "auto",
    tile: Annotated[bool, typer.Option(help="The same as --fit tile.")] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only these of test, ood, noise, invariance, simulated (repeatable)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Evaluate a classifier: test split, unseen motif sources, noise, invariance, your images."""
    from sarise.config import load_config
    from sarise.evaluate import evaluate

    started = time.time()
    cfg = load_config(config)
    from sarise.evaluate import FOLDER_MODES

    if fit not in FOLDER_MODES:
        raise typer.BadParameter(
            f"one of {', '.join(FOLDER_MODES)}, not {fit!r}", param_hint="--fit"
        )
    report = evaluate(model, out, test=test, folder=folder, folder_mode="tile" if tile else fit,
                      config=cfg.evaluate, ingest=cfg.ingest,
                      sets=only or ("test", "ood", "noise", "invariance", "simulated"),
                      show_progress=progress)  # fmt: skip
    _record(out.parent, "evaluate", cfg, started, [out], model_sha256=report.get("sha256"))
    for name, s in report["sets"].items():
        both = (f"  measured {s['measured']['accuracy']:.4f}  combined "
                f"{s['combined']['accuracy']:.4f}  family {s['combined']['family_accuracy']:.4f}"
                if "combined" in s else "")  # fmt: skip
        typer.echo(f"{name:>14}  {s['accuracy']:.4f}  family {s['family_accuracy']:.4f}{both}  "
                   f"(n={s['n']})")  # fmt: skip
    if "invariance" in report:
        typer.echo(f"{'invariance':>14}  {report['invariance']['mean_cosine']:.4f}  (mean cosine)")
    errors = report["sets"].get("folder", {}).get("errors")
    if errors:
        typer.echo(f"sarise: error: {len(errors)} file(s) could not be evaluated", err=True)
        raise typer.Exit(1)


@app.command("demo-archive")
def demo_archive_cmd(
    out: Annotated[Path, typer.Argument(help="Folder for the files and sidecar.csv.")],
    n: Annotated[int, typer.Option(min=1, help="Number of files.")] = 48,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    size: Annotated[int, typer.Option(min=16, help="Image edge in pixels.")] = 256,
) -> None:
    """Write the demo's microscopy-like archive (HDF5, OME-TIFF, PNG + a sidecar)."""
    from sarise.demo_archive import write_demo_archive

    typer.echo(f"wrote {write_demo_archive(out, n, seed=seed, size=size)}")


@app.command("ingest")
def ingest_cmd(
    out: Annotated[Path, typer.Argument(help="Image store folder (created or appended to).")],
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="Files, folders or glob patterns (default: archive.sources)."),
    ] = None,
    config: ConfigOpt = None,
    sidecar: Annotated[
        Path | None,
        typer.Option(
            help="CSV or YAML of extra metadata, keyed by path or glob (default: archive.sidecar)."
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(help="Store paths relative to this folder (default: archive.root)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Glob of files to leave out (repeatable; default: archive.exclude)."),
    ] = None,
    file_wins: Annotated[
        bool | None,
        typer.Option(
            "--file-wins/--sidecar-wins",
            help="Where a sidecar and a file's header "
            "disagree, keep the file's value (ingest.precedence: file).",
        ),
    ] = None,
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    max_failed_fraction: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="Override ingest.max_failed_fraction.")
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Retire the images of files that are gone from these sources.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Ingest instrument files (.ibw .h5 .sxm .gwy .tif .png ...) into an image store.

    A rerun stores only new content: a changed file's new content replaces its old images
    (retired, never deleted), and --prune retires the images of files that are gone."""
    from sarise.cluster import get_client
    from sarise.config import load_config
    from sarise.ingest import ingest

    started = time.time()
    overrides = _cluster_overrides(cluster, workers)
    if max_failed_fraction is not None:
        overrides["ingest.max_failed_fraction"] = max_failed_fraction
    if file_wins is not None:
        overrides["ingest.precedence"] = "file" if file_wins else "sidecar"
    cfg = load_config(config, **overrides)
    archive = cfg.archive
    sources = list(sources or archive.sources)
    if not sources:
        raise typer.BadParameter("give files, folders or globs, or set archive.sources in the "
                                 "config", param_hint="sources")  # fmt: skip
    sidecar = sidecar or (Path(archive.sidecar) if archive.sidecar else None)
    root = root or (Path(archive.root) if archive.root else None)
    exclude = list(exclude or archive.exclude)
    with get_client(cfg.cluster) as client:
        ingest(sources, out, config=cfg.ingest, sidecar=sidecar, root=root, client=client,
               show_progress=progress, prune=prune, exclude=exclude)  # fmt: skip
    _record(out.parent, "ingest", cfg, started, [out], sources=sources,
            sidecar=str(sidecar) if sidecar else None, exclude=exclude)  # fmt: skip


@app.command("extract")
def extract_cmd(
    store: Annotated[Path, typer.Argument(help="Image store folder (`sarise ingest`).")],
    out: Annotated[Path, typer.Argument(help="Feature store to write (features.zarr).")],
    config: ConfigOpt = None,
    model: Annotated[
        Path | None, typer.Option(help="Exported .safetensors model (default: the shipped one).")
    ] = None,
    invariant: Annotated[
        str | None, typer.Option(help="none, or d4: average over 90-degree rotations and flips.")
    ] = None,
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Symmetry features, logits and group probabilities of every stored image (resumable)."""
    from sarise.cluster import get_client
    from sarise.config import load_config
    from sarise.features import extract

    overrides = _cluster_overrides(cluster, workers)
    if model is not None:
        overrides["extract.model"] = str(model)
    if invariant is not None:
        overrides["extract.invariant"] = invariant
    started = time.time()
    cfg = load_config(config, **overrides)
    with get_client(cfg.cluster) as client:
        done = extract(store, out, config=cfg.extract, client=client, show_progress=progress)
    _record(out.parent, "extract", cfg, started, [out], store=str(store),
            model_sha256=_model_sha256(out))  # fmt: skip
    typer.echo(f"{out}: {done['images']} images; {done['chunks']} chunks computed, "
               f"{done['skipped']} already done")  # fmt: skip


RunArg = Annotated[Path, typer.Argument(help="Run directory (store/, features.zarr inside).")]


@app.command("project")
def project_cmd(
    run: RunArg,
    config: ConfigOpt = None,
    backend: Annotated[str | None, typer.Option(help="auto, cpu or gpu (project.backend).")] = None,
    preset: Annotated[str | None, typer.Option(help="default or paper (project.preset).")] = None,
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """UMAP of the whole archive: the root of the projection tree."""
    from sarise.cluster import get_client
    from sarise.config import load_config
    from sarise.project import ProjectionTree

    overrides = _cluster_overrides(cluster, workers)
    if backend is not None:
        overrides["project.backend"] = backend
    if preset is not None:
        overrides["project.preset"] = preset
    started = time.time()
    cfg = load_config(config, **overrides)
    tree = ProjectionTree(run, cfg.project)
    if len(tree) > cfg.project.fit_max:
        with get_client(cfg.cluster) as client:
            node = tree.project_root(client=client)
    else:
        node = tree.project_root()
    _echo_node(tree, node)
    _record(run, "project", cfg, started, [tree.root / node],
            model_sha256=_model_sha256(run / "features.zarr"))  # fmt: skip


def _echo_node(tree, node: str) -> None:
    from sarise.project import breadcrumb

    info = tree.info(node)
    q = info["quality"]
    t = "n/a" if q["trustworthiness"] is None else f"{q['trustworthiness']:.4f}"
    typer.echo(f"{node}: {info['n']} images, {info['how']['method']} on {info['backend']} in "
               f"{info['seconds']} s, trustworthiness {t}; path {' > '.join(breadcrumb(tree, node))}")  # fmt: skip


explore_app = typer.Typer(help="The projection tree: list, show, re-project a selection, remove.",
                          no_args_is_help=True)  # fmt: skip
app.add_typer(explore_app, name="explore")


@explore_app.command("list")
def explore_list(run: RunArg, config: ConfigOpt = None) -> None:
    """Every node: id, parent, size, how it was made, trustworthiness."""
    from sarise.config import load_config
    from sarise.project import ProjectionTree

    tree = ProjectionTree(run, load_config(config).project)
    for node in tree.ids():
        info = tree.info(node)
        sel = json.dumps(info["selection"])
        typer.echo(f"{node:<12} parent={info['parent'] or '-':<12} n={info['n']:<8} "
                   f"{info['how']['method']:<8} {sel}")  # fmt: skip


@explore_app.command("show")
def explore_show(run: RunArg, node: str, config: ConfigOpt = None) -> None:
    """A node's record (node.json) and its path from the root."""
    from sarise.config import load_config
    from sarise.project import ProjectionTree

    tree = ProjectionTree(run, load_config(config).project)
    typer.echo(json.dumps(tree.info(node), indent=2))
    _echo_node(tree, node)


@explore_app.command("select")
def explore_select(
    run: RunArg,
    parent: Annotated[str, typer.Argument(help="The node to select from (e.g. root).")],
    config: ConfigOpt = None,
    ids: Annotated[str | None, typer.Option(help="Comma-separated image ids.")] = None,
    box: Annotated[
        str | None, typer.Option(help="x0,y0,x1,y1 in the parent's coordinates.")
    ] = None,
    polygon: Annotated[
        str | None, typer.Option(help="x,y;x,y;x,y... in the parent's coordinates.")
    ] = None,
    query: Annotated[str | None, typer.Option(help="A metadata query (sarise.query).")] = None,
    cluster_label: Annotated[
        str | None, typer.Option("--cluster", help="Comma-separated cluster labels.")
    ] = None,
    refit: Annotated[
        bool, typer.Option(help="Refit UMAP from scratch instead of refining.")
    ] = False,
) -> None:
    """Re-project a selection of a node's images as a child node (reopened if it exists)."""
    from sarise.config import load_config
    from sarise.errors import SariseError
    from sarise.project import ProjectionTree

    given = {"ids": ids, "box": box, "polygon": polygon, "query": query, "cluster": cluster_label}
    given = {k: v for k, v in given.items() if v is not None}
    if len(given) != 1:
        raise SariseError("give exactly one of --ids, --box, --polygon, --query, --cluster")
    ((kind, text),) = given.items()
    try:
        value = {"ids": lambda t: [int(v) for v in t.split(",")],
                 "box": lambda t: [float(v) for v in t.split(",")],
                 "polygon": lambda t: [[float(c) for c in p.split(",")] for p in t.split(";")],
                 "query": str, "cluster": lambda t: [int(v) for v in t.split(",")]}[kind](text)  # fmt: skip
    except ValueError as exc:
        raise SariseError(f"--{kind}: {exc}") from None
    if kind == "box" and len(value) != 4:
        raise SariseError("--box needs x0,y0,x1,y1")
    tree = ProjectionTree(run, load_config(config).project)
    node = tree.child(parent, {kind: value}, refit=refit)
    _echo_node(tree, node)


@explore_app.command("remove")
def explore_remove(run: RunArg, node: str, config: ConfigOpt = None) -> None:
    """Remove a node and everything below it."""
    from sarise.config import load_config
    from sarise.project import ProjectionTree

    gone = ProjectionTree(run, load_config(config).project).remove(node)
    typer.echo(f"removed {', '.join(gone)}")


@app.command("index")
def index_cmd(run: RunArg, config: ConfigOpt = None) -> None:
    """Build the similarity index (<run>/index) over the run's features."""
    from sarise.config import load_config
    from sarise.search import build_index

    started = time.time()
    cfg = load_config(config)
    info = build_index(run, config=cfg.search)
    typer.echo(json.dumps(info))
    sha = _model_sha256(run / "features.zarr")
    _record(run, "index", cfg, started, [run / "index"], model_sha256=sha)


@app.command("search")
def search_cmd(
    run: RunArg,
    image_id: Annotated[
        list[int] | None, typer.Option("--id", help="Image id (repeatable).")
    ] = None,
    file: Annotated[
        list[Path] | None, typer.Option("--file", help="A new file (repeatable).")
    ] = None,
    k: Annotated[int | None, typer.Option(min=1, max=MAX_K, help="Results (search.k).")] = None,
    where: Annotated[
        str | None, typer.Option(help="Only images this metadata query selects.")
    ] = None,
    columns: Annotated[str, typer.Option(help="Metadata columns to print.")] = "path,material,date",
    out: Annotated[Path | None, typer.Option(help="Write all columns to .csv or .parquet.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Images most like the given ids or files (several make one query)."""
    from sarise.config import load_config
    from sarise.search import search

    cfg = load_config(config)
    found = search(run, ids=image_id, files=file, k=k or cfg.search.k, where=where)
    if out is not None:
        if out.suffix == ".parquet":
            found.to_parquet(out, index=False)
        else:
            found.to_csv(out, index=False)
    cols = ["rank", "image_id", "distance", *[c for c in columns.split(",") if c in found]]
    typer.echo(found[cols].to_string(index=False))


@app.command("view")
def view_cmd(
    run: RunArg,
    config: ConfigOpt = None,
    host: Annotated[
        str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 5006,
    show: Annotated[bool, typer.Option(help="Open a browser tab.")] = False,
    datashade_min: Annotated[
        int | None, typer.Option(min=0, help="Draw nodes above this size with Datashader (50000).")
    ] = None,
) -> None:
    """Explore a run in the browser: the map, filters, re-projection, similar images."""
    from sarise.config import load_config
    from sarise.viewer import make_server

    server = make_server(run, host=host, port=port, config=load_config(config),
                         datashade_min=datashade_min)  # fmt: skip
    server.start()
    url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{server.port}/"
    typer.echo(f"sarise view: serving {run} at {url} (Ctrl-C to stop)")
    sys.stdout.flush()
    if show:
        server.io_loop.add_callback(server.show, "/")
    server.io_loop.start()


@app.command("report")
def report_cmd(
    run: RunArg,
    out: Annotated[
        Path | None, typer.Option(help="Folder for report.html (default RUN/report).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """A self-contained HTML report: mosaic, colourings, classifier summary, projection tree."""
    from sarise.config import load_config
    from sarise.viewer.report import write_report

    started = time.time()
    cfg = load_config(config)
    path = write_report(run, out, config=cfg)
    typer.echo(f"wrote {path}")
    sha = _model_sha256(run / "features.zarr")
    _record(run, "report", cfg, started, [path.parent], model_sha256=sha)


@app.command("info")
def info_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory (results/<run>).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
    digest: Annotated[
        bool, typer.Option(help="Print a sha256 of every output instead (compare two runs).")
    ] = False,
) -> None:
    """What made a run: its config, seeds, model sha256, package versions, stage by stage."""
    from sarise.record import format_info, run_digest, run_info

    if digest:
        digests = run_digest(run)
        if as_json:
            typer.echo(json.dumps(digests, indent=2))
        else:
            typer.echo("\n".join(f"{v}  {k}" for k, v in digests.items()))
        return
    info = run_info(run)
    typer.echo(json.dumps(info, indent=2) if as_json else format_info(info))


def main() -> None:
    """Console entry point: errors are one clear line unless ``--debug``."""
    from sarise.config import ConfigError
    from sarise.errors import SariseError

    try:
        app()  # usage errors: click prints them with the usage line and exits 2
    except (SariseError, ConfigError, ValueError, OSError, RuntimeError) as exc:
        if _state["debug"]:
            raise
        print(f"sarise: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
