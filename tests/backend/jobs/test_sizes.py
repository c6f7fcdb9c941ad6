"""The built-ins' parameter counts computed without torch (backend.jobs.sizes), which an upload
checks against PRUNESCOPE_MAX_PARAMS, equal the real models' and are filled as the job fills
its arguments."""

from __future__ import annotations

from typing import Any

import pytest

import models  # noqa: F401  (registers the built-ins)
from backend.jobs.sizes import BUILTIN_PARAMETERS, builtin_parameters, fill_builtin
from models.registry import count_parameters, create, fill_kwargs, list_models, source_of

CASES: list[tuple[str, dict[str, Any]]] = [
    ("mlp", {"input_shape": [1, 8, 8], "num_classes": 10}),
    ("mlp", {"input_shape": [3, 32, 32], "num_classes": 100, "hidden": [512, 256, 128]}),
    ("mlp", {"input_shape": [20], "num_classes": 3, "hidden": []}),
    ("digits_cnn", {}),
    ("digits_cnn", {"num_classes": 47, "in_channels": 3}),
    ("resnet20", {}),
    ("resnet20", {"num_classes": 100, "in_channels": 1}),
]


def test_every_builtin_has_a_count() -> None:
    builtins = [n for n in list_models() if source_of(n) == "builtin" and n != "onnx"]
    assert sorted(BUILTIN_PARAMETERS) == sorted(builtins)


@pytest.mark.parametrize(
    ("name", "kwargs"), CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)]
)
def test_the_count_is_the_real_models(name: str, kwargs: dict[str, Any]) -> None:
    assert builtin_parameters(name, kwargs) == count_parameters(create(name, **kwargs))


@pytest.mark.parametrize("shape", [[1, 8, 8], [3, 32, 32], [12]])
@pytest.mark.parametrize("name", sorted(BUILTIN_PARAMETERS))
def test_filled_from_a_dataset_as_the_job_fills(name: str, shape: list[int]) -> None:
    given = {"num_classes": 4} if name != "mlp" else {"hidden": [8]}
    assert fill_builtin(name, given, shape, 6) == fill_kwargs(name, given, shape, 6)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("timm/resnet18", {}),  # not a built-in: its job counts it on the meta device
        ("mlp", {"num_classes": 3}),  # input_shape missing
        ("mlp", {"input_shape": [4], "num_classes": 3, "hidden": [1.5]}),
        ("digits_cnn", {"num_classes": True}),
        ("resnet20", {"depth": 56}),
    ],
)
def test_what_would_not_build_is_left_to_the_job(name: str, kwargs: dict[str, Any]) -> None:
    assert builtin_parameters(name, kwargs) is None


def test_an_absurd_mlp_is_counted_exactly() -> None:
    kwargs = {"input_shape": [1, 8, 8], "num_classes": 10, "hidden": [10**9, 10**9]}
    assert (
        builtin_parameters("mlp", kwargs)
        == (64 + 1) * 10**9 + (10**9 + 1) * 10**9 + (10**9 + 1) * 10
    )
