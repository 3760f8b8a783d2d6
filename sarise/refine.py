"""UMAP's layout refinement in NumPy: what a re-projection (``explore select``) runs.

A child node starts from its parent's coordinates and runs a few epochs of UMAP's
stochastic gradient descent on the fuzzy graph of its own members' exact kNN (see
:mod:`sarise.project`). This module does that without importing umap-learn (whose import
alone takes 3-4 s on a small CPU, longer than the refinement of thousands of points):

1. :func:`fuzzy_graph`: UMAP's fuzzy simplicial set of a kNN graph. Per point, ``rho`` is
   the distance to the nearest other point and ``sigma`` is found by bisection so that
   ``sum_j exp(-(d_ij - rho_i) / sigma_i) = log2(k)``; the directed memberships are joined
   by the fuzzy union ``w_ij + w_ji - w_ij w_ji``.
2. :func:`curve_params`: ``a`` and ``b`` of the embedding kernel ``1 / (1 + a d^(2b))``,
   least-squares fitted to UMAP's target curve for ``min_dist`` (spread 1), as umap-learn
   does.
3. :func:`refine_layout`: UMAP's epochs (an edge is sampled every ``max w / w`` epochs,
   five negative samples per positive one, gradients clipped at 4, a learning rate that
   falls linearly to 0), starting from the given coordinates scaled to [0, 10] as
   umap-learn scales an initial layout. Each epoch's updates are computed from the
   coordinates at the start of the epoch and summed (a batch step, as GPU UMAP does),
   where umap-learn applies them one edge after another; negative samples come from a
   seeded NumPy generator, so a refinement is identical on every rerun.

The same objective, not umap-learn's exact numbers: ``tests/test_refine.py`` compares the
two on the trustworthiness of the refined layouts.
"""

from __future__ import annotations

import numpy as np

__all__ = ["curve_params", "fuzzy_graph", "refine_layout"]

_TOLERANCE = 1e-5  # of the bisection on log2(k)
_MIN_SCALE = 1e-3  # sigma is at least this share of the mean distance


def fuzzy_graph(indices: np.ndarray, distances: np.ndarray):
    """UMAP's symmetric fuzzy graph of a kNN graph (each row's first neighbour is itself).

    Returns ``head``, ``tail`` and ``weight`` of every edge, both directions listed,
    sorted by ``(head, tail)``.
    """
    indices = np.asarray(indices, np.int64)
    d = np.asarray(distances, np.float64)
    n, k = d.shape
    positive = np.where(d > 0, d, np.inf)
    rho = positive.min(1)
    rho[~np.isfinite(rho)] = 0.0  # all neighbours at distance 0
    target = np.log2(k)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    done = np.zeros(n, bool)
    for _ in range(64):
        gap = d[:, 1:] - rho[:, None]
        psum = np.where(gap > 0, np.exp(-gap / mid[:, None]), 1.0).sum(1)
        done |= np.abs(psum - target) < _TOLERANCE
        high = (psum > target) & ~done
        low = (psum <= target) & ~done
        hi[high] = mid[high]
        lo[low] = mid[low]
        mid = np.where(high | (low & np.isfinite(hi)), (lo + hi) / 2, np.where(low, mid * 2, mid))
        if done.all():
            break
    floor = _MIN_SCALE * np.where(rho > 0, d.mean(1), d.mean())
    sigma = np.maximum(mid, floor)
    gap = d - rho[:, None]
    w = np.where(gap > 0, np.exp(-gap / sigma[:, None]), 1.0)
    rows = np.repeat(np.arange(n), k)
    cols, w = indices.ravel(), w.ravel()
    keep = (cols != rows) & (cols >= 0)
    rows, cols, w = rows[keep], cols[keep], w[keep]
    # fuzzy union of the directed graph and its transpose
    keys = np.concatenate([rows * n + cols, cols * n + rows])
    uniq, at = np.unique(keys, return_inverse=True)
    forward = np.bincount(at[: len(w)], weights=w, minlength=len(uniq))
    backward = np.bincount(at[len(w) :], weights=w, minlength=len(uniq))
    weight = forward + backward - forward * backward
    return uniq // n, uniq % n, weight


