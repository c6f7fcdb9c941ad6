"""Recall distortion of Good et al., "Recall Distortion in Neural Network Pruning and the
Undecayed Pruning Algorithm" (NeurIPS 2022).

Notation follows ../shared/design/SCIENCE.md sect. 2: A and R^c are the accuracy and the recall of
class c before pruning, A_t and R^c_t after pruning at ratio t = parameters before / parameters
after. Pruning *intensifies* recall imbalance when classes that were above (below) the average
move further above (below) it.

Undefined values are NaN (and None in JSON): a balance when the accuracy is 0, a per-class ratio
when the class's balance before pruning is 0, alpha when every balance before pruning is 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = [
    "RecallDistortion",
    "alpha_summary",
    "compression_ratio",
    "consecutive_ratio_tests",
    "intensification_ratios",
    "model_intensification",
    "normalized_balance",
    "pruning_ratio",
    "recall_distortion",
]


def _vector(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} should be 1-D (C,), got shape {arr.shape}")
    return arr


def _pair(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> tuple[np.ndarray, ...]:
    x, y = _vector(a, name_a), _vector(b, name_b)
    if x.shape != y.shape:
        raise ValueError(f"{name_a} {x.shape} and {name_b} {y.shape} differ in shape")
    return x, y


def _json(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def normalized_balance(recall: np.ndarray, accuracy: float) -> np.ndarray:
    """Normalised recall balance Bn^c = (R^c - A) / A (Good et al. 2022).

    Args:
        recall: (C,) per-class recall R^c in [0, 1] (NaN for an empty class propagates).
        accuracy: A in [0, 1].

    Returns:
        (C,) float64; all NaN when A = 0 (the balance is undefined).

    Raises:
        ValueError: If ``accuracy`` is not in [0, 1].
    """
    r = _vector(recall, "recall")
    a = float(accuracy)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"accuracy={accuracy!r} should be in [0, 1]")
    if a == 0.0:
        return np.full(r.shape, np.nan)
    return (r - a) / a


def intensification_ratios(bn_before: np.ndarray, bn_after: np.ndarray) -> np.ndarray:
    """Per-class intensification ratio I^c_t = Bn^c_t / Bn^c (Good et al. 2022).

    I > 1: the class moved further from the average in the direction it already was.

    Args:
        bn_before: (C,) Bn^c of the original model.
        bn_after: (C,) Bn^c_t of the pruned model.

    Returns:
        (C,) float64, NaN where Bn^c == 0.
    """
    before, after = _pair(bn_before, bn_after, "bn_before", "bn_after")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(before == 0, np.nan, after / before)


def model_intensification(bn_before: np.ndarray, bn_after: np.ndarray) -> float:
    """Model intensification alpha_t (Good et al. 2022).

    The least-squares slope through the origin of Bn^c_t on Bn^c:
    alpha_t = sum_c Bn^c Bn^c_t / sum_c (Bn^c)^2. alpha > 1 intensification, < 1
    de-intensification. Classes with a NaN balance on either side (empty classes) are left out.

    Args:
        bn_before: (C,) Bn^c of the original model.
        bn_after: (C,) Bn^c_t of the pruned model.

    Returns:
        alpha_t; NaN when no class has a nonzero balance before pruning.
    """
    before, after = _pair(bn_before, bn_after, "bn_before", "bn_after")
    keep = ~(np.isnan(before) | np.isnan(after))
    denom = float(np.sum(before[keep] ** 2))
    if denom == 0.0:
        return float("nan")
    return float(np.sum(before[keep] * after[keep]) / denom)


def pruning_ratio(sparsity: float) -> float:
    """Pruning ratio t = parameters before / parameters after = 1 / (1 - s) (Good et al. 2022).

    Args:
        sparsity: s in [0, 1), the fraction of (prunable) parameters removed.

    Returns:
        t >= 1 (t = 10 means 90% sparsity).
    """
    s = float(sparsity)
    if not 0.0 <= s < 1.0:
        raise ValueError(f"sparsity={sparsity!r} should be in [0, 1)")
    return 1.0 / (1.0 - s)


@dataclass(frozen=True)
class RecallDistortion:
    """Recall distortion of model B (pruned) relative to model A (original).

    Attributes:
        bn_a: (C,) normalised recall balance of A, Bn^c.
        bn_b: (C,) normalised recall balance of B, Bn^c_t.
        ratios: (C,) intensification ratios I^c_t.
        alpha: model intensification alpha_t.
        t: pruning ratio of B relative to A.
        sparsity: sparsity of B.
    """

    bn_a: np.ndarray
    bn_b: np.ndarray
    ratios: np.ndarray
    alpha: float
    t: float
    sparsity: float

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; NaN and infinities become None."""

        def clean(a: np.ndarray) -> list[float | None]:
            return [_json(float(v)) for v in a]

        return {
            "bn_a": clean(self.bn_a),
            "bn_b": clean(self.bn_b),
            "ratios": clean(self.ratios),
            "alpha": _json(self.alpha),
            "t": _json(self.t),
            "sparsity": self.sparsity,
        }


