"""The explorer in Chromium: time to first paint and to a finished re-projection of a 5k
selection, on generated runs of 10k, 100k and 1M images.

    python benchmarks/bench_view.py [--sizes 10000 100000 1000000]

Each run is generated directly (no ingest/extract): a store with 16 px images and
thumbnails, a feature store with 32-d clustered features and random group probabilities,
and a root projection of clustered 2-D coordinates. ``sarise view`` serves it on a free
port; Playwright drives Debian's Chromium (software WebGL, 2 cores here).

- first paint: from ``page.goto`` until the map's data (and, above 50k points, the
  Datashader image) is in the browser and Bokeh reports the document idle;
- re-projection: a real box-select drag around ~5,000 points, then the button, until the
  breadcrumb shows the child node (the server's UMAP refinement and quality included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def make_run(root: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A generated run of ``n`` images; returns the root coordinates and cluster labels."""
    from sarise.features import _template, chunk_sizes
    from sarise.store import ImageStore

    rng = np.random.default_rng(seed)
    k = max(10, n // 2500)
    centres = rng.uniform(-30, 30, (k, 2))
    labels = rng.integers(0, k, n)
    xy = (centres[labels] + rng.normal(0, 1.0, (n, 2))).astype(np.float32)
    store = ImageStore.create(root / "store", channels=["c0:height"], size=16, dtype="float16",
                              chunk=10_000, thumbnail=16,
                              preprocessing={"size": 16, "fit": "crop", "flatten": "none"})  # fmt: skip
    materials = np.array(["PZT", "BFO", "SrTiO3", "PTO", "BaTiO3", "HfO2", "ZnO", "GaN"])
    block = 100_000
    xx = np.mgrid[:16, :16][1]
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        f = rng.uniform(0.2, 1.2, (hi - lo, 1, 1))
        thumbs = (127 + 120 * np.sin(f * xx + labels[lo:hi, None, None])).astype(np.uint8)
        rows = pd.DataFrame({"image_id": np.arange(lo, hi, dtype=np.int64) + 1,
                             "path": [f"gen/{i:07d}.png" for i in range(lo, hi)],
                             "format": "image", "material": materials[labels[lo:hi] % 8],
                             "date": [f"{2010 + v % 14}-06-01" for v in labels[lo:hi]]})  # fmt: skip
        store.append(np.zeros((hi - lo, 1, 16, 16), np.float16), rows, thumbnails=thumbs[:, None])
    latent = rng.normal(0, 1, (k, 32)).astype(np.float32)
    feats = np.maximum(latent[labels] + 0.3 * rng.normal(0, 1, (n, 32)).astype(np.float32), 0)
    logits = rng.normal(0, 1, (n, 17)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    attrs = {"extractor": "bench", "version": 1, "model_sha256": "0" * 64, "preprocessing": {},
             "groups": ["p1", "p2", "pm", "pg", "cm", "pmm", "pmg", "pgg", "cmm", "p4", "p4m",
                        "p4g", "p3", "p3m1", "p31m", "p6", "p6m"], "chunk": 10_000}  # fmt: skip
    g = _template(root / "features.zarr", n, attrs, 32)
    g["features"][:] = feats
    g["logits"][:] = logits
    g["probabilities"][:] = probs
    g["image_id"][:] = np.arange(n) + 1
    g["done"][:] = chunk_sizes(n, 10_000)
    node = root / "projections" / "root"
    node.mkdir(parents=True)
    pd.DataFrame({"image_id": np.arange(n, dtype=np.int64) + 1, "x": xy[:, 0], "y": xy[:, 1]}).to_parquet(node / "members.parquet", index=False)  # fmt: skip
    info = {"id": "root", "parent": None, "selection": {"all": True},
            "params": {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "seed": 0},
            "backend": "cpu", "how": {"method": "fit"}, "n": n,
            "quality": {"trustworthiness": None, "knn_preservation": None}, "seconds": 0}  # fmt: skip
    (node / "node.json").write_text(json.dumps(info))
    return xy, labels


READY = """(big) => { if (!(window.Bokeh && Bokeh.documents.length)) return false;
  const d = Bokeh.documents[0]; const s = d.get_model_by_name('points');
  if (!s || s.data.x.length === 0) return false;
  return !big || d.get_model_by_name('image').data.image.length > 0; }"""
SCREEN = """([x, y]) => {
  const plot = Bokeh.documents[0].get_model_by_name('map');
  const find = (v) => { if (v.model === plot) return v;
    for (const c of (v.child_views ?? [])) { const r = find(c); if (r) return r; } return null; };
  let pv = null; for (const v of Bokeh.index) { pv = find(v); if (pv) break; }
  const r = pv.canvas_view.el.getBoundingClientRect();
  return [r.left + pv.frame.x_scale.compute(x), r.top + pv.frame.y_scale.compute(y)]; }"""


def measure(run: Path, xy: np.ndarray, labels: np.ndarray) -> tuple[float, float, int]:
    from playwright.sync_api import sync_playwright

    log = run / "view.log"
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(Path(".cache/numba").resolve()))}  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sarise.cli", "view", str(run), "--port", "0"],
                                stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    try:
        url = None
        while url is None and proc.poll() is None:
            if m := re.search(r"at (http://\S+/)", log.read_text()):
                url = m.group(1).replace("localhost", "127.0.0.1")
            time.sleep(0.1)
        if url is None:
            raise SystemExit(f"sarise view did not start:\n{log.read_text()[-3000:]}")
        big = len(xy) > 50_000
        # a box around ~5,000 points: the densest clusters' bounding box, grown until it holds 5k
        order = np.argsort(np.bincount(labels))[::-1]
        take = np.isin(labels, order[: max(1, int(np.ceil(5000 / np.bincount(labels).max())))])
        c = xy[take].mean(0)
        half = 1.0
        while ((np.abs(xy - c) <= half).all(1)).sum() < 5000:
            half *= 1.1
        box = (c - half, c + half)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            t0 = time.perf_counter()
            page.goto(url, wait_until="domcontentloaded", timeout=300_000)
            page.wait_for_function(READY, arg=big, timeout=300_000, polling=50)
            first_paint = time.perf_counter() - t0
            page.get_by_title("Box Select").first.click()
            (x0, y0), (x1, y1) = (page.evaluate(SCREEN, [float(box[0][0]), float(box[1][1])]),
                                  page.evaluate(SCREEN, [float(box[1][0]), float(box[0][1])]))  # fmt: skip
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=4)
            page.mouse.move(x1, y1, steps=4)
            page.mouse.up()
            page.wait_for_function("() => !Bokeh.documents[0].get_model_by_name('status').text.includes(' 0 selected')", timeout=60_000)  # fmt: skip
            status = page.evaluate("() => Bokeh.documents[0].get_model_by_name('status').text")
            selected = int(re.search(r"(\d+) selected", status).group(1))
            t0 = time.perf_counter()
            page.get_by_role("button", name="Re-project selection").click()
            page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('breadcrumb').text.includes('&gt;')",
                                   timeout=300_000, polling=50)  # fmt: skip
            reproject = time.perf_counter() - t0
            page.screenshot(path=str(run / "child.png"))
            browser.close()
        return first_paint, reproject, selected
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sarise-bench-view-") as tmp:
        for n in args.sizes:
            run = Path(tmp) / f"run-{n}"
            t0 = time.perf_counter()
            xy, labels = make_run(run, n)
            print(f"  generated {n} in {time.perf_counter() - t0:.1f} s", flush=True)
            first, repro, selected = measure(run, xy, labels)
            rows.append((n, "datashader" if n > 50_000 else "webgl points", first, selected, repro))
            print(f"  {n}: first paint {first:.2f} s, re-projection {repro:.2f} s", flush=True)
    print("\nexplorer in Chromium (software WebGL), 2 cores")
    print(f"{'points':>10}{'map':>15}{'first paint s':>15}{'selected':>10}{'re-projection s':>17}")
    for n, kind, first, sel, repro in rows:
        print(f"{n:>10}{kind:>15}{first:>15.2f}{sel:>10}{repro:>17.2f}")


if __name__ == "__main__":
    main()
