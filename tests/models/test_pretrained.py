"""The model shipped in the package (docs/model-card.md)."""

import numpy as np

from sarise.config import SymmetryConfig
from sarise.evaluate import predict
from sarise.models import load_model, pretrained_path
from sarise.symmetry import GROUPS, sample


def test_shipped_model_is_small_verified_and_described():
    path = pretrained_path()
    assert path.exists() and path.with_suffix(".json").exists()
    assert path.stat().st_size <= 25 * 2**20
    model, info = load_model()  # the default: the shipped model, sha256 checked
    assert info["classes"] == list(GROUPS)
    assert info["normalization"]["method"] == "standardize"
    assert info["model"] == {"arch": "resnet18", "width": 32, "in_chans": 1}
    assert model.num_features == info["num_features"] == 256
    assert info["trained"]["config"]["train"]["steps"] == info["trained"]["steps"]


def test_shipped_model_tells_the_groups_apart():
    model, info = load_model()
    sym = SymmetryConfig.model_validate(info["trained"]["config"]["symmetry"])
    images, labels = [], []
    for i in range(17 * 6):  # unseen: the test split's motifs
        im = sample(i, seed=sym.seed, split="test", config=sym)
        images.append(im.image)
        labels.append(im.label)
    logits, feats = predict(model, np.stack(images))
    accuracy = float((logits.argmax(1) == np.asarray(labels)).mean())
    assert accuracy >= 0.6, accuracy  # measured 0.815 on 1088 test images; chance is 0.059
    assert feats.shape == (102, 256) and np.isfinite(feats).all()
