"""Recall-distortion labels (issue 18.4b): class names next to their points never collide."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from frontend.figures.geometry import LABEL_POSITIONS, balance_scatter, label_boxes

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _shown_boxes(fig: Any) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(name, box in plot pixels) of every label the figure writes next to its point."""
    classes = fig.data[0]
    n = len(classes.x)
    positions = classes.textposition
    positions = [positions] * n if isinstance(positions, str) else list(positions)
    templates = classes.texttemplate
    templates = [templates] * n if isinstance(templates, str) else list(templates)
    boxes = label_boxes(
        list(classes.x),
        list(classes.y),
        list(classes.text),
        positions,
        fig.layout.xaxis.range,
        fig.layout.yaxis.range,
        list(classes.marker.size),
    )
    return [(t, b) for t, b, tt in zip(classes.text, boxes, templates, strict=True) if tt]


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _assert_no_collision(fig: Any) -> None:
    shown = _shown_boxes(fig)
    for (na, a), (nb, b) in itertools.combinations(shown, 2):
        assert not _overlap(a, b), f"labels {na!r} and {nb!r} overlap: {a} {b}"


def test_two_close_points_get_labels_on_different_sides() -> None:
    # classes 3 (cat) and 5 (dog) sit almost on top of each other, as on the demo data
    bn_a = [0.10, -0.20, 0.05, -0.08, 0.07, -0.075, 0.02, 0.04, 0.12, 0.09]
    bn_b = [0.16, -0.25, 0.09, -0.12, 0.06, -0.115, 0.01, 0.05, 0.15, 0.11]
    fig = balance_scatter(CIFAR, bn_a, bn_b, 1.2)
    classes = fig.data[0]
    positions = list(classes.textposition)
    assert set(positions) <= set(LABEL_POSITIONS)
    assert positions[3] != positions[5]
    _assert_no_collision(fig)
    assert all(classes.texttemplate)  # room for every label here: none hidden
    assert list(classes.text) == CIFAR  # names unchanged, hover still reads them


def test_identical_points_do_not_share_a_label_box() -> None:
    fig = balance_scatter(CIFAR[:3], [0.1, 0.1, -0.1], [0.2, 0.2, -0.1], 1.5)
    _assert_no_collision(fig)
    shown = [name for name, _box in _shown_boxes(fig)]
    assert "airplane" in shown and "bird" in shown


@pytest.mark.parametrize("seed", range(5))
def test_a_crowded_cloud_has_no_overlapping_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = [f"class {i}" for i in range(20)]
    bn_a = rng.normal(0, 0.05, size=20).tolist()
    bn_b = (np.asarray(bn_a) * 1.3 + rng.normal(0, 0.01, size=20)).tolist()
    fig = balance_scatter(names, bn_a, bn_b, 1.3)
    _assert_no_collision(fig)
    # a label that has no free place is left to the hover, never drawn over another
    hidden = [t for t in fig.data[0].texttemplate if not t]
    assert len(hidden) < len(names)


def test_the_selected_class_keeps_its_label() -> None:
    bn_a = [0.1, 0.1001, 0.1002, 0.1003]
    bn_b = [0.2, 0.2001, 0.2002, 0.2003]
    for selected in range(4):
        fig = balance_scatter(CIFAR[:4], bn_a, bn_b, 1.5, selected_class=selected)
        assert fig.data[0].texttemplate[selected]
        _assert_no_collision(fig)


def test_far_apart_points_keep_the_label_above() -> None:
    fig = balance_scatter(CIFAR[:3], [-0.3, 0.0, 0.3], [-0.3, 0.0, 0.3], 1.0)
    assert list(fig.data[0].textposition) == ["top center"] * 3
