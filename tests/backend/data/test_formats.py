"""Uploaded dataset formats: each is written here in its real on-disk layout and read back, and
hostile archives (traversal, links, bombs, pickle payloads) are refused before any harm."""

from __future__ import annotations

import builtins
import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.data import ArrayDataset, create
from backend.data.formats import (
    CIFAR10_CLASSES,
    FORMATS,
    DatasetFormatError,
    Limits,
    check_classes,
    detect_format,
)
from backend.data.formats import read_dataset as read_stored
from backend.data.stored import float_inputs


def read_dataset(path, *args, **kwargs):  # type: ignore[no-untyped-def]
    """The formats' reader, with the inputs as a model reads them: an upload's uint8 stays
    uint8 in the dataset (checked here) and stands for ``x / 255`` (``float_inputs``)."""
    ds, summary = read_stored(path, *args, **kwargs)
    stored = np.uint8 if summary["dtype_in"] == "uint8" else np.float32
    assert ds.x_train.dtype == stored and ds.x_test.dtype == stored
    floats = ArrayDataset(
        float_inputs(ds.x_train),
        ds.y_train,
        float_inputs(ds.x_test),
        ds.y_test,
        ds.class_names,
        ds.params,
    )
    return floats, summary


# --------------------------------------------------------------------------------------------
# writers


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return path


def _tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _marked_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """uint8 images whose first element is the row index, so shuffled rows can be traced."""
    arr = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    arr.reshape(n, -1)[:, 0] = np.arange(n)
    return arr


def _marker(x: np.ndarray) -> np.ndarray:
    return np.rint(x.reshape(len(x), -1)[:, 0] * 255).astype(int)


# --------------------------------------------------------------------------------------------
# npz


def test_formats_are_the_documented_five():
    assert FORMATS == ("npz", "cifar10", "cifar10c", "mnist", "imagefolder")


