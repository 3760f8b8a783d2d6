"""Ingest throughput per format, and peak memory at 1x and 10x the input.

    python benchmarks/bench_ingest.py [--data ../shared/data] [--factors 1 10] [--workers 2]

The input is the real files of ``shared/data`` (ibw, hdf5, sxm, gwy) plus the demo
archive's own files (tiff, png), each repeated ``factor`` times as distinct copies (a few
bytes differ, so that no copy is skipped as already ingested). Every row is a fresh store
and a fresh local Dask cluster; the time is the ``ingest()`` call (cluster start-up
excluded). Peak RSS is sampled every 20 ms over this process and all its children (the
Dask scheduler runs here, the workers are child processes). Goal: peak RSS does not
grow with the number of files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from _rss import PeakRSS

from sarise.cluster import get_client
from sarise.config import IngestConfig
from sarise.demo_archive import write_demo_archive
from sarise.ingest import ingest, list_files
from sarise.io import detect_format

HERE = Path(__file__).resolve().parent


def _copy(src: Path, dst: Path, k: int) -> None:
    """A distinct copy of ``src``: a trailer after the data, or for ``.sxm`` (whose reader
    checks the data size exactly) one header key more."""
    blob = src.read_bytes()
    tag = f"sarise-bench-copy-{k:05d}".encode()
    if src.suffix == ".sxm":
        blob = blob.replace(b":SCANIT_END:", b":SARISE_COPY:\n" + tag + b"\n:SCANIT_END:", 1)
    else:
        blob = blob + tag
    dst.write_bytes(blob)


def build_inputs(data: Path, demo: Path, factor: int, out: Path) -> dict[str, list[Path]]:
    """Files per format, each repeated ``factor`` times into ``out``."""
    by_format: dict[str, list[Path]] = {}
    for f in list_files([data, demo]):
        if "licenses" in f.parts:
            continue
        by_format.setdefault(detect_format(f), []).append(f)
    inputs: dict[str, list[Path]] = {}
    for fmt, files in sorted(by_format.items()):
        folder = out / fmt
        folder.mkdir(parents=True)
        for k in range(factor):
            for f in files:
                dst = folder / f"{f.stem}-{k:05d}{f.suffix}"
                _copy(f, dst, k)
        inputs[fmt] = sorted(folder.iterdir())
    return inputs


def run(files: list[Path], store: Path, workers: int) -> tuple[float, int, float, int]:
    cfg = IngestConfig(channels=(".*",), size=128, fit="crop", chunk=16)
    with get_client(workers=workers) as client, PeakRSS() as rss:
        t0 = time.perf_counter()
        summary = ingest(files, store, config=cfg, client=client, show_progress=False)
        wall = time.perf_counter() - t0
    if summary.failed:
        raise SystemExit(f"{summary.failed} files failed:\n{summary.table()}")
    return wall, summary.images, sum(f.stat().st_size for f in files) / 1e6, rss.peak


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("SARISE_SHARED_DATA", HERE.parent.parent / "shared/data"))
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("--factors", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} is not a folder (set --data or SARISE_SHARED_DATA)")

    rows = []
    with tempfile.TemporaryDirectory(prefix="sarise-bench-ingest-") as tmp:
        tmp = Path(tmp)
        write_demo_archive(tmp / "demo", n=48, size=512)
        (tmp / "demo" / "sidecar.csv").unlink()
        for factor in args.factors:
            inputs = build_inputs(args.data, tmp / "demo", factor, tmp / f"in-{factor}")
            for fmt, files in [*inputs.items(), ("all", [f for v in inputs.values() for f in v])]:
                store = tmp / f"store-{factor}-{fmt}"
                wall, images, mb, peak = run(files, store, args.workers)
                rows.append((fmt, factor, len(files), images, mb, wall, peak))
                shutil.rmtree(store)
                print(f"  {fmt} x{factor}: {len(files)} files in {wall:.1f} s", flush=True)
            shutil.rmtree(tmp / f"in-{factor}")

    print(f"\ningest, {args.workers} worker processes, 128 px crop, float16 store")
    print(f"{'format':<8}{'x':>4}{'files':>7}{'images':>8}{'MB':>9}{'s':>8}{'files/s':>9}"
          f"{'MB/s':>8}{'peak RSS MB':>13}")  # fmt: skip
    for fmt, factor, n, images, mb, wall, peak in rows:
        print(f"{fmt:<8}{factor:>4}{n:>7}{images:>8}{mb:>9.1f}{wall:>8.1f}{n / wall:>9.1f}"
              f"{mb / wall:>8.1f}{peak / 2**20:>13.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
