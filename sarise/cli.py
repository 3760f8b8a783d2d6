"""The ``sarise`` command: a thin dispatch table from verbs to library functions."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from sarise._version import __version__

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
    _state["debug"] = debug


ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Run config YAML (defaults if omitted).")
]


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
    run(out, config=cfg, splits=splits, preview=preview, workers=workers, overwrite=overwrite,
        show_progress=progress)  # fmt: skip


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
