"""The explorer in a real Chromium (Debian's, driven by Playwright): a server on a free
localhost port over a small generated run. Screenshots of each state go to
``.artifacts/viewer/``."""

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sarise.config import ProjectConfig
from sarise.project import ProjectionTree
from sarise.search import build_index
from tests.conftest import subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / ".artifacts" / "viewer"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
N = 17 * 6

POINTS = "() => Bokeh.documents[0].get_model_by_name('points').data.x.length"
READY = ("() => window.Bokeh && Bokeh.documents.length > 0 && "
         "Bokeh.documents[0].get_model_by_name('points') !== null && " + POINTS[6:] + " > 0")  # fmt: skip
TEXT = "(name) => Bokeh.documents[0].get_model_by_name(name).text"
# how many of the map's points lie inside the ranges the browser shows
INSIDE = """() => { const d = Bokeh.documents[0], p = d.get_model_by_name('map');
  const s = d.get_model_by_name('points').data;
  const [x0, x1] = [p.x_range.start, p.x_range.end].sort((a, b) => a - b);
  const [y0, y1] = [p.y_range.start, p.y_range.end].sort((a, b) => a - b);
  let k = 0;
  for (let i = 0; i < s.x.length; i++)
    if (s.x[i] >= x0 && s.x[i] <= x1 && s.y[i] >= y0 && s.y[i] <= y1) k++;
  return k; }"""
SCREEN_XY = """([x, y]) => {
  const plot = Bokeh.documents[0].get_model_by_name('map');
  const find = (v) => { if (v.model === plot) return v;
    for (const c of (v.child_views ?? [])) { const r = find(c); if (r) return r; } return null; };
  let pv = null; for (const v of Bokeh.index) { pv = find(v); if (pv) break; }
  const r = pv.canvas_view.el.getBoundingClientRect();
  return [r.left + pv.frame.x_scale.compute(x), r.top + pv.frame.y_scale.compute(y)];
}"""  # screen position of a data point


def _screen(page, i: int) -> tuple[float, float]:
    """Where point ``i`` of the map is on the screen."""
    xy = page.evaluate("(i) => { const s = Bokeh.documents[0].get_model_by_name('points');"
                       " return [s.data.x[i], s.data.y[i]]; }", i)  # fmt: skip
    return page.evaluate(SCREEN_XY, xy)


PLOT_BOX = """() => {
  const plot = Bokeh.documents[0].get_model_by_name('map');
  const find = (v) => { if (v.model === plot) return v;
    for (const c of (v.child_views ?? [])) { const r = find(c); if (r) return r; } return null; };
  let pv = null; for (const v of Bokeh.index) { pv = find(v); if (pv) break; }
  const r = pv.canvas_view.el.getBoundingClientRect(), b = pv.frame.bbox;
  return [r.left + b.left, r.top + b.top, b.width, b.height];
}"""  # the plot area on screen


def _coloured_pixels(page) -> int:
    """Coloured (not grey) pixels in a screenshot of the plot area: the points drawn."""
    import io

    from PIL import Image

    x, y, w, h = page.evaluate(PLOT_BOX)
    png = page.screenshot(clip={"x": x, "y": y, "width": w, "height": h})
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((rgb.max(-1) - rgb.min(-1)) > 60).sum())


def _need_browser():
    try:
        import playwright  # noqa: F401
    except ImportError:
        ok = False
    else:
        ok = Path(CHROMIUM).exists()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium or Playwright missing under CI: `make browser` installs them")
        pytest.skip("no Chromium at /usr/bin/chromium or no playwright (`make browser`)")


def _serve(run, env, *extra):
    log = run.parent / f"view{'-'.join(extra)}.log"  # a file, not a pipe: a full pipe stalls
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sarise.cli", "view", str(run), "--port",
                                 "0", *extra], env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and url is None and proc.poll() is None:
        if m := re.search(r"at (http://\S+/)", log.read_text()):
            url = m.group(1).replace("localhost", "127.0.0.1")
        time.sleep(0.2)
    assert url, log.read_text()[-3000:]
    return proc, url, log


