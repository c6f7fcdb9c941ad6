from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.data.cifar10c import CifarCFormatError, CorruptedBlock, load_cifar10c

N = 50  # five severity blocks of 10 images
BLOCK = N // 5


def _images(seed: int, n: int = N) -> np.ndarray:
    """(n, 32, 32, 3) uint8 whose row i is filled with a value that identifies it."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    arr[:, 0, 0, 0] = np.arange(n) % 256  # row marker
    return arr


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    np.save(tmp_path / "fog.npy", _images(0))
    np.save(tmp_path / "gaussian_noise.npy", _images(1))
    np.save(tmp_path / "labels.npy", (np.arange(N) % 10).astype(np.uint8))  # as distributed
    return tmp_path


def test_blocks_per_severity_are_scaled_and_transposed(folder):
    blocks = list(load_cifar10c(folder))
    # paper order (gaussian_noise before fog), severities 1..5
    assert [(b.name, b.severity) for b in blocks] == [
        (name, s) for name in ("gaussian_noise", "fog") for s in range(1, 6)
    ]
    raw = {"gaussian_noise": np.load(folder / "gaussian_noise.npy"), "fog": _images(0)}
    for b in blocks:
        assert isinstance(b, CorruptedBlock)
        assert b.x.shape == (BLOCK, 3, 32, 32) and b.x.dtype == np.float32
        assert b.y.shape == (BLOCK,) and b.y.dtype == np.int64
        assert 0.0 <= b.x.min() and b.x.max() <= 1.0
        rows = slice((b.severity - 1) * BLOCK, b.severity * BLOCK)
        expected = raw[b.name][rows].transpose(0, 3, 1, 2).astype(np.float32) / 255
        np.testing.assert_allclose(b.x, expected, rtol=0, atol=1e-7)
        np.testing.assert_array_equal(b.y, np.arange(N)[rows] % 10)


def test_selection_limit_and_no_mmap(folder):
    blocks = list(
        load_cifar10c(
            folder, corruptions=["fog"], severities=[5, 2], limit_per_severity=3, mmap=False
        )
    )
    assert [(b.name, b.severity, len(b.x), len(b.y)) for b in blocks] == [
        ("fog", 5, 3, 3),
        ("fog", 2, 3, 3),
    ]
    marker = np.rint(blocks[0].x[:, 0, 0, 0] * 255).astype(int)
    np.testing.assert_array_equal(marker, [40, 41, 42])
    # a limit beyond the block size keeps the whole block
    whole = next(load_cifar10c(folder, ["fog"], [1], limit_per_severity=999))
    assert len(whole.x) == BLOCK


def test_one_block_of_labels_is_shared_by_all_severities(folder):
    np.save(folder / "labels.npy", np.arange(BLOCK, dtype=np.int64))
    for b in load_cifar10c(folder, ["fog"]):
        np.testing.assert_array_equal(b.y, np.arange(BLOCK))


def test_extra_corruptions_of_the_archive_come_after_the_15(folder):
    np.save(folder / "spatter.npy", _images(2))
    names = [b.name for b in load_cifar10c(folder, severities=[1])]
    assert names == ["gaussian_noise", "fog", "spatter"]


@pytest.mark.parametrize(
    ("name", "array", "match"),
    [
        ("fog", np.zeros((N, 32, 32), np.uint8), r"fog\.npy: shape \(50, 32, 32\)"),
        ("fog", np.zeros((N, 32, 32, 1), np.uint8), r"fog\.npy: shape \(50, 32, 32, 1\)"),
        ("fog", np.zeros((N, 32, 32, 3), np.float32), r"fog\.npy: dtype float32, expected uint8"),
        ("fog", np.zeros((52, 32, 32, 3), np.uint8), r"fog\.npy: 52 images.*multiple of 5"),
        ("fog", np.zeros((0, 32, 32, 3), np.uint8), r"fog\.npy: 0 images"),
        (
            "fog",
            np.array([{"a": 1}] * 3, dtype=object),
            r"fog\.npy: cannot be loaded without pickle",
        ),
        ("labels", np.zeros(49, np.uint8), r"labels\.npy: shape \(49,\), expected \(50,\)"),
        ("labels", np.zeros((N, 1), np.uint8), r"labels\.npy: shape \(50, 1\)"),
        ("labels", np.zeros(N, np.float32), r"labels\.npy: dtype float32, expected integers"),
        ("labels", np.full(N, -1, np.int64), r"labels\.npy: negative label -1"),
        ("labels", np.array([1, 2], dtype=object), r"labels\.npy: cannot be loaded without pickle"),
    ],
)
def test_malformed_files_raise_naming_the_file(folder, name, array, match):
    np.save(folder / f"{name}.npy", array, allow_pickle=True)
    with pytest.raises(CifarCFormatError, match=match):
        load_cifar10c(folder)


def test_files_of_different_shapes_are_refused(folder):
    np.save(folder / "fog.npy", np.zeros((60, 32, 32, 3), np.uint8))
    with pytest.raises(CifarCFormatError, match=r"differ in shape.*fog\.npy \(60, 32, 32, 3\)"):
        load_cifar10c(folder)


def test_not_an_npy_file_is_refused(folder):
    (folder / "fog.npy").write_bytes(b"not numpy at all")
    with pytest.raises(CifarCFormatError, match=r"fog\.npy"):
        load_cifar10c(folder)
    np.savez(folder / "archive.npz", a=np.zeros(3))
    (folder / "archive.npz").rename(folder / "fog.npy")
    with pytest.raises(CifarCFormatError, match=r"fog\.npy: is an \.npz archive"):
        load_cifar10c(folder)


def test_missing_files_raise(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="frost.npy"):
        load_cifar10c(folder, corruptions=["frost"])
    (folder / "labels.npy").unlink()
    with pytest.raises(FileNotFoundError, match="labels.npy"):
        load_cifar10c(folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10c(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no corruption"):
        load_cifar10c(empty)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"severities": [0]}, "severity=0"),
        ({"severities": [6]}, "severity=6"),
        ({"severities": [1.0]}, r"severity=1\.0"),
        ({"limit_per_severity": 0}, "limit_per_severity=0"),
    ],
)
def test_bad_arguments_raise_naming_the_value(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_cifar10c(folder, **kwargs)
