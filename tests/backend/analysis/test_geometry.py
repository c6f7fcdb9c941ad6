"""Geometry (SCIENCE.md sect. 1) against an independent per-sample loop from the formulas."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import models  # noqa: F401  (registers the architectures)
from backend.analysis import geometry
from backend.analysis.features import FeatureOutputs, extract_features
from backend.analysis.geometry import (
    SampleGeometry,
    class_geometry,
    direction_angles,
    fingerprint,
    fingerprints,
    sample_geometry,
    top_k_classes,
)
from backend.data import create as create_dataset
from backend.pruning.finetune import TrainConfig, train
from models.registry import create as create_model


def reference(f: np.ndarray, w: np.ndarray, b: np.ndarray, y: np.ndarray) -> dict[str, list]:
    """Plain loops over samples and classes, straight from SCIENCE.md sect. 1."""
    out: dict[str, list] = {k: [] for k in ("angles", "angle_true", "angle_pred", "length")}
    out.update(margin=[], angular_margin=[], pred=[])
    n, c = f.shape[0], w.shape[0]
    for i in range(n):
        fi = [float(v) for v in f[i]]
        norm_f = math.sqrt(sum(v * v for v in fi))
        angles, logits = [], []
        for j in range(c):
            wj = [float(v) for v in w[j]]
            dot = sum(p * q for p, q in zip(wj, fi, strict=True))
            norm_w = math.sqrt(sum(v * v for v in wj))
            cos = max(-1.0, min(1.0, dot / (norm_w * norm_f)))
            angles.append(math.degrees(math.acos(cos)))
            logits.append(dot + float(b[j]))
        pred = max(range(c), key=lambda j: logits[j])
        yi = int(y[i])
        margins = []
        for j in range(c):
            if j == yi:
                continue
            diff = [float(p - q) for p, q in zip(w[yi], w[j], strict=True)]
            num = sum(p * q for p, q in zip(diff, fi, strict=True)) + float(b[yi] - b[j])
            margins.append(num / math.sqrt(sum(v * v for v in diff)))
        m = min(margins)
        out["angles"].append(angles)
        out["angle_true"].append(angles[yi])
        out["angle_pred"].append(angles[pred])
        out["length"].append(norm_f)
        out["margin"].append(m)
        out["angular_margin"].append(m / norm_f)
        out["pred"].append(pred)
    return out


def assert_matches_reference(geom: SampleGeometry, ref: dict[str, list]) -> None:
    for key in ("angle_true", "angle_pred", "length", "margin", "angular_margin"):
        np.testing.assert_allclose(getattr(geom, key), ref[key], rtol=1e-5, atol=1e-5, err_msg=key)
    np.testing.assert_allclose(geom.angles, ref["angles"], rtol=1e-5, atol=1e-5)


def random_problem(seed: int, n: int = 120, d: int = 9, c: int = 6):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, d)) * rng.uniform(0.2, 3.0, size=(n, 1))
    w = rng.normal(size=(c, d))
    b = rng.normal(size=c) * 0.5
    y = rng.integers(0, c, n)
    return f, w, b, y


@pytest.fixture(scope="module")
def trained() -> Iterator[tuple[FeatureOutputs, np.ndarray]]:
    """digits_cnn trained 2 epochs on sklearn digits; features of the test split."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ds = create_dataset("digits")
        torch.manual_seed(0)
        model = create_model("digits_cnn", num_classes=10)
        train(
            model,
            torch.from_numpy(ds.x_train),
            torch.from_numpy(ds.y_train),
            TrainConfig(epochs=2, lr=3e-3, batch_size=64, seed=0),
        )
        yield extract_features(model, torch.from_numpy(ds.x_test)), ds.y_test
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_against_loop(seed: int) -> None:
    f, w, b, y = random_problem(seed)
    geom = sample_geometry(f, w, b, y)
    ref = reference(f, w, b, y)
    assert_matches_reference(geom, ref)
    for key in ("angle_true", "angle_pred", "length", "length_z", "margin", "angular_margin"):
        assert getattr(geom, key).shape == (len(y),)
        assert getattr(geom, key).dtype == np.float64
    assert geom.angles.shape == (len(y), w.shape[0])
    wrong = np.asarray(ref["pred"]) != y
    assert wrong.any() and (~wrong).any()
    np.testing.assert_array_equal(geom.margin < 0, wrong)
    np.testing.assert_array_equal(geom.margin > 0, ~wrong)


def test_trained_model_against_loop(trained: tuple[FeatureOutputs, np.ndarray]) -> None:
    out, y = trained
    geom = sample_geometry(out.features, out.weight, out.bias, y)
    ref = reference(out.features.astype(np.float64), out.weight, out.bias, y)
    assert_matches_reference(geom, ref)


