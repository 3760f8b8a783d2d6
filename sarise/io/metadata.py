"""One metadata row per file, and the user's sidecar joined to it.

:func:`metadata_row` flattens a :class:`~sarise.io.Scan` into the normalised columns of
the image store's ``metadata.parquet`` (every raw key kept as one JSON column).
:func:`read_sidecar` reads a user's CSV or YAML table (grower, substrate, deposition,
project, outcome, ...) keyed by ``path`` (a relative path or a glob), and
:func:`join_sidecar` adds its columns to the rows whose path matches: an exact path wins
over a glob, and among globs the first listed wins.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from sarise._files import file_sha256
from sarise.errors import SariseError
from sarise.io._base import Scan

__all__ = ["COLUMNS", "file_sha256", "join_sidecar", "metadata_row", "read_sidecar"]

#: Normalised columns, in order (sidecar columns follow them).
COLUMNS = (
    "path", "sha256", "size_bytes", "format", "instrument", "channels", "units",
    "scan_size_x_m", "scan_size_y_m", "pixel_size_x_m", "pixel_size_y_m", "pixels_x",
    "pixels_y", "date", "material", "sample", "imaging_mode", "drive_frequency_hz", "raw",
)  # fmt: skip


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def store_path(path: str | Path, root: str | Path | None) -> str:
    """How the store names a file: relative to ``root`` when inside it (as sidecars name
    files), else the path as given. A name that is not valid UTF-8 (bytes from another
    encoding) keeps its undecodable bytes escaped as ``\\xNN``: Parquet holds UTF-8 only.

    >>> store_path(os.fsdecode(b"scans/caf\\xe9.png"), None)
    'scans/caf\\\\xe9.png'
    """
    path = Path(path)
    if root is not None and path.is_relative_to(root):
        name = path.relative_to(root).as_posix()
    else:
        name = path.as_posix()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = os.fsencode(name).decode("utf-8", errors="backslashreplace")
    return name


def metadata_row(scan: Scan, *, root: str | Path | None = None, sha256: str | None = None):
    """The normalised metadata of a scan as a flat dict (:data:`COLUMNS`).

    ``path`` is relative to ``root`` when given (how sidecars name files); channel names
    and units are ``;``-joined strings.
    """
    path = Path(scan.path)
    meta = scan.metadata
    ny, nx = scan.channels[0].data.shape
    size = meta.get("scan_size_m") or [None, None]
    return {
        "path": store_path(path, root),
        "sha256": sha256 or file_sha256(path),
        "size_bytes": path.stat().st_size,
        "format": scan.format,
        "instrument": meta.get("instrument"),
        "channels": ";".join(c.name for c in scan.channels),
        "units": ";".join(c.unit for c in scan.channels),
        "scan_size_x_m": size[0],
        "scan_size_y_m": size[1],
        "pixel_size_x_m": size[0] / nx if size[0] else None,
        "pixel_size_y_m": size[1] / ny if size[1] else None,
        "pixels_x": nx,
        "pixels_y": ny,
        "date": meta.get("date"),
        "material": meta.get("material"),
        "sample": meta.get("sample"),
        "imaging_mode": meta.get("imaging_mode"),
        "drive_frequency_hz": meta.get("drive_frequency_hz"),
        "raw": json.dumps(_json_safe(scan.raw), sort_keys=True, ensure_ascii=False),
    }


#: The largest sidecar read (a table of metadata, never data): 64 MiB.
MAX_SIDECAR_BYTES = 64 * 2**20


def _yaml_rows(path: Path) -> list[dict]:
    """A YAML list of flat mappings; anchors and aliases are refused (a few hundred bytes of
    nested aliases expand to gigabytes), as are nested values."""
    import yaml

    text = path.read_text()
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise SariseError(f"sidecar {path}: YAML anchors and aliases (&, *) are not "
                              f"allowed (line {event.start_mark.line + 1})")  # fmt: skip
    rows = yaml.safe_load(text)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SariseError(f"sidecar {path}: expected a list of mappings")
    for i, r in enumerate(rows):
        nested = [k for k, v in r.items() if isinstance(v, dict | list)]
        if nested:
            raise SariseError(f"sidecar {path}: entry {i} has nested values in {nested}; "
                              "give one value per column")  # fmt: skip
    return rows


def read_sidecar(path: str | Path) -> pd.DataFrame:
    """A sidecar table (``.csv``, ``.yaml``/``.yml`` list of mappings) with a ``path`` column.

    Raises
    ------
    SariseError
        Unreadable, not a table, no ``path`` column, or a column clashing with
        :data:`COLUMNS` (the file's own metadata is not overwritten silently).
    """
    import yaml

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            raise SariseError(f"sidecar {path}: {size} bytes, more than the "
                              f"{MAX_SIDECAR_BYTES} a sidecar may hold")  # fmt: skip
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif path.suffix.lower() in (".yaml", ".yml"):
            table = pd.DataFrame(_yaml_rows(path)).astype(str).replace("None", "")
        else:
            raise SariseError(f"sidecar {path}: use .csv, .yaml or .yml")
    except (OSError, ValueError, pd.errors.ParserError, yaml.YAMLError) as exc:
        detail = str(exc).replace("\n", " ")
        raise SariseError(f"cannot read sidecar {path}: {detail}") from None
    if "path" not in table.columns:
        raise SariseError(f"sidecar {path} has no 'path' column (relative path or glob)")
    clash = sorted(set(table.columns) & (set(COLUMNS) - {"path", "material", "sample", "date"}))
    if clash:
        raise SariseError(f"sidecar {path}: columns {clash} are the files' own metadata")
    return table


def join_sidecar(rows: pd.DataFrame, sidecar: pd.DataFrame, paths=None) -> pd.DataFrame:
    """Add the sidecar's columns to ``rows`` by path: exact paths first, then globs.

    Every key is first taken as an exact path (``scan[1].ibw`` names that file); only a
    key that is no file's exact path and holds ``*``, ``?`` or ``[`` is a glob
    (``fnmatch``: ``2019/*.ibw``, ``run_[0-9].sxm``), the first matching glob in sidecar
    order winning (``paths``, all the files of a run when ``rows`` is one batch of them,
    decides which keys are exact paths). ``material``, ``sample`` and ``date`` in the sidecar fill those columns
    where the file itself said nothing; other sidecar columns are added as they are.
    """
    out = rows.copy()
    extra = [c for c in sidecar.columns if c != "path"]
    records = sidecar.to_dict("records")
    exact = {r["path"]: r for r in records}
    names = set(out["path"]) | set(paths or ())  # ``paths``: every file of the run
    globs = [r for r in records if _is_glob(r["path"]) and r["path"] not in names]
    matched = []
    for p in out["path"]:
        row = exact.get(p) or next((g for g in globs if fnmatch.fnmatchcase(p, g["path"])), None)
        matched.append(row or {})
    for col in extra:
        values = [m.get(col) or None for m in matched]
        if col in out.columns:  # the file's own value wins
            values = [v if _missing(o) else o for o, v in zip(out[col], values, strict=True)]
        out[col] = pd.Series(values, index=out.index, dtype=object)
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")
