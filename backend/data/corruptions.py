"""The 15 common corruptions of CIFAR-10-C, batched, in pure torch.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019. The reference implementation is ``make_cifar_c.py`` in
github.com/hendrycks/robustness (``ImageNet-C/create_c/``); it works on one PIL image at a time
with NumPy, scikit-image, OpenCV, SciPy and ImageMagick (Wand). Every corruption here is a
function ``fn(x, severity, generator) -> Tensor``:

- ``x``: (N, C, H, W) floating tensor in [0, 1], any C (C = 3 is treated as RGB, anything else
  as independent grey channels), H, W >= 8; the digits dataset is (N, 1, 8, 8), CIFAR (N, 3,
  32, 32).
- ``severity``: int in 1..5.
- ``generator``: a ``torch.Generator`` on x's device; every random draw comes from it, so the
  result is a deterministic function of (x, severity, generator state) on CPU.

The output has x's shape, dtype and device and lies in [0, 1]. The whole batch is processed at
once on x's device (CUDA when the worker has one); no Python loop runs over images or pixels.

Severity table (the reference's parameters for CIFAR-size images; also :data:`SEVERITY_TABLE`):

=================  ==========================================================================
gaussian_noise     std of additive N(0, c^2): 0.04, 0.06, 0.08, 0.09, 0.10
shot_noise         Poisson photon count c, x' = Poisson(x c) / c: 500, 250, 100, 75, 50
impulse_noise      salt-and-pepper fraction (per value, half salt): .01, .02, .03, .05, .07
defocus_blur       (disk radius px, anti-alias sigma px): (.3,.4) (.4,.5) (.5,.6) (1,.2) (1.5,.1)
glass_blur         (sigma px, max shift px, iterations): (.05,1,1) (.25,1,1) (.4,1,1) (.25,1,2)
                   (.4,1,2)
motion_blur        ImageMagick (radius px, sigma px), angle ~ U(-45, 45) deg: (6,1) (6,1.5)
                   (6,2) (8,2) (9,2.5)
zoom_blur          zoom factors np.arange(1, stop, 0.01), stop 1.06 1.11 1.16 1.21 1.26 (7, 12,
                   16, 21, 26 factors: NumPy's arange includes 1.06 and 1.11 by rounding)
snow               (mean, std, zoom, threshold, blur radius px, blur sigma px, blend):
                   (.1,.2,1,.6,8,3,.95) (.1,.2,1,.5,10,4,.9) (.15,.3,1.75,.55,10,4,.9)
                   (.25,.3,2.25,.6,12,6,.85) (.3,.3,1.25,.65,14,12,.8)
frost              (image weight, frost weight): (1,.2) (1,.3) (.9,.4) (.85,.4) (.75,.45)
fog                (fog weight, fractal wibble decay): (.2,3) (.5,3) (.75,2.5) (1,2) (1.5,1.75)
brightness         added to HSV value: .05, .1, .15, .2, .3
contrast           factor around the per-channel mean: .75, .5, .4, .3, .15
elastic_transform  (displacement alpha, smoothing sigma, affine jitter) as fractions of the
                   side: (0,0,.08) (.05,.2,.07) (.08,.06,.06) (.1,.04,.05) (.1,.03,.03)
pixelate           side fraction of the BOX down/up-sampling: .95, .9, .85, .75, .65
jpeg_compression   JPEG quality: 80, 65, 58, 50, 40
=================  ==========================================================================

Image size. Parameters in pixels (defocus radius and sigma, glass sigma and shift, motion and
snow-streak radius and sigma, snow flake zoom, frost texture scale) are multiplied by
``s = max(1, min(H, W) / 32)``: they grow with images larger than CIFAR's 32 px, and are kept
at the CIFAR values for smaller images (e.g. the 8x8 digits), since shrinking a sub-pixel blur
further makes it vanish; corruptions are therefore relatively stronger on small images. By the
same rule zoom_blur's factors z become ``1 + (z - 1) * max(1, 32 / side)`` (the border moves by
as many pixels as on a 32-px image; unscaled, all of severity 1's factors are no-ops at 8 px).
The other parameters are already relative to the image (pixelate fraction, elastic fractions,
the fog fractal which spans the image, as ImageNet-C's 256-px fractal spans its 224-px crops)
or per pixel (noise, brightness, contrast); JPEG works on 8x8 blocks by definition.
``clipped_zoom`` is applied per axis, so non-square images work.

Deviations from the reference, all deliberate:

- frost: the reference blends random crops of six frost photographs, which are not shipped
  here and nothing is downloaded; a procedural frost texture (:func:`frost_texture`) stands in:
  smooth multi-octave value noise, thin bright ridges (crystal edges) and short streaks at two
  random orientations (needles), bluish white, mean about 0.47.
- snow: the snow layer is the reference's (thresholded zoomed Gaussian noise) but its
  ImageMagick motion blur is the torch re-implementation used for motion_blur.
- motion_blur: ImageMagick's ``MotionBlurImage`` re-implemented: a one-sided Gaussian kernel of
  width ``2 ceil(radius) + 1`` with taps at ``ceil(i (cos a, sin a) - 0.5)``, edge pixels
  replicated (the same algorithm as the imagecorruptions package, without its early stop).
- glass_blur: the reference swaps each pixel with a random neighbour in a sequential raster
  loop (900 dependent Python steps per image); here each iteration is one vectorised gather in
  which every pixel reads from an offset drawn from the displacement distribution that loop
  produces (measured once by simulation, see ``_GLASS_SHIFT_PMF``): same marginal
  displacements, but pixels can be duplicated or dropped instead of permuted.
- jpeg_compression: a JPEG codec without entropy coding (which is lossless): JFIF YCbCr,
  4:2:0 chroma subsampling (Pillow's default for RGB; grey images are coded as one luminance
  plane), 8x8 orthonormal DCT, the IJG tables scaled by libjpeg's quality formula, rounding
  quantisation, triangular ("fancy") chroma upsampling. Floating point instead of libjpeg's
  integer DCT: the output differs from Pillow's by about 1/255 on average (RGB; 0.3/255 grey),
  a quarter to a third of what the codec itself changes.
- pixelate: Pillow's BOX resampling coefficients, exactly, as resampling matrices.
- elastic_transform: OpenCV's ``warpAffine`` (bilinear, reflect-101 border) and SciPy's
  ``map_coordinates`` (order 1, mode reflect) re-implemented as bilinear gathers.
- Intermediate 8-bit round trips of the reference (PIL images, ImageMagick blobs, glass blur's
  ``np.uint8``, CIFAR-10-C's uint8 storage) are omitted: everything stays in floating point.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from backend.data.batches import model_input

CorruptionFn = Callable[[Tensor, int, torch.Generator], Tensor]

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 corruptions of CIFAR-10-C in the paper's (and :func:`list_corruptions`') order."""

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

