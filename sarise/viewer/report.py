"""``sarise report``: a self-contained HTML report of a run (PNGs embedded, and beside it).

Contents: the root projection as a thumbnail mosaic and coloured by the predicted group and
the main metadata columns; a map of every other node; the classifier summary
(predicted-group distribution, confidence); a gallery per cluster of the root map; the
measured symmetry; the projection tree's nodes with their selections and quality.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from sarise.viewer.data import RunData

__all__ = ["write_report"]


def _fig():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(path.name + ".partial.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _fig().close(fig)
    os.replace(tmp, path)
    return path


def mosaic(data: RunData, members: pd.DataFrame, path: Path, grid: int = 16) -> Path:
    """Thumbnails on a ``grid`` x ``grid`` lattice over the map: in each occupied cell, the
    image nearest the cell's centre (the paper's mosaic figure), each at its stored
    thumbnail size (64 px by default), written as the PNG itself."""
    xy = members[["x", "y"]].to_numpy(float)
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    cell = np.minimum(((xy - lo) / span * grid).astype(int), grid - 1)
    centre = (cell + 0.5) / grid * span + lo
    dist = ((xy - centre) ** 2).sum(1)
    order = np.lexsort((dist, cell[:, 1], cell[:, 0]))
    first = np.ones(len(order), bool)
    first[1:] = (np.diff(cell[order, 0]) != 0) | (np.diff(cell[order, 1]) != 0)
    picks = order[first]
    t = data.thumbnail(int(members["image_id"].iloc[0])).shape[-1]
    canvas = np.full((grid * t, grid * t), 255, np.uint8)
    for i in picks:
        cx, cy = cell[i]
        row = (grid - 1 - cy) * t
        thumb = data.thumbnail(int(members["image_id"].iloc[i]))
        canvas[row : row + t, cx * t : cx * t + t] = thumb
    # a 1 px grid line between tiles, so neighbouring thumbnails stay apart
    canvas[::t, :] = canvas[:, ::t] = 255
    return _write_png(canvas, path)


def _write_png(canvas: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    Image.fromarray(canvas).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def map_clusters(members: pd.DataFrame, fit_max: int = 20_000, seed: int = 0) -> np.ndarray:
    """Cluster labels of a node's map (-1: noise): the node's own clustering
    (``project.cluster_min_size``) where it has one, else HDBSCAN on the coordinates with a
    minimum size of 1/40 of the node (at least 5), fitted on a seeded sample of at most
    ``fit_max`` points, the rest labelled as their nearest sampled point."""
    if "cluster" in members:
        return members["cluster"].to_numpy(int)
    from scipy.spatial import cKDTree
    from sklearn.cluster import HDBSCAN

    xy = members[["x", "y"]].to_numpy(float)
    n = len(xy)
    if n < 10:
        return np.full(n, -1)
    fit = np.arange(n)
    if n > fit_max:
        fit = np.sort(np.random.default_rng(seed).choice(n, fit_max, replace=False))
    labels = HDBSCAN(min_cluster_size=max(5, len(fit) // 40), copy=True).fit_predict(xy[fit])
    if n > fit_max:
        return labels[cKDTree(xy[fit]).query(xy)[1]]
    return labels


def cluster_galleries(data: RunData, members: pd.DataFrame, out: Path, limit: int = 20,
                      per: int = 10) -> list[tuple[str, Path]]:  # fmt: skip
    """One gallery per cluster of the map (the ``limit`` largest): the ``per`` images
    nearest the cluster's centre, side by side at their thumbnail size, with the
    cluster's size and its commonest predicted groups and metadata."""
    labels = map_clusters(members)
    ids = members["image_id"].to_numpy(np.int64)
    xy = members[["x", "y"]].to_numpy(float)
    table = data.table(ids)
    sizes = pd.Series(labels[labels >= 0]).value_counts()
    found = []
    for k, (label, n) in enumerate(sizes.iloc[:limit].items()):
        at = np.flatnonzero(labels == label)
        centre = np.median(xy[at], axis=0)
        near = at[np.argsort(((xy[at] - centre) ** 2).sum(1), kind="stable")[:per]]
        thumbs = [data.thumbnail(int(ids[i])) for i in near]
        t = thumbs[0].shape[-1]
        canvas = np.full((t, per * (t + 2)), 255, np.uint8)
        for j, th in enumerate(thumbs):
            canvas[:, j * (t + 2) : j * (t + 2) + t] = th
        parts = [f"cluster {label}: {n} images"]
        for col in [c for c in data.categories[:3] if c in table]:
            top = table[col].iloc[at].dropna().astype(str).value_counts(normalize=True).iloc[:3]
            if len(top):
                parts.append(f"{col} " + ", ".join(f"{v} {f:.0%}" for v, f in top.items()))
        found.append(("; ".join(parts), _write_png(canvas, out / f"cluster-{k:02d}.png")))
    return found


