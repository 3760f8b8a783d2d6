"""Wallpaper images from a generator written apart from sarise's, through ``sarise
evaluate --folder`` as a user would: the model, the training-free measurement and both
combined.

    python benchmarks/bench_independent.py [--per-group 20] [--size 256] [--noise 0 0.1 0.3]
                                           [--falloff 2.5] [--model M] [--keep DIR]

The generator here shares no code or tables with :mod:`sarise.symmetry`. Each group is its
general positions from the International Tables (fractional coordinates of the
conventional cell, hexagonal groups on a 120-degree basis). A motif is a random Fourier
series on the cell (noise-like texture, harmonics up to 4, Gaussian fall-off) averaged over
the group's operations, which makes it exactly invariant (its lowest harmonic shell
alone is more symmetric than the group, e.g. p6m for p6 and p4m for p4, so the smoother the
motif, ``--falloff``, the nearer an image is to a supergroup); it is computed on a 64 x 64 grid
of the cell and sampled periodically onto a ``size`` px image at a random orientation,
phase and cell size (22-60 px), with random cell shapes for the oblique and rectangular
lattices (kept away from square and hexagonal metrics). The files are 8-bit PNGs in
``<group>/<n>.png``, as a user's labelled folder; the table prints group / lattice-family
accuracy per noise level.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

# general positions (W, w): x' = W x + w, from the International Tables for Crystallography
E, M2 = ((1, 0), (0, 1)), ((-1, 0), (0, -1))
MX, MY = ((-1, 0), (0, 1)), ((1, 0), (0, -1))  # x -> -x ; y -> -y
R4, R4I = ((0, -1), (1, 0)), ((0, 1), (-1, 0))  # (-y, x) ; (y, -x)
D1, D2 = ((0, 1), (1, 0)), ((0, -1), (-1, 0))  # (y, x) ; (-y, -x)
R3, R3I = ((0, -1), (1, -1)), ((-1, 1), (-1, 0))  # (-y, x-y) ; (-x+y, -x)
R6, R6I = ((1, -1), (1, 0)), ((0, 1), (-1, 1))  # (x-y, x) ; (y, -x+y)
H1, H2, H3 = ((0, -1), (-1, 0)), ((-1, 1), (0, 1)), ((1, 0), (1, -1))  # (-y,-x) (-x+y,y) (x,x-y)
H4, H5, H6 = ((0, 1), (1, 0)), ((1, -1), (0, -1)), ((-1, 0), (-1, 1))  # (y,x) (x-y,-y) (-x,-x+y)
Z, HX, HY, HXY = (0, 0), (0.5, 0), (0, 0.5), (0.5, 0.5)
P4 = [(E, Z), (M2, Z), (R4, Z), (R4I, Z)]
P3 = [(E, Z), (R3, Z), (R3I, Z)]
P6 = [*P3, (M2, Z), (R6, Z), (R6I, Z)]
PMM = [(E, Z), (M2, Z), (MX, Z), (MY, Z)]
OPS = {
    "p1": ("oblique", [(E, Z)]),
    "p2": ("oblique", [(E, Z), (M2, Z)]),
    "pm": ("rectangular", [(E, Z), (MX, Z)]),
    "pg": ("rectangular", [(E, Z), (MX, HY)]),
    "cm": ("centred", [(E, Z), (MX, Z)]),
    "pmm": ("rectangular", PMM),
    "pmg": ("rectangular", [(E, Z), (M2, Z), (MX, HX), (MY, HX)]),
    "pgg": ("rectangular", [(E, Z), (M2, Z), (MX, HXY), (MY, HXY)]),
    "cmm": ("centred", PMM),
    "p4": ("square", P4),
    "p4m": ("square", [*P4, (MX, Z), (MY, Z), (D1, Z), (D2, Z)]),
    "p4g": ("square", [*P4, (MX, HXY), (MY, HXY), (D1, HXY), (D2, HXY)]),
    "p3": ("hexagonal", P3),
    "p3m1": ("hexagonal", [*P3, (H1, Z), (H2, Z), (H3, Z)]),
    "p31m": ("hexagonal", [*P3, (H4, Z), (H5, Z), (H6, Z)]),
    "p6": ("hexagonal", P6),
    "p6m": ("hexagonal", [*P6, (H1, Z), (H2, Z), (H3, Z), (H4, Z), (H5, Z), (H6, Z)]),
}
FAMILY = {"oblique": "oblique", "rectangular": "rectangular", "centred": "rectangular",
          "square": "square", "hexagonal": "hexagonal"}  # fmt: skip
GRID = 64


def _away_from(rng, lo, hi, bad, gap):
    while True:
        v = rng.uniform(lo, hi)
        if all(abs(v - b) > gap for b in bad):
            return v


def basis(lattice: str, rng) -> np.ndarray:
    """Columns a, b of the conventional cell, |a| = 1, in a random orientation."""
    if lattice == "oblique":
        ratio, gamma = _away_from(rng, 0.7, 1.4, [1.0], 0.08), _away_from(rng, 65, 84, [60], 4)
    elif lattice in ("rectangular", "centred"):
        ratio, gamma = _away_from(rng, 0.6, 1.6, [1.0, 3**0.5, 3**-0.5], 0.1), 90.0
    elif lattice == "square":
        ratio, gamma = 1.0, 90.0
    else:
        ratio, gamma = 1.0, 120.0
    g = math.radians(gamma)
    b = np.array([[1.0, ratio * math.cos(g)], [0.0, ratio * math.sin(g)]])
    t = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return rot @ b


def motif(group: str, rng, harmonics: int = 4, falloff: float = 2.5) -> np.ndarray:
    """A group-invariant random texture on the cell, ``[GRID, GRID]`` (fractional x, y)."""
    lattice, ops = OPS[group]
    if lattice == "centred":  # the centring translation is one more operation
        ops = [*ops, *[(w, (t[0] + 0.5, t[1] + 0.5)) for w, t in ops]]
    h = np.arange(-harmonics, harmonics + 1)
    k = np.stack(np.meshgrid(h, h, indexing="ij"), -1).reshape(-1, 2)
    k = k[(k != 0).any(1)]
    amp = rng.normal(size=len(k)) * np.exp(-(k**2).sum(1) / falloff**2)
    phase = rng.uniform(0, 2 * np.pi, len(k))
    u = (np.arange(GRID) + 0.5) / GRID
    x = np.stack(np.meshgrid(u, u, indexing="ij"), 0).reshape(2, -1)  # fractional (x, y)
    out = np.zeros(x.shape[1])
    for w, t in ops:
        y = np.asarray(w, float) @ x + np.asarray(t, float)[:, None]
        out += (amp[:, None] * np.cos(2 * np.pi * (k @ y) + phase[:, None])).sum(0)
    return (out / len(ops)).reshape(GRID, GRID)


def render(group: str, size: int, rng, falloff: float = 2.5) -> np.ndarray:
    """A ``size`` px image of the group (float, arbitrary scale)."""
    cell = rng.uniform(22, 60)
    a = basis(OPS[group][0], rng) * cell
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    pix = np.stack([xx.ravel(), yy.ravel()])  # (x, y) in px
    frac = np.linalg.solve(a, pix) + rng.uniform(0, 1, (2, 1))
    grid = (frac % 1.0) * GRID - 0.5
    img = ndimage.map_coordinates(
        motif(group, rng, falloff=falloff), grid, order=3, mode="grid-wrap"
    )
    return img.reshape(size, size)


def write_folder(root: Path, per_group: int, size: int, noise: float, seed: int,
                 falloff: float = 2.5) -> None:  # fmt: skip
    for gi, group in enumerate(OPS):
        rng = np.random.default_rng([seed, gi])
        (root / group).mkdir(parents=True, exist_ok=True)
        for i in range(per_group):
            img = render(group, size, rng, falloff)
            img = (img - img.min()) / (img.max() - img.min())
            if noise:
                img = np.clip(img + rng.normal(0, noise, img.shape), 0, 1)
            Image.fromarray((img * 255).round().astype(np.uint8)).save(root / group / f"{i}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-group", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1])
    ap.add_argument("--model", default=None)
    ap.add_argument("--invariant", choices=["none", "d4"], default=None,
                    help="evaluate.invariant (default: the configuration's default)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--falloff", type=float, default=2.5,
                    help="harmonic k of the motif has amplitude exp(-|k|^2 / falloff^2): "
                         "smaller is smoother and nearer the holohedry")  # fmt: skip
    ap.add_argument("--keep", type=Path, default=None, help="write the folders here and keep them")
    args = ap.parse_args()
    from sarise.config import EvaluateConfig
    from sarise.evaluate import evaluate

    config = EvaluateConfig(**({"invariant": args.invariant} if args.invariant else {}))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        for noise in args.noise:
            folder = base / f"independent-noise{noise:g}"
            t0 = time.perf_counter()
            write_folder(folder, args.per_group, args.size, noise, args.seed, args.falloff)
            made = time.perf_counter() - t0
            report = evaluate(args.model, base / f"report-noise{noise:g}", folder=folder, sets=[],
                              config=config, show_progress=False)  # fmt: skip
            s = report["sets"]["folder"]
            rows.append((noise, s, made, time.perf_counter() - t0 - made))
    print(f"\n{17 * args.per_group} images per row, {args.size} px, falloff {args.falloff:g} (cropped and resampled to the "
          "model's input by `sarise evaluate --folder`)\n")  # fmt: skip
    print("| noise sigma | model | measured | combined | no lattice | s (make / evaluate) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for noise, s, made, took in rows:
        m, c = s["measured"], s["combined"]
        print(f"| {noise:g} | {s['accuracy']:.3f} / {s['family_accuracy']:.3f} | "
              f"{m['accuracy']:.3f} / {m['family_accuracy']:.3f} | "
              f"{c['accuracy']:.3f} / {c['family_accuracy']:.3f} | {m['no_lattice']:.3f} | "
              f"{made:.0f} / {took:.0f} |")  # fmt: skip
    print("\nper group (combined):", " ".join(f"{g} {v:.2f}" for g, v in
                                            rows[0][1]["combined"]["per_group"].items()))  # fmt: skip


if __name__ == "__main__":
    main()
