"""Exact 2-D region slice (SCIENCE.md sect. 5) against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import models  # noqa: F401  (registers the architectures)
from backend.analysis.linear_regions import _copy64, sample_patterns
from backend.analysis.region_slice import (
    DegeneratePlaneError,
    RegionBudgetExceeded,
    RegionSlice,
    SliceError,
    slice_regions,
    verify_slice,
)
from models.registry import create as create_model

torch.set_num_threads(1)


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 12)
        self.fc2 = nn.Linear(12, 10)
        self.act = nn.LeakyReLU(0.1)
        self.classifier = nn.Linear(10, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.act(self.fc2(F.relu(self.fc1(x)))))


class TinyPoolCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 2 * 2, 6)
        self.classifier = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        return self.classifier(F.relu(self.fc(torch.flatten(x, 1))))


class TinyResNet(nn.Module):
    """Conv-BN-ReLU, one residual block, avg pool, x.view(x.size(0), -1)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(3)
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(12, 3)
        gen = torch.Generator().manual_seed(1)
        self.bn0.running_mean.copy_(torch.randn(3, generator=gen) * 0.1)
        self.bn0.running_var.copy_(torch.rand(3, generator=gen) + 0.5)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn0(self.stem(x)))
        y = self.conv2(F.relu(self.conv1(x)))
        x = F.relu(x + y)
        x = self.avg(x)
        return self.fc(x.view(x.size(0), -1))


def _points(shape: tuple[int, ...], seed: int) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(3, *shape, generator=gen)
    return p[0], p[1], p[2]


def _cases() -> list[tuple[str, nn.Module, tuple[int, ...], float | tuple[float, ...]]]:
    torch.manual_seed(0)
    digits = create_model("digits_cnn").eval()
    return [
        ("mlp", TinyMLP().eval(), (6,), 0.25),
        ("pool_cnn", TinyPoolCNN().eval(), (1, 8, 8), (0.0, 0.5, 0.0, 0.5)),
        ("resnet", TinyResNet().eval(), (1, 4, 4), (0.0, 0.5, 0.0, 0.5)),
        ("digits_cnn", digits, (1, 8, 8), (0.0, 0.03, 0.0, 0.03)),
    ]


CASES = _cases()


