"""Uploaded datasets: which format an upload is, and reading it into an ArrayDataset.

:func:`read_dataset` turns one upload into an :class:`~backend.data.registry.ArrayDataset`
(float32 inputs, (N, C, H, W) images or (N, D) features, int64 labels) plus a summary dict;
:func:`detect_format` tells the format from the content, never the file name. This module is
the entry point and the registry; each format is one module (its docstring says what it
accepts and what it guarantees):

- ``npz``: :mod:`backend.data.npz`, arrays ``X``/``y`` or ``x_train``/``y_train``[/``x_test``/
  ``y_test``] in a NumPy .npz.
- ``cifar10``: :mod:`backend.data.cifar10`, the CIFAR-10 python tar.gz, read by an unpickler
  that can run no code.
- ``cifar10c``: :mod:`backend.data.cifar10c`, ``<corruption>.npy`` files next to
  ``labels.npy`` (Hendrycks & Dietterich, ICLR 2019), one corruption as the test split.
- ``mnist``: :mod:`backend.data.mnist`, MNIST / Fashion-MNIST idx files, raw or gzipped.
- ``imagefolder``: :mod:`backend.data.imagefolder`, ``[root/]<class>/<image>`` PNG/JPEG
  files (or ``root/train`` and ``root/test``).

Safety: every upload, whatever its format, is opened through :mod:`backend.data.archives`,
which lists and checks a zip, tar or folder before a byte of a member is read and bounds
every read (:class:`Limits`, in :mod:`backend.data.limits`); arrays are converted and
validated by :mod:`backend.data.arrays`. Everything refused raises
:class:`DatasetFormatError` with a message naming the member or value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.data import cifar10, cifar10c, imagefolder, mnist, npz
from backend.data.archives import Source, open_source
from backend.data.arrays import Loaded, ReadOptions, channel_stats, stratified_split
from backend.data.cifar10 import CIFAR10_CLASSES
from backend.data.limits import DatasetFormatError, Limits
from backend.data.registry import ArrayDataset
from backend.data.stored import DatasetWriter

__all__ = [
    "CIFAR10_CLASSES",
    "FORMATS",
    "DatasetFormatError",
    "Limits",
    "check_classes",
    "detect_format",
    "import_dataset",
    "read_dataset",
]

# format name -> reader; the order is the one the UI and the CLI list
_READERS: dict[str, Callable[[Source, ReadOptions], Loaded]] = {
    "npz": npz.read_upload,
    "cifar10": cifar10.read_upload,
    "cifar10c": cifar10c.read_upload,
    "mnist": mnist.read_upload,
    "imagefolder": imagefolder.read_upload,
}
FORMATS = tuple(_READERS)

# The most specific layout wins: a CIFAR-10 or MNIST archive may also hold stray .npy or image
# files, and a CIFAR-10-C folder's .npy files must not be taken for an npz.
_DETECTION_ORDER: tuple[tuple[str, Callable[[list[str]], bool]], ...] = (
    ("cifar10", cifar10.looks_like),
    ("mnist", mnist.looks_like),
    ("npz", npz.looks_like),
    ("cifar10c", cifar10c.looks_like),
    ("imagefolder", imagefolder.looks_like),
)


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of an upload, told from its content, not its file name.

    Args:
        path: a zip, tar (optionally gz/bz2/xz), .npz or folder.

    Returns:
        One of :data:`FORMATS`.

    Raises:
        DatasetFormatError: not an archive, an unsafe archive, or no known layout inside.
        FileNotFoundError: ``path`` does not exist.
    """
    with open_source(Path(path), Limits()) as src:
        return _detect(src)


def _detect(src: Source) -> str:
    names = [m.name for m in src.members]
    fmt = next((fmt for fmt, looks_like in _DETECTION_ORDER if looks_like(names)), None)
    if fmt is None:
        shown = ", ".join(m.name for m in src.members[:5]) or "no files"
        raise DatasetFormatError(
            f"cannot tell the dataset format of {src.label}: found {shown}; expected one of "
            f"{', '.join(FORMATS)}"
        )
    return fmt


def _options(
    fmt: str | None,
    test_fraction: float,
    seed: int,
    corruption: str | None,
    severity: int | None,
    limits: Limits | None,
) -> ReadOptions:
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} should be one of {', '.join(FORMATS)}")
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, int | float)
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ValueError(f"test_fraction={test_fraction!r} should be in (0, 1)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} should be a non-negative integer")
    if severity is not None and (
        isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5
    ):
        raise ValueError(f"severity={severity!r} should be an integer in 1..5")
    if corruption is not None and not isinstance(corruption, str):
        raise ValueError(f"corruption={corruption!r} should be a string")
    return ReadOptions(corruption, severity, limits if limits is not None else Limits(), [])


