"""Fourier sensitivity heat maps (Yin et al., NeurIPS 2019; SCIENCE.md sect. 7): the basis is
orthonormal and built as Yin et al. build it, the map is centred on the zero frequency, a
low-pass model is blind to high frequencies, and batching does not change the map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from backend.analysis.fourier import (
    basis_images,
    clean_errors,
    default_v,
    distinct_frequencies,
    fourier_error_map,
    fourier_error_maps,
    frequency_signs,
    partner,
    perturb,
)

SIZES = [(8, 8), (5, 6), (7, 7), (32, 32)]


def self_conjugate(h: int, w: int) -> int:
    return (2 if h % 2 == 0 else 1) * (2 if w % 2 == 0 else 1)


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_basis_images_are_orthonormal(h: int, w: int) -> None:
    positions = distinct_frequencies(h, w)
    assert len(positions) == (h * w + self_conjugate(h, w)) // 2
    u = basis_images(h, w, positions).reshape(len(positions), -1)
    assert u.dtype == np.float64
    gram = u @ u.T
    assert np.abs(gram - np.eye(len(positions))).max() < 1e-10
    assert np.all(np.isfinite(u))


@pytest.mark.parametrize(("h", "w"), SIZES[:3])
def test_basis_is_yin_et_al_construction(h: int, w: int) -> None:
    """Independent of the module: the inverse FFT of (1 + 1j)/2 at (i, j) and (1 - 1j)/2 at
    -k in the centred spectrum is real (imaginary part ~0), of unit norm, and is what
    basis_images returns; a partner gives the same image."""
    for i in range(h):
        for j in range(w):
            freq = np.zeros((h, w), dtype=np.complex128)
            # the partner of centred (i, j): -k with k = (i - h // 2, j - w // 2)
            si, sj = (-(i - h // 2)) % h, (-(j - w // 2)) % w
            si, sj = (si + h // 2) % h, (sj + w // 2) % w
            assert (si, sj) == partner(h, w, i, j)
            if (si, sj) == (i, j):
                freq[i, j] = 1.0
            elif (i, j) < (si, sj):  # Yin et al.: the pair's first position in row-major order
                freq[i, j], freq[si, sj] = 0.5 + 0.5j, 0.5 - 0.5j
            else:
                freq[si, sj], freq[i, j] = 0.5 + 0.5j, 0.5 - 0.5j
            image = np.fft.ifft2(np.fft.ifftshift(freq)) * math.sqrt(h * w)
            assert np.abs(image.imag).max() < 1e-12
            assert abs(np.linalg.norm(image.real) - 1.0) < 1e-12
            np.testing.assert_allclose(basis_images(h, w, [(i, j)])[0], image.real, atol=1e-12)
            np.testing.assert_allclose(basis_images(h, w, [(si, sj)])[0], image.real, atol=1e-12)


def test_centre_is_the_zero_frequency_constant_image() -> None:
    for h, w in SIZES:
        u = basis_images(h, w, [(h // 2, w // 2)])[0]
        np.testing.assert_allclose(u, np.full((h, w), 1.0 / math.sqrt(h * w)), atol=1e-14)


def test_default_v() -> None:
    assert default_v((3, 32, 32)) == pytest.approx(4.0)
    assert default_v((1, 8, 8)) == pytest.approx(4.0 * math.sqrt(64 / 3072))


def test_perturbation_has_norm_v_per_channel_and_fixed_signs() -> None:
    x = torch.zeros(3, 2, 8, 8, dtype=torch.float64)
    positions = [(0, 0), (4, 4), (1, 3)]
    basis = torch.from_numpy(basis_images(8, 8, positions))
    signs = torch.stack([frequency_signs(7, 8, 8, i, j, 3, 2) for i, j in positions]).double()
    out = perturb(x, basis, signs, 2.5, None).view(3, 3, 2, 64)
    np.testing.assert_allclose(out.norm(dim=-1).numpy(), 2.5, atol=1e-12)
    # the same (seed, frequency) gives the same signs; another seed other ones
    again = frequency_signs(7, 8, 8, 1, 3, 3, 2)
    assert torch.equal(again, frequency_signs(7, 8, 8, 1, 3, 3, 2))
    assert set(again.unique().tolist()) <= {-1.0, 1.0}
    many = [frequency_signs(s, 8, 8, 1, 3, 50, 3) for s in range(3)]
    assert not torch.equal(many[0], many[1])


class LowPass(nn.Module):
    """An ideal low-pass front end (keeps |k_h|, |k_w| <= cutoff, by FFT) and a fixed linear
    classifier of the filtered image: its decision depends on the low frequencies only."""

    def __init__(self, c: int, h: int, w: int, classes: int, cutoff: int = 1) -> None:
        super().__init__()
        kh = torch.fft.fftfreq(h) * h
        kw = torch.fft.fftfreq(w) * w
        self.register_buffer(
            "mask", ((kh.abs()[:, None] <= cutoff) & (kw.abs()[None, :] <= cutoff)).double()
        )
        gen = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(
            torch.randn(classes, c * h * w, generator=gen, dtype=torch.float64),
            requires_grad=False,
        )

    def low(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(torch.fft.fft2(x) * self.mask).real

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.low(x).flatten(1) @ self.weight.T


class MeanOnly(nn.Module):
    """Two classes by the image mean: only the zero frequency moves it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([m - 0.5, 0.5 - m], dim=1)


