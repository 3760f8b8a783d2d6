import numpy as np
import pandas as pd
import pytest

from sarise.errors import SariseError
from sarise.store import ImageStore, image_id


def _batch(start, k, c=2, size=8):
    images = np.stack([np.full((c, size, size), i, np.float32) for i in range(start, start + k)])
    rows = pd.DataFrame({"image_id": [image_id(f"{i:064x}") for i in range(start, start + k)],
                         "sha256": [f"{i:064x}" for i in range(start, start + k)],
                         "path": [f"f{i}.h5" for i in range(start, start + k)]})  # fmt: skip
    return images, rows


def _thumbs(values):
    """Thumbnails of two channels, each filled with its value."""
    return np.asarray(values, np.uint8)[:, :, None, None].repeat(4, 2).repeat(4, 3)


def test_append_and_reopen(tmp_path):
    store = ImageStore.create(tmp_path / "s", channels=["height", "phase"], size=8, chunk=4,
                              thumbnail=4, preprocessing={"flatten": "plane"})  # fmt: skip
    for start, k in ((0, 3), (3, 5), (8, 1)):
        images, rows = _batch(start, k)
        thumbs = _thumbs([(i, 100 + i) for i in range(start, start + k)])
        store.append(images, rows, thumbnails=thumbs)
    again = ImageStore.open(tmp_path / "s")
    # one thumbnail per channel of each image
    np.testing.assert_array_equal(
        again.array("thumbnails")[:, :, 0, 0], [(i, 100 + i) for i in range(9)]
    )
    assert len(again) == 9 and again.channels == ["height", "phase"]
    assert again.attrs["preprocessing"] == {"flatten": "plane"}
    np.testing.assert_array_equal(again.array("images")[:, 0, 0, 0], np.arange(9))
    meta = again.metadata()
    assert meta["path"].tolist() == [f"f{i}.h5" for i in range(9)]
    np.testing.assert_array_equal(again.array("image_id")[:], meta["image_id"].to_numpy())
    assert (again.array("tile_yx")[:] == -1).all()
    assert again.known_sha256() == {f"{i:064x}" for i in range(9)}


def test_a_killed_append_leaves_no_duplicates_or_holes(tmp_path):
    store = ImageStore.create(tmp_path / "s", channels=["h"], size=8, chunk=4)
    store.append(*_batch(0, 5, c=1))
    # the arrays of a second append are written, then the writer dies before its commit
    store._resize(9)
    store.array("images")[5:9] = 99
    (tmp_path / "s" / "metadata.parquet" / "part-000001.parquet.partial").write_bytes(b"x")
    reopened = ImageStore.open(tmp_path / "s")
    assert len(reopened) == 5 and reopened.array("images").shape[0] == 5
    assert not list((tmp_path / "s" / "metadata.parquet").glob("*.partial"))
    reopened.append(*_batch(5, 4, c=1))
    np.testing.assert_array_equal(reopened.array("images")[:, 0, 0, 0], np.arange(9))


def test_errors_and_refusals(tmp_path):
    store = ImageStore.create(tmp_path / "s", channels=["h"], size=8)
    store.add_errors(pd.DataFrame({"path": ["bad.ibw"], "reason": ["truncated"]}))
    assert store.errors().to_dict("records") == [
        {"path": "bad.ibw", "format": None, "reason": "truncated"}
    ]
    with pytest.raises(SariseError, match="already holds an image store"):
        ImageStore.create(tmp_path / "s", channels=["h"], size=8)
    with pytest.raises(SariseError, match="do not fit"):
        store.append(*_batch(0, 2, c=2))
    with pytest.raises(SariseError, match="not an image store"):
        ImageStore.open(tmp_path / "nothing")
    assert image_id("a" * 64) != image_id("b" * 64) and image_id("a" * 64) >= 0


def test_every_parquet_folder_reads_as_one_table_with_pandas_polars_and_duckdb(tmp_path):
    """Parts written at different times hold different nulls (no date in one, a sidecar in
    another, a cleared error): each folder still has one schema, as the readers need."""
    import duckdb
    import polars as pl

    from sarise.io.metadata import match_sidecar

    store = ImageStore.create(tmp_path / "s", channels=["h"], size=8, chunk=4)
    for start, k, date in ((0, 2, None), (2, 3, "2020-01-02"), (5, 1, None)):
        images, rows = _batch(start, k, c=1)
        rows["date"], rows["pixels_x"] = date, None if date is None else 256
        store.append(images, rows)
    store.add_errors(pd.DataFrame({"path": ["bad.h5"], "format": ["hdf5"], "reason": ["broken"]}))
    store.add_errors(pd.DataFrame({"path": ["bad.h5"], "format": ["hdf5"], "reason": [None]}))
    side = pd.DataFrame(
        {"path": ["f1.h5", "f4.h5"], "grower": ["A", ""], "thickness_nm": ["5", "7.5"]}
    )
    store.set_sidecar(match_sidecar(side, [f"f{i}.h5" for i in range(6)]))
    for folder in ("metadata.parquet", "errors.parquet"):
        path = tmp_path / "s" / folder
        frame = pd.read_parquet(path)
        assert len(frame) == {"metadata.parquet": 6, "errors.parquet": 2}[folder]
        assert pl.read_parquet(f"{path}/*.parquet").height == len(frame)
        rows = duckdb.sql(f"select count(*) from read_parquet('{path}/*.parquet')").fetchall()[0][0]
        assert rows == len(frame)
    meta = pd.read_parquet(tmp_path / "s" / "metadata.parquet")
    assert meta["date"].notna().sum() == 3 and meta["pixels_x"].notna().sum() == 3
    import pyarrow.parquet as pq

    parts = sorted((tmp_path / "s" / "metadata.parquet").glob("*.parquet"))
    assert len({pq.read_schema(p) for p in parts}) == 1  # one schema, typed where null
    assert str(pq.read_schema(parts[0]).field("pixels_x").type) == "int64"
    # the sidecar: a table of its own, typed (numbers as numbers), applied by metadata()
    side_table = pd.read_parquet(tmp_path / "s" / "sidecar.parquet")
    assert side_table["thickness_nm"].tolist() == [5.0, 7.5]
    got = store.metadata().set_index("path")
    assert got.loc["f1.h5", "grower"] == "A" and got.loc["f4.h5", "thickness_nm"] == 7.5
    assert got["grower"].isna().sum() == 5


def test_stores_with_one_thumbnail_per_image_still_grow(tmp_path):
    import zarr

    store = ImageStore.create(tmp_path / "s", channels=["height", "phase"], size=8, chunk=4,
                              thumbnail=4)  # fmt: skip
    # an older store: thumbnails[image, t, t], of channel 0
    g = zarr.open_group(tmp_path / "s" / "images.zarr", mode="r+")
    del g["thumbnails"]
    g.create_array("thumbnails", shape=(0, 4, 4), chunks=(4, 4, 4), dtype="uint8", fill_value=0)
    store = ImageStore.open(tmp_path / "s")
    images, rows = _batch(0, 3)
    store.append(images, rows, thumbnails=_thumbs([(i, 9) for i in range(3)]))
    thumbs = ImageStore.open(tmp_path / "s").array("thumbnails")[:]
    assert thumbs.shape == (3, 4, 4) and thumbs[:, 0, 0].tolist() == [0, 1, 2]
    with pytest.raises(SariseError, match=r"thumbnails of shape \(3, 5, 5\) do not fit"):
        store.append(*_batch(3, 3), thumbnails=np.zeros((3, 5, 5), np.uint8))
    assert len(ImageStore.open(tmp_path / "s")) == 3
