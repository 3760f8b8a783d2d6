"""Extraction throughput: the whole ``sarise extract`` path vs the model's raw forward.

    python benchmarks/bench_extract.py [--images 2048] [--size 128] [--batch 256]
                                       [--scale 10] [--cluster local|cuda]

One run, one machine, one model (the shipped one) and one batch size:

- ``model forward``: the model alone in this process (all cores, or the GPU), on images
  already in memory and standardised: the ceiling.
- ``extract, W workers x T threads``: ``extract()`` from a float16 image store on disk to
  features.zarr through a running Dask cluster: reading chunks, standardising, the model,
  softmax and the region writes (model loading per worker included, cluster start-up not).
  The ratio to the raw forward is the pipeline's cost (goal: >= 0.8).
- ``peak RSS``: the same extraction on a ``--scale`` times larger store; peak resident
  memory of this process and all its children (goal: within 10% of the 1x run).

On a GPU (``--cluster cuda``, or automatically when torch sees one) the forward runs in
bfloat16 with ``channels_last`` and ``--size 256`` gives the per-GPU figure of the issue.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sarise.cluster import get_client
from sarise.config import ExtractConfig
from sarise.features import embed, extract
from sarise.models import load_model
from sarise.store import ImageStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import PeakRSS


def make_store(path: Path, n: int, size: int, chunk: int) -> None:
    """``n`` float16 images with lattice-like structure (cheap to make, not constant)."""
    store = ImageStore.create(path, channels=["c0:height"], size=size, dtype="float16",
                              chunk=chunk)  # fmt: skip
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        f = rng.uniform(0.05, 0.4, (k, 2, 1, 1)).astype(np.float32)
        noise = 0.2 * rng.standard_normal((k, size, size))
        im = np.sin(f[:, 0] * xx) * np.cos(f[:, 1] * yy) + noise
        ids = np.arange(start, start + k, dtype=np.int64)
        store.append(im[:, None].astype(np.float16), pd.DataFrame({"image_id": ids}))


def raw_forward(n: int, size: int, batch: int, device: str) -> float:
    model, _ = load_model(device=device)
    if device == "cuda":
        model = model.to(memory_format=torch.channels_last)
    x = np.random.default_rng(1).random((min(n, 4 * batch), size, size), dtype=np.float32)
    embed(model, x[:batch], batch_size=batch)  # warm-up
    reps = max(1, n // len(x))
    t0 = time.perf_counter()
    for _ in range(reps):
        embed(model, x, batch_size=batch)
    if device == "cuda":
        torch.cuda.synchronize()
    return reps * len(x) / (time.perf_counter() - t0)


def run_extract(store: Path, out: Path, cfg: ExtractConfig, client) -> tuple[float, int]:
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        done = extract(store, out, config=cfg, client=client, show_progress=False)
        wall = time.perf_counter() - t0
    return done["images"] / wall, rss.peak


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--scale", type=int, default=10, help="store size factor for the RSS row")
    ap.add_argument("--cluster", default="cuda" if torch.cuda.is_available() else "local")
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    device = "cuda" if args.cluster == "cuda" else "cpu"
    torch.set_num_threads(cores)
    cfg = ExtractConfig(batch_size=args.batch)
    chunk = args.batch
    layouts = [(None, 1)] if device == "cuda" else [(1, 1), (cores, 1)]
    if device == "cpu" and cores == 1:
        layouts = [(1, 1)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sarise-bench-extract-") as tmp:
        tmp = Path(tmp)
        make_store(tmp / "store", args.images, args.size, chunk)
        raw = raw_forward(args.images, args.size, args.batch, device)
        rows.append(("model forward (in memory)", raw, None))
        for i, (workers, threads) in enumerate(layouts):
            with get_client(kind=args.cluster, workers=workers, threads_per_worker=threads) as c:
                n_workers = len(c.scheduler_info()["workers"])
                ips, peak = run_extract(tmp / "store", tmp / f"f{i}.zarr", cfg, c)
            rows.append((f"extract, {n_workers} workers x {threads} threads", ips, peak))
        if args.scale > 1:
            make_store(tmp / "big", args.images * args.scale, args.size, chunk)
            workers, threads = layouts[-1]
            with get_client(kind=args.cluster, workers=workers, threads_per_worker=threads) as c:
                ips, peak = run_extract(tmp / "big", tmp / "big.zarr", cfg, c)
            rows.append((f"extract, {args.scale}x images (same workers)", ips, peak))

    print(f"\nextract: shipped model, {args.size} px, batch {args.batch}, {device}, "
          f"{args.images} images ({cores} cores)")  # fmt: skip
    print(f"{'path':<40}{'images/s':>10}{'vs model':>10}{'peak RSS MB':>13}")
    for name, ips, peak in rows:
        rss = f"{peak / 2**20:>13.0f}" if peak else f"{'':>13}"
        print(f"{name:<40}{ips:>10.1f}{ips / raw:>10.2f}{rss}")


if __name__ == "__main__":
    main()
