"""Geometric attribution: which input patches move a sample's angle, length and margin.

Li et al., "Understanding Robustness Lottery: A Geometric Visual Comparative Analysis of Neural
Network Pruning Approaches" (IEEE TVCG 2024, arXiv 2206.07918) show, next to the sample view, a
"geometric attribution" of each sample: an occlusion heatmap of how much hiding each pixel patch
changes the three geometric metrics of SCIENCE.md sect. 1. This module computes exactly that by
occlusion (Zeiler & Fergus 2014): no gradients, so it works for any model whose penultimate
feature :func:`backend.analysis.features.extract_features` can capture, pruned or not.

What is computed, for one input x and its true label y (notation of SCIENCE.md sect. 1):

- the base metrics of x: angle theta_y(f(x)) in degrees, length ||f(x)||_2 and the signed
  feature-space margin m(f(x)) (bias included), as :func:`backend.analysis.geometry.
  sample_geometry` defines them;
- for every patch position (r, c) of a grid (:func:`patch_positions` along each side), the
  occluded input x' = x with the patch [r, r + p_h) x [c, c + p_w) of every channel replaced by
  the fill value, and delta[metric][row][col] = metric(x') - metric(x).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from backend.analysis.features import extract_features
from backend.analysis.geometry import SampleGeometry, sample_geometry

__all__ = [
    "ATTRIBUTION_METRICS",
    "FILLS",
    "GeometricAttribution",
    "occlusion_attribution",
    "patch_positions",
]

# The three metrics of the attribution and the SampleGeometry field each one reads.
ATTRIBUTION_METRICS = ("angle", "length", "margin")
_GEOMETRY_FIELD = {"angle": "angle_true", "length": "length", "margin": "margin"}
FILLS = ("mean", "zero")
Fill = Literal["mean", "zero"]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}={value!r} should be an integer >= 1")
    return int(value)


def default_patch(input_shape: tuple[int, ...]) -> int:
    """The patch side used when none is asked for: an image's shorter side / 8 (an 8 x 8 grid
    of patches: 1 px on 8 x 8 digits, 4 px on 32 x 32 CIFAR), a 1-D input's length / 16; at
    least 1.

    Args:
        input_shape: (C, H, W) of an image or (D,) of a feature vector.
    """
    if len(input_shape) >= 2:
        return max(1, min(int(input_shape[-2]), int(input_shape[-1])) // 8)
    return max(1, int(input_shape[-1]) // 16)


def patch_positions(size: int, patch: int, stride: int) -> np.ndarray:
    """Start coordinates of the patches along one side of the input.

    Positions 0, s, 2s, ... while ``pos + patch <= size``, plus a final position
    ``size - patch`` flush with the far edge when the stride does not land there, so the last
    patch always ends at the edge (and, when stride <= patch, every element is covered). Their
    number is
    ``(size - patch) // stride + 1``, plus one when ``(size - patch) % stride != 0``.

    Args:
        size: Length of the side, >= 1.
        patch: Patch length along that side, 1 <= patch <= size.
        stride: Step between consecutive patches, >= 1.

    Returns:
        (n,) int64 start coordinates, strictly increasing.

    Raises:
        ValueError: For non-positive arguments or a patch longer than the side.
    """
    size = _positive_int(size, "size")
    patch = _positive_int(patch, "patch")
    stride = _positive_int(stride, "stride")
    if patch > size:
        raise ValueError(f"patch={patch} is longer than the side ({size})")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return np.asarray(starts, dtype=np.int64)


@dataclass
class GeometricAttribution:
    """What :func:`occlusion_attribution` returns.

    Attributes:
        grid: (rows, cols) of the patch grid.
        patch: (p_h, p_w) the patch actually used (the requested size clipped to each side).
        stride: Step between patches, on both axes.
        fill: "mean" or "zero".
        rows: (rows,) int64 top coordinate of each grid row's patches.
        cols: (cols,) int64 left coordinate of each grid column's patches.
        label: The true label y the metrics refer to.
        pred: argmax of the model's logits on the unoccluded input.
        base: metric name -> value on the unoccluded input (``ATTRIBUTION_METRICS``).
        deltas: metric name -> (rows, cols) float64, metric(x') - metric(x); NaN or +-inf where
            sample_geometry's conventions make a metric undefined or infinite.
    """

    grid: tuple[int, int]
    patch: tuple[int, int]
    stride: int
    fill: str
    rows: np.ndarray
    cols: np.ndarray
    label: int
    pred: int
    base: dict[str, float]
    deltas: dict[str, np.ndarray]


def _metrics(geom: SampleGeometry) -> dict[str, np.ndarray]:
    return {
        m: np.asarray(getattr(geom, _GEOMETRY_FIELD[m]), dtype=np.float64) for m in _GEOMETRY_FIELD
    }


def _as_chw(x: Tensor) -> Tensor:
    """View an input as (C, H, W): (D,) -> (1, 1, D), (H, W) -> (1, H, W)."""
    if x.ndim == 1:
        return x.reshape(1, 1, x.shape[0])
    if x.ndim == 2:
        return x.reshape(1, *x.shape)
    if x.ndim == 3:
        return x
    raise ValueError(
        f"x should be one input of shape (C, H, W), (H, W) or (D,), got {tuple(x.shape)}"
    )


@torch.no_grad()
def occlusion_attribution(
    model: nn.Module,
    x: Tensor | np.ndarray,
    label: int,
    *,
    patch: int = 4,
    stride: int | None = None,
    fill: Fill = "mean",
    batch_size: int = 256,
    device: str = "cpu",
    layer: str | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> GeometricAttribution:
    """Occlusion attribution of angle, length and margin (Li et al., TVCG 2024).

    The "geometric attribution" view of Li et al. 2024: for each patch position on a grid,
    the change of the sample's three geometric metrics (SCIENCE.md sect. 1) when that patch is
    hidden. Exactly:

    1. x is viewed as (C, H, W) (a feature vector (D,) as a 1 x D strip with one channel, an
       (H, W) input as one channel); the patch is p_h x p_w = min(patch, H) x min(patch, W).
    2. Grid rows are :func:`patch_positions` (H, p_h, stride), columns
       :func:`patch_positions` (W, p_w, stride); stride defaults to ``patch``.
    3. x'_{r,c} = x with x[:, r:r + p_h, c:c + p_w] set to the fill: "mean" is the per-channel
       mean of x itself (over its H x W values), "zero" is 0.
    4. f, W, b come from :func:`extract_features`; angle (theta_y, degrees), length (||f||_2)
       and signed margin (bias included) from :func:`sample_geometry` with y = ``label``.
    5. delta[metric][i][j] = metric(x'_{rows[i], cols[j]}) - metric(x).

    x and all occluded inputs are evaluated in forward passes of one fixed batch size (at most
    ``batch_size``, the last one padded with copies of x), so that x and x' go through exactly
    the same arithmetic: an occlusion that changes nothing the model reads (a patch the first
    layer ignores, a fill equal to the pixels) gives a delta of exactly 0 on a deterministic
    device. ``on_batch(done, total)`` is called after each batch with the number of occluded
    positions evaluated so far (progress reporting and cancellation: it may raise to stop).

    Args:
        model: Maps (B, *x.shape) to logits (B, C) through a final nn.Linear.
        x: One input, (C, H, W), (H, W) or (D,).
        label: True class y, 0 <= y < C.
        patch: Patch side in elements, >= 1 (clipped to each side of the input).
        stride: Step between patch positions, >= 1; None = ``patch``.
        fill: "mean" or "zero".
        batch_size: Occluded inputs per forward pass, >= 1.
        device: Torch device string for the forward passes.
        layer: Qualified name of the classifier, or None to find it.
        on_batch: Optional callback ``(positions done, positions total)``.

    Returns:
        :class:`GeometricAttribution` with (rows, cols) float64 deltas per metric.

    Raises:
        ValueError: For a bad shape, patch, stride, fill, batch size or label.
    """
    patch = _positive_int(patch, "patch")
    stride = patch if stride is None else _positive_int(stride, "stride")
    batch_size = _positive_int(batch_size, "batch_size")
    if fill not in FILLS:
        raise ValueError(f"fill={fill!r} should be one of {', '.join(FILLS)}")
    xt = torch.as_tensor(x)
    if not xt.is_floating_point():
        xt = xt.float()
    view = _as_chw(xt)
    channels, height, width = view.shape
    ph, pw = min(patch, height), min(patch, width)
    rows = patch_positions(height, ph, stride)
    cols = patch_positions(width, pw, stride)

    if fill == "mean":
        fill_value = view.mean(dim=(1, 2), keepdim=True)  # (C, 1, 1)
    else:
        fill_value = torch.zeros((channels, 1, 1), dtype=view.dtype)
    r_idx, c_idx = np.meshgrid(rows, cols, indexing="ij")
    total = r_idx.size
    # Input 0 is x itself and the last batch is padded with copies of x (start row H: no
    # patch), so that every forward pass has the same batch size: float results depend on the
    # batch size (BLAS picks other kernels), and an occlusion that changes nothing the model
    # reads must give a delta of exactly 0.
    n = min(batch_size, total + 1)
    padded = -(-(total + 1) // n) * n
    starts_r = torch.full((padded,), height, dtype=torch.int64)
    starts_c = torch.zeros(padded, dtype=torch.int64)
    starts_r[1 : total + 1] = torch.from_numpy(r_idx.reshape(-1))
    starts_c[1 : total + 1] = torch.from_numpy(c_idx.reshape(-1))
    hh, ww = torch.arange(height), torch.arange(width)
    values: dict[str, list[np.ndarray]] = {m: [] for m in ATTRIBUTION_METRICS}
    labels = np.full(n, label, dtype=np.int64)
    pred = -1
    for start in range(0, padded, n):
        r0, c0 = starts_r[start : start + n], starts_c[start : start + n]
        in_rows = (hh[None] >= r0[:, None]) & (hh[None] < r0[:, None] + ph)  # (n, H)
        in_cols = (ww[None] >= c0[:, None]) & (ww[None] < c0[:, None] + pw)  # (n, W)
        mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # (n, 1, H, W)
        occluded = torch.where(mask, fill_value[None], view[None])  # (n, C, H, W)
        out = extract_features(
            model, occluded.reshape(n, *xt.shape), batch_size=n, device=device, layer=layer
        )
        if start == 0:
            pred = int(out.logits[0].argmax())
        geom = sample_geometry(out.features, out.weight, out.bias, labels)
        for m, v in _metrics(geom).items():
            values[m].append(v)
        if on_batch is not None:
            on_batch(min(start + n - 1, total), total)
    flat = {m: np.concatenate(values[m])[: total + 1] for m in ATTRIBUTION_METRICS}
    grid = (len(rows), len(cols))
    deltas = {m: (flat[m][1:] - flat[m][0]).reshape(grid) for m in ATTRIBUTION_METRICS}
    return GeometricAttribution(
        grid=grid,
        patch=(ph, pw),
        stride=stride,
        fill=fill,
        rows=rows,
        cols=cols,
        label=int(label),
        pred=pred,
        base={m: float(flat[m][0]) for m in ATTRIBUTION_METRICS},
        deltas=deltas,
    )
