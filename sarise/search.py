"""Similarity search over the features: a persisted kNN index and queries by example.

Index (``<run>/index/``): ``index.faiss`` (FAISS), ``ids.npy`` (the image id of each row)
and ``index.json`` (kind, metric, sizes, ``nprobe`` and the recall it reached). Features are
L2-normalised, so inner product is cosine similarity and the reported distance is
``1 - cosine``.

- up to ``search.exact_max`` images: ``IndexFlatIP``, exhaustive and exact;
- above: ``IndexIVFFlat`` with about ``sqrt(n)`` lists, trained on a seeded sample; at build
  time ``nprobe`` is raised until recall@10 against exact search, on held-out queries,
  reaches ``search.target_recall``, and the reached recall is recorded.

Queries: image ids, new files (read, preprocessed and featurised with the same code as
ingest and extract), or several of either at once (their mean direction); results can be
restricted to the images a metadata query (:mod:`sarise.query`) selects.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sarise.config import SearchConfig
from sarise.errors import SariseError

__all__ = ["SearchIndex", "build_index", "featurise_files", "search"]

logger = logging.getLogger(__name__)

_NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def _unit(x: np.ndarray) -> np.ndarray:
    from sarise.project import _normalise

    return _normalise(x, "cosine")


class SearchIndex:
    """A FAISS index over unit features with the image id of each row."""

    def __init__(self, index, ids: np.ndarray, info: dict[str, Any]):
        self.index, self.ids, self.info = index, np.asarray(ids, np.int64), info

    @classmethod
    def build(cls, features: np.ndarray, ids: np.ndarray, config: SearchConfig | None = None,
              *, seed: int = 0) -> SearchIndex:  # fmt: skip
        """Index ``features[n, d]`` (exact up to ``exact_max`` rows, IVF above)."""
        import faiss

        cfg = config or SearchConfig()
        t0 = time.perf_counter()
        x = _unit(features)
        n, d = x.shape
        if n <= cfg.exact_max:
            index = faiss.IndexFlatIP(d)
            index.add(x)
            info = {"kind": "exact", "recall_at_10": 1.0}
        else:
            nlist = cfg.nlist or int(max(16, round(np.sqrt(n))))
            rng = np.random.default_rng(seed)
            train = x[np.sort(rng.choice(n, min(n, 40 * nlist), replace=False))]
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            if _gpus(faiss):  # FAISS-GPU (the gpu extra): train and fill there, save from CPU
                gpu = faiss.index_cpu_to_all_gpus(index)
                gpu.train(train)
                gpu.add(x)
                index = faiss.index_gpu_to_cpu(gpu)
            else:
                index.train(train)
                index.add(x)
            nprobe, recall = _tune(index, x, cfg.target_recall, rng)
            index.nprobe = nprobe
            info = {"kind": "ivf", "nlist": nlist, "nprobe": nprobe, "recall_at_10": recall}
        info.update({"n": n, "dim": d, "metric": "cosine", "seconds": round(time.perf_counter() - t0, 3)})  # fmt: skip
        logger.info("search index: %s", info)
        return cls(index, ids, info)

    def save(self, folder: str | Path) -> None:
        import faiss

        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".partial")
        tmp.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(tmp / "index.faiss"))
        np.save(tmp / "ids.npy", self.ids)
        (tmp / "index.json").write_text(json.dumps(self.info, indent=2) + "\n")
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        os.replace(tmp, folder)

    @classmethod
    def load(cls, folder: str | Path) -> SearchIndex:
        import faiss

        folder = Path(folder)
        if not (folder / "index.json").exists():
            raise SariseError(f"{folder}: no search index (run `sarise index` first)")
        info = json.loads((folder / "index.json").read_text())
        index = faiss.read_index(str(folder / "index.faiss"))
        if info["kind"] == "ivf":
            index.nprobe = info["nprobe"]
        return cls(index, np.load(folder / "ids.npy"), info)

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None):
        """``(ids[q, k], distances[q, k])`` of the nearest images (``-1``/inf past the end);
        ``allowed``: a boolean mask over the index rows the results may come from."""
        import faiss

        q = _unit(np.atleast_2d(queries))
        params = None
        if allowed is not None:
            rows = np.flatnonzero(allowed).astype(np.int64)
            sel = faiss.IDSelectorBatch(rows)
            if self.info["kind"] == "ivf":
                params = faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nprobe)
            else:
                params = faiss.SearchParameters(sel=sel)
        # never more rows than the index holds: a huge k costs no memory
        sims, rows = self.index.search(q, max(1, min(int(k), self.index.ntotal)), params=params)
        ids = np.where(rows >= 0, self.ids[np.maximum(rows, 0)], -1)
        return ids, np.where(rows >= 0, 1.0 - sims, np.inf).astype(np.float32)


def _gpus(faiss) -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0


def _tune(index, x: np.ndarray, target: float, rng, n_queries: int = 256) -> tuple[int, float]:
    """The smallest ``nprobe`` whose recall@10 against exact search reaches ``target``."""
    import faiss

    q = x[rng.choice(len(x), min(n_queries, len(x)), replace=False)]
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    _, truth = flat.search(q, 10)
    del flat
    recall = 0.0
    for nprobe in _NPROBES:
        if nprobe > index.nlist:
            break
        index.nprobe = nprobe
        _, got = index.search(q, 10)
        recall = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)])
        )
        if recall >= target:
            return nprobe, recall
    return min(index.nlist, _NPROBES[-1]), recall


def _run_paths(run: Path) -> tuple[Path, Path]:
    return run / "features.zarr", run / "index"


def build_index(run: str | Path, *, config: SearchConfig | None = None) -> dict[str, Any]:
    """Build and save ``<run>/index`` from ``<run>/features.zarr``; returns its description."""
    from sarise.project import ProjectionTree

    run = Path(run)
    cfg = config or SearchConfig()
    tree = ProjectionTree(run)
    ids, feats = tree.features(descriptor=cfg.descriptor, weight=cfg.symmetry_weight)
    index = SearchIndex.build(feats, ids, cfg)
    index.info.update(descriptor=cfg.descriptor, symmetry_weight=cfg.symmetry_weight)
    index.info["model_sha256"] = tree._group.attrs.get("model_sha256")
    index.info["features"] = tree.features_fingerprint()
    index.save(_run_paths(run)[1])
    return index.info


def featurise_files(run: str | Path, files: list[str | Path], descriptor: str = "cnn",
                    weight: float = 1.0) -> np.ndarray:  # fmt: skip
    """Descriptors of new files, read and preprocessed as the run's store was and run
    through the run's model (and measured, for ``symmetry``/``both``): one row per file,
    the mean over a file's tiles."""
    import zarr

    from sarise.config import ExtractConfig, IngestConfig
    from sarise.features import get_featurizer
    from sarise.ingest import prepare_file
    from sarise.io import ReaderError
    from sarise.symmetry_measure import combine, score_rows

    run = Path(run)
    attrs = dict(zarr.open_group(run / "features.zarr", mode="r").attrs)
    prep = attrs["preprocessing"]
    store_prep = prep["store"]
    icfg = IngestConfig(channels=tuple(store_prep["channels"]), flatten=store_prep["flatten"],
                        clip=tuple(store_prep["clip"]), size=store_prep["size"],
                        fit=store_prep["fit"])  # fmt: skip
    featurizer = get_featurizer(ExtractConfig(model=attrs.get("model"), channel=prep["channel"],
                                              invariant=prep["invariant"],
                                              precision=attrs.get("precision", "auto")))  # fmt: skip
    if featurizer.info["sha256"] != attrs["model_sha256"]:
        raise SariseError(f"{run}: the model at {attrs.get('model') or 'the shipped path'} is "
                          "not the one the features were made with")  # fmt: skip
    rows = []
    for f in files:
        got = prepare_file(Path(f), icfg, frozenset(), None)
        if got.status != "read":
            raise ReaderError(f, got.reason or got.status)
        images = got.images[:, prep["channel"]]
        feats, _ = featurizer(images)
        scores = None if descriptor == "cnn" else score_rows(images)
        rows.append(_unit(combine(feats, scores, descriptor, weight)).mean(0))
    return np.stack(rows)


