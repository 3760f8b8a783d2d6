"""pyNSID / sidpy HDF5 images (``h5py``), as written by pycroscopy for Asylum scans.

Layout: ``Measurement_<m>/Channel_<k>/Channel_<k>/Channel_<k>`` is a 2-D dataset with
attributes ``quantity`` (the channel name) and ``units``, and its group holds
``original_metadata`` whose attributes are the Asylum note parameters (ScanSize, Date,
BaseName, ImagingMode, ...). The dataset's dimensions are ``['x', 'y']`` in Igor order (the
Asylum wave as stored in the ``.ibw``), so each channel is returned exactly as the ``.ibw``
reader does: ``np.flipud(dataset.T)``, ``data[y, x]`` with rows top to bottom.

Units come from the channel name where Asylum's naming settles them
(:func:`sarise.io.ibw.asylum_unit`), else from the ``units`` attribute: the converter writes
``m`` for every non-Phase channel, NapPhase and UserIn included, which is wrong for those.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from sarise.io._base import Channel, ReaderError, Scan, check_pixels, clean_name
from sarise.io.ibw import asylum_metadata, asylum_unit

__all__ = ["EXTRA", "FORMAT", "SUFFIXES", "read", "sniff"]

FORMAT = "hdf5"
SUFFIXES = (".h5", ".hdf5")
EXTRA = "h5py"

_MAGIC = b"\x89HDF\r\n\x1a\n"
_MEASUREMENT = re.compile(r"Measurement_(\d+)$")
_CHANNEL = re.compile(r"Channel_(\d+)$")
_MAX_ARRAY = 64  # attribute arrays larger than this are left out of ``raw``
#: Asylum parameters that mark ``original_metadata`` as Asylum's.
_ASYLUM_KEYS = ("ScanSize", "InvOLS", "AmpInvOLS", "BaseName")


def sniff(head: bytes) -> bool:
    """True for the HDF5 signature.

    >>> sniff(b"\\x89HDF\\r\\n\\x1a\\n..."), sniff(b"\\x05\\x00")
    (True, False)
    """
    return head.startswith(_MAGIC)


def read(path: Path, max_pixels: int | None = None) -> Scan:
    """Read a pyNSID HDF5 file: every ``Measurement_*/Channel_*`` image as a channel.

    Parameters
    ----------
    path
        The ``.h5`` file.

    Returns
    -------
    Scan
        Channels in measurement and channel order; ``raw`` holds the original metadata of
        the first channel plus the dataset attributes (prefixed ``<Channel_k>/``).

    Raises
    ------
    ReaderError
        h5py missing, not HDF5, or HDF5 without this layout.
    """
    path = Path(path)
    try:
        import h5py
    except ImportError:
        raise ReaderError(path, "reading HDF5 needs h5py: pip install h5py") from None
    try:
        with h5py.File(path, "r") as h5:
            return _scan(path, h5, h5py, max_pixels)
    except ReaderError:
        raise
    except Exception as exc:
        raise ReaderError(path, f"not a readable HDF5 file ({type(exc).__name__}: {exc})") from None


def _scan(path: Path, h5: Any, h5py: Any, max_pixels: int | None = None) -> Scan:
    """Collect the channels and metadata of an open file."""
    found = _datasets(h5, h5py)
    if not found:
        raise ReaderError(path, "HDF5 without the pyNSID layout: no Measurement_*/Channel_* "
                                "image datasets")  # fmt: skip
    original = _attrs(found[0][1].parent["original_metadata"]) if _has_original(found[0][1]) else {}
    raw: dict[str, Any] = dict(original)
    channels = []
    for key, dset in found:
        check_pixels(path, dset.shape, max_pixels, f"dataset {dset.name}")
        attrs = _attrs(dset)
        raw.update({f"{key}/{k}": v for k, v in attrs.items()})
        channels.append(_channel(path, key, dset, attrs, original))
    asylum = any(k in original for k in _ASYLUM_KEYS)
    return Scan(path, FORMAT, channels, asylum_metadata(original, instrument=asylum), raw)


def _datasets(h5: Any, h5py: Any) -> list[tuple[str, Any]]:
    """``(Channel_k, dataset)`` for each 2-D image, in measurement then channel order."""
    found = []
    for mname in sorted(h5, key=lambda n: _index(_MEASUREMENT, n)):
        group = h5[mname]
        if _index(_MEASUREMENT, mname) < 0 or not isinstance(group, h5py.Group):
            continue
        for cname in sorted(group, key=lambda n: _index(_CHANNEL, n)):
            dset = _image(group, cname, h5py)
            if dset is not None:
                found.append((cname, dset))
    return found


def _index(pattern: re.Pattern[str], name: str) -> int:
    """The number in ``Measurement_<n>`` / ``Channel_<n>``, or -1 for other names."""
    match = pattern.match(name)
    return int(match.group(1)) if match else -1


def _image(group: Any, cname: str, h5py: Any) -> Any:
    """The dataset ``cname/cname/cname`` when it is a 2-D numeric image, else None."""
    if _index(_CHANNEL, cname) < 0:
        return None
    dset = group.get(f"{cname}/{cname}/{cname}")
    if not isinstance(dset, h5py.Dataset) or dset.ndim != 2 or min(dset.shape) < 2:
        return None
    return dset if np.issubdtype(dset.dtype, np.number) else None


def _has_original(dset: Any) -> bool:
    """Whether the dataset's group has an ``original_metadata`` group."""
    return "original_metadata" in dset.parent


def _channel(path: Path, key: str, dset: Any, attrs: dict[str, Any], meta: dict) -> Channel:
    """One channel ``data[y, x]`` (rows top to bottom) with its name and unit."""
    name = clean_name(str(attrs.get("quantity") or "")) or key
    data = np.asarray(dset[()], dtype=np.float64)
    if np.iscomplexobj(data):
        raise ReaderError(path, f"{dset.name}: complex data is not an image")
    data = np.flipud(data.T)
    hint = str(attrs.get("units") or "").strip()
    return Channel(name, data, asylum_unit(name, data, meta, hint))


def _attrs(obj: Any) -> dict[str, Any]:
    """An HDF5 object's attributes as plain Python values (large arrays and refs skipped)."""
    out = {}
    for key in obj.attrs:
        try:
            value = _plain(obj.attrs[key])
        except Exception:  # an attribute h5py cannot decode: leave it out
            continue
        if value is not None:
            out[str(key)] = value
    return out


def _plain(value: Any) -> Any:
    """str/int/float/bool or a short list of them; None for what does not belong in ``raw``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, np.ndarray):
        if value.size > _MAX_ARRAY or value.dtype.kind not in "biufSUO":
            return None
        items = [_plain(v) for v in value.ravel()]
        return None if any(v is None for v in items) else items
    if isinstance(value, str | int | float | bool):
        return value
    return None
