"""Layer comparison (SCIENCE.md sect. 7): linear CKA against the textbook formula, its
invariances, the block-wise Gram accumulation, dead-ReLU attribution and the weight figures."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from backend.analysis import layers as L
from backend.analysis.layers import (
    HIST_BINS,
    centred_gram,
    cka,
    compare_layers,
    dead_relu_rates,
    linear_cka,
    linear_cka_gram,
    weight_histogram,
    weight_stats,
)


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (ICML 2019) eq. 3 with linear kernels, as written there:
    HSIC(K, L) = tr(KHLH) / (n - 1)^2, CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T  # noqa: E741

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l))


def rng_pair(n: int = 40, p1: int = 7, p2: int = 11, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p1)) + 3.0  # off-centre: centring matters
    y = x @ rng.normal(size=(p1, p2)) + 0.5 * rng.normal(size=(n, p2))
    return x, y


@pytest.mark.parametrize(("p1", "p2"), [(7, 11), (60, 90), (5, 200)])
def test_cka_matches_the_textbook_hsic_formula(p1: int, p2: int) -> None:
    x, y = rng_pair(p1=p1, p2=p2, seed=p1)
    want = hsic_cka(x, y)
    assert 0.0 < want < 1.0
    assert linear_cka(x, y) == pytest.approx(want, abs=1e-10)
    assert linear_cka_gram(x @ x.T, y @ y.T) == pytest.approx(want, abs=1e-10)
    assert cka(x, y) == pytest.approx(want, abs=1e-10)


def test_feature_and_gram_forms_agree() -> None:
    for seed in range(5):
        x, y = rng_pair(n=30, p1=4 + seed, p2=50, seed=seed)
        assert abs(linear_cka(x, y) - linear_cka_gram(x @ x.T, y @ y.T)) < 1e-10


def test_cka_invariances() -> None:
    x, y = rng_pair(n=50, p1=9, p2=12, seed=3)
    base = linear_cka(x, y)
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(9, 9)))  # random orthogonal
    assert np.allclose(q.T @ q, np.eye(9))
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, 4.5 * y) == pytest.approx(base, abs=1e-10)  # isotropic scaling
    assert linear_cka(0.01 * x @ q, 3.0 * y) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x + 17.0, y) == pytest.approx(base, abs=1e-10)  # a constant shift
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka_gram(x @ x.T, x @ x.T) == pytest.approx(1.0, abs=1e-12)
    # not invariant to an anisotropic scaling of the columns (Kornblith et al. sect. 3)
    assert abs(linear_cka(x * np.arange(1, 10), y) - base) > 1e-3


def test_cka_of_a_constant_input_is_nan() -> None:
    x, _ = rng_pair()
    const = np.full((x.shape[0], 5), 0.1)
    assert math.isnan(linear_cka(const, x))
    assert math.isnan(linear_cka(x, np.zeros_like(x)))
    assert math.isnan(linear_cka_gram(const @ const.T, x @ x.T))
    assert math.isnan(cka(np.full((4, 100), 2.0), np.ones((4, 100))))


def test_cka_refuses_mismatched_samples() -> None:
    with pytest.raises(ValueError, match="samples"):
        linear_cka(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="square"):
        linear_cka_gram(np.ones((3, 2)), np.ones((3, 3)))


def test_blockwise_gram_equals_the_one_shot_gram() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(25, 103)) + 2.0
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    want = h @ (x @ x.T) @ h
    for block in (1, 7, 50, 103, 1000):
        got = centred_gram(torch.from_numpy(x.astype(np.float32)), block=block).numpy()
        one_shot = centred_gram(torch.from_numpy(x.astype(np.float32))).numpy()
        assert np.allclose(got, one_shot, rtol=0, atol=1e-10)
        assert np.allclose(got, want, rtol=0, atol=1e-4)  # float32 inputs
    exact = centred_gram(x, block=10).numpy()
    assert np.allclose(exact, want, rtol=0, atol=1e-10)
    calls = []
    centred_gram(x, block=10, cancel_check=lambda: calls.append(1))
    assert len(calls) == 11


class Stop(Exception):
    pass


# dead ReLUs ---------------------------------------------------------------------------------
class Net(nn.Module):
    """fc1 -> relu (called twice: after fc1 and after fc2) ; fc3 -> leaky ; head (no ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 5)
        self.head = nn.Linear(5, 3)
        self.relu = nn.ReLU()
        self.leaky = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.relu(self.fc1(x))
        h2 = self.relu(self.fc2(h1))
        h3 = self.leaky(self.fc3(h2))
        return self.head(h3)