@pytest.fixture(scope="module")
def view_run(wallpaper_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("view") / "run"
    shutil.copytree(wallpaper_run, run)
    ProjectionTree(run, ProjectConfig()).project_root()
    build_index(run)
    return run


@pytest.fixture(scope="module")
def server(view_run, cli_env_module):
    _need_browser()
    proc, url, log = _serve(view_run, cli_env_module)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield url, view_run
    proc.terminate()
    proc.wait(timeout=30)
    shutil.copy(log, SHOTS / "server.log")


@pytest.fixture(scope="module")
def cli_env_module(tmp_path_factory):
    return subprocess_env(tmp_path_factory.mktemp("home"))


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright

    url, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 950})
        pg.goto(url)
        pg.wait_for_function(READY, timeout=60_000)
        yield pg
        browser.close()


def test_the_map_shows_every_image_and_hover_shows_its_thumbnail(page):
    assert page.evaluate(POINTS) == N
    assert f"{N} points" in page.evaluate(TEXT, "status")
    page.screenshot(path=SHOTS / "map.png")
    x, y = _screen(page, 0)
    page.mouse.move(x, y)
    hover = page.locator("img.sarise-hover").first
    hover.wait_for(state="visible", timeout=10_000)
    src = hover.get_attribute("src")
    assert re.fullmatch(r"/thumb/\d+/0\.png", src)  # the first channel
    assert (
        page.evaluate("(s) => fetch(s).then(r => r.headers.get('content-type'))", src)
        == "image/png"
    )
    page.screenshot(path=SHOTS / "hover.png")


def test_box_selection_then_reproject_makes_a_child_node(page, server):
    _, run = server
    page.evaluate("""() => { const s = Bokeh.documents[0].get_model_by_name('points');
                             s.selected.indices = [...Array(20).keys()]; }""")
    page.wait_for_function(f"() => ({TEXT})('status').includes('20 selected')")
    assert "selection</b>: 20" in page.evaluate(TEXT, "gallery")
    before = set(ProjectionTree(run).ids())
    page.get_by_role("button", name="Re-project selection").click()
    page.wait_for_function(f"() => ({TEXT})('breadcrumb').includes('&gt;')", timeout=60_000)
    new = set(ProjectionTree(run).ids()) - before
    assert len(new) == 1
    node = new.pop()
    assert ProjectionTree(run).info(node)["n"] == 20 and page.evaluate(POINTS) == 20
    assert node in page.evaluate(TEXT, "breadcrumb")
    # the child's map is on screen: every point inside the ranges shown (they were the
    # parent's, and the child's coordinates fell outside them)
    page.wait_for_function(f"() => ({INSIDE})() === 20")
    # the server sends each changed property as its own patch, in order: wait for the last
    page.wait_for_function(f"() => ({TEXT})('command').includes('explore select')")
    assert f"explore select {run} root --ids" in page.evaluate(TEXT, "command")
    page.screenshot(path=SHOTS / "child.png")
    assert _coloured_pixels(page) > 50  # the child's points are drawn, not a blank plot
    page.get_by_role("button", name="◀ back").click()
    page.wait_for_function(f"() => ({POINTS})() === {N}")
    page.wait_for_function(f"() => ({INSIDE})() === {N}")
    page.wait_for_function(
        "(n) => Bokeh.documents[0].get_model_by_name('children').options.includes(n)", arg=node
    )
    assert _coloured_pixels(page) > 50
    # forward, and "open child": the child's own ranges each time
    page.get_by_role("button", name="forward ▶").click()
    page.wait_for_function(f"() => ({POINTS})() === 20 && ({INSIDE})() === 20")
    assert _coloured_pixels(page) > 50
    page.get_by_role("button", name="◀ back").click()
    page.wait_for_function(f"() => ({POINTS})() === {N} && ({INSIDE})() === {N}")
    page.get_by_label("children of this node").select_option(node)
    page.get_by_role("button", name="open child").click()
    page.wait_for_function(f"() => ({POINTS})() === 20 && ({INSIDE})() === 20")
    # zoomed in, Reset returns to the node's ranges
    page.evaluate("""() => { const p = Bokeh.documents[0].get_model_by_name('map');
        const w = (p.x_range.end - p.x_range.start) / 10; p.x_range.end = p.x_range.start + w; }""")
    page.wait_for_function(f"() => ({INSIDE})() < 20")
    page.get_by_title("Reset").first.click()
    page.wait_for_function(f"() => ({INSIDE})() === 20")
    assert _coloured_pixels(page) > 50


