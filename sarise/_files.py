"""File helpers shared by the stages."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256", "open_zarr_dataset", "write_json_atomic"]


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file and a rename, so
    readers see the old file or the new one, never a partial one."""
    import json
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def open_zarr_dataset(path: str | Path):
    """``xarray.open_zarr`` of a Zarr v3 group (no consolidated metadata), quiet about the
    ``.snakemake_timestamp`` file Snakemake leaves inside a directory output."""
    import warnings

    import xarray as xr

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Object at \.snakemake_timestamp")
        return xr.open_zarr(path, consolidated=False)