def curve_params(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """``a`` and ``b`` of ``1 / (1 + a x^(2b))`` fitted (Gauss-Newton, least squares on
    300 points of [0, 3 spread]) to 1 below ``min_dist`` and ``exp(-(x - min_dist) /
    spread)`` above: UMAP's target membership in the embedding."""
    x = np.linspace(0, spread * 3, 300)
    y = np.where(x < min_dist, 1.0, np.exp(-(x - min_dist) / spread))
    xs, ys = x[1:], y[1:]  # x = 0 gives 1 for every a, b
    p = np.array([1.5, 0.9])
    for _ in range(200):
        a, b = p
        t = a * xs ** (2 * b)
        f = 1 / (1 + t)
        r = f - ys
        jac = np.stack([-(xs ** (2 * b)) * f**2, -t * 2 * np.log(xs) * f**2], 1)
        step, *_ = np.linalg.lstsq(jac, -r, rcond=None)
        trial = p + step
        while trial[0] <= 0 or trial[1] <= 0:  # stay in the valid half-plane
            step /= 2
            trial = p + step
        p = trial
        if np.abs(step).max() < 1e-10:
            break
    return float(p[0]), float(p[1])


def _scaled(init: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The initial layout scaled to [0, 10] per axis, coincident points pulled apart by a
    thousandth of the mean nearest-neighbour distance (as umap-learn starts)."""
    y = np.asarray(init, np.float64)
    if len(np.unique(y, axis=0)) < len(y):
        from sarise.project import knn_graph

        nn = knn_graph(y.astype(np.float32), 2, "euclidean")[1][:, 1]
        y = y + rng.normal(scale=0.001 * max(float(nn.mean()), 1e-12), size=y.shape)
    lo, span = y.min(0), np.ptp(y, 0)
    return 10.0 * (y - lo) / np.where(span > 0, span, 1.0)


def refine_layout(
    init: np.ndarray,
    graph: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    epochs: int,
    learning_rate: float,
    min_dist: float,
    seed: int,
    negative_sample_rate: int = 5,
) -> np.ndarray:
    """``epochs`` of UMAP's gradient descent on ``graph`` (:func:`fuzzy_graph`) from
    ``init``; returns float32 coordinates, one row per point of ``init``."""
    rng = np.random.default_rng(seed)
    y = _scaled(init, rng)
    n = len(y)
    head, tail, weight = (np.asarray(g) for g in graph)
    # umap-learn drops edges too weak to be sampled once in the run
    keep = weight >= weight.max() / (epochs if epochs > 10 else 200)
    head, tail, weight = head[keep], tail[keep], weight[keep]
    a, b = curve_params(min_dist)
    every = weight.max() / weight  # epochs between two samples of an edge
    every_negative = every / negative_sample_rate
    next_sample, next_negative = every.copy(), every_negative.copy()
    px, py = y[:, 0].copy(), y[:, 1].copy()  # one array per axis: faster gathers
    for epoch in range(epochs):
        alpha = learning_rate * (1.0 - epoch / epochs)
        on = np.flatnonzero(next_sample <= epoch)
        if len(on) == 0:
            continue
        j, k = head[on], tail[on]
        dx, dy = px[j] - px[k], py[j] - py[k]
        d2 = dx * dx + dy * dy
        with np.errstate(divide="ignore", invalid="ignore"):
            pb = d2**b
            coef = np.where(d2 > 0, -2 * a * b * (pb / d2) / (a * pb + 1), 0.0)
        gx, gy = np.clip(coef * dx, -4, 4) * alpha, np.clip(coef * dy, -4, 4) * alpha
        sx = np.bincount(j, gx, n) - np.bincount(k, gx, n)
        sy = np.bincount(j, gy, n) - np.bincount(k, gy, n)
        next_sample[on] += every[on]
        count = np.floor((epoch - next_negative[on]) / every_negative[on]).astype(np.int64)
        count = np.maximum(count, 0)
        next_negative[on] += count * every_negative[on]
        src = np.repeat(j, count)
        other = rng.integers(0, n, len(src))
        dx, dy = px[src] - px[other], py[src] - py[other]
        d2 = dx * dx + dy * dy
        coef = 2 * b / ((0.001 + d2) * (a * d2**b + 1))
        apart, same = d2 > 0, src == other
        gx = np.where(apart, np.clip(coef * dx, -4, 4), np.where(same, 0.0, 4.0)) * alpha
        gy = np.where(apart, np.clip(coef * dy, -4, 4), np.where(same, 0.0, 4.0)) * alpha
        px = px + sx + np.bincount(src, gx, n)
        py = py + sy + np.bincount(src, gy, n)
    y = np.stack([px, py], 1)
    return y.astype(np.float32)
