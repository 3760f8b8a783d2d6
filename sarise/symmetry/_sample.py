"""Wallpaper images: one random pattern (:func:`render`) or the deterministic
``index``-th image of a dataset split (:func:`sample`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from sarise.config import MOTIF_SOURCES, SPLITS, SymmetryConfig
from sarise.symmetry._effects import EFFECTS, between, drift_matrix, imaging_effects
from sarise.symmetry._groups import GROUPS, PlaneGroup, get_group
from sarise.symmetry._lattice import Lattice, sample_lattice
from sarise.symmetry._motifs import atoms_motif, field_motif, natural_motif, texture_motif
from sarise.symmetry._render import (
    blur_raster,
    interpolate,
    render_raster,
    self_similarity,
    symmetrise,
)

__all__ = ["WallpaperImage", "render", "sample", "sample_seed"]

_MAX_ATTEMPTS = 50


@dataclass(frozen=True, eq=False)
class WallpaperImage:
    """A rendered wallpaper pattern and everything needed to reproduce or check it.

    Attributes
    ----------
    image : ndarray, shape (size, size), float32
        The image in [0, 1], augmentations included.
    label, group : int, str
        Plane group id (index in :data:`GROUPS`) and name.
    lattice : str
        Lattice type, one of :data:`LATTICES`.
    basis : ndarray, shape (2, 2)
        Cell vectors in pixels (columns ``a1, a2``; ``(x, y)`` = (column, row)),
        rotation included, in the ITA basis of the group (conventional cell for cm, cmm).
    origin : ndarray, shape (2,)
        Pixel position ``(x, y)`` of the cell origin of the ITA setting.
    rotation : float
        Lattice orientation in degrees.
    phase : ndarray, shape (2,)
        Fractional cell coordinates of pixel ``(0, 0)``; the ITA origin is at
        ``origin = -basis @ phase``.
    motif_source : str
        ``natural``, ``field`` or ``atoms``.
    motif_id : int
        Natural image id, or the random seed of the field or atom set.
    seed : int
        Seed of the random stream the image was drawn from.
    noise, blur, scan_lines : float
        Strength of each augmentation (0 when not applied). Blur acts on the continuous
        pattern and keeps the symmetry exact (:meth:`pattern` includes it); scan lines
        and noise are raster artefacts, as in a real scan.
    drift : float
        Strength of the slow-drift shear and stretch of the frame, already in
        :attr:`basis` (so :meth:`pattern` includes it).
    effects : dict
        Strength of each imaging effect of :data:`~sarise.symmetry._effects.EFFECTS`
        (0 when not applied): raster artefacts like noise.
    rejected : int
        Motifs rejected (too little contrast or accidental extra symmetry) before this one.
    """

    image: np.ndarray
    label: int
    group: str
    lattice: str
    basis: np.ndarray
    origin: np.ndarray
    rotation: float
    phase: np.ndarray
    motif_source: str
    motif_id: int
    seed: int
    noise: float = 0.0
    blur: float = 0.0
    scan_lines: float = 0.0
    drift: float = 0.0
    effects: dict = field(default_factory=lambda: dict.fromkeys(EFFECTS, 0.0))
    rejected: int = 0
    _raster: np.ndarray = field(default=None, repr=False)
    _scale: tuple[float, float] = field(default=(0.0, 1.0), repr=False)

    def pattern(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The exact pattern (blur included, no raster artefacts) at any pixel
        coordinates ``(x, y)`` = (column, row), scaled as :attr:`image`.

        At integer pixel centres it matches ``image[y, x]`` when neither noise nor
        scan lines were applied.
        """
        v = interpolate(
            self._raster,
            x,
            y,
            inv_basis=np.linalg.inv(self.basis),
            phase=self.phase,
            hexagonal=get_group(self.group).hexagonal,
        )
        return (v - self._scale[0]) * self._scale[1]

    def transformed(self, rotation: float, phase) -> WallpaperImage:
        """The same pattern (same cell, motif and blur) rendered exactly at another
        lattice orientation (degrees) and phase, without noise or scan lines.

        Nothing is resampled from this image's raster: the motif is rendered afresh, so
        the result is what the generator would have drawn with that orientation and phase.
        """
        c, s = _cos_sin_deg(rotation - self.rotation)
        basis = np.array([[c, -s], [s, c]]) @ self.basis
        phase = np.asarray(phase, dtype=np.float64).reshape(2)
        clean = render_raster(
            self._raster,
            self.image.shape,
            inv_basis=np.linalg.inv(basis),
            phase=phase,
            hexagonal=get_group(self.group).hexagonal,
        )
        lo, hi = float(clean.min()), float(clean.max())
        scale = 1.0 / (hi - lo) if hi > lo else 1.0
        return replace(
            self,
            image=((clean - lo) * scale).astype(np.float32),
            basis=basis,
            origin=-(basis @ phase),
            rotation=float(rotation),
            phase=phase,
            noise=0.0,
            scan_lines=0.0,
            effects=dict.fromkeys(EFFECTS, 0.0),
            _scale=(lo, scale),
        )


