"""Local region statistics (SCIENCE.md sect. 5) against fresh forward passes of the original model.

Patterns here are recomputed independently of the library: forward hooks on the original model
(in float64) record the sign of every ReLU input and the max-pool indices of F.max_pool2d.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils import prune

import models  # noqa: F401  (registers the architectures)
from backend.analysis.region_local import (
    activation_patterns,
    closest_constraint,
    dead_neuron_rate,
    dead_units,
    local_complexity,
    pattern_agreement,
    pattern_mismatch_reasons,
    pool_switches,
    region_distances,
)
from models.architectures import ResNetCIFAR
from models.registry import create as create_model


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SmallCNN(nn.Module):
    """Conv-ReLU-MaxPool(3, stride 2, padding 1)-Linear-ReLU on 1x6x6 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
            nn.Flatten(),
            nn.Linear(4 * 3 * 3, 8),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class FunctionalReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self.classifier = nn.Linear(5, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.relu(self.fc(x)))


class SharedReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 5), nn.Linear(5, 5)
        self.act = nn.ReLU()
        self.classifier = nn.Linear(5, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.act(self.fc2(self.act(self.fc1(x)))))


def tiny_resnet() -> nn.Module:
    model = ResNetCIFAR(blocks_per_stage=1, num_classes=3, in_channels=2, widths=(2, 3, 3))
    gen = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial eval statistics
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if name == "mlp":
        return create_model("mlp", input_shape=[6], num_classes=3, hidden=[16, 12]), (6,)
    if name == "small_cnn":
        return SmallCNN(), (1, 6, 6)
    if name == "digits_cnn":
        return create_model("digits_cnn"), (1, 8, 8)
    if name == "tiny_resnet":
        return tiny_resnet(), (2, 8, 8)
    if name == "pruned_leaky_mlp":
        model = nn.Sequential(nn.Linear(5, 10), nn.LeakyReLU(0.1), nn.Linear(10, 3))
        prune.l1_unstructured(model[0], "weight", amount=0.5)
        return model, (5,)
    raise AssertionError(name)


MODELS = ["mlp", "small_cnn", "digits_cnn", "tiny_resnet"]


def clone64(model: nn.Module) -> nn.Module:
    """Float64 eval copy; pruned modules' non-leaf ``weight`` attributes are copied detached."""
    memo = {
        id(v): v.detach().clone()
        for mod in model.modules()
        for v in vars(mod).values()
        if isinstance(v, Tensor) and not v.is_leaf
    }
    return copy.deepcopy(model, memo).double().eval()