def test_npz_channels_last_is_transposed_scaled_and_split_stratified(tmp_path):
    raw = _marked_images(40, (6, 5, 3), seed=0)
    y = np.repeat(np.arange(4), 10)
    path = tmp_path / "upload.npz"
    np.savez_compressed(path, X=raw, y=y, class_names=np.array(["a", "b", "c", "d"]))
    assert detect_format(path) == "npz"

    ds, summary = read_dataset(path, test_fraction=0.2, seed=3)
    assert ds.x_train.shape == (32, 3, 6, 5) and ds.x_test.shape == (8, 3, 6, 5)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    train_rows, test_rows = _marker(ds.x_train), _marker(ds.x_test)
    assert sorted([*train_rows, *test_rows]) == list(range(40))
    # stratified: 20% of each class of 10
    assert np.bincount(ds.y_test).tolist() == [2, 2, 2, 2]
    for x, rows, labels in (
        (ds.x_train, train_rows, ds.y_train),
        (ds.x_test, test_rows, ds.y_test),
    ):
        np.testing.assert_array_equal(labels, y[rows])
        for r, i in enumerate(rows):
            for h, w, c in np.ndindex(6, 5, 3):
                assert x[r, c, h, w] == np.float32(raw[i, h, w, c]) / np.float32(255)

    assert summary["format"] == "npz" and summary["split"] == "random"
    assert summary["n_train"] == 32 and summary["n_test"] == 8
    assert summary["input_shape"] == [3, 6, 5] and summary["num_classes"] == 4
    assert summary["class_names"] == ["a", "b", "c", "d"]
    assert summary["class_counts"] == {"train": [8, 8, 8, 8], "test": [2, 2, 2, 2]}
    assert summary["dtype_in"] == "uint8"
    train64 = ds.x_train.astype(np.float64)
    np.testing.assert_allclose(summary["normalisation"]["mean"], train64.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(summary["normalisation"]["std"], train64.std(axis=(0, 2, 3)))
    assert summary["normalisation"]["split"] == "train"
    assert json.loads(json.dumps(summary)) == summary  # stored as JSON by callers

    again, _ = read_dataset(path, test_fraction=0.2, seed=3)
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    other, _ = read_dataset(path, test_fraction=0.2, seed=4)
    assert set(_marker(other.x_test)) != set(test_rows)


def test_npz_split_layout_grayscale_floats_kept_in_order(tmp_path):
    rng = np.random.default_rng(1)
    x_train, x_test = rng.random((20, 7, 7)), rng.random((10, 7, 7))
    y_train, y_test = np.arange(20) % 3, np.arange(10) % 3
    path = tmp_path / "split.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    ds, summary = read_dataset(path)
    assert summary["split"] == "file" and summary["dtype_in"] == "float64"
    assert ds.input_shape == [1, 7, 7]
    np.testing.assert_array_equal(ds.x_train[:, 0], x_train.astype(np.float32))
    np.testing.assert_array_equal(ds.x_test[:, 0], x_test.astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, y_test)
    assert ds.class_names == ["0", "1", "2"]


def test_npz_tabular_features_and_stable_statistics(tmp_path):
    rng = np.random.default_rng(2)
    # large offset, tiny spread: E[x^2] - E[x]^2 in float32 would be pure rounding noise
    X = (1e4 + rng.normal(0, 1e-2, size=(400, 5))).astype(np.float32)
    y = np.arange(400) % 2
    path = tmp_path / "tab.npz"
    np.savez(path, X=X, y=y)
    ds, summary = read_dataset(path)
    assert ds.input_shape == [5]
    rows = np.concatenate([ds.x_train, ds.x_test])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, X.tolist()))
    train64 = ds.x_train.astype(np.float64)
    np.testing.assert_allclose(summary["normalisation"]["mean"], train64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(summary["normalisation"]["std"], train64.std(axis=0), rtol=1e-6)


def test_npz_round_trips_an_exported_dataset(tmp_path):
    original = create("digits")
    path = tmp_path / "digits.npz"
    path.write_bytes(original.to_npz_bytes())
    ds, summary = read_dataset(path)
    np.testing.assert_array_equal(ds.x_train, original.x_train)
    np.testing.assert_array_equal(ds.y_test, original.y_test)
    assert ds.class_names == original.class_names and summary["split"] == "file"


def test_npz_string_labels_become_sorted_classes(tmp_path):
    X = np.zeros((12, 4), np.float32)
    y = np.array(["dog", "cat", "emu"] * 4)
    path = tmp_path / "s.npz"
    np.savez(path, X=X, y=y)
    ds, _ = read_dataset(path)
    assert ds.class_names == ["cat", "dog", "emu"]
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [4, 4, 4]


# --------------------------------------------------------------------------------------------
# CIFAR-10 python batches


def _py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way Python 2 cPickle wrote the real files (str = bytes)."""

    def s(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    n, d = data.shape
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
        b"(K\x01K" + bytes([n]) + b"M" + struct.pack("<H", d) + b"\x86"
        b"cnumpy\ndtype\n" + s(b"u1") + b"\x89\x88\x87R"
        b"(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        b"\x89" + s(data.tobytes()) + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + s(b"data") + array + s(b"labels") + label_list + b"u."


def _py3_batch(data: np.ndarray, labels: list[int]) -> bytes:
    batch = {b"batch_label": b"x", b"data": data, b"labels": labels, b"filenames": [b"a.png"]}
    return pickle.dumps(batch, protocol=2)


@pytest.fixture
def cifar_batches():
    rng = np.random.default_rng(5)
    return {
        name: (
            rng.integers(0, 256, size=(12, 3072), dtype=np.uint8),
            rng.integers(0, 10, size=12).tolist(),
        )
        for name in ("data_batch_1", "data_batch_2", "test_batch")
    }


def _cifar_tar(tmp_path: Path, batches, writer=_py3_batch, extra=None) -> Path:
    files = {f"cifar-10-batches-py/{k}": writer(*v) for k, v in batches.items()}
    meta = {b"label_names": [n.encode() for n in CIFAR10_CLASSES], b"num_vis": 3072}
    files["cifar-10-batches-py/batches.meta"] = pickle.dumps(meta, protocol=2)
    files["cifar-10-batches-py/readme.html"] = b"<html></html>"
    files.update(extra or {})
    return _tar(tmp_path / "cifar-10-python.tar.gz", files)


@pytest.mark.parametrize("writer", [_py3_batch, _py2_batch], ids=["py3-protocol2", "py2-style"])
def test_cifar10_batches_are_read_channel_major(tmp_path, cifar_batches, writer):
    path = _cifar_tar(tmp_path, cifar_batches, writer)
    assert detect_format(path) == "cifar10"
    ds, summary = read_dataset(path)
    c, h, w = np.indices((3, 32, 32))
    flat = c * 1024 + h * 32 + w  # CIFAR rows: 1024 red, 1024 green, 1024 blue, row-major
    train_data = np.concatenate(
        [cifar_batches["data_batch_1"][0], cifar_batches["data_batch_2"][0]]
    )
    for x, data in ((ds.x_train, train_data), (ds.x_test, cifar_batches["test_batch"][0])):
        assert x.shape == (len(data), 3, 32, 32)
        np.testing.assert_array_equal(x[:, c, h, w], data[:, flat].astype(np.float32) / 255)
    np.testing.assert_array_equal(
        ds.y_train, cifar_batches["data_batch_1"][1] + cifar_batches["data_batch_2"][1]
    )
    np.testing.assert_array_equal(ds.y_test, cifar_batches["test_batch"][1])
    assert ds.class_names == list(CIFAR10_CLASSES)
    assert summary["split"] == "file" and summary["dtype_in"] == "uint8"
    assert sum(summary["class_counts"]["train"]) == 24


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Exec:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code,))


@pytest.mark.parametrize(
    "payload, refused",
    [
        (lambda f: _System(f"touch {f}"), "refusing to unpickle posix.system"),
        (
            lambda f: _Exec(f"open({str(f)!r}, 'w').close()"),
            r"refusing to unpickle (__builtin__|builtins)\.exec",
        ),
    ],
)
def test_cifar_pickle_payload_is_refused_and_never_runs(tmp_path, cifar_batches, payload, refused):
    sentinel = tmp_path / "pwned"
    evil = pickle.dumps({b"data": payload(sentinel), b"labels": [0]}, protocol=2)
    path = _cifar_tar(tmp_path, cifar_batches, extra={"cifar-10-batches-py/data_batch_3": evil})
    with pytest.raises(DatasetFormatError, match=refused):
        read_dataset(path)
    assert not sentinel.exists()


def test_cifar_pickle_with_object_array_is_refused(tmp_path, cifar_batches):
    evil = pickle.dumps({b"data": np.array([1, "a"], dtype=object), b"labels": [0]}, protocol=2)
    path = _cifar_tar(tmp_path, cifar_batches, extra={"cifar-10-batches-py/test_batch": evil})
    with pytest.raises(DatasetFormatError, match="refusing dtype"):
        read_dataset(path)


# --------------------------------------------------------------------------------------------
# MNIST idx


def _idx_images(images: np.ndarray, count: int | None = None) -> bytes:
    n, r, c = images.shape
    return struct.pack(">IIII", 0x0803, n if count is None else count, r, c) + images.tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x0801, len(labels)) + labels.astype(np.uint8).tobytes()


@pytest.fixture
def mnist_arrays():
    rng = np.random.default_rng(7)
    return {
        "train": (rng.integers(0, 256, (15, 5, 6), dtype=np.uint8), np.arange(15) % 10),
        "t10k": (rng.integers(0, 256, (6, 5, 6), dtype=np.uint8), np.arange(6) % 10),
    }


def _mnist_files(arrays, gz: bool) -> dict[str, bytes]:
    files = {}
    for prefix, (x, y) in arrays.items():
        files[f"mnist/{prefix}-images-idx3-ubyte"] = _idx_images(x)
        files[f"mnist/{prefix}-labels-idx1-ubyte"] = _idx_labels(y)
    if gz:
        files = {k + ".gz": gzip.compress(v) for k, v in files.items()}
    return files


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzipped"])
@pytest.mark.parametrize("container", ["zip", "tar.gz", "tar.bz2"])
def test_mnist_idx_round_trip(tmp_path, mnist_arrays, gz, container):
    files = _mnist_files(mnist_arrays, gz)
    path = tmp_path / f"mnist.{container}"
    if container == "zip":
        _zip(path, files)
    else:
        _tar(path, files, mode=f"w:{container.split('.')[1][:3]}")
    assert detect_format(path) == "mnist"
    ds, summary = read_dataset(path)
    for x, y, (images, labels) in (
        (ds.x_train, ds.y_train, mnist_arrays["train"]),
        (ds.x_test, ds.y_test, mnist_arrays["t10k"]),
    ):
        assert x.shape == (len(images), 1, 5, 6)
        for n, r, c in np.ndindex(images.shape):
            assert x[n, 0, r, c] == np.float32(images[n, r, c]) / np.float32(255)
        np.testing.assert_array_equal(y, labels)
    assert ds.class_names == [str(i) for i in range(10)]
    assert summary["dtype_in"] == "uint8" and summary["input_shape"] == [1, 5, 6]


def test_mnist_header_disagreeing_with_size_is_refused(tmp_path, mnist_arrays):
    files = _mnist_files(mnist_arrays, gz=False)
    x = mnist_arrays["train"][0]
    files["mnist/train-images-idx3-ubyte"] = _idx_images(x, count=len(x) + 5)
    with pytest.raises(DatasetFormatError, match="train-images-idx3-ubyte.*header announces"):
        read_dataset(_zip(tmp_path / "m.zip", files))


def test_mnist_bad_magic_is_refused(tmp_path, mnist_arrays):
    files = _mnist_files(mnist_arrays, gz=True)
    files["mnist/t10k-labels-idx1-ubyte.gz"] = gzip.compress(b"\x00\x00\x08\x03" + bytes(40))
    with pytest.raises(DatasetFormatError, match="magic 0x00000803, expected 0x00000801"):
        read_dataset(_tar(tmp_path / "m.tar.gz", files))


def test_gzipped_idx_bomb_is_refused_from_its_header(tmp_path, mnist_arrays):
    files = _mnist_files(mnist_arrays, gz=True)
    header = struct.pack(">IIII", 0x0803, 60000, 28, 28)
    files["mnist/train-images-idx3-ubyte.gz"] = gzip.compress(header + bytes(60000 * 28 * 28))
    start = time.perf_counter()
    with pytest.raises(DatasetFormatError, match="train-images-idx3-ubyte.gz'?: compression"):
        read_dataset(_zip(tmp_path / "m.zip", files))
    assert time.perf_counter() - start < 2.0


# --------------------------------------------------------------------------------------------
# image folders


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("container", ["zip", "tar.gz"])
def test_imagefolder_round_trip(tmp_path, container):
    images = _marked_images(15, (4, 6, 3), seed=9)
    classes = ["zebra", "cat", "dog"]  # sorted class names: cat, dog, zebra
    files, class_of = {}, {}
    for i, img in enumerate(images):
        cls = classes[i % 3]
        files[f"pets/{cls}/img{i:02d}.png"] = _png(img)
        class_of[i] = cls
    files["__MACOSX/pets/cat/._img00.png"] = b"junk"
    files["pets/README.txt"] = b"not an image"
    path = tmp_path / f"pets.{container}"
    _zip(path, files) if container == "zip" else _tar(path, files)
    assert detect_format(path) == "imagefolder"

    ds, summary = read_dataset(path, test_fraction=0.2, seed=0)
    assert ds.class_names == ["cat", "dog", "zebra"]
    assert ds.input_shape == [3, 4, 6]
    assert np.bincount(ds.y_test).tolist() == [1, 1, 1]
    rows = [*_marker(ds.x_train), *_marker(ds.x_test)]
    assert sorted(rows) == list(range(15))
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        for r, i in enumerate(_marker(x)):
            expected = images[i].transpose(2, 0, 1).astype(np.float32) / 255
            np.testing.assert_array_equal(x[r], expected)
            assert ds.class_names[y[r]] == class_of[i]
    assert any("README.txt" in w for w in summary["warnings"])


def test_imagefolder_grayscale_with_train_test_folders(tmp_path):
    rng = np.random.default_rng(3)
    files, expected = {}, {"train": [], "test": []}
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                img = rng.integers(0, 256, (5, 5), dtype=np.uint8)
                files[f"root/{split}/{cls}/{i}.png"] = _png(img)
                expected[split].append(img)
    ds, summary = read_dataset(_zip(tmp_path / "g.zip", files))
    assert summary["split"] == "file" and ds.input_shape == [1, 5, 5]
    # order: class, then file name
    np.testing.assert_array_equal(ds.x_train[:, 0], np.stack(expected["train"]) / np.float32(255))
    np.testing.assert_array_equal(ds.y_test, [0, 0, 1, 1])


def test_imagefolder_sizes_must_match(tmp_path):
    files = {
        "r/a/0.png": _png(np.zeros((4, 4, 3), np.uint8)),
        "r/b/0.png": _png(np.zeros((5, 4, 3), np.uint8)),
    }
    with pytest.raises(DatasetFormatError, match=r"4x4.*4x5"):
        read_dataset(_zip(tmp_path / "s.zip", files))


def test_imagefolder_oversized_image_is_refused_before_decoding(tmp_path):
    files = {
        "r/a/0.png": _png(np.zeros((1, 5000), np.uint8)),
        "r/b/0.png": _png(np.zeros((1, 5000), np.uint8)),
    }
    with pytest.raises(DatasetFormatError, match="5000x1 pixels, beyond the 4096x4096"):
        read_dataset(_zip(tmp_path / "big.zip", files))


# --------------------------------------------------------------------------------------------
# CIFAR-10-C


@pytest.fixture
def cifar_c_files():
    rng = np.random.default_rng(11)
    fog = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    contrast = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(50) % 10).astype(np.uint8)
    return {"fog": fog, "contrast": contrast, "labels": labels}


@pytest.mark.parametrize("container", ["tar", "zip", "folder"])
def test_cifar10c_selection_becomes_the_test_split(tmp_path, cifar_c_files, container):
    files = {f"CIFAR-10-C/{k}.npy": _npy(v) for k, v in cifar_c_files.items()}
    if container == "tar":
        path = _tar(tmp_path / "CIFAR-10-C.tar", files, mode="w")
    elif container == "zip":
        path = _zip(tmp_path / "c.zip", files)
    else:
        path = tmp_path / "up"
        for name, data in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
    assert detect_format(path) == "cifar10c"
    ds, summary = read_dataset(path, corruption="fog", severity=3)
    expected = cifar_c_files["fog"][20:30].transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.testing.assert_array_equal(ds.x_test, expected)
    np.testing.assert_array_equal(ds.y_test, np.arange(20, 30) % 10)
    assert ds.x_train.shape == (0, 3, 32, 32) and summary["n_train"] == 0
    assert summary["split"] == "test_only" and summary["normalisation"]["split"] == "test"
    assert summary["corruption"] == "fog" and summary["severity"] == 3
    assert json.loads(json.dumps(summary)) == summary
    assert ds.class_names == list(CIFAR10_CLASSES)
    np.testing.assert_allclose(
        summary["normalisation"]["mean"], expected.astype(np.float64).mean(axis=(0, 2, 3))
    )

    whole, _ = read_dataset(path, corruption="contrast")
    assert len(whole.y_test) == 50
    with pytest.raises(DatasetFormatError, match="choose one with corruption=: contrast, fog"):
        read_dataset(path)
    with pytest.raises(DatasetFormatError, match="'snow' is not in the upload"):
        read_dataset(path, corruption="snow")


# --------------------------------------------------------------------------------------------
# hostile archives


def _xy_files() -> dict[str, bytes]:
    return {"X.npy": _npy(np.zeros((4, 2), np.float32)), "y.npy": _npy(np.array([0, 1, 0, 1]))}


@pytest.mark.parametrize(
    "name, reason",
    [("../evil.npy", "'..'"), ("/abs/X.npy", "absolute path"), ("a\\..\\..\\b.npy", "'..'")],
)
def test_zip_path_traversal_is_refused(tmp_path, name, reason):
    path = _zip(tmp_path / "t.zip", {**_xy_files(), name: b"x"})
    with pytest.raises(DatasetFormatError, match=f"{reason}") as err:
        read_dataset(path)
    assert repr(name) in str(err.value)


def test_zip_symlink_is_refused(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in _xy_files().items():
            zf.writestr(name, data)
        info = zipfile.ZipInfo("class_names.npy")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetFormatError, match="'class_names.npy': symbolic link"):
        read_dataset(path)


@pytest.mark.parametrize(
    "kind, linkname, reason",
    [
        (tarfile.SYMTYPE, "/etc/passwd", "link to '/etc/passwd'"),
        (tarfile.LNKTYPE, "X.npy", "link to 'X.npy'"),
        (tarfile.CHRTYPE, "", "device"),
    ],
)
def test_tar_links_and_devices_are_refused(tmp_path, kind, linkname, reason):
    path = tmp_path / "l.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in _xy_files().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("extra.npy")
        info.type, info.linkname = kind, linkname
        tf.addfile(info)
    with pytest.raises(DatasetFormatError, match=f"'extra.npy': .*{reason}"):
        read_dataset(path)


@pytest.mark.parametrize("name", ["../../etc/cron.d/x", "/etc/x"])
def test_tar_path_traversal_is_refused(tmp_path, name):
    path = _tar(tmp_path / "t.tar.gz", {**_xy_files(), name: b"x"})
    with pytest.raises(DatasetFormatError, match="refusing member"):
        read_dataset(path)


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """200 MB of zeros, deflated to about 200 kB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("y.npy", _npy(np.zeros(4, np.int64)))
        with zf.open("X.npy", "w") as f:
            for _ in range(200):
                f.write(chunk)
    return path


def test_zip_bomb_is_refused_fast_without_reading_it(zip_bomb, monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("a member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_reading)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DatasetFormatError, match="'X.npy': compression ratio"):
            read_dataset(zip_bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 16 * 2**20


def test_tar_gz_bomb_is_refused_at_its_header(tmp_path, monkeypatch):
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("X.npy")
        info.size = 64 * 2**20
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    monkeypatch.setattr(
        tarfile.TarFile, "extractfile", lambda *a: pytest.fail("a member was opened")
    )
    start = time.perf_counter()
    with pytest.raises(DatasetFormatError, match="at member 'X.npy': compression ratio"):
        read_dataset(path)
    assert time.perf_counter() - start < 2.0


def test_tar_gz_lying_pax_header_cannot_decompress_past_the_cap(tmp_path):
    """A pax record of 100 MB makes tarfile read it whole; the guarded stream stops it."""
    path = tmp_path / "pax.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("pax")
        info.type, info.size = tarfile.XHDTYPE, 100 * 2**20
        tf.addfile(info, io.BytesIO(bytes(info.size)))
    tracemalloc.start()
    try:
        with pytest.raises(
            DatasetFormatError,
            match="tar stream decompresses to more than 200 times its compressed size",
        ):
            read_dataset(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


def test_zip_member_lying_about_its_size_is_refused(tmp_path):
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X.npy", _npy(np.zeros((2**18, 4), np.float32)))  # 4 MB
        zf.writestr("y.npy", _npy(np.zeros(4, np.int64)))
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # X.npy's central directory entry
    struct.pack_into("<I", data, central + 24, 1000)
    struct.pack_into("<I", data, 22, 1000)  # and its local header
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetFormatError, match="X.npy"):
        read_dataset(path)


def test_limits_on_members_and_bytes(tmp_path):
    path = _zip(tmp_path / "many.zip", {**_xy_files(), "a.txt": b"1", "b.txt": b"2"})
    with pytest.raises(DatasetFormatError, match="4 members, more than 3"):
        read_dataset(path, limits=Limits(max_members=3))
    with pytest.raises(DatasetFormatError, match="more than 100 bytes uncompressed"):
        read_dataset(path, limits=Limits(max_total_uncompressed=100))
    with pytest.raises(DatasetFormatError, match="4 rows, more than the limit of 3"):
        read_dataset(path, limits=Limits(max_samples=3))


# --------------------------------------------------------------------------------------------
# validation


def test_npz_object_array_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, X=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DatasetFormatError, match="X.npy: holds an object array"):
        read_dataset(path)


@pytest.mark.parametrize(
    "X, y, names, match",
    [
        (np.zeros((4, 3)), np.array([0, 1, 2, 3]), ["a", "b", "c"], "label 3 is out of range"),
        (np.zeros((4, 3)), np.array([0, 1, -1, 1]), None, "negative label -1"),
        (np.array([[0.0, np.nan]] * 4), np.array([0, 1, 0, 1]), None, "NaN or infinite"),
        (np.array([[0.0, np.inf]] * 4), np.array([0, 1, 0, 1]), None, "NaN or infinite"),
        (np.zeros((4, 3)), np.array([1, 1, 1, 1]), None, "at least 2"),
        (np.zeros((5, 3)), np.array([0, 1, 0, 1]), None, "X has 5 rows but y has 4"),
        (np.zeros((4, 3)), np.array([0.5, 1, 0, 1]), None, "non-integer"),
    ],
)
def test_invalid_arrays_are_refused(tmp_path, X, y, names, match):
    path = tmp_path / "bad.npz"
    extra = {} if names is None else {"class_names": np.array(names)}
    np.savez(path, X=X, y=y, **extra)
    with pytest.raises(DatasetFormatError, match=match):
        read_dataset(path)


def test_unknown_uploads_are_refused(tmp_path):
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(DatasetFormatError, match="cannot tell the dataset format"):
        detect_format(noise)
    npy = tmp_path / "X.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(DatasetFormatError, match="single .npy"):
        read_dataset(npy)
    notes = _zip(tmp_path / "notes.zip", {"notes.txt": b"hello"})
    with pytest.raises(DatasetFormatError, match="found notes.txt"):
        read_dataset(notes)
    with pytest.raises(ValueError, match="fmt='parquet'"):
        read_dataset(notes, "parquet")
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        read_dataset(notes, test_fraction=1.5)


def test_check_classes():
    ds = create("digits")
    check_classes(ds, 10)
    with pytest.raises(DatasetFormatError, match="dataset has 10 classes but the model predicts 3"):
        check_classes(ds, 3)


def test_cifar10_archive_with_only_empty_batches_is_a_format_error(tmp_path):
    """Found by the formats split: batches with zero rows and no batches.meta used to end in a
    bare ``ValueError: max() arg is an empty sequence`` instead of saying what was wrong."""
    empty = (np.zeros((0, 3072), np.uint8), [])
    files = {f"cifar-10-batches-py/{k}": _py2_batch(*empty) for k in ("data_batch_1", "test_batch")}
    path = _tar(tmp_path / "cifar-10-python.tar.gz", files)
    with pytest.raises(DatasetFormatError, match="no samples"):
        read_dataset(path)
