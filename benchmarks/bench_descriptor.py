"""What the rotation-averaged descriptor (``extract.invariant: d4``) does to invariance and
retrieval, on wallpaper patterns rendered exactly at two orientations.

    python benchmarks/bench_descriptor.py [--per-group 24] [--batch 128]

For each of ``17 x per_group`` test-split patterns (the shipped model's own generator
settings), image A is the pattern as drawn and image B the same pattern rendered exactly at
a random orientation and phase (``WallpaperImage.transformed``); image C is A turned by 90
degrees. For the plain features and the d4 average it prints:

- cosine A-B and A-C (1 = invariant);
- group agreement: the predicted group of B equals that of A;
- re-identification: B's nearest neighbour (cosine) among all A is its own pattern (top-1,
  top-10);
- same-group precision@10 among the A images (leave-one-out), the retrieval a user sees.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sarise.config import SymmetryConfig
from sarise.features import embed
from sarise.models import load_model
from sarise.symmetry import sample


def _unit(f: np.ndarray) -> np.ndarray:
    return f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-12)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-group", type=int, default=24)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args(argv)
    model, info = load_model()
    config = SymmetryConfig.model_validate(info["trained"]["config"]["symmetry"])
    rng = np.random.default_rng(0)
    a, b, labels = [], [], []
    for i in range(17 * args.per_group):
        im = sample(i, seed=config.seed, split="test", config=config, augment=False)
        a.append(im.image)
        b.append(im.transformed(rng.uniform(0.0, 360.0), rng.random(2)).image)
        labels.append(im.label)
    a, b, labels = np.stack(a), np.stack(b), np.asarray(labels)
    c = np.rot90(a, 1, axes=(1, 2))

    rows = []
    for invariant in ("none", "d4"):
        t0 = time.perf_counter()
        (fa, la), (fb, lb), (fc, _) = (embed(model, x, batch_size=args.batch, invariant=invariant)
                                       for x in (a, b, c))  # fmt: skip
        secs = time.perf_counter() - t0
        ua, ub, uc = _unit(fa), _unit(fb), _unit(fc)
        sim_ba = ub @ ua.T
        order = np.argsort(-sim_ba, axis=1)
        own = np.arange(len(a))
        top1 = (order[:, 0] == own).mean()
        top10 = (order[:, :10] == own[:, None]).any(1).mean()
        sim_aa = ua @ ua.T
        np.fill_diagonal(sim_aa, -np.inf)
        nn = np.argsort(-sim_aa, axis=1)[:, :10]
        p10 = (labels[nn] == labels[:, None]).mean()
        rows.append((invariant, (ua * ub).sum(1).mean(), (ua * uc).sum(1).mean(),
                     (la.argmax(1) == lb.argmax(1)).mean(), top1, top10, p10,
                     3 * len(a) / secs))  # fmt: skip

    print(f"\ndescriptor: shipped model, {len(a)} test patterns ({args.per_group} per group), "
          f"{config.size} px")  # fmt: skip
    print(f"{'features':<10}{'cos A-B':>9}{'cos A-C':>9}{'group agr.':>12}{'re-id@1':>9}"
          f"{'re-id@10':>10}{'P@10 group':>12}{'images/s':>10}")  # fmt: skip
    for name, ab, ac, agree, t1, t10, p10, ips in rows:
        print(f"{name:<10}{ab:>9.3f}{ac:>9.3f}{agree:>12.3f}{t1:>9.3f}{t10:>10.3f}{p10:>12.3f}"
              f"{ips:>10.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
