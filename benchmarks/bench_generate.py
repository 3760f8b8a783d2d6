"""Generator throughput: images/s per motif source, on all cores, and Zarr writing.

    python benchmarks/bench_generate.py [--size 256] [--images 3000] [--workers N]

Prints a table. Workers are warmed up first (numba's compiled kernel loaded, bundled
natural images decoded), as DataLoader workers would be, so the figures are steady
state. The last row writes a full split with ``sarise generate`` (compression and disk
included).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from sarise.config import MOTIF_SOURCES, SymmetryConfig
from sarise.symmetry import sample, write_split


def _work(args):
    config_json, start, stop = args
    config = SymmetryConfig.model_validate_json(config_json)
    t0 = time.perf_counter()
    for i in range(start, stop):
        sample(i, config=config)
    return stop - start, time.perf_counter() - t0


def _throughput(pool, workers, config, n):
    cfg = config.model_dump_json()
    per = -(-n // workers)
    jobs = [(cfg, 10_000 + w * per, 10_000 + min(n, (w + 1) * per)) for w in range(workers)]
    list(pool.map(_work, [(cfg, 17 * w, 17 * w + 34) for w in range(workers)]))  # warm-up
    t0 = time.perf_counter()
    results = list(pool.map(_work, jobs))
    wall = time.perf_counter() - t0
    done = sum(r[0] for r in results)
    busy = sum(r[1] for r in results)
    return done / wall, done / busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=3000, help="images per row")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    base = SymmetryConfig(size=args.size)
    rows = []
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
        for source in (*MOTIF_SOURCES, "all"):
            sources = MOTIF_SOURCES if source == "all" else (source,)
            cfg = base.model_copy(update={"motif_sources": sources})
            rate, per_core = _throughput(pool, args.workers, cfg, args.images)
            rows.append((f"sample(): {source}", args.images, rate, per_core))
    out = tempfile.mkdtemp(prefix="sarise-bench-")
    try:
        n_per_group = max(1, args.images // 17)
        cfg = base.model_copy(update={"per_group": {"train": n_per_group}})
        t0 = time.perf_counter()
        write_split(out, "train", cfg, workers=args.workers, show_progress=False)
        wall = time.perf_counter() - t0
        rows.append(
            (
                "sarise generate -> Zarr (all)",
                17 * n_per_group,
                17 * n_per_group / wall,
                float("nan"),
            )
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)

    print(f"\nwallpaper generator, {args.size}x{args.size} px, {args.workers} worker(s), "
          f"{os.cpu_count()} CPU(s)\n")  # fmt: skip
    print(f"| {'what':32s} | {'images':>7s} | {'images/s':>9s} | {'per core':>9s} |")
    print(f"|{'-' * 34}|{'-' * 9}|{'-' * 11}|{'-' * 11}|")
    for what, n, rate, per_core in rows:
        pc = "" if per_core != per_core else f"{per_core:9.0f}"
        print(f"| {what:32s} | {n:7d} | {rate:9.0f} | {pc:>9s} |")


if __name__ == "__main__":
    main()
