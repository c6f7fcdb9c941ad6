"""Geometric attribution by occlusion, against a brute-force loop over patches that calls the
feature extraction and the geometry one occluded input at a time."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

import models  # noqa: F401  (registers the architectures)
from backend.analysis.attribution import (
    ATTRIBUTION_METRICS,
    occlusion_attribution,
    patch_positions,
)
from backend.analysis.features import extract_features
from backend.analysis.geometry import sample_geometry
from models.registry import create as create_model

FIELD = {"angle": "angle_true", "length": "length", "margin": "margin"}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def metrics_of(model: nn.Module, x: torch.Tensor, label: int) -> dict[str, float]:
    out = extract_features(model, x[None])
    geom = sample_geometry(out.features, out.weight, out.bias, np.array([label]))
    return {m: float(getattr(geom, FIELD[m])[0]) for m in ATTRIBUTION_METRICS}


def brute_force(
    model: nn.Module, x: torch.Tensor, label: int, patch: int, stride: int, fill: str
) -> dict[str, np.ndarray]:
    """One occluded input at a time, positions enumerated by hand."""
    chw = x.reshape(1, 1, -1) if x.ndim == 1 else x
    _, h, w = chw.shape
    ph, pw = min(patch, h), min(patch, w)

    def starts(size: int, p: int) -> list[int]:
        out, pos = [], 0
        while pos + p <= size:
            out.append(pos)
            pos += stride
        if out[-1] != size - p:
            out.append(size - p)
        return out

    base = metrics_of(model, x, label)
    rows, cols = starts(h, ph), starts(w, pw)
    deltas = {m: np.zeros((len(rows), len(cols))) for m in ATTRIBUTION_METRICS}
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            occ = chw.clone()
            for ch in range(chw.shape[0]):
                value = float(chw[ch].mean()) if fill == "mean" else 0.0
                occ[ch, r : r + ph, c : c + pw] = value
            got = metrics_of(model, occ.reshape(x.shape), label)
            for m in ATTRIBUTION_METRICS:
                deltas[m][i, j] = got[m] - base[m]
    return deltas


@pytest.mark.parametrize(
    ("patch", "stride", "fill"),
    [(2, None, "mean"), (3, 2, "zero"), (3, None, "mean"), (8, 1, "zero"), (1, 1, "mean")],
)
def test_batched_attribution_equals_one_patch_at_a_time(patch, stride, fill):
    torch.manual_seed(0)
    model = create_model("digits_cnn", num_classes=10)
    x = torch.rand(1, 8, 8)
    got = occlusion_attribution(
        model, x, label=3, patch=patch, stride=stride, fill=fill, batch_size=5
    )
    want = brute_force(model, x, 3, patch, stride or patch, fill)
    base = metrics_of(model, x, 3)
    assert got.base == pytest.approx(base, rel=1e-6)
    for m in ATTRIBUTION_METRICS:
        assert got.deltas[m].shape == got.grid
        np.testing.assert_allclose(got.deltas[m], want[m], rtol=1e-4, atol=1e-4)
    assert got.pred == int(extract_features(model, x[None]).logits.argmax())


def test_three_channel_input_and_feature_vectors():
    torch.manual_seed(1)
    model = create_model("resnet20", num_classes=10)
    model.eval()
    x = torch.rand(3, 12, 10)
    got = occlusion_attribution(model, x, label=0, patch=4, stride=3, fill="mean")
    want = brute_force(model, x, 0, 4, 3, "mean")
    assert got.grid == (4, 3)  # rows 0 3 6 + flush 8; cols 0 3 6 (6 + 4 = 10 is the edge)
    for m in ATTRIBUTION_METRICS:
        np.testing.assert_allclose(got.deltas[m], want[m], rtol=1e-4, atol=1e-4)
    # a (D,) feature vector is a 1 x D strip: one grid row, patches only along D
    mlp = create_model("mlp", input_shape=[20], num_classes=4, hidden=[16])
    v = torch.randn(20)
    strip = occlusion_attribution(mlp, v, label=2, patch=6, stride=5, fill="zero")
    assert strip.grid == (1, 4) and strip.patch == (1, 6)
    assert strip.cols.tolist() == [0, 5, 10, 14]
    want = brute_force(mlp, v, 2, 6, 5, "zero")
    for m in ATTRIBUTION_METRICS:
        np.testing.assert_allclose(strip.deltas[m], want[m], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("size", "patch", "stride", "expected"),
    [
        (8, 4, 4, [0, 4]),
        (8, 3, 3, [0, 3, 5]),  # 6 + 3 > 8: the flush position 5 is added
        (8, 3, 2, [0, 2, 4, 5]),
        (8, 8, 1, [0]),
        (7, 1, 3, [0, 3, 6]),
        (10, 4, 20, [0, 6]),
        (1, 1, 1, [0]),
    ],
)
def test_grid_positions(size, patch, stride, expected):
    got = patch_positions(size, patch, stride)
    assert got.tolist() == expected
    n = (size - patch) // stride + 1 + (1 if (size - patch) % stride else 0)
    assert len(got) == n
    # the last patch ends at the edge; with stride <= patch every element is covered
    covered = np.zeros(size, dtype=bool)
    for s in got:
        covered[s : s + patch] = True
    assert got[-1] + patch == size
    assert covered.all() or stride > patch


def test_bad_arguments_name_the_value():
    model = create_model("mlp", input_shape=[1, 8, 8], num_classes=3, hidden=[4])
    x = torch.rand(1, 8, 8)
    with pytest.raises(ValueError, match="patch=0"):
        occlusion_attribution(model, x, 0, patch=0)
    with pytest.raises(ValueError, match="stride=-1"):
        occlusion_attribution(model, x, 0, stride=-1)
    with pytest.raises(ValueError, match="fill='blur'"):
        occlusion_attribution(model, x, 0, fill="blur")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels outside"):
        occlusion_attribution(model, x, 7)
    with pytest.raises(ValueError, match="patch=9 is longer"):
        patch_positions(8, 9, 1)


def test_ignored_pixels_give_exactly_zero_deltas():
    """A first layer with zero weight columns ignores those pixels: occluding only them cannot
    change the feature, so every delta there is exactly 0 (and elsewhere it is not)."""
    torch.manual_seed(2)
    model = create_model("mlp", input_shape=[1, 8, 8], num_classes=5, hidden=[32, 16])
    first = model.features[1]
    ignored = torch.zeros(8, 8, dtype=torch.bool)
    ignored[:, 4:] = True  # the right half of the image
    with torch.no_grad():
        first.weight[:, ignored.reshape(-1)] = 0.0
    x = torch.rand(1, 8, 8)
    got = occlusion_attribution(model, x, label=1, patch=2, fill="zero", batch_size=3)
    assert got.grid == (4, 4)
    for m in ATTRIBUTION_METRICS:
        assert np.all(got.deltas[m][:, 2:] == 0.0), m
        assert np.any(got.deltas[m][:, :2] != 0.0), m


def test_a_fill_equal_to_the_pixels_changes_nothing():
    """Where the patch already holds the fill value, x' == x and the deltas are exactly 0."""
    torch.manual_seed(3)
    model = create_model("digits_cnn", num_classes=10)
    x = torch.rand(1, 8, 8)
    x[:, :4, :4] = 0.0  # top-left quadrant already zero
    got = occlusion_attribution(model, x, label=5, patch=4, fill="zero")
    assert got.grid == (2, 2)
    for m in ATTRIBUTION_METRICS:
        assert got.deltas[m][0, 0] == 0.0
        assert np.all(got.deltas[m].reshape(-1)[1:] != 0.0)
    # constant image: the per-channel mean is every pixel's value
    const = torch.full((1, 8, 8), 0.375)
    flat = occlusion_attribution(model, const, label=5, patch=3, stride=2, fill="mean")
    for m in ATTRIBUTION_METRICS:
        assert np.all(flat.deltas[m] == 0.0)


