"""Throughput of the training-free symmetry measurement (:mod:`sarise.symmetry_measure`).

    python benchmarks/bench_symmetry.py [--n 64] [--sizes 128 256] [--threads 1]

Images per second of :func:`~sarise.symmetry_measure.score_rows` (lattice, rotation,
mirror and glide scores, plane-group candidates) on generated images of all 17 groups
(``sarise generate``'s default distribution at each size), on one CPU core with NumPy and,
where CuPy and a GPU are present, on the GPU with the same code (``xp=cupy``). Goals: at
least 50 images/s per core at 128 px; 10,000 images/s at 128 px on one GPU.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from sarise.config import SymmetryConfig
from sarise.symmetry import GROUPS, sample
from sarise.symmetry_measure import score_rows


def images(n: int, size: int) -> np.ndarray:
    cfg = SymmetryConfig(size=size)
    return np.stack([sample(i, config=cfg, split="test").image for i in range(n)])


def rate(fn, batch, repeat: int = 2) -> float:
    fn(batch[:2])  # warm up (FFT plans, caches, GPU kernels)
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(batch)
        best = max(best, len(batch) / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4 * len(GROUPS))
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    try:
        import cupy

        gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no CuPy, or no GPU
        cupy, gpu = None, False
    print(f"| size | images | CPU images/s ({args.threads} core) | GPU images/s |")
    print("|---:|---:|---:|---:|")
    for size in args.sizes:
        batch = images(args.n, size)
        cpu = rate(lambda b: score_rows(b), batch)
        on_gpu = "n/a (no GPU)"
        if gpu:
            on_gpu = f"{rate(lambda b: score_rows(b, xp=cupy), batch):.0f}"
        print(f"| {size} | {len(batch)} | {cpu:.1f} | {on_gpu} |")


if __name__ == "__main__":
    main()
