"""The explorer's Bokeh document: one per browser session, all state on the server.

Layout: the map (WebGL scatter, coloured by a column, hover with thumbnail, thumbnails
drawn at their positions once few enough points are in view) with box, lasso and tap
selection; beside it the breadcrumb of the projection tree with back/forward and the
children already made, the filters (multi-selects for categories, a range for the scan
size, a date range, and the query box they write into), the selection's gallery, the
neighbours of a clicked image, export, and the command that reproduces the node.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from sarise.viewer.data import RunData

__all__ = ["make_document"]

logger = logging.getLogger(__name__)

GALLERY_MAX = 48
DATASHADE_MIN = 50_000  # above this many points the map is a Datashader image
SAMPLE = 10_000  # points sent to the browser over it, for hover
THUMB_BUDGET = 150  # thumbnails drawn on the map at once
THUMB_PX = 48  # their edge on screen
#: Queries, re-projections and neighbour searches run here, never on the server's event
#: loop: while one runs, every session keeps getting pages and thumbnails. One thread:
#: numba's parallel kernels (UMAP, nearest neighbours) must not run from two at once.
WORK = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sarise-viewer")


#: Categorical colours: Category10, then the light halves of Category20's pairs, so
#: neighbouring categories never get two shades of one hue.
def _categorical(n: int) -> list[str]:
    from bokeh.palettes import Category10, Category20, Turbo256

    if n <= 10:
        return list(Category10[10][: max(n, 1)])
    if n <= 20:
        return list(Category20[20][::2]) + list(Category20[20][1::2])
    return [Turbo256[int(i)] for i in np.linspace(0, 255, n)]


MISSING = "#bbbbbb"
NO_VALUE = "\x00no value"  # the legend's "no value" entry among hidden categories
SWATCH = "display:inline-block;width:12px;height:12px;vertical-align:middle;border-radius:2px;"


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def legend_categories(values: pd.Series) -> list[str]:
    """A categorical colouring's categories in palette order (what legend indices mean)."""
    return sorted(values.dropna().astype(str).unique())


def _palette(values: pd.Series) -> list[str]:
    """One colour per value: Viridis over the range of a numeric column, a categorical
    palette over the sorted categories of any other; grey where there is no value."""
    from bokeh.palettes import Viridis256

    if _numeric(values):
        v = values.to_numpy(float)
        finite = np.isfinite(v)
        if not finite.any():
            return [MISSING] * len(v)
        lo, hi = np.nanmin(v), np.nanmax(v)
        idx = (
            np.zeros(len(v), int)
            if hi <= lo
            else np.clip((np.nan_to_num(v, nan=lo) - lo) / (hi - lo) * 255, 0, 255).astype(int)
        )
        return [Viridis256[i] if f else MISSING for i, f in zip(idx, finite, strict=True)]
    cats = legend_categories(values)
    pal = _categorical(len(cats))
    lut = {c: pal[i % len(pal)] for i, c in enumerate(cats)}
    return [lut.get(str(v), MISSING) if not pd.isna(v) else MISSING for v in values]


def _act(action: str, value: int) -> str:
    """An ``onclick`` that tells the server ``action:value`` (through the hidden ``action``
    input; the time makes a repeated click a change)."""
    return (f"event.stopPropagation(); Bokeh.documents[0].get_model_by_name('action').value"
            f" = '{action}:{int(value)}:' + Date.now()")  # fmt: skip


def _legend_item(label: str, count: int, colour: str, index: int, hidden: bool) -> str:
    """One category: click it to hide or show it, "only" to show it alone."""
    off = "opacity:0.35;text-decoration:line-through;" if hidden else ""
    return (f'<div class="legend-item{" hidden" if hidden else ""}" style="cursor:pointer;{off}" '
            f'title="click: hide or show" onclick="{_act("hide", index)}">'
            f'<span class="swatch" style="{SWATCH}background:{colour}"></span> '
            f"{html.escape(label)} ({count}) "
            f'<a class="legend-only" style="font-size:10px;color:#06c" '
            f'onclick="{_act("only", index)}">only</a></div>')  # fmt: skip


def legend_html(name: str, values: pd.Series, limit: int = 24,
                hidden: frozenset[str] = frozenset()) -> str:  # fmt: skip
    """The legend of a colouring as the page shows it: a swatch, the category and its
    count for a categorical column (the most frequent first; a click hides or shows a
    category, "only" shows it alone, ``hidden`` ones are struck through), or a colour bar
    from the lowest to the highest value for a numeric one; grey is "no value" (category
    index -1 of :func:`legend_categories`)."""
    title = f"<div><b>colour: {html.escape(name)}</b></div>"
    missing = int(values.isna().sum())
    if _numeric(values):
        none = (f'<div class="legend-item"><span class="swatch" style="{SWATCH}background:{MISSING}">'
                f"</span> no value ({missing})</div>") if missing else ""  # fmt: skip
        v = values.to_numpy(float)
        if not np.isfinite(v).any():
            return title + none
        lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
        from bokeh.palettes import Viridis256

        stops = ", ".join(Viridis256[i] for i in range(0, 256, 32)) + f", {Viridis256[255]}"
        return (title + f'<div class="colorbar" style="height:12px;width:220px;background:'
                f'linear-gradient(to right, {stops})"></div><div class="colorbar-labels" '
                f'style="width:220px;display:flex;justify-content:space-between">'
                f"<span>{lo:.4g}</span><span>{hi:.4g}</span></div>" + none)  # fmt: skip
    cats = legend_categories(values)
    colours = dict(zip(cats, _categorical(len(cats)), strict=False))
    counts = values.dropna().astype(str).value_counts()
    items = [_legend_item(c, int(n), colours[c], cats.index(c), c in hidden)
             for c, n in counts.iloc[:limit].items()]  # fmt: skip
    more = f"<div>+ {len(counts) - limit} more</div>" if len(counts) > limit else ""
    none = _legend_item("no value", missing, MISSING, -1, NO_VALUE in hidden) if missing else ""
    reset = (f'<div><a class="legend-all" style="font-size:11px;color:#06c;cursor:pointer" '
             f'onclick="{_act("all", 0)}">show all</a></div>') if hidden else ""  # fmt: skip
    return title + "".join(items) + more + none + reset


