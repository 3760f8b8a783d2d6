import json

import pandas as pd
import pytest

from sarise.errors import SariseError
from sarise.io import read_scan
from sarise.io.metadata import (
    COLUMNS,
    apply_sidecar,
    file_sha256,
    match_sidecar,
    metadata_row,
    read_sidecar,
)


def test_rows_of_real_files(shared_data):
    h5 = shared_data / "pfm-h5" / "PTO_Funakubo0004.h5"
    row = metadata_row(read_scan(h5), root=shared_data)
    assert list(row) == list(COLUMNS)
    assert row["path"] == "pfm-h5/PTO_Funakubo0004.h5"
    assert row["sha256"] == file_sha256(h5) and len(row["sha256"]) == 64
    assert row["format"] == "hdf5" and row["instrument"] == "Asylum Research"
    assert (
        row["sample"] == "PTO_Funakubo"
        and row["material"] is None
        and row["date"].startswith("2017-05-28")
    )
    assert row["scan_size_x_m"] == pytest.approx(3e-6)
    assert row["pixel_size_x_m"] == pytest.approx(3e-6 / 256) and row["pixels_y"] == 256
    assert row["channels"].split(";")[0] == "HeightRetrace"
    assert "ScanSize" in json.loads(row["raw"])
    sxm = metadata_row(read_scan(shared_data / "sxm" / "example_TOPO.sxm"))
    assert sxm["instrument"] == "Nanonis" and sxm["channels"].startswith("Z_fwd;Z_bwd")
    assert sxm["scan_size_x_m"] == pytest.approx(5e-9) and sxm["material"] is None


def test_sidecar_joins_by_path_then_glob(tmp_path):
    rows = pd.DataFrame({"path": ["2014/a.h5", "2015/b.tif", "2015/c.png", "x/d.png"],
                         "material": ["PZT", None, None, None]})  # fmt: skip
    side = tmp_path / "side.csv"
    side.write_text(
        "path,grower,outcome,material\n"
        "2015/*,K. Tanaka,ok,SrTiO3\n"
        "2015/c.png,M. Novak,failed,\n"
        "2014/a.h5,A. Rivera,ok,BiFeO3\n"
    )
    out = join_sidecar(rows, read_sidecar(side))
    assert out["grower"].tolist() == ["A. Rivera", "K. Tanaka", "M. Novak", None]
    assert out["outcome"].tolist() == ["ok", "ok", "failed", None]
    # the sidecar's material replaces the file's; with the file winning, it only fills
    assert out["material"].tolist() == ["BiFeO3", "SrTiO3", None, None]
    own = join_sidecar(rows, read_sidecar(side), file_wins=True)
    assert own["material"].tolist() == ["PZT", "SrTiO3", None, None]
    yml = tmp_path / "side.yaml"
    yml.write_text("- {path: '*.png', project: demo}\n")
    assert join_sidecar(rows, read_sidecar(yml))["project"].tolist() == [None, None, "demo", "demo"]


def join_sidecar(rows, sidecar, file_wins=False):
    return apply_sidecar(rows, match_sidecar(sidecar, rows["path"]), file_wins)


def test_bad_sidecars_are_named(tmp_path):
    nopath = tmp_path / "a.csv"
    nopath.write_text("file,grower\nx,y\n")
    with pytest.raises(SariseError, match=r"a\.csv has no 'path' column"):
        read_sidecar(nopath)
    clash = tmp_path / "b.csv"
    clash.write_text("path,sha256\nx,y\n")
    with pytest.raises(SariseError, match="measured from the files"):
        read_sidecar(clash)
    with pytest.raises(SariseError, match="cannot read sidecar"):
        read_sidecar(tmp_path / "missing.csv")
    bad = tmp_path / "c.yaml"
    bad.write_text("just: a mapping\n")
    with pytest.raises(SariseError, match="list of mappings"):
        read_sidecar(bad)
    broken = tmp_path / "d.yaml"
    broken.write_text("- path: [unclosed\n")
    with pytest.raises(SariseError, match=r"cannot read sidecar .*d\.yaml"):
        read_sidecar(broken)
    nested = tmp_path / "e.yaml"
    nested.write_text("- path: a.png\n  grower: {name: x}\n")
    with pytest.raises(SariseError, match=r"entry 0 has nested values in \['grower'\]"):
        read_sidecar(nested)


def test_sidecars_are_bounded(tmp_path):
    # 539 bytes of nested aliases expanded to 5.3 GB before
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]  # fmt: skip
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("- path: a.png\n  " + "\n  ".join(lines) + "\n")
    assert bomb.stat().st_size < 1000
    with pytest.raises(SariseError, match=r"bomb\.yaml: YAML anchors and aliases .* \(line 2\)"):
        read_sidecar(bomb)
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.truncate(64 * 2**20 + 1)
    with pytest.raises(SariseError, match=r"big\.csv: 67108865 bytes, more than"):
        read_sidecar(big)


def test_sidecar_keys_with_brackets_are_exact_paths_first(tmp_path):
    import pandas as pd

    side = tmp_path / "side.csv"
    side.write_text("path,grower\nscan[1].ibw,exact\nscan[0-9].ibw,pattern\n")
    rows = pd.DataFrame({"path": ["scan[1].ibw", "scan1.ibw", "scan2.ibw", "other.ibw"]})
    out = join_sidecar(rows, read_sidecar(side))
    # "scan[1].ibw" names that file; as a glob it would have matched scan1.ibw instead
    assert out["grower"].tolist() == ["exact", "pattern", "pattern", None]
    # the keys that gave no file its values are reported
    unused = []
    match_sidecar(read_sidecar(side), ["scan7.ibw", "other.ibw"], unused)
    assert unused == ["scan[1].ibw"]
