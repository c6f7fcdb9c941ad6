"""Loader for the CIFAR-10-C distribution format (Hendrycks & Dietterich, ICLR 2019).

The published archive (zenodo.org/record/2535967) unpacks to a folder holding one ``NAME.npy``
per corruption, shape (50000, 32, 32, 3) uint8, the 10000 CIFAR-10 test images corrupted at
severity 1, then the same images at severity 2, ... 5 (``make_cifar_c.py`` appends severity by
severity), plus ``labels.npy``: (50000,) uint8, the test labels repeated five times. CIFAR-100-C
has the same layout. Besides the 15 corruptions of :mod:`backend.data.corruptions` the archive
holds four extra ones (speckle_noise, gaussian_blur, spatter, saturate); any ``NAME.npy`` is
loaded.

Generalised for small test sets: a file of N rows holds five blocks of N / 5 rows (N must be a
positive multiple of 5), images of any H x W with 3 channels, and ``labels.npy`` has either N
entries (one per row, as distributed) or N / 5 (one block's labels, shared by all severities).
Files are memory-mapped (``np.load(mmap_mode='r', allow_pickle=False)``), so only the requested
blocks are read; pickled (object) arrays are refused.

As an upload (:func:`read_upload`, the ``cifar10c`` format of :mod:`backend.data.formats`):
the folder as a tar, zip or folder, read through :mod:`backend.data.archives` (an archive's
``labels.npy`` and the one chosen ``NAME.npy`` are copied, size-checked, to a temporary folder
first). A chosen corruption and severity (default all five) becomes the *test* split; the
train split is empty (:class:`~backend.data.registry.ArrayDataset` accepts an empty split of
the right trailing shape), and the normalisation statistics are then taken over the test split.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from backend.data.archives import DirSource, Source, basename
from backend.data.arrays import Loaded, ReadOptions, check_sample_count, int_labels
from backend.data.cifar10 import standard_class_names
from backend.data.corruptions import CORRUPTIONS
from backend.data.limits import DatasetFormatError

LABELS_FILE = "labels.npy"
NUM_SEVERITIES = 5


class CifarCFormatError(ValueError):
    """A file of the folder does not follow the CIFAR-10-C format; the message names it."""


class CorruptedBlock(NamedTuple):
    """The images of one (corruption, severity) block.

    Attributes:
        name: corruption name (the file stem).
        severity: 1..5.
        x: (n, 3, H, W) float32 in [0, 1] ((n, 3, 32, 32) for CIFAR-10-C).
        y: (n,) int64 labels.
    """

    name: str
    severity: int
    x: np.ndarray
    y: np.ndarray


def load_cifar10c(
    folder: str | Path,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    limit_per_severity: int | None = None,
    mmap: bool = True,
    pixels: bool = False,
) -> Iterator[CorruptedBlock]:
    """Iterate over the (corruption, severity) blocks of a CIFAR-10-C folder.

    Every requested file is opened and validated (shape, dtype, labels) before the first block
    is produced, so a malformed folder fails at the call, not half-way through an evaluation.

    Args:
        folder: directory with ``NAME.npy`` files and ``labels.npy``.
        corruptions: names to load, in this order (default: every ``NAME.npy`` but the labels,
            the 15 of the paper first in their order, then the others alphabetically).
        severities: subset of 1..5, in this order (default all).
        limit_per_severity: keep only the first this many rows of each block (default all).
        mmap: memory-map the files (default); False reads each whole file into memory.
        pixels: yield x as stored, uint8 (n, 3, H, W) standing for ``x / 255`` (a view of the
            file's block: the stored form of :mod:`backend.data.stored`) instead of float32.

    Returns:
        An iterator of :class:`CorruptedBlock` ``(name, severity, x, y)``: x (n, 3, H, W)
        float32 in [0, 1] (converted block by block), y (n,) int64; names outermost.

    Raises:
        FileNotFoundError: the folder, ``labels.npy`` or a requested ``NAME.npy`` is missing.
        CifarCFormatError: a file is malformed (message names the file and what is wrong).
        ValueError: bad severities or limit_per_severity.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10-C folder {str(root)!r} does not exist")
    names = _corruption_names(root) if corruptions is None else list(corruptions)
    if not names:
        raise FileNotFoundError(f"no corruption .npy files in {str(root)!r}")
    sevs = list(range(1, NUM_SEVERITIES + 1)) if severities is None else list(severities)
    for severity in sevs:
        if isinstance(severity, bool) or not isinstance(severity, int | np.integer):
            raise ValueError(f"severity={severity!r} should be an integer in 1..5")
        if not 1 <= severity <= NUM_SEVERITIES:
            raise ValueError(f"severity={severity!r} should be in 1..5")
    if limit_per_severity is not None and (
        isinstance(limit_per_severity, bool)
        or not isinstance(limit_per_severity, int)
        or limit_per_severity < 1
    ):
        raise ValueError(f"limit_per_severity={limit_per_severity!r} should be a positive integer")

    arrays = {name: _open_images(root / f"{name}.npy", mmap) for name in names}
    shapes = {arr.shape for arr in arrays.values()}
    if len(shapes) > 1:
        detail = ", ".join(f"{name}.npy {arr.shape}" for name, arr in arrays.items())
        raise CifarCFormatError(f"corruption files differ in shape: {detail}")
    total = next(iter(shapes))[0]
    block = total // NUM_SEVERITIES
    labels = _open_labels(root / LABELS_FILE, total)
    n = block if limit_per_severity is None else min(limit_per_severity, block)

    def blocks() -> Iterator[CorruptedBlock]:
        for name in names:
            images = arrays[name]
            for severity in sevs:
                start = (severity - 1) * block
                if pixels:
                    x = images[start : start + n].transpose(0, 3, 1, 2)
                else:
                    x = np.asarray(images[start : start + n], dtype=np.float32)
                    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) / np.float32(255.0)
                if len(labels) == total:
                    y = labels[start : start + n]
                else:
                    y = labels[:n]
                yield CorruptedBlock(name, int(severity), x, y.astype(np.int64))

    return blocks()