def _inside(poly: np.ndarray, pts: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Bool (N,): points inside a counter-clockwise convex polygon (k, 2)."""
    e = np.roll(poly, -1, axis=0) - poly  # (k, 2)
    r = pts[:, None, :] - poly[None]  # (N, k, 2)
    cross = e[None, :, 0] * r[..., 1] - e[None, :, 1] * r[..., 0]
    return (cross >= -tol).all(axis=1)


def _uniform(res: RegionSlice, n: int, seed: int) -> np.ndarray:
    u0, u1, v0, v1 = res.domain
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(u0, u1, n), rng.uniform(v0, v1, n)], axis=1)


@pytest.mark.parametrize("name,model,shape,domain", CASES, ids=[c[0] for c in CASES])
def test_partition_and_self_check(
    name: str, model: nn.Module, shape: tuple[int, ...], domain: float | tuple[float, ...]
) -> None:
    res = slice_regions(model, *_points(shape, 3), domain=domain)  # type: ignore[arg-type]
    assert len(res.polygons) >= res.n_regions >= res.n_patterns >= 1
    assert abs(res.areas.sum() - res.domain_area) < 1e-9
    assert (res.areas > 0).all()
    for q in res.polygons:  # convex, counter-clockwise
        e = np.roll(q, -1, axis=0) - q
        f = np.roll(e, -1, axis=0)
        assert (e[:, 0] * f[:, 1] - e[:, 1] * f[:, 0] >= -1e-12).all()
    pts = _uniform(res, 2000, 0)
    count = np.zeros(len(pts), dtype=int)
    for q in res.polygons:
        count += _inside(q, pts)
    assert (count == 1).all()
    assert verify_slice(model, res, n=64, seed=1) < 1e-9
    # predicted class = argmax of a plain forward pass at interior points
    rng = np.random.default_rng(2)
    idx = rng.integers(len(res.polygons), size=16)
    uv = np.stack([rng.dirichlet(np.ones(len(res.polygons[i]))) @ res.polygons[i] for i in idx])
    p = res.points
    t = torch.as_tensor(uv)
    view = (-1, *([1] * (p.ndim - 1)))
    x = p[0] + t[:, 0].view(view) * (p[1] - p[0]) + t[:, 1].view(view) * (p[2] - p[0])
    with torch.no_grad():
        ref = _copy64(model)(x).reshape(len(idx), -1).argmax(1).numpy()
    assert (ref == res.predicted[idx]).all()
    js = res.to_json(max_polygons=5)
    assert len(js["polygons"]) == min(5, len(res.polygons))
    assert js["points"]["p1"] == [1.0, 0.0]


@pytest.mark.parametrize("name,model,shape,domain", CASES[:3], ids=[c[0] for c in CASES[:3]])
def test_against_grid_sampling(
    name: str, model: nn.Module, shape: tuple[int, ...], domain: float | tuple[float, ...]
) -> None:
    p0, p1, p2 = _points(shape, 3)
    res = slice_regions(model, p0, p1, p2, domain=domain)  # type: ignore[arg-type]
    u0, u1, v0, v1 = res.domain
    known = set(res.patterns)
    sampled: set[bytes] = set()
    for v in np.linspace(v0, v1, 60):
        a = p0 + u0 * (p1 - p0) + v * (p2 - p0)
        b = p0 + u1 * (p1 - p0) + v * (p2 - p0)
        sampled |= set(sample_patterns(model, a, b, 60))
    assert len(sampled) <= res.n_patterns
    assert sampled <= known


def test_hand_arrangement() -> None:
    """Two unit lines u = 0.5 and v = 0.5 through [-0.25, 1.25]^2 -> 4 regions."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.fill_(-0.5)
        net[2].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.01]))
    p0, p1, p2 = torch.zeros(2), torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    res = slice_regions(net, p0, p1, p2, domain=0.25)
    assert res.n_regions == res.n_patterns == 4
    per_pattern: dict[bytes, float] = {}
    for key, area in zip(res.patterns, res.areas, strict=True):
        per_pattern[key] = per_pattern.get(key, 0.0) + float(area)
    assert np.allclose(sorted(per_pattern.values()), 0.75**2)
    # logits (relu(u - .5), relu(v - .5) + .01) (float32 .01): class 0 wins right of u = .51
    # below v = .5 and right of u - v = .01 above it
    assert len(res.polygons) > 4
    assert set(res.predicted.tolist()) == {0, 1}
    assert res.decision_boundary
    for (a, b), (c, d) in res.decision_boundary:
        for u, v in ((a, b), (c, d)):
            below = abs(u - 0.51) < 1e-6 and v <= 0.5 + 1e-6
            above = abs(u - v - 0.01) < 1e-6 and v >= 0.5 - 1e-6
            assert below or above
    length = sum(np.hypot(c - a, d - b) for (a, b), (c, d) in res.decision_boundary)
    assert abs(length - (0.75 + 0.74 * np.sqrt(2))) < 1e-6
    with pytest.raises(RegionBudgetExceeded):
        slice_regions(net, p0, p1, p2, domain=0.25, max_regions=3)


def test_errors() -> None:
    model = TinyMLP()
    p0, p1, _ = _points((6,), 0)
    with pytest.raises(DegeneratePlaneError):
        slice_regions(model, p0, p1, p0 + 2.0 * (p1 - p0))
    with pytest.raises(DegeneratePlaneError):
        slice_regions(model, p0, p0, p1)
    bad = p1.clone()
    bad[0] = float("nan")
    with pytest.raises(DegeneratePlaneError):
        slice_regions(model, p0, bad, p1 + 1)
    with pytest.raises(SliceError):
        slice_regions(model, *_points((6,), 0), max_regions=1)
    with pytest.raises(ValueError):
        slice_regions(model, *_points((6,), 0), domain=(1.0, 0.0, 0.0, 1.0))
