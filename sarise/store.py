"""The image store of ``shared/design.md``: ``images.zarr`` + ``metadata.parquet`` +
``errors.parquet`` in one folder.

- ``images.zarr``: ``images[image, channel, y, x]`` (float32 or float16) chunked along
  ``image``; ``image_id[image]`` (int64), ``tile_yx[image, 2]`` (corner of the tile in
  its scan, ``-1`` for a whole scan) and ``thumbnails[image, channel, t, t]`` (uint8, one per
  channel; older stores kept channel 0 only, as ``thumbnails[image, t, t]``). Attrs: the
  schema version, channel names, image size and the preprocessing that made the images.
- ``metadata.parquet/``: one Parquet part per commit, one row per stored image in image
  order (strings live here, never in Zarr).
- ``errors.parquet/``: the files that could not be ingested, with the reason.
- ``sidecar.parquet``: the user's sidecar values matched to stored paths (one row per
  path), replaced whole when a sidecar is applied; :meth:`ImageStore.metadata` applies it
  (its descriptive columns win over the files' own unless it says files win).

Every Parquet part of a folder has the same schema, so ``pandas.read_parquet``, polars and
duckdb read each folder as one table.
- ``retired.parquet/``: images whose file changed or is gone (``image_id``, ``path``,
  ``reason``: ``replaced`` or ``removed``; a row with no reason restores the image). The
  images stay in the arrays, so features stay aligned and nothing is lost; projections and
  the search index leave retired images out (:meth:`ImageStore.live`).

One writer appends. An append writes the arrays first, then renames its metadata part into
place: that rename is the commit. Opening a store cuts arrays back to the committed length,
so a writer killed at any point leaves neither duplicates nor holes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sarise._version import __version__
from sarise.errors import SariseError

__all__ = ["SCHEMA_VERSION", "ImageStore", "chunk_sizes", "image_id"]

SCHEMA_VERSION = 1
RETIRED = "retired.parquet"
SIDECAR = "sidecar.parquet"


def chunk_sizes(n: int, chunk: int) -> list[int]:
    """Images in each chunk of an ``n``-image array chunked by ``chunk``: what a feature
    store's ``done[chunk]`` holds when finished.

    >>> chunk_sizes(10, 4)
    [4, 4, 2]
    """
    return [min(chunk, n - c * chunk) for c in range(-(-n // chunk))]


def image_id(sha256: str, tile: int = 0) -> int:
    """A stable non-negative int64 id for tile ``tile`` of the file with this sha256.

    >>> image_id("ab" * 32) == image_id("ab" * 32) != image_id("ab" * 32, 1)
    True
    """
    digest = hashlib.sha256(f"{sha256}:{tile}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


class ImageStore:
    """Open with :meth:`create` or :meth:`open`; append with :meth:`append`."""

    def __init__(self, root: Path, group):
        self.root = root
        self._group = group
        self._n = self._count_committed()

    # -- creation and opening ----------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        channels: list[str],
        size: int,
        dtype: str = "float32",
        chunk: int = 64,
        thumbnail: int = 64,
        preprocessing: dict[str, Any] | None = None,
    ) -> ImageStore:
        """Make an empty store (refuses an existing one)."""
        import zarr

        root = Path(root)
        if (root / "images.zarr").exists():
            raise SariseError(f"{root} already holds an image store")
        if dtype not in ("float32", "float16"):
            raise SariseError(f"dtype must be float32 or float16, got {dtype!r}")
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / "images.zarr.partial"
        g = zarr.open_group(tmp, mode="w")
        c = len(channels)
        g.create_array("images", shape=(0, c, size, size), chunks=(chunk, c, size, size),
                       dtype=dtype, fill_value=0)  # fmt: skip
        g.create_array("image_id", shape=(0,), chunks=(chunk,), dtype="int64", fill_value=-1)
        g.create_array("tile_yx", shape=(0, 2), chunks=(chunk, 2), dtype="int32", fill_value=-1)
        g.create_array("thumbnails", shape=(0, c, thumbnail, thumbnail),
                       chunks=(chunk, c, thumbnail, thumbnail), dtype="uint8", fill_value=0)  # fmt: skip
        g.attrs.update({"schema": SCHEMA_VERSION, "channels": list(channels), "size": size,
                        "thumbnail": thumbnail, "preprocessing": preprocessing or {},
                        "sarise": __version__})  # fmt: skip
        os.replace(tmp, root / "images.zarr")
        for d in ("metadata.parquet", "errors.parquet"):
            (root / d).mkdir(exist_ok=True)
        return cls.open(root)

    @classmethod
    def open(cls, root: str | Path, mode: str = "r+") -> ImageStore:
        """Open a store; in ``r+`` mode an uncommitted tail (a killed append) is cut off."""
        import zarr

        root = Path(root)
        if not (root / "images.zarr" / "zarr.json").exists():
            raise SariseError(f"{root} is not an image store (no images.zarr)")
        group = zarr.open_group(root / "images.zarr", mode=mode)
        if group.attrs.get("schema") != SCHEMA_VERSION:
            raise SariseError(f"{root}: image store schema {group.attrs.get('schema')} is not "
                              f"{SCHEMA_VERSION}")  # fmt: skip
        store = cls(root, group)
        n = len(store)
        if mode != "r" and group["images"].shape[0] != n:
            store._resize(n)
        for tmp in (root / "metadata.parquet").glob("*.partial"):
            tmp.unlink()
        return store

    # -- reading -----------------------------------------------------------------------
    @property
    def channels(self) -> list[str]:
        return list(self._group.attrs["channels"])

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._group.attrs)

    def __len__(self) -> int:
        return self._n

    def array(self, name: str):
        """A Zarr array of the store (``images``, ``image_id``, ``tile_yx``, ``thumbnails``)."""
        return self._group[name]

    def metadata(self) -> pd.DataFrame:
        """All committed metadata rows, in image order, with the sidecar's values applied
        (:meth:`set_sidecar`)."""
        from sarise.io.metadata import apply_sidecar

        side, file_wins = self.sidecar()
        return apply_sidecar(_read_parts(self._parts()), side, file_wins)

    def sidecar(self) -> tuple[pd.DataFrame, bool]:
        """The sidecar values by path (``sidecar.parquet``) and whether files win over them."""
        path = self.root / SIDECAR
        if not path.exists():
            return pd.DataFrame(columns=["path"]), False
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        return table.to_pandas(), meta.get(b"file_wins") == b"true"

    def set_sidecar(self, matched: pd.DataFrame, file_wins: bool = False) -> None:
        """Replace the store's sidecar values (one row per path, from
        :func:`sarise.io.metadata.match_sidecar`): metadata changes, no image is read."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(matched.reset_index(drop=True), preserve_index=False)
        table = table.replace_schema_metadata({"file_wins": "true" if file_wins else "false"})
        tmp = self.root / (SIDECAR + ".partial")
        pq.write_table(table, tmp)
        os.replace(tmp, self.root / SIDECAR)

    def errors(self) -> pd.DataFrame:
        """The files that still fail: the latest reason per path (a row with no reason,
        written when a file later reads, clears the path)."""
        table = _read_parts(sorted((self.root / "errors.parquet").glob("part-*.parquet")))
        if table.empty:
            return pd.DataFrame(columns=["path", "reason"])
        table = table.drop_duplicates("path", keep="last")
        return table[table["reason"].notna()].reset_index(drop=True)

    def retired(self) -> pd.Series:
        """Why each retired image is retired (``replaced``, ``removed``), by image id."""
        table = _read_parts(sorted((self.root / RETIRED).glob("part-*.parquet")))
        if table.empty:
            return pd.Series([], index=pd.Index([], dtype="int64", name="image_id"), dtype=object,
                             name="reason")  # fmt: skip
        table = table.drop_duplicates("image_id", keep="last")
        table = table[table["reason"].notna()]
        return table.set_index("image_id")["reason"].astype(object)

    def live(self, n: int | None = None) -> np.ndarray:
        """Whether each of the first ``n`` images (all by default) is live (not retired)."""
        n = len(self) if n is None else n
        retired = self.retired()
        if retired.empty:
            return np.ones(n, bool)
        return ~np.isin(self.array("image_id")[:n], retired.index.to_numpy(np.int64))

    def known_sha256(self) -> set[str]:
        """sha256 of every file already stored (a rerun skips them)."""
        meta = _read_parts(self._parts(), ["sha256"])
        return set(meta["sha256"]) if "sha256" in meta else set()

    # -- writing -----------------------------------------------------------------------
    def append(
        self,
        images: np.ndarray,
        rows: pd.DataFrame,
        *,
        tile_yx: np.ndarray | None = None,
        thumbnails: np.ndarray | None = None,
    ) -> None:
        """Append ``k`` images with their metadata rows (which must hold ``image_id``)."""
        g = self._group
        k = len(images)
        shape = tuple(g["images"].shape[1:])
        if images.shape[1:] != shape:
            raise SariseError(f"images of shape {images.shape[1:]} do not fit the store {shape}")
        if len(rows) != k or "image_id" not in rows:
            raise SariseError("one metadata row with an image_id per image is needed")
        if thumbnails is not None:
            if g["thumbnails"].ndim == 3 and thumbnails.ndim == 4:  # an older store: channel 0
                thumbnails = thumbnails[:, 0]
            if thumbnails.shape != (k, *g["thumbnails"].shape[1:]):
                raise SariseError(f"thumbnails of shape {thumbnails.shape} do not fit the store "
                                  f"{tuple(g['thumbnails'].shape[1:])} for {k} images")  # fmt: skip
        if k == 0:
            return
        n = len(self)
        self._resize(n + k)
        g["images"][n : n + k] = images.astype(g["images"].dtype)
        g["image_id"][n : n + k] = rows["image_id"].to_numpy(np.int64)
        g["tile_yx"][n : n + k] = -1 if tile_yx is None else tile_yx
        if thumbnails is not None:
            g["thumbnails"][n : n + k] = thumbnails
        import pyarrow.parquet as pq

        from sarise.io.metadata import typed_table

        part = self.root / "metadata.parquet" / f"part-{self._n_parts:06d}.parquet"
        tmp = part.with_name(part.name + ".partial")
        pq.write_table(typed_table(rows), tmp)  # one schema for every part
        os.replace(tmp, part)  # the commit
        self._n += k
        self._n_parts += 1

    def add_errors(self, rows: pd.DataFrame) -> None:
        """Record files that failed (``path``, ``format``, ``reason``; no reason: the path
        reads again)."""
        cols = {"path": "string", "format": "string", "reason": "string"}  # one schema
        if len(rows):
            rows = rows.reindex(columns=list(cols)).astype(cols)
        self._add_part("errors.parquet", rows)

    def retire(self, rows: pd.DataFrame) -> None:
        """Retire images (``image_id``, ``path``, ``reason``), or restore them (no reason)."""
        cols = {"image_id": "int64", "path": "string", "reason": "string"}  # typed: never null
        self._add_part(RETIRED, rows[list(cols)].astype(cols))

    def _add_part(self, name: str, rows: pd.DataFrame) -> None:
        if len(rows) == 0:
            return
        folder = self.root / name
        folder.mkdir(exist_ok=True)
        part = folder / f"part-{len(list(folder.glob('part-*.parquet'))):06d}.parquet"
        tmp = part.with_name(part.name + ".partial")
        rows.reset_index(drop=True).to_parquet(tmp, index=False)
        os.replace(tmp, part)

    # -- internals ---------------------------------------------------------------------
    def _parts(self) -> list[Path]:
        return sorted((self.root / "metadata.parquet").glob("part-*.parquet"))

    def _count_committed(self) -> int:
        import pyarrow.parquet as pq

        parts = self._parts()
        self._n_parts = len(parts)
        return sum(pq.ParquetFile(p).metadata.num_rows for p in parts)

    def _resize(self, n: int) -> None:
        for name in ("images", "image_id", "tile_yx", "thumbnails"):
            a = self._group[name]
            a.resize((n, *a.shape[1:]))


def _read_parts(parts: list[Path], columns: list[str] | None = None) -> pd.DataFrame:
    """Parquet parts as one table (a column missing from a part is null there)."""
    import pyarrow.parquet as pq

    frames = []
    for p in parts:
        names = pq.read_schema(p).names
        cols = None if columns is None else [c for c in columns if c in names]
        frames.append(pd.read_parquet(p, columns=cols))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
