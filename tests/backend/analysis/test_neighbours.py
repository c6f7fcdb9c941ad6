"""Neighbourhood change (SCIENCE.md sect. 7) against a brute-force full distance matrix."""

from __future__ import annotations

import numpy as np
import pytest

from backend.analysis.neighbours import (
    knn_cosine,
    neighbourhood_change,
    neighbourhood_jaccard,
    normalise_rows,
    shared_neighbours,
)


def brute_distances(x: np.ndarray) -> np.ndarray:
    """Full (N, N) cosine distance matrix in float64; zero rows at distance 1 from all."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    unit = np.divide(x, norms[:, None], out=np.zeros_like(x), where=norms[:, None] > 0)
    return 1.0 - unit @ unit.T


def brute_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours by sorting each full row by (distance, index), self excluded; and the
    distance matrix."""
    d = brute_distances(x)
    n = len(d)
    out = np.empty((n, k), dtype=np.int64)
    cols = np.arange(n)
    for i in range(n):
        others = cols[cols != i]
        # distances equal up to float rounding count as ties (then the lower index first)
        order = np.lexsort((others, np.round(d[i, others], 9)))
        out[i] = others[order[:k]]
    return out, d


def assert_same_up_to_near_ties(got: np.ndarray, want: np.ndarray, d: np.ndarray) -> None:
    """Same neighbour distances; same indices wherever no other sample lies within float32
    rounding of the distance (random data: nearly everywhere)."""
    rows = np.arange(len(d))[:, None]
    np.testing.assert_allclose(d[rows, got], d[rows, want], atol=1e-5)
    n, k = got.shape
    for i in range(n):
        dist = np.sort(np.delete(d[i], i))
        gaps = np.diff(dist[: k + 1])
        if np.all(gaps > 1e-5):
            assert got[i].tolist() == want[i].tolist(), i


@pytest.mark.parametrize("k", [1, 5, 20, 59])
def test_knn_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    x = rng.standard_normal((60, 8)) * rng.uniform(0.1, 10, size=(60, 1))
    want, d = brute_knn(x, k)
    got = knn_cosine(x, k)
    assert got.shape == (60, k) and got.dtype == np.int64
    assert not (got == np.arange(60)[:, None]).any()  # the sample itself is never a neighbour
    assert_same_up_to_near_ties(got, want, d)


def test_knn_blocks_and_rows_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    import backend.analysis.neighbours as nb

    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    whole = knn_cosine(x, 10)
    monkeypatch.setattr(nb, "BLOCK_BYTES", 4 * 300 * 7)  # blocks of 7 rows
    assert_same_up_to_near_ties(knn_cosine(x, 10), whole, brute_distances(x))
    some = knn_cosine(x, 10, rows=[5, 299, 0])
    assert_same_up_to_near_ties(some, whole[[5, 299, 0]], brute_distances(x)[[5, 299, 0]])


def test_duplicates_and_scaled_copies_tie_by_index() -> None:
    """4 directions, each 6 times (scaled by powers of two: the same unit row exactly): every
    sample's 5 other copies come first at distance 0, in index order, then the nearest other
    direction's copies in index order (ties at the k-th place included)."""
    rng = np.random.default_rng(3)
    directions = rng.standard_normal((4, 5))
    rows = [directions[c] * 2.0 ** (i % 3) for i in range(6) for c in range(4)]
    x = np.array(rows)  # sample j has direction j % 4
    for k in (3, 5, 8, 11, 23):
        want, _ = brute_knn(x, k)
        got = knn_cosine(x, k)
        assert got.tolist() == want.tolist(), k
        same = [j for j in range(24) if j % 4 == 0 and j != 0]
        assert got[0, : min(k, 5)].tolist() == same[: min(k, 5)]


def test_zero_rows_are_at_distance_one_from_everything() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 6))
    x[[3, 17]] = 0.0
    k = 6
    got = knn_cosine(x, k)
    # a zero row: every distance is 1, so its neighbours are the lowest other indices
    assert got[3].tolist() == [0, 1, 2, 4, 5, 6]
    assert got[17].tolist() == [0, 1, 2, 3, 4, 5]
    want, d = brute_knn(x, k)
    assert_same_up_to_near_ties(got, want, d)
    assert np.all(normalise_rows(x)[[3, 17]] == 0)


@pytest.mark.parametrize("k", [0, -1, 10, 11, 2.5])
def test_k_out_of_range_is_refused(k: float) -> None:
    x = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="k="):
        knn_cosine(x, k)  # type: ignore[arg-type]


def test_bad_features_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        knn_cosine(np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="shape"):
        knn_cosine(np.zeros(5), 1)
    with pytest.raises(ValueError, match="rows"):
        knn_cosine(np.eye(3), 1, rows=[3])


def brute_jaccard(nn_a: np.ndarray, nn_b: np.ndarray) -> np.ndarray:
    return np.array(
        [len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(nn_a, nn_b, strict=True)]
    )


@pytest.mark.parametrize("k", [1, 4, 20])
def test_neighbourhood_change_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(10 + k)
    fa = rng.standard_normal((80, 12))
    # B: A's features mixed and noisier, with a different width (structured pruning)
    fb = fa @ rng.standard_normal((12, 7)) + 0.5 * rng.standard_normal((80, 7))
    change = neighbourhood_change(fa, fb, k)
    want_a, da = brute_knn(fa, k)
    want_b, db = brute_knn(fb, k)
    assert_same_up_to_near_ties(change.nn_a, want_a, da)
    assert_same_up_to_near_ties(change.nn_b, want_b, db)
    np.testing.assert_allclose(change.jaccard, brute_jaccard(change.nn_a, change.nn_b))
    assert change.jaccard.shape == (80,) and change.k == k
    assert ((change.jaccard >= 0) & (change.jaccard <= 1)).all()
    summary = change.summary()
    assert summary["k"] == k and summary["metric"] == "cosine"
    assert summary["mean"] == pytest.approx(change.jaccard.mean())
    # A's neighbours handed in are used as they are
    again = neighbourhood_change(fa, fb, k, nn_a=change.nn_a)
    np.testing.assert_array_equal(again.jaccard, change.jaccard)


def test_identical_spaces_keep_every_neighbourhood() -> None:
    x = np.random.default_rng(5).standard_normal((50, 4))
    change = neighbourhood_change(x, 3.0 * x, 7)  # cosine ignores the scale
    np.testing.assert_array_equal(change.jaccard, np.ones(50))
    assert neighbourhood_change(x, x, 49).jaccard.tolist() == [1.0] * 50


def test_jaccard_and_shared() -> None:
    a = np.array([[1, 2, 3], [4, 5, 6]])
    b = np.array([[3, 2, 9], [7, 8, 9]])
    np.testing.assert_allclose(neighbourhood_jaccard(a, b), [2 / 4, 0.0])
    assert shared_neighbours([1, 2, 3], [3, 2, 9]) == [2, 3]
    with pytest.raises(ValueError, match="same samples"):
        neighbourhood_change(np.eye(4), np.eye(3), 1)


def test_cancel_check_is_called_between_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import backend.analysis.neighbours as nb

    monkeypatch.setattr(nb, "BLOCK_BYTES", 4 * 40 * 10)
    calls: list[int] = []

    def stop() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        knn_cosine(np.random.default_rng(0).standard_normal((40, 3)), 3, cancel_check=stop)
    assert len(calls) == 2