def scatter(data: RunData, members: pd.DataFrame, column: str, path: Path,
            size: tuple[float, float] = (7, 6)) -> Path:  # fmt: skip
    plt = _fig()
    table = data.table(members["image_id"])
    values = table[column]
    fig, ax = plt.subplots(figsize=size)
    if pd.api.types.is_numeric_dtype(values):
        sc = ax.scatter(members.x, members.y, c=values, s=6, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=column)
    else:
        cats = values.fillna("(none)").astype(str)
        top = cats.value_counts().index[:12]
        cmap = plt.get_cmap("tab20")
        for k, c in enumerate(top):
            m = (cats == c).to_numpy()
            ax.scatter(
                members.x[m], members.y[m], s=6, color=cmap(k % 20), label=f"{c} ({m.sum()})"
            )
        rest = ~cats.isin(top).to_numpy()
        if rest.any():
            ax.scatter(
                members.x[rest],
                members.y[rest],
                s=6,
                color="#cccccc",
                label=f"other ({rest.sum()})",
            )
        ax.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_title(f"coloured by {column}")
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


def group_distribution(data: RunData, path: Path) -> tuple[Path, dict]:
    plt = _fig()
    import zarr

    g = zarr.open_group(data.run / "features.zarr", mode="r")
    groups = list(g.attrs["groups"])
    probs = g["probabilities"][:]
    pred = probs.argmax(1)
    counts = np.bincount(pred, minlength=len(groups))
    conf = probs.max(1)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(groups, counts, color="#4477aa")
    ax.set_ylabel("images")
    ax.set_title(
        f"predicted wallpaper group ({len(pred)} images, median confidence {np.median(conf):.2f})"
    )
    ax.tick_params(axis="x", rotation=60)
    summary = {"images": len(pred), "median_confidence": float(np.median(conf)),
               "counts": dict(zip(groups, map(int, counts), strict=True))}  # fmt: skip
    return _save(fig, path), summary


def measured_symmetry(data: RunData) -> str:
    """The report's "Measured symmetry" section (``extract.symmetry``): how many images hold
    a lattice, by lattice family and rotation order, their lattice constants, and how often
    the classifier's group lies in the measured family; empty without the measurement."""
    meta = data.meta
    if "lattice_family" not in meta:
        return ""
    from sarise.evaluate import FAMILIES

    fam = meta["lattice_family"].fillna("").astype(str)
    has = fam != ""
    n = len(meta)
    table = pd.crosstab(fam[has], meta.loc[has, "rotation_order"].astype(int))
    head = "".join(f"<th>{int(c)}-fold</th>" for c in table.columns)
    body = "".join(f"<tr><td>{html.escape(str(f))}</td>" + "".join(f"<td>{int(v)}</td>" for v in r)
                   + "</tr>" for f, r in table.iterrows())  # fmt: skip
    lines = [f"<h2>Measured symmetry</h2><p>{int(has.sum())} of {n} images hold a lattice "
             f"({has.mean():.0%}); the rest are aperiodic (domains, noise, quasicrystals) or "
             "have fewer than about three cells across.</p>"]  # fmt: skip
    if has.any():
        lines.append(f"<table><tr><th>lattice family</th>{head}</tr>{body}</table>")
        a = meta.loc[has, "lattice_a_nm"] if "lattice_a_nm" in meta else pd.Series(dtype=float)
        a = pd.to_numeric(a, errors="coerce").dropna()
        px = pd.to_numeric(meta.loc[has, "lattice_a_px"], errors="coerce").dropna()
        if len(a):
            lines.append(f"<p>lattice constant |a|: median {a.median():.3g} nm (range "
                         f"{a.min():.3g} to {a.max():.3g} nm, {len(a)} images with a known "
                         "pixel size)</p>")  # fmt: skip
        elif len(px):
            lines.append(f"<p>lattice constant |a|: median {px.median():.3g} px (no pixel "
                         "size known)</p>")  # fmt: skip
        # the measured lattice type ("centred" is a rectangular family's lattice)
        measured = fam[has].replace({"centred": "rectangular"})
        agree = [FAMILIES.get(g) == f for g, f in zip(meta.loc[has, "predicted_group"],
                                                      measured, strict=True)]  # fmt: skip
        lines.append(f"<p>the classifier's predicted group lies in the measured lattice family "
                     f"for {np.mean(agree):.0%} of the images with a lattice.</p>")  # fmt: skip
    return "".join(lines)


def _selection(selection) -> str:
    """A node's selection, compactly: a count of ids, a query's text, a box's corners.

    >>> _selection({"ids": list(range(5000))}), _selection(None)
    ('5000 images by id', '-')
    """
    if not selection:
        return "-"
    kind, value = next(iter(selection.items()))
    if kind == "ids":
        return f"{len(value)} images by id"
    if kind == "polygon":
        return f"polygon of {len(value)} vertices"
    return f"{kind}: {json.dumps(value)[:100]}"


def _short(command: str, limit: int = 160) -> str:
    """A command line cut to ``limit`` characters (long ``--ids`` lists), saying so."""
    return command if len(command) <= limit else command[:limit] + f" … ({len(command)} chars)"


def _score(value: float | None) -> str:
    """A map-quality score, or why there is none (too few images to measure it)."""
    return "n/a (too few images)" if value is None else f"{value:.3f}"


