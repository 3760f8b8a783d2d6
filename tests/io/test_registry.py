import os

import numpy as np
import pytest
from PIL import Image

from sarise.io import ReaderError, detect_format, read_scan


def _png(path, array):
    Image.fromarray(array).save(path, format="PNG")
    return path


def test_png_grey_16_bit_and_colour(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    scan = read_scan(_png(tmp_path / "g.png", grey))
    assert scan.format == "image" and [c.name for c in scan.channels] == ["intensity"]
    np.testing.assert_array_equal(scan.channels[0].data, grey)
    deep = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    np.testing.assert_array_equal(read_scan(_png(tmp_path / "d.png", deep)).channels[0].data, deep)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 30
    assert read_scan(_png(tmp_path / "c.png", rgb)).channels[0].data[0, 0] == pytest.approx(10)
    assert set(read_scan(tmp_path / "g.png").metadata) >= {"instrument", "date", "scan_size_m"}


def test_tiff_pages_colour_and_ome_size(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    stack = np.random.default_rng(0).random((3, 8, 10)).astype(np.float32)
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    scan = read_scan(tmp_path / "s.tif")
    assert scan.format == "tiff" and len(scan.channels) == 3
    np.testing.assert_array_equal(scan.channels[2].data, stack[2])
    rgb = np.zeros((4, 5, 3), np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tiff", rgb, photometric="rgb")
    assert [c.name for c in read_scan(tmp_path / "rgb.tiff").channels] == ["intensity"]
    tifffile.imwrite(tmp_path / "o.ome.tif", stack[0], metadata={"PhysicalSizeX": 0.02,
                     "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.02, "PhysicalSizeYUnit": "µm"})  # fmt: skip
    size = read_scan(tmp_path / "o.ome.tif").metadata["scan_size_m"]
    assert size == pytest.approx([10 * 0.02e-6, 8 * 0.02e-6])


def test_content_decides_over_the_suffix(tmp_path):
    png = _png(tmp_path / "really_a_png.tif", np.ones((4, 4), np.uint8) * 7)
    assert detect_format(png) == "image"
    assert read_scan(png).channels[0].data.max() == 7
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(os.urandom(2000))
    with pytest.raises(ReaderError, match=r"garbage\.tif: suffix \.tif but the content is not"):
        read_scan(bad)
    unknown = tmp_path / "notes.txt"
    unknown.write_text("hello microscope")
    with pytest.raises(ReaderError, match="unknown file format"):
        read_scan(unknown)


def test_bad_paths_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.png"
    empty.touch()
    with pytest.raises(ReaderError, match=r"empty\.png: empty file"):
        read_scan(empty)
    with pytest.raises(ReaderError, match="is a folder"):
        read_scan(tmp_path)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(ReaderError, match=r"loop\.png: cannot open"):
        read_scan(loop)
    with pytest.raises(ReaderError, match="cannot open"):
        read_scan(tmp_path / "missing.png")
    truncated = tmp_path / "cut.png"
    data = tmp_path / "full.png"
    _png(data, np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8))
    truncated.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ReaderError, match=r"cut\.png"):
        read_scan(truncated)


def test_non_utf8_file_name(tmp_path):
    name = os.fsdecode(b"scan_\xff\xfe.png")
    path = _png(tmp_path / name, np.zeros((2, 3), np.uint8))
    assert read_scan(path).channels[0].data.shape == (2, 3)
