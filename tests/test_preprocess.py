import numpy as np
import pytest

from sarise.preprocess import (
    clip_percentiles,
    fill_nan,
    fit_cells,
    fit_square,
    line_flatten,
    plane_flatten,
    scale_unit,
    thumbnail,
    tiles,
)


def test_flattening_removes_tilt_and_line_offsets_but_keeps_the_pattern():
    y, x = np.mgrid[0:64, 0:80]
    pattern = np.sin(2 * np.pi * x / 8) * np.cos(2 * np.pi * y / 8)
    tilted = pattern + 3 + 0.2 * x - 0.1 * y
    np.testing.assert_allclose(plane_flatten(tilted), pattern - pattern.mean(), atol=0.02)
    offsets = np.random.default_rng(0).normal(0, 5, (64, 1))
    np.testing.assert_allclose(line_flatten(pattern + offsets, order=0), pattern, atol=1e-6)
    slopes = offsets + 0.3 * x * np.random.default_rng(1).random((64, 1))
    flat = line_flatten(pattern + slopes, order=1)
    assert np.abs(flat - pattern).max() < 0.2


def test_nan_pixels_are_ignored_then_filled():
    a = np.arange(16.0).reshape(4, 4)
    a[1, 2] = np.nan
    assert np.isnan(plane_flatten(a)[1, 2]) and np.isfinite(np.delete(plane_flatten(a), 6)).all()
    assert np.isfinite(line_flatten(a)).sum() == 15
    filled = fill_nan(a)
    assert filled[1, 2] == np.nanmedian(a)
    assert np.isfinite(scale_unit(a)).all()
    assert (fill_nan(np.full((2, 2), np.nan)) == 0).all()


def test_clip_and_scale():
    a = np.zeros((20, 20))
    a[10:, :] = 1.0
    a[0, 0] = 1e6  # a spike
    out = scale_unit(clip_percentiles(a, 1, 99))
    assert (
        out.min() == 0 and out.max() == 1 and out[0, 0] == 1 and out[19, 19] == 1 and out[5, 5] == 0
    )
    assert (scale_unit(np.full((3, 3), 7.0)) == 0).all()  # a constant channel


def test_fit_square_keeps_the_aspect_ratio():
    y, x = np.mgrid[0:64, 0:128]
    a = np.cos(2 * np.pi * x / 8) + np.cos(2 * np.pi * y / 8)
    np.testing.assert_array_equal(fit_square(a, 64, "crop"), a[:, 32:96])  # no resampling
    half = fit_square(a, 32, "crop")  # the same square, scaled by 1/2 in both axes
    assert half.shape == (32, 32)
    np.testing.assert_allclose(half, fit_square(a[:, 32:96], 32, "crop"))
    padded = fit_square(a, 32, "pad", fill=-9)  # 64 x 128 in a 128 square, then / 4
    assert padded.shape == (32, 32)
    assert np.allclose(padded[:6], -9, atol=0.01) and np.allclose(padded[-6:], -9, atol=0.01)
    assert (padded[9:23] > -3).all()  # the image: 16 rows of 32 columns, not stretched
    with pytest.raises(ValueError, match="crop"):
        fit_square(a, 32, "stretch")


def test_tiles_positions_cover_the_centre():
    a = np.arange(30 * 50).reshape(30, 50)
    patches, corners = tiles(a, 10)
    assert patches.shape == (15, 10, 10) and corners.shape == (15, 2)
    for p, (y, x) in zip(patches, corners, strict=True):
        np.testing.assert_array_equal(p, a[y : y + 10, x : x + 10])
    patches, corners = tiles(a, 20, stride=10)
    assert corners.tolist()[:2] == [[0, 0], [0, 10]] and len(patches) == 2 * 4
    assert tiles(a, 64)[0].shape == (0, 64, 64)


def test_thumbnail_keeps_the_aspect():
    t = thumbnail(np.linspace(0, 1, 200 * 100).reshape(100, 200), 64)
    assert t.shape == (32, 64) and t.dtype == np.uint8 and t.max() > 250


def test_infinite_pixels_are_masked_never_blank_the_image():
    from sarise.config import IngestConfig
    from sarise.ingest import _preprocess

    rng = np.random.default_rng(0)
    a = rng.random((64, 64))
    a[rng.random((64, 64)) < 0.05] = np.inf  # 5%: nanpercentile used to give NaN -> zeros
    a[0, :5] = -np.inf
    a[1, :5] = np.nan
    out = _preprocess(a, IngestConfig(flatten="none"))
    assert np.isfinite(out).all() and out.std() > 0.2
    ok = np.isfinite(a)
    assert np.corrcoef(out[ok], a[ok])[0, 1] > 0.95
    huge = rng.random((32, 32)) * 1e300  # fits of such values overflow to inf
    assert np.isfinite(_preprocess(huge, IngestConfig(flatten="plane"))).all()
    mostly_inf = np.where(np.arange(64) < 40, np.inf, a)  # 40 of 64 columns, plus a's own
    with pytest.raises(ValueError, match=r"\d+% of the pixels are not finite"):
        _preprocess(mostly_inf, IngestConfig())


