"""Compression figures (ShrinkBench): FLOPs against hand formulas, ratios, the note. Latency is
measured but never asserted (tests do not depend on wall-clock time)."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from backend.pruning.masks import effective_weight, prunable_layers
from backend.pruning.registry import create as create_method
from backend.pruning.report import compression_report, count_flops, measure_latency_ms
from backend.pruning.structured import prune_filters
from models.registry import create as create_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def digits_cnn() -> nn.Module:
    torch.manual_seed(0)
    return create_model("digits_cnn", num_classes=10).eval()


@pytest.mark.parametrize(
    ("conv", "hw", "out_hw"),
    [
        (nn.Conv2d(3, 8, 3, stride=2, padding=1), 9, 5),
        (nn.Conv2d(4, 6, (3, 5), padding=(1, 0), groups=2, bias=False), 7, (7, 3)),
    ],
)
def test_conv_flops_hand_formula(conv: nn.Conv2d, hw: int, out_hw: int | tuple[int, int]) -> None:
    out_h, out_w = out_hw if isinstance(out_hw, tuple) else (out_hw, out_hw)
    kh, kw = conv.kernel_size
    expected = out_h * out_w * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw
    rows = count_flops(nn.Sequential(conv), torch.randn(2, conv.in_channels, hw, hw))
    assert rows == [
        {
            "name": "0",
            "type": "Conv2d",
            "positions": out_h * out_w,
            "weight_numel": conv.weight.numel(),
            "weight_nonzero": conv.weight.numel(),
            "flops_dense": expected,
            "flops_nonzero": expected,
        }
    ]


def test_linear_flops_hand_formula() -> None:
    model = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    rows = count_flops(model, torch.randn(4, 7))
    assert [(r["name"], r["flops_dense"]) for r in rows] == [("0", 7 * 5), ("2", 5 * 3)]
    # Extra leading dimensions are output positions.
    rows = count_flops(nn.Sequential(nn.Linear(7, 5)), torch.randn(4, 6, 7))
    assert rows[0]["positions"] == 6 and rows[0]["flops_dense"] == 6 * 7 * 5


def test_masked_model_flops_count_nonzero_weights() -> None:
    model = digits_cnn()
    create_method("layer_magnitude", sparsity=0.7).apply(model)
    rows = {r["name"]: r for r in count_flops(model, torch.randn(3, 1, 8, 8))}
    # Output positions per example of digits_cnn (8x8 input, two 2x2 max-pools).
    positions = {"features.0": 64, "features.2": 64, "features.5": 16, "features.9": 1}
    positions["classifier"] = 1
    assert list(rows) == [name for name, _ in prunable_layers(model)]
    for name, m in prunable_layers(model):
        nonzero = int((effective_weight(m) != 0).sum())
        assert rows[name]["flops_nonzero"] == nonzero * positions[name], name
        assert rows[name]["flops_dense"] == m.weight.numel() * positions[name], name


def test_count_flops_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).train()
    before = copy.deepcopy(model.state_dict())
    count_flops(model, torch.randn(2, 3, 16, 16))
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_unstructured_report() -> None:
    original = digits_cnn()
    pruned = copy.deepcopy(original)
    create_method("global_magnitude", sparsity=0.8).apply(pruned)
    report = compression_report(original, pruned, torch.randn(4, 1, 8, 8), repeats=2)
    json.dumps(report)

    params_dense = sum(p.numel() for p in original.parameters())
    nonzero = sum(int((p != 0).sum()) for p in original.parameters()) - sum(
        int((m.weight_mask == 0).sum()) for _, m in prunable_layers(pruned)
    )
    assert report["params_dense"] == report["params"] == params_dense
    assert report["nonzero"] == nonzero
    assert report["compression_ratio"] == pytest.approx(params_dense / nonzero)
    assert report["theoretical_speedup"] == pytest.approx(
        report["flops_dense"] / report["flops_nonzero"]
    )
    assert report["flops_dense"] == sum(
        r["flops_dense"] for r in count_flops(original, torch.randn(1, 1, 8, 8))
    )
    assert report["theoretical_speedup"] > 1
    assert report["sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert [layer["name"] for layer in report["layers"]] == [n for n, _ in prunable_layers(pruned)]
    assert all(c["removed_fraction"] == 0 for c in report["channels"])
    assert report["note"].startswith("Unstructured sparsity")
    assert report["latency_ms_dense"] > 0 and report["latency_ms_pruned"] > 0
    assert report["measured_speedup"] == pytest.approx(
        report["latency_ms_dense"] / report["latency_ms_pruned"]
    )


def test_dense_against_itself() -> None:
    model = digits_cnn()
    report = compression_report(model, model, torch.randn(2, 1, 8, 8), repeats=1)
    assert report["compression_ratio"] == 1.0 and report["theoretical_speedup"] == 1.0
    assert "no pruned weights" in report["note"]


def test_structured_resnet20_theoretical_speedup() -> None:
    torch.manual_seed(0)
    original = create_model("resnet20", num_classes=10).eval()
    x = torch.randn(2, 3, 16, 16)
    pruned = prune_filters(copy.deepcopy(original), 0.5, x)
    report = compression_report(original, pruned, x, repeats=1)
    json.dumps(report)
    assert report["theoretical_speedup"] > 1.5
    assert report["params"] < report["params_dense"]
    assert report["compression_ratio"] == pytest.approx(report["params_dense"] / report["nonzero"])
    assert report["note"].startswith("Structured pruning removed channels")
    removed = {c["name"]: c["removed_fraction"] for c in report["channels"]}
    assert removed["classifier"] == 0
    assert all(f == 0.5 for name, f in removed.items() if name != "classifier")
    assert report["sparsity"] > 0.5  # channels go on both sides of a weight


def test_bad_arguments_raise() -> None:
    model = digits_cnn()
    with pytest.raises(ValueError, match="repeats=0"):
        compression_report(model, model, torch.randn(1, 1, 8, 8), repeats=0)
    with pytest.raises(ValueError, match="example_input="):
        compression_report(model, model, [1, 2], repeats=1)  # type: ignore[arg-type]
    assert all(
        math.isfinite(t) for t in measure_latency_ms([model], torch.randn(1, 1, 8, 8), repeats=1)
    )
