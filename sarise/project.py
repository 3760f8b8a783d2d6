"""UMAP projections of the features and the projection tree (``sarise project``, ``explore``).

Projection tree (``<run>/projections/``)
------------------------------------------
One folder per node: ``node.json`` (id, parent, the selection that made it, UMAP
parameters, seed, backend, how it was made, quality, size, creation time) and
``members.parquet`` (``image_id``, ``x``, ``y`` and, when clustered, ``cluster``). The root,
``root``, is the whole archive. A child is a selection of its parent's members (ids, a box
or polygon in the parent's coordinates, a metadata query, cluster labels); its id is a hash
of parent, selection and parameters, so asking for the same child again opens the node
already made. Nodes are written to a temporary folder and renamed into place.

Re-projection
-------------
A child starts from its parent's coordinates and runs a few UMAP epochs at a low learning
rate on the exact kNN graph of its own members (``project.refine_epochs``): the subset
spreads out along its own neighbourhoods in a fraction of a refit's time (see
``benchmarks/bench_project.py``). The refinement is :mod:`sarise.refine` (NumPy, so a cold
``sarise explore select`` does not import umap-learn). ``refit=True`` fits from scratch
instead.

Backends of a fit: umap-learn on CPU, cuML on GPU (``project.backend``); seeds are always
set, and on CPU a seeded projection is identical across reruns.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sarise.config import PRESETS, ProjectConfig
from sarise.errors import SariseError

__all__ = ["PRESETS", "ProjectionTree", "breadcrumb", "fit_umap", "knn_graph", "quality",
           "trustworthiness", "umap_params"]  # fmt: skip

logger = logging.getLogger(__name__)

ROOT = "root"


def umap_params(cfg: ProjectConfig) -> dict[str, Any]:
    """``n_neighbors``, ``min_dist`` and ``metric`` after the preset."""
    p = {"n_neighbors": cfg.n_neighbors, "min_dist": cfg.min_dist, "metric": cfg.metric}
    return {**p, **PRESETS.get(cfg.preset, {})}


def choose_backend(choice: str) -> str:
    """``gpu`` when cuML and a GPU are present (or demanded), else ``cpu``."""
    if choice == "cpu":
        return "cpu"
    try:
        import cuml  # noqa: F401
        import cupy

        ok = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        ok = False
    if choice == "gpu" and not ok:
        raise SariseError("project.backend is 'gpu' but cuML or a GPU is missing: "
                          "pip install 'sarise[gpu]' on a GPU machine")  # fmt: skip
    return "gpu" if ok else "cpu"


def _normalise(x: np.ndarray, metric: str) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if metric == "correlation":
        x = x - x.mean(1, keepdims=True)
    if metric in ("cosine", "correlation"):
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(x, dtype=np.float32)


def knn_graph(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours of every row (itself first) and their distances.

    Cosine and correlation distances are ``1 - similarity`` of normalised rows, searched
    with FAISS's exhaustive inner-product index (BLAS); euclidean with its L2 index.
    """
    import faiss

    z = _normalise(x, metric)
    k = min(k, len(z))
    if metric == "euclidean":
        index = faiss.IndexFlatL2(z.shape[1])
        index.add(z)
        d, i = index.search(z, k)
        d = np.sqrt(np.maximum(d, 0))
    else:
        index = faiss.IndexFlatIP(z.shape[1])
        index.add(z)
        d, i = index.search(z, k)
        d = np.maximum(1.0 - d, 0.0)
    return i.astype(np.int64), d.astype(np.float32)


@functools.cache  # once per process
def cache_umap_kernels() -> None:
    """Let numba keep umap-learn's compiled kernels on disk (``NUMBA_CACHE_DIR``, else
    beside umap's sources), as it does for those umap-learn declares ``cache=True``.

    umap-learn compiles ``smooth_knn_dist``, ``compute_membership_strengths`` and its
    layout loops in every new process: about 10 s of a small re-projection from a cold
    ``sarise explore select``. Cached, a later process loads them instead. The compiled
    code is numba's own, so results do not change.
    """
    import numba
    import umap.layouts
    import umap.umap_

    for module in (umap.umap_, umap.layouts):
        for value in vars(module).values():
            if isinstance(value, numba.core.registry.CPUDispatcher) and not getattr(
                value, "_cache", None).__class__.__name__.endswith("FunctionCache"):  # fmt: skip
                try:
                    value.enable_caching()
                except Exception:  # a kernel numba cannot cache stays as it is
                    pass


