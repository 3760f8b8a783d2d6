import json

import numpy as np
import pytest
import torch

from sarise.errors import SariseError
from sarise.models import export_model, load_model, read_info
from sarise.models.data import standardize
from sarise.train import load_checkpoint


def _module_logits(ckpt, x):
    from sarise.models import SymmetryClassifier

    module = SymmetryClassifier.load_from_checkpoint(ckpt, weights_only=True).eval()
    with torch.no_grad():
        return module(x)


def test_exported_model_reproduces_the_checkpoint(tiny_model):
    ckpt, path = tiny_model
    info = read_info(path)
    assert info["format"] == "sarise-model/1"
    assert info["classes"][9] == "p4" and info["image_size"] == 32
    assert info["normalization"]["method"] == "standardize"
    assert info["num_features"] == 32 and info["trained"]["steps"] == 6
    model, info2 = load_model(path)
    assert info2 == info and not model.training
    x = torch.from_numpy(standardize(np.random.default_rng(0).random((3, 1, 32, 32), np.float32)))
    with torch.no_grad():
        logits, feats = model(x)
    ref_logits, ref_feats = _module_logits(ckpt, x)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(feats, ref_feats)
    # a checkpoint loads through the same function
    torch.testing.assert_close(load_model(ckpt)[0](x)[0], logits)


def test_half_precision_export_is_smaller_and_close(tiny_model, tmp_path):
    ckpt, path = tiny_model
    half = export_model(ckpt, tmp_path / "half.safetensors", dtype="float16")
    assert half.stat().st_size < 0.6 * path.stat().st_size
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_model(half)[0](x)[0], load_model(path)[0](x)[0],
                                   rtol=2e-2, atol=2e-2)  # fmt: skip


def test_loading_checks_the_description_and_the_hash(tiny_model, tmp_path):
    _, path = tiny_model
    copy = tmp_path / "m.safetensors"
    copy.write_bytes(path.read_bytes())
    with pytest.raises(SariseError, match=r"no model description m\.json"):
        load_model(copy)
    info = json.loads(path.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps(info))
    load_model(copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(SariseError, match="sha256 differs"):
        load_model(copy)
    copy.with_suffix(".json").write_text(json.dumps({**info, "format": "other/9"}))
    with pytest.raises(SariseError, match="unknown model format"):
        load_model(copy)


def test_export_refuses_what_is_not_a_sarise_checkpoint(tmp_path, tiny_model):
    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"lr": 1.0}}, bare)
    with pytest.raises(SariseError, match="not a sarise checkpoint"):
        export_model(bare, tmp_path / "x.safetensors")
    with pytest.raises(SariseError, match=r"must end in \.safetensors"):
        export_model(tiny_model[0], tmp_path / "x.pt")
    with pytest.raises(SariseError, match=r"no checkpoint"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_export_holds_no_pickle(tiny_model):
    _, path = tiny_model
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        keys = set(f.keys())
        assert f.metadata()["format"] == "sarise-model/1"
    assert "fc.weight" in keys and "conv1.weight" in keys
    assert not any(k.startswith("model.") for k in keys)


def _tampered(tmp_path, name, info=None, weights=None):
    import hashlib
    import json as _json

    from sarise.models import pretrained_path

    src = pretrained_path()
    data = src.read_bytes() if weights is None else weights(src.read_bytes())
    dst = tmp_path / f"{name}.safetensors"
    dst.write_bytes(data)
    meta = _json.loads(src.with_suffix(".json").read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()  # tampered with a matching sha256
    meta = info(meta) if info else meta
    dst.with_suffix(".json").write_text(_json.dumps(meta))
    return dst


def test_corrupt_or_tampered_models_are_one_line_errors(tmp_path):
    import pytest

    from sarise.errors import SariseError
    from sarise.models import load_model

    cases = {
        "no-model": (lambda m: {k: v for k, v in m.items() if k != "model"}, None),
        "model-a-string": (lambda m: {**m, "model": "resnet18"}, None),
        "no-classes": (lambda m: {k: v for k, v in m.items() if k != "classes"}, None),
        "a-list": (lambda m: [m], None),
        "other-width": (lambda m: {**m, "model": {**m["model"], "width": 16}}, None),
        "unknown-arch": (lambda m: {**m, "model": {**m["model"], "arch": "vit"}}, None),
        "bad-kwarg": (lambda m: {**m, "model": {**m["model"], "depth": 3}}, None),
        "truncated": (None, lambda b: b[: len(b) // 2]),
        "bad-header": (None, lambda b: b"\xff" * 8 + b[8:]),
        "empty": (None, lambda b: b""),
    }
    for name, (info, weights) in cases.items():
        path = _tampered(tmp_path, name, info, weights)
        with pytest.raises(SariseError) as err:
            load_model(path)
        msg = str(err.value)
        assert str(path) in msg or path.with_suffix(".json").name in msg, (name, msg)
        assert "\n" not in msg, (name, msg)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(SariseError, match=r"garbage\.ckpt"):
        load_model(garbage)
