"""Architectures nobody here wrote: timm and torchvision models resolved by name.

Parametrised over a fixed sample of each library (every one of timm's ~1,300 models would take
hours on a CPU); the registry-wide properties (search, names, refusals) are checked over all of
them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import timm
import torch
import torchvision
from torch import nn

from backend.analysis.features import extract_features
from backend.analysis.linear_regions import UnsupportedModuleError, check_supported
from backend.pruning.masks import layer_scope, prunable_layers
from models.heads import find_classifier
from models.registry import (
    UnknownNameError,
    create,
    fill_kwargs,
    is_known,
    list_models,
    model_info,
    search,
    source_of,
)

NUM_CLASSES = 7
SHAPE = [3, 32, 32]

# name -> (classifier's qualified name as the library names it, extra kwargs)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "timm/resnet18": ("fc", {}),
    "timm/vit_tiny_patch16_224": ("head", {"patch_size": 4}),
    "timm/convnext_atto": ("head.fc", {}),
    "timm/mobilenetv2_050": ("classifier", {}),
    "torchvision/resnet18": ("fc", {}),
    "torchvision/mobilenet_v2": ("classifier.1", {}),
    "torchvision/vgg11_bn": ("classifier.6", {}),
}


def build(name: str) -> nn.Module:
    kwargs = fill_kwargs(name, CASES[name][1], SHAPE, NUM_CLASSES)
    # kwargs travel as JSON in checkpoints and rows
    return create(name, **json.loads(json.dumps(kwargs))).eval()


@pytest.mark.parametrize("name", sorted(CASES))
def test_classifier_is_the_layer_that_produces_the_logits(name: str) -> None:
    model = build(name)
    layer, classifier = find_classifier(model)
    assert layer == CASES[name][0]
    assert classifier.out_features == NUM_CLASSES
    seen: dict[str, torch.Tensor] = {}
    handle = classifier.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    assert logits.shape == (3, NUM_CLASSES)
    # nothing is applied after the classifier: its output is the logits
    torch.testing.assert_close(seen["out"], logits)
    # and the feature extractor reads the same logits and the classifier's input
    out = extract_features(model, x)
    np_logits = logits.numpy()
    assert out.features.shape == (3, classifier.in_features)
    assert abs(out.logits - np_logits).max() < 1e-5
    assert abs(out.features @ out.weight.T + out.bias - np_logits).max() < 1e-4


@pytest.mark.parametrize("name", sorted(CASES))
def test_info_and_source(name: str) -> None:
    info = model_info(name)
    assert info["name"] == name and info["doc"]
    assert info["source"] == name.split("/")[0] == source_of(name)
    json.dumps(info)


def test_library_models_are_freshly_initialised_not_downloaded() -> None:
    a, b = create("timm/resnet18", num_classes=3), create("timm/resnet18", num_classes=3)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set when the registry is imported
    # two fresh initialisations differ; pretrained weights would be equal
    assert not torch.equal(a.conv1.weight, b.conv1.weight)


@pytest.mark.parametrize(
    "kwargs",
    [{"pretrained": True}, {"pretrained": False}, {"checkpoint_path": "/etc/passwd"}],
)
def test_download_arguments_are_refused_for_timm(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="never downloads weights"):
        create("timm/resnet18", **kwargs)


def test_download_arguments_are_refused_for_torchvision() -> None:
    with pytest.raises(ValueError, match="weights='DEFAULT' refused"):
        create("torchvision/resnet18", weights="DEFAULT")


def test_unknown_library_names_suggest_close_matches() -> None:
    with pytest.raises(UnknownNameError) as excinfo:
        create("timm/resnet_18")
    assert "timm has no model 'resnet_18'" in str(excinfo.value)
    assert "timm/resnet18" in str(excinfo.value)
    assert not is_known("timm/resnet_18") and not is_known("torchvision/nope")
    assert is_known("timm/resnet18") and is_known("torchvision/resnet18")


def test_bad_library_kwargs_are_a_value_error_naming_the_model() -> None:
    with pytest.raises(ValueError, match="torchvision/resnet18"):
        create("torchvision/resnet18", no_such_argument=1)


def test_search_covers_every_library_model_builtins_first() -> None:
    names, total = search("", limit=100_000)
    assert total == len(names)
    builtins = [n for n in list_models() if n != "onnx"]
    assert names[: len(builtins)] == builtins
    assert set(names) >= {f"timm/{n}" for n in timm.list_models()}
    classification = torchvision.models.list_models(module=torchvision.models)
    assert set(names) >= {f"torchvision/{n}" for n in classification}
    # detection / segmentation models are not classifiers
    assert "torchvision/fasterrcnn_resnet50_fpn" not in names


def test_search_filters_by_every_word_and_pages() -> None:
    names, total = search("ResNet 18")
    assert "timm/resnet18" in names and "torchvision/resnet18" in names
    assert all("resnet" in n.lower() and "18" in n for n in names)
    brute = [n for n in search("", limit=100_000)[0] if "resnet" in n.lower() and "18" in n]
    assert total == len(brute)
    first, _ = search("resnet", limit=5)
    second, _ = search("resnet", limit=5, offset=5)
    assert len(first) == 5 and not set(first) & set(second)
    assert first + second == search("resnet", limit=10)[0]


def test_fill_kwargs_from_the_dataset_keeps_the_users_values() -> None:
    assert fill_kwargs("timm/resnet18", {}, [1, 28, 28], 10) == {"num_classes": 10, "in_chans": 1}
    vit = fill_kwargs("timm/vit_tiny_patch16_224", {"patch_size": 4}, SHAPE, 10)
    assert vit == {"patch_size": 4, "num_classes": 10, "in_chans": 3, "img_size": 32}
    assert fill_kwargs("timm/resnet18", {"num_classes": 5}, SHAPE, 10)["num_classes"] == 5
    assert fill_kwargs("torchvision/vit_b_16", {}, SHAPE, 10)["image_size"] == 32
    assert fill_kwargs("digits_cnn", {}, [1, 8, 8], 10) == {"num_classes": 10, "in_channels": 1}


def test_prunable_layers_include_attention_projections_and_respect_patterns() -> None:
    vit = build("timm/vit_tiny_patch16_224")
    names = [n for n, _ in prunable_layers(vit)]
    assert "blocks.0.attn.qkv" in names and "blocks.0.attn.proj" in names
    assert "patch_embed.proj" in names and "head" in names
    assert "head" not in [n for n, _ in prunable_layers(vit, include_classifier=False)]
    brute = [
        n for n, m in vit.named_modules() if isinstance(m, nn.Conv2d | nn.Linear) and n != "head"
    ]
    assert [n for n, _ in prunable_layers(vit, include_classifier=False)] == brute
    with layer_scope(include=["blocks.*"], exclude=["*.attn.qkv"]):
        scoped = [n for n, _ in prunable_layers(vit)]
        assert scoped and all(n.startswith("blocks.") for n in scoped)
        assert not any(n.endswith("attn.qkv") for n in scoped)
        # reports describe every layer, whatever the scope
        assert len(prunable_layers(vit, scoped=False)) == len(names)
    assert [n for n, _ in prunable_layers(vit)] == names  # the scope ended


def test_conv1d_and_conv3d_are_prunable() -> None:
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Conv3d(1, 2, 3), nn.Linear(4, 2))
    assert [type(m) for _, m in prunable_layers(model)] == [nn.Conv1d, nn.Conv3d, nn.Linear]


def test_regions_refuse_a_vit_with_a_sentence() -> None:
    with pytest.raises(UnsupportedModuleError, match="not piecewise linear") as excinfo:
        check_supported(build("timm/vit_tiny_patch16_224"))
    assert "GELU" in str(excinfo.value)


@pytest.mark.parametrize(
    "name", ["timm/resnet18", "torchvision/mobilenet_v2", "torchvision/vgg11_bn"]
)
def test_filter_pruning_shrinks_library_networks_that_still_run(name: str) -> None:
    from backend.pruning.structured import prune_filters, structured_unsupported

    model = build(name)
    assert structured_unsupported(model) is None
    before = sum(p.numel() for p in model.parameters())
    convs_before = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    x = torch.randn(2, *SHAPE)
    prune_filters(model, 0.5, x)
    with torch.no_grad():
        assert model(x).shape == (2, NUM_CLASSES)
    assert sum(p.numel() for p in model.parameters()) < 0.5 * before
    convs_after = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    shrunk = [n for n in convs_before if convs_after[n] < convs_before[n]]
    assert len(shrunk) >= len(convs_before) // 2
    assert find_classifier(model)[1].out_features == NUM_CLASSES  # the classifier keeps its outputs


def test_filter_pruning_refuses_attention_with_a_sentence() -> None:
    from backend.pruning.structured import prune_filters, structured_unsupported

    vit = build("timm/vit_tiny_patch16_224")
    reason = structured_unsupported(vit)
    assert reason is not None and "attention" in reason and "blocks.0.attn" in reason
    with pytest.raises(ValueError, match="attention layers"):
        prune_filters(vit, 0.5, torch.randn(2, *SHAPE))
