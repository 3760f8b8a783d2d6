"""How ``sarise evaluate --folder`` brings large images of any magnification to the model:
``crop`` (the whole image resampled to the model's input), ``tile`` (native-resolution
tiles) and ``auto`` (the scale from each image's own lattice, :func:`sarise.preprocess.fit_cells`).

    python benchmarks/bench_folder_fit.py [--per-crystal 12] [--size 512] [--cells 4 96]
                                          [--fits crop tile auto] [--model M] [--keep DIR]

Real atomic-resolution scans are large (512-2048 px) and their cells span any size, from
a few pixels (a wide STEM field of view) to a tenth of the image (a zoomed-in STM scan).
Here the physics-based crystal projections of :mod:`sarise.symmetry.crystals` (graphene,
hBN, MoS2, SrTiO3 [001] and [110], rutile [001]: known plane groups, with shot noise,
drift and scan distortions) are rendered at ``--size`` px with cells drawn log-uniformly
from ``--cells`` px, written as 8-bit PNGs in ``<group>/<crystal>-<n>.png`` (a user's
labelled folder), and evaluated three ways. The table prints group / lattice-family
accuracy of the model, the measurement and both combined, overall and by cell size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

MODES = ("crop", "tile", "auto")


def write_folder(root: Path, per_crystal: int, size: int, cells: tuple[float, float],
                 seed: int) -> dict[str, float]:  # fmt: skip
    """The labelled folder; returns each file's cell size in px."""
    from sarise.symmetry.crystals import CRYSTALS, render_crystal

    cell_of = {}
    for k, (name, crystal) in enumerate(CRYSTALS.items()):
        (root / crystal.group).mkdir(parents=True, exist_ok=True)
        for i in range(per_crystal):
            rng = np.random.default_rng([seed, 131, k, i])
            cell = float(np.exp(rng.uniform(*np.log(cells))))
            img = render_crystal(crystal, size, rng, cell_px=(cell, cell))
            path = root / crystal.group / f"{name}-{i}.png"
            Image.fromarray((img * 255).round().astype(np.uint8)).save(path)
            cell_of[str(path)] = cell
    return cell_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-crystal", type=int, default=12)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--cells", type=float, nargs=2, default=[4.0, 96.0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--invariant", choices=["none", "d4"], default=None,
                    help="evaluate.invariant (default: the configuration's default)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fits", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--keep", type=Path, default=None, help="write the folder here and keep it")
    args = ap.parse_args()
    from sarise.config import EvaluateConfig
    from sarise.evaluate import FAMILIES, evaluate

    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        folder = base / "crystals"
        t0 = time.perf_counter()
        cell_of = write_folder(folder, args.per_crystal, args.size, tuple(args.cells), args.seed)
        print(f"{len(cell_of)} images of {args.size} px, cells {args.cells[0]:g}-"
              f"{args.cells[1]:g} px, made in {time.perf_counter() - t0:.0f} s\n")  # fmt: skip
        cells = np.array(list(cell_of.values()))
        edges = np.quantile(cells, [1 / 3, 2 / 3])
        head = ["fit", "model", "measured", "combined"]
        head += [f"combined, cells {lo:.0f}-{hi:.0f} px"
                 for lo, hi in zip([cells.min(), *edges], [*edges, cells.max()], strict=True)]  # fmt: skip
        print("| " + " | ".join(head) + " | s |")
        print("|" + " --- |" + " ---: |" * (len(head)))
        config = EvaluateConfig(**({"invariant": args.invariant} if args.invariant else {}))
        for mode in args.fits:
            t0 = time.perf_counter()
            report = evaluate(args.model, base / f"report-{mode}", folder=folder, sets=[],
                              folder_mode=mode, config=config, show_progress=False)  # fmt: skip
            took = time.perf_counter() - t0
            s = report["sets"]["folder"]
            files = s["files"]
            cell = np.array([cell_of[f["path"]] for f in files])
            right = np.array([f["combined"] == f["label"] for f in files])
            fam = np.array([FAMILIES[f["combined"]] == FAMILIES[f["label"]] for f in files])
            bucket = np.digitize(cell, edges)
            parts = [f"{right[bucket == b].mean():.3f} / {fam[bucket == b].mean():.3f}"
                     for b in range(3)]  # fmt: skip
            m, c = s["measured"], s["combined"]
            print(f"| {mode} | {s['accuracy']:.3f} / {s['family_accuracy']:.3f} | "
                  f"{m['accuracy']:.3f} / {m['family_accuracy']:.3f} | "
                  f"{c['accuracy']:.3f} / {c['family_accuracy']:.3f} | "
                  + " | ".join(parts) + f" | {took:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
