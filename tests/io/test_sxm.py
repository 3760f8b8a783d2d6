"""The hand-written Nanonis .sxm reader on the five real files and on broken inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sarise.io import sxm
from sarise.io._base import METADATA_KEYS, ReaderError

STM = ["Z", "Bias", "Current"]
OC = ["OC_D1_Phase", "OC_D1_Amplitude", "OC_M1_Freq._Shift", "OC_M1_Excitation"]
UNITS = {"Z": "m", "Bias": "V", "Current": "A", "OC_D1_Phase": "deg"}
UNITS |= {"OC_D1_Amplitude": "m", "OC_M1_Freq._Shift": "Hz", "OC_M1_Excitation": "V"}

# file -> (base channels, scan size in metres, ISO date, SCAN_DIR, imaging mode)
EXPECTED = {
    "example_FFT.sxm": (STM + OC, 5.0e-8, "2020-01-08T21:16:32", "down", "constant current"),
    "example_LineProfile.sxm": (STM + OC, 2.0e-8, "2020-01-08T21:11:23", "up", "constant current"),
    "example_LineProfile2.sxm": (
        STM + OC,
        2.0e-8,
        "2020-01-08T21:09:18",
        "up",
        "constant current",
    ),
    "example_TOPO.sxm": (STM, 5.0e-9, "2019-06-06T15:12:03", "up", "constant current"),
    "example_nc-AFM.sxm": (
        STM + OC,
        5.49671e-9,
        "2019-12-03T00:09:40",
        "down",
        "constant height nc-AFM",
    ),
}


def _names(bases: list[str]) -> list[str]:
    return [f"{b}_{d}" for b in bases for d in ("fwd", "bwd")]


@pytest.fixture(scope="module")
def scans(shared_data: Path) -> dict[str, sxm.Scan]:
    return {name: sxm.read(shared_data / "sxm" / name) for name in EXPECTED}


def test_all_five_files_are_covered(shared_data: Path) -> None:
    assert sorted(p.name for p in (shared_data / "sxm").glob("*.sxm")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_channels_shapes_units(scans: dict, name: str) -> None:
    bases = EXPECTED[name][0]
    scan = scans[name]
    assert scan.format == "sxm"
    assert len(scan.channels) == 2 * len(bases)
    assert [c.name for c in scan.channels] == _names(bases)
    for channel in scan.channels:
        assert channel.data.shape == (256, 256)
        assert channel.data.dtype == np.float64
        assert channel.unit == UNITS[channel.name.rsplit("_", 1)[0]]
        assert np.isfinite(channel.data).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata(scans: dict, name: str) -> None:
    _, size, date, scan_dir, mode = EXPECTED[name]
    scan = scans[name]
    assert set(METADATA_KEYS) <= set(scan.metadata)
    assert scan.metadata["instrument"] == "Nanonis"
    assert scan.metadata["scan_size_m"] == pytest.approx([size, size], rel=1e-9)
    assert scan.metadata["date"] == date
    assert scan.metadata["imaging_mode"] == mode
    assert scan.raw["SCAN_DIR"] == scan_dir
    assert scan.raw["SCAN_PIXELS"].split() == ["256", "256"]
    assert "DATA_INFO" in scan.raw and "Z-Controller>Controller status" in scan.raw


def test_drive_frequency_only_with_pll_on(scans: dict) -> None:
    assert scans["example_nc-AFM.sxm"].metadata["drive_frequency_hz"] == pytest.approx(30474.7)
    for name in ("example_FFT.sxm", "example_TOPO.sxm"):
        assert scans[name].metadata["drive_frequency_hz"] is None


def test_nc_afm_z_is_constant_but_returned(scans: dict) -> None:
    """example_nc-AFM.sxm is a constant-height scan: Z is flat, a real degenerate input."""
    z = {c.name: c.data for c in scans["example_nc-AFM.sxm"].channels}
    for key in ("Z_fwd", "Z_bwd"):
        assert np.ptp(z[key]) == 0.0
        assert z[key][0, 0] == pytest.approx(-66.3835e-9, rel=1e-5)
    assert np.ptp(z["OC_M1_Freq._Shift_fwd"]) > 1.0  # the contrast is in the frequency shift


def test_concrete_values(scans: dict) -> None:
    topo = {c.name: c.data for c in scans["example_TOPO.sxm"].channels}
    assert np.all(topo["Bias_fwd"] == np.float32(-0.02))
    assert topo["Z_fwd"].min() == pytest.approx(-5.0597e-8, rel=1e-4)


# --- synthetic files: orientation, NaN, broken inputs ---------------------------------


def _sxm_bytes(images: list[np.ndarray], scan_dir: str, direction: str = "both") -> bytes:
    ny, nx = images[0].shape
    header = (
        ":NANONIS_VERSION:\n2\n:SCANIT_TYPE:\n              FLOAT            MSBFIRST\n"
        f":REC_DATE:\n 01.02.2021\n:REC_TIME:\n03:04:05\n:SCAN_PIXELS:\n  {nx}  {ny}\n"
        f":SCAN_RANGE:\n  1.0E-9  2.0E-9\n:SCAN_DIR:\n{scan_dir}\n:DATA_INFO:\n"
        "\tChannel\tName\tUnit\tDirection\tCalibration\tOffset\n"
        f"\t14\tZ\tm\t{direction}\t1.0E+0\t0.0E+0\n\n:SCANIT_END:\n\n\n"
    )
    data = np.concatenate([im.ravel() for im in images]).astype(">f4").tobytes()
    return header.encode("latin-1") + b"\x1a\x04" + data


STORED = np.arange(6, dtype=float).reshape(2, 3)  # as acquired: row 0 first, x left->right


@pytest.mark.parametrize(
    ("scan_dir", "fwd", "bwd"),
    [
        ("down", STORED, STORED[:, ::-1]),
        ("up", STORED[::-1], STORED[::-1, ::-1]),
    ],
)
def test_orientation(tmp_path: Path, scan_dir: str, fwd: np.ndarray, bwd: np.ndarray) -> None:
    path = tmp_path / "synthetic.sxm"
    path.write_bytes(_sxm_bytes([STORED, STORED], scan_dir))
    scan = sxm.read(path)
    assert [c.name for c in scan.channels] == ["Z_fwd", "Z_bwd"]
    np.testing.assert_array_equal(scan.channels[0].data, fwd)
    np.testing.assert_array_equal(scan.channels[1].data, bwd)
    assert scan.metadata["scan_size_m"] == [1e-9, 2e-9]
    assert scan.metadata["date"] == "2021-02-01T03:04:05"
    assert scan.metadata["imaging_mode"] is None


def test_nan_is_kept(tmp_path: Path) -> None:
    image = STORED.copy()
    image[1, :] = np.nan  # an aborted scan: last line never recorded
    path = tmp_path / "partial.sxm"
    path.write_bytes(_sxm_bytes([image], "down", direction="forward"))
    (channel,) = sxm.read(path).channels
    assert channel.name == "Z_fwd"
    assert np.isnan(channel.data[1]).all() and np.isfinite(channel.data[0]).all()


def test_sniff(shared_data: Path) -> None:
    head = (shared_data / "sxm" / "example_TOPO.sxm").read_bytes()[:64]
    assert sxm.sniff(head)
    assert not sxm.sniff(b"GWYP") and not sxm.sniff(b"")


def _broken(shared_data: Path, kind: str) -> bytes:
    blob = (shared_data / "sxm" / "example_TOPO.sxm").read_bytes()
    start = blob.index(b"\x1a\x04") + 2
    return {
        "header_only": blob[:start],
        "first_2000": blob[:2000],
        "one_float_short": blob[:-4],
        "one_float_long": blob + b"\0\0\0\0",
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4096),
        "no_data_info": blob.replace(b":DATA_INFO:", b":DATA_INFX:"),
        "bad_pixels": blob.replace(b"       256       256", b"       256       abc"),
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "header_only",
        "first_2000",
        "one_float_short",
        "one_float_long",
        "empty",
        "random",
        "no_data_info",
        "bad_pixels",
    ],
)
def test_broken_files_raise_reader_error(shared_data: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.sxm"
    path.write_bytes(_broken(shared_data, kind))
    with pytest.raises(ReaderError) as info:
        sxm.read(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


def test_missing_file_raises_reader_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.sxm"
    with pytest.raises(ReaderError, match="cannot open"):
        sxm.read(path)