SEVERITY_TABLE: dict[str, tuple[Any, ...]] = {
    # make_cifar_c.py, one entry per severity 1..5 (see the module docstring for the units)
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": (1.06, 1.11, 1.16, 1.21, 1.26),  # stop of np.arange(1, stop, 0.01)
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "elastic_transform": (
        (0, 0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
}

_REGISTRY: dict[str, CorruptionFn] = {}

# ITU-R BT.601 luma, as OpenCV's RGB2GRAY and JFIF's Y
_LUMA = (0.299, 0.587, 0.114)


class UnknownCorruptionError(ValueError):
    """Raised by :func:`create` for a name that is not registered."""


# --------------------------------------------------------------------------- registry


def register_corruption(name: str) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator: record a corruption under ``name``.

    The recorded (and returned) function validates its arguments, computes in float32 whatever
    x's floating dtype (so every dtype sees the same random numbers), clamps to [0, 1] and casts
    back to x's dtype, so the body only has to implement the corruption itself.
    """

    def deco(fn: CorruptionFn) -> CorruptionFn:
        if name in _REGISTRY:
            raise ValueError(f"corruption {name!r} is registered twice")

        @functools.wraps(fn)
        def checked(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
            _check_severity(severity)
            _check_images(x)
            _check_generator(generator, x)
            work = x.float()  # one precision, so every dtype gets the same random numbers
            out = fn(work, severity, generator)
            return out.clamp(0.0, 1.0).to(x.dtype)

        _REGISTRY[name] = checked
        return checked

    return deco


def list_corruptions() -> list[str]:
    """Registered corruption names: the 15 of CIFAR-10-C in the paper's order, then others."""
    return list(_REGISTRY)


def create(name: str) -> CorruptionFn:
    """The corruption ``name``; unknown names raise :class:`UnknownCorruptionError`."""
    if name not in _REGISTRY:
        raise UnknownCorruptionError(
            f"unknown corruption {name!r}; known: {', '.join(list_corruptions())}"
        )
    return _REGISTRY[name]


def corrupt(x: Tensor, name: str, severity: int, seed: int = 0) -> Tensor:
    """Corrupt a batch with a generator on x's device seeded with ``seed``.

    Args:
        x: (N, C, H, W) float in [0, 1], H, W >= 8.
        name: one of :func:`list_corruptions`.
        severity: 1..5.
        seed: the same seed gives the same random numbers for every name and severity (common
            random numbers), so severities differ only by their parameters.

    Returns:
        (N, C, H, W), x's dtype and device, in [0, 1].
    """
    fn = create(name)
    _check_severity(severity)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} should be an integer")
    if not isinstance(x, Tensor):
        raise ValueError(f"x should be a torch.Tensor, got {type(x).__name__}")
    generator = torch.Generator(device=x.device).manual_seed(seed)
    return fn(x, severity, generator)


def corrupt_dataset(
    x: Tensor | np.ndarray,
    names: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> Iterator[tuple[str, int, Tensor]]:
    """Corrupt a whole split batch by batch: memory stays at one batch per step.

    Arguments are validated before the first batch. Batch ``b`` (rows ``b * batch_size`` to
    ``(b + 1) * batch_size``) of every (name, severity) gets a generator seeded from
    ``(seed, b)``, so the output is reproducible for a given (seed, batch_size) and severities
    share their random numbers.

    Args:
        x: (N, C, H, W) float in [0, 1] or stored uint8 pixels (``x / 255``), a tensor or a
            NumPy array (e.g. ``ArrayDataset.x_test``); only one batch at a time is converted
            and moved.
        names: corruptions to apply (default: all, in :func:`list_corruptions` order).
        severities: severities (default 1..5).
        seed: non-negative integer.
        batch_size: rows per yielded batch.
        device: where to corrupt (default: x's device, CPU for NumPy input).

    Yields:
        ``(name, severity, batch)`` with batch (n <= batch_size, C, H, W) on ``device``, in the
        order names -> severities -> batches, so consecutive batches of one (name, severity)
        line up with ``x`` (and its labels) row by row.
    """
    names = list_corruptions() if names is None else list(names)
    fns = [create(name) for name in names]
    severities = list(SEVERITIES) if severities is None else list(severities)
    for severity in severities:
        _check_severity(severity)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} should be a non-negative integer")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} should be a positive integer")
    if x.ndim != 4:
        raise ValueError(f"x should be (N, C, H, W), got shape {tuple(x.shape)}")
    target = torch.device(device) if device is not None else None
    batch_seeds = [
        int(np.random.SeedSequence([seed, b]).generate_state(1, dtype=np.uint64)[0])
        for b in range(math.ceil(len(x) / batch_size))
    ]

    def batches() -> Iterator[tuple[str, int, Tensor]]:
        for name, fn in zip(names, fns, strict=True):
            for severity in severities:
                for b, start in enumerate(range(0, len(x), batch_size)):
                    part = x[start : start + batch_size]
                    xb = (
                        torch.from_numpy(np.ascontiguousarray(part))
                        if isinstance(part, np.ndarray)
                        else part
                    )
                    if target is not None:
                        xb = xb.to(target)
                    xb = model_input(xb)  # stored uint8 pixels: x / 255, this batch only
                    gen = torch.Generator(device=xb.device).manual_seed(batch_seeds[b])
                    yield name, severity, fn(xb, severity, gen)

    return batches()