def read_dataset(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    corruption: str | None = None,
    severity: int | None = None,
    limits: Limits | None = None,
) -> tuple[ArrayDataset, dict[str, Any]]:
    """Read an uploaded dataset file into an in-memory :class:`ArrayDataset`.

    (The import job streams into the stored form instead: :func:`import_dataset`.)

    Args:
        path: the upload: a zip, tar (optionally gz/bz2/xz), .npz, or a folder.
        fmt: one of :data:`FORMATS`; default: :func:`detect_format` on the content.
        test_fraction: share of each class held out for the test split when the upload has
            a single pool of samples (npz X/y, image folder, a lone split); in (0, 1).
        seed: seed of that stratified split.
        corruption: CIFAR-10-C corruption to read (required when the upload has several).
        severity: CIFAR-10-C severity 1..5 (default: all five, concatenated).
        limits: safety bounds (default :class:`Limits()`).

    Returns:
        ``(dataset, summary)``. dataset: x (N, C, H, W) or (N, D), uint8 where the upload's
        inputs are uint8 (standing for ``x / 255``) and float32 otherwise; y (N,) int64.
        summary: ``format``, ``source``, ``n_train``, ``n_test``, ``input_shape``,
        ``num_classes``, ``class_names``, ``class_counts`` ({"train": [...], "test": [...]},
        one count per class), ``normalisation`` ({"mean": [...], "std": [...], "split": ...}:
        per channel (per feature for (N, D)) over the training inputs, or over the test
        inputs when the train split is empty; population std, in the units the model reads:
        uint8 as x / 255), ``dtype_in`` (the upload's dtype), ``split`` ("file", "random" or
        "test_only"), ``warnings`` (list of str), ``peak_memory_estimate`` (bytes) and for
        CIFAR-10-C ``corruption`` and ``severity``.

    Raises:
        DatasetFormatError: the upload is unsafe, malformed or not a usable dataset (labels
            out of range, fewer than two classes, NaN/Inf inputs, ...).
        ValueError: a bad argument (fmt, test_fraction, seed, severity).
        FileNotFoundError: ``path`` does not exist.
    """
    opts = _options(fmt, test_fraction, seed, corruption, severity, limits)
    plan = _plan(Path(path), fmt, float(test_fraction), seed, opts)
    x_train, y_train = plan.materialise("train")
    x_test, y_test = plan.materialise("test")
    ds = ArrayDataset(x_train, y_train, x_test, y_test, plan.names, plan.params)
    return ds, plan.summary


