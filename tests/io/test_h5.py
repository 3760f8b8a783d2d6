"""pyNSID HDF5 reader on the real Asylum PFM files in ../shared/data/pfm-h5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sarise.io import h5
from sarise.io._base import ReaderError

h5py = pytest.importorskip("h5py")

FOUR = ["HeightRetrace", "AmplitudeRetrace", "DeflectionRetrace", "PhaseRetrace"]
EIGHT = [
    "HeightRetrace", "AmplitudeRetrace", "NapAmplitudeRetrace", "DeflectionRetrace",
    "PhaseRetrace", "NapPhaseRetrace", "UserIn0Retrace", "NapUserIn0Retrace",
]  # fmt: skip
#: file -> (sample (Asylum BaseName), date, scan size in m, channel names); all 256 x 256.
FILES = {
    "PMN28Pt0000.h5": ("PMN28Pt", "2014-02-20", 4e-06, FOUR),
    "PMN28Pt0001.h5": ("PMN28Pt", "2014-02-20", 2e-06, FOUR),
    "PMN28Pt0002.h5": ("PMN28Pt", "2014-02-20", 2e-06, FOUR),
    "PTO_Funakubo0001.h5": ("PTO_Funakubo", "2017-05-26", 1e-06, FOUR),
    "PTO_Funakubo0002.h5": ("PTO_Funakubo", "2017-05-27", 5e-06, FOUR),
    "PTO_Funakubo0003.h5": ("PTO_Funakubo", "2017-05-27", 1e-06, FOUR),
    "PTO_Funakubo0004.h5": ("PTO_Funakubo", "2017-05-28", 3e-06, FOUR),
    "PTO_Funakubo0005.h5": ("PTO_Funakubo", "2017-05-28", 1e-06, FOUR),
    "PTO_Funakubo0006.h5": ("PTO_Funakubo", "2017-05-29", 5e-06, FOUR),
    "PTO_Funakubo0007.h5": ("PTO_Funakubo", "2017-05-29", 1e-06, FOUR),
    "PZT_final0001.h5": ("PZT_final", "2010-06-15", 2e-06, EIGHT),
    "PZT_final0002.h5": ("PZT_final", "2010-06-15", 2e-06, EIGHT),
    "PZT_final0003.h5": ("PZT_final", "2010-06-15", 2e-06, EIGHT),
}


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    return shared_data / "pfm-h5"


def test_all_files_listed(folder: Path) -> None:
    assert sorted(p.name for p in folder.glob("*.h5")) == sorted(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_file(folder: Path, name: str) -> None:
    sample, date, size, names = FILES[name]
    path = folder / name
    assert h5.sniff(path.read_bytes()[:64])
    scan = h5.read(path)
    assert scan.format == "hdf5" and scan.path == path
    assert [c.name for c in scan.channels] == names
    for ch in scan.channels:
        assert ch.name and "\x00" not in ch.name
        # README says one file is 256x128: measured, every file is 256x256
        assert ch.data.shape == (256, 256) and ch.data.dtype == np.float64
        assert np.isfinite(ch.data).all() and np.ptp(ch.data) > 0
    meta = scan.metadata
    assert meta["instrument"] == "Asylum Research"
    assert meta["sample"] == sample and meta["material"] is None and meta["date"] == date
    assert meta["scan_size_m"] == [size, size]
    assert meta["imaging_mode"] == "PFM Mode"  # PMN/PZT store code 3, PTO the name
    units = {c.name: c.unit for c in scan.channels}
    assert units["HeightRetrace"] == "m" and units["PhaseRetrace"] == "deg"


def test_pzt_units_and_raw(folder: Path) -> None:
    scan = h5.read(folder / "PZT_final0001.h5")
    units = [c.unit for c in scan.channels]
    # the file says "m" for NapPhase and UserIn0; Asylum's names and UserIn0Unit say otherwise
    assert units == ["m", "m", "m", "m", "deg", "deg", "V", "V"]
    assert scan.metadata["drive_frequency_hz"] == 315000.0
    assert scan.raw["ImagingMode"] == 3 and isinstance(scan.raw["ImagingMode"], int)
    assert scan.raw["BaseName"] == "PZT_final" and scan.raw["UserIn0Unit"] == "V"
    assert scan.raw["Channel_5/quantity"] == "NapPhaseRetrace"
    assert scan.raw["Channel_5/units"] == "m"
    assert scan.raw["Channel_0/DIMENSION_LABELS"] == ["x", "y"]
    assert all(isinstance(v, str | int | float | bool | list) for v in scan.raw.values())


def test_pto_metadata(folder: Path) -> None:
    scan = h5.read(folder / "PTO_Funakubo0004.h5")
    assert scan.metadata == {
        "instrument": "Asylum Research",
        "scan_size_m": [3e-06, 3e-06],
        "date": "2017-05-28",
        "material": None,
        "sample": "PTO_Funakubo",
        "imaging_mode": "PFM Mode",
        "drive_frequency_hz": 369110.0,
    }
    assert scan.raw["ImagingMode"] == "PFM Mode"


def test_orientation_matches_ibw_convention(folder: Path) -> None:
    path = folder / "PMN28Pt0000.h5"
    with h5py.File(path) as f:
        stored = f["Measurement_000/Channel_0/Channel_0/Channel_0"][()]
    height = h5.read(path).channels[0].data
    np.testing.assert_array_equal(height, np.flipud(stored.T))


def test_sniff() -> None:
    assert h5.sniff(b"\x89HDF\r\n\x1a\n\x00")
    assert not h5.sniff(b"") and not h5.sniff(b"\x05\x00") and not h5.sniff(b"\x89HDF")


def _bad(tmp_path: Path, folder: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.h5"
    if kind == "truncated":
        path.write_bytes((folder / "PMN28Pt0000.h5").read_bytes()[:500])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "half":
        data = (folder / "PZT_final0001.h5").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # valid HDF5, other layout
        with h5py.File(path, "w") as f:
            f["images/a"] = np.zeros((4, 4))
            f.create_group("Measurement_000/Channel_0/Channel_0")["Channel_0"] = np.zeros(5)
    return path


@pytest.mark.parametrize("kind", ["truncated", "empty", "random", "half", "other_layout"])
def test_bad_files_raise_reader_error(tmp_path: Path, folder: Path, kind: str) -> None:
    path = _bad(tmp_path, folder, kind)
    with pytest.raises(ReaderError) as info:
        h5.read(path)
    assert str(path) in str(info.value)
    if kind == "other_layout":
        assert "no Measurement_*/Channel_* image datasets" in str(info.value)