def _corruption_names(root: Path) -> list[str]:
    stems = {p.stem for p in root.glob("*.npy") if p.name != LABELS_FILE}
    known = [name for name in CORRUPTIONS if name in stems]
    return known + sorted(stems - set(known))


def _load(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is missing from {str(path.parent)!r}")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle; refused on purpose
        raise CifarCFormatError(f"{path.name}: cannot be loaded without pickle ({exc})") from exc
    except OSError as exc:
        raise CifarCFormatError(f"{path.name}: not a .npy array file ({exc})") from exc
    if not isinstance(arr, np.ndarray):  # an .npz archive renamed to .npy
        arr.close()
        raise CifarCFormatError(f"{path.name}: is an .npz archive, expected one .npy array")
    return arr


def _open_images(path: Path, mmap: bool) -> np.ndarray:
    arr = _load(path, mmap)
    if arr.dtype != np.uint8:
        raise CifarCFormatError(f"{path.name}: dtype {arr.dtype}, expected uint8")
    if arr.ndim != 4 or arr.shape[3] != 3:
        raise CifarCFormatError(
            f"{path.name}: shape {arr.shape}, expected (N, 32, 32, 3) (N images, H, W, RGB)"
        )
    if arr.shape[0] == 0 or arr.shape[0] % NUM_SEVERITIES:
        raise CifarCFormatError(
            f"{path.name}: {arr.shape[0]} images, expected a positive multiple of "
            f"{NUM_SEVERITIES} (one block per severity)"
        )
    return arr


def _open_labels(path: Path, total: int) -> np.ndarray:
    labels = np.asarray(_load(path, mmap=False))
    if labels.dtype.kind not in "iu":
        raise CifarCFormatError(f"{path.name}: dtype {labels.dtype}, expected integers")
    block = total // NUM_SEVERITIES
    if labels.ndim != 1 or len(labels) not in (total, block):
        raise CifarCFormatError(
            f"{path.name}: shape {labels.shape}, expected ({total},) (one label per image) "
            f"or ({block},) (one block's labels)"
        )
    if len(labels) and labels.min() < 0:
        raise CifarCFormatError(f"{path.name}: negative label {labels.min()}")
    return labels


# --------------------------------------------------------------------------------------------
# Upload reader (the ``cifar10c`` format of backend.data.formats)


def looks_like(names: list[str]) -> bool:
    """A CIFAR-10-C upload holds ``labels.npy`` and at least one other .npy file."""
    bases = {basename(n) for n in names}
    return LABELS_FILE in bases and sum(n.endswith(".npy") for n in names) >= 2


def read_upload(src: Source, opts: ReadOptions) -> Loaded:
    """The chosen corruption of a CIFAR-10-C upload as the test split; the train split is
    empty (CIFAR-10-C is an evaluation set)."""
    labels = [m for m in src.members if basename(m.name) == LABELS_FILE]
    if not labels:
        raise DatasetFormatError("no labels.npy: CIFAR-10-C has <corruption>.npy + labels.npy")
    if len(labels) > 1:
        raise DatasetFormatError(
            f"several labels.npy files ({', '.join(m.name for m in labels)}); upload one "
            "CIFAR-10-C folder"
        )
    label_member = labels[0]
    folder = label_member.name.rpartition("/")[0]
    files = {
        basename(m.name)[:-4]: m
        for m in src.members
        if m.name.endswith(".npy") and m is not label_member and m.name.rpartition("/")[0] == folder
    }
    if not files:
        raise DatasetFormatError(f"no <corruption>.npy next to {label_member.name}")
    if opts.corruption is not None:
        if opts.corruption not in files:
            raise DatasetFormatError(
                f"corruption {opts.corruption!r} is not in the upload; it has "
                f"{', '.join(sorted(files))}"
            )
        name = opts.corruption
    elif len(files) == 1:
        name = next(iter(files))
    else:
        raise DatasetFormatError(
            f"the upload holds {len(files)} corruptions; choose one with corruption=: "
            f"{', '.join(sorted(files))}"
        )
    severities = [opts.severity] if opts.severity is not None else [1, 2, 3, 4, 5]
    # the chosen severities' images, joined into one array (the files are memory-mapped)
    chosen = files[name].size * len(severities) // 5
    n_labels = label_member.size // 8 + 1
    opts.reserve(chosen + 6 * 8 * n_labels, chosen, src.label)
    opts.tick()

    def load(folder_path: Path) -> list[CorruptedBlock]:
        try:
            blocks = load_cifar10c(
                folder_path, corruptions=[name], severities=severities, pixels=True
            )
            return list(blocks)
        except (CifarCFormatError, FileNotFoundError, ValueError) as exc:
            raise DatasetFormatError(str(exc)) from exc

    if isinstance(src, DirSource):
        blocks = load(src.root / folder)
    else:
        with tempfile.TemporaryDirectory(prefix="prunescope-cifar10c-") as tmp:
            src.copy_to(label_member, Path(tmp) / LABELS_FILE)
            src.copy_to(files[name], Path(tmp) / f"{name}.npy")
            blocks = load(Path(tmp))
    opts.tick()
    x = np.concatenate([b.x for b in blocks])
    y = np.concatenate([b.y for b in blocks])
    check_sample_count(len(y), opts.limits)
    y = int_labels(y, "labels.npy", opts.warnings, opts.limits)
    names = standard_class_names(int(y.max()) if len(y) else 0)
    opts.warnings.append(
        "CIFAR-10-C is an evaluation set: the selection is the test split, the train split is empty"
    )
    extra = {"corruption": name, "severity": opts.severity}
    return Loaded("uint8", names, test=(x, y), extra=extra)
