"""A bad-input corpus built from the real files: every case is a ReaderError naming the
file, or (where the bytes still hold a whole image) a correct read; never another error."""

import os

import numpy as np
import pytest

from sarise.io import ReaderError, read_scan

REAL = {"ibw": "ibw/SrTiO3_treated_81nm-film.ibw", "h5": "pfm-h5/PZT_final0001.h5",
        "sxm": "sxm/example_TOPO.sxm", "gwy": "gwy/PTO_110_Virgin0001.gwy"}  # fmt: skip
SUFFIXES = [".ibw", ".h5", ".sxm", ".gwy", ".tif", ".png", ".jpg"]


def _read_or_reason(path):
    try:
        scan = read_scan(path)
    except ReaderError as exc:
        assert str(path) in str(exc) and exc.reason
        return None
    assert scan.channels and all(c.data.ndim == 2 for c in scan.channels)
    return scan


@pytest.mark.parametrize("fmt", list(REAL))
@pytest.mark.parametrize("fraction", [0.0001, 0.01, 0.3, 0.7, 0.99])
def test_truncated_copies(shared_data, tmp_path, fmt, fraction):
    data = (shared_data / REAL[fmt]).read_bytes()
    cut = tmp_path / f"cut{fraction}.{fmt}"
    cut.write_bytes(data[: max(1, int(len(data) * fraction))])
    _read_or_reason(cut)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_random_bytes_and_zero_bytes_with_each_suffix(tmp_path, suffix):
    noise = tmp_path / f"noise{suffix}"
    noise.write_bytes(np.random.default_rng(len(suffix)).bytes(5000))
    with pytest.raises(ReaderError, match="noise"):
        read_scan(noise)
    empty = tmp_path / f"empty{suffix}"
    empty.touch()
    with pytest.raises(ReaderError, match="empty file"):
        read_scan(empty)


@pytest.mark.parametrize("fmt", list(REAL))
def test_wrong_suffix_is_read_by_content(shared_data, tmp_path, fmt):
    original = read_scan(shared_data / REAL[fmt])
    wrong = tmp_path / f"misnamed_{fmt}.tif"
    wrong.write_bytes((shared_data / REAL[fmt]).read_bytes())
    scan = read_scan(wrong)
    assert scan.format == original.format
    for a, b in zip(scan.channels, original.channels, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_bit_flips_never_crash(shared_data, tmp_path):
    rng = np.random.default_rng(7)
    for fmt, rel in REAL.items():
        data = bytearray((shared_data / rel).read_bytes())
        for k in range(4):
            flipped = bytearray(data)
            for i in rng.integers(0, min(len(data), 4096), 8):  # the headers
                flipped[i] ^= 0xFF
            path = tmp_path / f"flip{k}.{fmt}"
            path.write_bytes(bytes(flipped))
            _read_or_reason(path)


def test_nan_inf_constant_and_tiny_images_are_returned_as_they_are(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    a = np.ones((8, 8), np.float32)
    a[2, 3], a[4, 4] = np.nan, np.inf
    tifffile.imwrite(tmp_path / "nan.tif", a)
    assert np.isnan(read_scan(tmp_path / "nan.tif").channels[0].data[2, 3])
    tifffile.imwrite(tmp_path / "one.tif", np.ones((1, 1), np.float32))
    assert read_scan(tmp_path / "one.tif").channels[0].data.shape == (1, 1)


def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: the reason is then the content
            with pytest.raises(ReaderError, match=r"locked\.png"):
                read_scan(path)
        else:
            with pytest.raises(ReaderError, match="cannot open"):
                read_scan(path)
    finally:
        path.chmod(0o644)


def test_huge_declared_size_with_little_data(shared_data, tmp_path):
    data = (shared_data / REAL["sxm"]).read_bytes()
    head, sep, rest = data.partition(b":SCAN_PIXELS:\n")
    line, nl, tail = rest.partition(b"\n")
    assert sep and line.split() == [b"256", b"256"]
    huge = tmp_path / "huge.sxm"
    huge.write_bytes(head + sep + b"       2000000000       2000000000" + nl + tail)
    with pytest.raises(ReaderError, match=r"huge\.sxm"):
        read_scan(huge)  # refused from the header, without allocating the declared size


def _png_declaring(path, height, width):
    """A tiny valid PNG whose header is then rewritten to declare ``height x width``."""
    import struct
    import zlib

    from PIL import Image

    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _h5_declaring(path, shape):
    """A pyNSID-layout HDF5 file whose one channel declares ``shape`` (compressed, unwritten:
    a few KB on disk)."""
    import h5py

    with h5py.File(path, "w") as h5:
        grp = h5.create_group("Measurement_000/Channel_000/Channel_000")
        chunks = tuple(min(256, n) for n in shape)
        grp.create_dataset("Channel_000", shape=shape, dtype="f8", chunks=chunks,
                           compression="gzip")  # fmt: skip


@pytest.mark.parametrize("kind", ["png", "h5"])
def test_a_pixel_budget_refuses_huge_declared_images_before_reading(tmp_path, kind):
    path = tmp_path / f"bomb.{kind}"
    if kind == "png":
        _png_declaring(path, 9400, 9400)  # 86 KB PNGs like this took 3.6 GB
    else:
        _h5_declaring(path, (60000, 60000))  # 27 GiB of float64 declared
    assert path.stat().st_size < 100_000
    with pytest.raises(ReaderError, match=r"bomb\.\w+: .*60000 x 60000|bomb\.\w+: .*9400 x 9400"):
        read_scan(path, max_pixels=2**26)
    # within the budget the same reader reads as before
    ok = tmp_path / f"ok.{kind}"
    if kind == "png":
        _png_declaring(ok, 4, 4)
    else:
        _h5_declaring(ok, (64, 48))
    assert read_scan(ok, max_pixels=64 * 48).channels[0].data.size == (
        16 if kind == "png" else 3072
    )
    with pytest.raises(ReaderError, match="max_pixels"):
        read_scan(ok, max_pixels=15)


@pytest.mark.parametrize("fmt", list(REAL))
def test_every_reader_checks_the_pixel_budget(shared_data, fmt):
    path = shared_data / REAL[fmt]
    scan = read_scan(path, max_pixels=2**26)
    largest = max(c.data.size for c in scan.channels)
    assert read_scan(path, max_pixels=largest).channels
    with pytest.raises(ReaderError, match=r"more than ingest\.max_pixels"):
        read_scan(path, max_pixels=largest - 1)
