"""The ``imagefolder`` upload format: PNG/JPEG images in class folders, in a zip or tar.

``[root/]<class>/<image>`` files (``.png``, ``.jpg``, ``.jpeg``), or ``root/train/<class>/...``
with ``root/test`` (or ``val``, ``valid``, ``validation``) kept as the split; class names are
the folder names, sorted; without a test folder the images are split by ``test_fraction``.
All images must have one size; 8-bit grayscale stays one channel, anything else becomes RGB
(grayscale mixed with colour becomes RGB too), alpha channels are dropped with a warning.

Guarantees: only PNG and JPEG are decoded (PIL's other decoders are never reached); each
image's size is read from its header and refused, before its pixels are decoded, when a side
exceeds :attr:`Limits.max_image_side` or it differs from the first image; the decoded total is
bounded by :attr:`Limits.max_total_uncompressed`; 16-bit and float images are refused.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image

from backend.data.archives import Member, Source
from backend.data.arrays import Loaded, ReadOptions, stored_inputs
from backend.data.limits import DatasetFormatError, Limits

__all__ = ["looks_like", "read_upload"]

_IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_PIL_FORMATS = ("PNG", "JPEG")
# folder name -> split, in order of preference for the test split
_SPLIT_DIRS = {"train": "train", "test": "test", "val": "test", "valid": "test"}
_SPLIT_DIRS["validation"] = "test"


def looks_like(names: list[str]) -> bool:
    """An image folder holds at least one .png, .jpg or .jpeg file."""
    return any(n.lower().endswith(_IMAGE_EXTS) for n in names)


def _image_layout(images: list[Member], warnings: list[str]) -> dict[str, str | None]:
    """member name -> split ('train'/'test', or None when the folder has no split)."""
    containers: dict[tuple[str, ...], str] = {}
    for m in images:
        parts = tuple(m.name.split("/"))
        if len(parts) < 2:
            raise DatasetFormatError(
                f"{m.name}: images must sit in <class>/<image> folders (under an optional root)"
            )
        containers.setdefault(parts[:-2], m.name)
    if len(containers) == 1:
        return {m.name: None for m in images}
    parents = {c[:-1] for c in containers if c}
    lasts = {c[-1].lower(): c for c in containers if c}
    if len(parents) == 1 and len(lasts) == len(containers) and set(lasts) <= set(_SPLIT_DIRS):
        if "train" in lasts:
            test_dir = next((d for d in _SPLIT_DIRS if d != "train" and d in lasts), None)
            keep = {lasts["train"]: "train"}
            if test_dir is not None:
                keep[lasts[test_dir]] = "test"
            dropped = sorted(set(lasts) - {"train", test_dir or ""})
            if dropped:
                warnings.append(f"ignored the {', '.join(dropped)} folder(s)")
            return {
                m.name: keep.get(tuple(m.name.split("/"))[:-2])
                for m in images
                if tuple(m.name.split("/"))[:-2] in keep
            }
    a, b = list(containers.values())[:2]
    raise DatasetFormatError(
        f"images must sit in <root>/<class>/<image> under one root (or root/train and "
        f"root/test); found {a!r} and {b!r}"
    )


def _decode_image(
    data: bytes, name: str, limits: Limits, first: tuple[str, tuple[int, int]] | None
) -> tuple[np.ndarray, bool]:
    """(H, W) or (H, W, 3) uint8, and whether an alpha channel was dropped."""
    try:
        with Image.open(io.BytesIO(data), formats=_PIL_FORMATS) as im:
            w, h = im.size
            side = limits.max_image_side
            if w > side or h > side:
                raise DatasetFormatError(f"{name}: {w}x{h} pixels, beyond the {side}x{side} limit")
            if first is not None and first[1] != (w, h):
                fw, fh = first[1]
                raise DatasetFormatError(
                    f"images differ in size: {first[0]} is {fw}x{fh} but {name} is {w}x{h}; "
                    "resize them to one size"
                )
            if im.mode in ("1", "L", "LA"):
                return np.asarray(im.convert("L")), im.mode == "LA"
            if im.mode.startswith(("I", "F")):
                raise DatasetFormatError(
                    f"{name}: mode {im.mode} (16-bit or float pixels) is not supported; "
                    "save 8-bit PNG or JPEG"
                )
            alpha = "A" in im.mode or "transparency" in im.info
            return np.asarray(im.convert("RGB")), alpha
    except DatasetFormatError:
        raise
    except Image.DecompressionBombError as exc:
        raise DatasetFormatError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise DatasetFormatError(f"{name}: not a readable PNG or JPEG image ({exc})") from exc


def read_upload(src: Source, opts: ReadOptions) -> Loaded:
    """The splits of an image-folder archive (see the module docstring)."""
    images = [m for m in src.members if m.name.lower().endswith(_IMAGE_EXTS)]
    skipped = [m.name for m in src.members if not m.name.lower().endswith(_IMAGE_EXTS)]
    if skipped:
        opts.warnings.append(f"ignored {len(skipped)} non-image files: {', '.join(skipped[:3])}")
    if not images:
        raise DatasetFormatError("no .png, .jpg or .jpeg images in the upload")
    if len(images) > opts.limits.max_samples:
        raise DatasetFormatError(
            f"{len(images)} images, more than the limit of {opts.limits.max_samples}"
        )
    split_of = _image_layout(images, opts.warnings)
    images = [m for m in images if m.name in split_of]
    class_of = {m.name: m.name.split("/")[-2] for m in images}
    class_names = sorted(set(class_of.values()))

    pixels: dict[str, np.ndarray] = {}
    first: tuple[str, tuple[int, int]] | None = None
    alpha = False
    for m in images:  # archive order: a compressed tar is read front to back once
        opts.tick()
        arr, dropped = _decode_image(src.read(m), m.name, opts.limits, first)
        alpha |= dropped
        if first is None:
            first = (m.name, (arr.shape[1], arr.shape[0]))
            if len(images) * arr.shape[0] * arr.shape[1] * 3 > opts.limits.max_total_uncompressed:
                raise DatasetFormatError(
                    f"{len(images)} images of {arr.shape[1]}x{arr.shape[0]} pixels exceed "
                    f"{opts.limits.max_total_uncompressed} bytes once decoded"
                )
            # every image decoded (as RGB at most), then stacked into one array
            decoded = len(images) * arr.shape[0] * arr.shape[1] * 3
            opts.reserve(2 * decoded + 6 * 8 * len(images), decoded, src.label)
        pixels[m.name] = arr
    color = any(a.ndim == 3 for a in pixels.values())
    if color and any(a.ndim == 2 for a in pixels.values()):
        opts.warnings.append("grayscale and colour images are mixed; all were made RGB")
    if alpha:
        opts.warnings.append("alpha channels (transparency) were dropped")

    def stack(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if color:
            arrays = [
                np.repeat(pixels[n][..., None], 3, axis=2) if pixels[n].ndim == 2 else pixels[n]
                for n in names
            ]
            x = np.stack(arrays).transpose(0, 3, 1, 2)
        else:
            x = np.stack([pixels[n] for n in names])[:, None]
        y = np.array([class_names.index(class_of[n]) for n in names], dtype=np.int64)
        return stored_inputs(x, "images", opts.warnings), y

    ordered = sorted(pixels, key=lambda n: (class_names.index(class_of[n]), n))
    if all(s is None for s in split_of.values()):
        return Loaded("uint8", class_names, pool=stack(ordered))
    train = stack([n for n in ordered if split_of[n] == "train"])
    tests = [n for n in ordered if split_of[n] == "test"]
    if not tests:
        opts.warnings.append("no test folder; the train folder was split by test_fraction")
        return Loaded("uint8", class_names, pool=train)
    return Loaded("uint8", class_names, train=train, test=stack(tests))