def import_dataset(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    corruption: str | None = None,
    severity: int | None = None,
    limits: Limits | None = None,
    max_memory: int | None = None,
    check: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Read an upload and write it in the stored form (:mod:`backend.data.stored`) to ``out``,
    with the memory of one decoded copy of its arrays and a few chunks.

    Args (besides those of :func:`read_dataset`):
        out: the file to write.
        max_memory: refuse, before reading any data, an upload whose import would need more
            memory than this many bytes (:meth:`ReadOptions.reserve`); None: no bound.
        check: called between chunks of every long step (a job's cancellation check).

    Returns:
        The summary (see :func:`read_dataset`).
    """
    opts = _options(fmt, test_fraction, seed, corruption, severity, limits)
    opts.max_memory, opts.check = max_memory, check
    plan = _plan(Path(path), fmt, float(test_fraction), seed, opts)
    with DatasetWriter(out) as w:
        for split in ("train", "test"):
            x, rows, y = plan.splits[split]
            w.array(f"x_{split}", x, rows, check)
            w.array(f"y_{split}", y)
        w.array("class_names", np.array(plan.names))
    return plan.summary


@dataclass
class _Plan:
    """A read upload before it is stored: per split the inputs, the rows of them it takes
    (None: all) and its labels (already taken); the class names, params and summary."""

    splits: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]]
    names: list[str]
    params: dict[str, Any]
    summary: dict[str, Any]

    def materialise(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        x, rows, y = self.splits[split]
        return (x if rows is None else x[rows]), y


def _plan(path: Path, fmt: str | None, test_fraction: float, seed: int, opts: ReadOptions) -> _Plan:
    with open_source(path, opts.limits) as src:
        fmt = fmt or _detect(src)
        if src.ignored:
            opts.warnings.append(
                f"ignored {len(src.ignored)} hidden or system files: {', '.join(src.ignored[:3])}"
            )
        loaded = _READERS[fmt](src, opts)
    return _finish(loaded, fmt, path.name, test_fraction, seed, opts)


def _finish(
    loaded: Loaded, fmt: str, source: str, test_fraction: float, seed: int, opts: ReadOptions
) -> _Plan:
    warnings = opts.warnings
    params: dict[str, Any] = {"format": fmt, "source": source}
    splits: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]]
    if loaded.pool is not None:
        x, y = loaded.pool
        tr, te = stratified_split(y, test_fraction, seed)
        splits = {"train": (x, tr, y[tr]), "test": (x, te, y[te])}
        split = "random"
        params.update(test_fraction=test_fraction, seed=seed)
    else:
        split = "file" if loaded.train is not None else "test_only"
        ref = loaded.train if loaded.train is not None else loaded.test
        assert ref is not None
        empty = (ref[0][:0], ref[1][:0])
        train = loaded.train if loaded.train is not None else empty
        test = loaded.test if loaded.test is not None else empty
        splits = {"train": (train[0], None, train[1]), "test": (test[0], None, test[1])}
    params.update({k: v for k, v in loaded.extra.items()})

    y_train, y_test = splits["train"][2], splits["test"][2]
    n_total = len(y_train) + len(y_test)
    if n_total == 0:
        raise DatasetFormatError("the upload holds no samples")
    if n_total > opts.limits.max_samples:
        raise DatasetFormatError(
            f"{n_total} samples, more than the limit of {opts.limits.max_samples}"
        )
    names = loaded.class_names
    top = max(int(y.max()) for y in (y_train, y_test) if len(y))
    if names is None:
        names = [str(i) for i in range(top + 1)]
    for split_name, y in (("train", y_train), ("test", y_test)):
        if len(y) and int(y.max()) >= len(names):
            raise DatasetFormatError(
                f"{split_name} label {int(y.max())} is out of range for {len(names)} classes "
                f"[0, {len(names)})"
            )
    counts = {
        "train": np.bincount(y_train, minlength=len(names)).tolist(),
        "test": np.bincount(y_test, minlength=len(names)).tolist(),
    }
    present = sum(1 for a, b in zip(counts["train"], counts["test"], strict=True) if a + b)
    if len(names) < 2 or present < 2:
        raise DatasetFormatError(
            f"the dataset has {present} class{'es' if present != 1 else ''} with samples; at "
            "least 2 are needed"
        )
    x_train, x_test = splits["train"][0], splits["test"][0]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetFormatError(
            f"train inputs {x_train.shape[1:]} and test inputs {x_test.shape[1:]} differ in shape"
        )
    if x_train.dtype != x_test.dtype:
        raise DatasetFormatError(
            f"train inputs are {x_train.dtype} and test inputs {x_test.dtype}; expected one dtype"
        )
    for split_name, per_class in counts.items():
        if sum(per_class):
            empty_classes = [names[i] for i, c in enumerate(per_class) if c == 0]
            if empty_classes:
                warnings.append(
                    f"{len(empty_classes)} classes have no {split_name} samples: "
                    f"{', '.join(empty_classes[:5])}"
                )
    if split == "random" and not len(y_test):
        warnings.append("the test split is empty: too few samples per class for test_fraction")
    stats_split = "train" if len(y_train) else "test"
    x_stats, rows_stats, _ = splits[stats_split]
    mean, std = channel_stats(x_stats, rows_stats, opts.check)
    summary: dict[str, Any] = {
        "format": fmt,
        "source": source,
        "n_train": len(y_train),
        "n_test": len(y_test),
        "input_shape": [int(d) for d in x_train.shape[1:]],
        "num_classes": len(names),
        "class_names": list(names),
        "class_counts": counts,
        "normalisation": {"mean": mean, "std": std, "split": stats_split},
        "dtype_in": loaded.dtype_in,
        "split": split,
        "warnings": warnings,
        "peak_memory_estimate": opts.planned,
        **loaded.extra,
    }
    return _Plan(splits, list(names), params, summary)


def check_classes(ds: ArrayDataset, expected: int) -> None:
    """Refuse a dataset whose class count differs from what a model predicts.

    Raises:
        DatasetFormatError: e.g. "dataset has 10 classes but the model predicts 3".
    """
    if ds.num_classes != expected:
        raise DatasetFormatError(
            f"dataset has {ds.num_classes} classes but the model predicts {expected}"
        )