def test_flat_channels_are_refused_never_stretched():
    from sarise.config import IngestConfig
    from sarise.ingest import _preprocess
    from sarise.preprocess import FlatImageError

    with pytest.raises(FlatImageError, match="no contrast"):
        _preprocess(np.full((64, 64), -6.638e-08), IngestConfig())
    y, x = np.mgrid[:64, :64]
    plane = 1e-9 * (3.0 + 0.01 * x - 0.02 * y)  # a perfect tilt: nothing after levelling
    with pytest.raises(FlatImageError, match="after levelling"):
        _preprocess(plane, IngestConfig(flatten="plane"))
    rows = np.repeat(np.random.default_rng(1).random((64, 1)), 64, axis=1)
    with pytest.raises(FlatImageError, match="after levelling"):
        _preprocess(rows, IngestConfig(flatten="line"))
    # real, small contrast is kept
    rough = 1e-9 * (3.0 + 1e-3 * np.random.default_rng(2).random((64, 64)))
    assert _preprocess(rough, IngestConfig(flatten="plane")).std() > 0.1


def test_clip_percentiles_must_be_ordered():
    from pydantic import ValidationError

    from sarise.config import IngestConfig

    for bad in ((99, 1), (50, 50), (-1, 99), (1, 101)):
        with pytest.raises(ValidationError, match="clip must be two percentiles"):
            IngestConfig(clip=bad)


def test_flatten_auto_levels_topography_only():
    from sarise.preprocess import auto_flatten

    assert auto_flatten("ibw", "HeightRetrace", "m") == "line"
    assert auto_flatten("hdf5", "HeightRetrace") == "line"
    assert auto_flatten("gwy", "Topography", "m") == "line"
    assert auto_flatten("spm", "ZSensor") == "line"
    assert auto_flatten("tiff", "Height", "nm") == "plane"
    for fmt, name, unit in [("ibw", "Phase1Retrace", "deg"), ("ibw", "AmplitudeRetrace", "m"),
                            ("sxm", "Current_fwd", "A"), ("sxm", "OC_M1_Freq._Shift_fwd", "Hz"),
                            ("tiff", "HAADF", ""), ("image", "intensity", ""),
                            ("spm", "Deflection Error", "V")]:  # fmt: skip
        assert auto_flatten(fmt, name, unit) == "none", name


def _lattice(shape, cell, angle=0.3, seed=0):
    """A hexagonal pattern of ``cell`` px at an angle, with a little noise."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    img = np.zeros(shape)
    for k in range(3):
        t = angle + k * np.pi / 3
        img += np.cos(2 * np.pi / (cell * np.sqrt(3) / 2) * (x * np.cos(t) + y * np.sin(t)))
    return img + 0.1 * np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("shape", [(1024, 1024), (700, 1200)])
def test_fit_cells_zooms_small_cells_to_what_the_model_sees(shape):
    from sarise.symmetry_measure import cell_size_px

    img = _lattice(shape, 6.0)
    assert cell_size_px(img) == pytest.approx(6.0, rel=0.05)
    views, zoom = fit_cells(img, 128)
    # a crop resampled to 128 px would leave cells of about 1 px; here they are 16 px
    assert zoom == pytest.approx(16 / 6, rel=0.06) or zoom == 2.0
    assert views.shape[1:] == (128, 128) and 4 <= len(views) <= 16
    for v in views[:3]:
        assert cell_size_px(v) == pytest.approx(6.0 * zoom, rel=0.06)


def test_fit_cells_keeps_the_whole_image_where_cells_are_large_enough_or_absent():
    big = _lattice((512, 512), 64.0)
    views, zoom = fit_cells(big, 128)
    assert len(views) == 1 and zoom == 0.25
    np.testing.assert_array_equal(views[0], fit_square(big, 128))
    noise = np.random.default_rng(1).standard_normal((600, 600))
    views, zoom = fit_cells(noise, 128)
    assert len(views) == 1 and zoom == pytest.approx(128 / 600)
    # a small image with fine cells is enlarged (at most twice), never cut to nothing
    views, zoom = fit_cells(_lattice((130, 130), 5.0), 128)
    assert zoom == 2.0 and len(views) == 4
