"""sarise: Symmetry-Aware Recursive Image Similarity Exploration.

The library behind the ``sarise`` command: every verb of the CLI is a function here,
re-exported at the top level (``from sarise import generate``). Submodules load on
first use, so ``import sarise`` and ``sarise --help`` stay fast.
"""

from importlib import import_module

from sarise._version import __version__

_LAZY = {
    "SarisConfig": "sarise.config",
    "load_config": "sarise.config",
    "generate": "sarise.symmetry",
    "ingest": "sarise.ingest",
    "extract": "sarise.features",
    "open_run": "sarise.run",
    "get_client": "sarise.cluster",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sarise' has no attribute {name!r}")