def test_a_filter_reduces_the_points(page):
    # the categorical filters list each value with its count
    options = page.evaluate("() => Bokeh.documents[0].get_model_by_name('filter-group').options")
    assert len(options) == 17 and all(label == f"{v} (6)" for v, label in options)
    box = page.get_by_label("query (sarise query language)")
    box.fill('group == "p4m" or group == "p6m"')
    box.press("Enter")
    page.get_by_role("button", name="Apply filter").click()
    page.wait_for_function(f"() => ({TEXT})('status').includes('12 shown')")
    page.screenshot(path=SHOTS / "filter.png")
    box.fill("group === 1")
    box.press("Enter")
    page.get_by_role("button", name="Apply filter").click()
    page.wait_for_function(f"() => ({TEXT})('message').includes('position')")


def test_a_click_shows_the_neighbours(page):
    x, y = _screen(page, 5)
    page.mouse.click(x, y)
    page.wait_for_function(f"() => ({TEXT})('neighbours_gallery').includes('most similar to')",
                           timeout=30_000)  # fmt: skip
    text = page.evaluate(TEXT, "neighbours_gallery")
    assert text.count("<img") == 12
    # headed by the clicked file's name (not its id), each with its distance, itself first
    assert re.search(r"most similar to \d{3}\.png</b>", text), text[:200]
    dists = [float(d) for d in re.findall(r"<br>d (\d\.\d{3})</figcaption>", text)]
    assert len(dists) == 12 and dists[0] == 0.0 and dists == sorted(dists)
    # the image panel: the stored image at full stored resolution, with its metadata
    img = page.locator("img[src^='/image/']").first  # locators reach into Bokeh's shadow DOM
    img.wait_for(state="visible", timeout=10_000)
    deadline = time.monotonic() + 30
    while img.evaluate("i => i.naturalWidth") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert img.evaluate("i => i.naturalWidth") == 128  # the stored image, not the thumbnail
    panel = page.evaluate(TEXT, "image_panel")
    assert re.search(r"<b>\d{3}\.png</b>", panel) and "predicted_group" in panel
    assert "no pixel size in the file" in panel  # PNGs carry none
    page.screenshot(path=SHOTS / "neighbours.png")


def test_paths_are_never_served(server):
    url, _ = server
    for path in ("thumb/../../../../etc/passwd", "thumb/..%2F..%2F..%2Fetc%2Fpasswd.png",
                 "export/..%2Fstore%2Fimages.zarr%2Fzarr.json", "export/../features.zarr/zarr.json",
                 "static/../../../../../../etc/passwd", "thumb/99999999999.png"):  # fmt: skip
        try:
            with urllib.request.urlopen(url + path, timeout=10) as r:
                body = r.read()
                status = r.status
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        assert status in (400, 403, 404), (path, status)
        assert b"root:" not in body and b"zarr_format" not in body


def test_twenty_concurrent_page_loads(server):
    from playwright.async_api import async_playwright

    url, _ = server

    async def main():
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)

            async def one():
                pg = await browser.new_page()
                await pg.goto(url, wait_until="domcontentloaded", timeout=180_000)
                await pg.wait_for_function(READY, timeout=120_000)
                n = await pg.evaluate(POINTS)
                await pg.close()
                return n

            t0 = time.perf_counter()
            counts = await asyncio.gather(*(one() for _ in range(20)))
            print(f"20 concurrent page loads in {time.perf_counter() - t0:.1f} s")
            await browser.close()
            return counts

    assert asyncio.run(main()) == [N] * 20


