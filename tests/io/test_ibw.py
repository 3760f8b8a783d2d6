"""Asylum .ibw reader on the real files in ../shared/data/ibw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sarise.io import ibw
from sarise.io._base import ReaderError

pytest.importorskip("igor2")

#: file -> channel names, as Asylum labelled them (NUL junk cut).
CHANNELS = {
    "IgorIBWReader_ImageStack_BTFO_DSO.ibw": [
        "HeightRetrace", "AmplitudeRetrace", "DeflectionRetrace", "PhaseRetrace"],
    "IgorIBWReader_P0089OP0027.ibw": [
        "HeightRetrace", "AmplitudeRetrace", "DeflectionRetrace", "PhaseRetrace",
        "UserIn0Retrace"],
    "SrTiO3_treated_213nm-film.ibw": [
        "HeightRetrace", "AmplitudeRetrace", "PhaseRetrace", "ZSensorRetrace"],
    "SrTiO3_treated_213nm-substrate.ibw": ["HeightRetrace", "AmplitudeRetrace", "ZSensorRetrace"],
    "SrTiO3_treated_81nm-film.ibw": [
        "HeightRetrace", "AmplitudeRetrace", "PhaseRetrace", "ZSensorRetrace"],
    "SrTiO3_treated_81nm-substrate.ibw": [
        "HeightRetrace", "AmplitudeRetrace", "PhaseRetrace", "ZSensorRetrace"],
    "SrTiO3_untreated_162nm-film.ibw": [
        "HeightRetrace", "AmplitudeRetrace", "PhaseRetrace", "ZSensorRetrace"],
    "SrTiO3_untreated_162nm-substrate.ibw": [
        "HeightRetrace", "AmplitudeRetrace", "PhaseRetrace", "ZSensorRetrace"],
}  # fmt: skip


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    return shared_data / "ibw"


def test_all_files_listed(folder: Path) -> None:
    assert sorted(p.name for p in folder.glob("*.ibw")) == sorted(CHANNELS)


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_every_file(folder: Path, name: str) -> None:
    path = folder / name
    assert ibw.sniff(path.read_bytes()[:64])
    scan = ibw.read(path)
    assert scan.format == "ibw" and scan.path == path
    assert [c.name for c in scan.channels] == CHANNELS[name]
    for ch in scan.channels:
        assert ch.name and "\x00" not in ch.name
        assert ch.data.shape == (256, 256) and ch.data.dtype == np.float64
        assert np.isfinite(ch.data).all() and np.ptp(ch.data) > 0
    units = {c.name: c.unit for c in scan.channels}
    assert units["HeightRetrace"] == "m" and units["AmplitudeRetrace"] == "m"
    assert units.get("PhaseRetrace", "deg") == "deg"


def test_btfo_metadata(folder: Path) -> None:
    scan = ibw.read(folder / "IgorIBWReader_ImageStack_BTFO_DSO.ibw")
    assert scan.metadata == {
        "instrument": "Asylum Research",
        "scan_size_m": [2e-06, 2e-06],
        "date": "2021-01-07T17:18:38",  # Date:2021-01-07, Time:5:18:38 PM
        "material": None,
        "sample": "BTFO_DSO_Thick",
        "imaging_mode": "PFM Mode",
        "drive_frequency_hz": 380740.0,
    }
    assert scan.raw["ScanSize"] == "2e-06" and scan.raw["BaseName"] == "BTFO_DSO_Thick"
    assert scan.raw["Time"] == "5:18:38 PM"
    assert len(scan.raw) == 630


def test_p0089_userin_in_volts(folder: Path) -> None:
    scan = ibw.read(folder / "IgorIBWReader_P0089OP0027.ibw")
    assert scan.channels[-1].unit == "V"  # note: UserIn0Unit: V
    assert scan.metadata["date"] == "2020-11-25T19:09:19"
    assert scan.metadata["sample"] == "P0089OP" and scan.metadata["material"] is None
    assert scan.metadata["drive_frequency_hz"] == 71000.0


def test_srtio3_substrate_5um(folder: Path) -> None:
    scan = ibw.read(folder / "SrTiO3_treated_81nm-substrate.ibw")
    meta = scan.metadata
    assert meta["scan_size_m"] == [5e-06, 5e-06]
    assert meta["date"] == "2022-06-23T11:57:48"
    assert meta["sample"] == "s4" and meta["imaging_mode"] == "AC Mode"
    assert meta["drive_frequency_hz"] == pytest.approx(243670.0)
    phase = scan.channels[2]
    assert phase.unit == "deg" and 42 < phase.data.min() < phase.data.max() < 45


def test_orientation_is_flipped_transpose(folder: Path) -> None:
    from igor2 import binarywave

    path = folder / "SrTiO3_treated_213nm-film.ibw"
    wave = binarywave.load(path)["wave"]["wData"]
    height = ibw.read(path).channels[0].data
    # data[y, x], top row = last slow-scan line (Asylum stores line 0 at the bottom)
    np.testing.assert_array_equal(height, np.flipud(wave[:, :, 0].T))
    assert height[0, 5] == wave[5, 255, 0] and height[255, 5] == wave[5, 0, 0]


def test_empty_note_file(folder: Path) -> None:
    scan = ibw.read(folder / "SrTiO3_treated_213nm-substrate.ibw")
    assert scan.raw == {}
    assert scan.metadata["scan_size_m"] is None and scan.metadata["date"] is None
    assert scan.metadata["instrument"] is None  # nothing in the file says Asylum


def test_sniff() -> None:
    assert ibw.sniff(b"\x05\x00") and ibw.sniff(b"\x00\x02") and ibw.sniff(b"\x01\x00")
    assert not ibw.sniff(b"") and not ibw.sniff(b"\x05")
    assert not ibw.sniff(b"\x04\x00") and not ibw.sniff(b"\x89HDF\r\n\x1a\n")


def test_parse_note_and_dates() -> None:
    raw = ibw.parse_note(b"ScanSize: \rDate: \rUserCalcUnit: \xb0\rA:b:c\r")
    assert raw == {"ScanSize": "", "Date": "", "UserCalcUnit": "\u00b0", "A": "b:c"}
    meta = ibw.asylum_metadata(raw, instrument=True)
    assert meta["scan_size_m"] is None and meta["date"] is None
    assert ibw.asylum_metadata({"Date": "Wed, Mar 15, 2017"}, True)["date"] == "2017-03-15"
    assert ibw.asylum_metadata({"Date": "nonsense"}, True)["date"] is None
    assert ibw.asylum_metadata({"ImagingMode": "3"}, True)["imaging_mode"] == "PFM Mode"


def _bad(tmp_path: Path, folder: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.ibw"
    if kind == "truncated":
        path.write_bytes((folder / "SrTiO3_treated_81nm-film.ibw").read_bytes()[:500])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "random_v5":  # passes sniff, garbage after
        path.write_bytes(b"\x05\x00" + np.random.default_rng(1).bytes(4096))
    else:  # cut inside the label block (this file has no trailing bytes after it)
        data = (folder / "SrTiO3_treated_213nm-substrate.ibw").read_bytes()
        path.write_bytes(data[:-40])
    return path


@pytest.mark.parametrize("kind", ["truncated", "empty", "random", "random_v5", "cut_labels"])
def test_bad_files_raise_reader_error(tmp_path: Path, folder: Path, kind: str) -> None:
    path = _bad(tmp_path, folder, kind)
    with pytest.raises(ReaderError) as info:
        ibw.read(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReaderError, match="cannot open"):
        ibw.read(tmp_path / "nope.ibw")
