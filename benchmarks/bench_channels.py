"""Which channel of real PFM scans makes the best descriptor: height, amplitude, phase, or
all three fused (``extract.channel: fuse``)?

    python benchmarks/bench_channels.py [--data ../shared/data] [--model M] [--k 3]

Ingests the Asylum files of the shared real data (PFM HDF5, .ibw, Gwyddion) with
``ingest.channels: [height, amplitude, phase]`` (a file lacking one of them is left out),
extracts features of each channel and of the fusion through the library's own
``sarise extract`` path, and scores same-sample retrieval: every image queries the others
by cosine similarity, and the table gives the precision at 1 and at ``k`` of finding a scan
of the same sample series (PMN-PT, PTO, PZT, SrTiO3 film, SrTiO3 substrate; series of one
scan are not queries). Chance is the share of same-series images.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from sarise.cluster import get_client
from sarise.config import ExtractConfig, IngestConfig
from sarise.features import extract
from sarise.ingest import ingest
from sarise.store import ImageStore

SERIES = (("PMN28Pt", "PMN-PT"), ("PTO_Funakubo", "PTO"), ("PZT_final", "PZT"),
          ("nm-film", "SrTiO3 film"), ("nm-substrate", "SrTiO3 substrate"))  # fmt: skip


def series(path: str) -> str | None:
    return next((name for key, name in SERIES if key in path), None)


def precision(feats: np.ndarray, labels: list, k: int) -> tuple[float, float, float]:
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    lab = np.array(labels, dtype=object)
    p1, pk, chance = [], [], []
    for i in range(len(lab)):
        same = lab == lab[i]
        same[i] = False
        if lab[i] is None or not same.any():
            continue
        order = np.argsort(-sim[i], kind="stable")
        p1.append(same[order[0]])
        pk.append(same[order[:k]].mean())
        chance.append(same.sum() / (len(lab) - 1))
    return float(np.mean(p1)), float(np.mean(pk)), float(np.mean(chance))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get(
        "SARISE_SHARED_DATA", Path(__file__).parents[1] / ".." / "shared" / "data"
    )
    ap.add_argument("--data", type=Path, default=Path(default))
    ap.add_argument("--model", default=None)
    ap.add_argument("--k", type=int, default=3)
    args = ap.parse_args()
    sources = [args.data / d for d in ("pfm-h5", "ibw", "gwy")]
    with tempfile.TemporaryDirectory() as tmp, get_client(workers=2) as client:
        store = Path(tmp) / "store"
        cfg = IngestConfig(channels=("height", "amplitude", "phase"), max_failed_fraction=1.0)
        ingest(sources, store, config=cfg, root=args.data, client=client, show_progress=False)
        labels = [series(p) for p in ImageStore.open(store, mode="r").metadata()["path"]]
        rows = []
        for name, channel in (("height", 0), ("amplitude", 1), ("phase", 2), ("fused", "fuse")):
            t0 = time.perf_counter()
            out = Path(tmp) / f"features-{name}.zarr"
            extract(store, out, config=ExtractConfig(model=args.model, channel=channel),
                    client=client, show_progress=False)  # fmt: skip
            feats = zarr.open_group(out, mode="r")["features"][:]
            rows.append((name, feats.shape[1], *precision(feats, labels, args.k),
                         time.perf_counter() - t0))  # fmt: skip
    print(
        f"{len(labels)} images, {sum(x is not None for x in labels)} in series "
        f"{', '.join(sorted({x for x in labels if x}))}\n"
    )
    print(f"| descriptor | dims | precision@1 | precision@{args.k} | chance | extract s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, dims, p1, pk, chance, secs in rows:
        print(f"| {name} | {dims} | {p1:.3f} | {pk:.3f} | {chance:.3f} | {secs:.1f} |")


if __name__ == "__main__":
    main()