def reference_pattern(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Fresh forward of the original model in float64: ReLU signs and max-pool indices."""
    m = clone64(model)
    parts: list[Tensor] = []

    def relu_hook(mod: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        parts.append((args[0] > 0).flatten(1))

    def pool_hook(mod: nn.MaxPool2d, args: tuple[Tensor, ...], out: Tensor) -> None:
        _, idx = torch.nn.functional.max_pool2d(
            args[0], mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode, True
        )
        parts.append(idx.flatten(1))

    for mod in m.modules():
        if isinstance(mod, (nn.ReLU, nn.LeakyReLU)):
            mod.inplace = False
            mod.register_forward_hook(relu_hook)
        elif isinstance(mod, nn.MaxPool2d):
            mod.register_forward_hook(pool_hook)
    with torch.no_grad():
        m(x.double())
    return parts


def same_pattern(model: nn.Module, x0: Tensor, pts: Tensor) -> Tensor:
    """(M,) bool: does each point of pts (M, ...) share the pattern of x0 (...)?"""
    ref = reference_pattern(model, x0[None])
    got = reference_pattern(model, pts)
    same = torch.ones(pts.shape[0], dtype=torch.bool)
    for r, g in zip(ref, got, strict=True):
        same &= (g == r).all(1)
    return same


def exit_distance(model: nn.Module, x0: Tensor, dirs: Tensor, t0: float) -> Tensor:
    """Distance along each unit direction (M, ...) at which the pattern of x0 first changes.

    The activation region is convex, so along a ray the same-pattern set is an interval [0, t*);
    bisection on "same pattern" finds t*. +inf where no change is found up to 2^40 t0.
    """
    m = dirs.shape[0]
    hi = torch.full((m,), t0, dtype=torch.float64)
    for _ in range(40):
        same = same_pattern(model, x0, x0[None] + hi.view(-1, *[1] * x0.dim()) * dirs)
        if not same.any():
            break
        hi = torch.where(same, hi * 2, hi)
    found = ~same_pattern(model, x0, x0[None] + hi.view(-1, *[1] * x0.dim()) * dirs)
    lo = torch.zeros(m, dtype=torch.float64)
    for _ in range(60):
        mid = (lo + hi) / 2
        same = same_pattern(model, x0, x0[None] + mid.view(-1, *[1] * x0.dim()) * dirs)
        lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
    return torch.where(found, hi, torch.full_like(hi, math.inf))


def inputs(shape: tuple[int, ...], n: int, seed: int = 1) -> Tensor:
    return torch.randn(
        n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


@pytest.mark.parametrize("name", [*MODELS, "pruned_leaky_mlp"])
def test_region_distance_is_exact(name: str) -> None:
    model, shape = build(name)
    x = inputs(shape, 12)
    res = region_distances(model, x, chunk=5)
    assert res["region_distance"].shape == (12,)
    chosen = [0, 1]
    pools = set(pool_switches(model, x[:1]))
    if pools:  # also walk from a sample whose closest constraint is a max-pool switch
        at_pool = [i for i, layer in enumerate(res["region_layer"]) if layer in pools]
        assert at_pool, "no sample is closest to a max-pool constraint"
        chosen.append(at_pool[0])
    gen = torch.Generator().manual_seed(2)
    for i in chosen:
        d = float(res["region_distance"][i])
        assert 0 < d < math.inf
        dist, normal = closest_constraint(model, x[i])
        assert dist == pytest.approx(d, rel=1e-9)
        assert normal.shape == x[i].shape
        assert float(normal.norm()) == pytest.approx(1.0, abs=1e-12)
        # Along the normal: unchanged just before d, changed just after, crossing at d.
        steps = torch.tensor([0.999 * d, 1.001 * d], dtype=torch.float64)
        same = same_pattern(model, x[i], x[i][None] + steps.view(-1, *[1] * x[i].dim()) * normal)
        assert same.tolist() == [True, False]
        t_star = float(exit_distance(model, x[i], normal[None], 0.999 * d)[0])
        assert t_star == pytest.approx(d, rel=1e-6)
        # Along random directions the pattern never changes before d.
        dirs = torch.randn(50, *x[i].shape, generator=gen, dtype=torch.float64)
        dirs /= dirs.flatten(1).norm(dim=1).view(-1, *[1] * x[i].dim())
        exits = exit_distance(model, x[i], dirs, d)
        assert bool((exits >= d * (1 - 1e-6)).all()), (exits.min().item(), d)


@pytest.mark.parametrize("name", ["mlp", "tiny_resnet"])
def test_region_distance_matches_autograd_formula(name: str) -> None:
    """Relu-only models: min_j |g_j| / ||grad g_j|| with an autograd Jacobian per unit."""
    model, shape = build(name)
    x = inputs(shape, 4, seed=3)
    res = region_distances(model, x)
    m = clone64(model)
    pre: list[Tensor] = []
    for mod in m.modules():
        if isinstance(mod, nn.ReLU):
            mod.register_forward_hook(lambda _m, a, _o: pre.append(a[0].flatten()))

    def preacts(xi: Tensor) -> Tensor:
        pre.clear()
        m(xi[None])
        return torch.cat(pre)

    for i in range(4):
        g = preacts(x[i]).detach()
        jac = torch.autograd.functional.jacobian(preacts, x[i]).reshape(g.numel(), -1)
        norms = jac.norm(dim=1)
        expected = (g.abs() / norms)[norms > 0].min().item()
        assert res["region_distance"][i] == pytest.approx(expected, rel=1e-10)


def near_boundary_points(model: nn.Module, shape: tuple[int, ...], n: int) -> Tensor:
    """Points just before the decision boundary along random segments (decision distance tiny)."""
    m = clone64(model)
    a, b = inputs(shape, n, seed=7), inputs(shape, n, seed=8) * 3
    out = []
    with torch.no_grad():
        for i in range(n):
            ca = int(m(a[i][None]).argmax())
            if int(m(b[i][None]).argmax()) == ca:
                continue
            lo, hi = 0.0, 1.0
            for _ in range(60):
                mid = (lo + hi) / 2
                same = int(m((a[i] + mid * (b[i] - a[i]))[None]).argmax()) == ca
                lo, hi = (mid, hi) if same else (lo, mid)
            out.append(a[i] + (lo - 1e-7) * (b[i] - a[i]))
    assert out, "no segment crosses the decision boundary"
    return torch.stack(out)


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "digits_cnn"])
def test_decision_distance(name: str) -> None:
    model, shape = build(name)
    x = torch.cat([inputs(shape, 3), near_boundary_points(model, shape, 12)])
    res = region_distances(model, x, chunk=4)
    exact = res["decision_exact"]
    assert exact.sum() >= 1
    assert np.all(res["decision_distance"] <= res["region_distance"])
    assert np.array_equal(
        res["decision_distance"],
        np.where(exact, res["decision_distance_affine"], res["region_distance"]),
    )
    m = clone64(model)
    for i in np.flatnonzero(exact):
        xi = x[i].clone().requires_grad_(True)
        logits = m(xi[None])[0]
        c, k = int(res["predicted"][i]), int(res["decision_class"][i])
        assert c == int(logits.argmax())
        (grad,) = torch.autograd.grad(logits[c] - logits[k], xi)
        u = -grad / grad.norm()
        _, slope = torch.func.jvp(lambda z: m(z[None])[0], (x[i],), (u,))
        d = float(res["decision_distance"][i])
        o = logits.detach()
        # Within the region the network is the affine map o + t * slope.
        assert int((o + d * (1 - 1e-6) * slope).argmax()) == c
        assert int((o + d * (1 + 1e-6) * slope).argmax()) != c
        if d * (1 + 1e-6) < res["region_distance"][i]:
            with torch.no_grad():
                assert int(m((x[i] + d * (1 - 1e-6) * u)[None]).argmax()) == c
                assert int(m((x[i] + d * (1 + 1e-6) * u)[None]).argmax()) != c


def test_linear_model_has_no_region_boundary() -> None:
    model = create_model("mlp", input_shape=[5], num_classes=4, hidden=[])
    res = region_distances(model, inputs((5,), 3))
    assert np.all(np.isinf(res["region_distance"]))
    assert np.all(res["region_constraint"] == -1)
    assert np.all(res["decision_exact"])
    dist, normal = closest_constraint(model, inputs((5,), 1)[0])
    assert dist == math.inf and float(normal.abs().sum()) == 0.0


def test_chunking_and_model_untouched() -> None:
    model, shape = build("small_cnn")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = inputs(shape, 5)
    a, b = region_distances(model, x, chunk=1), region_distances(model, x, chunk=16)
    for key in a:
        if a[key].dtype.kind == "f":
            np.testing.assert_allclose(a[key], b[key], rtol=1e-12)
        else:
            assert np.array_equal(a[key], b[key])
    assert model.training
    for k, v in model.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, before[k])
    assert set(a["region_layer"].tolist()) <= {"features.1", "features.2", "features.5"}


def brute_force_dead(model: nn.Module, x: Tensor) -> dict[str, tuple[float, np.ndarray]]:
    m = clone64(model)
    outs: dict[str, Tensor] = {}
    for name, mod in m.named_modules():
        if isinstance(mod, nn.ReLU):
            mod.register_forward_hook(
                lambda _m, _a, o, name=name: outs.__setitem__(name, o.flatten(1).clone())
            )
    with torch.no_grad():
        m(x)
    return {k: (float((o == 0).double().mean()), (o == 0).all(0).numpy()) for k, o in outs.items()}


@pytest.mark.parametrize("name", MODELS)
def test_dead_neuron_rate_matches_brute_force(name: str) -> None:
    model, shape = build(name)
    x = inputs(shape, 16)
    rate, dead = dead_neuron_rate(model, x), dead_units(model, x)
    ref = brute_force_dead(model, x)
    assert list(rate) == list(ref) == list(dead)
    for k, (r, d) in ref.items():
        assert rate[k] == pytest.approx(r, abs=1e-15)
        assert np.array_equal(dead[k], d)
    pats = activation_patterns(model, x)
    assert all(p.dtype == bool and p.shape[0] == 16 for p in pats.values())


def test_zero_weight_negative_bias_unit_is_dead() -> None:
    model, shape = build("mlp")
    with torch.no_grad():
        model.features[1].weight[3].zero_()
        model.features[1].bias[3] = -0.5
    x = inputs(shape, 20)
    dead = dead_units(model, x)
    assert dead["features.2"][3]
    assert dead_neuron_rate(model, x)["features.2"] >= 1 / 16


def test_pattern_agreement() -> None:
    model, shape = build("mlp")
    x = inputs(shape, 10)
    pa = activation_patterns(model, x)
    assert pattern_agreement(pa, pa) == {k: 0.0 for k in pa}
    flipped = copy.deepcopy(model)
    with torch.no_grad():
        flipped.features[1].weight.neg_()
        flipped.features[1].bias.neg_()
    agree = pattern_agreement(pa, activation_patterns(flipped, x))
    assert agree["features.2"] == 1.0
    assert all(v is not None and v > 0 for v in agree.values())
    narrow = create_model("mlp", input_shape=[6], num_classes=3, hidden=[16, 5, 4])
    pn = activation_patterns(narrow, x)
    agree = pattern_agreement(pa, pn)
    reasons = pattern_mismatch_reasons(pa, pn)
    assert agree["features.2"] is not None and agree["features.4"] is None
    assert agree["features.6"] is None
    assert "widths differ" in reasons["features.4"] and "missing" in reasons["features.6"]
    with pytest.raises(ValueError, match="samples"):
        pattern_agreement(pa, activation_patterns(model, x[:3]))


def test_pool_switches_match_reference() -> None:
    model, shape = build("digits_cnn")
    x = inputs(shape, 4)
    sw = pool_switches(model, x)
    assert list(sw) == ["features.4", "features.7"]
    ref = reference_pattern(model, x)
    # digits_cnn runs relu, relu, pool(8x8 -> 4x4), relu, pool(4x4 -> 2x2), relu. Window index
    # (r, c) of output (oh, ow) is input pixel (2 oh + r) * W + (2 ow + c) of F.max_pool2d.
    for got, idx, size in zip(sw.values(), [ref[2], ref[4]], [8, 4], strict=True):
        n_out = (size // 2) ** 2
        pos = torch.arange(idx.shape[1]) % n_out
        oh, ow = pos // (size // 2), pos % (size // 2)
        g = torch.from_numpy(got)
        flat = (2 * oh + g // 2) * size + (2 * ow + g % 2)
        assert torch.equal(flat, idx)


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "digits_cnn"])
def test_local_complexity(name: str) -> None:
    model, shape = build(name)
    x = inputs(shape, 3)
    d = region_distances(model, x)["region_distance"]
    assert np.array_equal(local_complexity(model, x, 0.5 * float(d.min())), np.zeros(3))
    assert np.array_equal(local_complexity(model, x, 0.5 * float(d.min()), n_dirs=4), np.zeros(3))
    if name == "mlp":
        # A cross-polytope of radius r contains the ball of radius r / sqrt(D); the region is
        # convex, so once that ball leaves the region some vertex does, and a ReLU sign flips.
        dim = math.prod(shape)
        for i in range(3):
            r = 1.01 * math.sqrt(dim) * float(d[i])
            assert local_complexity(model, x[i : i + 1], r)[0] > 0
            assert local_complexity(model, x[i : i + 1], r, n_dirs=dim)[0] > 0
    assert np.all(local_complexity(model, x, 10.0 * float(d.max()) * math.sqrt(64)) > 0)


def test_unsupported_models_raise() -> None:
    with pytest.raises(ValueError, match="'relu' outside"):
        region_distances(FunctionalReLU(), inputs((4,), 2))
    with pytest.raises(ValueError, match="more than once"):
        activation_patterns(SharedReLU(), inputs((4,), 2))
    gelu = nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match="GELU"):
        region_distances(gelu, inputs((4,), 2))
    model, shape = build("mlp")
    with pytest.raises(ValueError, match="chunk=0"):
        region_distances(model, inputs(shape, 2), chunk=0)
    with pytest.raises(ValueError, match="radius"):
        local_complexity(model, inputs(shape, 2), 0.0)
    with pytest.raises(ValueError, match="n_dirs"):
        local_complexity(model, inputs(shape, 2), 0.1, n_dirs=7)
