"""The symmetry classifier: plain-torch ResNets, Lightning training, exported weights.

>>> from sarise.models import create_model
>>> create_model("resnet34", width=8).num_features
64
"""

from sarise.models.data import NORMALIZATION, SymmetryDataModule, standardize
from sarise.models.export import export_model, load_model, pretrained_path, read_info
from sarise.models.module import SymmetryClassifier
from sarise.models.resnet import ARCHS, ResNet, create_model, resnet18, resnet34, resnet50

__all__ = [
    "ARCHS",
    "NORMALIZATION",
    "ResNet",
    "SymmetryClassifier",
    "SymmetryDataModule",
    "create_model",
    "export_model",
    "load_model",
    "pretrained_path",
    "read_info",
    "resnet18",
    "resnet34",
    "resnet50",
    "standardize",
]
