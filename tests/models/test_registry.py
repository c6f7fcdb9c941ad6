"""Conformance tests parametrised over every registered architecture (timm tests/test_models.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

import models
from models.registry import UnknownNameError, create, list_models, model_info

NUM_CLASSES = 7

# Sensible kwargs and one-sample input shape per architecture. A new architecture must be
# added here; test_every_model_has_a_case fails until it is.
CASES: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "mlp": ({"input_shape": [2, 5, 3], "num_classes": NUM_CLASSES, "hidden": [16, 8]}, (2, 5, 3)),
    "digits_cnn": ({"num_classes": NUM_CLASSES, "in_channels": 2}, (2, 8, 8)),
    "resnet20": ({"num_classes": NUM_CLASSES, "in_channels": 3}, (3, 32, 32)),
}


# "onnx" builds a stored graph, not a fixed network: tests/models/test_onnx.py covers it.
LOCAL = [name for name in list_models() if name != "onnx"]


def test_every_model_has_a_case() -> None:
    assert sorted(CASES) == LOCAL


def test_list_models_sorted_and_reexported() -> None:
    assert list_models() == sorted(list_models())
    assert {"digits_cnn", "mlp", "onnx", "resnet20"} <= set(list_models())
    assert models.create is create


@pytest.mark.parametrize("name", LOCAL)
def test_forward_shape_and_classifier(name: str) -> None:
    kwargs, sample_shape = CASES[name]
    # kwargs come back from JSON (lists, not tuples) in checkpoints and job rows.
    model = create(name, **json.loads(json.dumps(kwargs))).eval()
    x = torch.randn(4, *sample_shape)

    classifier = model.classifier
    assert isinstance(classifier, nn.Linear)
    assert classifier.out_features == NUM_CLASSES
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears[-1] is classifier

    seen: dict[str, torch.Tensor] = {}
    handle = classifier.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    assert logits.shape == (4, NUM_CLASSES)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    # The classifier's output *is* the logits: nothing is applied after it.
    assert seen["out"] is logits or torch.equal(seen["out"], logits)
    # forward_features gives the classifier's input (the penultimate feature).
    with torch.no_grad():
        feats = model.forward_features(x)
    assert feats.shape == (4, classifier.in_features)
    torch.testing.assert_close(classifier(feats), logits)


@pytest.mark.parametrize("name", LOCAL)
def test_model_info(name: str) -> None:
    info = model_info(name)
    assert info["name"] == name
    assert info["doc"]
    json.dumps(info)  # JSON-ready for the UI


def test_unknown_name_message() -> None:
    with pytest.raises(UnknownNameError) as excinfo:
        create("foo")
    assert isinstance(excinfo.value, ValueError)
    known = ", ".join(list_models())
    assert str(excinfo.value) == (
        f"unknown architecture 'foo'; known: {known}; or any timm/<name> or torchvision/<name>"
    )


def test_bad_kwargs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="digits_cnn"):
        create("digits_cnn", no_such_argument=1)
    with pytest.raises(ValueError, match="num_classes=0"):
        create("digits_cnn", num_classes=0)


def test_resnet20_structure() -> None:
    model = create("resnet20", num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    # 1 stem conv + 3 stages x 3 blocks x 2 convs = 19 weighted 3x3 layers, + classifier = 20.
    assert len(convs) == 19
    projections = [
        m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
    ]
    assert len(projections) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 19 + 2
    assert [c.out_channels for c in convs[1::6]] == [16, 32, 64]
    assert model.classifier.in_features == 64
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.26e6 < n_params < 0.28e6  # ~0.27M in He et al. 2016, Table 6