def hidden_rows(values: pd.Series, hidden: frozenset[str]) -> np.ndarray:
    """Which rows a legend's ``hidden`` categories hide (``NO_VALUE``: the rows without one).

    >>> hidden_rows(pd.Series(["a", None, "b"]), frozenset({"b", NO_VALUE})).tolist()
    [False, True, True]
    """
    if not hidden or _numeric(values):
        return np.zeros(len(values), bool)
    out = values.astype(object).where(values.notna(), NO_VALUE).astype(str).isin(hidden)
    return out.to_numpy()


def _plot_pixels(plot) -> tuple[int, int]:
    """The plot area's size in screen pixels as the browser reported it (a guess before)."""
    try:
        return int(plot.inner_width or 900), int(plot.inner_height or 660)
    except ValueError:  # not reported yet (bokeh's UnsetValueError)
        return 900, 800


def apart(x, y, idx, xr, yr, pixels, size: float) -> np.ndarray:
    """Those of ``idx`` whose thumbnails (``size`` screen pixels square, centred on the
    point) can be drawn without overlapping: in point order, each one that overlaps none
    taken before it (the view spans ``pixels`` = (width, height) screen pixels).

    >>> apart(np.array([0.1, 0.12, 0.5, 0.9]), np.array([0.1, 0.1, 0.1, 0.9]), np.arange(4),
    ...       (0, 1), (0, 1), (100, 100), 20).tolist()
    [0, 2, 3]
    """
    if len(idx) == 0:
        return idx
    (x0, x1), (y0, y1) = sorted(xr), sorted(yr)
    px = (x - x0) / max(x1 - x0, 1e-12) * pixels[0]
    py = (y - y0) / max(y1 - y0, 1e-12) * pixels[1]
    # first the first point of each cell of a size-pixel grid: few candidates for the scan
    cells = np.floor(px / size).astype(np.int64) * (int(pixels[1] / size) + 3) + np.floor(
        py / size
    ).astype(np.int64)
    _, first = np.unique(cells, return_index=True)
    taken: dict[tuple[int, int], list[int]] = {}
    keep = []
    for i in np.sort(first):
        gx, gy = int(px[i] // size), int(py[i] // size)
        near = (
            j for dx in (-1, 0, 1) for dy in (-1, 0, 1) for j in taken.get((gx + dx, gy + dy), ())
        )
        if any(abs(px[i] - px[j]) < size and abs(py[i] - py[j]) < size for j in near):
            continue
        taken.setdefault((gx, gy), []).append(i)
        keep.append(i)
    return idx[np.asarray(keep, dtype=np.int64)]


def shade_points(xy: np.ndarray, values: pd.Series, xr, yr, width: int = 720, height: int = 640,
                 whole: pd.Series | None = None):  # fmt: skip
    """An RGBA (uint32) image of all points, coloured by category or value (Datashader).

    ``whole``: the colouring's values over the whole node when ``values`` are a subset
    (a filter, hidden categories), so that every category keeps its legend colour and a
    numeric colouring its span."""
    whole = values if whole is None else whole
    import datashader as ds
    import datashader.transfer_functions as tf

    cv = ds.Canvas(plot_width=width, plot_height=height, x_range=tuple(xr), y_range=tuple(yr))
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]})
    if pd.api.types.is_numeric_dtype(values):
        frame["v"] = values.to_numpy(float)
        from bokeh.palettes import Viridis256

        span = whole.to_numpy(float)
        span = (float(np.nanmin(span)), float(np.nanmax(span))) if np.isfinite(span).any() else None
        # linear over the whole node's span, as the legend's colour bar
        img = tf.shade(cv.points(frame, "x", "y", ds.mean("v")), cmap=list(Viridis256),
                       how="linear", span=span)  # fmt: skip
    else:
        cats = values.fillna("(none)").astype(str)
        frame["c"] = pd.Categorical(cats)
        known = legend_categories(whole)
        colours = dict(zip(known, _categorical(len(known)), strict=False))
        colours["(none)"] = MISSING
        img = tf.shade(
            cv.points(frame, "x", "y", ds.count_cat("c")), color_key=colours, how="eq_hist"
        )
    return tf.spread(img, px=1).to_numpy()