def fit_umap(
    x: np.ndarray,
    params: dict[str, Any],
    *,
    seed: int,
    backend: str = "cpu",
    n_epochs: int | None = None,
    learning_rate: float = 1.0,
):
    """A fitted UMAP model (its ``embedding_`` is the projection of ``x``)."""
    if backend == "gpu":
        from cuml.manifold import UMAP as GPU_UMAP

        model = GPU_UMAP(n_components=2, random_state=seed, n_epochs=n_epochs,
                         learning_rate=learning_rate, **params)  # fmt: skip
        model.fit(x)
        model.embedding_ = np.asarray(model.embedding_, np.float32)
        return model
    import warnings

    import umap

    cache_umap_kernels()
    if len(x) < 3:
        raise SariseError(f"{len(x)} images: a projection needs at least 3")
    # the spectral layout needs more points than its eigenvectors
    kwargs: dict[str, Any] = {"init": "random"} if len(x) < 8 else {}
    with warnings.catch_warnings():  # n_jobs=1 with a seed
        warnings.simplefilter("ignore")
        model = umap.UMAP(n_components=2, random_state=seed, n_epochs=n_epochs,
                          learning_rate=learning_rate, transform_seed=seed, **params, **kwargs)  # fmt: skip
        model.fit(x)
    model.embedding_ = np.asarray(model.embedding_, np.float32)
    return model


def trustworthiness(x: np.ndarray, coords: np.ndarray, k: int, metric: str) -> float:
    """Venna and Kaski's trustworthiness of a map (as ``sklearn.manifold.trustworthiness``):
    1 minus the normalised excess rank, in feature space, of each point's ``k`` map
    neighbours that are not among its ``k`` feature-space neighbours. Exact; O(n^2)
    memory, so call it on a sample."""
    n = len(x)
    z = _normalise(x, metric)
    if metric == "euclidean":
        sq = (z**2).sum(1)
        dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0))
    else:
        dist = 1.0 - z @ z.T
    np.fill_diagonal(dist, np.inf)
    c = np.asarray(coords, np.float64)
    mapped = sum((c[:, None, i] - c[None, :, i]) ** 2 for i in range(c.shape[1]))
    np.fill_diagonal(mapped, np.inf)
    near = np.argpartition(mapped, k - 1, axis=1)[:, :k]
    # the feature-space rank of each map neighbour: 1 + how many points are closer
    excess = np.empty((n, k), np.int64)
    for lo in range(0, n, 256):
        d = dist[lo : lo + 256]
        mine = np.take_along_axis(d, near[lo : lo + 256], 1)
        excess[lo : lo + 256] = (d[:, None, :] < mine[:, :, None]).sum(-1) + 1 - k
    t = excess[excess > 0].sum()
    return float(1.0 - t * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))))


