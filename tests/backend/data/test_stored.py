"""The stored dataset form (backend/data/stored.py) and bounded-memory imports (issue 19).

Checked against independent computations: numpy's own .npz reader for the file, the old
float32 conversion (``x.astype(float32) / 255``) for uint8 inputs, tracemalloc (which sees every
numpy allocation) for the memory an import holds, and a file whose data was never written for
"refused before any data is read".
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.data import ArrayDataset
from backend.data import stored as stored_mod
from backend.data.batches import FloatRows, input_dtype, model_input, row_norms
from backend.data.formats import DatasetFormatError, Limits, import_dataset, read_dataset
from backend.data.stored import (
    ALIGN,
    DatasetWriter,
    float_inputs,
    iter_rows,
    open_dataset,
    save_dataset,
)


def _dataset(dtype: type, n_train: int = 3000, n_test: int = 700) -> ArrayDataset:
    rng = np.random.default_rng(0)
    if dtype is np.uint8:
        x_tr = rng.integers(0, 256, (n_train, 3, 8, 8), dtype=np.uint8)
        x_te = rng.integers(0, 256, (n_test, 3, 8, 8), dtype=np.uint8)
    else:
        x_tr = rng.standard_normal((n_train, 3, 8, 8)).astype(np.float32)
        x_te = rng.standard_normal((n_test, 3, 8, 8)).astype(np.float32)
    return ArrayDataset(
        x_tr,
        rng.integers(0, 4, n_train),
        x_te,
        rng.integers(0, 4, n_test),
        ["a", "b", "c", "d"],
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_stored_file_is_a_plain_npz_and_opens_memory_mapped(tmp_path, dtype):
    ds = _dataset(dtype)
    path = tmp_path / "d.npz"
    save_dataset(ds, path)
    # numpy's own reader agrees, and every member is stored, not deflated
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["x_train"], ds.x_train)
        np.testing.assert_array_equal(npz["y_test"], ds.y_test)
        assert [str(c) for c in npz["class_names"]] == ds.class_names
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    again = open_dataset(path)
    assert isinstance(again.x_train, np.memmap) and isinstance(again.x_test, np.memmap)
    assert again.x_train.dtype == dtype  # uint8 stays uint8: 4x smaller than float32
    # the array data starts on a 64-byte boundary of the file
    assert (again.x_train.offset % ALIGN) == 0
    for split in ("train", "test"):
        np.testing.assert_array_equal(again.split(split)[0], ds.split(split)[0])
        np.testing.assert_array_equal(again.split(split)[1], ds.split(split)[1])
    assert again.class_names == ds.class_names
    # copy-on-write: writable for torch, the file itself never changes
    before = path.read_bytes()
    again.x_train[0] = 0
    del again
    assert path.read_bytes() == before


def test_artifacts_of_the_old_form_still_open(tmp_path):
    ds = _dataset(np.float32)
    path = tmp_path / "old.npz"
    np.savez_compressed(
        path,
        x_train=ds.x_train,
        y_train=ds.y_train,
        x_test=ds.x_test,
        y_test=ds.y_test,
        class_names=np.array(ds.class_names),
    )
    again = open_dataset(path)
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    assert again.class_names == ds.class_names


def test_float_inputs_and_model_input_are_the_old_conversion_exactly():
    x = np.arange(256, dtype=np.uint8).reshape(4, 64)
    old = x.astype(np.float32, order="C")
    old /= np.float32(255.0)  # what an upload's uint8 became before the stored form
    np.testing.assert_array_equal(float_inputs(x), old)
    t = model_input(torch.from_numpy(x))
    assert t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), old)
    # float64 models get the float32 values widened, as before
    np.testing.assert_array_equal(
        model_input(torch.from_numpy(x), torch.float64).numpy(), old.astype(np.float64)
    )
    f = torch.randn(3, 5)
    assert model_input(f) is f
    lin = torch.nn.Linear(64, 2).double()
    assert input_dtype(lin, torch.from_numpy(x)) == torch.float64


def test_float_rows_and_row_norms_read_as_the_model_does():
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (50, 2, 3), dtype=np.uint8))
    rows = FloatRows(x)
    assert len(rows) == 50 and rows.dtype == torch.float32
    np.testing.assert_array_equal(rows[7].numpy(), float_inputs(x[7].numpy()))
    expected = torch.from_numpy(float_inputs(x.numpy())).flatten(1).norm(dim=1)
    torch.testing.assert_close(row_norms(x, chunk=7), expected, rtol=0, atol=0)


def test_writer_gathers_rows_chunk_by_chunk_and_checks_between_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(stored_mod, "CHUNK_BYTES", 1000)  # 10 rows of 100 bytes per chunk
    x = np.random.default_rng(2).integers(0, 256, (95, 100), dtype=np.uint8)
    rows = np.random.default_rng(3).permutation(95)[:61]
    calls = []
    path = tmp_path / "w.npz"
    with DatasetWriter(path) as w:
        w.array("x", x, rows, check=lambda: calls.append(1))
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["x"], x[rows])
    assert len(calls) == 7  # ceil(61 / 10) chunks, a check before each
    assert [len(c) for c in iter_rows(x)] == [10] * 9 + [5]


def _npz(path: Path, arrays: dict[str, np.ndarray], deflate: bool = True) -> Path:
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(name + ".npy", buf.getvalue())
    return path


def _header_only(shape: tuple[int, ...], dtype: str) -> bytes:
    """A .npy header announcing an array whose data is not there (a file that fails if it
    is ever read)."""
    desc = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode() + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(desc)) + desc


def test_an_import_that_needs_too_much_memory_is_refused_before_reading(tmp_path):
    # 200,000 x 1 x 32 x 32 uint8 announced (195 MiB); no byte of it exists
    path = tmp_path / "big.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", _header_only((200_000, 1, 32, 32), "|u1"))
        zf.writestr("y.npy", _header_only((200_000,), "<i8"))
    with pytest.raises(DatasetFormatError) as err:
        import_dataset(path, tmp_path / "out.npz", max_memory=100 * 2**20)
    message = str(err.value)
    # both numbers: what it needs (decoded arrays plus working copies) and the limit
    assert "needs about" in message and "195.3 MiB" in message and "100.0 MiB" in message
    assert "PRUNESCOPE_MAX_IMPORT_MEMORY" in message
    assert not (tmp_path / "out.npz").exists()
    # with room for it, the same file gets as far as its missing data
    with pytest.raises(DatasetFormatError, match="ends after 0 of"):
        import_dataset(path, tmp_path / "out.npz", max_memory=2**30)


def test_a_small_upload_fits_a_small_limit(tmp_path):
    """Found in the browser: the chunks' working memory was counted as 32 MiB for any upload,
    so under a 32 MiB limit even a 38 KiB dataset was refused."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (600, 1, 8, 8), dtype=np.uint8)
    path = _npz(tmp_path / "small.npz", {"X": x, "y": np.arange(600) % 3})
    summary = import_dataset(path, tmp_path / "out.npz", max_memory=2**20)
    assert summary["n_train"] + summary["n_test"] == 600
    assert summary["peak_memory_estimate"] < 2**20