def test_a_datashaded_map_selects_among_all_points(view_run, cli_env_module, tmp_path):
    """The large-archive path (here forced at 50 points): every point in a Datashader image,
    a sample for hover, and a real box drag that selects on the server among all points."""
    from playwright.sync_api import sync_playwright

    _need_browser()
    run = tmp_path / "run"
    child_nodes = re.compile(r"n[0-9a-f]{10}")  # the root node only, no children
    shutil.copytree(
        view_run, run, ignore=lambda d, names: [n for n in names if child_nodes.fullmatch(n)]
    )
    proc, url, _ = _serve(run, cli_env_module, "--datashade-min", "50")
    try:
        root = ProjectionTree(run).members("root")
        xs = np.sort(root.x.to_numpy())
        mid = float((xs[N // 2 - 1] + xs[N // 2]) / 2)  # between two points: no point on the edge
        dy, dx = root.y.max() - root.y.min(), xs[-1] - xs[0]
        y0, y1 = root.y.min() - 0.01 * dy, root.y.max() + 0.01 * dy  # inside the 3% margin
        expected = int((root.x < mid).sum())
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.goto(url)
            page.wait_for_function(READY, timeout=60_000)
            assert (
                page.evaluate(
                    "() => Bokeh.documents[0].get_model_by_name('image').data.image.length"
                )
                == 1
            )
            page.get_by_title("Box Select").first.click()
            ax, ay = page.evaluate(SCREEN_XY, [float(xs[0] - 0.01 * dx), float(y1)])
            bx, by = page.evaluate(SCREEN_XY, [mid, float(y0)])
            page.mouse.move(ax, ay)
            page.mouse.down()
            page.mouse.move(bx, by, steps=6)
            page.mouse.up()
            try:
                page.wait_for_function(f"() => ({TEXT})('status').includes('{expected} selected')",
                                       timeout=30_000)  # fmt: skip
            except Exception:
                status = page.evaluate(TEXT, "status")
                raise AssertionError(f"{status} (expected {expected})") from None
            page.screenshot(path=SHOTS / "datashader.png")
            page.get_by_role("button", name="Re-project selection").click()
            page.wait_for_function(f"() => ({TEXT})('breadcrumb').includes('&gt;')", timeout=60_000)
            browser.close()
        kids = ProjectionTree(run).children("root")
        assert len(kids) == 1 and ProjectionTree(run).info(kids[0])["n"] == expected
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_legends_name_every_colour_and_thumbnails_stay_square(page):
    # the categorical legend: one swatch per predicted group, with its count, on screen
    items = page.locator(".legend-item")
    items.first.wait_for(state="visible", timeout=10_000)
    texts = items.all_inner_texts()
    counts = [int(re.search(r"\((\d+)\) only$", t.strip()).group(1)) for t in texts]
    assert sum(counts) == N and len(texts) >= 2
    assert "colour: predicted_group" in page.evaluate(TEXT, "legend")
    colours = page.evaluate("() => Bokeh.documents[0].get_model_by_name('points').data.color")
    assert len(set(colours)) == len(texts)  # as many colours on the map as in the legend
    # a continuous colouring: a colour bar with the lowest and highest value
    page.get_by_label("colour by").select_option("confidence")
    page.wait_for_function(f"() => ({TEXT})('legend').includes('colour: confidence')")
    bar = page.locator(".colorbar")
    bar.wait_for(state="visible", timeout=10_000)
    low, high = (float(t) for t in page.locator(".colorbar-labels span").all_inner_texts())
    assert 0.0 < low < high <= 1.0
    colours = page.evaluate("() => Bokeh.documents[0].get_model_by_name('points').data.color")
    assert len(set(colours)) > 5  # a gradient, not a few categories
    page.screenshot(path=SHOTS / "legend-confidence.png")
    page.get_by_label("colour by").select_option("predicted_group")
    # thumbnails: square screen pixels, whatever the axes' ranges
    page.evaluate("""() => { const p = Bokeh.documents[0].get_model_by_name('map');
                             p.x_range.end = p.x_range.start + (p.x_range.end - p.x_range.start) / 3; }""")
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('thumbs').data.url.length > 0"
    )
    glyph = page.evaluate("""() => { const r = Bokeh.documents[0].get_model_by_name('map')
        .renderers.find(r => r.glyph.type === 'ImageURL'); const t = Bokeh.documents[0]
        .get_model_by_name('thumbs').data; const u = (name) => { const prop = r.glyph.properties[name];
        return prop.units ?? prop.spec?.units ?? r.glyph[name + '_units'] ?? JSON.stringify(Object.keys(prop)); };
        return [u('w'), u('h'), t.w[0], t.h[0]]; }""")
    assert glyph[:2] == ["screen", "screen"] and glyph[2] == glyph[3] > 0


def test_an_export_downloads_the_selection_with_its_map_positions(page, tmp_path):
    import pandas as pd

    page.evaluate("""() => { const s = Bokeh.documents[0].get_model_by_name('points');
                             s.selected.indices = [0, 1, 2, 3, 4, 5, 6]; }""")
    page.wait_for_function(f"() => ({TEXT})('status').includes('7 selected')")
    with page.expect_download(timeout=30_000) as info:
        page.get_by_role("button", name="Export selection CSV").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    table = pd.read_csv(path)
    ids = page.evaluate("() => Bokeh.documents[0].get_model_by_name('points').data.image_id")
    assert sorted(table["image_id"].astype(str)) == sorted(ids[:7])
    assert list(table.columns[:4]) == ["image_id", "node", "x", "y"] and "path" in table
    xs = page.evaluate("() => Bokeh.documents[0].get_model_by_name('points').data.x")
    assert np.allclose(sorted(table["x"]), sorted(xs[:7]))
    assert (table["node"] == "root").all()


def test_thumbnails_never_pile_up(page):
    # no two drawn thumbnails overlap on screen (48 px squares centred on their points)
    def closest():
        data = page.evaluate("() => Bokeh.documents[0].get_model_by_name('thumbs').data")
        at = np.array(
            [page.evaluate(SCREEN_XY, [x, y]) for x, y in zip(data["x"], data["y"], strict=True)]
        )
        gap = np.abs(at[:, None, :] - at[None, :, :]).max(-1) + np.eye(len(at)) * 1e9
        return data, gap.min()

    deadline = time.monotonic() + 20  # spaced again once the browser reports the plot's size
    data, gap = closest()
    while gap < 48 - 0.5 and time.monotonic() < deadline:
        time.sleep(0.5)
        data, gap = closest()
    assert 0 < len(data["x"]) < N  # the crowded map leaves some out
    assert gap >= 48 - 0.5 and set(data["w"]) == {48}
    page.screenshot(path=SHOTS / "thumbnails.png")


def test_the_legend_hides_and_solos_categories(page):
    items = page.locator(".legend-item")
    items.first.wait_for(state="visible", timeout=10_000)
    first = items.first.inner_text()
    count = int(re.search(r"\((\d+)\) only$", first.strip()).group(1))
    alpha = "() => Bokeh.documents[0].get_model_by_name('points').data.alpha"
    # a click on a category hides its points (and their thumbnails), struck through
    items.first.locator(".swatch").click()
    page.wait_for_function(f"() => ({TEXT})('status').includes('{N - count} shown')")
    assert sum(a == 0 for a in page.evaluate(alpha)) == count
    assert page.locator(".legend-item.hidden").count() == 1
    page.screenshot(path=SHOTS / "legend-hidden.png")
    # "only" on another shows that one alone; "show all" brings every point back
    second = items.nth(1)
    solo = int(re.search(r"\((\d+)\) only$", second.inner_text().strip()).group(1))
    second.locator(".legend-only").click()
    page.wait_for_function(f"() => ({TEXT})('status').includes('{solo} shown')")
    assert sum(a > 0 for a in page.evaluate(alpha)) == solo
    assert page.locator(".legend-item.hidden").count() == page.locator(".legend-item").count() - 1
    # hidden points are never picked: a click lands on a shown one
    shown = [i for i, a in enumerate(page.evaluate(alpha)) if a > 0]
    page.locator(".legend-all").click()
    page.wait_for_function(f"() => ({TEXT})('status').includes('{N} shown')")
    assert all(a > 0 for a in page.evaluate(alpha)) and shown


def test_a_click_on_a_neighbour_selects_it(page):
    x, y = _screen(page, 3)
    page.mouse.click(x, y)
    page.wait_for_function(f"() => ({TEXT})('neighbours_gallery').includes('most similar to')",
                           timeout=30_000)  # fmt: skip
    # the nearest neighbour after the image itself
    image_id = re.findall(r'data-image-id="(\d+)"', page.evaluate(TEXT, "neighbours_gallery"))[1]
    page.locator(f'img[data-image-id="{image_id}"]').first.click()
    picked = """() => { const s = Bokeh.documents[0].get_model_by_name('points');
        return s.selected.indices.map(i => s.data.image_id[i]); }"""
    # the tap itself selected the clicked point: wait for the neighbour to replace it
    page.wait_for_function(f"() => ({picked})().join() === '{image_id}'", timeout=30_000)
    assert "1 selected" in page.evaluate(TEXT, "status")
    page.wait_for_function(f"() => ({TEXT})('image_panel').includes('(image {image_id})')",
                           timeout=30_000)  # fmt: skip
    page.screenshot(path=SHOTS / "neighbour-selected.png")


@pytest.fixture(scope="module")
def pfm_run(shared_data, tmp_path_factory):
    """The Asylum PFM files with three channels each, taken through ingest and extract."""
    from sarise.config import IngestConfig
    from sarise.features import extract
    from sarise.ingest import ingest

    run = tmp_path_factory.mktemp("pfm") / "run"
    cfg = IngestConfig(
        channels=("height", "amplitude", "phase"), size=64, chunk=8, max_failed_fraction=0.2
    )  # one file has no phase channel
    ingest([shared_data / "ibw"], run / "store", config=cfg, workers=1, show_progress=False)
    extract(run / "store", run / "features.zarr", show_progress=False)
    ProjectionTree(run, ProjectConfig(n_neighbors=3)).project_root()
    build_index(run)
    return run


def test_thumbnails_of_any_channel(pfm_run, cli_env_module):
    from playwright.sync_api import sync_playwright

    _need_browser()
    proc, url, _ = _serve(pfm_run, cli_env_module)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.goto(url)
            page.wait_for_function(READY, timeout=60_000)
            choose = page.get_by_label("thumbnails of")
            choose.wait_for(state="visible", timeout=10_000)
            assert choose.locator("option").all_inner_texts() == [
                "c0:height", "c1:amplitude", "c2:phase"]  # fmt: skip
            choose.select_option(label="c2:phase")
            page.wait_for_function("""() => { const u = Bokeh.documents[0]
                .get_model_by_name('thumbs').data.url; return u.length > 0 &&
                u.every(s => s.endsWith('/2.png')); }""", timeout=30_000)  # fmt: skip
            urls = page.evaluate("() => Bokeh.documents[0].get_model_by_name('thumbs').data.url")
            first = urls[0].rsplit("/", 1)[0]
            # each channel's own thumbnail, served as a PNG; no channel beyond the stored ones
            sizes = [page.evaluate("(s) => fetch(s).then(r => r.status)", f"{first}/{c}.png")
                     for c in range(4)]  # fmt: skip
            assert sizes == [200, 200, 200, 404]
            bodies = {page.evaluate("(s) => fetch(s).then(r => r.arrayBuffer()).then(b => "
                                    "Array.from(new Uint8Array(b)).join(','))", f"{first}/{c}.png")
                      for c in range(3)}  # fmt: skip
            assert len(bodies) == 3  # three different pictures
            x, y = _screen(page, 0)
            page.mouse.click(x, y)
            page.locator("img[src^='/image/']").nth(2).wait_for(state="visible", timeout=30_000)
            page.screenshot(path=SHOTS / "channels.png")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_datashaded_subsets_keep_their_legend_colours():
    # hidden categories or a filter leave a subset: it keeps the colours of the whole node
    from sarise.viewer.app import _categorical, shade_points

    rng = np.random.default_rng(0)
    xy = rng.random((500, 2))
    cats = pd.Series(rng.choice(["a", "b", "c"], 500))
    only_c = shade_points(xy[cats == "c"], cats[cats == "c"].reset_index(drop=True), (0, 1),
                          (0, 1), 64, 64, whole=cats)  # fmt: skip
    rgb = {
        tuple(int(v) for v in p) for p in only_c[only_c != 0].view(np.uint8).reshape(-1, 4)[:, :3]
    }
    want = tuple(int(_categorical(3)[2][i : i + 2], 16) for i in (1, 3, 5))
    assert rgb and all(max(abs(a - b) for a, b in zip(p, want, strict=True)) <= 1 for p in rgb)
    # a numeric subset is shaded over the whole node's span: its lowest value is not the
    # colour scale's lowest
    values = pd.Series(np.linspace(0, 1, 500))
    top = shade_points(xy[400:], values[400:].reset_index(drop=True), (0, 1), (0, 1), 64, 64,
                       whole=values)  # fmt: skip
    alone = shade_points(xy[400:], values[400:].reset_index(drop=True), (0, 1), (0, 1), 64, 64)
    assert not np.array_equal(top, alone)
