import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# numba compiles the renderer once per machine; keep its cache out of $HOME.
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))


def subprocess_env(home: Path) -> dict[str, str]:
    """Environment for subprocesses: the venv's commands first, a private HOME and caches."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    return env


@pytest.fixture
def cli_env(tmp_path):
    """:func:`subprocess_env` with a HOME in this test's temporary folder."""
    return subprocess_env(tmp_path / "home")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (SARISE_SHARED_DATA overrides); required under CI."""
    path = Path(os.environ.get("SARISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data missing under CI: {path}")
        pytest.skip(f"no shared data at {path} (set SARISE_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def wallpaper_run(tmp_path_factory):
    """A run made from generated wallpaper images written as PNG files (6 per group, with
    a sidecar of group and batch), taken through ingest and extract like any archive."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from sarise.cluster import get_client
    from sarise.config import IngestConfig, SymmetryConfig
    from sarise.features import extract
    from sarise.ingest import ingest
    from sarise.symmetry import GROUPS, sample

    root = tmp_path_factory.mktemp("wallpaper")
    files = root / "files"
    cfg = SymmetryConfig(size=128, motif_sources=("natural", "field"))
    rows = []
    for i in range(17 * 6):
        im = sample(i, seed=0, split="test", config=cfg, augment=False)
        group = GROUPS[im.label]
        path = files / group / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((im.image * 255).round().astype(np.uint8)).save(path)
        rows.append({"path": f"{group}/{i:03d}.png", "group": group, "batch": i % 3})
    pd.DataFrame(rows).to_csv(root / "sidecar.csv", index=False)
    run = root / "run"
    with get_client(workers=2) as client:
        ingest([files], run / "store", config=IngestConfig(size=128, flatten="none", chunk=32),
               sidecar=root / "sidecar.csv", client=client, show_progress=False)  # fmt: skip
        extract(run / "store", run / "features.zarr", client=client, show_progress=False)
    return run
