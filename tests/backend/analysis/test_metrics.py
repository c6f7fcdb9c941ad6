"""Metrics against scikit-learn's independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax
from sklearn import metrics as skm

from backend.analysis.metrics import (
    confusion_matrix,
    flip_categories,
    flip_counts,
    softmax,
    summarize,
)


@pytest.fixture(params=[0, 1, 2])
def labels(request):
    rng = np.random.default_rng(request.param)
    c = 7
    y = rng.integers(0, c, 500)
    pred = np.where(rng.random(500) < 0.7, y, rng.integers(0, c, 500))
    return y, pred, c


def test_confusion_matrix_matches_sklearn(labels):
    y, pred, c = labels
    np.testing.assert_array_equal(
        confusion_matrix(y, pred, c), skm.confusion_matrix(y, pred, labels=range(c))
    )


def test_summary_matches_sklearn(labels):
    y, pred, c = labels
    s = summarize(y, pred, c)
    assert s.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    np.testing.assert_allclose(s.recall, skm.recall_score(y, pred, average=None, labels=range(c)))
    np.testing.assert_allclose(
        s.precision, skm.precision_score(y, pred, average=None, labels=range(c), zero_division=0)
    )
    np.testing.assert_array_equal(s.support, np.bincount(y, minlength=c))


def test_empty_class_gives_nan_not_zero():
    s = summarize(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert np.isnan(s.recall[2]) and np.isnan(s.precision[2])
    assert s.to_json()["recall"][2] is None


def test_softmax_matches_scipy():
    z = np.random.default_rng(0).normal(0, 30, (50, 10))
    np.testing.assert_allclose(softmax(z), scipy_softmax(z, axis=1), rtol=1e-12)


def test_flip_categories_by_brute_force(labels):
    y, pred_a, c = labels
    rng = np.random.default_rng(9)
    pred_b = np.where(rng.random(len(y)) < 0.8, pred_a, rng.integers(0, c, len(y)))
    cats = flip_categories(y, pred_a, pred_b)
    for i in range(len(y)):
        a_ok, b_ok = pred_a[i] == y[i], pred_b[i] == y[i]
        if a_ok and not b_ok:
            want = "correct_to_wrong"
        elif b_ok and not a_ok:
            want = "wrong_to_correct"
        elif not a_ok and not b_ok and pred_a[i] != pred_b[i]:
            want = "wrong_to_other_wrong"
        else:
            want = ""
        assert cats[i] == want
    counts = flip_counts(cats)
    # accuracy change equals (wrong->correct) - (correct->wrong)
    delta = (pred_b == y).sum() - (pred_a == y).sum()
    assert counts["wrong_to_correct"] - counts["correct_to_wrong"] == delta


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)
    with pytest.raises(ValueError, match="y_pred has labels outside"):
        confusion_matrix(np.array([0, 1]), np.array([0, 5]), 2)
    with pytest.raises(ValueError, match="should be 1-D"):
        flip_categories(np.zeros((2, 2)), np.zeros(2), np.zeros(2))
