"""Fourier sensitivity heat maps (SCIENCE.md sect. 7, "Fourier sensitivity").

Yin, Gontijo Lopes, Shlens, Cubuk & Gilmer, "A Fourier Perspective on Model Robustness in
Computer Vision", NeurIPS 2019 (reference code: google-research/frequency_analysis). For every
2-D frequency (i, j) of an H x W image, U_ij is the real Fourier basis image of unit L2 norm;
a test image X is perturbed to ``X + v r U_ij``, ``r`` a random sign drawn independently for
every channel of every sample, and the model's error rate on n test samples is recorded per
(i, j). The map is indexed with the zero frequency at the centre (``np.fft.fftshift`` order:
position ``(H // 2, W // 2)`` is the constant image, the corners the highest frequencies).

The basis, as Yin et al. build it: in the centred spectrum put ``(1 + 1j) / 2`` at (i, j) and
``(1 - 1j) / 2`` at its conjugate-symmetric partner (the frequency ``-k``), move it to numpy's
layout (``ifftshift``), take ``ifft2`` and scale by ``sqrt(H W)``: the result is real, equal to
``(cos t - sin t) / sqrt(H W)`` with ``t = 2 pi (k_h y / H + k_w x / W)`` (a Hartley basis
image) and of unit norm. (i, j) and its partner give the *same* image, so the map is
point-symmetric about the centre; it is computed once per pair and written at both places
(Yin et al. compute both, with fresh signs: the same quantity twice). A *self-conjugate*
frequency (``k = -k`` modulo the size: the zero frequency, and for an even side its Nyquist
frequency, four in all for even H and W) has no partner: a one-hot 1 there gives the real image
``cos t / sqrt(H W)`` with entries +-1/sqrt(H W), of unit norm too. The ``(H W + s) / 2``
distinct images (s self-conjugate frequencies) are orthonormal
(tests/backend/analysis/test_fourier.py).

Inputs are what the model reads (``backend.data.batches.model_input``: stored uint8 pixels
become ``x / 255`` in [0, 1]). Yin et al.'s code adds the perturbation and optionally clips
(``clip_min``, ``clip_max``); a perturbed image outside [0, 1] is no image, so the job clips to
[0, 1] when the test inputs lie in [0, 1] and does not otherwise (normalised inputs), and the
result says which (``clip`` here).

v: 4 for 32 x 32 x 3 inputs in [0, 1] (Yin et al.'s CIFAR-10 setting), scaled by
``sqrt(D / 3072)`` for inputs of D values (:func:`default_v`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "CIFAR_V",
    "basis_images",
    "clean_errors",
    "default_v",
    "distinct_frequencies",
    "fourier_error_map",
    "fourier_error_maps",
    "frequency_signs",
    "partner",
    "perturb",
]

CIFAR_V = 4.0  # Yin et al.'s v on CIFAR-10 (32 x 32 x 3 in [0, 1])
CIFAR_VALUES = 3 * 32 * 32


def default_v(input_shape: Sequence[int]) -> float:
    """v for inputs of ``input_shape`` (C, H, W): ``4 sqrt(D / 3072)``, D = C H W values."""
    d = math.prod(int(s) for s in input_shape)
    return CIFAR_V * math.sqrt(d / CIFAR_VALUES)


def partner(height: int, width: int, i: int, j: int) -> tuple[int, int]:
    """The centred position of the frequency conjugate-symmetric to centred position (i, j):
    ``-k`` modulo the size, in centred coordinates (Yin et al.'s ``_get_symmetric_pos``)."""

    def one(n: int, p: int) -> int:
        return (n - p) % n if n % 2 == 0 else n - 1 - p

    return one(height, i), one(width, j)


def distinct_frequencies(height: int, width: int) -> list[tuple[int, int]]:
    """One centred position (i, j) per conjugate pair (the first in row-major order), and each
    self-conjugate frequency once: ``(H W + s) / 2`` positions, s the self-conjugate count."""
    out = []
    for i in range(height):
        for j in range(width):
            pi, pj = partner(height, width, i, j)
            if (pi, pj) >= (i, j):
                out.append((i, j))
    return out


def basis_images(height: int, width: int, positions: Sequence[tuple[int, int]]) -> np.ndarray:
    """The real Fourier basis images U_ij of unit L2 norm at centred positions ``positions``.

    Args:
        height, width: the image size H, W.
        positions: centred (i, j) (zero frequency at ``(H // 2, W // 2)``).

    Returns:
        (len(positions), H, W) float64: ``sqrt(H W) real(ifft2(ifftshift(F)))`` with F the
        centred spectrum holding ``(1 + 1j) / 2`` at the first of (i, j) and its partner in
        row-major order and ``(1 - 1j) / 2`` at the other (so both give the same image), or 1
        at a self-conjugate (i, j) (see the module docstring).
    """
    spectra = np.zeros((len(positions), height, width), dtype=np.complex128)
    for n, position in enumerate(positions):
        # a pair's image is that of its first position in row-major order, at either position
        (i, j), (pi, pj) = sorted([position, partner(height, width, *position)])
        if (pi, pj) == (i, j):
            spectra[n, i, j] = 1.0
        else:
            spectra[n, i, j] = 0.5 + 0.5j
            spectra[n, pi, pj] = 0.5 - 0.5j
    images = np.fft.ifft2(np.fft.ifftshift(spectra, axes=(-2, -1)), axes=(-2, -1))
    return math.sqrt(height * width) * np.real(images)


def frequency_signs(seed: int, height: int, width: int, i: int, j: int, n: int, c: int) -> Tensor:
    """The signs r (n, C) of the n samples' channels for the frequency at centred (i, j):
    fixed by (seed, the frequency) alone, so A and every B, any batching and any subset of
    frequencies see the same perturbations."""
    rng = np.random.default_rng([int(seed), height, width, i * width + j])
    return torch.from_numpy(rng.integers(0, 2, size=(n, c)).astype(np.float32) * 2.0 - 1.0)


def perturb(
    x: Tensor, basis: Tensor, signs: Tensor, v: float, clip: tuple[float, float] | None
) -> Tensor:
    """``x + v r U`` for every frequency and sample.

    Args:
        x: (n, C, H, W) clean inputs as the model reads them.
        basis: (F, H, W) basis images U.
        signs: (F, n, C) signs r.
        v: the perturbation's L2 norm per channel.
        clip: (low, high) to clip the perturbed inputs to, or None.

    Returns:
        (F * n, C, H, W), frequency-major: rows ``f * n .. f * n + n - 1`` are frequency f.
    """
    delta = (v * signs)[:, :, :, None, None] * basis[:, None, None, :, :]
    out = (x[None] + delta).reshape(-1, *x.shape[1:])
    if clip is not None:
        out = out.clamp_(clip[0], clip[1])
    return out


def _predict(model: nn.Module, xb: Tensor) -> Tensor:
    out = model(xb)
    if isinstance(out, tuple | list):
        out = out[0]
    return out.argmax(dim=1)


@torch.no_grad()
def fourier_error_maps(
    models: Sequence[nn.Module],
    x: Tensor,
    y: Tensor,
    v: float,
    *,
    seed: int = 0,
    clip: tuple[float, float] | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    cancel_check: Callable[[], None] | None = None,
    progress: Callable[[float, str], None] | None = None,
    positions: Sequence[tuple[int, int]] | None = None,
) -> list[np.ndarray]:
    """The Fourier heat map (error rate per frequency) of every model on the same perturbed
    inputs (same samples, same signs).

    Batched over frequencies: each forward batch holds about ``batch_size`` perturbed images,
    several frequencies x all samples (or, with more samples than ``batch_size``, one
    frequency x a slice of them); the perturbed batch is built once and given to every model.

    Args:
        models: networks taking (B, C, H, W) and returning (B, K) logits (put in eval mode).
        x: (n, C, H, W) float test inputs as the model reads them.
        y: (n,) integer labels.
        v: L2 norm of the perturbation per channel.
        seed: seeds the signs (:func:`frequency_signs`).
        clip: (low, high) bounds of the perturbed inputs, or None (no clipping).
        batch_size: perturbed images per forward pass.
        device: where the models are.
        cancel_check: called between forward passes; raises to stop.
        progress: ``progress(fraction, stage)`` after each batch of frequencies.
        positions: the centred frequencies to evaluate (default: every one, via
            :func:`distinct_frequencies`); a position's partner gets its value.

    Returns:
        One (H, W) float64 array per model: the error rate per centred (i, j), zero frequency
        at ``(H // 2, W // 2)``; NaN where no frequency of ``positions`` falls.
    """
    if x.ndim != 4:
        raise ValueError(f"x should be (n, C, H, W) images; got shape {tuple(x.shape)}")
    n, c, height, width = (int(s) for s in x.shape)
    if n < 1 or int(y.shape[0]) != n:
        raise ValueError(f"x has {n} samples and y {int(y.shape[0])}: need as many, at least 1")
    wanted = list(positions) if positions is not None else distinct_frequencies(height, width)
    maps = [np.full((height, width), np.nan) for _ in models]
    for model in models:
        model.eval()
    x = x.to(device)
    y = y.to(device).long()
    per_batch = max(1, batch_size // n)  # frequencies per forward pass
    sample_step = min(n, batch_size)
    done = 0
    for start in range(0, len(wanted), per_batch):
        chunk = wanted[start : start + per_batch]
        basis = torch.from_numpy(basis_images(height, width, chunk)).to(device, x.dtype)
        signs = torch.stack(
            [frequency_signs(seed, height, width, i, j, n, c) for i, j in chunk]
        ).to(device, x.dtype)
        wrong = torch.zeros(len(models), len(chunk), dtype=torch.long, device=device)
        for s0 in range(0, n, sample_step):
            xb = perturb(x[s0 : s0 + sample_step], basis, signs[:, s0 : s0 + sample_step], v, clip)
            yb = y[s0 : s0 + sample_step].repeat(len(chunk))
            for m, model in enumerate(models):
                if cancel_check is not None:
                    cancel_check()
                miss = (_predict(model, xb) != yb).view(len(chunk), -1)
                wrong[m] += miss.sum(dim=1)
        rates = (wrong.double() / n).cpu().numpy()
        for m in range(len(models)):
            for f, (i, j) in enumerate(chunk):
                maps[m][i, j] = rates[m, f]
                maps[m][partner(height, width, i, j)] = rates[m, f]
        done += len(chunk)
        if progress is not None:
            progress(done / len(wanted), f"frequency {done}/{len(wanted)}")
    return maps


def fourier_error_map(
    model: nn.Module, x: Tensor, y: Tensor, v: float, **kwargs: Any
) -> np.ndarray:
    """The Fourier heat map of one model: :func:`fourier_error_maps` with ``[model]``.

    Returns:
        (H, W) error rates, zero frequency at the centre.
    """
    return fourier_error_maps([model], x, y, v, **kwargs)[0]


@torch.no_grad()
def clean_errors(
    models: Sequence[nn.Module],
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    cancel_check: Callable[[], None] | None = None,
) -> list[float]:
    """Each model's error rate on the unperturbed (n, C, H, W) inputs ``x`` (labels ``y``)."""
    wrong = [0] * len(models)
    y = y.to(device).long()
    for s0 in range(0, int(x.shape[0]), batch_size):
        xb = x[s0 : s0 + batch_size].to(device)
        for m, model in enumerate(models):
            if cancel_check is not None:
                cancel_check()
            wrong[m] += int((_predict(model.eval(), xb) != y[s0 : s0 + batch_size]).sum())
    return [w / max(1, int(x.shape[0])) for w in wrong]