def sample_seed(seed: int, split: str, index: int) -> int:
    """The 64-bit seed of image ``index`` of ``split`` (independent of any other image)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    ss = np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)])
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def sample(
    index: int,
    *,
    seed: int = 0,
    split: str = "train",
    config: SymmetryConfig | None = None,
    augment: bool = True,
) -> WallpaperImage:
    """The ``index``-th image of a split, the same bit for bit in any process or order.

    The group is ``index % 17``, so any 17 consecutive indices hold one image of each
    group; within a group, lattice types and motif sources cycle so that each is
    balanced (to within one image) and every pairing of the two occurs.

    Parameters
    ----------
    index : int
        Image index in the split (>= 0); training can draw any number on the fly.
    seed : int, optional
        Dataset seed.
    split : {'train', 'val', 'test'}, optional
        Natural-image motifs come from the split's own images, and random seeds are
        drawn per split, so no motif source is shared between splits.
    config : SymmetryConfig, optional
        Generator settings; defaults to ``SymmetryConfig()``.
    augment : bool, optional
        Apply the configured augmentations.

    Returns
    -------
    WallpaperImage
    """
    config = config or SymmetryConfig()
    group = get_group(index % len(GROUPS))
    r = index // len(GROUPS)
    n_lat, sources = len(group.lattices), config.motif_sources
    # Lattices cycle; sources cycle too, shifted by one after every lcm(n_lat, n_src)
    # images, so every (lattice, source) pair comes up and both stay balanced.
    lattice = group.lattices[r % n_lat]
    motif = sources[(r + r // math.lcm(n_lat, len(sources))) % len(sources)]
    stream = sample_seed(seed, split, index)
    rng = np.random.Generator(np.random.PCG64(stream))
    return _draw(group, lattice, motif, rng, stream, config, split, augment)


def render(
    group: str | int,
    size: int | None = None,
    *,
    lattice: str | None = None,
    motif: str | None = None,
    rng: np.random.Generator | int | None = None,
    config: SymmetryConfig | None = None,
    split: str = "train",
    augment: bool = False,
) -> WallpaperImage:
    """Render one random wallpaper pattern of ``group``.

    Parameters
    ----------
    group : str or int
        Group name or label.
    size : int, optional
        Image edge in pixels; defaults to ``config.size``.
    lattice : str, optional
        Lattice type; drawn from the group's lattices if None.
    motif : {'natural', 'field', 'atoms'}, optional
        Motif source; drawn from ``config.motif_sources`` if None.
    rng : numpy.random.Generator or int, optional
        Source of randomness, or a seed.
    config : SymmetryConfig, optional
        Generator settings.
    split : str, optional
        Which split's natural images to use.
    augment : bool, optional
        Apply the configured augmentations (off by default: an exact pattern).

    Examples
    --------
    >>> im = render("p4", 128, lattice="square", rng=0)
    >>> im.image.shape, im.group, im.lattice
    ((128, 128), 'p4', 'square')

    The pattern is unchanged by a quarter turn about the cell origin:

    >>> x = np.array([3.0, 40.5]); y = np.array([7.0, -12.25])
    >>> a = np.array([[0.0, -1.0], [1.0, 0.0]])
    >>> turned = im.origin[:, None] + a @ (np.stack([x, y]) - im.origin[:, None])
    >>> bool(np.allclose(im.pattern(*turned), im.pattern(x, y), rtol=0, atol=1e-12))
    True
    """
    config = config or SymmetryConfig()
    if size is not None:  # validated again: the cell size must fit the image
        config = SymmetryConfig.model_validate({**config.model_dump(), "size": int(size)})
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    g = get_group(group)
    if isinstance(rng, np.random.Generator):
        stream = int(rng.integers(2**63))
    else:
        stream = int(np.random.SeedSequence(rng).generate_state(1, dtype=np.uint64)[0])
    gen = np.random.Generator(np.random.PCG64(stream))
    if lattice is None:
        lattice = g.lattices[int(gen.integers(len(g.lattices)))]
    if motif is None:
        motif = config.motif_sources[int(gen.integers(len(config.motif_sources)))]
    if motif not in MOTIF_SOURCES:
        raise ValueError(f"motif must be one of {MOTIF_SOURCES}, got {motif!r}")
    return _draw(g, lattice, motif, gen, stream, config, split, augment)


def _cos_sin_deg(deg: float) -> tuple[float, float]:
    rad = math.radians(deg)
    return math.cos(rad), math.sin(rad)


def _motif(
    source: str, lat: Lattice, rng: np.random.Generator, config: SymmetryConfig, split: str
) -> tuple[np.ndarray, int]:
    n = config.cell_resolution
    if source == "natural":
        names = getattr(config.natural, split)
        if not names:
            raise ValueError(f"natural motifs are enabled but natural.{split} lists no image")
        return natural_motif(names, n, rng, crop=config.natural.crop)
    motif_seed = int(rng.integers(2**63))
    sub = np.random.Generator(np.random.PCG64(motif_seed))
    if source == "field":
        f = field_motif(n, sub, lat.metric, scale=config.field.scale, sharpen=config.field.sharpen)
    elif source == "texture":
        t = config.texture
        f = texture_motif(n, sub, lat.metric, frequency=t.frequency, width=t.width)
    else:
        a = config.atoms
        f = atoms_motif(
            n, sub, lat.metric,
            species=a.species, count=a.count, radius=a.radius, elongation=a.elongation,
            special=a.special, hexagonal=lat.setting == "hexagonal",
        )  # fmt: skip
    return f, motif_seed


def _draw(
    group: PlaneGroup,
    lattice: str,
    source: str,
    rng: np.random.Generator,
    stream: int,
    config: SymmetryConfig,
    split: str,
    augment: bool,
) -> WallpaperImage:
    lat = sample_lattice(
        group,
        lattice,
        rng,
        cell_px=config.cell_px,
        aspect=config.aspect,
        oblique_angle=config.oblique_angle,
        tol=config.metric_tolerance,
        cell_scale=config.cell_scale,
    )
    best = None  # (self-similarity, raster, motif_id): the cleanest motif with contrast
    for rejected in range(_MAX_ATTEMPTS):  # noqa: B007 - the count is kept
        motif, motif_id = _motif(source, lat, rng, config, split)
        std = motif.std()
        if std < 1e-6:
            continue
        raster = symmetrise((motif - motif.mean()) / std, group)
        if raster.std() * math.sqrt(group.order) < config.min_contrast:
            continue
        if config.antialias > 0:  # isotropic; symmetrised again for the raster's own grid
            raster = symmetrise(blur_raster(raster, lat.basis, config.antialias), group)
        similarity = self_similarity(raster, group, lat.setting)
        if best is None or similarity < best[0]:
            best = (similarity, raster, motif_id)
        if similarity > config.max_self_similarity:
            continue
        break
    else:
        if best is None:
            raise RuntimeError(
                f"no usable {source} motif for {group.name} on a {lattice} lattice in "
                f"{_MAX_ATTEMPTS} attempts (seed {stream}); lower min_contrast or widen the "
                "motif ranges"
            )
        # very smooth motif sources rarely get below the bound: the least self-similar one
        _, raster, motif_id = best

    aug = config.augment
    noise = blur = lines = 0.0
    if augment and rng.random() < aug.blur.p:
        blur = between(rng, aug.blur.range)
        raster = symmetrise(blur_raster(raster, lat.basis, blur), group)

    rotation = 360.0 * rng.random() if config.rotate else 0.0
    c, s = _cos_sin_deg(rotation)
    basis = np.array([[c, -s], [s, c]]) @ lat.basis
    drift = 0.0
    if augment and aug.drift.p > 0 and rng.random() < aug.drift.p:
        drift = between(rng, aug.drift.range)
        basis = drift_matrix(rng, drift) @ basis
    phase = rng.random(2)
    origin = -(basis @ phase)
    size = config.size
    clean = render_raster(
        raster,
        (size, size),
        inv_basis=np.linalg.inv(basis),
        phase=phase,
        hexagonal=group.hexagonal,
    )

    img = clean
    if augment:
        spread = float(clean.std())
        if rng.random() < aug.scan_lines.p:
            lines = between(rng, aug.scan_lines.range)
            img = img + _scan_line_offsets(rng, size, lines * spread)[:, None]
        if rng.random() < aug.noise.p:
            noise = between(rng, aug.noise.range)
            img = img + (noise * spread) * rng.standard_normal((size, size), dtype=np.float32)
        img, effects = imaging_effects(img, rng, aug, cell_px=lat.cell_px, spread=spread)
    else:
        effects = dict.fromkeys(EFFECTS, 0.0)
    lo, hi = float(clean.min()), float(clean.max())
    if augment and img is not clean:
        lo, hi = float(img.min()), float(img.max())
    scale = 1.0 / (hi - lo) if hi > lo else 1.0
    image = ((img - lo) * scale).astype(np.float32)
    return WallpaperImage(
        image=image,
        label=group.label,
        group=group.name,
        lattice=lattice,
        basis=basis,
        origin=origin,
        rotation=rotation,
        phase=phase,
        motif_source=source,
        motif_id=motif_id,
        seed=stream,
        noise=noise,
        blur=blur,
        scan_lines=lines,
        drift=drift,
        effects=effects,
        rejected=rejected,
        _raster=raster,
        _scale=(lo, scale),
    )


def _scan_line_offsets(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    """Line-to-line offsets of a raster scan: independent jitter plus a slow drift and
    a few steps (tip changes)."""
    jitter = rng.standard_normal(n)
    drift = np.cumsum(rng.standard_normal(n)) / math.sqrt(n)
    steps = np.zeros(n)
    for row in rng.integers(n, size=int(rng.integers(0, 4))):
        steps[row:] += rng.standard_normal()
    return amplitude * (0.6 * jitter + 0.3 * drift + 0.5 * steps)
