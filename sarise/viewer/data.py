"""What the explorer and the report read from a run, loaded once per server."""

from __future__ import annotations

import io
import logging
import threading
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from sarise.config import ProjectConfig, SearchConfig

__all__ = ["RunData", "category_columns", "numeric_columns"]

logger = logging.getLogger(__name__)

#: Metadata columns shown on hover and offered for colouring when present.
KEY_COLUMNS = ("material", "sample", "grower", "substrate", "outcome", "format", "date",
               "imaging_mode", "project")  # fmt: skip


#: Numeric columns that are bookkeeping, never offered as colourings.
NOT_COLOURS = ("image_id", "tile", "zoom", "size_bytes", "pixels_x", "pixels_y", "scan_size_x_m",
               "scan_size_y_m", "pixel_size_x_m", "pixel_size_y_m", "symmetry_group")  # fmt: skip


def numeric_columns(meta: pd.DataFrame) -> list[str]:
    """Numeric columns with more than one value (continuous colourings): scan size,
    confidence, the measured symmetry's scores and lattice constants, a sidecar's numbers."""
    out = []
    for col in meta.columns:
        if col in NOT_COLOURS or not pd.api.types.is_numeric_dtype(meta[col]):
            continue
        if pd.api.types.is_bool_dtype(meta[col]):
            continue
        if meta[col].dropna().nunique() > 1:
            out.append(col)
    return out


def category_columns(meta: pd.DataFrame, max_values: int = 40) -> list[str]:
    """Text columns with a few distinct values (colourings and multi-select filters)."""
    out = []
    for col in meta.columns:
        if col in ("path", "sha256", "raw", "channels", "units", "date", "image_id"):
            continue
        values = meta[col].dropna()
        if len(values) and values.map(type).eq(str).all() and 1 < values.nunique() <= max_values:
            out.append(col)
    return out


