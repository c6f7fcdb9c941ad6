"""Penultimate-feature extraction: the captured features must reproduce the logits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

import models  # noqa: F401  (registers the architectures)
from backend.analysis.features import FeatureOutputs, extract_features, find_classifier
from models.registry import create as create_model

ARCHS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "mlp": ({"input_shape": [1, 8, 8], "num_classes": 10, "hidden": [32, 16]}, (1, 8, 8)),
    "digits_cnn": ({"num_classes": 10}, (1, 8, 8)),
    "resnet20": ({"num_classes": 10}, (3, 16, 16)),  # 16x16 keeps the tests fast
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(arch: str, seed: int = 0) -> tuple[nn.Module, Tensor]:
    torch.manual_seed(seed)
    model = create_model(arch, **ARCHS[arch][0])
    # Non-trivial BatchNorm statistics, so eval mode matters.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(37, *ARCHS[arch][1])
    return model, x


def assert_reproduces_logits(out: FeatureOutputs) -> None:
    recomputed = out.features.astype(np.float64) @ out.weight.T + out.bias
    np.testing.assert_allclose(recomputed, out.logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_features_reproduce_logits(arch: str) -> None:
    model, x = make(arch)
    out = extract_features(model, x, batch_size=16)
    n, c = x.shape[0], 10
    d = model.classifier.in_features
    assert out.features.shape == (n, d) and out.features.dtype == np.float32
    assert out.logits.shape == (n, c) and out.logits.dtype == np.float32
    assert out.weight.shape == (c, d) and out.weight.dtype == np.float64
    assert out.bias.shape == (c,) and out.bias.dtype == np.float64
    assert_reproduces_logits(out)
    model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(out.logits, model(x).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            out.features, model.forward_features(x).numpy(), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("arch", list(ARCHS))
def test_batch_size_does_not_matter(arch: str) -> None:
    model, x = make(arch)
    one = extract_features(model, x, batch_size=512)
    many = extract_features(model, x, batch_size=5)
    np.testing.assert_allclose(one.features, many.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.logits, many.logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_pruned_model(arch: str) -> None:
    model, x = make(arch)
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            prune.l1_unstructured(module, "weight", amount=0.6)
    prune.l1_unstructured(model.classifier, "bias", amount=0.5)
    out = extract_features(model, x)
    clf = model.classifier
    expected_w = (clf.weight_orig * clf.weight_mask).detach().double().numpy()
    expected_b = (clf.bias_orig * clf.bias_mask).detach().double().numpy()
    np.testing.assert_array_equal(out.weight, expected_w)
    np.testing.assert_array_equal(out.bias, expected_b)
    assert np.mean(out.weight == 0) == pytest.approx(0.6, abs=0.01)
    assert np.sum(out.bias == 0) == 5
    assert_reproduces_logits(out)


def test_model_without_bias_gets_zero_bias() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3, bias=False))
    out = extract_features(model, torch.randn(6, 5))
    np.testing.assert_array_equal(out.bias, np.zeros(3))
    assert_reproduces_logits(out)


@pytest.mark.parametrize("training", [True, False])
def test_mode_restored_and_hook_removed(training: bool) -> None:
    model, x = make("resnet20")
    prune.l1_unstructured(model.classifier, "weight", amount=0.3)  # adds a pre-hook of its own
    model.train(training)
    hooks_before = dict(model.classifier._forward_pre_hooks)
    extract_features(model, x)
    assert dict(model.classifier._forward_pre_hooks) == hooks_before
    assert all(m.training == training for m in model.modules())


class Failing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4)
        self.classifier = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        self.classifier(self.body(x))
        raise RuntimeError("boom")


class TwiceCalled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(4, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.classifier(x))


@pytest.mark.parametrize(
    ("model", "error"), [(Failing(), RuntimeError), (TwiceCalled(), ValueError)]
)
def test_hook_removed_on_error(model: nn.Module, error: type[Exception]) -> None:
    model.train()
    with pytest.raises(error):
        extract_features(model, torch.randn(3, 4))
    assert len(model.classifier._forward_pre_hooks) == 0
    assert model.training


class EndsInConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.head = nn.Conv2d(2, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.fc(x).view(-1, 2, 2, 2)).mean(dim=(2, 3))


def test_find_classifier_refuses_a_model_ending_in_conv() -> None:
    model = EndsInConv()
    with pytest.raises(ValueError, match=r"last layer of EndsInConv is Conv2d.*feature_layer="):
        find_classifier(model)
    with pytest.raises(ValueError, match=r"feature_layer='head' is Conv2d, not Linear"):
        find_classifier(model, layer="head")
    with pytest.raises(ValueError, match=r"feature_layer='nope'"):
        find_classifier(model, layer="nope")
    assert find_classifier(model, layer="fc") == ("fc", model.fc)


def test_find_classifier_defaults() -> None:
    model, _ = make("digits_cnn")
    assert find_classifier(model) == ("classifier", model.classifier)
    seq = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))
    assert find_classifier(seq) == ("3", seq[3])
    # A classifier attribute that is not Linear falls back to the search.
    seq.classifier = nn.ReLU()
    assert find_classifier(seq) == ("3", seq[3])
    with pytest.raises(ValueError, match="no layer with parameters"):
        find_classifier(nn.Sequential(nn.ReLU()))


class ClassifierRegisteredFirst(nn.Module):
    """Runs conv -> pool -> fc, but registers fc first: the search cannot tell."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x).amax(dim=(2, 3)))


def test_layer_option() -> None:
    torch.manual_seed(0)
    model = ClassifierRegisteredFirst()
    x = torch.randn(5, 1, 6, 6)
    with pytest.raises(ValueError, match="is Conv2d, not Linear; pass feature_layer="):
        extract_features(model, x)
    out = extract_features(model, x, layer="fc")
    assert out.features.shape == (5, 2)
    assert_reproduces_logits(out)
    # Trailing parameter-free layers do not hide the last Linear.
    seq = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3), nn.ReLU())
    out = extract_features(seq, torch.randn(5, 1, 4, 4))
    np.testing.assert_allclose(
        np.maximum(out.features @ out.weight.T + out.bias, 0), out.logits, atol=1e-5
    )


def test_inner_linear_layer_is_rejected() -> None:
    model, x = make("digits_cnn")
    with pytest.raises(ValueError, match="64 outputs but DigitsCNN returns 10 logits"):
        extract_features(model, x, layer="features.9")


def test_bad_batch_size() -> None:
    model, x = make("mlp")
    with pytest.raises(ValueError, match="batch_size=0"):
        extract_features(model, x, batch_size=0)


def test_empty_input() -> None:
    model, _ = make("mlp")
    out = extract_features(model, torch.zeros(0, 1, 8, 8))
    assert out.features.shape == (0, 16) and out.logits.shape == (0, 10)
