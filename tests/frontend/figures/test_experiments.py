"""The experiments scatter: the Pareto front is exactly the non-dominated points (a brute force
over every pair), drawn as a step line; lineage edges join drawn models to drawn parents;
models without both values are left out and counted; the selection is marked."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import numpy as np
import pytest

from frontend.figures.experiments import X_AXES, Y_AXES, experiments_scatter, pareto_front


def dominates(a: tuple[float, float], b: tuple[float, float], x_better: str) -> bool:
    """a is at least as good as b on both axes and better on one (y: higher is better)."""
    ax, bx = (a[0], b[0]) if x_better == "higher" else (-a[0], -b[0])
    return ax >= bx and a[1] >= b[1] and (ax > bx or a[1] > b[1])


def brute_front(x: list[float], y: list[float], x_better: str) -> set[int]:
    points = list(zip(x, y, strict=True))
    return {
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p, x_better) for j, q in enumerate(points) if j != i)
    }


@pytest.mark.parametrize("x_better", ["higher", "lower"])
@pytest.mark.parametrize("seed", range(25))
def test_the_front_is_the_brute_force_non_dominated_set(x_better: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    # coarse values: ties in x, in y and identical points happen
    x = rng.integers(0, 12, n).astype(float).tolist()
    y = (rng.integers(0, 10, n) / 10).tolist()
    front = pareto_front(x, y, x_better)
    assert set(front) == brute_front(x, y, x_better)
    assert len(front) == len(set(front))
    assert [x[i] for i in front] == sorted(x[i] for i in front)  # drawn left to right


def test_the_front_of_continuous_values_and_its_edge_cases() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.random(500).tolist(), rng.random(500).tolist()
    for better in ("higher", "lower"):
        assert set(pareto_front(x, y, better)) == brute_front(x, y, better)
    assert pareto_front([], []) == []
    assert pareto_front([0.5], [0.9]) == [0]
    assert sorted(pareto_front([0.5, 0.5], [0.9, 0.9])) == [0, 1]  # identical: both kept
    with pytest.raises(ValueError, match="x_better='sideways'"):
        pareto_front([1.0], [1.0], "sideways")
    with pytest.raises(ValueError, match="x has 2 values but y has 1"):
        pareto_front([1.0, 2.0], [1.0])


def decode(values: Any) -> list[float]:
    if isinstance(values, dict):  # a plotly.js typed-array spec
        dtype = {"f8": "<f8", "f4": "<f4"}[values["dtype"]]
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=dtype).tolist()
    return list(values)


def rows() -> list[dict[str, Any]]:
    return [
        {"id": 1, "name": "net <b>", "parent_id": None, "pruning_method": None, "sparsity": 0.0,
         "accuracy": 0.9, "corrupted_accuracy": 0.7, "flops_nonzero": 1e6, "latency_ms": 3.0},
        {"id": 2, "name": "a", "parent_id": 1, "pruning_method": "random", "sparsity": 0.5,
         "accuracy": 0.8, "corrupted_accuracy": 0.6, "flops_nonzero": 5e5, "latency_ms": 3.1},
        {"id": 3, "name": "b", "parent_id": 1, "pruning_method": "global_magnitude",
         "sparsity": 0.5, "accuracy": 0.88, "corrupted_accuracy": None, "flops_nonzero": 5e5,
         "latency_ms": None},
        {"id": 4, "name": "c", "parent_id": 3, "pruning_method": "lottery_ticket",
         "sparsity": 0.9, "accuracy": 0.7, "corrupted_accuracy": 0.5, "flops_nonzero": 1e5,
         "latency_ms": 2.0},
        {"id": 5, "name": "d", "parent_id": 99, "pruning_method": "random", "sparsity": 0.3,
         "accuracy": None, "corrupted_accuracy": None, "flops_nonzero": None, "latency_ms": None},
    ]  # fmt: skip


def traces(fig: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"points": [], "edges": [], "front": []}
    for t in fig.to_plotly_json()["data"]:
        kind = (
            "points" if t.get("meta") == "points" else "front" if "Pareto" in t["name"] else "edges"
        )
        out[kind].append(t)
    return out


def test_points_front_and_lineage_of_accuracy_against_sparsity() -> None:
    fig = experiments_scatter(rows(), "sparsity", "accuracy")
    drawn = traces(fig)
    ids = sorted(i[0] for t in drawn["points"] for i in t["customdata"])
    assert ids == [1, 2, 3, 4]  # 5 has no accuracy
    assert "(1 without both values not drawn)" in fig.layout.title.text
    assert "net &lt;b&gt;" in " ".join(t for p in drawn["points"] for t in p["text"])
    (front,) = drawn["front"]
    assert list(zip(decode(front["x"]), decode(front["y"]), strict=True)) == [
        (0.0, 0.9),
        (0.5, 0.88),
        (0.9, 0.7),
    ]
    assert front["line"]["shape"] == "vh"  # a sparser model: the step goes down, then right
    (edges,) = drawn["edges"]
    xs = decode(edges["x"])
    # 2 -> 1, 3 -> 1, 4 -> 3 (5's parent is not drawn): three segments, NaN between them
    segments = [tuple(xs[k : k + 2]) for k in range(0, len(xs), 3)]
    assert sorted(segments) == [(0.0, 0.5), (0.0, 0.5), (0.5, 0.9)]
    assert all(np.isnan(xs[k]) for k in range(2, len(xs), 3))


def test_fewer_flops_is_better_and_a_log_axis_drops_nothing_positive() -> None:
    fig = experiments_scatter(rows(), "flops_nonzero", "corrupted_accuracy")
    (front,) = traces(fig)["front"]
    assert front["line"]["shape"] == "hv"
    assert decode(front["x"]) == [1e5, 5e5, 1e6]
    assert fig.layout.xaxis.type == "log"
    assert "(2 without both values not drawn)" in fig.layout.title.text


def test_selection_marks_points_and_empty_inputs_say_why() -> None:
    fig = experiments_scatter(rows(), "sparsity", "accuracy", selected=[2, 4])
    chosen = {
        t["customdata"][k][0] for t in traces(fig)["points"] for k in t.get("selectedpoints", [])
    }
    assert chosen == {2, 4}
    plain = experiments_scatter(rows(), "sparsity", "accuracy")
    assert all("selectedpoints" not in t for t in traces(plain)["points"])
    assert "No model matches" in experiments_scatter([], "sparsity").layout.annotations[0].text
    only_missing = experiments_scatter(rows()[4:], "latency_ms", "accuracy")
    assert "No model has both values" in only_missing.layout.annotations[0].text
    with pytest.raises(ValueError, match="x='depth'"):
        experiments_scatter(rows(), "depth")
    with pytest.raises(ValueError, match="y='alpha_t'"):
        experiments_scatter(rows(), "sparsity", "alpha_t")


def test_every_axis_pair_draws() -> None:
    for x, y in itertools.product(X_AXES, Y_AXES):
        fig = experiments_scatter(rows(), x, y)
        assert traces(fig)["points"], (x, y)


def test_many_points_go_to_webgl(monkeypatch: pytest.MonkeyPatch) -> None:
    from frontend.figures import experiments

    assert {t["type"] for t in experiments_scatter(rows()).to_plotly_json()["data"]} == {"scatter"}
    monkeypatch.setattr(experiments, "WEBGL_ABOVE", 3)
    kinds = {
        t.get("meta", t["name"]): t["type"]
        for t in experiments_scatter(rows()).to_plotly_json()["data"]
    }
    assert kinds["points"] == "scattergl" and kinds["pruned from (lineage)"] == "scattergl"
