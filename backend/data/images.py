"""Rendering dataset samples as small PNG images (the sample view, corrupted versions)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

__all__ = ["MIN_IMAGE_SIDE", "is_image", "png_data_url", "sample_png"]

MIN_IMAGE_SIDE = 8  # the corruptions' filters need at least this many pixels a side


def is_image(input_shape: list[int] | tuple[int, ...]) -> bool:
    """Inputs the corruptions apply to: (C, H, W) with H, W >= MIN_IMAGE_SIDE."""
    return len(input_shape) == 3 and min(input_shape[1:]) >= MIN_IMAGE_SIDE


def sample_png(x: np.ndarray, min_size: int = 64) -> bytes:
    """Encode one input (C, H, W) or (H, W) with values in [0, 1] as an upscaled PNG."""
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))
    if x.ndim not in (2, 3):
        raise ValueError("not an image")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:  # normalised inputs: rescale for display only
        x = (x - lo) / (hi - lo or 1.0)
    img = Image.fromarray((np.clip(x, 0, 1) * 255).round().astype(np.uint8))
    scale = max(1, -(-min_size // max(img.size)))
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_data_url(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding a PNG in JSON."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
