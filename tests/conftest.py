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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (SARISE_SHARED_DATA overrides); required under CI."""
    path = Path(os.environ.get("SARISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data missing under CI: {path}")
        pytest.skip(f"no shared data at {path} (set SARISE_SHARED_DATA)")
    return path