def test_dead_relu_attribution_counts_every_call() -> None:
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(37, 6)
    with torch.no_grad():
        g1 = net.fc1(x)
        g2 = net.fc2(torch.relu(g1))
        g3 = net.fc3(torch.relu(g2))
    want = {
        "fc1": float((g1 <= 0).double().mean()),
        "fc2": float((g2 <= 0).double().mean()),
        "fc3": float((g3 <= 0).double().mean()),
        "head": None,
    }
    got = dead_relu_rates(net, x, batch_size=5)
    assert list(got) == ["fc1", "fc2", "fc3", "head"]
    for k, v in want.items():
        assert got[k] == (None if v is None else pytest.approx(v, abs=1e-12)), k
    assert 0 < got["fc1"] < 1  # type: ignore[operator]


def test_dead_relu_in_a_sequential_with_a_dead_layer() -> None:
    torch.manual_seed(1)
    seq = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU6(), nn.Linear(6, 2))
    with torch.no_grad():
        seq[2].weight.zero_()
        seq[2].bias.fill_(-1.0)  # every unit of the second layer is dead
    x = torch.randn(20, 4)
    g = seq[0](x)
    rates = dead_relu_rates(seq, x)
    assert rates["0"] == pytest.approx(float((g <= 0).float().mean()))
    assert rates["2"] == 1.0
    assert rates["4"] is None


def test_dead_relu_of_inplace_relu_counts_the_output() -> None:
    torch.manual_seed(2)
    seq = nn.Sequential(nn.Linear(3, 10), nn.ReLU(inplace=True), nn.Linear(10, 1))
    x = torch.randn(50, 3)
    want = float((seq[0](x) <= 0).float().mean())
    assert dead_relu_rates(seq, x)["0"] == pytest.approx(want)


# weights ------------------------------------------------------------------------------------
def test_weight_figures_against_numpy_on_a_pruned_model() -> None:
    torch.manual_seed(3)
    a = nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 4))
    b = copy.deepcopy(a)
    prune.l1_unstructured(b[0], "weight", amount=0.6)
    prune.ln_structured(b[3], "weight", amount=0.5, n=2, dim=0)  # 2 of 4 output rows
    for i in (0, 3):
        wa = a[i].weight.detach().numpy().astype(np.float64)
        wb = (b[i].weight_orig * b[i].weight_mask).detach().numpy().astype(np.float64)
        s = weight_stats(a[i].weight, b[i].weight_orig * b[i].weight_mask)
        assert s["shape_a"] == list(wa.shape) == s["shape_b"]
        assert s["channels"] == wa.shape[0] and s["params"] == wa.size
        assert s["sparsity_a"] == 0.0
        assert s["sparsity_b"] == pytest.approx(np.mean(wb == 0))
        kept = sum(bool(np.any(wb[c] != 0)) for c in range(wb.shape[0]))
        assert s["kept_channels_a"] == wa.shape[0] and s["kept_channels_b"] == kept
        change = np.sqrt(np.sum((wb - wa) ** 2)) / np.sqrt(np.sum(wa**2))
        assert s["relative_weight_change"] == pytest.approx(change, rel=1e-12)
        hist = s["hist"]
        assert len(hist["log10_edges"]) == HIST_BINS + 1 and len(hist["a"]) == HIST_BINS
        assert sum(hist["a"]) == np.count_nonzero(wa) and hist["zeros_a"] == 0
        assert sum(hist["b"]) == np.count_nonzero(wb)
        assert hist["zeros_b"] == wb.size - np.count_nonzero(wb)
    assert weight_stats(a[3].weight, b[3].weight_orig * b[3].weight_mask)["kept_channels_b"] == 2
    assert weight_stats(a[0].weight, b[0].weight_orig * b[0].weight_mask)["kept_channels_b"] == 6


def test_weight_figures_of_one_sided_and_reshaped_layers() -> None:
    w = torch.randn(4, 3)
    only_a = weight_stats(w, None)
    assert only_a["shape_b"] is None and only_a["sparsity_b"] is None
    assert only_a["relative_weight_change"] is None and only_a["kept_channels_b"] is None
    assert sum(only_a["hist"]["a"]) == 12 and sum(only_a["hist"]["b"]) == 0
    shrunk = weight_stats(w, w[:2])  # structured: fewer channels, no weight change
    assert shrunk["relative_weight_change"] is None and shrunk["kept_channels_b"] == 2
    empty = weight_histogram(torch.zeros(3), torch.zeros(2))
    assert empty.a == [0] * HIST_BINS and empty.zeros_a == 3 and empty.zeros_b == 2
    assert all(np.isfinite(empty.log10_edges))
    same = weight_histogram(torch.full((5,), 0.5), None)
    assert sum(same.a) == 5 and same.log10_edges[0] < math.log10(0.5) < same.log10_edges[-1]


