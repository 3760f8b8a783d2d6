"""The Gwyddion .gwy reader (gwyfile) on the real file and on broken inputs."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest

from sarise.io import gwy
from sarise.io._base import METADATA_KEYS, ReaderError

pytest.importorskip("gwyfile")

NAME = "PTO_110_Virgin0001.gwy"
CHANNELS = [
    ("HeightRetrace", "m"),
    ("AmplitudeRetrace", "m"),
    ("DeflectionRetrace", "m"),
    ("PhaseRetrace", "deg"),
]


@pytest.fixture(scope="module")
def gwy_path(shared_data: Path) -> Path:
    return shared_data / "gwy" / NAME


@pytest.fixture(scope="module")
def scan(gwy_path: Path) -> gwy.Scan:
    return gwy.read(gwy_path)


def test_only_one_file(shared_data: Path) -> None:
    assert [p.name for p in (shared_data / "gwy").glob("*.gwy")] == [NAME]


def test_channels_shapes_units(scan: gwy.Scan) -> None:
    assert scan.format == "gwy"
    assert len(scan.channels) == 4
    assert [(c.name, c.unit) for c in scan.channels] == CHANNELS
    for channel in scan.channels:
        assert channel.data.shape == (256, 256)
        assert channel.data.dtype == np.float64
        assert np.isfinite(channel.data).all()
        assert np.ptp(channel.data) > 0


def test_concrete_values(scan: gwy.Scan) -> None:
    data = {c.name: c.data for c in scan.channels}
    assert data["HeightRetrace"].min() == pytest.approx(-1.545856775919674e-08)
    assert data["HeightRetrace"].max() == pytest.approx(1.0963674412778346e-07)
    assert data["PhaseRetrace"].min() == pytest.approx(-89.98426818847656)
    assert data["PhaseRetrace"].max() == pytest.approx(269.9393005371094)


def test_metadata(scan: gwy.Scan) -> None:
    meta = scan.metadata
    assert set(METADATA_KEYS) <= set(meta)
    assert meta["instrument"] == "Gwyddion"
    # 10 µm Asylum scan; Gwyddion's import stored xreal = 10 µm * 256/255
    assert meta["scan_size_m"] == pytest.approx([1.003921568627451e-05] * 2)
    assert meta["date"] == "2023-12-20T11:44:03"
    assert meta["imaging_mode"] == "PFM Mode"
    assert meta["drive_frequency_hz"] == pytest.approx(434321.9753354788)
    # Asylum's BaseName is the sample name an operator typed; the material is not said
    assert meta["sample"] == "PTO_110_Virgin"
    assert meta["material"] is None


def test_raw_metadata(scan: gwy.Scan) -> None:
    raw = scan.raw
    assert raw["titles"] == {i: name for i, (name, _) in enumerate(CHANNELS)}
    assert [k for k in raw if k.endswith("/meta")] == [f"/{i}/meta" for i in range(4)]
    assert raw["/0/meta"]["MicroscopeModel"] == "Cypher"
    assert raw["filename"].endswith(NAME)


def test_sniff(gwy_path: Path) -> None:
    assert gwy.sniff(gwy_path.read_bytes()[:16])
    assert not gwy.sniff(b"GWYO") and not gwy.sniff(b":NANONIS_VERSION:") and not gwy.sniff(b"")


def test_old_format_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "old.gwy"
    path.write_bytes(b"GWYO" + bytes(100))
    with pytest.raises(ReaderError, match=r"old Gwyddion 1\.x format \(GWYO\) is not supported"):
        gwy.read(path)


def _broken(gwy_path: Path, kind: str) -> bytes:
    blob = gwy_path.read_bytes()
    return {
        "first_2000": blob[:2000],
        "magic_only": blob[:4],
        "half": blob[: len(blob) // 2],
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4096),
        "random_after_magic": b"GWYP" + np.random.default_rng(1).bytes(4096),
    }[kind]


@pytest.mark.parametrize(
    "kind", ["first_2000", "magic_only", "half", "empty", "random", "random_after_magic"]
)
def test_broken_files_raise_reader_error(gwy_path: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.gwy"
    path.write_bytes(_broken(gwy_path, kind))
    with pytest.raises(ReaderError) as info:
        gwy.read(path)
    assert str(path) in str(info.value)


def test_missing_gwyfile_names_pip_install(gwy_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):
        if name == "gwyfile" or name.startswith("gwyfile."):
            raise ImportError("No module named 'gwyfile'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ReaderError, match="pip install gwyfile") as info:
        gwy.read(gwy_path)
    assert str(gwy_path) in str(info.value)