def test_margin_sign_is_correctness(trained: tuple[FeatureOutputs, np.ndarray]) -> None:
    out, y = trained
    top2 = np.sort(out.logits, axis=1)[:, -2:]
    assert np.all(top2[:, 1] - top2[:, 0] > 1e-4), "the check needs data without ties"
    pred = out.logits.argmax(axis=1)
    geom = sample_geometry(out.features, out.weight, out.bias, y)
    wrong = pred != y
    assert 0.5 < np.mean(~wrong) < 1.0, "want both correct and misclassified samples"
    np.testing.assert_array_equal(geom.margin < 0, wrong)
    np.testing.assert_array_equal(geom.margin > 0, ~wrong)
    np.testing.assert_array_equal(np.isclose(geom.angle_pred, geom.angle_true), ~wrong)


def test_length_z_standardised() -> None:
    f, w, b, y = random_problem(3)
    geom = sample_geometry(f, w, b, y)
    assert geom.length_z.mean() == pytest.approx(0.0, abs=1e-12)
    assert geom.length_z.std() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(
        geom.length_z, (geom.length - geom.length.mean()) / geom.length.std()
    )
    same = sample_geometry(np.ones((4, 3)), w[:, :3], b, y[:4])
    np.testing.assert_array_equal(same.length_z, np.zeros(4))


def test_chunking_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    f, w, b, y = random_problem(4, n=50)
    whole = sample_geometry(f, w, b, y)
    monkeypatch.setattr(geometry, "_CHUNK_ELEMENTS", 3 * f.shape[1])  # 3 samples per chunk
    chunked = sample_geometry(f, w, b, y)
    # the same up to rounding: BLAS may pick another kernel for a 3-row block than for 50 rows
    # (CI once saw 49.332534420523366 against 49.33253442052335)
    for key in ("angle_true", "angle_pred", "length", "length_z", "margin", "angular_margin"):
        np.testing.assert_allclose(getattr(chunked, key), getattr(whole, key), rtol=1e-12, atol=0)


def test_zero_feature_vector() -> None:
    f, w, b, y = random_problem(5, n=4)
    f[2] = 0.0
    geom = sample_geometry(f, w, b, y)
    assert np.all(np.isnan(geom.angles[2]))
    assert np.isnan(geom.angle_true[2]) and np.isnan(geom.angle_pred[2])
    assert np.isnan(geom.angular_margin[2])
    assert geom.length[2] == 0.0
    yi = y[2]
    expected = min(
        (b[yi] - b[j]) / np.linalg.norm(w[yi] - w[j]) for j in range(w.shape[0]) if j != yi
    )
    assert geom.margin[2] == pytest.approx(expected)
    assert np.all(np.isfinite(np.delete(geom.angular_margin, 2)))


def test_zero_class_direction_gives_nan_angle() -> None:
    f, w, b, y = random_problem(6, n=10)
    w[1] = 0.0
    geom = sample_geometry(f, w, b, y)
    assert np.all(np.isnan(geom.angles[:, 1]))
    assert np.all(np.isfinite(np.delete(geom.angles, 1, axis=1)))
    np.testing.assert_array_equal(np.isnan(geom.angle_true), y == 1)


def test_identical_class_directions() -> None:
    w = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    f = np.array([[2.0, 0.5], [2.0, 0.5], [2.0, 0.5]])
    y = np.array([0, 1, 2])
    # b_0 > b_1: class 1 never beats 0 and always loses to it.
    geom = sample_geometry(f, w, np.array([0.5, 0.0, 0.0]), y)
    # only class 2 counts: ((W_0 - W_2) . f + b_0 - b_2) / ||W_0 - W_2||
    assert geom.margin[0] == pytest.approx((2.0 - 0.5 + 0.5) / math.sqrt(2))
    assert geom.margin[1] == -np.inf
    # equal biases: a permanent tie, margin 0
    geom = sample_geometry(f, w, np.zeros(3), y)
    assert geom.margin[0] == 0.0 and geom.margin[1] == 0.0


def test_validation() -> None:
    f, w, b, y = random_problem(7, n=5)
    with pytest.raises(ValueError, match="width"):
        sample_geometry(f[:, :-1], w, b, y)
    with pytest.raises(ValueError, match="labels outside"):
        sample_geometry(f, w, b, y + 10)
    with pytest.raises(ValueError, match="at least 2 classes"):
        sample_geometry(f, w[:1], b[:1], np.zeros(5, dtype=int))
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sample_geometry(bad, w, b, y)


