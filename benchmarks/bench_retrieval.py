"""Same-lattice retrieval on simulated atomic-resolution images: which descriptor finds an
image's own crystal among its nearest neighbours.

    python benchmarks/bench_retrieval.py [--per-crystal 32] [--size 128] [--k 10] [--model M]

The images are :func:`sarise.symmetry.crystals.simulated_set` (graphene, hBN, MoS2,
SrTiO3 [001] and [110], rutile [001]: real projections at random orientation, phase and
magnification, with shot noise and scan distortions), made without the training
generator. For each descriptor, every image queries the others by cosine similarity;
the table gives the mean precision at ``k`` (the share of the ``k`` nearest that are the
same crystal; chance is about 1/6) and the lattice-family precision. Descriptors:

- ``raw pixels``: the standardised image itself;
- ``log|FFT|``: the log power spectrum (translation-invariant), standardised;
- ``untrained network``: the shipped architecture with random weights (seed 0);
- ``model, invariant none`` and ``model, invariant d4``: the model's features, plain and
  averaged over the 8 right-angle turns and flips (``extract.invariant``);
- ``measured symmetry``: the training-free measurement (:mod:`sarise.symmetry_measure`,
  ``descriptor: symmetry``): the rotation, mirror and glide scores, the lattice family and
  the cell's shape (b/a and angle), without its scale (the magnification is random);
- ``model + measured symmetry``: ``descriptor: both``, each block of unit length.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sarise.evaluate import FAMILIES
from sarise.features import embed
from sarise.models import create_model, load_model
from sarise.symmetry.crystals import CRYSTALS, simulated_set
from sarise.symmetry_measure import combine, score_rows, symmetry_descriptor


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(1, keepdims=True)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def precision_at_k(x: np.ndarray, labels: np.ndarray, k: int) -> float:
    u = _unit(x.reshape(len(x), -1).astype(np.float64))
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argsort(-sim, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-crystal", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--model", default=None, help="a .safetensors model (default: shipped)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    x, groups, crystals = simulated_set(args.per_crystal, args.size, seed=args.seed)
    names = np.array(crystals)
    family = np.array([FAMILIES[g] for g in groups])
    model, info = load_model(args.model)
    torch.manual_seed(0)
    untrained = create_model(**info["model"], num_classes=17).eval()
    spectrum = np.log1p(np.abs(np.fft.fft2(x - x.mean((1, 2), keepdims=True))) ** 2)
    rows = []

    def add(name, fn):
        t0 = time.perf_counter()
        d = fn()
        rows.append((name, precision_at_k(d, names, args.k), precision_at_k(d, family, args.k),
                     time.perf_counter() - t0))  # fmt: skip

    add("raw pixels", lambda: x)
    add("log|FFT|", lambda: spectrum)
    add("untrained network", lambda: embed(untrained, x, image_size=info["image_size"])[0])
    for inv in ("none", "d4"):
        add(f"model, invariant {inv}",
            lambda inv=inv: embed(model, x, invariant=inv, image_size=info["image_size"])[0])  # fmt: skip
    # what project.descriptor / search.descriptor "symmetry" and "both" use
    scores = {}
    add("measured symmetry",
        lambda: symmetry_descriptor(scores.setdefault("s", score_rows(x))))  # fmt: skip
    add("model + measured symmetry",
        lambda: combine(embed(model, x, image_size=info["image_size"])[0], scores["s"], "both"))  # fmt: skip

    print(f"\nsame-crystal retrieval: {len(x)} simulated images ({args.per_crystal} of each of "
          f"{len(CRYSTALS)} crystals), {args.size} px, precision@{args.k} by cosine; model "
          f"{info['sha256'][:12]} ({info['image_size']} px)")  # fmt: skip
    print("| descriptor | crystal P@k | lattice family P@k | seconds |")
    print("| --- | ---: | ---: | ---: |")
    for name, p, f, sec in rows:
        print(f"| {name} | {p:.3f} | {f:.3f} | {sec:.1f} |")


if __name__ == "__main__":
    main()