class RunData:
    """A run's projection tree, metadata, group probabilities, thumbnails and index."""

    def __init__(self, run: str | Path, project: ProjectConfig | None = None,
                 search: SearchConfig | None = None):  # fmt: skip
        import zarr

        from sarise.project import ProjectionTree
        from sarise.store import ImageStore

        self.run = Path(run)
        self.tree = ProjectionTree(self.run, project)
        self.search_cfg = search or SearchConfig()
        store = ImageStore.open(self.run / "store", mode="r")
        feats = zarr.open_group(self.run / "features.zarr", mode="r")
        n = feats["image_id"].shape[0]
        self.ids = store.array("image_id")[:n]
        self.row = pd.Series(np.arange(n), index=self.ids)
        self._thumbs = store.array("thumbnails")
        self._images = store.array("images")
        self.channels = store.channels
        # a store made by hand may say nothing of its preprocessing: whole scans cropped
        self.image_size = int(store.attrs["size"])
        self.fit = str((store.attrs.get("preprocessing") or {}).get("fit", "crop"))
        self.meta = self.tree.metadata()
        self.meta["name"] = self.meta["path"].str.rsplit("/", n=1).str[-1]
        probs = feats["probabilities"][:]
        groups = np.asarray(feats.attrs["groups"])
        top = np.argsort(-probs, axis=1)[:, :3]
        self.meta["predicted_group"] = groups[top[:, 0]]
        self.meta["top3"] = [", ".join(f"{groups[j]} {probs[i, j]:.2f}" for j in t)
                             for i, t in enumerate(top)]  # fmt: skip
        # each image's best group, the first colouring: the model and the measurement
        # combined where extract measured symmetry (extract.symmetry), else the model's
        self.group_column = "combined_group" if "combined_group" in self.meta else "predicted_group"
        rest = category_columns(self.meta.drop(columns=["name", "top3", "predicted_group",
                                                        "combined_group"], errors="ignore"))  # fmt: skip
        self.categories = list(dict.fromkeys([self.group_column, *rest, "predicted_group"]))
        self.meta["confidence"] = probs[np.arange(len(probs)), top[:, 0]].astype(float)
        if "scan_size_x_m" in self.meta:
            self.meta["scan_size_um"] = pd.to_numeric(self.meta["scan_size_x_m"],
                                                      errors="coerce") * 1e6  # fmt: skip
        if "date" in self.meta:
            when = pd.to_datetime(self.meta["date"], errors="coerce", format="ISO8601", utc=True)
            self.meta["year"] = when.dt.year + (when.dt.day_of_year - 1) / 365.25
        self.numeric = numeric_columns(self.meta)
        self._columns: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._png: dict[tuple[int, int], bytes] = {}
        self._filters = None
        self.shaded = _Recent(64)  # Datashader images of views every session starts from

    def filter_ranges(self):
        """What the filter widgets offer, worked out once for every session: the values of
        the first three categorical columns with their counts, the scan size range (µm)
        and the date range (None where fewer than two images have distinct values)."""
        if self._filters is None:
            counts = {c: sorted(self.meta[c].dropna().astype(str).value_counts().items())
                      for c in self.categories[1:4]}  # fmt: skip
            missing = pd.Series(np.nan, index=self.meta.index)
            size = self.meta.get("scan_size_um", missing).dropna()
            sizes = (float(size.min()), float(size.max())) if size.nunique() > 1 else None
            dates = pd.to_datetime(self.meta.get("date", missing), errors="coerce",
                                   format="ISO8601").dropna()  # fmt: skip
            span = (dates.min(), dates.max()) if dates.nunique() > 1 else None
            self._filters = counts, sizes, span
        return self._filters

    def thumbnail(self, image_id: int, channel: int = 0) -> np.ndarray:
        """The stored thumbnail (uint8, square) of one channel of an image."""
        t = self._thumbs[int(self.row[image_id])]
        return t[channel] if t.ndim == 3 else t  # older stores kept channel 0 only

    def thumbnail_png(self, image_id: int, channel: int = 0) -> bytes | None:
        """The stored thumbnail of one channel of an image as PNG (None for an unknown id
        or channel)."""
        from PIL import Image

        stored = self._thumbs.shape[1] if self._thumbs.ndim == 4 else 1
        if image_id not in self.row.index or not 0 <= channel < stored:
            return None
        key = (image_id, channel)
        with self._lock:
            if key in self._png:
                return self._png[key]
        buf = io.BytesIO()
        Image.fromarray(self.thumbnail(image_id, channel)).save(buf, format="PNG")
        png = buf.getvalue()
        with self._lock:
            if len(self._png) < 200_000:
                self._png[key] = png
        return png

    def image_png(self, image_id: int, channel: int) -> bytes | None:
        """One channel of the stored image (full stored resolution, as the model saw it)
        as an 8-bit PNG; None for an unknown id or channel."""
        from PIL import Image

        if image_id not in self.row.index or not 0 <= channel < self._images.shape[1]:
            return None
        a = np.asarray(self._images[int(self.row[image_id]), channel], np.float32)
        buf = io.BytesIO()
        Image.fromarray((np.clip(np.nan_to_num(a), 0, 1) * 255).round().astype(np.uint8)).save(
            buf, format="PNG")  # fmt: skip
        return buf.getvalue()

    def pixel_nm(self, image_id: int) -> float:
        """The size of one stored pixel in nm (NaN where the file gave no scan size)."""
        from sarise.symmetry_measure import stored_pixel_nm

        row = self.meta.iloc[[int(self.row[image_id])]]
        return float(stored_pixel_nm(row, self.image_size, self.fit)[0])

    @cached_property
    def index(self):
        """The run's search index (``sarise index``), or an in-memory exact one."""
        from sarise.search import SearchIndex

        if (self.run / "index" / "index.json").exists():
            index = SearchIndex.load(self.run / "index")
            if (
                index.info.get("features", self.tree.features_fingerprint())
                == self.tree.features_fingerprint()
            ):
                return index
            logger.warning("%s/index was built from other features: searching exactly in "
                           "memory until `sarise index` is run again", self.run)  # fmt: skip
        cfg = self.search_cfg
        ids, x = self.tree.features(descriptor=cfg.descriptor, weight=cfg.symmetry_weight)
        index = SearchIndex.build(x, ids, SearchConfig(exact_max=len(ids) + 1))
        index.info.update(descriptor=cfg.descriptor, symmetry_weight=cfg.symmetry_weight)
        return index

    def neighbours(self, image_id: int, k: int = 12) -> tuple[list[int], list[float]]:
        """The ``k`` most similar images, the image itself first, and their cosine
        distances."""
        info = self.index.info
        _, x = self.tree.features(np.asarray([image_id]), descriptor=info.get("descriptor", "cnn"),
                                  weight=float(info.get("symmetry_weight", 1.0)))  # fmt: skip
        found, dist = self.index.search(x, k)
        keep = found[0] >= 0
        return [int(i) for i in found[0][keep]], [max(0.0, float(d)) for d in dist[0][keep]]

    def positions(self, image_ids) -> np.ndarray:
        """Rows of these images in the store (and in :attr:`meta`)."""
        return self.row.reindex(np.asarray(image_ids)).to_numpy()

    def column(self, name: str, positions: np.ndarray) -> pd.Series:
        """One metadata column at these store rows (:meth:`positions`), in this order."""
        if name not in self._columns:
            self._columns[name] = self.meta[name].to_numpy()
        return pd.Series(self._columns[name][positions], name=name)

    def warm_up(self) -> None:
        """Compile the JIT code a session would otherwise wait for (Datashader's) once,
        when the server starts."""
        from sarise.viewer.app import shade_points

        xy = np.random.default_rng(0).random((60, 2))
        shade_points(xy, pd.Series(["a", "b"] * 30), (0, 1), (0, 1), 16, 16)

    def table(self, image_ids) -> pd.DataFrame:
        """Metadata rows of these images, in this order."""
        return self.meta.iloc[self.row.loc[list(image_ids)].to_numpy()].reset_index(drop=True)


class _Recent:
    """A small least-recently-used cache (one lock: sessions share it)."""

    def __init__(self, size: int):
        from collections import OrderedDict

        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
