import csv

import numpy as np
import pytest

from sarise.demo_archive import KINDS, write_demo_archive
from sarise.io import read_scan


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_archive")
    return root, write_demo_archive(root, n=12, seed=3, size=64)


def test_every_file_reads_with_its_metadata(archive):
    root, sidecar = archive
    rows = list(csv.DictReader(sidecar.open()))
    assert len(rows) == 12 and {r["structure"] for r in rows} == set(KINDS)
    formats = {}
    for row in rows:
        scan = read_scan(root / row["path"])
        formats[scan.format] = formats.get(scan.format, 0) + 1
        assert all(c.data.shape == (64, 64) and np.isfinite(c.data).all() for c in scan.channels)
        if scan.format == "hdf5":
            assert [c.name for c in scan.channels] == ["HeightRetrace", "PhaseRetrace"]
            assert scan.metadata["sample"] == row["material"]  # the BaseName the demo wrote
            assert scan.metadata["date"].startswith(row["date"])
        if scan.format == "tiff":
            assert [c.name for c in scan.channels] == ["Height", "Phase"]
            assert min(abs(scan.metadata["scan_size_m"][0] - s) for s in (1e-6, 2e-6, 5e-6)) < 1e-12
        assert (row["outcome"] == "failed") == (row["structure"] == "noise")
        assert bool(row["plane_group"]) == (row["structure"] == "lattice")
    assert formats == {"hdf5": 4, "tiff": 4, "image": 4}


def test_same_seed_same_images(archive, tmp_path):
    root, sidecar = archive
    again = write_demo_archive(tmp_path, n=12, seed=3, size=64)
    assert again.read_text() == sidecar.read_text()
    for row in csv.DictReader(sidecar.open()):
        a, b = read_scan(root / row["path"]), read_scan(tmp_path / row["path"])
        for ca, cb in zip(a.channels, b.channels, strict=True):
            np.testing.assert_array_equal(ca.data, cb.data)


def test_hdf5_orientation_round_trips(tmp_path):
    # the first file is an HDF5 stripe image; its PNG twin shows the same height map
    write_demo_archive(tmp_path, n=1, seed=5, size=32)
    (h5,) = tmp_path.glob("*/*.h5")
    height = read_scan(h5).channels[0].data / 5e-9
    rng_image = pytest.importorskip("sarise.demo_archive")._image
    expected, _ = rng_image("stripes", 32, np.random.default_rng([5, 0]))
    np.testing.assert_allclose(height, expected, atol=1e-6)
