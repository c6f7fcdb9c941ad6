from __future__ import annotations

import colorsys
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage
from sklearn.datasets import load_digits

from backend.data import corruptions as C
from backend.data.corruptions import (
    CORRUPTIONS,
    SEVERITY_TABLE,
    UnknownCorruptionError,
    corrupt,
    corrupt_dataset,
    create,
    list_corruptions,
    register_corruption,
)

torch.set_num_threads(1)

NAMES = list_corruptions()
SEVERITIES = [1, 2, 3, 4, 5]
NOISE = ["gaussian_noise", "shot_noise", "impulse_noise"]
RANDOM = {*NOISE, "glass_blur", "motion_blur", "snow", "frost", "fog", "elastic_transform"}
DETERMINISTIC = set(CORRUPTIONS) - RANDOM
# The mean absolute change from the clean image grows strictly with severity for all but these
# (reference parameters, not this implementation): motion_blur 3 -> 4 only lengthens a kernel
# whose extra taps weigh < 1e-6 (same sigma); glass_blur's severity 3 blurs more (sigma .4) but
# shuffles as little as 1 and 2, only 4 and 5 shuffle twice; frost darkens the image (weight
# .9, .85, .75) while adding more frost, which partly cancel; elastic_transform's affine jitter
# shrinks with severity (8 % -> 3 % of the side) while its elastic part grows; pixelate at 8 px
# rounds sides to 7, 7, 6, 6, 5 px.
NOT_MONOTONE = {"motion_blur", "glass_blur", "frost", "elastic_transform"}
NOT_MONOTONE_8PX = NOT_MONOTONE | {"pixelate"}


def _digits(n: int) -> torch.Tensor:
    """(n, 1, 8, 8) scikit-learn digits in [0, 1]."""
    return torch.from_numpy(load_digits().images[:n].astype(np.float32) / 16.0)[:, None]