#: Nodes with a map in the report (every node is in its tree table).
MAX_NODE_MAPS = 200


def write_report(run: str | Path, out: str | Path | None = None, *, config=None) -> Path:
    """Write ``report.html`` (self-contained) and its PNGs into ``out`` (default
    ``<run>/report``); returns the HTML path."""
    from sarise.config import load_config
    from sarise.project import ROOT
    from sarise.viewer.app import _command

    cfg = config or load_config(None)
    data = RunData(run, cfg.project, cfg.search)
    out = Path(out) if out else data.run / "report"
    out.mkdir(parents=True, exist_ok=True)
    tree = data.tree
    members = tree.members(ROOT)
    pngs = [
        (
            "Thumbnail mosaic of the root projection: in each cell of a 16 x 16 grid over the "
            "map, the image nearest its centre",
            mosaic(data, members, out / "mosaic.png"),
        )
    ]
    columns = data.categories[:5]
    for col in columns:
        pngs.append(
            (
                f"Root projection coloured by {col}",
                scatter(data, members, col, out / f"map-{col}.png"),
            )
        )
    # every other node of the tree, by predicted group, two to a row
    nodes = [n for n in tree.ids() if n != ROOT]
    node_maps = [(f"Node {node} ({tree.info(node)['n']} images, parent "
                  f"{tree.info(node)['parent']}) by {data.group_column}",
                  scatter(data, tree.members(node), data.group_column, out / f"node-{node}.png",
                          size=(5.5, 4.2)))
                 for node in nodes[:MAX_NODE_MAPS]]  # fmt: skip
    clusters = cluster_galleries(data, members, out)
    dist, summary = group_distribution(data, out / "groups.png")
    pngs.append(("Classifier summary: predicted wallpaper groups", dist))

    def img(title, path):
        b64 = base64.b64encode(path.read_bytes()).decode()
        return (f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{b64}" '
                f'style="max-width:100%"><figcaption>{html.escape(title)}</figcaption></figure>')  # fmt: skip

    rows = []
    for node in tree.ids():
        info = tree.info(node)
        q = info["quality"]["trustworthiness"]
        rows.append(f"<tr><td>{html.escape(node)}</td><td>{html.escape(str(info['parent'] or '-'))}</td>"
                    f"<td>{info['n']}</td><td>{html.escape(info['how']['method'])}</td>"
                    f"<td>{_score(q)}</td>"
                    f"<td>{html.escape(_selection(info['selection']))}</td>"
                    f"<td><code>{html.escape(_short(_command(data.run, info)))}</code></td></tr>")  # fmt: skip
    root = tree.info(ROOT)
    body = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>sarise report: {html.escape(data.run.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:auto}}td,th{{padding:2px 8px;font-size:12px;text-align:left}}
figure{{margin:1em 0}}.grid{{display:grid;grid-template-columns:1fr 1fr;gap:8px}}figcaption{{font-size:12px;color:#444}}</style></head><body>
<h1>sarise report: {html.escape(str(data.run))}</h1>
<p>{root["n"]} images; UMAP {html.escape(json.dumps(root["params"]))} on {root["backend"]};
trustworthiness {_score(root["quality"]["trustworthiness"])}, kNN preservation {_score(root["quality"]["knn_preservation"])};
model sha256 {html.escape(str(root.get("model_sha256"))[:16])}…; {summary["images"]} images classified, median
confidence {summary["median_confidence"]:.2f}.</p>
{"".join(img(t, p) for t, p in pngs)}
<h2>Every node of the tree</h2><p>{len(nodes)} nodes below the root{f"; maps of the first {MAX_NODE_MAPS}" if len(nodes) > MAX_NODE_MAPS else ""}.</p>
<div class="grid">{"".join(img(t, p) for t, p in node_maps)}</div>
<h2>Clusters of the root map</h2><p>{len(clusters)} clusters ({"the run's clustering" if "cluster" in members else "HDBSCAN on the map's coordinates"}); for each, the images nearest its centre.</p>
{"".join(img(t, p) for t, p in clusters)}
{measured_symmetry(data)}
<h2>Projection tree</h2><table><tr><th>node</th><th>parent</th><th>images</th><th>how</th><th>T@10</th><th>selection</th><th>reproduce</th></tr>
{"".join(rows)}</table></body></html>"""
    path = out / "report.html"
    tmp = path.with_name("report.html.partial")
    tmp.write_text(body)
    os.replace(tmp, path)
    _prune(out, {p for _, p in (*pngs, *node_maps, *clusters)} | {path})
    return path


#: The files a report writes; what matches these and this report did not write is an
#: earlier report's (more clusters or nodes then) and goes, so the folder is the report.
_REPORT_FILES = ("mosaic.png", "groups.png", "map-*.png", "node-*.png", "cluster-*.png",
                 "*.partial", "*.partial.png")  # fmt: skip


def _prune(out: Path, written: set[Path]) -> None:
    keep = {p.name for p in written}
    for pattern in _REPORT_FILES:
        for stale in out.glob(pattern):
            if stale.name not in keep and stale.is_file():
                stale.unlink()
