"""The run record: what made each stage of a run directory, and :func:`run_info`.

Every ``sarise`` command that writes a stage of a run directory (``results/<run>/``: the
folder holding ``symmetry/``, ``model/``, ``store/``, ``features.zarr``...) leaves
``<run>/records/<stage>.json`` beside it: the command line, the whole config with every
default filled in and its sha256 (``cluster`` aside), the seeds, the model sha256 where a model was used, the
package versions, the host and SLURM job, and when and how long. ``sarise info RUN`` reads
them back together with what the run directory holds.

Records describe how outputs were made; they are not outputs. Timing and host fields
differ between two otherwise bit-identical runs, so comparisons of runs leave
``records/`` out.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sarise._files import write_json_atomic
from sarise._version import __version__

__all__ = ["RECORDS", "format_info", "package_versions", "read_records", "run_digest", "run_info",
           "seeds", "write_record"]  # fmt: skip

#: The folder of a run directory that holds the records.
RECORDS = "records"

#: Distributions whose versions decide the outputs (missing ones are left out).
PACKAGES = (
    "sarise", "numpy", "scipy", "torch", "lightning", "safetensors", "dask", "distributed",
    "zarr", "numcodecs", "xarray", "pandas", "pyarrow", "scikit-image", "scikit-learn",
    "umap-learn", "pynndescent", "numba", "faiss-cpu", "faiss-gpu-cu12", "h5py", "tifffile",
    "igor2", "gwyfile", "pillow", "matplotlib", "bokeh", "datashader", "snakemake",
    "dask-jobqueue", "dask-mpi", "mpi4py", "cupy-cuda12x", "cuml-cu12", "dask-cuda",
)  # fmt: skip


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (those present)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def seeds(config: dict) -> dict[str, int]:
    """Every ``seed`` key of a config dump, by dotted path (``symmetry.seed``...)."""
    found = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "seed" and isinstance(value, int):
                    found[f"{prefix}{key}"] = value
                else:
                    walk(value, f"{prefix}{key}.")

    walk(config, "")
    return found


def _config_sha256(config: dict) -> str:
    """sha256 of a config dump without its ``cluster`` section: where the workers ran
    changes no output, and commands override it (``--workers``) stage by stage."""
    settings = {k: v for k, v in config.items() if k != "cluster"}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def write_record(
    run: str | Path,
    stage: str,
    config: Any,
    *,
    outputs: list[str | Path],
    started: float,
    model_sha256: str | None = None,
    **extra: Any,
) -> Path:
    """Record how ``stage`` of the run directory ``run`` was made; returns the record's path.

    Parameters
    ----------
    run : path
        The run directory (the folder holding the stage's outputs).
    stage : str
        The stage's name: the file is ``<run>/records/<stage>.json`` (latest run of it).
    config : SarisConfig or dict
        The whole config the command ran with.
    outputs : list of path
        What the stage wrote.
    started : float
        ``time.time()`` when the command started.
    model_sha256 : str, optional
        sha256 of the model the stage used or made.
    **extra
        Further JSON-serialisable facts (counts, the input store...).
    """
    dump = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    now = time.time()
    record = {
        "stage": stage,
        "command": shlex.join(["sarise", *sys.argv[1:]]),  # as typed, whatever started it
        "cwd": os.getcwd(),
        "outputs": [str(p) for p in outputs],
        "config_sha256": _config_sha256(dump),
        "seeds": seeds(dump),
        "model_sha256": model_sha256,
        "sarise": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "seconds": round(now - started, 3),
        **extra,
        "packages": package_versions(),
        "config": dump,
    }
    path = Path(run) / RECORDS / f"{stage}.json"
    write_json_atomic(path, record)
    return path


def read_records(run: str | Path) -> dict[str, dict]:
    """The records of a run directory by stage (empty where it has none)."""
    folder = Path(run) / RECORDS
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            out[path.stem] = {"stage": path.stem, "error": f"unreadable record: {exc}"}
            continue
        problem = _malformed(record)
        out[path.stem] = record if problem is None else {
            "stage": path.stem, "error": f"malformed record {path.name}: {problem}"}  # fmt: skip
    return out


#: The fields :func:`format_info` and :func:`run_info` read, and their JSON types.
_FIELDS = {"command": str, "started": str, "seconds": (int, float), "host": str,
           "config_sha256": str, "model_sha256": (str, type(None)),
           "slurm_job_id": (str, int, type(None)), "seeds": dict, "packages": dict}  # fmt: skip


def _malformed(record: Any) -> str | None:
    """What is wrong with a record read back (None when it has the shape it is written in)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    for key in ("command", "started", "seconds", "host"):
        if key not in record:
            return f"no {key!r}"
    for key, kinds in _FIELDS.items():
        value = record.get(key)
        if key in record and (not isinstance(value, kinds) or isinstance(value, bool)):
            return f"{key!r} is a JSON {type(value).__name__}"
    if not all(
        isinstance(v, int) and not isinstance(v, bool) for v in record.get("seeds", {}).values()
    ):
        return "'seeds' holds a value that is not an integer"
    if not all(isinstance(v, str) for v in record.get("packages", {}).values()):
        return "'packages' holds a version that is not text"
    return None


def _contents(run: Path) -> dict[str, Any]:
    """What the run directory holds, read from its stores' own metadata (cheap)."""
    import zarr

    out: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        path = run / "symmetry" / f"{split}.zarr"
        if path.is_dir():
            out[f"symmetry.{split}"] = {"images": int(zarr.open_array(path / "images").shape[0])}
    info = run / "model" / "model.json"
    if info.is_file():
        model = _json_object(info)
        arch = model.get("model", {}).get("arch") if isinstance(model.get("model"), dict) else None
        out["model"] = {"sha256": model.get("sha256"), "arch": arch}
    if (run / "store").is_dir():
        from sarise.store import ImageStore

        store = ImageStore.open(run / "store", mode="r")  # reading never changes a store
        out["store"] = {"images": len(store), "failed": len(store.errors()),
                        "retired": len(store.retired())}  # fmt: skip
    if (run / "features.zarr").is_dir():
        group = zarr.open_group(run / "features.zarr", mode="r")
        attrs = dict(group.attrs)
        out["features"] = {"images": int(group["features"].shape[0]),
                           "features": int(group["features"].shape[1]),
                           "model_sha256": attrs.get("model_sha256"),
                           "extractor": attrs.get("extractor")}  # fmt: skip
    nodes = run / "projections"
    if nodes.is_dir():
        out["projections"] = {"nodes": sum(1 for p in nodes.glob("*/node.json"))}
    index = run / "index" / "index.json"
    if index.is_file():
        meta = _json_object(index)
        out["index"] = {"images": meta.get("n"), "kind": meta.get("kind")}
    return out


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON object file, or a SariseError naming the file."""
    from sarise.errors import SariseError

    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SariseError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SariseError(f"{path}: a JSON {type(value).__name__}, not an object")
    return value


def run_info(run: str | Path) -> dict[str, Any]:
    """A run directory's records and contents (what ``sarise info`` prints)."""
    from sarise.errors import SariseError

    run = Path(run)
    if not run.is_dir():
        raise SariseError(f"{run}: no such run directory")
    records = read_records(run)
    configs = {r.get("config_sha256") for r in records.values() if "config_sha256" in r}
    merged: dict[str, int] = {}
    for r in records.values():
        merged.update(r.get("seeds", {}))
    versions: dict[str, set] = {}
    for r in records.values():
        for name, version in r.get("packages", {}).items():
            versions.setdefault(name, set()).add(version)
    return {
        "run": str(run),
        "stages": records,
        "configs": sorted(c for c in configs if c),
        "seeds": merged,
        "packages": {k: sorted(v) for k, v in sorted(versions.items())},
        "contents": _contents(run),
    }


def format_info(info: dict[str, Any]) -> str:
    """:func:`run_info` as text: contents, models, seeds, stages, package versions."""
    lines = [f"run {info['run']}"]
    for name, facts in info["contents"].items():
        lines.append(f"  {name:<16} " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    if info["configs"]:
        same = "one config" if len(info["configs"]) == 1 else "DIFFERENT configs across stages"
        lines.append(f"config   {same}: sha256 {', '.join(c[:16] for c in info['configs'])}")
    if info["seeds"]:
        lines.append("seeds    " + ", ".join(f"{k}={v}" for k, v in info["seeds"].items()))
    if info["stages"]:
        lines.append("stages")
        lines.append(f"  {'stage':<16} {'started':<26} {'seconds':>8}  {'host':<10} "
                     f"{'slurm job':<10} {'model sha256':<14} command")  # fmt: skip
        for stage, r in info["stages"].items():
            if "error" in r:
                lines.append(f"  {stage:<16} {r['error']}")
                continue
            model = (r.get("model_sha256") or "-")[:12]
            lines.append(f"  {stage:<16} {r['started']:<26} {r['seconds']:>8.1f}  "
                         f"{r['host'][:10]:<10} {r.get('slurm_job_id') or '-':<10} "
                         f"{model:<14} {r['command']}")  # fmt: skip
    else:
        lines.append("stages   no records (made before sarise recorded runs, or not by sarise)")
    if info["packages"]:
        lines.append(
            "packages " + ", ".join(f"{k} {'|'.join(v)}" for k, v in info["packages"].items())
        )
        mixed = [k for k, v in info["packages"].items() if len(v) > 1]
        if mixed:
            lines.append(f"WARNING: stages ran with different versions of {', '.join(mixed)}")
    return "\n".join(lines)


#: JSON keys that hold wall-clock facts (how long, when), left out of :func:`run_digest`
#: together with every rate (keys and CSV columns ending in ``per_s``).
VOLATILE_KEYS = frozenset({"seconds", "seconds_this_run", "created", "started"})
#: Folders of a run that are logs, not outputs: run records and TensorBoard event files
#: (both hold wall times).
LOG_DIRS = frozenset({RECORDS, "tensorboard"})


def _strip(obj, run: str):
    """JSON-like ``obj`` without :data:`VOLATILE_KEYS`, with the absolute run path as <run>."""
    if isinstance(obj, dict):
        return {str(k).replace(run, "<run>"): _strip(v, run) for k, v in obj.items()
                if k not in VOLATILE_KEYS and not str(k).endswith("per_s")}  # fmt: skip
    if isinstance(obj, list | tuple):
        return [_strip(v, run) for v in obj]
    if isinstance(obj, str):
        return obj.replace(run, "<run>")
    return obj


def _hash_value(h, obj) -> None:
    """Feed a checkpoint-like structure (dicts, lists, tensors, arrays, scalars) to ``h``."""
    import numpy as np

    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _hash_value(h, obj[k])
    elif isinstance(obj, list | tuple):
        h.update(f"[{len(obj)}".encode())
        for v in obj:
            _hash_value(h, v)
    elif hasattr(obj, "detach"):  # a torch tensor
        arr = obj.detach().cpu()
        h.update(f"{arr.dtype}{tuple(arr.shape)}".encode())
        h.update(arr.contiguous().view(-1).view(__import__("torch").uint8).numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    else:
        h.update(repr(obj).encode())


def _digest_file(path: Path, run: str) -> str:
    import numpy as np

    h = hashlib.sha256()
    suffix = path.suffix
    if suffix == ".json":
        _hash_value(h, _strip(json.loads(path.read_text()), run))
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        h.update(str(table.schema.remove_metadata()).encode())
        for name in table.column_names:
            h.update(name.encode())
            _hash_value(h, table[name].to_pylist())
    elif suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(path)
        frame = frame[[c for c in frame.columns if not c.endswith("per_s")]]
        h.update(frame.to_csv(index=False).encode())
    elif suffix == ".npy":
        _hash_value(h, np.load(path, allow_pickle=False))
    elif suffix == ".ckpt":
        import torch

        _hash_value(h, _strip(torch.load(path, map_location="cpu", weights_only=True), run))
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def _digest_zarr(path: Path, run: str) -> dict[str, str]:
    """One digest per array (dtype, shape, decoded values, attrs) and group (attrs)."""
    import numpy as np
    import zarr

    out = {}
    for meta in sorted(path.rglob("zarr.json")):
        node = meta.parent
        doc = json.loads(meta.read_text())
        h = hashlib.sha256()
        _hash_value(h, _strip(doc.get("attributes", {}), run))
        if doc.get("node_type") == "array":
            arr = zarr.open_array(node, mode="r")
            _hash_value(h, np.asarray(arr[...]))
        out[node.relative_to(path).as_posix()] = h.hexdigest()
    return out


def run_digest(run: str | Path) -> dict[str, str]:
    """sha256 of every output in a run directory, by relative path, for comparing runs.

    Zarr stores are hashed array by array (dtype, shape, decoded values and attrs, so chunk
    encoding does not matter), Parquet and CSV files as tables, JSON as parsed values,
    checkpoints as their tensors and state, everything else byte for byte. Left out, so
    that two runs of one config compare equal: :data:`LOG_DIRS` (records and TensorBoard
    event files), JSON keys in :data:`VOLATILE_KEYS`, JSON keys and CSV columns of rates
    (``*per_s``),
    and the absolute path of the run directory inside checkpoints (Lightning stores it).
    """
    run = Path(run).resolve()
    prefix = str(run)
    out: dict[str, str] = {}

    def walk(folder: Path):
        for path in sorted(folder.iterdir()):
            rel = path.relative_to(run).as_posix()
            if path.name.startswith(".") or path.name in LOG_DIRS:
                continue
            if path.is_dir() and (path / "zarr.json").is_file():
                for key, digest in _digest_zarr(path, prefix).items():
                    out[f"{rel}/{key}" if key != "." else rel] = digest
            elif path.is_dir():
                walk(path)
            elif path.is_file():
                out[rel] = _digest_file(path, prefix)

    walk(run)
    return out
