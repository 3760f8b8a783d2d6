"""Inference weights: a checkpoint exported as safetensors plus a JSON description.

The pair ``name.safetensors`` + ``name.json`` is all extraction needs; loading it runs
no pickle. The JSON holds the architecture, class names, input normalisation, training
image size, the sarise version and the sha256 of the weights file.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from sarise._files import file_sha256
from sarise._version import __version__
from sarise.errors import SariseError
from sarise.models.resnet import ResNet, create_model

__all__ = ["FORMAT", "PRETRAINED", "export_model", "load_model", "pretrained_path", "read_info"]

#: Format tag written in the JSON; bumped when its meaning changes.
FORMAT = "sarise-model/1"
#: File stem of the model shipped with the package.
PRETRAINED = "wallpaper-resnet18-w32"


def pretrained_path() -> Path:
    """The shipped model's ``.safetensors`` file (docs/model-card.md)."""
    return Path(str(resources.files("sarise.models") / "pretrained" / f"{PRETRAINED}.safetensors"))


def export_model(
    checkpoint: str | Path,
    out: str | Path,
    *,
    dtype: str = "float32",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``out`` (``.safetensors``) and ``out`` with suffix ``.json`` from a checkpoint.

    Parameters
    ----------
    checkpoint : path
        A ``.ckpt`` from ``sarise train`` (read with ``weights_only=True``).
    out : path
        The weights file to write; the description goes beside it.
    dtype : {'float32', 'float16', 'bfloat16'}
        Storage type of floating-point weights (BatchNorm statistics stay float32).
    extra : dict, optional
        More JSON fields (e.g. an evaluation summary).

    Returns
    -------
    Path
        The ``.safetensors`` file.
    """
    from safetensors.torch import save_file

    from sarise.train import load_checkpoint

    out = Path(out)
    if out.suffix != ".safetensors":
        raise SariseError(f"{out}: the weights file must end in .safetensors")
    ckpt = load_checkpoint(checkpoint)
    hp = ckpt.get("hyper_parameters") or {}
    missing = {"model", "classes", "normalization", "image_size"} - set(hp)
    if missing:
        raise SariseError(f"{checkpoint} is not a sarise checkpoint (missing {sorted(missing)})")
    cast = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in cast:
        raise SariseError(f"dtype must be one of {', '.join(cast)}, got {dtype!r}")
    state = {}
    for key, t in ckpt["state_dict"].items():
        if not key.startswith("model."):
            continue
        key = key.removeprefix("model.").replace("_orig_mod.", "")
        if t.is_floating_point() and "running_" not in key:
            t = t.to(cast[dtype])
        state[key] = t.contiguous()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    save_file(state, tmp, metadata={"format": FORMAT})
    info = {
        "format": FORMAT,
        "model": hp["model"],
        "classes": list(hp["classes"]),
        "normalization": hp["normalization"],
        "image_size": hp["image_size"],
        "num_features": create_model(**hp["model"], num_classes=len(hp["classes"])).num_features,
        "dtype": dtype,
        "trained": {
            "steps": ckpt.get("global_step"),
            "version": hp.get("version"),
            "config": hp.get("config"),
        },
        "exported_by": __version__,
        "sha256": file_sha256(tmp),
        **(extra or {}),
    }
    json_tmp = out.with_suffix(".json.partial")
    json_tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.chmod(tmp, 0o644)  # safetensors writes owner-only files; weights are meant to be shared
    os.replace(tmp, out)
    os.replace(json_tmp, out.with_suffix(".json"))
    return out


def read_info(path: str | Path) -> dict[str, Any]:
    """The JSON description beside a ``.safetensors`` model."""
    path = Path(path)
    meta = path.with_suffix(".json")
    try:
        info = json.loads(meta.read_text())
    except FileNotFoundError:
        raise SariseError(f"{path}: no model description {meta.name} beside it") from None
    except json.JSONDecodeError as exc:
        raise SariseError(f"{meta}: not valid JSON ({exc})") from None
    if info.get("format") != FORMAT:
        raise SariseError(f"{meta}: unknown model format {info.get('format')!r} (want {FORMAT})")
    return info


def load_model(
    path: str | Path | None = None, *, device: str | torch.device = "cpu", verify: bool = True
) -> tuple[ResNet, dict[str, Any]]:
    """Build the network of an exported model, in eval mode, in float32.

    Parameters
    ----------
    path : path, optional
        A ``.safetensors`` model (default: the shipped one), or a training ``.ckpt``.
    device : str or torch.device
    verify : bool
        Check the weights file against the sha256 in its description.

    Returns
    -------
    model : ResNet
        ``model(x)`` returns ``(logits, features)``.
    info : dict
        The description: ``classes``, ``normalization``, ``image_size``, ``sha256``, ...
    """
    path = Path(path) if path is not None else pretrained_path()
    try:
        return _load_model(path, device, verify)
    except SariseError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, OSError,
            IndexError) as exc:  # fmt: skip
        # a tampered or truncated file: missing keys, wrong types, a bad header
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise SariseError(f"{path}: not a usable sarise model ({type(exc).__name__}: "
                          f"{what[:200]})") from None  # fmt: skip
    except Exception as exc:  # safetensors' own error types
        if type(exc).__module__.split(".")[0] in ("safetensors", "builtins"):
            raise SariseError(f"{path}: not a usable sarise model ({exc})") from None
        raise


def _load_model(path: Path, device, verify: bool) -> tuple[ResNet, dict[str, Any]]:
    from safetensors.torch import load_file

    if path.suffix == ".ckpt":
        from sarise.train import load_checkpoint

        ckpt = load_checkpoint(path)
        hp = ckpt["hyper_parameters"]
        info = {"format": FORMAT, "model": hp["model"], "classes": list(hp["classes"]),
                "normalization": hp["normalization"], "image_size": hp["image_size"],
                "sha256": file_sha256(path)}  # fmt: skip
        state = {k.removeprefix("model.").replace("_orig_mod.", ""): v
                 for k, v in ckpt["state_dict"].items() if k.startswith("model.")}  # fmt: skip
    else:
        info = read_info(path)
        if not path.exists():
            raise SariseError(f"no model weights at {path}")
        if verify and file_sha256(path) != info["sha256"]:
            raise SariseError(f"{path}: sha256 differs from its description (corrupt or replaced)")
        state = load_file(path)
    if not isinstance(info.get("model"), dict) or not isinstance(info.get("classes"), list):
        raise SariseError(f"{path}: the description lacks 'model' or 'classes'")
    model = create_model(**info["model"], num_classes=len(info["classes"]))
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()})  # fmt: skip
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = next((ln for ln in lines[1:] if ln), lines[0] if lines else "")
        more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
        raise SariseError(f"{path}: weights do not fit {info['model']}: {first}{more}") from None
    return model.to(device).eval(), info
