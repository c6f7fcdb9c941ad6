"""Instability (Frankle et al., ICML 2020; SCIENCE.md sect. 4): the error barrier on the linear
path between two copies, against copies that coincide (barrier 0), a closed-form error function,
and a two-unit ReLU network whose second copy is the first with its hidden units swapped (the
same function, so both endpoints are perfect, but not linearly connected: a known barrier)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from backend.analysis.instability import (
    InstabilityPath,
    error_barrier,
    interpolate_states,
    linear_path,
    path_alphas,
)


def test_alphas_are_30_evenly_spaced_points_with_both_ends() -> None:
    a = path_alphas()
    assert len(a) == 30 and a[0] == 0.0 and a[-1] == 1.0
    assert np.allclose(np.diff(a), 1 / 29)
    with pytest.raises(ValueError, match="points=1"):
        path_alphas(1)


def test_barrier_is_the_highest_point_above_the_mean_of_the_endpoints() -> None:
    assert error_barrier([0.1, 0.3, 0.2]) == pytest.approx(0.3 - 0.15)
    assert error_barrier([0.1, 0.1, 0.1]) == 0.0
    # a monotone path: the higher endpoint is the max, half the endpoints' gap above the mean
    assert error_barrier([0.1, 0.2, 0.3]) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        error_barrier([0.1])
    with pytest.raises(ValueError):
        error_barrier([0.1, float("nan")])


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_identical_copies_give_a_flat_path_and_barrier_0() -> None:
    net = _net(0).eval()
    x = torch.randn(50, 4)
    y = torch.randint(0, 3, (50,))
    state = net.state_dict()
    probe = _net(1).eval()

    def error_of(s: dict[str, torch.Tensor]) -> float:
        probe.load_state_dict(s)
        with torch.no_grad():
            return float((probe(x).argmax(1) != y).float().mean())

    path = linear_path(state, {k: v.clone() for k, v in state.items()}, error_of)
    assert isinstance(path, InstabilityPath)
    assert len(path.alphas) == 30 and np.all(path.errors == path.errors[0])
    assert path.barrier == 0.0
    out = path.to_json()
    assert out["barrier"] == 0.0 and out["stable"] is True and len(out["errors"]) == 30


def test_a_closed_form_error_gives_its_barrier() -> None:
    """One parameter w from -1 to 1, E(w) = 0.8 (1 - w^2) + 0.1: E(a) = 0.1 at both ends and
    0.9 - 0.8 (2a - 1)^2 between, highest at the grid points nearest a = 1/2."""
    first, second = {"w": torch.tensor([-1.0])}, {"w": torch.tensor([1.0])}
    seen: list[float] = []

    def error_of(s: dict[str, torch.Tensor]) -> float:
        w = float(s["w"][0])
        seen.append(w)
        return 0.8 * (1 - w * w) + 0.1

    path = linear_path(first, second, error_of)
    a = np.linspace(0, 1, 30)
    want = 0.9 - 0.8 * (2 * a - 1) ** 2
    assert path.errors == pytest.approx(want)
    assert seen == pytest.approx(list(2 * a - 1), abs=1e-6)  # (1 - a) W1 + a W2 (float32)
    assert path.barrier == pytest.approx(want.max() - 0.1)
    assert path.barrier == pytest.approx(0.8 * (1 - (1 / 29) ** 2))  # a = 14/29 and 15/29
    assert path.to_json()["endpoint_errors"] == pytest.approx([0.1, 0.1])


class TwoUnits(nn.Module):
    """logits = V relu(W x) + b, two hidden units."""

    def __init__(self, w: torch.Tensor, v: torch.Tensor) -> None:
        super().__init__()
        self.hidden = nn.Linear(2, 2, bias=False)
        self.out = nn.Linear(2, 2)
        with torch.no_grad():
            self.hidden.weight.copy_(w)
            self.out.weight.copy_(v)
            self.out.bias.copy_(torch.tensor([0.1, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def test_a_network_and_its_hidden_units_swapped_have_a_known_barrier() -> None:
    """W1 = V1 = I and W2 = V2 = the swap P compute the same function; at a the weights are
    M = (1 - a) I + a P, and x = (0, 1) (class 1) gets logits (2a(1 - a) + 0.1,
    a^2 + (1 - a)^2): wrong iff (1 - 2a)^2 < 0.1, i.e. a in (0.342, 0.658). x = (1, 0) (class
    0) is always right. So E = 0 at both ends and 1/2 on that interval: barrier 1/2."""
    eye, swap = torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    first, second = TwoUnits(eye, eye), TwoUnits(swap, swap)
    x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    probe = TwoUnits(eye, eye)

    def error_of(s: dict[str, torch.Tensor]) -> float:
        probe.load_state_dict(s)
        with torch.no_grad():
            return float((probe(x).argmax(1) != y).float().mean())

    path = linear_path(first.state_dict(), second.state_dict(), error_of)
    a = path.alphas
    inside = (1 - 2 * a) ** 2 < 0.1
    assert path.errors == pytest.approx(np.where(inside, 0.5, 0.0))
    assert inside.sum() == 10  # a = 10/29 .. 19/29
    assert path.endpoint_errors == (0.0, 0.0)
    assert path.barrier == 0.5 and not path.to_json()["stable"]


def test_pruned_weights_stay_zero_along_the_path_and_masks_must_agree() -> None:
    def pruned(seed: int, mask: torch.Tensor) -> nn.Module:
        torch.manual_seed(seed)
        layer = nn.Linear(3, 2)
        prune.custom_from_mask(layer, "weight", mask)
        with torch.no_grad():  # what training may leave under the mask: never used
            getattr(layer, "weight_orig").add_(10.0)  # noqa: B009 - typed as Tensor | Module
        return layer

    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    one, two = pruned(0, mask), pruned(1, mask)
    for alpha in np.linspace(0, 1, 7):
        state = interpolate_states(one.state_dict(), two.state_dict(), float(alpha))
        assert torch.equal(state["weight_mask"], mask)
        assert torch.all(state["weight_orig"][mask == 0] == 0)
        want = (1 - alpha) * one.weight_orig * mask + alpha * two.weight_orig * mask
        assert torch.allclose(state["weight_orig"], want.detach(), atol=1e-6)
        bias = (1 - alpha) * one.bias + alpha * two.bias
        assert torch.allclose(state["bias"], bias.detach(), atol=1e-6)
        probe = nn.Linear(3, 2)
        prune.identity(probe, "weight")
        probe.load_state_dict(state)
        probe(torch.zeros(1, 3))  # the forward pre-hook recomputes weight = orig * mask
        assert torch.all(probe.weight[mask == 0] == 0)  # what the forward pass uses

    other = pruned(2, torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="different masks"):
        interpolate_states(one.state_dict(), other.state_dict(), 0.5)
    with pytest.raises(ValueError, match="different tensors"):
        interpolate_states(one.state_dict(), nn.Linear(3, 2).state_dict(), 0.5)


def test_batchnorm_statistics_are_interpolated_and_the_step_count_kept() -> None:
    one, two = _net(0), _net(1)
    one.train()(torch.randn(20, 4))
    two.train()(torch.randn(20, 4) + 3)
    two.train()(torch.randn(20, 4) + 3)
    s1, s2 = one.state_dict(), two.state_dict()
    mid = interpolate_states(s1, s2, 0.25)
    assert torch.allclose(
        mid["1.running_mean"], 0.75 * s1["1.running_mean"] + 0.25 * s2["1.running_mean"]
    )
    assert torch.equal(mid["1.num_batches_tracked"], s1["1.num_batches_tracked"])
    assert all(
        torch.equal(interpolate_states(s1, s2, 1.0)[k], s2[k]) for k in s2 if k.endswith("var")
    )
