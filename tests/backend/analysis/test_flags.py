"""Flagged samples (SCIENCE.md sect. 3) on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from backend.analysis.flags import (
    corruption_fragile,
    geometry_shift_table,
    largest_shifts,
    made_fragile_by_pruning,
    modal_labels,
    pruning_identified_exemplars,
)
from backend.analysis.geometry import SampleGeometry
from backend.analysis.metrics import flip_categories


def test_modal_labels_with_ties() -> None:
    preds = np.array(
        [  # 4 models (rows) x 5 samples (columns)
            [1, 2, 0, 3, 7],
            [1, 2, 0, 0, 5],
            [1, 4, 2, 3, 5],
            [0, 4, 2, 0, 6],
        ]
    )
    # sample 0: 1 (x3); 1: tie 2/4 -> 2; 2: tie 0/2 -> 0; 3: tie 0/3 -> 0; 4: 5 (x2)
    np.testing.assert_array_equal(modal_labels(preds), [1, 2, 0, 0, 5])
    # the tie rule does not depend on the order of the models
    np.testing.assert_array_equal(modal_labels(preds[::-1]), [1, 2, 0, 0, 5])
    np.testing.assert_array_equal(modal_labels(np.array([3, 1, 4])), [3, 1, 4])


def test_pruning_identified_exemplars() -> None:
    dense = np.array([[1, 2, 0, 3, 7], [1, 2, 0, 0, 5], [1, 4, 2, 3, 5]])  # modes 1, 2, 0, 3, 5
    sparse = np.array(
        [  # modes: 1 (same), 4 (differs), tie 0/2 -> 0 (same), 0 (differs), tie 5/6 -> 5 (same)
            [1, 4, 2, 0, 6],
            [0, 4, 0, 0, 5],
            [1, 2, 2, 3, 9],
            [1, 4, 0, 0, 6],
            [3, 3, 1, 3, 5],
        ]
    )
    np.testing.assert_array_equal(
        pruning_identified_exemplars(dense, sparse), [False, True, False, True, False]
    )
    with pytest.raises(ValueError, match="samples"):
        pruning_identified_exemplars(dense, sparse[:, :4])


def test_one_model_per_side_is_a_prediction_flip() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred_a = np.where(rng.random(300) < 0.7, y, rng.integers(0, 5, 300))
    pred_b = np.where(rng.random(300) < 0.7, pred_a, rng.integers(0, 5, 300))
    pie = pruning_identified_exemplars(pred_a[None, :], pred_b[None, :])
    np.testing.assert_array_equal(pie, pred_a != pred_b)
    np.testing.assert_array_equal(pie, flip_categories(y, pred_a, pred_b) != "")
    np.testing.assert_array_equal(pruning_identified_exemplars(pred_a, pred_b), pie)


def test_fragile_truth_table() -> None:
    clean = np.array([True, True, False, False])
    corrupt = np.array([True, False, True, False])
    np.testing.assert_array_equal(corruption_fragile(clean, corrupt), [False, True, False, False])
    as_ints = corruption_fragile(clean.astype(int), corrupt.astype(int))
    np.testing.assert_array_equal(as_ints, [False, True, False, False])
    frag_a = np.array([True, True, False, False])
    frag_b = np.array([True, False, True, False])
    np.testing.assert_array_equal(
        made_fragile_by_pruning(frag_a, frag_b), [False, False, True, False]
    )
    with pytest.raises(ValueError, match="boolean"):
        corruption_fragile(np.array([2, 0]), np.array([1, 0]))
    with pytest.raises(ValueError, match="differ in shape"):
        made_fragile_by_pruning(frag_a, frag_b[:3])


def geometry_of(margin: np.ndarray, angle: np.ndarray, length_z: np.ndarray) -> SampleGeometry:
    n = len(margin)
    return SampleGeometry(
        angle_true=angle,
        angle_pred=angle,
        length=np.ones(n),
        length_z=length_z,
        margin=margin,
        angular_margin=margin,
        angles=np.zeros((n, 3)),
    )


def test_largest_shifts_brute_force() -> None:
    rng = np.random.default_rng(1)
    n = 40
    a = geometry_of(rng.normal(size=n), rng.uniform(0, 180, n), rng.normal(size=n))
    b = geometry_of(rng.normal(size=n), rng.uniform(0, 180, n), rng.normal(size=n))
    # ties in |change| (including opposite signs) keep the sample order
    b.margin[[5, 9, 2]] = a.margin[[5, 9, 2]] + np.array([10.0, 10.0, -10.0])
    for metric in ("margin", "angle_true", "length_z"):
        change = getattr(b, metric) - getattr(a, metric)
        brute = sorted(range(n), key=lambda i: (-abs(change[i]), i))
        for k in (0, 1, 7, n, n + 5):
            got = largest_shifts(a, b, metric, k)  # type: ignore[arg-type]
            assert got.dtype == np.int64
            assert list(got) == brute[:k]
    assert list(largest_shifts(a, b, "margin", 3)) == [2, 5, 9]
    with pytest.raises(ValueError, match="metric='length'"):
        largest_shifts(a, b, "length", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k=-1"):
        largest_shifts(a, b, "margin", -1)


def test_largest_shifts_nan_last() -> None:
    a = geometry_of(np.zeros(4), np.array([10.0, np.nan, 20.0, 30.0]), np.zeros(4))
    b = geometry_of(np.zeros(4), np.array([11.0, 50.0, 40.0, 30.0]), np.zeros(4))
    assert list(largest_shifts(a, b, "angle_true", 4)) == [2, 0, 3, 1]


def test_geometry_shift_table() -> None:
    a = geometry_of(np.array([1.0, -1.0]), np.array([30.0, 60.0]), np.array([0.5, -0.5]))
    b = geometry_of(np.array([-0.5, 2.0]), np.array([45.0, 40.0]), np.array([1.5, -1.0]))
    table = geometry_shift_table(a, b)
    assert set(table) == {"d_margin", "d_angle", "d_length_z"}
    np.testing.assert_allclose(table["d_margin"], [-1.5, 3.0])
    np.testing.assert_allclose(table["d_angle"], [15.0, -20.0])
    np.testing.assert_allclose(table["d_length_z"], [1.0, -0.5])
    with pytest.raises(ValueError, match="samples"):
        geometry_shift_table(a, geometry_of(np.zeros(3), np.zeros(3), np.zeros(3)))
