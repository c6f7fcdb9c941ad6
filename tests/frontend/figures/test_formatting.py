"""Headline number formatting."""

from __future__ import annotations

import math

import pytest

from frontend.figures import (
    format_count,
    format_delta_pp,
    format_percent,
    format_ratio,
    model_label,
)
from frontend.figures.formatting import MISSING


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.9123, "91.2%"), (0.0, "0.0%"), (1.0, "100.0%"), (None, MISSING), (math.nan, MISSING)],
)
def test_format_percent(value: float | None, expected: str) -> None:
    assert format_percent(value) == expected


def test_format_delta_pp_is_signed() -> None:
    assert format_delta_pp(0.91, 0.9) == "-1.0 pp"
    assert format_delta_pp(0.5, 0.5) == "+0.0 pp"
    assert format_delta_pp(None, 0.5) == MISSING


@pytest.mark.parametrize(
    ("value", "expected"),
    [(10.0, "10.0×"), (1, "1.0×"), (None, MISSING), (math.inf, MISSING)],
)
def test_format_ratio(value: float | None, expected: str) -> None:
    assert format_ratio(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(950, "950"), (12_345, "12.35k"), (11_173_962, "11.17M"), (2_500_000_000, "2.50G")],
)
def test_format_count(value: int, expected: str) -> None:
    assert format_count(value) == expected
    assert format_count(None) == MISSING


def test_model_label_names_method_and_sparsity_of_pruned_models() -> None:
    assert model_label({"id": 3, "pruning_method": "global_magnitude", "sparsity": 0.9}) == (
        "global_magnitude 90%"
    )
    assert model_label({"id": 3, "pruning_method": "lamp", "sparsity": 0.975}) == "lamp 97.5%"
    assert model_label({"id": 1, "name": "resnet8", "pruning_method": None}) == "resnet8"
    assert model_label({"id": 1}) == "model 1"