def _check_severity(severity: object) -> None:
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer):
        raise ValueError(f"severity={severity!r} should be an integer in 1..5")
    if not 1 <= int(severity) <= 5:
        raise ValueError(f"severity={severity!r} should be in 1..5")


def _check_images(x: object) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"x should be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x should be (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x should be a floating tensor in [0, 1], got dtype {x.dtype}")
    if x.shape[2] < 8 or x.shape[3] < 8:
        raise ValueError(f"images should be at least 8x8, got {x.shape[2]}x{x.shape[3]}")


def _check_generator(generator: object, x: Tensor) -> None:
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator should be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != x.device.type:
        raise ValueError(
            f"generator is on {generator.device} but x is on {x.device}; "
            "create it with torch.Generator(device=x.device)"
        )


# --------------------------------------------------------------------------- helpers


def _pixel_scale(x: Tensor) -> float:
    """Factor for parameters in pixels: max(1, min(H, W) / 32) (see the module docstring)."""
    return max(1.0, min(x.shape[-2], x.shape[-1]) / 32.0)


def _uniform(
    shape: Sequence[int], low: float, high: float, generator: torch.Generator, like: Tensor
) -> Tensor:
    u = torch.rand(tuple(shape), generator=generator, device=like.device, dtype=like.dtype)
    return low + (high - low) * u


def _border_index(idx: Tensor, n: int, mode: str) -> Tensor:
    """Map integer indices (any range) into [0, n) like an image border mode.

    ``replicate`` (edge), ``reflect101`` (OpenCV's default, torch's 'reflect': ``gfedcb|abcdefgh``)
    or ``symmetric`` (SciPy's 'reflect', OpenCV's BORDER_REFLECT: ``fedcba|abcdefgh``).
    """
    if mode == "replicate" or n == 1:
        return idx.clamp(0, n - 1)
    if mode == "reflect101":
        period = 2 * (n - 1)
        i = idx.remainder(period)
        return torch.where(i >= n, period - i, i)
    if mode == "symmetric":
        period = 2 * n
        i = idx.remainder(period)
        return torch.where(i >= n, period - 1 - i, i)
    raise ValueError(f"border mode={mode!r} unknown")


def _pad(x: Tensor, ph: int, pw: int, mode: str) -> Tensor:
    """Pad the last two dims by (ph, pw) on each side; any width, unlike F.pad's reflect."""
    h, w = x.shape[-2:]
    ih = _border_index(torch.arange(-ph, h + ph, device=x.device), h, mode)
    iw = _border_index(torch.arange(-pw, w + pw, device=x.device), w, mode)
    return x.index_select(-2, ih).index_select(-1, iw)


