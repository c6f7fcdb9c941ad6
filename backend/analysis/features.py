"""Penultimate features: the input f of the final linear classifier, with its weight and bias.

Notation follows ../shared/design/SCIENCE.md: f(x) in R^D is the input of the final linear
classifier, W in R^{C x D} and b in R^C its weight and bias, z = W f + b the logits. The geometry
of Li et al., "Understanding Robustness Lottery" (IEEE TVCG 2024, arXiv 2206.07918), is computed
from these three (see :mod:`backend.analysis.geometry`).

The feature is captured with a forward pre-hook on the classifier, so any model whose logits come
from one ``nn.Linear`` works, whether or not it has a ``forward_features`` method; the classifier
is found by :func:`models.heads.find_classifier` (built-ins, timm, torchvision, ONNX graphs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from backend.data.batches import input_dtype, model_input
from backend.pruning.masks import effective_weight
from models.heads import find_classifier

__all__ = ["FeatureOutputs", "extract_features", "find_classifier"]


@dataclass
class FeatureOutputs:
    """What :func:`extract_features` returns.

    Attributes:
        features: (N, D) float32 penultimate features f (the classifier's input).
        logits: (N, C) float32 model outputs z.
        weight: (C, D) float64 effective classifier weight W (``weight_orig * weight_mask`` for
            a pruned classifier).
        bias: (C,) float64 classifier bias b (zeros when the classifier has none).
    """

    features: np.ndarray
    logits: np.ndarray
    weight: np.ndarray
    bias: np.ndarray


@torch.no_grad()
def extract_features(
    model: nn.Module,
    x: Tensor,
    batch_size: int = 512,
    device: str = "cpu",
    layer: str | None = None,
    cancel_check: Callable[[], None] | None = None,
) -> FeatureOutputs:
    """Penultimate features, logits and classifier parameters of ``model`` on ``x``.

    The model runs in eval mode without gradients; a forward pre-hook on the classifier (see
    :func:`find_classifier`) records its input, flattened to (B, D). The hook is removed and the
    model's train/eval mode restored afterwards, also when the forward pass fails. The model is
    moved to ``device`` (as in ``backend.pruning.finetune.predict``).

    When the classifier is the model's last operation, ``features @ weight.T + bias`` equals
    ``logits`` up to float32 rounding.

    Args:
        model: Maps (B, ...) to logits (B, C).
        x: Inputs, shape (N, ...); floating inputs are cast to the model's dtype.
        batch_size: Samples per forward pass, >= 1.
        device: Torch device string.
        layer: Qualified name of the classifier, or None to find it (:func:`find_classifier`).
        cancel_check: Called before every batch; raise from it to stop (a job passes its
            cancellation check: a large split takes minutes on a CPU).

    Returns:
        :class:`FeatureOutputs` with features (N, D), logits (N, C), weight (C, D), bias (C,).

    Raises:
        ValueError: For a bad ``batch_size``, a classifier that cannot be found, a classifier
            that is not called exactly once per forward pass, a classifier input that is not
            (B, D), or a classifier whose output width differs from the number of logits.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} should be an integer >= 1")
    name, classifier = find_classifier(model, layer)
    dev = torch.device(device)
    model.to(dev)
    d = classifier.in_features
    captured: list[Tensor] = []

    def capture(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        captured.append(inputs[0].detach())

    was_training = model.training
    handle: RemovableHandle | None = None
    features: list[Tensor] = []
    logits: list[Tensor] = []
    try:
        model.eval()
        handle = classifier.register_forward_pre_hook(capture)
        x_dtype = input_dtype(model, x)
        starts = range(0, x.shape[0], batch_size) if x.shape[0] else [0]
        for start in starts:
            if cancel_check is not None:
                cancel_check()
            captured.clear()
            xb = model_input(x[start : start + batch_size].to(dev, non_blocking=True), x_dtype)
            out = model(xb)
            if len(captured) != 1:
                raise ValueError(
                    f"classifier {name!r} ran {len(captured)} times in one forward pass of "
                    f"{type(model).__name__}; it should run exactly once"
                )
            f = captured[0]
            if f.ndim < 2 or f.shape[0] != xb.shape[0] or f.shape[1:].numel() != d:
                raise ValueError(
                    f"classifier {name!r} received input of shape {tuple(f.shape)}; expected "
                    f"({xb.shape[0]}, {d})"
                )
            if not isinstance(out, Tensor) or out.ndim != 2:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"{type(model).__name__} returned {shape}; expected (B, C)")
            features.append(f.reshape(xb.shape[0], d).float().cpu())
            logits.append(out.detach().float().cpu())
    finally:
        if handle is not None:
            handle.remove()
        model.train(was_training)
    logits_arr = torch.cat(logits).numpy()
    if logits_arr.shape[1] != classifier.out_features:
        raise ValueError(
            f"classifier {name!r} has {classifier.out_features} outputs but "
            f"{type(model).__name__} returns {logits_arr.shape[1]} logits; the classifier "
            "must be the layer that produces the logits"
        )
    weight = effective_weight(classifier).detach().double().cpu().numpy()
    if classifier.bias is None:
        bias = np.zeros(classifier.out_features, dtype=np.float64)
    else:
        bias = effective_weight(classifier, "bias").detach().double().cpu().numpy()
    return FeatureOutputs(
        features=torch.cat(features).numpy().astype(np.float32, copy=False),
        logits=logits_arr.astype(np.float32, copy=False),
        weight=weight,
        bias=bias,
    )