def quality(x: np.ndarray, coords: np.ndarray, metric: str, *, sample: int, seed: int, k: int = 10):
    """Trustworthiness and kNN preservation (share of each point's ``k`` feature-space
    neighbours that are among its ``k`` neighbours in the map) on a seeded sample."""
    n = len(x)
    if n <= k + 1:
        return {"trustworthiness": None, "knn_preservation": None, "k": k, "sample": n}
    rows = np.sort(np.random.default_rng(seed).choice(n, min(sample, n), replace=False))
    xs, ys = np.asarray(x[rows], np.float32), np.asarray(coords[rows], np.float32)
    kk = min(k, len(rows) // 2 - 1)
    t = trustworthiness(xs, ys, kk, metric)
    fi, _ = knn_graph(xs, kk + 1, metric)
    ei, _ = knn_graph(ys, kk + 1, "euclidean")
    keep = np.mean([len(set(a[1:]) & set(b[1:])) / kk for a, b in zip(fi, ei, strict=True)])
    return {"trustworthiness": float(t), "knn_preservation": float(keep), "k": kk,
            "sample": len(rows)}  # fmt: skip


def _inside_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points."""
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), bool)
    px, py = poly[:, 0], poly[:, 1]
    j = len(poly) - 1
    for i in range(len(poly)):
        cross = (py[i] > y) != (py[j] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = (px[j] - px[i]) * (y - py[i]) / (py[j] - py[i]) + px[i]
        inside ^= cross & (x < xint)
        j = i
    return inside


class ProjectionTree:
    """The projection tree of a run directory (``store/``, ``features.zarr``, ``projections/``)."""

    def __init__(self, run: str | Path, config: ProjectConfig | None = None):
        self.run = Path(run)
        self.root = self.run / "projections"
        self.cfg = config or ProjectConfig()
        feats = self.run / "features.zarr"
        if not (feats / "zarr.json").exists():
            raise SariseError(f"{self.run}: no features.zarr (run `sarise extract` first)")
        import zarr

        self._group = zarr.open_group(feats, mode="r")

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        """Images in the feature store."""
        return self._group["image_id"].shape[0]

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "node.json").exists())

    def info(self, node: str) -> dict[str, Any]:
        # a node id is a folder name of this tree, never a path: "../x" must not reach out
        if not isinstance(node, str) or not _NODE_ID.fullmatch(node):
            raise SariseError(f"invalid projection node id {node!r} (letters, digits, _ and -)")
        path = self.root / node / "node.json"
        if not path.exists():
            known = ", ".join(self.ids()) or "none yet"
            raise SariseError(f"no projection node {node!r} in {self.root} (nodes: {known})")
        return json.loads(path.read_text())

    def members(self, node: str) -> pd.DataFrame:
        self.info(node)
        return pd.read_parquet(self.root / node / "members.parquet")

    def children(self, node: str) -> list[str]:
        return [n for n in self.ids() if self.info(n).get("parent") == node]

    def metadata(self) -> pd.DataFrame:
        """The image store's metadata, one row per image with features, in store order,
        with the measured symmetry's columns where extract measured it."""
        from sarise.store import ImageStore
        from sarise.symmetry_measure import run_columns

        store = ImageStore.open(self.run / "store", mode="r")
        meta = store.metadata().iloc[: len(self)].reset_index(drop=True)
        measured = run_columns(self._group, meta, store.attrs["preprocessing"])
        return meta if measured is None else meta.join(measured)

    def live(self) -> np.ndarray:
        """Which images of the feature store are live (not retired by a rerun of ingest)."""
        from sarise.store import ImageStore

        if not (self.run / "store" / "images.zarr").exists():  # features without a store
            return np.ones(len(self), bool)
        return ImageStore.open(self.run / "store", mode="r").live(len(self))

    def features(
        self,
        image_ids: np.ndarray | None = None,
        *,
        descriptor: str | None = None,
        weight: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(image_ids, descriptors)`` of the given images, in the given order; by default
        of every live image (retired ones, whose files changed or are gone, left out).
        ``descriptor`` (default ``project.descriptor``): ``cnn``, ``symmetry`` or ``both``
        (:func:`sarise.symmetry_measure.combine`)."""
        from sarise.symmetry_measure import combine

        kind = descriptor or self.cfg.descriptor
        ids, cnn = self._rows("features", image_ids)
        scores = None
        if kind != "cnn" and "symmetry_scores" in self._group:
            scores = self._rows("symmetry_scores", ids)[1]
        return ids, combine(cnn, scores, kind,
                            self.cfg.symmetry_weight if weight is None else weight)  # fmt: skip

    def _rows(self, name: str, image_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        from sarise.store import chunk_sizes  # not sarise.features: that imports torch

        all_ids = self._group["image_id"][:]
        done = self._group["done"][:]
        chunk = int(self._group.attrs["chunk"])
        if done.tolist() != chunk_sizes(len(all_ids), chunk):
            raise SariseError(f"{self.run}/features.zarr is incomplete: run `sarise extract` "
                              "again to finish it")  # fmt: skip
        if image_ids is None:
            live = self.live()
            if live.all():
                return all_ids, self._group[name][:]
            return all_ids[live], self._group[name].oindex[np.flatnonzero(live)]
        pos = pd.Index(all_ids).get_indexer(np.asarray(image_ids))
        if (pos < 0).any():
            raise SariseError(f"{int((pos < 0).sum())} selected ids are not in the feature store")
        order = np.argsort(pos)
        rows = self._group[name].oindex[np.sort(pos)]
        out = np.empty_like(rows)
        out[order] = rows
        return np.asarray(image_ids), out

    def features_fingerprint(self) -> str:
        """What a node was made from: the model, the precision and the live images' ids
        (a grown, re-made or changed archive gives another one)."""
        g = self._group
        ids = np.ascontiguousarray(g["image_id"][:], dtype=np.int64)
        live = self.live()
        if not live.all():
            ids = ids[live]
        h = hashlib.sha256(ids.tobytes())
        h.update(json.dumps([g.attrs.get("model_sha256"), g.attrs.get("precision"),
                             g.attrs.get("version")]).encode())  # fmt: skip
        return h.hexdigest()

    # -- making nodes --------------------------------------------------------------------
    def _params(self) -> dict[str, Any]:
        params = {**umap_params(self.cfg), "seed": self.cfg.seed}
        if self.cfg.descriptor != "cnn":  # (cnn maps made before the key keep their params)
            params.update(descriptor=self.cfg.descriptor, symmetry_weight=self.cfg.symmetry_weight)
        return params

    def project_root(self, *, client=None, show_progress: bool = False) -> str:
        """The whole archive's projection (made once; a rerun with the same parameters
        returns it, other parameters are refused until the tree is removed)."""
        params = self._params()
        if (self.root / ROOT / "node.json").exists():
            old = self.info(ROOT)
            if old["params"] != params:
                raise SariseError(f"{self.root}/root was made with {old['params']}; remove the "
                                  "projections folder to project with other parameters")  # fmt: skip
            if old.get("features") == self.features_fingerprint():
                return ROOT
            # the archive grew, or the features were re-made: the tree describes other data
            logger.warning("%s/root was made from other features (%s images, now %d); "
                           "projecting again", self.root, old.get("n"), len(self))  # fmt: skip
        stale = [n for n in self.ids() if n != ROOT]
        if stale or (self.root / ROOT).exists():
            # a new root (new features or parameters) invalidates every node made below it
            logger.warning("removing %d nodes made from a previous root", len(stale))
            for n in [*stale, ROOT]:
                shutil.rmtree(self.root / n, ignore_errors=True)
        t0 = time.perf_counter()
        ids, x = self.features()
        backend = choose_backend(self.cfg.backend)
        umap_kw = umap_params(self.cfg)
        if len(ids) <= self.cfg.fit_max:
            coords = fit_umap(x, umap_kw, seed=self.cfg.seed, backend=backend).embedding_
            how = {"method": "fit"}
        else:
            coords = self._fit_sample_transform(x, umap_kw, backend, client)
            how = {"method": "fit-sample-transform", "fit_sample": self.cfg.fit_max}
        self._write(ROOT, None, {"all": True}, ids, coords, x, backend, how, t0)
        return ROOT

    def _fit_sample_transform(self, x, umap_kw, backend, client) -> np.ndarray:
        n = len(x)
        rng = np.random.default_rng(self.cfg.seed)
        sample = np.sort(rng.choice(n, self.cfg.fit_max, replace=False))
        model = fit_umap(x[sample], umap_kw, seed=self.cfg.seed, backend=backend)
        coords = np.empty((n, 2), np.float32)
        rest = np.setdiff1d(np.arange(n), sample)
        block = 50_000
        blocks = [rest[i : i + block] for i in range(0, len(rest), block)]

        def run(c):
            [mf] = c.scatter([model], broadcast=True, hash=False)
            futs = [c.submit(_transform, mf, x[b], pure=False) for b in blocks]
            for b, f in zip(blocks, futs, strict=True):
                coords[b] = f.result()

        if client is None:
            from sarise.cluster import get_client

            with get_client() as own:
                run(own)
        else:
            run(client)
        coords[sample] = model.embedding_
        return coords

    def select(self, parent: str, selection: dict[str, Any]) -> np.ndarray:
        """The ids of the parent's members that a selection picks, in the parent's order.

        ``selection`` has one key: ``ids`` (list), ``box`` ([x0, y0, x1, y1]), ``polygon``
        ([[x, y], ...], at least 3 vertices), ``query`` (:mod:`sarise.query` text over the
        metadata) or ``cluster`` (list of labels of the parent's clustering).
        """
        members = self.members(parent)
        if len(selection) != 1:
            raise SariseError(f"a selection has exactly one of ids, box, polygon, query, "
                              f"cluster; got {sorted(selection)}")  # fmt: skip
        ((kind, value),) = selection.items()
        xy = members[["x", "y"]].to_numpy()
        if kind == "ids":
            mask = members["image_id"].isin(np.asarray(value, np.int64)).to_numpy()
        elif kind == "box":
            x0, y0, x1, y1 = map(float, value)
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
            mask = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        elif kind == "polygon":
            poly = np.asarray(value, float)
            if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
                raise SariseError("a polygon needs at least 3 [x, y] vertices")
            mask = _inside_polygon(xy, poly)
        elif kind == "query":
            from sarise.query import filter_table

            meta = self.metadata()
            meta = meta.set_index("image_id").loc[members["image_id"]].reset_index()
            mask = filter_table(meta, str(value))
        elif kind == "cluster":
            if "cluster" not in members:
                raise SariseError(f"node {parent!r} has no clustering (project.cluster_min_size)")
            mask = members["cluster"].isin(list(value)).to_numpy()
        else:
            raise SariseError(f"unknown selection {kind!r}: use ids, box, polygon, query, cluster")
        return members["image_id"].to_numpy()[mask]

    def child(self, parent: str, selection: dict[str, Any], *, refit: bool = False) -> str:
        """Re-project a selection of ``parent``'s members as a child node (or open the one
        already made for the same selection and parameters)."""
        params = self._params()
        how = {"method": "refit" if refit else "refine",
               **({} if refit else {"epochs": self.cfg.refine_epochs,
                                    "learning_rate": self.cfg.refine_learning_rate,
                                    "sgd": "batch"})}  # fmt: skip
        key = json.dumps([parent, selection, params, how], sort_keys=True, default=str)
        node = "n" + hashlib.sha256(key.encode()).hexdigest()[:10]
        if (self.root / node / "node.json").exists():
            return node
        t0 = time.perf_counter()
        ids = self.select(parent, selection)
        if len(ids) < 3:
            raise SariseError(f"the selection holds {len(ids)} images; a projection needs 3")
        _, x = self.features(ids)
        umap_kw = umap_params(self.cfg)
        k = min(umap_kw["n_neighbors"], len(ids) - 1)
        umap_kw = {**umap_kw, "n_neighbors": k}
        backend = choose_backend(self.cfg.backend)
        if refit:
            coords = fit_umap(x, umap_kw, seed=self.cfg.seed, backend=backend).embedding_
        else:
            parent_xy = self.members(parent).set_index("image_id").loc[ids, ["x", "y"]].to_numpy()
            if self.cfg.refine_epochs == 0:
                coords = parent_xy.astype(np.float32)
            else:
                from sarise.refine import fuzzy_graph, refine_layout

                backend = "cpu"  # NumPy: a few epochs cost less than starting a GPU
                graph = fuzzy_graph(*knn_graph(x, k, umap_kw["metric"]))
                coords = refine_layout(parent_xy, graph, epochs=self.cfg.refine_epochs,
                                       learning_rate=self.cfg.refine_learning_rate,
                                       min_dist=umap_kw["min_dist"], seed=self.cfg.seed)  # fmt: skip
        self._write(node, parent, selection, ids, coords, x, backend, how, t0)
        return node

    def remove(self, node: str) -> list[str]:
        """Remove a node and its descendants; returns the removed ids (root too when asked)."""
        self.info(node)
        gone = []
        for child in self.children(node):
            gone += self.remove(child)
        shutil.rmtree(self.root / node)
        return [*gone, node]

    def _write(self, node, parent, selection, ids, coords, x, backend, how, t0) -> None:
        seconds = time.perf_counter() - t0
        coords = np.asarray(coords, np.float32)
        if not np.isfinite(coords).all():
            raise SariseError("UMAP returned non-finite coordinates")
        members = pd.DataFrame({"image_id": np.asarray(ids, np.int64), "x": coords[:, 0],
                                "y": coords[:, 1]})  # fmt: skip
        if self.cfg.cluster_min_size and len(ids) > self.cfg.cluster_min_size:
            from sklearn.cluster import HDBSCAN

            members["cluster"] = HDBSCAN(min_cluster_size=self.cfg.cluster_min_size, copy=True).fit_predict(coords).astype(np.int32)  # fmt: skip
        q = quality(x, coords, umap_params(self.cfg)["metric"], sample=self.cfg.quality_sample,
                    seed=self.cfg.seed)  # fmt: skip
        info = {"id": node, "parent": parent, "selection": selection, "params": self._params(),
                "backend": backend, "how": how, "n": len(ids), "quality": q,
                "seconds": round(seconds, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "model_sha256": self._group.attrs.get("model_sha256"),
                "features": self.features_fingerprint(),
                "clusters": int(members["cluster"].max() + 1) if "cluster" in members else None}  # fmt: skip
        from sarise._lock import exclusive

        with exclusive(self.root, "a projection node"):
            tmp = self.root / f".{node}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            members.to_parquet(tmp / "members.parquet", index=False)
            (tmp / "node.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
            shutil.rmtree(self.root / node, ignore_errors=True)  # a half-written node (killed)
            os.replace(tmp, self.root / node)
        logger.info("projection %s: %d images in %.2f s, trustworthiness %s", node, len(ids),
                    seconds, q["trustworthiness"])  # fmt: skip


def _transform(model, x: np.ndarray) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.transform(x), np.float32)


_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def breadcrumb(tree: ProjectionTree, node: str) -> list[str]:
    """The ids from the root down to ``node``."""
    path = [node]
    while (parent := tree.info(path[-1])["parent"]) is not None:
        path.append(parent)
    return path[::-1]