def _gallery(data: RunData, ids, title: str, distances=None, channel: int = 0) -> str:
    """Thumbnails (of one channel) with their file names (whole, wrapped; the full path on
    hover) and, for neighbours, the cosine distance to the query; a click picks the image
    as a click on the map would."""
    ids = list(ids)
    table = data.table(ids[:GALLERY_MAX])
    dist = list(distances or [])[:GALLERY_MAX]
    cells = "".join(
        f'<figure style="margin:2px;display:inline-block;text-align:center;vertical-align:top">'
        f'<img src="/thumb/{i}/{channel}.png" width="72" height="72" title="{html.escape(path)}" '
        f'data-image-id="{i}" style="cursor:pointer" onclick="{_act("pick", i)}"><figcaption style="font-size:9px;width:72px;'
        f'overflow-wrap:anywhere">{html.escape(n)}'
        + (f"<br>d {dist[k]:.3f}" if k < len(dist) else "")
        + "</figcaption></figure>"
        for k, (i, n, path) in enumerate(
            zip(ids[:GALLERY_MAX], table["name"], table["path"], strict=True)
        )
    )
    more = f" (first {GALLERY_MAX})" if len(ids) > GALLERY_MAX else ""
    return f"<b>{html.escape(title)}</b>: {len(ids)}{more}<br>{cells}"


#: What the image panel lists about an image, when the run has it.
PANEL_COLUMNS = ("path", "channel", "format", "instrument", "material", "sample", "operator",
                 "date", "imaging_mode", "scan_size_um", "combined_group", "predicted_group", "top3",
                 "rotation_order", "lattice_family", "lattice_a_nm", "symmetry_group")  # fmt: skip


def _scale_bar(pixel_nm: float, shown_px: int, stored_px: int) -> str:
    """A scale bar under an image: a round length of about a quarter of its width.

    >>> bar = _scale_bar(0.5, 256, 128)  # 128 stored px of 0.5 nm shown 256 px wide
    >>> "width:40px" in bar and "10 nm" in bar
    True
    """
    if not np.isfinite(pixel_nm) or pixel_nm <= 0:
        return '<div class="scale-bar" style="font-size:10px">no pixel size in the file</div>'
    width_nm = pixel_nm * stored_px
    target = width_nm / 4
    step = 10 ** np.floor(np.log10(target))
    length = max(m * step for m in (1, 2, 5) if m * step <= target)
    px = length / width_nm * shown_px
    label = f"{length:g} nm" if length < 1000 else f"{length / 1000:g} µm"
    return (f'<div class="scale-bar" style="font-size:10px"><div style="width:{px:.0f}px;'
            f'height:4px;background:#000"></div>{label}</div>')  # fmt: skip


def image_panel(data: RunData, image_id: int) -> str:
    """The clicked image: every stored channel at full stored resolution (shown at twice
    the size, unsmoothed), a scale bar in physical units where the pixel size is known,
    and its metadata, predicted groups and measured symmetry."""
    row = data.table([image_id]).iloc[0]
    shown = 2 * data.image_size
    bar = _scale_bar(data.pixel_nm(image_id), shown, data.image_size)
    names = str(row.get("channel") or "").split(";")
    figures = "".join(
        f'<figure style="display:inline-block;margin:4px"><img src="/image/{image_id}/{c}.png" '
        f'width="{shown}" height="{shown}" style="image-rendering:pixelated" '
        f'alt="channel {c}"><figcaption style="font-size:11px">'
        f"{html.escape(names[c] if c < len(names) and names[c] else data.channels[c])}"
        f"</figcaption>{bar}</figure>"
        for c in range(len(data.channels))
    )
    cells = "".join(
        f"<tr><th>{html.escape(c)}</th><td>{html.escape(_fmt(row[c]))}</td></tr>"
        for c in PANEL_COLUMNS if c in row.index and not _blank(row[c])
    )  # fmt: skip
    return (f'<div><b>{html.escape(str(row["name"]))}</b> (image {image_id})</div>{figures}'
            f'<table style="font-size:11px">{cells}</table>')  # fmt: skip


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value == ""


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _filters_to_query(choices: dict[str, list[str]], size, dates) -> str:
    parts = []
    for col, values in choices.items():
        if values:
            parts.append(f"{col} in [{', '.join(json.dumps(v) for v in values)}]")
    # a range never drops the images that have no value (no scan size, no date)
    if size is not None:
        parts.append(f"(scan_size_um between {size[0]:.6g} and {size[1]:.6g} "
                     "or scan_size_um is null)")  # fmt: skip
    if dates is not None:
        parts.append(f"(date between {dates[0]} and {dates[1]} or date is null)")
    return " and ".join(parts)


def _ms(value) -> float:
    """A Bokeh datetime value (a number of ms, or a date/datetime/Timestamp) in ms."""
    if isinstance(value, int | float):
        return float(value)
    return pd.Timestamp(value).value / 1e6