def test_progress_callback_sees_every_batch_and_may_stop():
    model = create_model("digits_cnn", num_classes=10)
    x = torch.rand(1, 8, 8)
    seen: list[tuple[int, int]] = []
    occlusion_attribution(
        model, x, 0, patch=1, batch_size=20, on_batch=lambda d, t: seen.append((d, t))
    )
    # x itself rides in the first batch: 65 inputs in 4 passes of 20
    assert seen == [(19, 64), (39, 64), (59, 64), (64, 64)]

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        occlusion_attribution(model, x, 0, patch=1, batch_size=20, on_batch=stop)


def test_default_patch_gives_an_eight_by_eight_grid() -> None:
    from backend.analysis.attribution import default_patch

    assert default_patch((1, 8, 8)) == 1  # digits
    assert default_patch((3, 32, 32)) == 4  # CIFAR-10
    assert default_patch((1, 28, 28)) == 3  # MNIST: 28 // 8, a 9 x 9 grid with the flush edge
    assert default_patch((3, 4, 100)) == 1  # never 0
    assert default_patch((64,)) == 4 and default_patch((5,)) == 1
    for shape in ((1, 8, 8), (3, 32, 32)):
        n = len(patch_positions(shape[-1], default_patch(shape), default_patch(shape)))
        assert n == 8