def _natural(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, channels, size, size) natural-ish images: upscaled digits over a smooth colour field."""
    digits = F.interpolate(_digits(n), size=size, mode="bilinear", align_corners=False)
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, channels, 4, 4, generator=gen)
    field = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    return (0.6 * digits + 0.4 * field).clamp(0.0, 1.0)


RGB32 = _natural(8, 3, 32)
GRAY8 = _digits(8)
IMAGES = {"rgb32": RGB32, "gray8": GRAY8}


def _change(x: torch.Tensor, name: str, severity: int) -> float:
    return (corrupt(x, name, severity, seed=0) - x).abs().mean().item()


# --------------------------------------------------------------------------- registry


def test_registry_holds_the_15_corruptions_in_paper_order():
    assert NAMES == list(CORRUPTIONS)
    assert len(NAMES) == 15
    assert set(SEVERITY_TABLE) == set(NAMES)
    assert all(len(params) == 5 for params in SEVERITY_TABLE.values())


def test_unknown_name_raises_naming_it():
    with pytest.raises(UnknownCorruptionError, match="unknown corruption 'nope'; known: gauss"):
        corrupt(RGB32, "nope", 1)
    with pytest.raises(ValueError, match="'nope'"):
        create("nope")


@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, True, "3"])
def test_severity_outside_1_to_5_raises_naming_it(severity):
    with pytest.raises(ValueError, match=f"severity={severity!r}"):
        corrupt(RGB32, "contrast", severity)
    with pytest.raises(ValueError, match=f"severity={severity!r}"):
        create("contrast")(RGB32, severity, torch.Generator())


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.rand(3, 32, 32), r"\(N, C, H, W\)"),
        ((torch.rand(2, 3, 32, 32) * 255).to(torch.uint8), "floating"),
        (torch.rand(2, 3, 7, 32), "at least 8x8"),
        (np.zeros((2, 3, 32, 32), dtype=np.float32), "torch.Tensor"),
    ],
)
def test_bad_images_raise(x, match):
    with pytest.raises(ValueError, match=match):
        corrupt(x, "gaussian_noise", 1)


def test_generator_must_be_a_generator():
    with pytest.raises(ValueError, match="generator"):
        create("gaussian_noise")(RGB32, 1, 0)  # type: ignore[arg-type]


def test_registering_wraps_with_validation_and_clamping(monkeypatch):
    monkeypatch.setattr(C, "_REGISTRY", dict(C._REGISTRY))

    @register_corruption("double")
    def double(x, severity, generator):
        return 2 * x

    assert list_corruptions()[-1] == "double"
    out = corrupt(torch.full((1, 1, 8, 8), 0.75), "double", 1)
    assert out.max().item() == 1.0  # clamped
    with pytest.raises(ValueError, match="severity=9"):
        double(RGB32, 9, torch.Generator())
    with pytest.raises(ValueError, match="registered twice"):
        register_corruption("double")(double)


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("image", list(IMAGES))
@pytest.mark.parametrize("name", NAMES)
def test_output_keeps_shape_dtype_device_range_and_changes_the_image(name, image, severity):
    x = IMAGES[image]
    before = x.clone()
    out = corrupt(x, name, severity, seed=0)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    assert torch.equal(x, before), "the input was modified in place"
    assert (out - x).abs().max().item() > 1e-3, f"{name} severity {severity} left x unchanged"


@pytest.mark.parametrize(
    "shape", [(2, 1, 32, 32), (2, 3, 8, 8), (2, 3, 12, 20), (1, 3, 64, 48), (2, 4, 16, 16)]
)
@pytest.mark.parametrize("name", NAMES)
def test_other_sizes_and_channel_counts(name, shape):
    n, c, h, w = shape
    x = F.interpolate(_natural(n, c, 32), size=(h, w), mode="bilinear", align_corners=False)
    out = corrupt(x, name, 5, seed=1)
    assert out.shape == x.shape
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    assert (out - x).abs().max().item() > 1e-3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_other_float_dtypes_are_kept(name, dtype):
    x = RGB32[:2].to(dtype)
    out = corrupt(x, name, 3)
    assert out.dtype == dtype
    ref = corrupt(RGB32[:2], name, 3).to(torch.float64)
    if dtype == torch.float64:
        assert (out - ref).abs().max().item() < 1e-4


# --------------------------------------------------------------------------- severity


@pytest.mark.parametrize("name", NAMES)
def test_change_grows_with_severity(name):
    x = _natural(16, 3, 32, seed=1)
    changes = [_change(x, name, s) for s in SEVERITIES]
    if name not in NOT_MONOTONE:
        assert all(a < b for a, b in zip(changes, changes[1:], strict=False)), changes
    elif name == "motion_blur":
        assert all(a <= b + 1e-6 for a, b in zip(changes, changes[1:], strict=False)), changes
        assert changes[4] > changes[2] > changes[0], changes
    elif name == "glass_blur":  # two shuffling passes move pixels further than one
        assert min(changes[3:]) > max(changes[:3]), changes
    elif name == "frost":
        assert min(changes[1:]) > changes[0], changes
    digits = _digits(64)  # tiny images: average over many, snow flakes are few per image
    gray = [_change(digits, name, s) for s in SEVERITIES]
    if name not in NOT_MONOTONE_8PX:
        assert all(a < b for a, b in zip(gray, gray[1:], strict=False)), gray


@pytest.mark.parametrize("name", NOISE)
def test_noise_std_grows_with_severity(name):
    x = torch.full((4, 3, 32, 32), 0.5)
    stds = [(corrupt(x, name, s, seed=2) - x).std().item() for s in SEVERITIES]
    assert all(a < b for a, b in zip(stds, stds[1:], strict=False)), stds
    params = SEVERITY_TABLE[name]
    for std, c in zip(stds, params, strict=True):
        if name == "gaussian_noise":
            expected = c
        elif name == "shot_noise":
            expected = (0.5 / c) ** 0.5
        else:  # a fraction c of the values jumps by 0.5
            expected = 0.5 * c**0.5
        assert abs(std - expected) < 0.08 * expected, (std, expected)


def test_impulse_noise_sets_the_expected_fraction_to_0_or_1():
    x = torch.full((8, 3, 32, 32), 0.5)
    out = corrupt(x, "impulse_noise", 5, seed=0)
    hit = out != 0.5
    assert abs(hit.float().mean().item() - 0.07) < 0.01
    assert set(out[hit].unique().tolist()) == {0.0, 1.0}


# --------------------------------------------------------------------------- randomness


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_other_seed_differs_for_random_ones(name):
    a = corrupt(RGB32, name, 3, seed=0)
    assert torch.equal(a, corrupt(RGB32, name, 3, seed=0))
    b = corrupt(RGB32, name, 3, seed=1)
    if name in RANDOM:
        assert not torch.equal(a, b)
    else:
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_generator_state_drives_the_randomness(name):
    gen = torch.Generator().manual_seed(5)
    fn = create(name)
    first, second = fn(RGB32, 2, gen), fn(RGB32, 2, gen)
    again = fn(RGB32, 2, torch.Generator().manual_seed(5))
    assert torch.equal(first, again)
    assert torch.equal(first, second) == (name not in RANDOM)


# --------------------------------------------------------------------------- dataset helper


def test_corrupt_dataset_covers_every_row_in_order_and_is_reproducible():
    x = _natural(10, 3, 32)
    names, sevs = ["gaussian_noise", "contrast"], [1, 5]
    got = list(corrupt_dataset(x, names, sevs, seed=3, batch_size=4))
    assert [(n, s, len(b)) for n, s, b in got] == [
        (n, s, k) for n in names for s in sevs for k in (4, 4, 2)
    ]
    contrast5 = torch.cat([b for n, s, b in got if (n, s) == ("contrast", 5)])
    assert torch.allclose(contrast5, corrupt(x, "contrast", 5), atol=1e-6)
    again = list(corrupt_dataset(x.numpy(), names, sevs, seed=3, batch_size=4))
    assert all(torch.equal(a[2], b[2]) for a, b in zip(got, again, strict=True))
    other = list(corrupt_dataset(x, ["gaussian_noise"], [1], seed=4, batch_size=4))
    assert not torch.equal(other[0][2], got[0][2])
    # batches of one (name, severity) get different random numbers
    noisy = [b - x[i * 4 : i * 4 + len(b)] for i, (_, _, b) in enumerate(got[:2])]
    assert not torch.allclose(noisy[0], noisy[1])


def test_corrupt_dataset_defaults_to_everything():
    got = list(corrupt_dataset(GRAY8[:3], batch_size=8))
    assert [(n, s) for n, s, _ in got] == [(n, s) for n in NAMES for s in SEVERITIES]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": ["fog", "nope"]}, "unknown corruption 'nope'"),
        ({"severities": [1, 6]}, "severity=6"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_corrupt_dataset_validates_before_the_first_batch(kwargs, match):
    with pytest.raises(ValueError, match=match):
        corrupt_dataset(RGB32, **kwargs)


# --------------------------------------------------------------------------- references


def _to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _from_uint8_hwc(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float() / 255


@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_matches_pillow_box_resampling(severity):
    images = _to_uint8_hwc(RGB32)
    c = SEVERITY_TABLE["pixelate"][severity - 1]
    ref = np.stack(
        [
            np.asarray(
                Image.fromarray(im)
                .resize((int(32 * c), int(32 * c)), Image.Resampling.BOX)
                .resize((32, 32), Image.Resampling.BOX)
            )
            for im in images
        ]
    )
    ours = corrupt(_from_uint8_hwc(images), "pixelate", severity)
    assert (ours - _from_uint8_hwc(ref)).abs().max().item() <= 1.01 / 255  # Pillow's rounding


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_matches_pillow(channels, severity):
    quality = SEVERITY_TABLE["jpeg_compression"][severity - 1]
    images = _to_uint8_hwc(_natural(8, channels, 32, seed=2))
    ref = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im if channels == 3 else im[..., 0]).save(buf, "JPEG", quality=quality)
        ref.append(np.asarray(Image.open(buf)).reshape(im.shape))
    x = _from_uint8_hwc(images)
    ours = corrupt(x, "jpeg_compression", severity)
    ref_t = _from_uint8_hwc(np.stack(ref))
    # libjpeg's integer DCT rounds a few coefficients the other way: we differ from Pillow by
    # well under what Pillow's JPEG changes
    assert (ours - ref_t).abs().mean().item() < 0.5 * (ref_t - x).abs().mean().item()
    assert (ours - ref_t).abs().mean().item() < 1.5 / 255


def _reference_clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    # make_cifar_c.py clipped_zoom, verbatim but for names
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = ndimage.zoom(img[top : top + ch, top : top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top : trim_top + h, trim_top : trim_top + h]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_zoom_blur_matches_the_reference_at_32px(severity):
    stop = SEVERITY_TABLE["zoom_blur"][severity - 1]
    factors = np.arange(1, stop, 0.01)
    ref = []
    for im in RGB32.permute(0, 2, 3, 1).numpy():
        out = np.zeros_like(im)
        for z in factors:
            out += _reference_clipped_zoom(im, z)
        ref.append(np.clip((im + out) / (len(factors) + 1), 0, 1))
    ours = corrupt(RGB32, "zoom_blur", severity)
    assert (ours - torch.from_numpy(np.stack(ref)).permute(0, 3, 1, 2)).abs().max() < 1e-5


@pytest.mark.parametrize("severity", [1, 5])
def test_brightness_matches_hsv_round_trip(severity):
    c = SEVERITY_TABLE["brightness"][severity - 1]
    x = RGB32[:1].clone()
    x[0, :, 0, 0] = 0.0  # a black pixel becomes grey
    ours = corrupt(x, "brightness", severity)[0].permute(1, 2, 0).numpy()
    for i, j in [(0, 0), (5, 7), (16, 16), (31, 2)]:
        hue, sat, val = colorsys.rgb_to_hsv(*x[0, :, i, j].tolist())
        np.testing.assert_allclose(
            ours[i, j], colorsys.hsv_to_rgb(hue, sat, min(val + c, 1.0)), atol=1e-6
        )


def test_contrast_keeps_the_channel_means():
    out = corrupt(RGB32, "contrast", 5)
    np.testing.assert_allclose(out.mean(dim=(2, 3)), RGB32.mean(dim=(2, 3)), atol=1e-6)


def test_gaussian_blur_matches_scipy():
    x = RGB32.permute(0, 2, 3, 1).numpy().astype(np.float64)
    for sigma, truncate, mode, ours_mode in [
        (0.4, 4.0, "nearest", "replicate"),
        (1.9, 3.0, "reflect", "symmetric"),
    ]:
        ref = np.stack(
            [
                ndimage.gaussian_filter(im, (sigma, sigma, 0), mode=mode, truncate=truncate)
                for im in x
            ]
        )
        ours = C._gaussian_blur(torch.from_numpy(x).permute(0, 3, 1, 2), sigma, truncate, ours_mode)
        np.testing.assert_allclose(ours.permute(0, 2, 3, 1).numpy(), ref, atol=1e-10)


def test_defocus_kernels_are_normalised_disks():
    for radius, alias in SEVERITY_TABLE["defocus_blur"]:
        kernel = C._disk_kernel(radius, alias)
        assert abs(kernel.sum() - 1.0) < 1e-12
        np.testing.assert_allclose(kernel, kernel.T)
        np.testing.assert_allclose(kernel, kernel[::-1, ::-1])


def test_frost_texture_is_deterministic_and_frost_like():
    like = torch.zeros(1)
    tex = C.frost_texture(16, 3, 32, 32, torch.Generator().manual_seed(0), like)
    assert torch.equal(tex, C.frost_texture(16, 3, 32, 32, torch.Generator().manual_seed(0), like))
    assert tex.shape == (16, 3, 32, 32)
    assert 0.3 < tex.mean().item() < 0.6
    assert (tex[:, 2] >= tex[:, 0]).all()  # bluish white
    assert tex.std().item() > 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cuda(name):
    x = RGB32.cuda()
    out = corrupt(x, name, 4, seed=0)
    assert out.device == x.device and out.shape == x.shape
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    if name in DETERMINISTIC:
        cpu = corrupt(RGB32, name, 4, seed=0)
        assert (out.cpu() - cpu).abs().max().item() < 1e-4