def compression_ratio(n_params_a: int, n_nonzero_b: int) -> float:
    """Pruning ratio over all parameters: A's parameters / B's nonzero parameters.

    SCIENCE.md sect. 7 ("t, precisely"): besides t over the prunable weights,
    1 / (1 - sparsity) (:func:`pruning_ratio`), report the ratio over every parameter, biases
    and normalisation layers included: ShrinkBench's compression ratio (Blalock et al., MLSys
    2020: total size / nonzero size), which is what Good et al. (NeurIPS 2022) used. The dense
    size is A's, so a structured method that removes channels (B smaller than A) is counted
    like one that zeroes them. alpha_t does not depend on which t is reported; labels say which.

    Args:
        n_params_a: parameters of the original A (all of them, zero or not).
        n_nonzero_b: nonzero parameters of B.

    Returns:
        t_all >= 1 for a B no larger than A (t_all = 10: one parameter in ten kept).

    Raises:
        ValueError: when a count is not positive.
    """
    if n_params_a <= 0 or n_nonzero_b <= 0:
        raise ValueError(
            f"n_params_a={n_params_a!r} and n_nonzero_b={n_nonzero_b!r} should be positive"
        )
    return float(n_params_a) / float(n_nonzero_b)


def recall_distortion(
    recall_a: np.ndarray,
    acc_a: float,
    recall_b: np.ndarray,
    acc_b: float,
    sparsity_b: float,
    sparsity_a: float = 0.0,
) -> RecallDistortion:
    """Balances, intensification ratios, alpha and pruning ratio of B against A.

    Args:
        recall_a: (C,) per-class recall of A.
        acc_a: accuracy of A.
        recall_b: (C,) per-class recall of B.
        acc_b: accuracy of B.
        sparsity_b: sparsity of B.
        sparsity_a: sparsity of A (0 for a dense original). t counts parameters of A over
            parameters of B: (1 - s_a) / (1 - s_b), which is 1 / (1 - s_b) for a dense A.

    Returns:
        :class:`RecallDistortion`.
    """
    bn_a = normalized_balance(recall_a, acc_a)
    bn_b = normalized_balance(recall_b, acc_b)
    if bn_a.shape != bn_b.shape:
        raise ValueError(f"recall_a {bn_a.shape} and recall_b {bn_b.shape} differ in shape")
    t = pruning_ratio(sparsity_b) / pruning_ratio(sparsity_a)
    return RecallDistortion(
        bn_a=bn_a,
        bn_b=bn_b,
        ratios=intensification_ratios(bn_a, bn_b),
        alpha=model_intensification(bn_a, bn_b),
        t=t,
        sparsity=float(sparsity_b),
    )


