"""One metadata row per file, and the user's sidecar joined to it.

:func:`metadata_row` flattens a :class:`~sarise.io.Scan` into the normalised columns of
the image store's ``metadata.parquet`` (every raw key kept as one JSON column), written
with one fixed schema (:data:`SCHEMA`) so that every Parquet reader takes the folder as
one table. :func:`read_sidecar` reads a user's CSV or YAML table (grower, substrate,
deposition, project, outcome, ...) keyed by ``path`` (a relative path or a glob), and
:func:`match_sidecar` matches it to the stored paths (an exact path wins over a glob, and
among globs the first listed wins) and :func:`apply_sidecar` joins the matched values. The store keeps the matched values in a table of
their own (``sidecar.parquet``), so a new sidecar updates a store without reading any
data again; its :data:`DESCRIPTIVE` columns replace the file's own values unless the
file is told to win.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sarise._files import file_sha256
from sarise.errors import SariseError
from sarise.io._base import Scan

__all__ = [
    "COLUMNS",
    "DESCRIPTIVE",
    "apply_sidecar",
    "file_sha256",
    "match_sidecar",
    "metadata_row",
    "read_sidecar",
    "schema",
    "typed_table",
]

#: Normalised columns, in order (sidecar columns follow them).
COLUMNS = (
    "path", "sha256", "size_bytes", "format", "instrument", "channels", "units", "channel",
    "scan_size_x_m", "scan_size_y_m", "pixel_size_x_m", "pixel_size_y_m", "pixels_x",
    "pixels_y", "date", "material", "sample", "operator", "imaging_mode",
    "drive_frequency_hz", "raw",
)  # fmt: skip

#: What a sidecar may say about a file beside its own columns: who, what and how. The
#: rest of :data:`COLUMNS` is measured from the file (sizes, format, checksum) and is never
#: overridden.
DESCRIPTIVE = ("material", "sample", "operator", "date", "imaging_mode")

#: Other names a sidecar may use for the descriptive columns.
ALIASES = {"mode": "imaging_mode", "user": "operator"}

_FLOAT = ("zoom", "scan_size_x_m", "scan_size_y_m", "pixel_size_x_m", "pixel_size_y_m",
          "drive_frequency_hz")  # fmt: skip
_INT = ("image_id", "tile", "size_bytes", "pixels_x", "pixels_y")


def schema():
    """The Arrow schema of every ``metadata.parquet`` part: ``image_id``, ``tile``,
    ``zoom`` (stored pixels per file pixel; null in stores made before it) and
    :data:`COLUMNS`, each with one type (a column no file filled is typed null-free)."""
    import pyarrow as pa

    names = ("image_id", "tile", "zoom", *COLUMNS)
    return pa.schema([(n, pa.int64() if n in _INT else pa.float64() if n in _FLOAT
                       else pa.string()) for n in names])  # fmt: skip


def typed_table(rows: pd.DataFrame):
    """``rows`` as an Arrow table of :func:`schema` (missing columns null, the rest cast)."""
    import pyarrow as pa

    sch = schema()
    arrays = []
    for field in sch:
        if field.name in rows:
            col = rows[field.name]
            values = [None if _missing(v) else v for v in col.tolist()]
            if pa.types.is_string(field.type):
                values = [v if v is None else str(v) for v in values]
            arrays.append(pa.array(values, type=field.type))
        else:
            arrays.append(pa.nulls(len(rows), type=field.type))
    return pa.Table.from_arrays(arrays, schema=sch)


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
        "channel": None,  # the channel(s) ingest chose: set by ingest
        "scan_size_x_m": size[0],
        "scan_size_y_m": size[1],
        "pixel_size_x_m": size[0] / nx if size[0] else None,
        "pixel_size_y_m": size[1] / ny if size[1] else None,
        "pixels_x": nx,
        "pixels_y": ny,
        "date": meta.get("date"),
        "material": meta.get("material"),
        "sample": meta.get("sample"),
        "operator": meta.get("operator"),
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
    table = table.rename(columns={k: v for k, v in ALIASES.items() if v not in table.columns})
    clash = sorted(set(table.columns) & (set(COLUMNS) - {"path", *DESCRIPTIVE}))
    if clash:
        raise SariseError(f"sidecar {path}: columns {clash} are measured from the files; a "
                          f"sidecar may set {', '.join(DESCRIPTIVE)} and columns of its own")  # fmt: skip
    if table.columns.duplicated().any():
        dup = sorted(set(table.columns[table.columns.duplicated()]))
        raise SariseError(f"sidecar {path}: columns {dup} appear twice")
    return table


def match_sidecar(sidecar: pd.DataFrame, paths, unused: list[str] | None = None) -> pd.DataFrame:
    """The sidecar's values for each of ``paths`` it names: exact paths first, then globs.

    Every key is first taken as an exact path (``scan[1].ibw`` names that file); only a
    key that is no file's exact path and holds ``*``, ``?`` or ``[`` is a glob
    (``fnmatch``: ``2019/*.ibw``, ``run_[0-9].sxm``), the first matching glob in sidecar
    order winning. Returns one row per matched path: ``path`` and the sidecar's columns,
    typed (a column whose every value is a number is float, else text; empty is null).
    ``unused``, when given, receives the keys that gave no path its values.
    """
    extra = [c for c in sidecar.columns if c != "path"]
    records = sidecar.to_dict("records")
    exact = {r["path"]: r for r in records}
    names = list(dict.fromkeys(paths))
    known = set(names)
    globs = [r for r in records if _is_glob(r["path"]) and r["path"] not in known]
    rows, used = [], set()
    for p in names:
        row = exact.get(p) or next((g for g in globs if fnmatch.fnmatchcase(p, g["path"])), None)
        if row is not None:
            used.add(row["path"])
            rows.append({"path": p, **{c: None if _missing(row.get(c)) else row[c] for c in extra}})
    if unused is not None:
        unused.extend(k for k in dict.fromkeys(r["path"] for r in records) if k not in used)
    out = pd.DataFrame(rows, columns=["path", *extra])
    for col in extra:
        out[col] = _typed_column(out[col], text=col in DESCRIPTIVE)
    return out


def _typed_column(col: pd.Series, text: bool) -> pd.Series:
    values = col.dropna()
    if not text and len(values):
        num = pd.to_numeric(values, errors="coerce")
        if num.notna().all():
            return pd.to_numeric(col, errors="coerce").astype("float64")
    return col.astype(object).where(col.notna(), None)


def apply_sidecar(rows: pd.DataFrame, matched: pd.DataFrame, file_wins: bool = False):
    """``rows`` with the matched sidecar values (:func:`match_sidecar`) by path.

    The sidecar's :data:`DESCRIPTIVE` values replace the file's own (a header's sample
    name or date is often a default nobody set), except where ``file_wins``: then they
    only fill what the file left empty. Its other columns are added as they are.
    """
    out = rows.copy()
    if matched is None or matched.empty or "path" not in out:
        return out
    side = matched.drop_duplicates("path", keep="last").set_index("path")
    for col in side.columns:
        lookup = {k: v for k, v in side[col].items() if not _missing(v)}
        values = pd.Series([lookup.get(p) for p in out["path"]], index=out.index, dtype=object)
        if col in out.columns:
            own = out[col]
            take = values.notna() & (own.map(_missing) if file_wins else True)
            merged = np.where(np.asarray(take, bool), values.to_numpy(object), own.to_numpy(object))
            out[col] = pd.Series([None if _missing(v) else v for v in merged], index=out.index,
                                 dtype=object)  # fmt: skip
        else:
            out[col] = values
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")