def make_document(doc, data: RunData, datashade_min: int = DATASHADE_MIN) -> None:
    """Build one session's document on the root node of the run; nodes of more than
    ``datashade_min`` images are drawn as a Datashader image under a sample of points."""
    from bokeh.events import SelectionGeometry, Tap
    from bokeh.layouts import column, row
    from bokeh.models import (
        Button,
        ColumnDataSource,
        CustomJS,
        DateRangeSlider,
        Div,
        HoverTool,
        MultiChoice,  # fmt: skip
        Range1d,
        RangeSlider,
        Select,
        TapTool,
        TextInput,
    )
    from bokeh.plotting import figure

    from sarise.errors import SariseError
    from sarise.project import breadcrumb
    from sarise.query import filter_table

    tree = data.tree
    # mask: the filter's rows of the node; hidden: the legend's hidden categories, hide: their rows
    state = {"node": "root", "back": [], "forward": [], "members": None, "mask": None,
             "hidden": frozenset(), "hide": None, "channel": 0}  # fmt: skip
    source = ColumnDataSource(data={"x": [], "y": [], "image_id": [], "name": [], "color": [],
                                    "alpha": [], "top3": [], "info": []}, name="points")  # fmt: skip
    thumbs = ColumnDataSource(data={"url": [], "x": [], "y": [], "w": [], "h": []}, name="thumbs")
    near = ColumnDataSource(data={"x": [], "y": []}, name="neighbours")
    image = ColumnDataSource(data={"image": [], "x": [], "y": [], "dw": [], "dh": []}, name="image")
    # an export's URL: the browser downloads it as soon as the server sets it
    download = ColumnDataSource(data={"url": []}, name="download")
    download.js_on_change(
        "data",
        CustomJS(
            code="""
        const url = cb_obj.data.url[0];
        if (url) { const a = document.createElement('a'); a.href = url;
                   a.download = url.split('/').pop(); document.body.appendChild(a);
                   a.click(); a.remove(); }"""
        ),
    )

    # explicit ranges, set by the server on every node change (a DataRange1d would keep
    # the browser's own auto-range, and a child's points then fell outside the view)
    # a fixed height: the panels below (image, neighbours, selection) grow the page, never
    # squeeze the map
    p = figure(name="map", title="", output_backend="webgl", sizing_mode="stretch_width",
               height=720,
               x_range=Range1d(0, 1), y_range=Range1d(0, 1),
               tools="pan,wheel_zoom,box_select,lasso_select,tap,reset",
               active_scroll="wheel_zoom", min_width=500)  # fmt: skip
    p.image_rgba(image="image", x="x", y="y", dw="dw", dh="dh", source=image)
    # thumbnails in screen pixels: square on screen whatever the axes' scales and zoom
    p.image_url(url="url", x="x", y="y", w="w", h="h", anchor="center", source=thumbs,
                w_units="screen", h_units="screen")  # fmt: skip
    dots = p.scatter("x", "y", source=source, size=7, color="color", alpha="alpha",
                     line_color=None, name="dots")  # fmt: skip
    p.scatter("x", "y", source=near, size=14, marker="circle", fill_color=None,
              line_color="red", line_width=2)  # fmt: skip
    hover = HoverTool(renderers=[dots], tooltips=_hover(0))
    p.add_tools(hover)
    p.select_one(TapTool).renderers = [dots]

    crumbs = Div(name="breadcrumb")
    status = Div(name="status")
    command = Div(
        name="command",
        width=370,
        styles={"font-family": "monospace", "font-size": "11px", "word-break": "break-all"},
    )
    gallery = Div(name="gallery", sizing_mode="stretch_width")
    neighbours = Div(name="neighbours_gallery", sizing_mode="stretch_width")
    panel = Div(name="image_panel", sizing_mode="stretch_width")
    message = Div(name="message", styles={"color": "#a00"})
    colour = Select(title="colour by", value=data.group_column, name="colour",
                    options=[*data.categories, "cluster", *data.numeric])  # fmt: skip
    # a fixed box (scrolling inside): a legend growing after layout never covers the buttons
    legend = Div(name="legend", width=370, height=170,
                 styles={"overflow-y": "auto", "font-size": "12px"})  # fmt: skip
    children = Select(title="children of this node", options=[], name="children")
    query = TextInput(
        title="query (sarise query language)", name="query", sizing_mode="stretch_width"
    )
    # each value with its count in the archive (rows without one are never dropped)
    counts, size_span, date_span = data.filter_ranges()
    choices = {c: MultiChoice(title=c, name=f"filter-{c}",
                              options=[(v, f"{v} ({n})") for v, n in counts[c]])
               for c in counts}  # fmt: skip
    size_slider = None
    if size_span is not None:
        lo, hi = size_span
        size_slider = RangeSlider(title="scan size (µm)", start=lo, end=hi, value=(lo, hi),
                                  step=(hi - lo) / 200)  # fmt: skip
    date_slider = None
    if date_span is not None:
        date_slider = DateRangeSlider(title="date", start=date_span[0], end=date_span[1],
                                      value=date_span)  # fmt: skip
    buttons = {name: Button(label=label, name=name) for name, label in [
        ("reproject", "Re-project selection"), ("back", "◀ back"), ("forward", "forward ▶"),
        ("open_child", "open child"), ("apply", "Apply filter"), ("clear", "Clear filter"),
        ("filter_child", "Filter → child node"), ("export_csv", "Export selection CSV"),
        ("export_parquet", "Export selection Parquet")]}  # fmt: skip
    # what a click inside the legend or a gallery asks for (set by their onclick code)
    action = TextInput(name="action", visible=False)
    thumb_channel = Select(title="thumbnails of", name="thumb-channel", value="0",
                           options=[(str(c), n) for c, n in enumerate(data.channels)],
                           visible=len(data.channels) > 1)  # fmt: skip

    def show(node: str, *, remember: bool = True) -> None:
        if remember and state["node"] != node:
            state["back"].append(state["node"])
            state["forward"].clear()
        state["node"] = node
        members = tree.members(node)
        state["members"] = members
        state["mask"] = None
        state["hide"] = state["values"] = None
        state["xy"] = members[["x", "y"]].to_numpy(float)
        state["ids"] = members["image_id"].to_numpy(np.int64)
        state["pos"] = data.positions(state["ids"])
        state["big"] = len(members) > datashade_min
        state["big_selected"] = []
        # the points sent to the browser: all of them, or a seeded sample over a datashaded image
        shown = np.arange(len(members))
        if state["big"]:
            k = min(SAMPLE, len(members))
            shown = np.sort(np.random.default_rng(0).choice(len(members), k, replace=False))
        state["shown"] = shown
        table = data.table(state["ids"][shown])
        cols = [c for c in ("material", "date", "format") if c in table]
        parts = [[("" if pd.isna(v) else str(v)) for v in table[c]] for c in cols]
        info = [" · ".join(t for t in tup if t) for tup in zip(*parts, strict=True)] if cols else [""] * len(shown)  # fmt: skip
        source.selected.indices = []
        source.data = {"x": state["xy"][shown, 0], "y": state["xy"][shown, 1],
                       "image_id": state["ids"][shown].astype(str),
                       "name": table["name"].to_numpy(), "color": _palette(colour_values(shown)),
                       "alpha": alphas(),
                       "top3": table["top3"].to_numpy(), "info": np.asarray(info, object)}  # fmt: skip
        near.data = {"x": [], "y": []}
        lo, hi = state["xy"].min(0), state["xy"].max(0)
        # a margin of 3%, and room for half a thumbnail, so none is cut by the axes
        size = np.asarray(_plot_pixels(p), float)
        pad = (hi - lo) * (0.03 + THUMB_PX / 2 / np.maximum(size - THUMB_PX, 1.0)) + 1e-9
        state["quiet"] = True  # one image for the new ranges, not one per range
        x0, x1, y0, y1 = lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]
        # Reset returns to the node's own ranges
        p.x_range.update(start=x0, end=x1, reset_start=x0, reset_end=x1)
        p.y_range.update(start=y0, end=y1, reset_start=y0, reset_end=y1)
        state["quiet"] = False
        path = breadcrumb(tree, node)
        crumbs.text = "projection: " + " &gt; ".join(f"<b>{html.escape(n)}</b>" for n in path)
        kids = tree.children(node)
        children.options = kids
        children.value = kids[0] if kids else ""
        nodeinfo = tree.info(node)
        q = nodeinfo["quality"]["trustworthiness"]
        p.title.text = (f"{node}: {len(members)} images, {nodeinfo['how']['method']}, "
                        f"trustworthiness {q:.3f}" if q is not None else f"{node}: {len(members)} images")  # fmt: skip
        command.text = "reproduce: " + html.escape(_command(data.run, nodeinfo))
        gallery.text = neighbours.text = message.text = panel.text = ""
        buttons["back"].disabled = not state["back"]
        buttons["forward"].disabled = not state["forward"]
        update_status()
        update_legend()
        update_image()
        update_thumbs()

    def colour_values(rows: np.ndarray | None = None) -> pd.Series:
        """The colouring's values at these rows of the node (all of them by default;
        ``cluster``: the node's own clustering, "none" for HDBSCAN's noise), made once
        per node and colouring."""
        if state.get("values") is None:
            if colour.value == "cluster":
                labels = state["members"].get("cluster")
                lab = np.full(len(state["ids"]), -1) if labels is None else labels.to_numpy()
                state["values"] = pd.Series([f"cluster {v}" if v >= 0 else None for v in lab],
                                            dtype=object, name="cluster")  # fmt: skip
            else:
                state["values"] = data.column(colour.value, state["pos"])
        values = state["values"]
        return values if rows is None else values.iloc[rows].reset_index(drop=True)

    def update_legend() -> None:
        legend.text = legend_html(colour.value, colour_values(), hidden=state["hidden"])

    def hidden() -> np.ndarray:
        """The node's rows the legend hides."""
        if state["hide"] is None:
            state["hide"] = (hidden_rows(colour_values(), state["hidden"]) if state["hidden"]
                             else np.zeros(len(state["ids"]), bool))  # fmt: skip
        return state["hide"]

    def visible() -> np.ndarray:
        """The node's rows on screen: in the filter (when one is applied), not hidden."""
        keep = ~hidden()
        return keep if state["mask"] is None else keep & state["mask"]

    def alphas() -> np.ndarray:
        """The points' opacity: none for hidden ones (and over a datashaded image), faint
        outside the filter."""
        shown = state["shown"]
        if state["big"]:
            return np.zeros(len(shown))
        alpha = np.full(len(shown), 0.85) if state["mask"] is None else \
            np.where(state["mask"][shown], 0.9, 0.04)  # fmt: skip
        return np.where(hidden()[shown], 0.0, alpha)

    def refresh() -> None:
        """Opacity, thumbnails, density image, legend and counts after a change of what is shown."""
        source.data["alpha"] = alphas()
        update_legend()
        update_status()
        update_thumbs()
        if state["big"]:
            update_image()

    def update_image() -> None:
        """Big nodes: every point, aggregated by Datashader for the current view."""
        if not state["big"]:
            image.data = {"image": [], "x": [], "y": [], "dw": [], "dh": []}
            return
        x0, x1 = sorted((p.x_range.start, p.x_range.end))
        y0, y1 = sorted((p.y_range.start, p.y_range.end))
        # the same view of the same node looks the same to every session: shaded once
        key = (state["node"], colour.value, x0, x1, y0, y1)
        rgba = None if state["mask"] is not None or state["hidden"] else data.shaded.get(key)
        if rgba is None:
            keep = visible()
            rgba = shade_points(state["xy"][keep], colour_values(np.flatnonzero(keep)),
                                (x0, x1), (y0, y1), whole=colour_values())  # fmt: skip
            if state["mask"] is None and not state["hidden"]:
                data.shaded.put(key, rgba)
        image.data = {"image": [rgba], "x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0]}

    def update_status() -> None:
        n = len(state["ids"])
        sel = len(selected_ids())
        shown = int(visible().sum())
        status.text = f"node {state['node']}: {n} points, {shown} shown, {sel} selected"

    def update_thumbs() -> None:
        xr, yr = p.x_range, p.y_range
        x, y = state["xy"][:, 0], state["xy"][:, 1]
        if xr.start is None or xr.end is None or not len(x):
            thumbs.data = {"url": [], "x": [], "y": [], "w": [], "h": []}
            return
        inside = (x >= min(xr.start, xr.end)) & (x <= max(xr.start, xr.end)) & \
                 (y >= min(yr.start, yr.end)) & (y <= max(yr.start, yr.end))  # fmt: skip
        idx = np.flatnonzero(inside & visible())
        # thumbnails that never overlap on screen: zooming in reveals more of them
        # instead of piling them up (the browser reports the plot's size in pixels)
        idx = apart(x[idx], y[idx], idx, (xr.start, xr.end), (yr.start, yr.end),
                    _plot_pixels(p), THUMB_PX)  # fmt: skip
        if len(idx) == 0 or len(idx) > THUMB_BUDGET:
            thumbs.data = {"url": [], "x": [], "y": [], "w": [], "h": []}
            return
        w = h = THUMB_PX
        ids = state["ids"][idx]
        c = state["channel"]
        thumbs.data = {"url": [f"/thumb/{i}/{c}.png" for i in ids], "x": x[idx], "y": y[idx],
                       "w": [w] * len(idx), "h": [h] * len(idx)}  # fmt: skip

    def selected_ids() -> list[int]:
        if state.get("big"):
            return list(state["big_selected"])
        ids = np.asarray(source.data["image_id"])
        off = hidden()[state["shown"]]
        return [int(ids[i]) for i in sorted(source.selected.indices) if not off[i]]

    def on_geometry(event) -> None:
        """Big nodes: a box or lasso selects among all points, not only the sample."""
        if not state["big"] or not event.final:
            return
        g = event.geometry
        xy = state["xy"]
        if g["type"] == "rect":
            x0, x1 = sorted((g["x0"], g["x1"]))
            y0, y1 = sorted((g["y0"], g["y1"]))
            hit = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        elif g["type"] == "poly":
            from sarise.project import _inside_polygon

            hit = _inside_polygon(xy, np.column_stack([g["x"], g["y"]]))
        else:
            return
        hit &= visible()
        state["big_selected"] = [int(i) for i in state["ids"][hit]]
        update_status()
        ids = state["big_selected"]
        gallery.text = _gallery(data, ids, "selection", channel=state["channel"]) if ids else ""

    def on_select(attr, old, new) -> None:
        ids = selected_ids()
        update_status()
        gallery.text = _gallery(data, ids, "selection", channel=state["channel"]) if ids else ""

    def on_tap(event) -> None:
        """A click: the nearest image on screen to the cursor is picked."""
        on = np.flatnonzero(visible())
        if not len(on):
            return
        x, y = state["xy"][on, 0], state["xy"][on, 1]
        pick(int(state["ids"][on[int(np.argmin((x - event.x) ** 2 + (y - event.y) ** 2))]]))

    def pick_and_select(image_id: int) -> None:
        """A gallery click: the image is picked, and selected where it is on this node."""
        at = np.flatnonzero(state["ids"] == image_id)
        if not len(at):
            message.text = f"image {image_id} is not on node {html.escape(state['node'])}"
        elif state["big"]:
            state["big_selected"] = [image_id]
            update_status()
        else:
            rows = np.flatnonzero(state["shown"] == at[0])
            source.selected.indices = [int(r) for r in rows]
        pick(image_id)

    def pick(picked: int) -> None:
        """An image's panel, and its neighbours highlighted on the map and shown."""
        panel.text = image_panel(data, picked)

        def then(result) -> None:
            found, dist = result
            pos = pd.Index(state["ids"]).get_indexer(found)
            pos = pos[pos >= 0]
            near.data = {"x": state["xy"][pos, 0], "y": state["xy"][pos, 1]}
            name = data.table([picked])["name"].iloc[0]
            neighbours.text = _gallery(data, found, f"most similar to {name}", dist,
                                       channel=state["channel"])  # fmt: skip

        off_loop(lambda: data.neighbours(picked), then)

    def report(exc: Exception) -> None:
        """An error shown to the user (never only in the server log)."""
        if not isinstance(exc, SariseError):  # QueryError is one; anything else is a bug
            logger.error("viewer callback failed", exc_info=exc)
            exc = SariseError(f"internal error: {type(exc).__name__}: {exc}")
        message.text = html.escape(str(exc)).replace("\n", "<br>")

    def guarded(fn):
        def run(event=None):  # a button's click event carries nothing we need
            message.text = ""
            try:
                fn()
            except Exception as exc:
                report(exc)

        return run

    def guarded_change(fn):
        def run(attr, old, new):
            message.text = ""
            try:
                fn(attr, old, new)
            except Exception as exc:
                report(exc)

        return run

    def guarded_event(fn):
        def run(event):
            message.text = ""
            try:
                fn(event)
            except Exception as exc:
                report(exc)

        return run

    def off_loop(compute, then) -> None:
        """``compute()`` on a worker thread, then ``then(result)`` back in this session
        (``add_next_tick_callback`` is the one thread-safe Document method)."""
        node = state["node"]

        def finish(future) -> None:
            try:
                result = future.result()
                if state["node"] == node:  # the user moved on meanwhile: drop the result
                    then(result)
            except Exception as exc:
                report(exc)

        WORK.submit(compute).add_done_callback(
            lambda future: doc.add_next_tick_callback(lambda: finish(future))
        )

    def reproject() -> None:
        ids = selected_ids()
        if len(ids) < 3:
            raise SariseError("select at least 3 images to re-project")
        parent = state["node"]
        message.text = f"re-projecting {len(ids)} images..."

        def compute() -> str:
            t0 = time.perf_counter()
            node = tree.child(parent, {"ids": ids})
            logger.info("re-projected %d images as %s in %.2f s", len(ids), node,
                        time.perf_counter() - t0)  # fmt: skip
            return node

        def then(node: str) -> None:
            message.text = ""
            show(node)

        off_loop(compute, then)

    def apply_filter() -> None:
        text = query.value.strip()
        if not text:
            clear_filter()
            return
        ids = state["members"]["image_id"]
        off_loop(lambda: filter_table(data.table(ids), text), show_mask)

    def show_mask(mask: np.ndarray) -> None:
        state["mask"] = mask
        if not state["big"]:
            source.selected.indices = (
                [int(i) for i in np.flatnonzero(mask)] if mask.sum() <= 2000 else []
            )
        refresh()

    def clear_filter() -> None:
        state["mask"] = None
        refresh()

    def filter_child() -> None:
        text = query.value.strip()
        if not text:
            raise SariseError("write a query (or use the filter widgets) first")
        parent = state["node"]
        off_loop(lambda: tree.child(parent, {"query": text}), show)

    def widgets_to_query() -> None:
        size = None
        if size_slider is not None and tuple(size_slider.value) != (size_slider.start,
                                                                     size_slider.end):  # fmt: skip
            size = size_slider.value
        span = None
        if date_slider is not None:
            day = 86_400_000.0
            lo, hi = (_ms(v) for v in date_slider.value)
            if lo > _ms(date_slider.start) + day or hi < _ms(date_slider.end) - day:
                a, b = date_slider.value_as_date
                span = (a.isoformat(), b.isoformat())
        query.value = _filters_to_query({c: w.value for c, w in choices.items()}, size, span)

    def export(kind: str) -> None:
        ids = selected_ids() or [int(i) for i in state["ids"]]
        table = data.table(ids).drop(columns=["raw", "top3"], errors="ignore")
        # where each image is on this node's map
        at = pd.Series(np.arange(len(state["ids"])), index=state["ids"]).reindex(ids).to_numpy()
        table.insert(0, "node", state["node"])
        table.insert(1, "x", state["xy"][at, 0])
        table.insert(2, "y", state["xy"][at, 1])
        if "image_id" in table:
            table.insert(0, "image_id", table.pop("image_id"))
        folder = data.run / "exports"
        folder.mkdir(exist_ok=True)
        name = f"{state['node']}-{len(ids)}-{time.strftime('%Y%m%dT%H%M%S')}.{kind}"
        tmp = folder / (name + ".partial")
        if kind == "csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        tmp.rename(folder / name)
        message.text = f'<a href="/export/{name}" download>{name}</a> ({len(ids)} images)'
        download.data = {"url": [f"/export/{name}"]}  # the browser saves it (CustomJS)

    source.selected.on_change("indices", on_select)
    p.on_event(Tap, guarded_event(on_tap))
    p.on_event(SelectionGeometry, guarded_event(on_geometry))

    def recolour() -> None:
        state["hidden"], state["hide"] = frozenset(), None  # a new colouring shows everything
        state["values"] = None
        source.data["color"] = _palette(colour_values(state["shown"]))
        refresh()

    colour.on_change("value", lambda attr, old, new: recolour())

    def on_action(attr, old, new) -> None:
        """A click in the legend (hide, only, all) or on a gallery's thumbnail (pick)."""
        m = re.fullmatch(r"(hide|only|all|pick):(-?\d{1,20}):\d+", new or "")
        if m is None:
            return
        kind, value = m.group(1), int(m.group(2))
        if kind == "pick":
            pick_and_select(value)
            return
        values = colour_values()
        cats = legend_categories(values)
        if kind == "all":
            state["hidden"] = frozenset()
        elif -1 <= value < len(cats):
            name = NO_VALUE if value == -1 else cats[value]
            everything = frozenset(cats) | ({NO_VALUE} if values.isna().any() else set())
            if kind == "hide":
                state["hidden"] = state["hidden"] ^ {name}
            else:
                state["hidden"] = everything - {name}
        state["hide"] = None
        refresh()

    action.on_change("value", guarded_change(on_action))

    def on_thumb_channel(attr, old, new) -> None:
        state["channel"] = int(new)
        hover.tooltips = _hover(state["channel"])
        update_thumbs()

    thumb_channel.on_change("value", guarded_change(on_thumb_channel))

    def on_range() -> None:
        if state.get("quiet"):
            return
        update_thumbs()
        if state["big"]:
            update_image()

    p.x_range.on_change("end", lambda attr, old, new: on_range())
    p.y_range.on_change("end", lambda attr, old, new: on_range())
    # the browser reports the plot's real size after layout (and on every resize): the
    # thumbnails are spaced again for it
    for size in ("inner_width", "inner_height"):
        p.on_change(size, lambda attr, old, new: update_thumbs())
    for w in choices.values():
        w.on_change("value", lambda attr, old, new: widgets_to_query())
    for s in (size_slider, date_slider):
        if s is not None:
            s.on_change("value_throttled", lambda attr, old, new: widgets_to_query())
    buttons["reproject"].on_click(guarded(reproject))

    def step(frm: str, to: str) -> None:
        if state[frm]:
            state[to].append(state["node"])
            show(state[frm].pop(), remember=False)

    def open_child() -> None:
        if children.value:
            show(children.value)

    buttons["back"].on_click(guarded(lambda: step("back", "forward")))
    buttons["forward"].on_click(guarded(lambda: step("forward", "back")))
    buttons["open_child"].on_click(guarded(open_child))
    buttons["apply"].on_click(guarded(apply_filter))
    buttons["clear"].on_click(guarded(clear_filter))
    buttons["filter_child"].on_click(guarded(filter_child))
    buttons["export_csv"].on_click(guarded(lambda: export("csv")))
    buttons["export_parquet"].on_click(guarded(lambda: export("parquet")))

    sliders = [s for s in (size_slider, date_slider) if s is not None]
    side = column(crumbs, row(buttons["back"], buttons["forward"]), row(children, buttons["open_child"]),
                  colour, legend, thumb_channel, *choices.values(), *sliders, query,
                  row(buttons["apply"], buttons["clear"], buttons["filter_child"]),
                  buttons["reproject"], row(buttons["export_csv"], buttons["export_parquet"]),
                  status, message, command, width=380)  # fmt: skip
    doc.add_root(column(row(p, side, sizing_mode="stretch_width"), panel, neighbours, gallery,
                        sizing_mode="stretch_width", name="layout"))  # fmt: skip
    doc.add_root(download)
    doc.add_root(action)
    doc.title = f"sarise: {data.run.name}"
    show("root")


def _hover(channel: int) -> str:
    """The hover card: the thumbnail of a channel, the name, metadata and top groups."""
    return f"""
        <div style="width:180px"><img src="/thumb/@image_id/{channel}.png" width="96" height="96"
        class="sarise-hover"><div><b>@name</b></div><div style="font-size:10px">@info</div>
        <div style="font-size:10px">groups: @top3</div></div>"""


def _command(run: Path, info: dict) -> str:
    """The ``sarise`` command line that makes this node, every argument shell-quoted (a
    query holding ``$(...)`` or quotes is pasted as data, never run)."""
    if info["parent"] is None:
        return " ".join(map(_quote, ["sarise", "project", str(run)]))
    ((kind, value),) = info["selection"].items()
    if kind == "query":
        arg = str(value)
    elif kind == "polygon":
        arg = ";".join(f"{x},{y}" for x, y in value)
    else:
        arg = ",".join(map(str, value))
    words = ["sarise", "explore", "select", str(run), str(info["parent"]), f"--{kind}", arg]
    if info["how"]["method"] == "refit":
        words.append("--refit")
    return " ".join(map(_quote, words))


def _quote(word: str) -> str:
    """A shell word: as it is when plain, in double quotes when only quotes and spaces need
    it (a query reads as typed), else single-quoted by :func:`shlex.quote` (nothing in
    ``$(...)``, backticks or backslashes can run or expand)."""
    import shlex

    quoted = shlex.quote(word)
    if quoted == word:
        return word
    if not any(ch in word for ch in '"$`\\!'):
        return f'"{word}"'
    return quoted
