"""Certified interval of the distance to the decision boundary (SCIENCE.md sect. 5).

The lower end is the existing certified bound (exact inside the sample's own activation
region); the upper end is the nearest decision crossing that the exact 1-D machinery finds
along a few rays. Everything is checked against plain float64 forward passes of the model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from backend.analysis.linear_regions import (
    DecisionWalker,
    count_regions,
    first_decision_crossing,
)
from backend.analysis.region_local import (
    DIRECTION_GRADIENT,
    DIRECTION_SAMPLE,
    decision_intervals,
    region_distances,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def mlp() -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 4)
    )
    return model, (6,)


def pool_cnn() -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 10),
        nn.ReLU(),
        nn.Linear(10, 3),
    )
    with torch.no_grad():  # a random init predicts one class nearly everywhere
        model[-1].weight.mul_(4.0)
        model[-1].bias.zero_()
    return model, (1, 6, 6)


BUILD = {"mlp": mlp, "pool_cnn": pool_cnn}


def inputs(shape: tuple[int, ...], n: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen, dtype=torch.float64)


def predict(model64: nn.Module, x: Tensor) -> np.ndarray:
    with torch.no_grad():
        return model64(x).argmax(1).numpy()


@pytest.fixture(scope="module", params=list(BUILD))
def case(request: pytest.FixtureRequest) -> dict:
    model, shape = BUILD[request.param]()
    x, pool = inputs(shape, 10, seed=3), inputs(shape, 60, seed=4)
    model64 = copy.deepcopy(model).double().eval()
    assert len(set(predict(model64, pool).tolist())) >= 2, "the pool should hold other classes"
    found = decision_intervals(model, x, pool, n_neighbours=3)
    return {"model": model, "model64": model64, "x": x, "pool": pool, "found": found}


def test_crossing_point_changes_the_argmax(case: dict) -> None:
    """(i) Just before the reported crossing the class is c, just after it is another."""
    found, x, m = case["found"], case["x"], case["model64"]
    assert np.all(np.isfinite(found.upper)), "every sample has an other-class neighbour"
    c = predict(m, x)
    assert np.array_equal(found.predicted, c)
    for i in range(len(x)):
        u, s = torch.as_tensor(found.directions[i]), float(found.upper[i])
        assert float(u.norm()) == pytest.approx(1.0, abs=1e-12)
        before = predict(m, (x[i] + (s - 1e-6) * u)[None])[0]
        after = predict(m, (x[i] + (s + 1e-6) * u)[None])[0]
        assert before == c[i] and after != c[i], (i, s)
        assert after == found.crossing_class[i]
        assert np.allclose(found.crossings[i], (x[i] + s * u).numpy(), rtol=0, atol=1e-12)


def test_lower_never_exceeds_upper_and_the_lower_end_is_unchanged(case: dict) -> None:
    """(ii) lower <= upper for every sample; lower is region_distances' certified bound."""
    found, x, model = case["found"], case["x"], case["model"]
    assert np.all(found.lower <= found.upper)
    ref = region_distances(model, x)
    assert np.array_equal(found.lower, ref["decision_distance"])
    # the exact ones: exact inside the own region, or both ends meet
    meet = np.abs(found.upper - found.lower) <= 1e-6 * found.lower
    assert np.array_equal(found.exact, ref["decision_exact"] | meet)
    assert set(found.direction.tolist()) <= {DIRECTION_GRADIENT, DIRECTION_SAMPLE}
    is_sample = found.direction == DIRECTION_SAMPLE
    assert np.all(found.target[is_sample] >= 0) and np.all(found.target[~is_sample] == -1)
    assert np.all((found.rays >= 1) & (found.rays <= 4))  # bounded: 1 + n_neighbours
    # the point of the bug: outside the own region the interval says more than its lower end
    loose = ~found.exact
    assert loose.any() and np.all(found.upper[loose] > found.lower[loose])


def test_towards_sample_rays_are_bounded_by_the_neighbours_distance(case: dict) -> None:
    """A ray towards another-class sample must cross before reaching it: so upper <= the
    distance to the nearest test sample predicted otherwise."""
    found, x, pool, m = case["found"], case["x"], case["pool"], case["model64"]
    pred_pool = predict(m, pool)
    for i in range(len(x)):
        other = pool[pred_pool != found.predicted[i]]
        nearest = float((other - x[i]).flatten(1).norm(dim=1).min())
        assert found.upper[i] <= nearest * (1 + 1e-12)
        if found.direction[i] == DIRECTION_SAMPLE:
            target = pool[found.target[i]] - x[i]
            u = torch.as_tensor(found.directions[i])
            assert torch.allclose(u, target / target.norm(), atol=1e-12)


