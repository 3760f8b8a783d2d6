import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from sarise.config import IngestConfig
from sarise.demo_archive import write_demo_archive
from sarise.errors import SariseError
from sarise.ingest import ingest, list_files
from sarise.store import ImageStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    sidecar = write_demo_archive(root, n=12, size=80)
    (root / "2014" / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"0" * 50)
    (root / "2014" / "empty.tif").touch()
    return root, sidecar


def _sarise(*args, env):
    return subprocess.run([sys.executable, "-m", "sarise.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_ingest_stores_good_files_records_bad_ones_and_reruns_skip(archive, tmp_path, cli_env):
    root, sidecar = archive
    res = _sarise("ingest", tmp_path / "store", root, "--sidecar", sidecar, "--workers", "2",
                  "--no-progress", env=cli_env)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "2 of 14 files failed" in res.stderr
    store = ImageStore.open(tmp_path / "store")
    assert len(store) == 12 and store.array("images").shape == (12, 1, 128, 128)
    meta = store.metadata()
    assert meta["path"].is_unique and meta["image_id"].is_unique
    assert set(meta["outcome"]) == {"ok", "failed"} and meta["grower"].notna().all()
    images = store.array("images")[:].astype(np.float32)
    assert images.min() >= 0 and images.max() <= 1
    errors = store.errors()
    assert sorted(errors["path"].str.rsplit("/", n=1).str[-1]) == ["broken.h5", "empty.tif"]
    assert errors["reason"].str.len().min() > 5
    again = _sarise("ingest", tmp_path / "store", root, "--sidecar", sidecar,
                    "--max-failed-fraction", "0.2", "--no-progress", env=cli_env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len(ImageStore.open(tmp_path / "store")) == 12  # all skipped by sha256
    assert "skipped" in again.stderr and again.stderr.count("ingest summary") == 1
    assert "distributed." not in again.stderr  # Dask's own INFO lines stay out of the log


def test_killed_ingest_resumes_to_the_same_store(archive, tmp_path, cli_env):
    root, sidecar = archive
    cfg = IngestConfig(size=64, chunk=2, max_failed_fraction=0.5)
    ingest([root], tmp_path / "ref", config=cfg, sidecar=sidecar, workers=1, show_progress=False)
    conf = tmp_path / "c.yaml"
    conf.write_text("ingest: {size: 64, chunk: 2, max_failed_fraction: 0.5}\n")
    proc = subprocess.Popen([sys.executable, "-m", "sarise.cli", "ingest", str(tmp_path / "run"),
                             str(root), "-c", str(conf), "--sidecar", str(sidecar),
                             "--workers", "1", "--no-progress"], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    parts = tmp_path / "run" / "metadata.parquet"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert 0 < len(ImageStore.open(tmp_path / "run")) < 12
    res = _sarise("ingest", tmp_path / "run", root, "-c", conf, "--sidecar", sidecar,
                  "--workers", "1", "--no-progress", env=cli_env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    ref, run = ImageStore.open(tmp_path / "ref"), ImageStore.open(tmp_path / "run")
    for name in ("images", "image_id", "tile_yx", "thumbnails"):
        np.testing.assert_array_equal(ref.array(name)[:], run.array(name)[:])
    cols = [c for c in ref.metadata().columns if c != "path"]
    assert ref.metadata()[cols].equals(run.metadata()[cols])


def test_real_files_and_tiles(shared_data, tmp_path):
    cfg = IngestConfig(channels=("height|^z",), fit="tile", size=128, chunk=8,
                       max_failed_fraction=0.1)  # fmt: skip
    summary = ingest([shared_data / "pfm-h5", shared_data / "sxm"], tmp_path / "s", config=cfg,
                     root=shared_data, workers=2, show_progress=False)  # fmt: skip
    assert summary.counts["hdf5"]["read"] == 13
    # the nc-AFM scan's Z is one constant (feedback off): refused, never stretched to noise
    store = ImageStore.open(tmp_path / "s")
    errors = store.errors()
    assert summary.failed == 1 and errors["path"].tolist() == ["sxm/example_nc-AFM.sxm"]
    assert errors["reason"].iloc[0].startswith("channel Z_fwd: flat channel: no contrast")
    assert len(store) == 4 * 17  # 256 px scans in four 128 px tiles
    corners = store.array("tile_yx")[:4].tolist()
    assert corners == [[0, 0], [0, 128], [128, 0], [128, 128]]
    meta = store.metadata()
    assert meta.loc[meta["path"] == "pfm-h5/PZT_final0001.h5", "sample"].eq("PZT_final").all()
    # the channel each image came from is recorded: h5 height, sxm Z
    assert meta.groupby("format")["channel"].unique().map(list).to_dict() == {
        "hdf5": ["HeightRetrace"], "sxm": ["Z_fwd"]}  # fmt: skip


def test_fit_auto_scales_each_file_by_its_own_lattice(tmp_path):
    from PIL import Image

    from sarise.symmetry_measure import stored_pixel_nm

    y, x = np.mgrid[:512, :512].astype(float)
    files = tmp_path / "files"
    files.mkdir()
    for name, cell in (("atoms.png", 8.0), ("domains.png", 128.0)):
        img = np.cos(2 * np.pi * x / cell) + np.cos(2 * np.pi * y / cell)
        Image.fromarray(((img + 2) / 4 * 255).round().astype(np.uint8)).save(files / name)
    noise = np.random.default_rng(0).integers(0, 256, (300, 200), dtype=np.uint8)
    Image.fromarray(noise).save(files / "noise.png")
    cfg = IngestConfig(fit="auto", size=128, chunk=8, flatten="none")
    summary = ingest([files], tmp_path / "s", config=cfg, workers=1, show_progress=False)
    assert summary.failed == 0
    store = ImageStore.open(tmp_path / "s")
    assert store.attrs["preprocessing"]["fit"] == "auto"
    meta = store.metadata()
    name = meta["path"].to_numpy()
    corners = store.array("tile_yx")[: len(meta)]
    # 8 px cells would be 2 px in the whole image shrunk to 128 px: 16 tiles at 16 px cells
    atoms = name == "atoms.png"
    assert atoms.sum() == 16 and meta.loc[atoms, "zoom"].eq(2.0).all()
    assert meta.loc[atoms, "tile"].tolist() == list(range(16))
    assert (corners[atoms] >= 0).all() and (corners[atoms] + 64 <= 512).all()
    assert len({tuple(c) for c in corners[atoms]}) == 16  # distinct, non-overlapping tiles
    # four cells across, or no lattice at all: the whole image, as crop would store it
    for whole, zoom in (("domains.png", 0.25), ("noise.png", 128 / 200)):
        at = name == whole
        assert at.sum() == 1 and meta.loc[at, "zoom"].iloc[0] == zoom
        assert (corners[at] == -1).all()
    # a stored pixel of a zoomed view is the file's pixel over the zoom
    rows = pd.DataFrame({"pixel_size_x_m": [1e-10, 1e-10], "pixels_x": [512, 512],
                         "pixels_y": [512, 512], "zoom": [2.0, 0.25]})  # fmt: skip
    assert stored_pixel_nm(rows, 128, "auto").tolist() == [0.05, 0.4]
    assert np.isnan(stored_pixel_nm(rows.drop(columns="zoom"), 128, "auto")).all()
    # stores made before ingest recorded the zoom: from the fit alone
    assert stored_pixel_nm(rows.drop(columns="zoom"), 128, "crop").tolist() == [0.4, 0.4]


def test_listing_and_refusals(archive, tmp_path):
    root, _ = archive
    files = list_files([root])
    assert len(files) == 14 and files == sorted(files)
    assert all(f.suffix != ".csv" for f in files)
    assert list_files([str(root / "*" / "*.png")]) == [f for f in files if f.suffix == ".png"]
    # folders and files whose names hold glob characters are taken as named
    odd = tmp_path / "scan [2]"
    (odd / "*632").mkdir(parents=True)
    (odd / "*632" / "a [1].png").write_bytes(b"x")
    (odd / "b.png").write_bytes(b"x")
    assert list_files([odd]) == [odd / "*632" / "a [1].png", odd / "b.png"]
    assert list_files([odd / "*632" / "a [1].png"]) == [odd / "*632" / "a [1].png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SariseError, match="no files found"):
        ingest([tmp_path / "empty"], tmp_path / "s")
    # a named file that does not exist is one clear failure, not an abort
    with pytest.raises(SariseError, match="1 of 1 files failed"):
        ingest([tmp_path / "missing.ibw"], tmp_path / "m", workers=1, show_progress=False)
    errors = ImageStore.open(tmp_path / "m").errors()
    assert errors["reason"].tolist() == ["cannot open: No such file or directory"]
    ingest([root / "2014" / "stripes_000.h5"], tmp_path / "s", config=IngestConfig(size=32),
           workers=1, show_progress=False)  # fmt: skip
    with pytest.raises(SariseError, match="other preprocessing"):
        ingest([root], tmp_path / "s", config=IngestConfig(size=64), workers=1)
    # a different thumbnail size would crop the stored thumbnails: refused
    with pytest.raises(SariseError, match=r"holds 64 px thumbnails, ingest\.thumbnail is 32"):
        ingest([root], tmp_path / "s", config=IngestConfig(size=32, thumbnail=32), workers=1)
    shutil.rmtree(tmp_path / "s")


def test_copies_are_stored_once_and_errors_are_not_repeated(archive, tmp_path):
    root, _ = archive
    src = tmp_path / "src"
    shutil.copytree(root / "2014", src / "a")
    shutil.copytree(root / "2014", src / "b")  # a copied folder: same files twice
    # one image per file (no lattice's tiles): the counts below are of files
    cfg = IngestConfig(size=32, fit="crop", chunk=3, max_failed_fraction=1.0)
    first = ingest([src], tmp_path / "s", config=cfg, workers=2, show_progress=False)
    n_files = len(list_files([src]))
    assert first.files == n_files and first.failed == 4
    assert sum(c["skipped"] for c in first.counts.values()) == (n_files - 4) // 2
    store = ImageStore.open(tmp_path / "s")
    meta = store.metadata()
    assert len(store) == (n_files - 4) // 2 and meta["image_id"].is_unique
    assert meta["path"].str.startswith("a/").all()  # the first copy in sorted order
    assert len(store.errors()) == 4
    parts = sorted((tmp_path / "s" / "errors.parquet").glob("part-*.parquet"))
    ingest([src], tmp_path / "s", config=cfg, workers=1, show_progress=False)
    # the same failures are not written again
    assert sorted((tmp_path / "s" / "errors.parquet").glob("part-*.parquet")) == parts
    # a file repaired in place leaves the error table once ingested
    shutil.copy(root / "2015" / "bubbles_001.h5", src / "a" / "broken.h5")
    shutil.copy(root / "2018" / "stripes_004.tif", src / "a" / "empty.tif")
    ingest([src], tmp_path / "s", config=cfg, workers=1, show_progress=False)
    store = ImageStore.open(tmp_path / "s")
    assert sorted(store.errors()["path"]) == ["b/broken.h5", "b/empty.tif"]
    assert len(store) == (n_files - 4) // 2 + 2


def test_fifos_and_other_special_files_are_failed_never_waited_on(archive, tmp_path, cli_env):
    import os

    root, _ = archive
    folder = tmp_path / "files"
    shutil.copytree(root / "2015", folder / "2015")
    os.mkfifo(folder / "scan.png")  # a writer that never comes
    os.mkfifo(tmp_path / "elsewhere.fifo")
    (folder / "linked.ibw").symlink_to(tmp_path / "elsewhere.fifo")
    good = len([p for p in (folder / "2015").rglob("*") if p.is_file()])
    res = _sarise("ingest", tmp_path / "store", folder, "--workers", "1", "--no-progress",
                  "--max-failed-fraction", "0.5", env=cli_env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    store = ImageStore.open(tmp_path / "store")
    assert len(store) == good
    errors = store.errors().set_index(store.errors()["path"].str.rsplit("/", n=1).str[-1])
    assert set(errors.index) == {"scan.png", "linked.ibw"}
    assert errors["reason"].str.contains("not a regular file (a FIFO)", regex=False).all()
    # search by example reads its files through the same prepare_file: refused at once
    code = ("import sys; from pathlib import Path; from sarise.config import IngestConfig; "
            "from sarise.ingest import prepare_file; "
            "r = prepare_file(Path(sys.argv[1]), IngestConfig(), frozenset(), None); "
            "print(r.status, r.reason)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, str(folder / "linked.ibw")],
                         capture_output=True, text=True, timeout=60, env=cli_env)  # fmt: skip
    assert out.stdout.startswith("failed") and "not a regular file" in out.stdout, out.stderr


def test_a_store_inside_its_source_folder_and_unreadable_folders(archive, tmp_path):
    root, _ = archive
    folder = tmp_path / "files"
    shutil.copytree(root / "2015", folder / "2015")
    good = len(list_files([folder]))
    cfg = IngestConfig(chunk=4)
    ingest([folder], folder / "store", config=cfg, workers=1, show_progress=False)
    # the store now inside the folder is not ingested on the next run, nor is a run folder
    (folder / "run" / "features.zarr").mkdir(parents=True)
    (folder / "run" / "features.zarr" / "zarr.json").write_text("{}")
    assert len(list_files([folder])) == good
    again = ingest([folder], folder / "store", config=cfg, workers=1, show_progress=False)
    assert again.failed == 0 and len(ImageStore.open(folder / "store")) == good
    if os.geteuid() == 0:
        return  # root reads any folder: no unreadable one to test with
    (folder / "locked").mkdir()
    (folder / "locked").chmod(0)
    try:
        with pytest.raises(SariseError, match="1 of"):
            ingest([folder], folder / "store", config=cfg, workers=1, show_progress=False)
        errors = ImageStore.open(folder / "store").errors()
        assert errors["reason"].str.startswith("cannot list folder").any()
    finally:
        (folder / "locked").chmod(0o755)


def test_two_writers_never_share_a_store(archive, tmp_path, cli_env):
    from sarise._lock import exclusive

    root, _ = archive
    args = ("ingest", tmp_path / "s", root, "--workers", "1", "--no-progress",
            "--max-failed-fraction", "0.5")  # fmt: skip
    # a writer holds the store: another is refused at once, in one line naming the holder
    with exclusive(tmp_path / "s", "an image store"):
        refused = _sarise(*args, env=cli_env)
    assert refused.returncode == 1 and f"pid {os.getpid()}" in refused.stderr, refused.stderr
    assert "being written by another process" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("sarise: error: ")
    assert not (tmp_path / "s" / "images.zarr").exists()  # nothing was written
    # two real ingests at once: one is refused or they run one after the other, never both
    # writing (each numbered its Parquet parts from its own count and lost images)
    first = subprocess.Popen([sys.executable, "-m", "sarise.cli", *map(str, args)], env=cli_env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    second = _sarise(*args, env=cli_env)
    _, err = first.communicate(timeout=300)
    outcomes = sorted([first.returncode, second.returncode])
    assert outcomes in ([0, 0], [0, 1]), (err, second.stderr)
    if outcomes == [0, 1]:
        assert "being written by another process" in (err + second.stderr)
    store = ImageStore.open(tmp_path / "s")
    assert len(store) == 12 and store.metadata()["image_id"].is_unique
    # the lock went with its holder: the next writer gets it
    assert _sarise(*args, env=cli_env).returncode == 0


def test_file_names_that_are_not_utf8_are_stored_escaped_with_the_rest(archive, tmp_path):
    root, _ = archive
    folder = tmp_path / "files"
    shutil.copytree(root / "2016", folder / "2016")
    src = next(p for p in (folder / "2016").rglob("*.png"))
    odd = os.path.join(os.fsencode(folder), b"caf\xe9 \xff.png")  # Latin-1 bytes, not UTF-8
    shutil.copyfile(src, odd)
    os.remove(src)  # not a duplicate of a stored file: the odd one must land itself
    n = len(list_files([folder]))
    summary = ingest([folder], tmp_path / "store", config=IngestConfig(chunk=4), workers=1,
                     show_progress=False)  # fmt: skip
    assert summary.failed == 0
    meta = ImageStore.open(tmp_path / "store").metadata()
    assert len(meta) == n and "caf\\xe9 \\xff.png" in meta["path"].tolist()
    again = ingest([folder], tmp_path / "store", config=IngestConfig(chunk=4), workers=1,
                   show_progress=False)  # fmt: skip
    assert again.failed == 0 and again.images == 0  # a rerun skips it like any other


def _state(store_dir):
    """``{path: reason}`` of every stored image ("" live), and the live paths' sha256."""
    store = ImageStore.open(store_dir)
    meta = store.metadata()
    retired = store.retired()
    reasons = meta["image_id"].map(retired).astype(object).fillna("")
    return (sorted(zip(meta["path"], reasons, strict=True)),
            dict(zip(meta["path"][store.live()], meta["sha256"][store.live()], strict=True)))  # fmt: skip


def test_reruns_on_a_changed_archive_replace_prune_and_restore(archive, tmp_path):
    from sarise.io.metadata import file_sha256

    root, _ = archive
    src, other = tmp_path / "src", tmp_path / "other"
    shutil.copytree(root / "2015", src / "2015")
    shutil.copytree(root / "2016", other / "2016")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    changed, gone = files[0], files[1]
    out = tmp_path / "store"
    cfg = IngestConfig(size=32, fit="crop", chunk=2)  # one image per file

    def run(*sources, prune=False):
        return ingest(list(sources), out, config=cfg, root=tmp_path, workers=1,
                      show_progress=False, prune=prune)  # fmt: skip

    run(src)
    run(other)  # a second source in the same store
    first, _ = _state(out)
    assert all(reason == "" for _, reason in first) and len(first) == len(files) + 2
    original = changed.read_bytes()

    # a file whose content changed: the new content replaces the old row, never a second
    # live row for one path
    replacement = next(
        p
        for p in sorted(root.rglob("*" + changed.suffix))
        if p.parent.name not in ("2015", "2016") and p.stat().st_size > 1000
    )
    shutil.copyfile(replacement, changed)
    s = run(src)
    assert s.images == 1 and s.retired == {"replaced": 1}
    rows, live = _state(out)
    name = changed.relative_to(tmp_path).as_posix()
    assert (name, "replaced") in rows and (name, "") in rows
    assert live[name] == file_sha256(changed)
    assert len(live) == len(files) + 2

    # a file that is gone stays until --prune; pruning one source never touches the other
    gone.unlink()
    assert run(src).retired == {}
    s = run(src, prune=True)
    assert s.retired == {"removed": 1}
    rows, live = _state(out)
    assert (gone.relative_to(tmp_path).as_posix(), "removed") in rows
    assert len(live) == len(files) + 1 and any(p.startswith("other/") for p in live)
    assert run(src, prune=True).retired == {}  # a rerun changes nothing more

    # content that is back is live again, and what replaced it is retired
    changed.write_bytes(original)
    s = run(src)
    assert s.images == 0 and s.retired == {"replaced": 1, "restored": 1}
    assert _state(out)[1][name] == file_sha256(changed)
    shutil.copyfile(root / "2015" / gone.name, gone)
    assert run(src, prune=True).retired == {"restored": 1}
    assert len(_state(out)[1]) == len(files) + 2


def test_a_file_that_changes_while_it_is_read_fails_and_the_rerun_stores_it(archive, tmp_path,
                                                                            monkeypatch):  # fmt: skip
    import sarise.io

    root, _ = archive
    src = tmp_path / "src"
    shutil.copytree(root / "2015", src)
    victim = sorted(p for p in src.iterdir() if p.suffix == ".png")[0]
    real = sarise.io.read_scan

    def read_while_written(path, **kw):  # a writer appends while the reader works
        scan = real(path, **kw)
        if path.name == victim.name:
            with open(path, "ab") as f:
                f.write(b"\0")
        return scan

    from sarise.ingest import prepare_file

    monkeypatch.setattr(sarise.io, "read_scan", read_while_written)
    got = prepare_file(victim, IngestConfig(size=32), frozenset(), src)
    assert got.status == "failed" and "changed while it was read" in got.reason
    monkeypatch.setattr(sarise.io, "read_scan", real)
    got = prepare_file(victim, IngestConfig(size=32), frozenset(), src)
    assert got.status == "read" and got.sha256 == got.rows[0]["sha256"]


def test_a_pixel_budget_fails_files_before_reading_them(archive, tmp_path):
    root, _ = archive
    cfg = IngestConfig(size=32, max_pixels=80 * 80 - 1, max_failed_fraction=1.0)
    s = ingest([root / "2015"], tmp_path / "store", config=cfg, workers=1, show_progress=False)
    errors = ImageStore.open(tmp_path / "store").errors()
    assert s.images == 0 and s.failed == len(errors) > 0
    assert (
        errors["reason"]
        .str.contains(
            "80 x 80 = 6400 pixels declared, more than ingest.max_pixels (6399)", regex=False
        )
        .all()
    )


def test_channel_preference_picks_the_first_pattern_that_matches(shared_data, tmp_path):
    # amplitude where a file has one (the Asylum files), else Z (the Nanonis files)
    cfg = IngestConfig(channels=(("amplitude", "^z_fwd$"),), max_failed_fraction=0.1)
    ingest([shared_data / "ibw", shared_data / "sxm"], tmp_path / "s", config=cfg,
           root=shared_data, workers=1, show_progress=False)  # fmt: skip
    store = ImageStore.open(tmp_path / "s")
    meta = store.metadata()
    assert (meta.loc[meta["format"] == "ibw", "channel"] == "AmplitudeRetrace").all()
    sxm = meta[meta["format"] == "sxm"].set_index("path")["channel"]
    assert sxm.pop("sxm/example_TOPO.sxm") == "Z_fwd"  # the one Nanonis file without it
    assert (sxm == "OC_D1_Amplitude_fwd").all() and len(sxm) == 4
    assert store.channels == ["c0:amplitude>^z_fwd$"]
    # a regular expression alternative goes in file order: Height comes first
    alt = IngestConfig(channels=("amplitude|height",))
    ingest([shared_data / "ibw"], tmp_path / "alt", config=alt, workers=1, show_progress=False)
    assert set(ImageStore.open(tmp_path / "alt").metadata()["channel"]) == {"HeightRetrace"}
    # a file with none of the patterns fails with the reason; the failed fraction decides
    nap = IngestConfig(channels=(("nap.*phase", "napamp"),), max_failed_fraction=0.0)
    with pytest.raises(SariseError, match="3 of 4 files failed"):
        ingest([shared_data / "pfm-h5" / f"PTO_Funakubo000{i}.h5" for i in (1, 2, 3)]
               + [shared_data / "pfm-h5" / "PZT_final0001.h5"], tmp_path / "nap", config=nap,
               workers=1, show_progress=False)  # fmt: skip
    errors = ImageStore.open(tmp_path / "nap").errors()
    assert errors["reason"].str.startswith("no channel matches 'nap.*phase' or 'napamp'").all()
    assert ImageStore.open(tmp_path / "nap").metadata()["channel"].tolist() == ["NapPhaseRetrace"]


def test_every_stored_channel_keeps_its_own_thumbnail(shared_data, tmp_path):
    from sarise import preprocess as pp

    cfg = IngestConfig(
        channels=("height", "amplitude", "phase"), size=96, thumbnail=32, max_failed_fraction=0.2
    )  # one file has no phase channel
    ingest([shared_data / "ibw"], tmp_path / "store", config=cfg, workers=1, show_progress=False)
    store = ImageStore.open(tmp_path / "store")
    thumbs, images = store.array("thumbnails")[:], store.array("images")[:]
    assert thumbs.shape == (len(store), 3, 32, 32)
    for im, th in zip(images, thumbs, strict=True):
        # each channel's thumbnail is made from that channel's image (stored as float16)
        made = np.stack([pp.thumbnail(c.astype(np.float32), 32) for c in im]).astype(int)
        assert np.abs(made - th).max() <= 1
        assert not np.array_equal(th[0], th[2])  # height is not phase


def test_sidecars_override_headers_and_update_a_store_without_reading(shared_data, tmp_path,
                                                                       cli_env):  # fmt: skip
    first = tmp_path / "first.csv"
    first.write_text("path,material,grower\nPZT_*,PbZr0.2Ti0.8O3,A. Rivera\n"
                     "PMN28Pt0000.h5,PMN-PT,\n")  # fmt: skip
    store = tmp_path / "store"
    res = _sarise("ingest", store, shared_data / "pfm-h5", "--sidecar", first, "--workers", "1",
                  "--no-progress", env=cli_env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    meta = ImageStore.open(store).metadata().set_index("path")
    assert meta.loc["PZT_final0002.h5", "material"] == "PbZr0.2Ti0.8O3"
    assert meta.loc["PZT_final0002.h5", "sample"] == "PZT_final"  # the header's, untouched
    assert meta.loc["PMN28Pt0000.h5", "grower"] is None and meta["grower"].notna().sum() == 3
    # a corrected sidecar on the existing store: metadata changes, no file is read again
    second = tmp_path / "second.yaml"
    second.write_text("- {path: 'PZT_*', material: PZT, sample: film-7}\n"
                      "- {path: nowhere.h5, material: x}\n")  # fmt: skip
    images = ImageStore.open(store).array("images")[:]
    again = _sarise("ingest", store, shared_data / "pfm-h5", "--sidecar", second, "--workers",
                    "1", "--no-progress", env=cli_env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "0 images stored" in again.stderr and "13 skipped" not in again.stderr
    assert "1 entries match no stored file (first: nowhere.h5)" in again.stderr
    meta = ImageStore.open(store).metadata().set_index("path")
    assert meta.loc["PZT_final0002.h5", ["material", "sample"]].tolist() == ["PZT", "film-7"]
    assert "grower" not in meta or meta["grower"].isna().all()  # the sidecar is replaced whole
    np.testing.assert_array_equal(ImageStore.open(store).array("images")[:], images)
    # --file-wins: the header's sample stays, the sidecar only fills what the file lacks
    res = _sarise("ingest", store, shared_data / "pfm-h5", "--sidecar", second, "--file-wins",
                  "--workers", "1", "--no-progress", env=cli_env)  # fmt: skip
    meta = ImageStore.open(store).metadata().set_index("path")
    assert meta.loc["PZT_final0002.h5", ["material", "sample"]].tolist() == ["PZT", "PZT_final"]
