import hashlib
import logging

import numpy as np
import pytest
import zarr

from sarise.config import MOTIF_SOURCES, SymmetryConfig
from sarise.errors import SariseError
from sarise.symmetry import (
    GROUPS,
    LATTICES,
    _dataset,
    generate,
    open_split,
    sample,
    write_preview,
    write_split,
)

CFG = SymmetryConfig(
    size=32, cell_px=(8.0, 14.0), per_group={"train": 3, "val": 2, "test": 2}, chunk=10
)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    out = tmp_path_factory.mktemp("symmetry")
    generate(out, config=CFG, workers=2, show_progress=False)
    return out


def test_schema(splits):
    ds = open_split(splits / "train.zarr")
    n = 17 * 3
    assert ds.images.dims == ("image", "y", "x") and ds.images.shape == (n, 32, 32)
    assert ds.images.dtype == np.float32
    assert list(ds.image.values) == list(range(n))
    for name, dtype in {"label": np.int8, "lattice": np.int8, "motif_source": np.int8,
                        "motif_id": np.uint64, "seed": np.uint64, "rotation": np.float64}.items():  # fmt: skip
        assert ds[name].dims == ("image",) and ds[name].dtype == dtype
    assert ds.basis.dims == ("image", "axis", "vector") and ds.phase.dims == ("image", "vector")
    assert bool(ds.chunk_done.all())
    attrs = ds.attrs
    assert attrs["groups"] == list(GROUPS) and attrs["lattices"] == list(LATTICES)
    assert attrs["motif_sources"] == list(MOTIF_SOURCES)
    assert attrs["split"] == "train" and attrs["size"] == 32 and attrs["complete"] is True
    assert attrs["generator_version"] == _dataset.GENERATOR_VERSION
    assert SymmetryConfig.model_validate(attrs["config"]) == CFG
    assert ds.images.encoding["chunks"] == (10, 32, 32)


def test_stored_images_are_the_samples(splits):
    ds = open_split(splits / "val.zarr")
    for i in (0, 7, 33):
        im = sample(i, seed=0, split="val", config=CFG)
        assert np.array_equal(ds.images[i].values, im.image)
        assert int(ds.label[i]) == im.label and int(ds.seed[i]) == im.seed
        assert ds.attrs["lattices"][int(ds.lattice[i])] == im.lattice
        np.testing.assert_array_equal(ds.basis[i].values, im.basis)


def test_balanced_labels(splits):
    for split, k in (("train", 3), ("val", 2), ("test", 2)):
        labels = open_split(splits / f"{split}.zarr").label.values
        assert np.array_equal(np.bincount(labels, minlength=17), np.full(17, k))


def test_splits_are_disjoint_by_motif_source(splits):
    seen = {}
    for split in ("train", "val", "test"):
        ds = open_split(splits / f"{split}.zarr")
        sources = set(
            zip(ds.motif_source.values.tolist(), ds.motif_id.values.tolist(), strict=False)
        )
        for other, theirs in seen.items():
            assert not sources & theirs, (split, other)
        seen[split] = sources
    natural = MOTIF_SOURCES.index("natural")
    names = {s: {i for src, i in v if src == natural} for s, v in seen.items()}
    assert all(names.values()) and not names["train"] & names["val"]


def test_rerun_skips_finished_work(splits, caplog):
    before = (splits / "train.zarr" / "zarr.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        write_split(splits, "train", CFG, show_progress=False)
    assert "up to date" in caplog.text
    assert (splits / "train.zarr" / "zarr.json").stat().st_mtime_ns == before


def test_other_config_needs_overwrite(splits, tmp_path):
    other = CFG.model_copy(update={"seed": 1})
    with pytest.raises(SariseError, match="another configuration"):
        write_split(splits, "test", other, show_progress=False)


def test_failed_chunks_are_reported_and_resumed(tmp_path, monkeypatch, caplog):
    real = _dataset._write_chunk
    calls, failed = [], []

    def flaky(path, split, config_json, start, stop, chunk):
        calls.append(chunk)
        if chunk == 2 and not failed:
            failed.append(chunk)
            raise RuntimeError("disk on fire")
        return real(path, split, config_json, start, stop, chunk)

    monkeypatch.setattr(_dataset, "_write_chunk", flaky)
    with pytest.raises(SariseError, match=r"1 of 6 chunks .* failed .*chunk 2: disk on fire"):
        write_split(tmp_path, "train", CFG, workers=1, show_progress=False)
    assert not (tmp_path / "train.zarr").exists()
    done = zarr.open_group(str(tmp_path / "train.zarr.partial"), mode="r")["chunk_done"][:]
    assert done.tolist() == [True, True, False, True, True, True]
    calls.clear()
    with caplog.at_level(logging.INFO):
        path = write_split(tmp_path, "train", CFG, workers=1, show_progress=False)
    assert calls == [2] and "resuming, 5 of 6 chunks" in caplog.text
    assert not (tmp_path / "train.zarr.partial").exists()
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    write_split(fresh, "train", CFG, workers=2, show_progress=False)
    a, b = open_split(path).images.values, open_split(fresh / "train.zarr").images.values
    assert hashlib.sha256(a.tobytes()).digest() == hashlib.sha256(b.tobytes()).digest()


def test_preview(tmp_path):
    from PIL import Image

    path = write_preview(tmp_path / "p.png", CFG, columns=3, tile=20)
    with Image.open(path) as im:
        assert im.size == (64 + 3 * 24, 17 * 38 + 4)
        assert np.asarray(im).std() > 10


def test_nothing_to_do_is_an_error():
    with pytest.raises(ValueError, match="nothing to do"):
        generate(None, config=CFG)


def test_float16_store(tmp_path):
    cfg = CFG.model_copy(update={"dtype": "float16", "per_group": {"test": 1}})
    path = write_split(tmp_path, "test", cfg, workers=1, show_progress=False)
    ds = open_split(path)
    assert ds.images.dtype == np.float16
    assert np.array_equal(
        ds.images[5].values, sample(5, split="test", config=cfg).image.astype(np.float16)
    )


def test_open_split_rejects_other_folders(tmp_path):
    with pytest.raises(SariseError, match="not a symmetry dataset store"):
        open_split(tmp_path)
