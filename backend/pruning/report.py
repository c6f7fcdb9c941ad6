"""Compression figures of a pruned model against its original (SCIENCE.md sect. 4).

ShrinkBench (Blalock et al., "What is the State of Neural Network Pruning?", MLSys 2020) asks
for compression ratio = dense parameters / nonzero parameters and theoretical speed-up = dense
FLOPs / nonzero FLOPs, next to a measured latency. "FLOPs" here are multiply-accumulates (MACs)
of the ``nn.Conv2d`` and ``nn.Linear`` layers for one example, as in ShrinkBench; bias
additions, BatchNorm, activations and pooling are not counted.

Unstructured sparsity leaves the architecture as it is: its nonzero FLOPs only shrink on sparse
kernels, and its measured latency stays that of the dense model. Structured pruning (Li et al.
2017) removes channels, so both figures shrink together.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from backend.pruning.masks import (
    PRUNABLE_TYPES,
    effective_weight,
    is_pruned,
    prunable_layers,
    sparsity_report,
)
from backend.pruning.registry import check_int

__all__ = ["compression_report", "count_flops", "measure_latency_ms"]


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def count_flops(model: nn.Module, example_input: Tensor) -> list[dict[str, Any]]:
    """Multiply-accumulates of every ``nn.Conv2d`` and ``nn.Linear``, for one example.

    Counted with forward hooks during one forward pass of ``example_input`` (in eval mode,
    without gradients; the model's mode is restored). For a Conv2d with weight
    (C_out, C_in / groups, kh, kw) and output (N, C_out, H_out, W_out), the dense count is
    ``H_out * W_out * C_out * (C_in / groups) * kh * kw``; for a Linear with weight (out, in)
    and output (N, ..., out) it is ``in * out`` per output position. The nonzero count
    replaces the weight's size by its number of nonzero effective weights (``orig * mask``
    for masked layers): ``positions * nonzero``. A layer called twice counts twice.

    Args:
        model: Any model, pruned or not.
        example_input: (N, ...) a batch the model accepts (moved to the model's device); the
            counts are divided by N.

    Returns:
        ``[{"name", "type" ("Conv2d" | "Linear"), "positions" (output positions per
        example), "weight_numel", "weight_nonzero", "flops_dense", "flops_nonzero"}, ...]`` in
        the order of first use; plain Python ints.
    """
    n = int(example_input.shape[0]) if example_input.dim() > 0 else 1
    param = next(iter(model.parameters()), None)
    x = example_input.to(param.device) if param is not None else example_input
    names = {m: name for name, m in model.named_modules()}
    rows: dict[str, dict[str, Any]] = {}

    def hook(module: nn.Module, _inputs: Any, output: Tensor) -> None:
        weight = effective_weight(module).detach()
        numel, nonzero = weight.numel(), int(torch.count_nonzero(weight))
        channels = weight.shape[0]  # C_out of a Conv2d, out_features of a Linear
        positions = output.numel() // max(n * channels, 1)
        row = rows.setdefault(
            names[module],
            {
                "name": names[module],
                "type": type(module).__name__,
                "positions": 0,
                "weight_numel": numel,
                "weight_nonzero": nonzero,
                "flops_dense": 0,
                "flops_nonzero": 0,
            },
        )
        row["positions"] += positions
        row["flops_dense"] += positions * numel
        row["flops_nonzero"] += positions * nonzero

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRUNABLE_TYPES)
    ]
    try:
        with _eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return list(rows.values())


def _inference_copy(model: nn.Module, device: str) -> nn.Module:
    """A copy with masks baked into plain weights, as it would be deployed (dense kernels)."""
    work = copy.deepcopy(model)
    for module in work.modules():
        if is_pruned(module):
            prune.remove(module, "weight")
    return work.to(device).eval()


def measure_latency_ms(
    models: list[nn.Module], example_input: Tensor, device: str = "cpu", repeats: int = 20
) -> list[float]:
    """Median forward-pass latency of each model, in milliseconds.

    Each model is copied to ``device`` with its prune masks made permanent (the zeros stay in
    dense weight tensors), warmed up, then timed ``repeats`` times in eval mode under
    ``torch.inference_mode``; the models take turns in every round so that a change of machine
    load affects them alike. On CUDA every pass is followed by ``torch.cuda.synchronize``.

    Args:
        models: The models to time; they are not modified.
        example_input: (N, ...) the batch of every pass.
        device: Torch device string.
        repeats: Timed passes per model, >= 1.

    Returns:
        One median per model, in the order given.
    """
    repeats = check_int("repeats", repeats, 1)
    dev = torch.device(device)
    sync: Callable[[], None] = (
        (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    )
    copies = [_inference_copy(m, device) for m in models]
    x = example_input.to(dev)
    times: list[list[float]] = [[] for _ in copies]
    with torch.inference_mode():
        for _ in range(max(3, repeats // 5)):
            for m in copies:
                m(x)
        sync()
        for _ in range(repeats):
            for i, m in enumerate(copies):
                start = time.perf_counter()
                m(x)
                sync()
                times[i].append(time.perf_counter() - start)
    return [1000.0 * statistics.median(t) for t in times]


def _same_architecture(original: nn.Module, pruned: nn.Module) -> bool:
    def shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
        return [
            (n, tuple(effective_weight(m).shape)) for n, m in prunable_layers(model, scoped=False)
        ]

    return shapes(original) == shapes(pruned)


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


def compression_report(
    original: nn.Module,
    pruned: nn.Module,
    example_input: Tensor,
    device: str = "cpu",
    repeats: int = 20,
) -> dict[str, Any]:
    """ShrinkBench compression figures and measured latency of ``pruned`` vs ``original``.

    Works for masked (unstructured) and physically smaller (structured) models alike; neither
    model is modified.

    Args:
        original: The dense model before pruning.
        pruned: The pruned model (same architecture with masks, or fewer channels).
        example_input: (N, ...) one batch: FLOPs are per example, latency is per batch.
        device: Where latency is measured, e.g. ``"cpu"`` or ``"cuda:0"``.
        repeats: Timed forward passes per model, >= 1 (the median is reported).

    Returns:
        JSON-ready dict: ``"layers"`` (per-layer sparsity of ``pruned``, from
        :func:`~backend.pruning.masks.sparsity_report`), ``"channels"`` (per prunable layer of
        ``original``: ``out_channels_dense``, ``out_channels``, ``removed_fraction``),
        ``"sparsity"`` (1 - nonzero prunable weights of ``pruned`` / prunable weights of
        ``original``: removed and zeroed weights alike), ``"params_dense"``, ``"params"``,
        ``"nonzero"``, ``"compression_ratio"`` (params_dense / nonzero), ``"flops_dense"``,
        ``"flops_nonzero"``, ``"theoretical_speedup"`` (flops_dense / flops_nonzero),
        ``"flops_layers"`` (:func:`count_flops` of ``pruned``), ``"latency_ms_dense"``,
        ``"latency_ms_pruned"``, ``"measured_speedup"`` (dense / pruned latency),
        ``"device"``, ``"batch_size"``, ``"repeats"`` and ``"note"`` (one plain sentence).
    """
    repeats = check_int("repeats", repeats, 1)
    if not isinstance(example_input, Tensor):
        raise ValueError(f"example_input={example_input!r} should be a tensor")
    dense_report = sparsity_report(original)
    report = sparsity_report(pruned)
    flops_dense = sum(r["flops_dense"] for r in count_flops(original, example_input))
    flops_layers = count_flops(pruned, example_input)
    flops_nonzero = sum(r["flops_nonzero"] for r in flops_layers)
    latency_dense, latency_pruned = measure_latency_ms(
        [original, pruned], example_input, device, repeats
    )
    measured = _ratio(latency_dense, latency_pruned)

    pruned_layers = dict(prunable_layers(pruned, scoped=False))
    channels = []
    for name, module in prunable_layers(original, scoped=False):
        other = pruned_layers.get(name)
        if other is None:
            continue
        before, after = effective_weight(module).shape[0], effective_weight(other).shape[0]
        channels.append(
            {
                "name": name,
                "out_channels_dense": int(before),
                "out_channels": int(after),
                "removed_fraction": 1.0 - after / before if before else 0.0,
            }
        )

    if not _same_architecture(original, pruned):
        verdict = (
            f"runs {measured:.2f}x faster" if measured >= 1 else f"is no faster ({measured:.2f}x)"
        )
        note = f"Structured pruning removed channels: the smaller network {verdict} on {device}."
    elif report["n_nonzero"] < report["n_params"]:
        note = (
            "Unstructured sparsity: the zeros are still multiplied by dense kernels, so the "
            f"measured speed-up is about 1x (here {measured:.2f}x); the theoretical figure "
            "needs sparse kernels or structured pruning."
        )
    else:
        note = (
            "The models have the same architecture and no pruned weights: the measured "
            f"speed-up is about 1x (here {measured:.2f}x)."
        )

    prunable_dense = dense_report["prunable_numel"]
    return {
        "layers": report["layers"],
        "channels": channels,
        "sparsity": 1.0 - report["prunable_nonzero"] / prunable_dense if prunable_dense else 0.0,
        "params_dense": dense_report["n_params"],
        "params": report["n_params"],
        "nonzero": report["n_nonzero"],
        "compression_ratio": _ratio(dense_report["n_params"], report["n_nonzero"]),
        "flops_dense": flops_dense,
        "flops_nonzero": flops_nonzero,
        "theoretical_speedup": _ratio(flops_dense, flops_nonzero),
        "flops_layers": flops_layers,
        "latency_ms_dense": latency_dense,
        "latency_ms_pruned": latency_pruned,
        "measured_speedup": measured,
        "device": device,
        "batch_size": int(example_input.shape[0]) if example_input.dim() > 0 else 1,
        "repeats": repeats,
        "note": note,
    }