def search(
    run: str | Path,
    *,
    ids: list[int] | None = None,
    files: list[str | Path] | None = None,
    k: int = 10,
    where: str | None = None,
) -> pd.DataFrame:
    """The ``k`` images most like the given ones, with distances and metadata.

    Several ids and files together make one query: the mean of their unit features.
    ``where`` restricts the results to the images a metadata query selects.

    Returns
    -------
    pandas.DataFrame
        ``rank``, ``image_id``, ``distance`` (1 - cosine) and the metadata columns.
    """
    from sarise.config import MAX_K
    from sarise.project import ProjectionTree

    run = Path(run)
    if not ids and not files:
        raise SariseError("give image ids or files to search by")
    if not 1 <= k <= MAX_K:
        raise SariseError(f"k must be between 1 and {MAX_K}, got {k}")
    index = SearchIndex.load(_run_paths(run)[1])
    tree = ProjectionTree(run)
    kind = index.info.get("descriptor", "cnn")  # queries are made like the index
    weight = float(index.info.get("symmetry_weight", 1.0))
    made_from = index.info.get("features")
    if made_from is not None and made_from != tree.features_fingerprint():
        raise SariseError(f"{_run_paths(run)[1]} was built from other features (the archive "
                          f"or its model changed since): run `sarise index {run}` again")  # fmt: skip
    parts = []
    if ids:
        known = pd.Index(index.ids)
        missing = [i for i in ids if i not in known]
        if missing:
            raise SariseError(f"image ids not in the index: {missing[:5]}")
        parts.append(_unit(tree.features(np.asarray(ids, np.int64), descriptor=kind,
                                         weight=weight)[1]))  # fmt: skip
    if files:
        parts.append(featurise_files(run, files, kind, weight))
    query = _unit(np.concatenate(parts).mean(0, keepdims=True))
    meta = tree.metadata().set_index("image_id")
    allowed = None
    if where:
        from sarise.query import filter_table

        mask = filter_table(meta.loc[index.ids].reset_index(), where)
        allowed = mask
    found, dist = index.search(query, k, allowed=allowed)
    keep = found[0] >= 0
    out = pd.DataFrame({"rank": np.arange(keep.sum()), "image_id": found[0][keep],
                        "distance": dist[0][keep]})  # fmt: skip
    cols = [c for c in meta.columns if c != "raw"]
    return out.join(meta[cols], on="image_id")
