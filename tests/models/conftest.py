import subprocess
import sys

import pytest
import yaml

#: A training run that takes seconds on one CPU core.
TINY = {
    "run": "tiny",
    "symmetry": {
        "size": 32,
        "cell_px": [6, 14],
        "cell_resolution": 32,
        "motif_sources": ["natural", "field"],
        "per_group": {"train": 0, "val": 2, "test": 2},
        "chunk": 17,
    },
    "train": {
        "model": {"arch": "resnet18", "width": 4},
        "steps": 6,
        "steps_per_epoch": 2,
        "batch_size": 34,
        "workers": 0,
        "threads": 1,
        "lr": 0.01,
    },
    "evaluate": {"ood_per_group": 2, "invariance_per_group": 1, "noise": [0.1, 0.3]},
}


def write_config(path, **sections):
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    for section, values in sections.items():
        cfg[section] = {**cfg[section], **values}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def tiny_splits(tmp_path_factory):
    """val.zarr and test.zarr of the tiny config."""
    root = tmp_path_factory.mktemp("tiny_splits")
    cfg = write_config(root / "config.yaml")
    subprocess.run(
        [sys.executable, "-m", "sarise.cli", "generate", str(root), "-c", str(cfg),
         "-s", "val", "-s", "test", "--no-progress", "--workers", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_splits, tmp_path_factory):
    """A trained tiny model: (checkpoint, exported .safetensors)."""
    from sarise.config import load_config
    from sarise.models import export_model
    from sarise.train import train

    out = tmp_path_factory.mktemp("tiny_model")
    cfg = load_config(write_config(out / "config.yaml"))
    ckpt = train(cfg, out / "run", val=tiny_splits / "val.zarr", show_progress=False)
    return ckpt, export_model(ckpt, out / "model.safetensors")
