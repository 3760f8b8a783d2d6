"""Extraction throughput: the whole ``sarise extract`` path vs the model's raw forward.

    python benchmarks/bench_extract.py [--images 2048] [--size 128] [--batch 256]
                                       [--scale 10] [--cluster local|cuda] [--no-bf16]
                                       [--symmetry]

One run, one machine, one model (the shipped one) and one batch size:

- ``plain fp32 NCHW forward``: ``model(x)`` in float32 with the default layout, batches
  of ``--batch``: the baseline a user's own loop would get.
- ``model forward, fp32 / bf16``: :func:`sarise.features.embed` in memory (channels_last,
  16-image micro-batches on CPU) in each number format; bf16 only where the hardware has
  it natively unless forced (it is emulated, and slow, elsewhere).
- ``extract, W workers x T threads``: ``extract()`` from a float16 image store on disk to
  features.zarr through a running Dask cluster: reading chunks, standardising, the model,
  softmax and the region writes (model loading per worker included, cluster start-up not).
  The ratio to the raw forward is the pipeline's cost (goal: >= 0.8).
- ``peak RSS``: the same extraction on a ``--scale`` times larger store; peak resident
  memory of this process and all its children (goal: within 10% of the 1x run).
- ``marginal``: the extraction's throughput between the 1x and the ``--scale`` x store
  (start-up and model loading excluded), in the format ``precision: auto`` picks, and
  its ratio to the plain fp32 NCHW forward (goal: >= 3 where bf16 is native).
- ``--symmetry``: one more extraction of the 1x store with ``extract.symmetry: true``
  (the shipped config's setting): the measured lattice and symmetry beside the features.

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


def plain_forward(n: int, size: int, batch: int, device: str) -> float:
    model, _ = load_model(device=device)
    x = torch.from_numpy(np.random.default_rng(1).random((batch, 1, size, size), np.float32))
    x = x.to(device)
    with torch.inference_mode():
        model(x)  # warm-up
        reps = max(1, n // batch)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x)
        if device == "cuda":
            torch.cuda.synchronize()
    return reps * batch / (time.perf_counter() - t0)


def raw_forward(n: int, size: int, batch: int, device: str, precision: str) -> float:
    model, _ = load_model(device=device)
    x = np.random.default_rng(1).random((min(n, 4 * batch), size, size), dtype=np.float32)
    embed(model, x[:batch], batch_size=batch, precision=precision)  # warm-up
    reps = max(1, n // len(x))
    t0 = time.perf_counter()
    for _ in range(reps):
        embed(model, x, batch_size=batch, precision=precision)
    if device == "cuda":
        torch.cuda.synchronize()
    return reps * len(x) / (time.perf_counter() - t0)


def run_extract(store: Path, out: Path, cfg: ExtractConfig, client) -> tuple[float, int, float]:
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        done = extract(store, out, config=cfg, client=client, show_progress=False)
        wall = time.perf_counter() - t0
    return done["images"] / wall, rss.peak, wall


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--scale", type=int, default=10, help="store size factor for the RSS row")
    ap.add_argument("--cluster", default="cuda" if torch.cuda.is_available() else "local")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 forward row")
    ap.add_argument("--symmetry", action="store_true",
                    help="add a row with extract.symmetry: true")  # fmt: skip
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    device = "cuda" if args.cluster == "cuda" else "cpu"
    torch.set_num_threads(cores)
    from sarise.precision import native_bf16, resolve

    auto = resolve("auto", device)
    cfg = ExtractConfig(batch_size=args.batch, precision=auto)
    chunk = args.batch
    layouts = [(None, 1)] if device == "cuda" else [(1, 1), (cores, 1)]
    if device == "cpu" and cores == 1:
        layouts = [(1, 1)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sarise-bench-extract-") as tmp:
        tmp = Path(tmp)
        make_store(tmp / "store", args.images, args.size, chunk)
        plain = plain_forward(args.images, args.size, args.batch, device)
        rows.append(("plain fp32 NCHW forward", plain, None))
        raw = raw_forward(args.images, args.size, args.batch, device, "fp32")
        rows.append(("model forward, fp32 (embed)", raw, None))
        native = device == "cuda" or native_bf16()
        if not args.no_bf16:
            bf16 = raw_forward(args.images, args.size, args.batch, device, "bf16")
            note = "" if native else " (emulated)"
            rows.append((f"model forward, bf16 (embed){note}", bf16, None))
            if auto == "bf16":
                raw = bf16
        small = None
        for i, (workers, threads) in enumerate(layouts):
            with get_client(kind=args.cluster, workers=workers, threads_per_worker=threads) as c:
                n_workers = len(c.scheduler_info()["workers"])
                ips, peak, wall = run_extract(tmp / "store", tmp / f"f{i}.zarr", cfg, c)
            rows.append((f"extract {auto}, {n_workers} workers x {threads} threads", ips, peak))
            small = wall
        if args.scale > 1:
            make_store(tmp / "big", args.images * args.scale, args.size, chunk)
            workers, threads = layouts[-1]
            with get_client(kind=args.cluster, workers=workers, threads_per_worker=threads) as c:
                ips, peak, wall = run_extract(tmp / "big", tmp / "big.zarr", cfg, c)
            rows.append((f"extract {auto}, {args.scale}x images (same workers)", ips, peak))
            marginal = args.images * (args.scale - 1) / max(wall - small, 1e-9)
            rows.append((f"extract {auto}, marginal (start-up excluded)", marginal, None))
        if args.symmetry:
            workers, threads = layouts[-1]
            sym = cfg.model_copy(update={"symmetry": True})
            with get_client(kind=args.cluster, workers=workers, threads_per_worker=threads) as c:
                ips, peak, _ = run_extract(tmp / "store", tmp / "sym.zarr", sym, c)
            rows.append((f"extract {auto} + symmetry, {workers or 1} workers", ips, peak))

    print(f"\nextract: shipped model, {args.size} px, batch {args.batch}, {device}, "
          f"{args.images} images ({cores} cores, bf16 {'native' if native else 'not native'}, "
          f"precision auto: {auto})")  # fmt: skip
    print(f"{'path':<48}{'images/s':>10}{'vs plain':>10}{'vs model':>10}{'peak RSS MB':>13}")
    for name, ips, peak in rows:
        rss = f"{peak / 2**20:>13.0f}" if peak else f"{'':>13}"
        print(f"{name:<48}{ips:>10.1f}{ips / plain:>10.2f}{ips / raw:>10.2f}{rss}")


if __name__ == "__main__":
    main()
