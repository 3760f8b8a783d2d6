"""The plane group from the model, from the training-free measurement, and from both
combined (:func:`sarise.symmetry_measure.combined_log_probabilities`), side by side.

    python benchmarks/bench_combined.py [--model M] [--val-per-group 32] [--test-per-group 64]
                                        [--fit]

Sets (128 px, as the shipped model's recipes generate them; the expected groups come from
the generator, which the measurement never reads):

- each recipe's test split (``config/models/wallpaper-resnet18-w32.yaml``, clean motifs;
  ``...-v2.yaml``, realistic scans), plain and with Gaussian noise of sigma 0.1 and 0.3 on
  [0, 1] (the noise of ``sarise evaluate``);
- the simulated crystal projections of ``sarise evaluate`` (graphene, hBN, MoS2, SrTiO3
  [001] and [110], rutile [001]).

``--fit`` first fits the three weights by maximum likelihood on both recipes' validation
splits (never the test splits) and scores with them; the defaults are
``COMBINED_WEIGHTS``. Prints group / lattice-family accuracy per set and method.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sarise.config import load_config
from sarise.evaluate import FAMILIES, _generated, predict
from sarise.models import load_model
from sarise.symmetry import GROUPS
from sarise.symmetry.crystals import simulated_set
from sarise.symmetry_measure import (
    COMBINED_WEIGHTS,
    combined_log_probabilities,
    measured_classes,
    score_rows,
)

RECIPES = {"clean": "config/models/wallpaper-resnet18-w32.yaml",
           "realistic": "config/models/wallpaper-resnet18-w32-v2.yaml"}  # fmt: skip


def measured_set(model, images, labels):
    logits, _ = predict(model, images, 64)
    return logits.astype(np.float64), score_rows(images), labels


def fit_weights(sets) -> tuple[float, float, float]:
    from scipy.optimize import minimize

    logits = np.concatenate([s[0] for s in sets])
    scores = np.concatenate([s[1] for s in sets])
    labels = np.concatenate([s[2] for s in sets])

    def nll(w):
        logp = combined_log_probabilities(logits, scores, GROUPS, (w[0], w[1], abs(w[2])))
        return -logp[np.arange(len(labels)), labels].mean()

    w = minimize(nll, np.array(COMBINED_WEIGHTS), method="Nelder-Mead").x
    return float(w[0]), float(w[1]), abs(float(w[2]))


def accuracies(pred, labels) -> str:
    fam = np.array([FAMILIES[g] for g in GROUPS] + [""])
    return f"{np.mean(pred == labels):.3f} / {np.mean(fam[pred] == fam[labels]):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a .safetensors model (default: shipped)")
    ap.add_argument("--val-per-group", type=int, default=32)
    ap.add_argument("--test-per-group", type=int, default=64)
    ap.add_argument("--per-crystal", type=int, default=32)
    ap.add_argument("--fit", action="store_true", help="fit the weights on the val splits first")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, info = load_model(args.model)
    assert list(info["classes"]) == list(GROUPS)
    started = time.perf_counter()
    weights = COMBINED_WEIGHTS
    if args.fit:
        val = [measured_set(model, *_generated(load_config(p).symmetry, args.val_per_group, "val"))
               for p in RECIPES.values()]  # fmt: skip
        weights = fit_weights(val)
        print(f"fitted on {sum(len(v[2]) for v in val)} validation images: weights "
              f"({weights[0]:.2f}, {weights[1]:.2f}, {weights[2]:.3f})")  # fmt: skip
    rows = []
    for recipe, path in RECIPES.items():
        images, labels = _generated(load_config(path).symmetry, args.test_per_group, "test")
        for sigma in (0.0, 0.1, 0.3):
            rng = np.random.default_rng([int(sigma * 1e6), 29])
            x = (
                images + rng.normal(0.0, sigma, images.shape).astype(np.float32)
                if sigma
                else images
            )
            rows.append((f"{recipe} test" + (f" + noise {sigma:g}" if sigma else ""),
                         *measured_set(model, x, labels)))  # fmt: skip
    x, groups, _ = simulated_set(args.per_crystal, 128, seed=0)
    rows.append(
        ("simulated crystals", *measured_set(model, x, np.array([GROUPS.index(g) for g in groups])))
    )
    print(
        f"\nweights {tuple(round(w, 3) for w in weights)}, {time.perf_counter() - started:.0f} s\n"
    )
    print("| set | images | model | measured | combined | no lattice |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, logits, scores, labels in rows:
        measured = measured_classes(scores)
        both = combined_log_probabilities(logits, scores, GROUPS, weights).argmax(1)
        print(f"| {name} | {len(labels)} | {accuracies(logits.argmax(1), labels)} | "
              f"{accuracies(measured, labels)} | {accuracies(both, labels)} | "
              f"{np.mean(measured < 0):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