def _filter2d(x: Tensor, kernel: np.ndarray, mode: str) -> Tensor:
    """Correlate every channel with one odd-sized (kh, kw) kernel; borders by ``mode``."""
    kh, kw = kernel.shape
    if kh == 1 and kw == 1:
        return x * float(kernel[0, 0])
    c = x.shape[1]
    weight = torch.as_tensor(kernel, dtype=x.dtype, device=x.device).expand(c, 1, kh, kw)
    return F.conv2d(_pad(x, kh // 2, kw // 2, mode), weight, groups=c)


def _gaussian_kernel1d(sigma: float, truncate: float) -> np.ndarray:
    """SciPy's ``gaussian_filter`` kernel: radius ``int(truncate * sigma + 0.5)``."""
    radius = int(truncate * sigma + 0.5) if sigma > 0 else 0
    if radius == 0:
        return np.ones(1)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _gaussian_blur(x: Tensor, sigma: float, truncate: float, mode: str) -> Tensor:
    """Separable Gaussian blur of the last two dims (skimage.filters.gaussian / SciPy)."""
    k = _gaussian_kernel1d(sigma, truncate)
    if len(k) == 1:
        return x
    return _filter2d(_filter2d(x, k[:, None], mode), k[None, :], mode)


def _luminance(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, 1, H, W): BT.601 luma for RGB, the mean otherwise."""
    if x.shape[1] == 3:
        w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


def _gather_pixels(x: Tensor, flat_index: Tensor) -> Tensor:
    """x (N, C, H, W), flat_index (N, H, W) into H*W -> (N, C, H, W), the same for all C."""
    n, c, h, w = x.shape
    idx = flat_index.reshape(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, h * w).gather(2, idx).reshape(n, c, h, w)


def _bilinear_sample(x: Tensor, rows: Tensor, cols: Tensor, mode: str) -> Tensor:
    """Sample x (N, C, H, W) at fractional (rows, cols) (N, H, W), bilinearly.

    Out-of-range neighbours are mapped by ``mode`` (OpenCV ``remap``/``warpAffine`` style: the
    border applies to the integer neighbours).
    """
    h, w = x.shape[-2:]
    r0f, c0f = torch.floor(rows), torch.floor(cols)
    fr, fc = (rows - r0f).unsqueeze(1), (cols - c0f).unsqueeze(1)
    r0, c0 = r0f.long(), c0f.long()
    ra, rb = _border_index(r0, h, mode), _border_index(r0 + 1, h, mode)
    ca, cb = _border_index(c0, w, mode), _border_index(c0 + 1, w, mode)
    top = _gather_pixels(x, ra * w + ca) * (1 - fc) + _gather_pixels(x, ra * w + cb) * fc
    bottom = _gather_pixels(x, rb * w + ca) * (1 - fc) + _gather_pixels(x, rb * w + cb) * fc
    return top * (1 - fr) + bottom * fr


def _motion_blur(x: Tensor, radius: float, sigma: float, angles_deg: Tensor) -> Tensor:
    """ImageMagick ``MotionBlurImage``, one angle per image.

    Kernel: ``exp(-i^2 / (2 sigma^2))`` for i in [0, 2 ceil(radius) + 1), normalised; tap i
    reads the pixel at offset ``ceil(i (cos a, sin a) - 0.5)`` (x right, y down), edges
    replicated. Taps below 1e-6 of the first are skipped (their weight is renormalised away).

    Args:
        x: (N, C, H, W).
        radius, sigma: in pixels.
        angles_deg: (N,) blur direction per image, degrees.
    """
    n, _, h, w = x.shape
    width = 2 * math.ceil(radius) + 1
    taps = np.exp(-(np.arange(width, dtype=np.float64) ** 2) / (2.0 * max(sigma, 1e-6) ** 2))
    taps = taps[taps >= 1e-6 * taps[0]]
    taps /= taps.sum()
    theta = torch.deg2rad(angles_deg.to(torch.float64))
    cos, sin = torch.cos(theta), torch.sin(theta)
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    out = torch.zeros_like(x)
    for i, weight in enumerate(taps):
        oy = torch.ceil(i * sin - 0.5).long()
        ox = torch.ceil(i * cos - 0.5).long()
        r = (rows[None, :] + oy[:, None]).clamp(0, h - 1)
        c = (cols[None, :] + ox[:, None]).clamp(0, w - 1)
        out = out + float(weight) * _gather_pixels(x, r[:, :, None] * w + c[:, None, :])
    return out


def _zoom_matrix(n: int, zoom: float) -> np.ndarray:
    """(n, n) linear map of the reference's ``clipped_zoom`` along one axis.

    Crop the central ``ceil(n / zoom)`` samples, ``scipy.ndimage.zoom`` them (order 1, corner
    aligned: output o reads input ``o (ch - 1) / (out - 1)``) to ``round(ch * zoom)``, and
    keep the central n.
    """
    ch = math.ceil(n / zoom)
    top = (n - ch) // 2
    out = round(ch * zoom)
    trim = (out - n) // 2
    m = np.zeros((n, n))
    for j in range(n):
        pos = top + ((j + trim) * (ch - 1) / (out - 1) if out > 1 else 0.0)
        i0 = min(int(math.floor(pos)), n - 1)
        f = pos - i0
        m[j, i0] += 1.0 - f
        if f > 0:
            m[j, min(i0 + 1, n - 1)] += f
    return m


def _apply_separable(x: Tensor, mh: np.ndarray, mw: np.ndarray) -> Tensor:
    """x (..., H, W) -> mh @ x @ mw.T, with mh (H', H) and mw (W', W)."""
    th = torch.as_tensor(mh, dtype=x.dtype, device=x.device)
    tw = torch.as_tensor(mw, dtype=x.dtype, device=x.device)
    return torch.matmul(torch.matmul(th, x), tw.T)


def _clipped_zoom(x: Tensor, zoom: float) -> Tensor:
    h, w = x.shape[-2:]
    return _apply_separable(x, _zoom_matrix(h, zoom), _zoom_matrix(w, zoom))


def _pil_box_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) coefficients of Pillow's BOX resampling (``precompute_coeffs``, Resample.c)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        for i in range(xmin, xmax):
            t = (i - center + 0.5) / filterscale
            m[xx, i] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = m[xx].sum()
        if total > 0:
            m[xx] /= total
    return m


def _value_noise(
    n: int, h: int, w: int, cell: float, generator: torch.Generator, like: Tensor
) -> Tensor:
    """(n, 1, h, w) bilinearly interpolated uniform noise on a grid of ``cell`` pixels."""
    cell = max(cell, 1.0)
    gh, gw = math.ceil(h / cell) + 1, math.ceil(w / cell) + 1
    grid = _uniform((n, 1, gh, gw), 0.0, 1.0, generator, like)
    size = (round((gh - 1) * cell) + 1, round((gw - 1) * cell) + 1)
    up = F.interpolate(grid, size=size, mode="bilinear", align_corners=True)
    return up[..., :h, :w]


def _plasma_fractal(
    n: int, mapsize: int, wibbledecay: float, generator: torch.Generator, like: Tensor
) -> Tensor:
    """(n, mapsize, mapsize) diamond-square height maps in [0, 1] (the reference's
    ``plasma_fractal``, batched; mapsize a power of two)."""
    maparray = torch.zeros(n, mapsize, mapsize, dtype=like.dtype, device=like.device)
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array: Tensor) -> Tensor:
        return array / 4 + wibble * _uniform(array.shape, -wibble, wibble, generator, like)

    while stepsize >= 2:
        half = stepsize // 2
        # squares: corner mean + wibble at each square's centre
        corner = maparray[:, 0:mapsize:stepsize, 0:mapsize:stepsize]
        square = corner + torch.roll(corner, shifts=-1, dims=1)
        square = square + torch.roll(square, shifts=-1, dims=2)
        maparray[:, half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(square)
        # diamonds: mean of the four neighbours (two centres, two corners) + wibble
        dr = maparray[:, half:mapsize:stepsize, half:mapsize:stepsize]
        ul = maparray[:, 0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = dr + torch.roll(dr, 1, dims=1) + ul + torch.roll(ul, -1, dims=2)
        maparray[:, 0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = dr + torch.roll(dr, 1, dims=2) + ul + torch.roll(ul, -1, dims=1)
        maparray[:, half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize = half
        wibble /= wibbledecay
    flat = maparray.reshape(n, -1)
    lo = flat.min(dim=1).values.view(n, 1, 1)
    hi = flat.max(dim=1).values.view(n, 1, 1)
    return (maparray - lo) / (hi - lo).clamp_min(1e-12)


def frost_texture(
    n: int, channels: int, h: int, w: int, generator: torch.Generator, like: Tensor
) -> Tensor:
    """Procedural stand-in for the reference's frost photographs.

    Sum of (a) smooth three-octave value noise (cells of 8, 4 and 2 px), (b) thin bright
    ridges ``(1 - |2 v - 1|)^8`` along the mid level of 4-px value noise v (crystal edges) and
    (c) "needles": sparse bright points (3 %) streaked by a one-sided motion blur (radius 4
    px, sigma 2 px) at two random orientations; clipped to [0, 1], mean about 0.47, tinted
    bluish white (0.88, 0.94, 1.0) for RGB. Pixel sizes scale like the other pixel parameters
    (``max(1, min(h, w) / 32)``).

    Args:
        n, channels, h, w: output shape.
        generator: source of randomness (on ``like``'s device).
        like: tensor whose dtype and device the texture takes.

    Returns:
        (n, channels, h, w) in [0, 1].
    """
    s = max(1.0, min(h, w) / 32.0)
    base = (
        0.5 * _value_noise(n, h, w, 8 * s, generator, like)
        + 0.3 * _value_noise(n, h, w, 4 * s, generator, like)
        + 0.2 * _value_noise(n, h, w, 2 * s, generator, like)
    )
    v = _value_noise(n, h, w, 4 * s, generator, like)
    ridges = (1.0 - (2.0 * v - 1.0).abs()) ** 8
    needles = torch.zeros_like(base)
    for _ in range(2):
        points = (_uniform((n, 1, h, w), 0.0, 1.0, generator, like) < 0.03).to(like.dtype)
        angles = _uniform((n,), 0.0, 360.0, generator, like)
        needles = needles + _motion_blur(points, 4 * s, 2 * s, angles)
    tex = (0.1 + 0.45 * base + 0.5 * ridges + 1.5 * needles).clamp(0.0, 1.0)
    if channels == 3:
        tint = torch.tensor((0.88, 0.94, 1.0), dtype=like.dtype, device=like.device)
        return tex * tint.view(1, 3, 1, 1)
    return tex.expand(n, channels, h, w)


# --------------------------------------------------------------------------- noise


@register_corruption("gaussian_noise")
def gaussian_noise(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """x + N(0, c^2) per value, c = 0.04..0.10 (make_cifar_c.py ``gaussian_noise``)."""
    c = SEVERITY_TABLE["gaussian_noise"][severity - 1]
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + c * noise


@register_corruption("shot_noise")
def shot_noise(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Poisson(x c) / c per value, c = 500..50 photons (make_cifar_c.py ``shot_noise``)."""
    c = float(SEVERITY_TABLE["shot_noise"][severity - 1])
    return torch.poisson(x.clamp(0.0, 1.0) * c, generator=generator) / c


@register_corruption("impulse_noise")
def impulse_noise(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Salt and pepper: a fraction c of the values (each channel independently, as
    ``skimage.util.random_noise(mode='s&p')``) set to 0 or 1 with equal probability."""
    c = SEVERITY_TABLE["impulse_noise"][severity - 1]
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    out = torch.where(u < c / 2, torch.zeros_like(x), x)
    return torch.where((u >= c / 2) & (u < c), torch.ones_like(x), out)


# --------------------------------------------------------------------------- blur


def _disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The reference's ``disk``: a normalised aliased disk, then cv2.GaussianBlur (3x3, or
    5x5 beyond radius 8) with sigma ``alias_blur``; cropped to its support."""
    ksize = 3 if radius <= 8 else 5
    half = int(math.floor(radius)) + ksize // 2
    t = np.arange(-half, half + 1, dtype=np.float64)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = np.exp(-((np.arange(ksize) - (ksize - 1) / 2) ** 2) / (2 * alias_blur**2))
    g /= g.sum()
    # the reference blurs inside a 17x17 array of zeros, so zero padding is exact here
    padded = np.pad(disk, ksize // 2)
    rows = sum(g[i] * padded[i : i + len(t), :] for i in range(ksize))
    out: np.ndarray = sum(g[i] * rows[:, i : i + len(t)] for i in range(ksize))
    return out


@register_corruption("defocus_blur")
def defocus_blur(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Convolution with an anti-aliased disk (make_cifar_c.py ``defocus_blur``; filter2D's
    reflect-101 border). Radius and anti-alias sigma in pixels, times max(1, side / 32)."""
    radius, alias = SEVERITY_TABLE["defocus_blur"][severity - 1]
    s = _pixel_scale(x)
    return _filter2d(x, _disk_kernel(radius * s, alias * s), "reflect101")


# Where a pixel's final value comes from after one pass of the reference's sequential swap loop
# (max shift 1): P(source - destination = (dy, dx)), dy (rows) and dx (columns) in -1..4.
# Monte Carlo over 1500 runs of the loop on 32x32 images, interior pixels, truncated at 4 px
# (98.3 % of the mass; renormalised). A value moves one step up-left with probability 3/4 at
# each visit and is then visited again, so values are carried down the raster order: 10.5 %
# stay, the mean L1 displacement is 1.6 px and the mean displacement is about zero.
_GLASS_SHIFT_PMF = np.array(
    [
        (0.2554, 0.1903, 0.0000, 0.0000, 0.0000, 0.0000),
        (0.1431, 0.1071, 0.0532, 0.0134, 0.0033, 0.0008),
        (0.0264, 0.0470, 0.0372, 0.0192, 0.0075, 0.0024),
        (0.0050, 0.0138, 0.0168, 0.0131, 0.0072, 0.0034),
        (0.0010, 0.0035, 0.0061, 0.0063, 0.0049, 0.0028),
        (0.0002, 0.0008, 0.0018, 0.0025, 0.0024, 0.0019),
    ]
)
_GLASS_SHIFT_MIN = -1


@register_corruption("glass_blur")
def glass_blur(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Gaussian blur, local pixel shuffling, Gaussian blur (make_cifar_c.py ``glass_blur``).

    The blurs are ``skimage.filters.gaussian`` (truncate 4, nearest border). The reference
    shuffles by swapping each pixel with a random up/left neighbour in a sequential raster loop;
    here each iteration is one vectorised gather: every pixel in the loop's range
    ``(max_shift, side - max_shift]`` reads the pixel at an offset drawn i.i.d. from
    :data:`_GLASS_SHIFT_PMF` (the displacement distribution the loop produces, times
    ``max_shift``), the same offset for all channels. The marginal displacements match the
    reference (two passes: 6.4 % unmoved vs 6.2 %, mean L1 shift 2.4 vs 2.6 px), but pixels may
    be duplicated or dropped instead of permuted.
    """
    sigma, shift, iterations = SEVERITY_TABLE["glass_blur"][severity - 1]
    s = _pixel_scale(x)
    sigma, shift = sigma * s, max(1, round(shift * s))
    n, _, h, w = x.shape
    x = _gaussian_blur(x, sigma, truncate=4.0, mode="replicate")
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    in_rows = (rows > shift) & (rows <= h - shift)
    in_cols = (cols > shift) & (cols <= w - shift)
    pmf = _GLASS_SHIFT_PMF / _GLASS_SHIFT_PMF.sum()
    cdf = torch.as_tensor(np.cumsum(pmf.ravel())[:-1], dtype=x.dtype, device=x.device)
    side = pmf.shape[1]
    for _ in range(iterations):
        u = torch.rand((n, h, w), generator=generator, device=x.device, dtype=x.dtype)
        cell = torch.searchsorted(cdf, u.reshape(-1), right=True).reshape(n, h, w)
        dr = torch.where(in_rows, (cell // side + _GLASS_SHIFT_MIN) * shift, 0)
        dc = torch.where(in_cols, (cell % side + _GLASS_SHIFT_MIN) * shift, 0)
        source = (rows + dr).clamp(0, h - 1) * w + (cols + dc).clamp(0, w - 1)
        x = _gather_pixels(x, source)
    return _gaussian_blur(x, sigma, truncate=4.0, mode="replicate")


@register_corruption("motion_blur")
def motion_blur(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """ImageMagick motion blur at a random angle U(-45, 45) degrees per image
    (make_cifar_c.py ``motion_blur``); radius and sigma in pixels, times max(1, side / 32)."""
    radius, sigma = SEVERITY_TABLE["motion_blur"][severity - 1]
    s = _pixel_scale(x)
    angles = _uniform((x.shape[0],), -45.0, 45.0, generator, x)
    return _motion_blur(x, radius * s, sigma * s, angles)


def _zoom_factors(severity: int) -> np.ndarray:
    stop = SEVERITY_TABLE["zoom_blur"][severity - 1]
    factors: np.ndarray = np.arange(1, stop, 0.01)
    return factors


@register_corruption("zoom_blur")
def zoom_blur(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Mean of x and its central zooms by each factor z in np.arange(1, stop, 0.01)
    (make_cifar_c.py ``zoom_blur`` and ``clipped_zoom``, bilinear); deterministic.

    ``clipped_zoom`` crops ``ceil(side / z)`` whole pixels, so factors below about
    ``1 + 1 / side`` do nothing (at 8 px all of severity 1's would); for images smaller than
    32 px each factor becomes ``1 + (z - 1) * 32 / side``, which keeps the reference's border
    displacement in pixels (the small-image rule of the module docstring).
    """
    h, w = x.shape[-2:]
    factors = _zoom_factors(severity)
    # below 32 px, keep the border displacement (zoom - 1) * side / 2 of a 32-px image
    stretch = max(1.0, 32.0 / min(h, w))
    out = x.clone()
    for zoom in 1.0 + (factors - 1.0) * stretch:
        out = out + _apply_separable(x, _zoom_matrix(h, float(zoom)), _zoom_matrix(w, float(zoom)))
    return out / (len(factors) + 1)


# --------------------------------------------------------------------------- weather


@register_corruption("snow")
def snow(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Streaked snow flakes over a greyed, brightened image (make_cifar_c.py ``snow``).

    Layer: N(mean, std^2) per pixel, central zoom (flake size in pixels, so times
    max(1, side / 32) like the other pixel parameters), values below the threshold set to 0,
    clipped,
    motion-blurred (radius, sigma px, times max(1, side / 32)) at U(-135, -45) degrees; the
    image becomes ``blend x + (1 - blend) max(x, 1.5 luma(x) + 0.5)`` and the output is
    ``x + layer + layer rotated by 180 degrees``.
    """
    loc, std, zoom, threshold, radius, sigma, blend = SEVERITY_TABLE["snow"][severity - 1]
    n, _, h, w = x.shape
    s = _pixel_scale(x)
    layer = loc + std * torch.randn(
        (n, 1, h, w), generator=generator, device=x.device, dtype=x.dtype
    )
    layer = _clipped_zoom(layer, zoom * s)  # the zoom sets the flake size in pixels
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0.0, 1.0)
    angles = _uniform((n,), -135.0, -45.0, generator, x)
    layer = _motion_blur(layer, radius * s, sigma * s, angles)
    x = blend * x + (1 - blend) * torch.maximum(x, _luminance(x) * 1.5 + 0.5)
    return x + layer + torch.flip(layer, dims=(-2, -1))


@register_corruption("frost")
def frost(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """``a x + b frost`` (make_cifar_c.py ``frost``) with the procedural
    :func:`frost_texture` in place of crops of the reference's frost photographs."""
    a, b = SEVERITY_TABLE["frost"][severity - 1]
    n, c, h, w = x.shape
    return a * x + b * frost_texture(n, c, h, w, generator, x)


@register_corruption("fog")
def fog(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """``(x + a plasma) max(x) / (max(x) + a)`` (make_cifar_c.py ``fog``).

    The diamond-square fractal is generated on the smallest power-of-two square covering the
    image (32 for CIFAR, as the reference; 8 for 8x8) and cropped; max(x) is per image.
    """
    a, decay = SEVERITY_TABLE["fog"][severity - 1]
    n, _, h, w = x.shape
    mapsize = 1 << max(1, math.ceil(math.log2(max(h, w))))
    plasma = _plasma_fractal(n, mapsize, decay, generator, x)[:, None, :h, :w]
    max_val = x.reshape(n, -1).max(dim=1).values.view(n, 1, 1, 1)
    return (x + a * plasma) * max_val / (max_val + a)


# --------------------------------------------------------------------------- digital


@register_corruption("brightness")
def brightness(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """HSV value + c, clipped (make_cifar_c.py ``brightness``).

    With V = max over channels, HSV -> RGB with unchanged hue and saturation scales every
    channel by V' / V, and a black pixel (V = 0, S = 0) becomes grey V'. With one channel this
    is ``clip(x + c)``.
    """
    c = SEVERITY_TABLE["brightness"][severity - 1]
    value = x.amax(dim=1, keepdim=True)
    new_value = (value + c).clamp(0.0, 1.0)
    ratio = new_value / value.clamp_min(1e-12)
    return torch.where(value > 0, x * ratio, new_value.expand_as(x))


@register_corruption("contrast")
def contrast(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """``(x - mean) c + mean`` with the per-image, per-channel mean (make_cifar_c.py)."""
    c = SEVERITY_TABLE["contrast"][severity - 1]
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * c + means


@register_corruption("elastic_transform")
def elastic_transform(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Random affine warp, then a smooth random displacement field (make_cifar_c.py
    ``elastic_transform``, after Simard et al. 2003).

    With L = min(H, W) (the reference's IMSIZE = 32) and (alpha, sigma, jitter) the table's
    fractions times L: the three points ``centre + (L//3) * [(1, 1), (1, -1), (-1, -1)]`` move
    by U(-jitter, jitter) each and define the affine map (cv2.getAffineTransform; warped
    bilinearly, reflect-101 border); then each pixel is read at ``(r + dy, c + dx)`` with dx, dy
    = alpha * gaussian_filter(U(-1, 1), sigma, truncate 3, reflect) (bilinear, symmetric
    border).
    """
    fa, fs, fj = SEVERITY_TABLE["elastic_transform"][severity - 1]
    n, _, h, w = x.shape
    side = min(h, w)
    alpha, sigma, jitter = fa * side, fs * side, fj * side
    dev, dt = x.device, x.dtype

    cx, cy, sq = float(w // 2), float(h // 2), float(side // 3)
    pts1 = torch.tensor(
        [[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]], dtype=torch.float64
    ).to(dev)
    pts2 = pts1 + _uniform((n, 3, 2), -jitter, jitter, generator, x).to(torch.float64)
    ones = torch.ones(3, 1, dtype=torch.float64, device=dev)
    src = torch.cat([pts1, ones], dim=1)  # (3, 3): rows [x, y, 1]
    forward_t = torch.linalg.solve(src.expand(n, 3, 3), pts2)  # (n, 3, 2) = M^T
    full = torch.zeros(n, 3, 3, dtype=torch.float64, device=dev)
    full[:, :2, :] = forward_t.transpose(1, 2)
    full[:, 2, 2] = 1.0
    inverse = torch.linalg.inv(full)  # warpAffine: dst(p) = src(M^-1 p)
    rr, cc = torch.meshgrid(
        torch.arange(h, dtype=torch.float64, device=dev),
        torch.arange(w, dtype=torch.float64, device=dev),
        indexing="ij",
    )
    src_c = inverse[:, 0, 0, None, None] * cc + inverse[:, 0, 1, None, None] * rr
    src_r = inverse[:, 1, 0, None, None] * cc + inverse[:, 1, 1, None, None] * rr
    src_c = src_c + inverse[:, 0, 2, None, None]
    src_r = src_r + inverse[:, 1, 2, None, None]
    x = _bilinear_sample(x, src_r.to(dt), src_c.to(dt), "reflect101")

    fields = _uniform((n, 2, h, w), -1.0, 1.0, generator, x)
    fields = _gaussian_blur(fields, sigma, truncate=3.0, mode="symmetric") * alpha
    dx, dy = fields[:, 0], fields[:, 1]
    base_r, base_c = rr.to(dt), cc.to(dt)
    return _bilinear_sample(x, base_r + dy, base_c + dx, "symmetric")


@register_corruption("pixelate")
def pixelate(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """BOX-downsample each side to ``int(side * c)`` and BOX-upsample back (make_cifar_c.py
    ``pixelate``; Pillow's BOX coefficients). Deterministic; at 8 px severities 1 and 2 (and 3
    and 4) give the same size, so the same image."""
    c = SEVERITY_TABLE["pixelate"][severity - 1]
    h, w = x.shape[-2:]
    sh, sw = max(1, int(h * c)), max(1, int(w * c))
    mh = _pil_box_matrix(sh, h) @ _pil_box_matrix(h, sh)
    mw = _pil_box_matrix(sw, w) @ _pil_box_matrix(w, sw)
    return _apply_separable(x, mh, mw)


_JPEG_LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ]
)
_JPEG_CHROMA_TABLE = np.array(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ]
)


def _jpeg_quant_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg ``jpeg_quality_scaling`` + ``jpeg_add_quant_table`` (force_baseline)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table: np.ndarray = np.clip((base * scale + 50) // 100, 1, 255).astype(np.float64)
    return table


def _dct_matrix() -> np.ndarray:
    """(8, 8) orthonormal DCT-II: JPEG's FDCT is D B D^T on a level-shifted 8x8 block B."""
    k = np.arange(8)[:, None]
    i = np.arange(8)[None, :]
    d = np.cos((2 * i + 1) * k * np.pi / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


def _jpeg_plane(plane: Tensor, table: np.ndarray) -> Tensor:
    """DCT-quantise-dequantise-IDCT a (N, C, H, W) plane in 0..255, H, W multiples of 8."""
    n, c, h, w = plane.shape
    d = torch.as_tensor(_dct_matrix(), dtype=plane.dtype, device=plane.device)
    q = torch.as_tensor(table, dtype=plane.dtype, device=plane.device)
    blocks = (plane - 128.0).reshape(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)
    coef = d @ blocks @ d.T
    coef = torch.round(coef / q) * q
    blocks = d.T @ coef @ d
    return blocks.transpose(3, 4).reshape(n, c, h, w) + 128.0


@register_corruption("jpeg_compression")
def jpeg_compression(x: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """JPEG at quality q = 80..40 (make_cifar_c.py saves with Pillow); see the module
    docstring for the codec. Edges are replicated to whole blocks (16 px for subsampled RGB,
    8 px otherwise) and cropped after decoding. Deterministic."""
    quality = SEVERITY_TABLE["jpeg_compression"][severity - 1]
    luma_q = _jpeg_quant_table(_JPEG_LUMA_TABLE, quality)
    n, c, h, w = x.shape
    if c != 3:
        ph, pw = -h % 8, -w % 8
        plane = _pad_end(x * 255.0, ph, pw)
        return _jpeg_plane(plane, luma_q)[..., :h, :w] / 255.0
    chroma_q = _jpeg_quant_table(_JPEG_CHROMA_TABLE, quality)
    rgb = _pad_end(x * 255.0, -h % 16, -w % 16)
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
    chroma = F.avg_pool2d(torch.cat([cb, cr], dim=1), 2)
    y = _jpeg_plane(y, luma_q)
    chroma = _jpeg_plane(chroma, chroma_q)
    # libjpeg's h2v2 "fancy" upsampling: triangle filter 3/4, 1/4, edges replicated
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    cb, cr = chroma[:, 0:1] - 128.0, chroma[:, 1:2] - 128.0
    out = torch.cat([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    return out[..., :h, :w] / 255.0


def _pad_end(x: Tensor, ph: int, pw: int) -> Tensor:
    """Replicate the last row/column ``ph``/``pw`` times (libjpeg's edge expansion)."""
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")
