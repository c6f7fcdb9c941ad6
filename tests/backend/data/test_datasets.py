from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from backend.data import ArrayDataset, UnknownDatasetError, create, list_datasets


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_is_well_formed(name):
    ds = create(name)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64
    assert ds.x_train.shape[1:] == ds.x_test.shape[1:] == tuple(ds.input_shape)
    assert set(np.unique(ds.y_train)) == set(range(ds.num_classes))
    assert set(np.unique(ds.y_test)) == set(range(ds.num_classes))
    again = ArrayDataset.from_npz_bytes(ds.to_npz_bytes())
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    np.testing.assert_array_equal(again.y_train, ds.y_train)
    assert again.class_names == ds.class_names


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_is_deterministic(name):
    a, b = create(name), create(name)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_digits_split_is_stratified_and_complete():
    ds = create("digits")
    raw = load_digits()
    assert len(ds.y_train) + len(ds.y_test) == len(raw.target)
    assert ds.input_shape == [1, 8, 8]
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    # stratified: each class's share of the test split matches its share overall (+-1 sample)
    overall = np.bincount(raw.target) / len(raw.target)
    expected = overall * len(ds.y_test)
    assert np.all(np.abs(np.bincount(ds.y_test) - expected) <= 1.0)


def test_blobs_are_imbalanced_as_requested():
    ds = create("blobs", num_classes=4, n_largest=400, imbalance=0.5)
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]))
    np.testing.assert_array_equal(counts, [400, 200, 100, 50])


def test_unknown_and_bad_parameters():
    with pytest.raises(UnknownDatasetError, match="unknown dataset 'cifar100'; known: blobs"):
        create("cifar100")
    with pytest.raises(ValueError, match="test_size=1.5 should be in"):
        create("digits", test_size=1.5)
    with pytest.raises(ValueError, match="num_classes=1"):
        create("blobs", num_classes=1)


def test_array_dataset_rejects_inconsistent_arrays():
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="x_train has 4 rows but y_train has 3"):
        ArrayDataset(x, np.zeros(3, np.int64), x, np.zeros(4, np.int64), ["a"])
    with pytest.raises(ValueError, match="labels outside"):
        ArrayDataset(x, np.full(4, 2), x, np.zeros(4, np.int64), ["a", "b"])
