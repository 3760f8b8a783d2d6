"""A run directory as one ``xarray.Dataset``: :func:`open_run`.

A run directory (``results/<run>/``) holds ``store/`` (the image store), ``features.zarr``
(``sarise extract``) and, from the projection stage on, ``projections/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sarise._files import open_zarr_dataset
from sarise.errors import SariseError

__all__ = ["open_run"]


def open_run(path: str | Path, *, metadata: bool = True, node: str = "root"):
    """The features, logits and group probabilities of a run joined with its metadata.

    Parameters
    ----------
    path : path
        A run directory (``store/`` and ``features.zarr`` inside), or a feature store
        (``features.zarr``) whose image store is its sibling ``store/``.
    metadata : bool
        Join the image store's metadata table as variables along ``image``.
    node : str
        The projection-tree node whose coordinates become ``x`` and ``y`` (NaN for images
        outside it), when the run has projections (``sarise project``).

    Returns
    -------
    xarray.Dataset
        Indexed by ``image`` (the int64 image ids) and ``group`` (the 17 group names), with
        ``features[image, feature]`` (lazy, Dask), ``logits``, ``probabilities``, ``done``
        (whether the image has features yet), ``retired`` (``replaced`` or ``removed`` for
        images whose file changed or is gone, else empty), ``thumbnail[image, channel, ty,
        tx]`` (lazy), one variable per metadata column (``path``, ``material``,
        ``date``...) and, where extract measured
        symmetry, its columns (``lattice_a_nm``, ``rotation_order``, ``mirror``,
        ``lattice_family``, ``symmetry_group``..., and ``combined_group`` with
        ``combined_confidence``: the model and the measurement together); ``x``, ``y``
        (and ``cluster``) of the projection node when present.

    Examples
    --------
    >>> ds = open_run("results/demo")  # doctest: +SKIP
    >>> ds.probabilities.sel(group="p4m").to_series().nlargest(5)  # doctest: +SKIP
    """

    from sarise.store import ImageStore

    path = Path(path)
    run = path.parent if path.name.endswith(".zarr") else path
    feats = path if path.name.endswith(".zarr") else path / "features.zarr"
    if not (feats / "zarr.json").exists():
        raise SariseError(f"{feats}: no feature store (run `sarise extract` first)")
    store = ImageStore.open(run / "store", mode="r")
    ds = open_zarr_dataset(feats)
    chunk = int(ds.attrs["chunk"])
    n = ds.sizes["image"]
    done_chunks = ds["done"].values
    done = np.zeros(n, bool)
    for c, k in enumerate(done_chunks):
        done[c * chunk : c * chunk + int(k)] = True
    ids = store.array("image_id")[:n]
    ds = ds.drop_vars(["done", "image_id"]).assign_coords(image=ids, group=list(ds.attrs["groups"]))
    ds["done"] = ("image", done)
    retired = store.retired()
    ds["retired"] = ("image", pd.Series(ids).map(retired).astype(object).fillna("").to_numpy(str))
    thumbs = store.array("thumbnails")
    if thumbs.ndim == 4:  # one per channel
        ds["thumbnail"] = (("image", "channel", "ty", "tx"), _lazy(thumbs, n))
        ds = ds.assign_coords(channel=list(store.channels))
    else:
        ds["thumbnail"] = (("image", "ty", "tx"), _lazy(thumbs, n))
    members = run / "projections" / node / "members.parquet"
    if members.exists():
        table = pd.read_parquet(members).set_index("image_id").reindex(ids)
        for col in table.columns:
            ds[col] = ("image", table[col].to_numpy(np.float64))
        ds.attrs["projection"] = node
    if metadata:
        import zarr

        from sarise.symmetry_measure import run_columns

        meta = store.metadata().iloc[:n]
        measured = run_columns(zarr.open_group(feats, mode="r"), meta,
                               store.attrs["preprocessing"])  # fmt: skip
        if measured is not None:
            meta = meta.join(measured)
        for col in meta.columns:
            if col in ("image_id", "raw"):
                continue
            values = meta[col].to_numpy()
            if values.dtype == object:
                values = values.astype(str) if meta[col].map(_is_text).all() else values
            ds[col] = ("image", values)
    return ds


def _is_text(v) -> bool:
    return isinstance(v, str)


def _lazy(array, n: int):
    import dask.array as da

    return da.from_zarr(array)[:n]
