"""PNG, JPEG and BMP (Pillow): one ``intensity`` channel; 16-bit greys kept as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sarise.io._base import Channel, ReaderError, Scan, check_pixels

FORMAT = "image"
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
EXTRA = None


def sniff(head: bytes) -> bool:
    """PNG, JPEG or BMP signatures."""
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM"))


def read(path: Path, max_pixels: int | None = None) -> Scan:
    """Read the image as one channel ``data[y, x]`` (colour averaged to grey)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            check_pixels(path, (im.height, im.width), max_pixels)
            im.load()
            info = {k: v for k, v in im.info.items() if isinstance(v, str | int | float)}
            if im.mode in ("I", "I;16", "I;16B", "F", "L", "1"):
                data = np.asarray(im, dtype=np.float64)
            else:
                data = np.asarray(im.convert("RGB"), dtype=np.float64).mean(axis=-1)
            fmt = im.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ReaderError(path, f"not a readable image ({exc})") from None
    if data.ndim != 2 or 0 in data.shape:
        raise ReaderError(path, f"no 2-D image (shape {data.shape})")
    raw = {"image_format": fmt, **info}
    meta = {"instrument": None, "scan_size_m": None, "date": None}
    return Scan(path=path, format=FORMAT, channels=[Channel("intensity", data)], metadata=meta,
                raw=raw)  # fmt: skip
