"""Exact 1-D linear-region counting (SCIENCE.md sect. 5) against brute-force sampling."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import prune

import models  # noqa: F401  (registers the architectures)
from backend.analysis.linear_regions import (
    PieceBudgetExceeded,
    SegmentRegions,
    UnsupportedModuleError,
    check_supported,
    count_regions,
    count_regions_batch,
    sample_patterns,
    segment_sets,
    verify_segment,
)
from models.registry import create as create_model
from models.registry import list_models

torch.set_num_threads(1)


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 12)
        self.fc2 = nn.Linear(12, 10)
        self.act = nn.LeakyReLU(0.1)
        self.classifier = nn.Linear(10, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.act(self.fc2(F.relu(self.fc1(x)))))


class TinyPoolCNN(nn.Module):
    """Conv-ReLU-MaxPool twice, functional relu and torch.flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 2 * 2, 8)
        self.relu = nn.ReLU()
        self.classifier = nn.Linear(8, 4)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        return self.classifier(self.relu(self.fc(torch.flatten(x, 1))))


class TinyResNet(nn.Module):
    """Conv-BN-ReLU, one residual block, avg pools, dropout, identity, x.view(x.size(0), -1)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(4)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.short = nn.Identity()
        self.avg = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(2)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(16, 6)
        self.bn3 = nn.BatchNorm1d(6)
        self.classifier = nn.Linear(6, 3)
        gen = torch.Generator().manual_seed(1)
        for bn in (self.bn0, self.bn1, self.bn2, self.bn3):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            bn.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            bn.weight.data.copy_(torch.randn(c, generator=gen))
            bn.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        x = F.relu(out + self.short(x))
        x = self.gap(self.avg(x))
        x = self.drop(x.view(x.size(0), -1))
        return self.classifier(F.relu(self.bn3(self.fc(x))))


def _make(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if name == "tiny_mlp":
        return TinyMLP(), (6,)
    if name == "tiny_pool_cnn":
        return TinyPoolCNN(), (1, 8, 8)
    if name == "tiny_resnet":
        return TinyResNet(), (2, 8, 8)
    if name == "mlp":
        return create_model("mlp", input_shape=[1, 8, 8], num_classes=10, hidden=[32, 16]), (
            1,
            8,
            8,
        )
    return create_model("digits_cnn"), (1, 8, 8)


MODELS = ["tiny_mlp", "tiny_pool_cnn", "tiny_resnet", "mlp", "digits_cnn"]


def _segment(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) * scale, torch.rand(shape, generator=gen) * scale


def _changes(keys: list[bytes]) -> int:
    return sum(k != p for k, p in zip(keys[1:], keys[:-1], strict=True))


@pytest.mark.parametrize("name", MODELS)
def test_exact_matches_sampling(name: str) -> None:
    model, shape = _make(name)
    a, b = _segment(shape)
    r = count_regions(model, a, b, self_check=True)
    assert r.activation_pieces == len(r.breakpoints) + 1
    assert r.breakpoints == sorted(r.breakpoints)
    assert r.activation_pieces > 1
    mids = [(lo + hi) / 2 for lo, hi in r.piece_bounds]
    at_mid = sample_patterns(model, a, b, mids)
    assert len(set(at_mid)) == r.distinct_patterns
    assert _changes(at_mid) == r.activation_pieces - 1
    dense = sample_patterns(model, a, b, 257)
    assert len(set(dense)) <= r.distinct_patterns <= r.activation_pieces
    assert _changes(dense) <= r.activation_pieces - 1
    assert set(dense) <= set(at_mid)  # every sampled pattern is one of the exact pieces
    assert verify_segment(model, a, b, r, n_random=32, seed=3) < 1e-9
    assert r.linear_pieces <= r.activation_pieces
    assert r.length == pytest.approx(float((b - a).norm()))
    assert r.density_per_length == pytest.approx(r.activation_pieces / r.length)
    json.dumps(r.to_json())


@pytest.mark.parametrize("name", MODELS)
def test_chunked_equals_unchunked(name: str) -> None:
    model, shape = _make(name)
    a, b = _segment(shape, seed=1)
    r1 = count_regions(model, a, b)
    r4 = count_regions(model, a, b, chunks=4)
    assert r4.to_json()["activation_pieces"] == r1.activation_pieces
    assert r4.distinct_patterns == r1.distinct_patterns
    assert r4.linear_pieces == r1.linear_pieces
    assert r4.decision_crossings == r1.decision_crossings
    assert r4.breakpoints == pytest.approx(r1.breakpoints, abs=1e-12)


def test_decision_crossings_match_dense_argmax() -> None:
    model, shape = _make("tiny_mlp")
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a long segment whose ends are predicted differently
        a, b = torch.randn(shape, generator=gen) * 5, torch.randn(shape, generator=gen) * 5
        while model(a[None]).argmax() == model(b[None]).argmax():
            b = torch.randn(shape, generator=gen) * 5
    r = count_regions(model, a, b)
    t = torch.linspace(0, 1, 20001, dtype=torch.float64)
    with torch.no_grad():
        pred = model.double()(a.double()[None] + t[:, None] * (b - a).double()[None]).argmax(1)
    assert r.decision_crossings == int((pred[1:] != pred[:-1]).sum())
    assert r.decision_crossings > 0
    for tp in r.decision_points:
        i = int(round(tp * 20000))
        assert pred[max(i - 2, 0)] != pred[min(i + 2, 20000)]


def test_resnet20_self_check_short_segment() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20")
    a = torch.rand(3, 32, 32)
    d = torch.randn(3, 32, 32)
    b = a + 0.02 * d / d.norm()
    r = count_regions(model, a, b, self_check=True)
    assert r.activation_pieces > 1
    assert verify_segment(model, a, b, r, n_random=8, seed=1) < 1e-9
    assert r.live_neurons == 16 * 32 * 32 * 7 + 32 * 16 * 16 * 6 + 64 * 8 * 8 * 6
    at_mid = sample_patterns(model, a, b, [(lo + hi) / 2 for lo, hi in r.piece_bounds])
    assert len(set(at_mid)) == r.distinct_patterns
    assert _changes(at_mid) == r.activation_pieces - 1


REGISTRY_CASES: dict[str, tuple[dict[str, object], tuple[int, ...]]] = {
    "mlp": ({"input_shape": [2, 5, 3], "num_classes": 4, "hidden": [16, 8]}, (2, 5, 3)),
    "digits_cnn": ({"num_classes": 4, "in_channels": 2}, (2, 8, 8)),
    "resnet20": ({"num_classes": 4, "in_channels": 3}, (3, 32, 32)),
}


def test_every_fixed_architecture_has_a_region_case() -> None:
    # "onnx" is any uploaded graph: whether regions can be counted is decided per model when it
    # is registered (ModelRow.regions_unsupported)
    assert sorted(REGISTRY_CASES) == [name for name in list_models() if name != "onnx"]


@pytest.mark.parametrize("name", sorted(REGISTRY_CASES))
def test_every_registered_model_is_supported(name: str) -> None:
    kwargs, shape = REGISTRY_CASES[name]
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    check_supported(model)
    a = torch.rand(shape)
    r = count_regions(model, a, a + 1e-3, self_check=True)
    assert r.activation_pieces >= 1


def _one_d_relu(weights: list[float], biases: list[float]) -> nn.Module:
    model = nn.Sequential(nn.Linear(1, len(weights)), nn.ReLU(), nn.Linear(len(weights), 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(weights)[:, None])
        model[0].bias.copy_(torch.tensor(biases))
    return model


def test_single_relu_layer_by_hand() -> None:
    # crossings t = -bias / weight: 0.25 (twice), 0.5, 2.0 (outside), 0.1, none (weight 0)
    model = _one_d_relu([1.0, 2.0, -2.0, 1.0, 10.0, 0.0], [-0.25, -0.5, 1.0, -2.0, -1.0, 0.3])
    r = count_regions(model, torch.tensor([0.0]), torch.tensor([1.0]), self_check=True)
    assert r.activation_pieces == 4
    assert r.breakpoints == pytest.approx([0.1, 0.25, 0.5], abs=1e-12)
    assert r.distinct_patterns == 4
    assert r.live_neurons == 6  # the weight-0 unit has bias 0.3: constant, not dead


def test_pruned_units_never_split() -> None:
    weights, biases = [1.0, -1.0, 4.0, 3.0, 2.0], [-0.5, 0.7, -1.0, -0.6, -0.3]
    model = _one_d_relu(weights, biases)
    # units 2, 3 pruned: zero incoming weights (mask) and zero bias
    prune.custom_from_mask(model[0], "weight", torch.tensor([[1.0], [1.0], [0.0], [0.0], [1.0]]))
    with torch.no_grad():
        model[0].bias[2:4] = 0.0
    r = count_regions(model, torch.tensor([0.0]), torch.tensor([1.0]), self_check=True)
    w, bias = model[0].weight_orig.detach().double()[:, 0], model[0].bias.detach().double()
    expected = sorted(float(-bias[i] / w[i]) for i in (4, 0, 1))  # 0.15, 0.5, 0.7
    assert r.breakpoints == pytest.approx(expected, abs=1e-12)
    assert r.activation_pieces == 4
    assert r.live_neurons == 3


def test_magnitude_pruned_mlp_linear_le_activation() -> None:
    torch.manual_seed(0)
    model = create_model("mlp", input_shape=[1, 8, 8], num_classes=10, hidden=[64, 64])
    for m in model.modules():
        if isinstance(m, nn.Linear):
            prune.l1_unstructured(m, "weight", amount=0.9)
    a, b = _segment((1, 8, 8), seed=2)
    r = count_regions(model, a, b, self_check=True)
    assert r.linear_pieces <= r.activation_pieces
    assert r.live_neurons <= 128
    dense = sample_patterns(model, a, b, 129)
    assert len(set(dense)) <= r.distinct_patterns


@pytest.mark.parametrize("act", [nn.Sigmoid(), nn.GELU()])
def test_unsupported_module_raises_naming_it(act: nn.Module) -> None:
    model = nn.Sequential(nn.Linear(3, 4), act, nn.Linear(4, 2))
    with pytest.raises(UnsupportedModuleError, match=f"{type(act).__name__} '1'"):
        check_supported(model)
    with pytest.raises(ValueError, match=type(act).__name__):
        count_regions(model, torch.zeros(3), torch.ones(3))


def test_unsupported_function_raises() -> None:
    class Tanh(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x: Tensor) -> Tensor:
            return torch.tanh(self.fc(x))

    with pytest.raises(UnsupportedModuleError, match="tanh"):
        check_supported(Tanh())


def test_bad_segments_and_budget_raise() -> None:
    model, shape = _make("digits_cnn")
    a, b = _segment(shape)
    with pytest.raises(ValueError, match="zero-length"):
        count_regions(model, a, a.clone())
    bad = a.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        count_regions(model, bad, b)
    with pytest.raises(ValueError, match="shape"):
        count_regions(model, a, b[:, :4])
    with pytest.raises(PieceBudgetExceeded, match="max_pieces=5"):
        count_regions(model, a, b, max_pieces=5)
    with pytest.raises(ValueError, match="chunks"):
        count_regions(model, a, b, chunks=0)


def test_batch_and_segment_sets_deterministic() -> None:
    model, shape = _make("tiny_pool_cnn")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(20, *shape, generator=gen), torch.arange(20) % 3
    s1, s2 = segment_sets(x, y, 3, seed=7, radius=0.2), segment_sets(x, y, 3, seed=7, radius=0.2)
    assert set(s1) == {"within_class", "across_class", "local"}
    for fam in s1:
        assert len(s1[fam]) == 3
        for (a1, b1), (a2, b2) in zip(s1[fam], s2[fam], strict=True):
            assert torch.equal(a1, a2) and torch.equal(b1, b2)
    for a, b in s1["within_class"]:
        ia = int((x - a).flatten(1).norm(dim=1).argmin())
        ib = int((x - b).flatten(1).norm(dim=1).argmin())
        assert y[ia] == y[ib] and ia != ib
    for a, b in s1["across_class"]:
        ia = int((x - a).flatten(1).norm(dim=1).argmin())
        ib = int((x - b).flatten(1).norm(dim=1).argmin())
        assert y[ia] != y[ib]
    for a, b in s1["local"]:
        assert float((b - a).norm()) == pytest.approx(0.4, rel=1e-5)
    segs = s1["local"] + s1["across_class"]
    batch = count_regions_batch(model, segs)
    assert all(isinstance(r, SegmentRegions) for r in batch)
    for (a, b), r in zip(segs, batch, strict=True):
        assert r.to_json() == count_regions(model, a, b).to_json()
