"""The DAG at archive scale: ingest -> extract -> project -> index at 10k, 100k, 1M images.

    python benchmarks/bench_scale.py [--sizes 10000 100000 1000000] [--work /tmp/sarise-scale]

Everything runs through Snakemake (``--cores 2`` locally, the rules and commands a user
runs), one target at a time so that each stage is measured alone:

* **Archive**: ``results/scale-<n>/archive`` holds ``n / 64`` PNG scans of 256 x 256 pixels
  with a sidecar; ingest cuts each into 64 tiles of 32 x 32 (``ingest.fit: tile``), so the
  store holds ``n`` images of 32 px. Every tile is a different lattice-like pattern (two
  random plane waves, their sum wave and noise), generated here with a fixed seed.
* **Model**: extraction uses a ResNet-18 of width 8 at 32 px (64 features), trained and
  exported through the DAG by this script first (``sarise train`` on wallpaper images of
  32 px, 40 steps): the shipped model is trained at 128 px, and upsampling 32-px tiles to
  128 px would make extraction, not the workflow, the whole measurement. Its speed at the
  shipped model's size is in ``bench_extract.py``.
* **Stages**: ``seconds`` is the command's own wall time from its run record
  (``results/<run>/records/<stage>.json``); ``images/s`` is n over that; ``peak RSS`` is the
  largest total resident memory of the whole job tree (Snakemake, the command, its Dask
  workers), sampled every 0.1 s.

Goal: time grows linearly or better with n, and peak RSS stays flat apart from the 2-D
coordinates (16 bytes per image) and the index (4 bytes per feature per image).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from _rss import PeakRSS
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TILE, PER_SIDE = 32, 8  # 8 x 8 tiles of 32 px per 256-px scan
STAGES = (("ingest", "store"), ("extract", "features.zarr"),
          ("project", "projections/root/node.json"), ("index", "index/index.json"))  # fmt: skip


def write_archive(folder: Path, n: int, seed: int = 0) -> None:
    """``n / 64`` PNG scans of 8 x 8 lattice-like 32-px tiles, and ``sidecar.csv``."""
    per_file = PER_SIDE * PER_SIDE
    files = -(-n // per_file)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float32)
    rows = []
    for f in range(files):
        k = rng.uniform(2 * np.pi / 12, 2 * np.pi / 4, (per_file, 2, 1, 1)).astype(np.float32)
        angle = rng.uniform(0, np.pi, (per_file, 2, 1, 1)).astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, (per_file, 3, 1, 1)).astype(np.float32)
        kx, ky = k * np.cos(angle), k * np.sin(angle)
        w1 = kx[:, 0] * xx + ky[:, 0] * yy
        w2 = kx[:, 1] * xx + ky[:, 1] * yy
        tiles = (np.cos(w1 + phase[:, 0]) + np.cos(w2 + phase[:, 1])
                 + 0.5 * np.cos(w1 + w2 + phase[:, 2])
                 + 0.3 * rng.standard_normal((per_file, TILE, TILE), dtype=np.float32))  # fmt: skip
        scan = tiles.reshape(PER_SIDE, PER_SIDE, TILE, TILE).transpose(0, 2, 1, 3)
        scan = scan.reshape(PER_SIDE * TILE, PER_SIDE * TILE)
        scan = (scan - scan.min()) / (np.ptp(scan) + 1e-9) * 255
        rel = f"{f // 1000:03d}/scan_{f:06d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scan.round().astype(np.uint8)).save(folder / rel)
        rows.append({"path": rel, "material": "ABCDEFGH"[f % 8], "year": 2010 + f % 12})
    with (folder / "sidecar.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "material", "year"])
        writer.writeheader()
        writer.writerows(rows)


def snakemake(work: Path, config: Path, targets: list[str], env: dict) -> tuple[float, int]:
    """Run the DAG for ``targets``; returns (wall seconds, peak RSS bytes of the tree)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(work), "--configfile", str(config), "--cores", "2", *targets]  # fmt: skip
    t0 = time.perf_counter()
    with open(work / "snakemake.log", "a") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        with PeakRSS(proc.pid, interval=0.1) as rss:
            proc.wait()
    if proc.returncode:
        raise SystemExit(f"snakemake failed for {targets}; see {work / 'snakemake.log'}")
    return time.perf_counter() - t0, rss.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/sarise-scale"))
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SARISE_SHARED_DATA": str(work / "no-shared-data"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip

    model_cfg = work / "model.yaml"
    model_cfg.write_text(yaml.safe_dump({
        "run": "scale-model",
        "symmetry": {"size": TILE, "cell_px": [8, 14], "motif_sources": ["natural", "field"],
                     "per_group": {"train": 0, "val": 2, "test": 0}},
        "train": {"model": {"arch": "resnet18", "width": 8}, "steps": 40,
                  "steps_per_epoch": 20, "batch_size": 68, "workers": 1},
    }))  # fmt: skip
    model = work / "results" / "scale-model" / "model" / "model.safetensors"
    snakemake(work, model_cfg, [str(model.relative_to(work))], env)

    rows = []
    for n in args.sizes:
        run = f"scale-{n}"
        archive = work / "results" / run / "archive"
        t0 = time.perf_counter()
        if not (archive / "sidecar.csv").exists():
            write_archive(archive, n)
        made = time.perf_counter() - t0
        cfg = work / f"{run}.yaml"
        cfg.write_text(yaml.safe_dump({
            "run": run,
            "ingest": {"channels": ["intensity"], "size": TILE, "fit": "tile", "flatten": "none",
                       "chunk": 256},
            "cluster": {"kind": "local", "workers": args.workers},
            "extract": {"model": str(model), "batch_size": 256},
        }))  # fmt: skip
        print(f"{n} images: archive of {len(list(archive.rglob('*.png')))} scans in {made:.0f} s",
              flush=True)  # fmt: skip
        for stage, target in STAGES:
            wall, peak = snakemake(work, cfg, [f"results/{run}/{target}"], env)
            record = json.loads((work / "results" / run / "records" / f"{stage}.json").read_text())
            seconds = record["seconds"]
            rows.append((n, stage, seconds, n / seconds, peak / 2**20, wall))
            print(f"  {stage:<8} {seconds:8.1f} s  {n / seconds:9.0f} images/s  "
                  f"{peak / 2**20:7.0f} MB", flush=True)  # fmt: skip
        node = json.loads((work / "results" / run / "projections/root/node.json").read_text())
        index = json.loads((work / "results" / run / "index/index.json").read_text())
        print(f"  projection: {node['how']['method']}, trustworthiness "
              f"{node['quality']['trustworthiness']:.3f}; index: {index['kind']}", flush=True)  # fmt: skip

    print(
        "\nscale: 32-px tiles, ResNet-18 width 8 at 32 px, 2 workers on "
        f"{os.cpu_count()} cores, through Snakemake"
    )
    print(f"{'images':>9}  {'stage':<8} {'seconds':>8} {'images/s':>9} {'peak RSS MB':>12} "
          f"{'job wall s':>10}")  # fmt: skip
    for n, stage, seconds, rate, peak, wall in rows:
        print(f"{n:>9}  {stage:<8} {seconds:8.1f} {rate:9.0f} {peak:12.0f} {wall:10.1f}")
    totals = {}
    for n, _, seconds, *_ in rows:
        totals[n] = totals.get(n, 0) + seconds
    for n, total in totals.items():
        print(f"{n:>9}  {'total':<8} {total:8.1f} {n / total:9.0f}")


if __name__ == "__main__":
    main()
