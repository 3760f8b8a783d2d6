"""A small microscopy-like archive the project writes itself, for the demo and the tests.

A user's fresh machine has no real instrument files, so ``make demo`` ingests this: images
of the structures the method is meant to separate (ferroelectric domain stripes, bubble
domains, crystal lattices of known plane group, and noise-only failed scans) written as
real files in the formats ingest reads (pyNSID HDF5 with Asylum-style metadata, OME-TIFF
with a physical pixel size, PNG), and a sidecar CSV of made-up growth metadata (grower,
substrate, deposition, project, outcome) to join by path. The same seed gives the same
images.
"""

from __future__ import annotations

import csv
import hashlib
import os
import uuid
from pathlib import Path

import numpy as np

__all__ = ["KINDS", "write_demo_archive"]

KINDS = ("stripes", "bubbles", "lattice", "noise")
_FORMATS = ("h5", "tif", "png")
_MATERIALS = {"stripes": "PbTiO3", "bubbles": "PZT", "lattice": "SrTiO3", "noise": "BiFeO3"}
_GROWERS = ("A. Rivera", "K. Tanaka", "M. Novak")
_SUBSTRATES = ("DyScO3", "SrTiO3", "GdScO3")


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a, sigma, mode="wrap")


def _image(kind: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, str | None]:
    """Height-like image in [0, 1] and, for lattices, the plane group drawn."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    if kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(10, 30)
        u = x * np.cos(angle) + y * np.sin(angle)
        img = _smooth(np.sign(np.sin(2 * np.pi * u / period)), 1.5)
    elif kind == "bubbles":
        img = np.zeros((size, size))
        for _ in range(rng.integers(6, 20)):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(4, 14)
            img[(y - cy) ** 2 + (x - cx) ** 2 < r**2] = 1.0
        img = _smooth(img, 1.0)
    elif kind == "lattice":
        from sarise.config import SymmetryConfig
        from sarise.symmetry import GROUPS, render

        group = GROUPS[int(rng.integers(len(GROUPS)))]
        cfg = SymmetryConfig(size=size, cell_px=(size / 12, size / 5))
        im = render(group, size, rng=int(rng.integers(2**31)), config=cfg)
        return im.image.astype(np.float64), group
    elif kind == "noise":
        img = _smooth(rng.standard_normal((size, size)), 0.7)
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    img = img + 0.05 * rng.standard_normal((size, size))
    img = img + rng.uniform(-0.02, 0.02) * x  # sample tilt, for flattening
    return (img - img.min()) / (img.max() - img.min()), None


def _write_h5(path: Path, height: np.ndarray, phase: np.ndarray, meta: dict) -> None:
    import h5py

    with h5py.File(path, "w", track_order=True) as f:
        for k, (name, data, unit) in enumerate(
            [("HeightRetrace", height * 5e-9, "m"), ("PhaseRetrace", phase, "deg")]
        ):
            g = f.create_group(f"Measurement_000/Channel_{k:03d}/Channel_{k:03d}")
            # pyNSID stores the Igor wave order: [x, y] with line 0 at the bottom
            d = g.create_dataset(f"Channel_{k:03d}", data=np.flipud(data).T.astype(np.float32),
                                 track_times=False)  # fmt: skip
            d.attrs["quantity"] = name
            d.attrs["units"] = unit
            om = g.create_group("original_metadata")
            for key, value in meta.items():
                om.attrs[key] = value


def _write_tif(path: Path, height: np.ndarray, phase: np.ndarray, scan_size_m: float) -> None:
    import tifffile

    um = scan_size_m * 1e6 / height.shape[1]
    data = np.stack([height, phase]).astype(np.float32)
    # the OME UUID comes from the content (tifffile draws a random one), so the same seed
    # writes the same bytes and the ingested image ids do not change between runs
    file_uuid = uuid.UUID(bytes=hashlib.sha256(data.tobytes()).digest()[:16], version=4)
    tifffile.imwrite(path, data, photometric="minisblack",
                     metadata={"axes": "CYX", "PhysicalSizeX": um, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeY": um, "PhysicalSizeYUnit": "µm", "UUID": str(file_uuid),
                               "Channel": {"Name": ["Height", "Phase"]}}, ome=True)  # fmt: skip


def write_demo_archive(out: str | Path, n: int = 24, *, seed: int = 0, size: int = 128) -> Path:
    """Write ``n`` files (kinds and formats cycling) and ``sidecar.csv`` into ``out``.

    Returns the sidecar path. Files go to ``out/<year>/<kind>_<i>.<ext>`` as an archive
    grows over the years; every fourth image is a failed, noise-only scan.
    """
    from PIL import Image

    out = Path(out)
    rows = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        kind = KINDS[i % len(KINDS)]
        fmt = _FORMATS[(i // len(KINDS)) % len(_FORMATS)]
        height, group = _image(kind, size, rng)
        phase = np.where(height > 0.5, 90.0, -90.0) + rng.normal(0, 5, height.shape)
        year = 2014 + i % 8
        date = f"{year}-{1 + i % 12:02d}-{1 + i % 28:02d}"
        scan_size = float(rng.choice([1e-6, 2e-6, 5e-6]))
        rel = Path(str(year)) / f"{kind}_{i:03d}.{fmt}"
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        if fmt == "h5":
            meta = {"ScanSize": scan_size, "Date": date, "Time": "10:30:00 AM",
                    "BaseName": _MATERIALS[kind], "ImagingMode": "PFM Mode",
                    "DriveFrequency": 350e3}  # fmt: skip
            _write_h5(tmp, height, phase, meta)
        elif fmt == "tif":
            _write_tif(tmp, height, phase, scan_size)
        else:
            Image.fromarray(np.round(height * 255).astype(np.uint8)).save(tmp, format="PNG")
        os.replace(tmp, path)
        rows.append({
            "path": rel.as_posix(),
            "material": _MATERIALS[kind],
            "grower": _GROWERS[i % len(_GROWERS)],
            "substrate": _SUBSTRATES[(i // 2) % len(_SUBSTRATES)],
            "deposition": "PLD" if i % 2 else "sputtering",
            "project": f"demo-{1 + i % 3}",
            "outcome": "failed" if kind == "noise" else "ok",
            "structure": kind,
            "plane_group": group or "",
            "date": date,
        })  # fmt: skip
    sidecar = out / "sidecar.csv"
    with sidecar.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return sidecar
