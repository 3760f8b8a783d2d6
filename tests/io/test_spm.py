"""Bruker Nanoscope reader, on files written here in the layout Nanoscope 9 writes (no real
Bruker file is in shared/data): values, orientation, scaling and metadata are checked
against numbers worked out by hand from that layout."""

import numpy as np
import pytest

from sarise.io import ReaderError, detect_format, read_scan

NX, NY, HEADER = 6, 4, 8192


def _nanoscope(path, *, bpp=2, channels=(("Height Sensor", "ZSensor", "Trace"),), date=True):
    n = NX * NY * bpp
    lines = ["\\*File list", "\\Version: 0x09200000",
             "\\Date: 03:31:24 PM Tue Jun 28 2016" if date else "\\Date: unknown",
             f"\\Data length: {HEADER}", "\\*Equipment list", "\\Description: Dimension Icon",
             "\\*Scanner list", "\\@Sens. ZsensSens: V 20.0 nm/V", "\\@Sens. Phase: V 1 deg/V",
             "\\*Ciao scan list", "\\Operating mode: Tapping", "\\Drive frequency: 312500",
             "\\Scan Size: 2.5 1.25 ~m", "\\Samps/line: 6", "\\Lines: 4"]  # fmt: skip
    for i, (name, tag, direction) in enumerate(channels):
        sens = "Sens. ZsensSens" if tag == "ZSensor" else "Sens. Phase"
        lines += ["\\*Ciao image list", f"\\Data offset: {HEADER + i * n}",
                  f"\\Data length: {n}", f"\\Bytes/pixel: {bpp}", f"\\Samps/line: {NX}",
                  f"\\Number of lines: {NY}", "\\Scan Size: 2.5 1.25 ~m",
                  f"\\Line Direction: {direction}",
                  f'\\@2:Image Data: S [{tag}] "{name}"',
                  f"\\@2:Z scale: V [{sens}] (0.0001 V/LSB) {256.0**bpp / 1000} V"]  # fmt: skip
    lines.append("\\*File list end")
    head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    display = np.arange(NX * NY, dtype=f"<i{bpp}").reshape(NY, NX) - 5
    body = b"".join((display[::-1] * (k + 1)).tobytes() for k in range(len(channels)))
    path.write_bytes(head.ljust(HEADER, b"\x00") + body)
    return display


def test_values_orientation_and_metadata(tmp_path):
    display = _nanoscope(tmp_path / "film.spm")
    scan = read_scan(tmp_path / "film.spm")
    assert scan.format == "spm" and [c.name for c in scan.channels] == ["Height Sensor"]
    ch = scan.channels[0]
    assert ch.unit == "m" and ch.data.shape == (NY, NX)
    # raw * (full scale / 2**16) V/LSB * 20 nm/V = raw * 1e-3 * 20 nm = raw * 2e-11 m
    np.testing.assert_allclose(ch.data, display * 2e-11)
    assert ch.data[0, 0] == pytest.approx(-5 * 2e-11)  # top-left as displayed
    m = scan.metadata
    assert m["instrument"] == "Bruker Dimension Icon" and m["date"] == "2016-06-28T15:31:24"
    assert m["scan_size_m"] == pytest.approx([2.5e-6, 1.25e-6])
    assert m["imaging_mode"] == "Tapping" and m["drive_frequency_hz"] == 312500.0
    assert scan.raw["Ciao image list/Line Direction"] == "Trace"


def test_32_bit_two_directions_and_a_non_height_channel(tmp_path):
    chans = (("Height", "ZSensor", "Trace"), ("Height", "ZSensor", "Retrace"),
             ("Phase", "Phase", "Trace"))  # fmt: skip
    display = _nanoscope(tmp_path / "scan.001", bpp=4, channels=chans, date=False)
    scan = read_scan(tmp_path / "scan.001")
    assert [c.name for c in scan.channels] == ["Height_trace", "Height_retrace", "Phase"]
    np.testing.assert_allclose(scan.channels[1].data, 2 * display * 2e-11)
    assert scan.channels[2].unit == "deg"
    np.testing.assert_allclose(scan.channels[2].data, 3 * display * 1e-3)
    assert scan.metadata["date"] is None


def test_truncated_and_misnamed(tmp_path):
    _nanoscope(tmp_path / "ok.spm")
    blob = (tmp_path / "ok.spm").read_bytes()
    (tmp_path / "short.spm").write_bytes(blob[: HEADER + 10])
    with pytest.raises(ReaderError, match=r"short\.spm: channel 'Height Sensor'.*truncated"):
        read_scan(tmp_path / "short.spm")
    (tmp_path / "head.spm").write_bytes(blob[:200])
    with pytest.raises(ReaderError, match=r"no .*File list end"):
        read_scan(tmp_path / "head.spm")
    (tmp_path / "scan.tif").write_bytes(blob)  # wrong suffix: read by its content
    assert detect_format(tmp_path / "scan.tif") == "spm"
    assert read_scan(tmp_path / "scan.tif").channels[0].data.shape == (NY, NX)
