import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (SARISE_SHARED_DATA overrides); required under CI."""
    path = Path(os.environ.get("SARISE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data missing under CI: {path}")
        pytest.skip(f"no shared data at {path} (set SARISE_SHARED_DATA)")
    return path
