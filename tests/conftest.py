import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# numba compiles the renderer once per machine; keep its cache out of $HOME.
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))


@pytest.fixture
def cli_env(tmp_path):
    """Environment for subprocesses: the venv's commands first, a private HOME and caches."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    return env
