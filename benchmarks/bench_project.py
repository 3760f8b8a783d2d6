"""Projection and search at archive scale, on generated features.

    python benchmarks/bench_project.py [--umap-sizes 25000 100000] [--index-sizes 100000 1000000]
                                       [--skip-umap] [--skip-index]

Features are generated with the structure of real embeddings: clusters in a 16-dimensional
latent space (40 per 25k images, more for larger sets), mapped to ``dim`` dimensions by a
random linear map and a ReLU (as pooled CNN features are non-negative), plus noise.

Tables:
1. UMAP fit time (umap-learn on CPU, or cuML when present) and trustworthiness (k = 10,
   2,000-image sample) at each ``--umap-sizes`` (512 dimensions).
2. Re-projection of a 5,000-image selection (1,024 dimensions) of a 25,000-image archive
   whose root projection is fitted first: a from-scratch refit (what the paper's app does)
   vs sarise's child node (exact kNN of the selection + a short UMAP refinement from the
   parent's coordinates, ``project.refine_epochs`` at ``refine_learning_rate``,
   :mod:`sarise.refine`), and the same refinement run by umap-learn, after numba's
   warm-up; trustworthiness on all 5,000 (goal: >= 10x faster, within 0.005).
3. kNN index (512 dimensions): build time, single-query p50 latency and recall@10 against
   exact search at each ``--index-sizes`` (goal at 1M: build <= 60 s, p50 <= 1 ms,
   recall@10 >= 0.98).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from sarise.config import ProjectConfig, SearchConfig
from sarise.project import choose_backend, fit_umap, knn_graph, umap_params
from sarise.refine import fuzzy_graph, refine_layout
from sarise.search import SearchIndex


def features(n: int, dim: int, *, seed: int = 0, per_cluster: int = 625):
    """``n`` clustered, non-negative feature vectors and their cluster labels."""
    rng = np.random.default_rng(seed)
    k = max(8, n // per_cluster)
    centers = rng.normal(0.0, 3.0, (k, 16)).astype(np.float32)
    labels = rng.integers(0, k, n)
    w = (rng.normal(0.0, 1.0, (16, dim)) / 4.0).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for i in range(0, n, 100_000):
        z = centers[labels[i : i + 100_000]] + rng.normal(0, 1, (len(labels[i : i + 100_000]), 16)).astype(np.float32)  # fmt: skip
        out[i : i + 100_000] = np.maximum(z @ w, 0) + 0.1 * rng.standard_normal((len(z), dim), dtype=np.float32)  # fmt: skip
    return out, labels


def trust(x, y, metric, sample=None, seed=0):
    from sklearn.manifold import trustworthiness

    if sample and len(x) > sample:
        rows = np.random.default_rng(seed).choice(len(x), sample, replace=False)
        x, y = x[rows], y[rows]
    return trustworthiness(x, y, n_neighbors=10, metric=metric)


def umap_table(sizes, cfg):
    params = umap_params(cfg)
    backend = choose_backend("auto")
    fit_umap(features(2000, 512)[0], params, seed=0, backend=backend)  # numba warm-up
    rows = []
    for n in sizes:
        x, _ = features(n, 512)
        t0 = time.perf_counter()
        y = fit_umap(x, params, seed=0, backend=backend).embedding_
        rows.append((n, time.perf_counter() - t0, trust(x, y, params["metric"], 2000)))
        print(f"  umap {n}: {rows[-1][1]:.1f} s", flush=True)
    print(f"\n1. UMAP fit ({backend}), 512 dimensions, {params}")
    print(f"{'images':>10}{'seconds':>10}{'T@10':>8}")
    for n, s, t in rows:
        print(f"{n:>10}{s:>10.1f}{t:>8.4f}")


def reprojection_table(cfg):
    params = umap_params(cfg)
    x, labels = features(25_000, 1024, seed=1)
    t0 = time.perf_counter()
    root = fit_umap(x, params, seed=0).embedding_
    t_root = time.perf_counter() - t0
    rng = np.random.default_rng(2)
    picked = rng.choice(labels.max() + 1, 12, replace=False)
    sel = np.flatnonzero(np.isin(labels, picked))[:5000]
    s = x[sel]
    fit_umap(s[:500], params, seed=0, n_epochs=10)  # numba's warm-up
    umap_refine(s[:500], root[sel][:500], params, cfg, epochs=2)
    refits, refines, umap_refines = [], [], []
    for _ in range(3):
        t0 = time.perf_counter()
        y_refit = fit_umap(s, params, seed=0).embedding_
        refits.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        graph = fuzzy_graph(*knn_graph(s, params["n_neighbors"], params["metric"]))
        y_child = refine_layout(root[sel], graph, epochs=cfg.refine_epochs,
                                learning_rate=cfg.refine_learning_rate,
                                min_dist=params["min_dist"], seed=0)  # fmt: skip
        refines.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        y_umap = umap_refine(s, root[sel], params, cfg, epochs=cfg.refine_epochs)
        umap_refines.append(time.perf_counter() - t0)
    t_ref, t_child = statistics.median(refits), statistics.median(refines)
    t_umap = statistics.median(umap_refines)
    m = params["metric"]
    tr_ref, tr_child, tr_parent = trust(s, y_refit, m), trust(s, y_child, m), trust(s, root[sel], m)
    tr_umap = trust(s, y_umap, m)
    print(f"\n2. Re-projection of a {len(sel)} x 1024 selection of a 25,000-image archive "
          f"(root fit {t_root:.1f} s); median of 3")  # fmt: skip
    print(f"{'method':<48}{'seconds':>9}{'speed-up':>10}{'T@10':>8}{'dT':>9}")
    rows = [("parent coordinates as they are", 0.0, tr_parent),
            ("UMAP refit from scratch (the paper app)", t_ref, tr_ref),
            (f"sarise child: kNN + {cfg.refine_epochs} epochs from parent", t_child, tr_child),
            ("the same with umap-learn's epochs", t_umap, tr_umap)]  # fmt: skip
    for name, t, tr in rows:
        speed = f"{t_ref / t:.1f}" if t else ""
        print(f"{name:<48}{t:>9.3f}{speed:>10}{tr:>8.4f}{tr - tr_ref:>+9.4f}")


def umap_refine(x, init, params, cfg, *, epochs):
    """umap-learn's own refinement (its sequential epochs), for comparison."""
    import warnings

    import umap

    knn = knn_graph(x, params["n_neighbors"], params["metric"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = umap.UMAP(n_components=2, random_state=0, n_epochs=epochs, init=np.asarray(init, np.float64),
                          learning_rate=cfg.refine_learning_rate, precomputed_knn=(*knn, None),
                          **params).fit(x)  # fmt: skip
    return model.embedding_


def index_table(sizes, cfg):
    rows = []
    for n in sizes:
        x, _ = features(n, 512, seed=3)
        ids = np.arange(n, dtype=np.int64)
        t0 = time.perf_counter()
        index = SearchIndex.build(x, ids, cfg)
        build = time.perf_counter() - t0
        rng = np.random.default_rng(4)
        q = x[rng.choice(n, 300, replace=False)] + 0.05 * rng.standard_normal((300, 512), dtype=np.float32)  # fmt: skip
        lat = []
        got = []
        for row in q:
            t0 = time.perf_counter()
            found, _ = index.search(row[None], 10)
            lat.append(time.perf_counter() - t0)
            got.append(found[0])
        exact = SearchIndex.build(x, ids, SearchConfig(exact_max=n + 1))
        truth, _ = exact.search(q, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)])
        rows.append((n, index.info["kind"], index.info.get("nlist", "-"), index.info.get("nprobe", "-"),
                     build, 1000 * statistics.median(lat), recall))  # fmt: skip
        print(f"  index {n}: {build:.1f} s", flush=True)
        del x, index, exact
    print("\n3. kNN index, 512 dimensions, cosine; 300 held-out noisy queries, one at a time")
    print(
        f"{'images':>10}{'kind':>7}{'nlist':>7}{'nprobe':>8}{'build s':>9}{'p50 ms':>8}{'recall@10':>11}"
    )
    for n, kind, nlist, nprobe, build, p50, recall in rows:
        print(f"{n:>10}{kind:>7}{nlist:>7}{nprobe:>8}{build:>9.1f}{p50:>8.2f}{recall:>11.3f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--umap-sizes", type=int, nargs="*", default=[25_000, 100_000])
    ap.add_argument("--index-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--skip-reprojection", action="store_true")
    ap.add_argument("--skip-index", action="store_true")
    args = ap.parse_args(argv)
    cfg = ProjectConfig()
    if not args.skip_reprojection:
        reprojection_table(cfg)
    if not args.skip_index:
        index_table(args.index_sizes, SearchConfig())
    if not args.skip_umap:
        umap_table(args.umap_sizes, cfg)


if __name__ == "__main__":
    main()