def labelled(model: nn.Module, x: torch.Tensor, wrong_every: int = 5) -> torch.Tensor:
    """The model's own predictions, with every ``wrong_every``-th changed: a known clean error."""
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    y[::wrong_every] = (y[::wrong_every] + 1) % 3
    return y


def test_low_pass_model_is_blind_to_high_frequencies() -> None:
    torch.manual_seed(0)
    c, h, w, n = 3, 8, 8, 60
    model = LowPass(c, h, w, classes=3)
    x = torch.rand(n, c, h, w, dtype=torch.float64)
    y = labelled(model, x)
    clean = clean_errors([model], x, y)[0]
    assert clean == pytest.approx(12 / 60)
    errors = fourier_error_map(model, x, y, 50.0, seed=1)
    assert errors.shape == (h, w) and not np.isnan(errors).any()
    band = np.zeros((h, w), dtype=bool)
    band[h // 2 - 1 : h // 2 + 2, w // 2 - 1 : w // 2 + 2] = True  # |k| <= 1, centred
    # outside the pass band the perturbation is filtered away: exactly the clean error
    assert np.all(errors[~band] == clean)
    # inside it, a perturbation of norm 50 decides the class: the error moves at every one
    assert np.all(errors[band] != clean)
    assert np.abs(errors[band] - clean).mean() > 0.2


def test_zero_frequency_is_the_centre_of_the_map() -> None:
    torch.manual_seed(1)
    x = 0.5 + 0.05 * torch.randn(40, 1, 6, 6, dtype=torch.float64)
    model = MeanOnly()
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    errors = fourier_error_map(model, x, y, 3.0)
    assert errors[3, 3] > 0.2  # the constant image moves the mean by 3 / 6 = 0.5
    centre = np.zeros((6, 6), dtype=bool)
    centre[3, 3] = True
    np.testing.assert_allclose(errors[~centre], 0.0, atol=1e-15)


def test_batching_over_frequencies_gives_the_same_map() -> None:
    torch.manual_seed(2)
    c, h, w, n = 2, 7, 6, 24
    models = [LowPass(c, h, w, classes=3, cutoff=2), LowPass(c, h, w, classes=3, cutoff=1)]
    x = torch.rand(n, c, h, w, dtype=torch.float64)
    y = labelled(models[0], x)
    v = 8.0
    together = fourier_error_maps(models, x, y, v, seed=3, batch_size=100_000)
    for model, joint in zip(models, together, strict=True):
        one_by_one = np.full((h, w), np.nan)
        for i, j in distinct_frequencies(h, w):
            single = fourier_error_map(model, x, y, v, seed=3, batch_size=n, positions=[(i, j)])
            one_by_one[i, j] = single[i, j]
            one_by_one[partner(h, w, i, j)] = single[i, j]
        np.testing.assert_array_equal(joint, one_by_one)
        # slices of samples (more samples than a batch holds) give the same map too
        sliced = fourier_error_map(model, x, y, v, seed=3, batch_size=5)
        np.testing.assert_array_equal(sliced, joint)
        # the map is point-symmetric about the centre (a pair is one basis image)
        for i in range(h):
            for j in range(w):
                assert joint[i, j] == joint[partner(h, w, i, j)]


def test_progress_cancel_and_clipping() -> None:
    torch.manual_seed(3)
    x = torch.rand(10, 1, 4, 4, dtype=torch.float64)
    model = MeanOnly()
    y = torch.zeros(10, dtype=torch.long)
    seen: list[float] = []
    fourier_error_map(model, x, y, 1.0, batch_size=20, progress=lambda f, _s: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) == math.ceil(10 / 2)

    class Stop(Exception):
        pass

    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 2:
            raise Stop

    with pytest.raises(Stop):
        fourier_error_map(model, x, y, 1.0, batch_size=10, cancel_check=check)
    inputs: list[torch.Tensor] = []

    class Spy(nn.Module):
        def forward(self, xb: torch.Tensor) -> torch.Tensor:
            inputs.append(xb)
            return torch.zeros(xb.shape[0], 2, dtype=xb.dtype)

    fourier_error_map(Spy(), x, y, 100.0, clip=(0.0, 1.0))
    assert min(float(t.min()) for t in inputs) == 0.0 and max(float(t.max()) for t in inputs) == 1.0
    with pytest.raises(ValueError, match="should be"):
        fourier_error_map(model, x.flatten(1), y, 1.0)
