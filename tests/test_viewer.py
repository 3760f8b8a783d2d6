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

import pytest

from sarise.config import ProjectConfig
from sarise.project import ProjectionTree
from sarise.search import build_index

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
SCREEN = """(i) => {
  const plot = Bokeh.documents[0].get_model_by_name('map');
  const find = (v) => { if (v.model === plot) return v;
    for (const c of (v.child_views ?? [])) { const r = find(c); if (r) return r; } return null; };
  let pv = null; for (const v of Bokeh.index) { pv = find(v); if (pv) break; }
  const src = Bokeh.documents[0].get_model_by_name('points');
  const r = pv.canvas_view.el.getBoundingClientRect();
  return [r.left + pv.frame.x_scale.compute(src.data.x[i]), r.top + pv.frame.y_scale.compute(src.data.y[i])];
}"""  # screen position of point i


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


@pytest.fixture(scope="module")
def server(wallpaper_run, tmp_path_factory, cli_env_module):
    _need_browser()
    run = tmp_path_factory.mktemp("view") / "run"
    shutil.copytree(wallpaper_run, run)
    ProjectionTree(run, ProjectConfig()).project_root()
    build_index(run)
    log = run.parent / "view.log"  # a file, not a pipe: a full pipe would stall the server
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sarise.cli", "view", str(run), "--port",
                                 "0"], env=cli_env_module, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    url = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and url is None and proc.poll() is None:
        if m := re.search(r"at (http://\S+/)", log.read_text()):
            url = m.group(1).replace("localhost", "127.0.0.1")
        time.sleep(0.2)
    assert url, log.read_text()[-3000:]
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield url, run
    proc.terminate()
    proc.wait(timeout=30)
    shutil.copy(log, SHOTS / "server.log")


@pytest.fixture(scope="module")
def cli_env_module(tmp_path_factory):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    home = tmp_path_factory.mktemp("home")
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    return env


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
    x, y = page.evaluate(SCREEN, 0)
    page.mouse.move(x, y)
    hover = page.locator("img.sarise-hover").first
    hover.wait_for(state="visible", timeout=10_000)
    src = hover.get_attribute("src")
    assert re.fullmatch(r"/thumb/\d+\.png", src)
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
    assert f"explore select {run} root --ids" in page.evaluate(TEXT, "command")
    page.screenshot(path=SHOTS / "child.png")
    page.get_by_role("button", name="◀ back").click()
    page.wait_for_function(f"() => ({POINTS})() === {N}")
    assert node in page.evaluate("() => Bokeh.documents[0].get_model_by_name('children').options")


def test_a_filter_reduces_the_points(page):
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
    x, y = page.evaluate(SCREEN, 5)
    page.mouse.click(x, y)
    page.wait_for_function(f"() => ({TEXT})('neighbours_gallery').includes('most similar to')",
                           timeout=30_000)  # fmt: skip
    assert page.evaluate(TEXT, "neighbours_gallery").count("<img") == 12
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