def alpha_summary(alphas: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Mean alpha over a population of models with a t-based confidence interval.

    Good et al. 2022 report alpha over independently trained models (seeds):
    mean +- t_{(1 + confidence) / 2, n - 1} s / sqrt(n), s the sample standard deviation
    (ddof=1). Non-finite alphas (undefined models) are left out and not counted in n.

    Args:
        alphas: (M,) alpha of each model.
        confidence: Confidence level in (0, 1).

    Returns:
        ``{"mean", "std", "n", "ci_low", "ci_high"}``; mean is None when n = 0, std and the
        interval are None when n < 2.
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence={confidence!r} should be in (0, 1)")
    a = _vector(alphas, "alphas")
    a = a[np.isfinite(a)]
    n = int(a.size)
    result: dict[str, Any] = {"mean": None, "std": None, "n": n, "ci_low": None, "ci_high": None}
    if n == 0:
        return result
    mean = float(a.mean())
    result["mean"] = mean
    if n < 2:
        return result
    std = float(a.std(ddof=1))
    from scipy import stats  # here: importing scipy.stats costs the API ~40 MiB at start-up

    half = float(stats.t.ppf((1.0 + float(confidence)) / 2.0, n - 1)) * std / math.sqrt(n)
    result.update(std=std, ci_low=mean - half, ci_high=mean + half)
    return result


def consecutive_ratio_tests(
    alphas_by_ratio: Mapping[float, np.ndarray],
    alternative: Literal["greater", "less", "two-sided"] = "greater",
    level: float = 0.05,
) -> list[dict[str, Any]]:
    """Paired t-tests of alpha between consecutive pruning ratios, Bonferroni-corrected.

    As in Good et al. 2022: the ratios are sorted by t and, for each consecutive pair
    (t_from, t_to), ``scipy.stats.ttest_rel(alpha[t_to], alpha[t_from], alternative)`` is run
    on the models paired by seed (position i of every array is the same seed). With the default
    ``alternative="greater"`` the hypothesis is that alpha rises with t. The p-values are
    multiplied by the number of tests m (capped at 1). Pairs where either alpha is not finite
    are dropped.

    Args:
        alphas_by_ratio: ``{t: (S,) alphas}``, every array of the same length S, paired by seed.
        alternative: ``"greater"``, ``"less"`` or ``"two-sided"`` (scipy's meaning, for
            alpha[t_to] - alpha[t_from]).
        level: Significance level applied to the corrected p-value.

    Returns:
        One dict per consecutive pair, in increasing t: ``{"t_from", "t_to", "n", "statistic",
        "p_value", "p_bonferroni", "significant"}``; statistic and p-values are None when
        undefined (fewer than 2 pairs, or zero variance of the differences). Empty for fewer
        than 2 ratios.
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative={alternative!r} should be 'greater', 'less' or 'two-sided'")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level={level!r} should be in (0, 1)")
    ratios = sorted(alphas_by_ratio, key=float)
    arrays = {t: _vector(alphas_by_ratio[t], f"alphas at t={t}") for t in ratios}
    lengths = {t: a.size for t, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"alphas should be paired by seed (same length at every t): {lengths}")
    from scipy import stats  # here, not at import: the API imports this module

    m = len(ratios) - 1
    results: list[dict[str, Any]] = []
    for t_from, t_to in zip(ratios[:-1], ratios[1:], strict=True):
        before, after = arrays[t_from], arrays[t_to]
        keep = np.isfinite(before) & np.isfinite(after)
        statistic = p_value = float("nan")
        if keep.sum() >= 2:
            with np.errstate(invalid="ignore", divide="ignore"):
                res = stats.ttest_rel(after[keep], before[keep], alternative=alternative)
            statistic, p_value = float(res.statistic), float(res.pvalue)
        p_bonf = min(p_value * m, 1.0) if math.isfinite(p_value) else float("nan")
        results.append(
            {
                "t_from": float(t_from),
                "t_to": float(t_to),
                "n": int(keep.sum()),
                "statistic": _json(statistic),
                "p_value": _json(p_value),
                "p_bonferroni": _json(p_bonf),
                "significant": bool(math.isfinite(p_bonf) and p_bonf < level),
            }
        )
    return results
