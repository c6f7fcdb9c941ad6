"""Recall distortion (SCIENCE.md sect. 2, Good et al. NeurIPS 2022) against hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from backend.analysis.recall import (
    alpha_summary,
    compression_ratio,
    consecutive_ratio_tests,
    intensification_ratios,
    model_intensification,
    normalized_balance,
    pruning_ratio,
    recall_distortion,
)


def test_worked_check() -> None:
    # A = .8, R^X = .9, R^Y = .7 -> A_t = .6, R^X_t = .7, R^Y_t = .5 gives I^X = I^Y = 4/3.
    rd = recall_distortion(np.array([0.9, 0.7]), 0.8, np.array([0.7, 0.5]), 0.6, 0.5)
    np.testing.assert_allclose(rd.bn_a, [0.125, -0.125])
    np.testing.assert_allclose(rd.bn_b, [1 / 6, -1 / 6])
    np.testing.assert_allclose(rd.ratios, [4 / 3, 4 / 3])
    assert rd.alpha == pytest.approx(4 / 3)
    assert rd.t == pytest.approx(2.0)


def recall_and_accuracy(cm: list[list[int]]) -> tuple[list[float], float]:
    recall = [row[i] / sum(row) for i, row in enumerate(cm)]
    accuracy = sum(cm[i][i] for i in range(len(cm))) / sum(sum(row) for row in cm)
    return recall, accuracy


def test_alpha_from_confusion_matrices() -> None:
    before = [[45, 3, 2], [5, 40, 5], [4, 6, 30]]  # rows true, columns predicted
    after = [[47, 2, 1], [8, 35, 7], [9, 8, 23]]
    r, a = recall_and_accuracy(before)
    rt, at = recall_and_accuracy(after)
    bn = [(rc - a) / a for rc in r]
    bnt = [(rc - at) / at for rc in rt]
    alpha = sum(p * q for p, q in zip(bn, bnt, strict=True)) / sum(p * p for p in bn)
    rd = recall_distortion(np.array(r), a, np.array(rt), at, sparsity_b=0.9)
    np.testing.assert_allclose(rd.bn_a, bn)
    np.testing.assert_allclose(rd.bn_b, bnt)
    np.testing.assert_allclose(rd.ratios, [q / p for p, q in zip(bn, bnt, strict=True)])
    assert rd.alpha == pytest.approx(alpha)
    assert rd.alpha > 1  # the majority-like class 0 gained, the weak class 2 lost more
    assert rd.t == pytest.approx(10.0)
    payload = rd.to_json()
    json.dumps(payload, allow_nan=False)
    assert payload["alpha"] == pytest.approx(alpha) and payload["sparsity"] == 0.9


def test_alpha_of_identical_balances_is_one() -> None:
    bn = np.array([0.2, -0.1, 0.05, -0.15])
    assert model_intensification(bn, bn) == pytest.approx(1.0)
    assert model_intensification(bn, 2 * bn) == pytest.approx(2.0)
    assert math.isnan(model_intensification(np.zeros(3), np.ones(3)))
    # empty classes (NaN recall) are left out
    assert model_intensification(np.append(bn, np.nan), np.append(bn, 0.3)) == pytest.approx(1.0)


def test_ratios_nan_where_balance_is_zero() -> None:
    ratios = intensification_ratios(np.array([0.0, 0.5, -0.25]), np.array([0.1, 0.25, -0.5]))
    assert math.isnan(ratios[0])
    np.testing.assert_allclose(ratios[1:], [0.5, 2.0])


def test_normalized_balance() -> None:
    np.testing.assert_allclose(normalized_balance(np.array([1.0, 0.5]), 0.75), [1 / 3, -1 / 3])
    assert np.all(np.isnan(normalized_balance(np.array([0.0, 0.0]), 0.0)))
    with pytest.raises(ValueError, match="accuracy=1.5"):
        normalized_balance(np.array([0.5]), 1.5)


def test_pruning_ratio() -> None:
    assert pruning_ratio(0.0) == 1.0
    assert pruning_ratio(0.9) == pytest.approx(10.0)
    assert pruning_ratio(0.98) == pytest.approx(50.0)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match=f"sparsity={bad}"):
            pruning_ratio(bad)
    rd = recall_distortion(np.array([0.5]), 0.5, np.array([0.5]), 0.5, 0.9, sparsity_a=0.5)
    assert rd.t == pytest.approx(5.0)  # 50% of the weights left -> 10%


def test_alpha_summary_ci() -> None:
    alphas = np.array([1.02, 1.10, 0.97, 1.25, 1.08])
    n = len(alphas)
    mean = sum(alphas) / n
    s = math.sqrt(sum((a - mean) ** 2 for a in alphas) / (n - 1))
    t975_4 = 2.7764451051977987  # t quantile 0.975 with 4 degrees of freedom (tables)
    got = alpha_summary(alphas)
    assert got["n"] == 5
    assert got["mean"] == pytest.approx(mean)
    assert got["std"] == pytest.approx(s)
    assert got["ci_low"] == pytest.approx(mean - t975_4 * s / math.sqrt(n))
    assert got["ci_high"] == pytest.approx(mean + t975_4 * s / math.sqrt(n))
    wider = alpha_summary(alphas, confidence=0.99)
    assert wider["ci_low"] < got["ci_low"] and wider["ci_high"] > got["ci_high"]
    # non-finite alphas are left out; a single model has no interval
    one = alpha_summary(np.array([1.3, np.nan]))
    assert one == {"mean": 1.3, "std": None, "n": 1, "ci_low": None, "ci_high": None}
    assert alpha_summary(np.array([]))["mean"] is None
    json.dumps(got, allow_nan=False)


def test_consecutive_ratio_tests() -> None:
    rng = np.random.default_rng(0)
    by_t = {  # deliberately unsorted
        10.0: 1.06 + 0.05 * rng.normal(size=8),
        2.0: 0.95 + 0.05 * rng.normal(size=8),
        4.0: 0.97 + 0.05 * rng.normal(size=8),
        20.0: 1.24 + 0.05 * rng.normal(size=8),
    }
    results = consecutive_ratio_tests(by_t)
    assert [(r["t_from"], r["t_to"]) for r in results] == [(2.0, 4.0), (4.0, 10.0), (10.0, 20.0)]
    for r in results:
        direct = stats.ttest_rel(by_t[r["t_to"]], by_t[r["t_from"]], alternative="greater")
        assert r["statistic"] == pytest.approx(direct.statistic)
        assert r["p_value"] == pytest.approx(direct.pvalue)
        assert r["p_bonferroni"] == pytest.approx(min(3 * direct.pvalue, 1.0))
        assert r["significant"] == (min(3 * direct.pvalue, 1.0) < 0.05)
        assert r["n"] == 8
    assert results[1]["significant"] and results[2]["significant"]
    two_sided = consecutive_ratio_tests(by_t, alternative="two-sided")
    direct = stats.ttest_rel(by_t[4.0], by_t[2.0])
    assert two_sided[0]["p_value"] == pytest.approx(direct.pvalue)
    json.dumps(results, allow_nan=False)


def test_consecutive_ratio_tests_bonferroni_cap_and_validation() -> None:
    # alpha falls with t: one-sided "greater" p-values near 1, capped after correction
    results = consecutive_ratio_tests(
        {2: np.array([1.0, 1.1, 1.2]), 4: np.array([0.5, 0.7, 0.6]), 10: np.array([0, 0.1, 0.3])}
    )
    assert all(r["p_bonferroni"] == 1.0 and not r["significant"] for r in results)
    assert consecutive_ratio_tests({2: np.array([1.0, 1.1])}) == []
    with pytest.raises(ValueError, match="paired by seed"):
        consecutive_ratio_tests({2: np.ones(3), 4: np.ones(4)})
    with pytest.raises(ValueError, match="alternative='up'"):
        consecutive_ratio_tests({2: np.ones(3), 4: np.ones(3)}, alternative="up")  # type: ignore[arg-type]


def test_both_pruning_ratios_of_a_model_pruned_by_torch() -> None:
    """SCIENCE.md sect. 7: t over the prunable weights is 1 / (1 - s); t over all parameters
    (ShrinkBench) counts biases too, so it is smaller; both from torch's own pruning."""
    import torch
    from torch.nn.utils import prune

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 5))
    weights = [(net[0], "weight"), (net[2], "weight")]
    prune.global_unstructured(weights, pruning_method=prune.L1Unstructured, amount=0.75)
    effective = [net[0].weight, net[0].bias, net[2].weight, net[2].bias]  # masks applied
    total = sum(p.numel() for p in effective)
    nonzero = sum(int(p.count_nonzero()) for p in effective)
    kept = sum(int(m.weight.count_nonzero()) for m, _ in weights)
    sparsity = 1 - kept / sum(m.weight.numel() for m, _ in weights)
    assert pruning_ratio(sparsity) == pytest.approx(4.0, rel=1e-2)  # 750 weights, 188 kept
    assert compression_ratio(total, nonzero) == pytest.approx(total / nonzero)
    assert 1 < compression_ratio(total, nonzero) < pruning_ratio(sparsity)
    for bad in ((0, 5), (5, 0), (-1, 3)):
        with pytest.raises(ValueError, match="should be positive"):
            compression_ratio(*bad)