def test_crossing_matches_dense_sampling_along_the_same_ray(case: dict) -> None:
    """(iii) 20,000 points along the ray find the first argmax change within one step."""
    found, x, m = case["found"], case["x"], case["model64"]
    for i in range(len(x)):
        s = float(found.upper[i])
        u = torch.as_tensor(found.directions[i])
        grid = torch.linspace(0.0, 1.5 * s, 20_000, dtype=torch.float64)
        step = float(grid[1] - grid[0])
        pred = predict(m, x[i][None] + grid.view(-1, *[1] * x[i].dim()) * u[None])
        changed = np.flatnonzero(pred != found.predicted[i])
        assert changed.size, i
        first = float(grid[changed[0]])
        assert s - 1e-12 <= first <= s + step * (1 + 1e-9), (i, s, first, step)


def test_linear_model_is_exact_with_the_textbook_distance() -> None:
    """(iv) No hidden ReLU: lower = upper = min_k (o_c - o_k) / ||w_c - w_k|| along the
    margin gradient."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(5, 4))
    x, pool = inputs((5,), 8, seed=5), inputs((5,), 30, seed=6)
    found = decision_intervals(model, x, pool)
    w = model[1].weight.detach().double()
    b = model[1].bias.detach().double()
    o = x @ w.T + b
    for i in range(len(x)):
        c = int(o[i].argmax())
        d = min(float((o[i, c] - o[i, k]) / (w[c] - w[k]).norm()) for k in range(4) if k != c)
        assert found.lower[i] == pytest.approx(d, rel=1e-9)
        assert found.upper[i] == pytest.approx(d, rel=1e-9)
        assert found.exact[i] and found.direction[i] == DIRECTION_GRADIENT
        assert found.lower[i] <= found.upper[i]


def test_without_a_pool_only_the_margin_gradient_is_walked() -> None:
    model, shape = mlp()
    x = inputs(shape, 6, seed=3)
    found = decision_intervals(model, x, None)
    assert np.all(found.rays <= 1)
    crossed = np.isfinite(found.upper)
    assert np.all(found.direction[crossed] == DIRECTION_GRADIENT)
    assert np.all(found.direction[~crossed] == "") and np.all(found.crossing_class[~crossed] == -1)
    assert np.all(np.isnan(found.crossings[~crossed]))
    assert np.all(found.lower[crossed] <= found.upper[crossed])
    # a pool whose samples are all predicted like x adds no ray either
    m = copy.deepcopy(model).double().eval()
    same = x[predict(m, x) == predict(m, x[:1])[0]]
    alone = decision_intervals(model, same, same)
    assert np.all(alone.rays <= 1)


def test_after_sample_is_told_each_sample_and_can_stop_the_walk() -> None:
    model, shape = mlp()
    x = inputs(shape, 5, seed=4)
    seen: list[int] = []
    decision_intervals(model, x, x, after_sample=seen.append)
    assert seen == [1, 2, 3, 4, 5]

    class Stop(Exception):
        pass

    def stop_after_two(done: int) -> None:
        if done == 2:
            raise Stop  # a job's check_cancelled raises like this

    with pytest.raises(Stop):
        decision_intervals(model, x, x, after_sample=stop_after_two)


def test_bad_arguments_are_named() -> None:
    model, shape = mlp()
    x = inputs(shape, 2, seed=3)
    with pytest.raises(ValueError, match="n_neighbours=-1"):
        decision_intervals(model, x, x, n_neighbours=-1)
    with pytest.raises(ValueError, match="reach=0"):
        decision_intervals(model, x, x, reach=0)
    with pytest.raises(ValueError, match="pool of shape"):
        decision_intervals(model, x, torch.zeros(3, 5))


# the 1-D walk ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILD))
def test_first_crossing_is_the_first_decision_point_of_the_segment(name: str) -> None:
    model, shape = BUILD[name]()
    a, b = inputs(shape, 6, seed=8), inputs(shape, 6, seed=9) * 3
    walker = DecisionWalker(model)
    for i in range(6):
        full = count_regions(model, a[i], b[i])
        for chunks in (1, 7):
            got = walker.first_crossing(a[i], b[i], chunks=chunks)
            if not full.decision_points:
                assert got is None
                continue
            assert got is not None
            assert got.t == pytest.approx(full.decision_points[0], abs=1e-12)
            assert got.distance == pytest.approx(got.t * full.length, rel=1e-12)
            assert got.before != got.after
        assert first_decision_crossing(model, a[i], b[i]) == walker.first_crossing(a[i], b[i])


def test_first_crossing_none_when_the_class_never_changes() -> None:
    model, shape = mlp()
    x = inputs(shape, 1, seed=3)[0]
    found = decision_intervals(model, x[None], None)
    u = torch.as_tensor(found.directions[0])
    if math.isfinite(found.upper[0]):  # stop short of the crossing: no change on the segment
        short = x + 0.5 * float(found.upper[0]) * u
        assert first_decision_crossing(model, x, short) is None