# the whole comparison -----------------------------------------------------------------------
class Wide(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


def outputs(model: nn.Module, x: torch.Tensor, name: str) -> np.ndarray:
    got: list[torch.Tensor] = []
    module = dict(model.named_modules())[name]
    handle = module.register_forward_hook(lambda _m, _i, o: got.append(o.detach()))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    return got[0].reshape(x.shape[0], -1).double().numpy()


def test_compare_layers_equals_a_direct_computation_under_any_budget() -> None:
    torch.manual_seed(4)
    a = Wide()
    b = copy.deepcopy(a)
    prune.l1_unstructured(b.conv, "weight", amount=0.5)
    prune.l1_unstructured(b.fc, "weight", amount=0.8)
    x = torch.randn(30, 1, 6, 6)
    want = {name: hsic_cka(outputs(a, x, name), outputs(b, x, name)) for name in ("conv", "fc")}
    # budgets so small that conv's 144 columns take several passes and each group one layer
    for feature_budget, gram_budget in ((10**9, 10**9), (30 * 4 * 20, 1)):
        progress: list[float] = []
        rows = compare_layers(
            a,
            [b, a],
            x,
            batch_size=7,
            feature_budget=feature_budget,
            gram_budget=gram_budget,
            progress=lambda f, _s, progress=progress: progress.append(f),
        )
        assert [r.name for r in rows[0]] == ["conv", "fc"]
        for r in rows[0]:
            assert r.cka == pytest.approx(want[r.name], abs=1e-9)
            assert r.kind == ("conv" if r.name == "conv" else "linear")
        assert [r.cka for r in rows[1]] == [pytest.approx(1.0, abs=1e-12)] * 2
        assert rows[0][0].dead_relu_a == pytest.approx(float((outputs(a, x, "conv") <= 0).mean()))
        assert rows[0][1].dead_relu_a is None
        assert progress and max(progress) <= 1.0 + 1e-9 and progress[-1] == pytest.approx(1.0)


def test_compare_layers_matches_layers_by_name() -> None:
    torch.manual_seed(5)
    a = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    b = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.Linear(3, 2))
    rows = compare_layers(a, [b], torch.randn(12, 4))[0]
    by = {r.name: r.to_json() for r in rows}
    assert list(by) == ["0", "2", "3"]
    assert by["0"]["cka"] is not None and by["2"]["cka"] is not None  # same name, other width
    assert by["2"]["relative_weight_change"] is None
    assert by["3"]["shape_a"] is None and by["3"]["cka"] is None and by["3"]["dead_relu_a"] is None
    assert by["3"]["shape_b"] == [2, 3] and by["3"]["sparsity_b"] == 0.0


def test_compare_layers_stops_when_cancelled() -> None:
    a = Wide()
    calls = [0]

    def check() -> None:
        calls[0] += 1
        if calls[0] > 3:
            raise Stop

    with pytest.raises(Stop):
        compare_layers(
            a, [copy.deepcopy(a)], torch.randn(40, 1, 6, 6), batch_size=4, cancel_check=check
        )
    assert a.training  # the mode is restored


def test_to_json_maps_nan_to_null() -> None:
    seq = nn.Sequential(nn.Linear(3, 4))
    with torch.no_grad():
        seq[0].weight.zero_()  # constant output: CKA undefined, relative change 0/0
    rows = compare_layers(seq, [copy.deepcopy(seq)], torch.randn(5, 3))[0]
    assert math.isnan(rows[0].cka)  # type: ignore[arg-type]
    out = rows[0].to_json()
    assert out["cka"] is None and out["relative_weight_change"] is None


def test_plan_splits_wide_layers_over_passes() -> None:
    passes = L._plan_passes(["a", "b"], {"a": 10, "b": 3}, {"a": 4, "b": 4}, 2, 8 * 4)
    cover = [(s.name, s.lo, s.hi) for p in passes for s in p]
    assert cover == [("a", 0, 4), ("a", 4, 8), ("a", 8, 10), ("b", 0, 2), ("b", 2, 3)]
    assert all(sum((s.hi - s.lo) * 2 * 4 for s in p) <= 32 for p in passes)
