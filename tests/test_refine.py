"""The NumPy re-projection (:mod:`sarise.refine`) and trustworthiness, against umap-learn's
and scikit-learn's own."""

import numpy as np
import pytest

from sarise.project import knn_graph, trustworthiness
from sarise.refine import curve_params, fuzzy_graph, refine_layout


def blobs(n=1200, dim=24, centers=8, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 4, (centers, dim))
    labels = rng.integers(0, centers, n)
    return (c[labels] + rng.normal(0, 1, (n, dim))).astype(np.float32), labels


@pytest.mark.parametrize("min_dist", [0.0, 0.1, 0.3, 0.8])
def test_curve_params_match_umap_learn(min_dist):
    from umap.umap_ import find_ab_params

    np.testing.assert_allclose(curve_params(min_dist), find_ab_params(1.0, min_dist), rtol=1e-4)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_fuzzy_graph_matches_umap_learn(metric):
    from umap.umap_ import fuzzy_simplicial_set

    x, _ = blobs(600)
    x[7] = x[8]  # a duplicate: a neighbour at distance 0
    i, d = knn_graph(x, 15, metric)
    head, tail, w = fuzzy_graph(i, d)
    ref = fuzzy_simplicial_set(x, 15, 0, metric, knn_indices=i, knn_dists=d)[0].tocoo()
    ours = np.zeros((len(x), len(x)))
    ours[head, tail] = w
    theirs = np.zeros_like(ours)
    theirs[ref.row, ref.col] = ref.data
    assert (ours > 0).sum() == (theirs > 0).sum() > 15 * len(x)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_array_equal(ours, ours.T)


@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean"])
def test_trustworthiness_matches_scikit_learn(metric):
    from sklearn.manifold import trustworthiness as reference

    x, _ = blobs(400)
    rng = np.random.default_rng(1)
    for y in (x[:, :2] + rng.normal(0, 2, (400, 2)), rng.normal(size=(400, 2))):
        ours = trustworthiness(x, y, 10, metric)
        assert ours == pytest.approx(reference(x, y, n_neighbors=10, metric=metric), abs=1e-5)


def test_refinement_spreads_a_selection_as_umap_learn_does_and_reruns_bit_for_bit():
    import umap

    x, labels = blobs(1500)
    mixed = np.random.default_rng(2).normal(size=(len(x), 2))  # a start that keeps no structure
    graph = fuzzy_graph(*knn_graph(x, 15, "cosine"))
    kw = {"epochs": 60, "learning_rate": 1.0, "min_dist": 0.1}
    y = refine_layout(mixed, graph, seed=4, **kw)
    assert y.dtype == np.float32 and y.shape == (len(x), 2) and np.isfinite(y).all()
    np.testing.assert_array_equal(y, refine_layout(mixed, graph, seed=4, **kw))
    assert not np.array_equal(y, refine_layout(mixed, graph, seed=5, **kw))
    ref = umap.UMAP(n_epochs=60, init=mixed, learning_rate=1.0, min_dist=0.1, random_state=0,
                    metric="cosine", precomputed_knn=(*knn_graph(x, 15, "cosine"), None)).fit(x)  # fmt: skip
    t0 = trustworthiness(x, mixed, 10, "cosine")
    ours, theirs = (
        trustworthiness(x, y, 10, "cosine"),
        trustworthiness(x, ref.embedding_, 10, "cosine"),
    )
    assert t0 < 0.6 and ours > 0.85 and ours > theirs - 0.03, (t0, ours, theirs)
    # each blob comes together: a point's nearest map neighbour shares its blob
    _, near = knn_graph(y, 2, "euclidean")[0].T
    assert np.mean(labels[near] == labels) > 0.95


def test_refinement_of_coincident_or_degenerate_starts_stays_finite():
    x, _ = blobs(50)
    graph = fuzzy_graph(*knn_graph(x, 10, "cosine"))
    for start in (np.zeros((50, 2)), np.c_[np.arange(50.0), np.zeros(50)]):
        y = refine_layout(start, graph, epochs=15, learning_rate=0.05, min_dist=0.1, seed=0)
        assert np.isfinite(y).all() and len(np.unique(y, axis=0)) == 50