def test_class_geometry() -> None:
    f, w, b, y = random_problem(8, n=60, c=5)
    y[y == 4] = 3  # class 4 has no samples
    f[0] = 0.0  # NaN angle and angular margin, left out of the means
    geom = sample_geometry(f, w, b, y)
    summary = class_geometry(geom, y, w, 5)
    json.dumps(summary, allow_nan=False)
    assert list(summary) == ["0", "1", "2", "3", "4"]
    for c in range(5):
        entry = summary[str(c)]
        members = [i for i in range(len(y)) if y[i] == c]
        assert entry["count"] == len(members)
        assert entry["direction_norm"] == pytest.approx(math.sqrt(sum(v * v for v in w[c])))
        for metric in ("angle_true", "length", "length_z", "margin", "angular_margin"):
            values = [getattr(geom, metric)[i] for i in members]
            values = [v for v in values if not math.isnan(v)]
            if not values:
                assert entry[metric] == {"mean": None, "std": None}
                continue
            mean = sum(values) / len(values)
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            assert entry[metric]["mean"] == pytest.approx(mean)
            assert entry[metric]["std"] == pytest.approx(std)
    assert summary["4"]["count"] == 0 and summary["4"]["margin"]["mean"] is None
    assert summary[str(y[0])]["angle_true"]["mean"] is not None  # sample 0's NaN left out


def test_direction_angles() -> None:
    rng = np.random.default_rng(9)
    a = rng.normal(size=(6, 11))
    np.testing.assert_allclose(direction_angles(a, a), 0.0, atol=1e-5)
    np.testing.assert_allclose(direction_angles(a, 3.0 * a), 0.0, atol=1e-5)
    np.testing.assert_allclose(direction_angles(a, -a), 180.0, atol=1e-5)
    b = rng.normal(size=(6, 11))
    expected = [
        math.degrees(math.acos(float(a[c] @ b[c]) / (np.linalg.norm(a[c]) * np.linalg.norm(b[c]))))
        for c in range(6)
    ]
    np.testing.assert_allclose(direction_angles(a, b), expected, atol=1e-5)
    b[2] = 0.0
    assert np.isnan(direction_angles(a, b)[2])
    with pytest.raises(ValueError, match=r"D=11.*D=7"):
        direction_angles(a, b[:, :7])


def test_top_k_classes() -> None:
    rng = np.random.default_rng(10)
    angles = rng.uniform(0, 180, size=(20, 12))
    angles[0, [3, 7]] = 1.0  # a tie: smaller index first
    got = top_k_classes(angles, 4)
    assert got.shape == (20, 4)
    for i in range(20):
        brute = sorted(range(12), key=lambda j: (angles[i, j], j))[:4]
        assert list(got[i]) == brute
    assert list(got[0][:2]) == [3, 7]
    angles[1, 0] = np.nan
    assert 0 not in top_k_classes(angles, 11)[1]
    for k in (0, 13):
        with pytest.raises(ValueError, match=f"k={k}"):
            top_k_classes(angles, k)


def test_fingerprint_blocks_standardised() -> None:
    f, w, b, y = random_problem(11, n=40)
    geom = sample_geometry(f, w, b, y)
    fp = fingerprint(geom)
    assert fp.shape == (3 * 40,) and fp.dtype == np.float64
    for block, metric in zip(np.split(fp, 3), ("angle_true", "length", "margin"), strict=True):
        assert block.mean() == pytest.approx(0.0, abs=1e-12)
        assert block.std() == pytest.approx(1.0, abs=1e-12)
        raw = getattr(geom, metric)
        np.testing.assert_allclose(block, (raw - raw.mean()) / raw.std())
    np.testing.assert_allclose(np.split(fp, 3)[1], geom.length_z)
    as_dict = {"angle_true": geom.angle_true, "length": geom.length, "margin": geom.margin}
    np.testing.assert_array_equal(fingerprint(as_dict), fp)
    np.testing.assert_array_equal(fingerprint(geom.angle_true, geom.length, geom.margin), fp)
    with pytest.raises(ValueError, match="give angle_true, length and margin"):
        fingerprint(geom.angle_true, geom.length)
    stacked = fingerprints([geom, as_dict])
    assert stacked.shape == (2, 120)
    with pytest.raises(ValueError, match="same samples"):
        fingerprints([geom, {k: v[:-1] for k, v in as_dict.items()}])


def test_fingerprint_non_finite_values() -> None:
    values = {
        "angle_true": np.array([10.0, np.nan, 30.0, 50.0]),
        "length": np.array([1.0, 1.0, 1.0, 1.0]),
        "margin": np.array([1.0, -np.inf, 2.0, np.inf]),
    }
    fp = fingerprint(values)
    assert np.all(np.isfinite(fp))
    angle, length, margin = np.split(fp, 3)
    known = np.array([10.0, 30.0, 50.0])
    np.testing.assert_allclose(angle[[0, 2, 3]], (known - known.mean()) / known.std())
    assert angle[1] == 0.0
    np.testing.assert_array_equal(length, np.zeros(4))  # constant block
    clipped = np.array([1.0, 1.0, 2.0, 2.0])
    np.testing.assert_allclose(margin, (clipped - clipped.mean()) / clipped.std())
