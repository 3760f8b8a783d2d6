"""Imaging effects of real scans, applied to a rendered wallpaper image.

What a scanning probe or an electron microscope adds to a perfect lattice: low-frequency
background (plane tilt, bow, an illumination gradient), sparse point defects, shot noise,
fast-scan line jitter, a non-linear detector response, inverted contrast and saturation.
Scan-line offsets, Gaussian noise and the probe's blur live in :mod:`._sample` (blur acts on
the continuous pattern); drift shears the lattice itself, before rendering.

None of them changes the group label: they are what a classifier of real images must look
through. Each is drawn with its configured probability and strength (:class:`~sarise.config.
AugmentConfig`), and the strength is returned so that it is recorded per image. Only IEEE
basic arithmetic, ``sqrt`` and sorting are used on arrays (no SIMD-dispatched
transcendental functions), so an image is the same bit for bit on any machine of one kind.
"""

from __future__ import annotations

import numpy as np

from sarise.config import AugmentConfig

__all__ = ["EFFECTS", "between", "drift_matrix", "imaging_effects"]

#: The effects applied after rendering, in order, as recorded per image (0: not applied).
EFFECTS = ("background", "defects", "shot_noise", "line_jitter", "gamma", "invert", "clip")


def between(rng: np.random.Generator, bounds) -> float:
    """A strength drawn uniformly from ``bounds``."""
    return bounds[0] + (bounds[1] - bounds[0]) * rng.random()


def drift_matrix(rng: np.random.Generator, strength: float) -> np.ndarray:
    """A slow-drift distortion of the frame: stretch and shear of up to ``strength``."""
    sx, sy, shear = (2.0 * rng.random(3) - 1.0) * strength
    return np.array([[1.0 + sx, shear], [0.0, 1.0 + sy]])


def _background(rng, size: int, amplitude: float) -> np.ndarray:
    t = (np.arange(size) - (size - 1) / 2) / (size / 2)
    x, y = t[None, :], t[:, None]
    a, b, c, d = 2.0 * rng.random(4) - 1.0
    bow = c * (x * x) + d * (y * y)
    bg = a * x + b * y + bow
    peak = float(np.abs(bg).max())
    return bg * (amplitude / peak) if peak > 0 else bg


def _defects(rng, img: np.ndarray, density: float, cell_px: float, spread: float) -> np.ndarray:
    size = img.shape[0]
    count = int(rng.poisson(density * (size / cell_px) ** 2))
    if count == 0:
        return img
    out = img.copy()
    radius = max(1.0, 0.25 * cell_px)
    r = int(np.ceil(radius))
    t = np.arange(-r, r + 1, dtype=np.float64)
    for _ in range(count):
        cy, cx = rng.random(2) * size
        amp = (1.0 + rng.random()) * spread * (1.0 if rng.random() < 0.5 else -1.0)
        iy, ix = int(cy), int(cx)
        dy = (t + iy - cy)[:, None] / radius
        dx = (t + ix - cx)[None, :] / radius
        bump = np.maximum(1.0 - (dx * dx + dy * dy), 0.0)
        bump = bump * bump * bump
        y0, x0 = iy - r, ix - r
        ys = slice(max(y0, 0), min(y0 + 2 * r + 1, size))
        xs = slice(max(x0, 0), min(x0 + 2 * r + 1, size))
        by = slice(ys.start - y0, ys.stop - y0)
        bx = slice(xs.start - x0, xs.stop - x0)
        out[ys, xs] += amp * bump[by, bx]
    return out


def _line_jitter(rng, img: np.ndarray, sigma: float) -> np.ndarray:
    """Each row displaced horizontally by its own sub-pixel shift (linear interpolation)."""
    size = img.shape[1]
    shift = sigma * rng.standard_normal(img.shape[0])
    x = np.arange(size)[None, :] + shift[:, None]
    x = np.clip(x, 0.0, size - 1.0)
    i0 = np.minimum(np.floor(x).astype(np.int64), size - 2)
    f = x - i0
    rows = np.arange(img.shape[0])[:, None]
    return img[rows, i0] * (1.0 - f) + img[rows, i0 + 1] * f


def imaging_effects(
    img: np.ndarray,
    rng: np.random.Generator,
    aug: AugmentConfig,
    *,
    cell_px: float,
    spread: float,
) -> tuple[np.ndarray, dict[str, float]]:
    """``img`` (float, any scale) with the configured effects, and each one's strength.

    Parameters
    ----------
    cell_px : float
        The lattice's cell size in pixels (defects are about a quarter cell wide).
    spread : float
        The clean image's standard deviation (the unit of additive strengths).
    """
    size = img.shape[0]
    strengths = dict.fromkeys(EFFECTS, 0.0)
    img = np.asarray(img, dtype=np.float64)
    if rng.random() < aug.background.p:
        strengths["background"] = between(rng, aug.background.range)
        img = img + _background(rng, size, strengths["background"] * spread)
    if rng.random() < aug.defects.p:
        strengths["defects"] = between(rng, aug.defects.range)
        img = _defects(rng, img, strengths["defects"], cell_px, spread)
    if rng.random() < aug.shot_noise.p:
        dose = between(rng, aug.shot_noise.range)
        strengths["shot_noise"] = dose
        lo, hi = float(img.min()), float(img.max())
        if hi > lo and dose > 0:
            counts = (img - lo) * (dose / (hi - lo))  # expected counts per pixel
            noisy = counts + np.sqrt(counts) * rng.standard_normal(img.shape)
            img = lo + noisy * ((hi - lo) / dose)
    if rng.random() < aug.line_jitter.p:
        strengths["line_jitter"] = between(rng, aug.line_jitter.range)
        img = _line_jitter(rng, img, strengths["line_jitter"])
    if rng.random() < aug.gamma.p:
        magnitude = between(rng, aug.gamma.range)
        log2k = magnitude if rng.random() < 0.5 else -magnitude
        strengths["gamma"] = log2k
        k = 2.0**log2k
        lo, hi = float(img.min()), float(img.max())
        if hi > lo:
            x = (img - lo) / (hi - lo)
            img = x / (x + k * (1.0 - x))
    if rng.random() < aug.invert:
        strengths["invert"] = 1.0
        img = -img
    if rng.random() < aug.clip.p:
        fraction = between(rng, aug.clip.range)
        strengths["clip"] = fraction
        flat = np.sort(img, axis=None)
        m = min(int(fraction * flat.size), flat.size - 2)
        if m > 0:
            if rng.random() < 0.5:
                img = np.minimum(img, flat[-1 - m])
            else:
                img = np.maximum(img, flat[m])
    return img, strengths
