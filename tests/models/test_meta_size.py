"""Parameters counted on the meta device (models.registry.create_meta / check_size): the same
number as the real model, nothing allocated, and a network over a limit refused by name."""

from __future__ import annotations

from typing import Any

import psutil
import pytest
import torch
from safetensors.torch import save_file

import models  # noqa: F401  (registers the built-ins)
from models.checkpoint import save_checkpoint
from models.importer import CheckpointError, read_checkpoint
from models.registry import (
    TooManyParameters,
    check_size,
    count_parameters,
    create,
    create_meta,
)

ABSURD_MLP = {"input_shape": [1, 8, 8], "num_classes": 10, "hidden": [10**9, 10**9]}
GIB = 2**30

CASES: list[tuple[str, dict[str, Any]]] = [
    ("mlp", {"input_shape": [3, 4, 4], "num_classes": 5, "hidden": [32, 16]}),
    ("mlp", {"input_shape": [7], "num_classes": 2, "hidden": []}),
    ("digits_cnn", {"num_classes": 10, "in_channels": 1}),
    ("resnet20", {"num_classes": 100, "in_channels": 3}),
    ("torchvision/resnet18", {"num_classes": 10}),
    ("torchvision/mobilenet_v3_small", {"num_classes": 7}),
    # its constructor computes its widths with torch: the small-tensors-in-memory fallback
    ("torchvision/regnet_x_400mf", {"num_classes": 10}),
    ("timm/resnet18", {"num_classes": 10, "in_chans": 3}),
]


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_the_count_on_meta_is_the_real_models(name: str, kwargs: dict[str, Any]) -> None:
    meta = create_meta(name, **kwargs)
    assert meta is not None
    assert {p.device.type for p in meta.parameters()} == {"meta"}
    assert {b.device.type for b in meta.buffers()} <= {"meta"}
    real = create(name, **kwargs)
    assert count_parameters(meta) == sum(p.numel() for p in real.parameters())
    # the shapes agree parameter by parameter, not just in total
    assert [(n, p.shape) for n, p in meta.named_parameters()] == [
        (n, p.shape) for n, p in real.named_parameters()
    ]


def test_a_sample_goes_through_the_meta_model() -> None:
    meta = create_meta("resnet20", num_classes=10, in_channels=3)
    assert meta is not None
    out = meta.eval()(torch.zeros(2, 3, 32, 32, device="meta"))
    assert out.device.type == "meta" and tuple(out.shape) == (2, 10)


def test_an_absurd_mlp_is_refused_by_count_and_limit_without_memory() -> None:
    before = rss()
    with pytest.raises(TooManyParameters) as caught:
        check_size("mlp", ABSURD_MLP, 500_000_000)
    assert rss() - before < GIB // 4  # the 4 EB the real model would take were never asked for
    message = str(caught.value)
    count = 64 * 10**9 + 10**9 + 10**18 + 10**9 + 10**10 + 10
    assert caught.value.count == count
    assert f"{count:,} parameters" in message and "the limit is 500,000,000" in message
    assert "PRUNESCOPE_MAX_PARAMS" in message


def test_a_layer_too_large_to_describe_is_refused_too() -> None:
    kwargs = {**ABSURD_MLP, "hidden": [10**10, 10**10]}  # 10**20 elements overflow int64
    with pytest.raises(TooManyParameters, match="more parameters than a tensor can hold"):
        check_size("mlp", kwargs, 500_000_000)


def test_within_the_limit_the_meta_model_comes_back() -> None:
    kwargs = {"num_classes": 10, "in_channels": 1}
    meta = check_size("digits_cnn", kwargs, 10**6)
    assert meta is not None and count_parameters(meta) == count_parameters(create("digits_cnn"))
    with pytest.raises(TooManyParameters, match="the limit is 1,000 parameters"):
        check_size("digits_cnn", kwargs, 1000)


def test_bad_arguments_are_the_factorys_error() -> None:
    with pytest.raises(ValueError, match="hidden=0 should be a positive integer"):
        create_meta("mlp", input_shape=[4], num_classes=2, hidden=[0])
    with pytest.raises(ValueError, match="invalid arguments"):
        create_meta("torchvision/resnet18", no_such_argument=1)


def test_an_import_counts_its_architecture_before_building_it(tmp_path) -> None:
    """A small PruneScope file whose metadata (or the upload's arguments) asks for an absurd
    network: refused by count before the model is built."""
    path = tmp_path / "small.safetensors"
    small = {"input_shape": [1, 8, 8], "num_classes": 10, "hidden": [4]}
    save_checkpoint(create("mlp", **small), "mlp", small, path)
    before = rss()
    with pytest.raises(CheckpointError, match=r"has [\d,]+ parameters; the limit is 1,000,000"):
        read_checkpoint(path, None, {"hidden": [10**9, 10**9]}, max_params=1_000_000)
    assert rss() - before < GIB // 4
    # within the limit it imports as before
    imported = read_checkpoint(path, None, max_params=1_000_000)
    assert imported.n_params == count_parameters(create("mlp", **small))


def test_an_import_of_a_library_architecture_is_counted_too(tmp_path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match="torchvision/resnet18 with these arguments has"):
        read_checkpoint(path, "torchvision/resnet18", {"num_classes": 10**7}, max_params=10**8)
