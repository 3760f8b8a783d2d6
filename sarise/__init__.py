"""sarise: Symmetry-Aware Recursive Image Similarity Exploration.

The library behind the ``sarise`` command: every verb of the CLI is a function here.
"""

from sarise._version import __version__
from sarise.config import SarisConfig, load_config
from sarise.symmetry import generate

__all__ = ["SarisConfig", "__version__", "generate", "load_config"]