def test_row_limits_over_both_splits_are_checked_before_loading(tmp_path):
    path = tmp_path / "rows.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x_train.npy", _header_only((60, 4), "<f4"))
        zf.writestr("y_train.npy", _header_only((60,), "<i8"))
        zf.writestr("x_test.npy", _header_only((50, 4), "<f4"))
        zf.writestr("y_test.npy", _header_only((50,), "<i8"))
    with pytest.raises(DatasetFormatError, match="110 samples, more than the limit 100"):
        read_dataset(path, limits=Limits(max_samples=100))


def test_import_holds_one_decoded_copy_of_the_upload(tmp_path):
    """The uint8 inputs (64 MiB decoded) are read into one buffer and written in chunks: the
    import's traced peak stays under 1.5x the decoded size (issue 19; the old path held the
    float32 conversion and the split copies, ~8x)."""
    n = 65_536
    rng = np.random.default_rng(4)
    x = (rng.integers(0, 4, (n, 1, 32, 32), dtype=np.uint8) == 0).astype(np.uint8) * 255
    y = np.arange(n) % 10
    path = _npz(tmp_path / "up.npz", {"X": x, "y": y})
    decoded = x.nbytes + y.nbytes
    del x
    out = tmp_path / "out.npz"
    tracemalloc.start()
    try:
        summary = import_dataset(path, out, test_fraction=0.25, seed=1, max_memory=2**30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 1.5 * decoded, f"peak {peak / 2**20:.1f} MiB for {decoded / 2**20:.1f} MiB"
    # the estimate made from the headers before reading is an upper bound of what it held
    assert decoded <= peak <= summary["peak_memory_estimate"]
    # and what it wrote is the upload, split as read_dataset splits it
    ds = open_dataset(out)
    ref, _ = read_dataset(path, test_fraction=0.25, seed=1)
    assert ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train, ref.x_train)
    np.testing.assert_array_equal(ds.y_test, ref.y_test)
    assert summary["normalisation"]["split"] == "train"
    mean = float_inputs(np.asarray(ref.x_train)).astype(np.float64).mean()
    assert summary["normalisation"]["mean"][0] == pytest.approx(mean, rel=1e-12)


def test_import_checks_for_cancellation_between_chunks(tmp_path):
    x = np.zeros((40_000, 1, 32, 32), np.uint8)  # 39 MiB: several 1 MiB read chunks
    path = _npz(tmp_path / "c.npz", {"X": x, "y": np.arange(40_000) % 2}, deflate=False)

    class Stop(Exception):
        pass

    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise Stop

    with pytest.raises(Stop):
        import_dataset(path, tmp_path / "o.npz", check=check)
    assert calls == 5
