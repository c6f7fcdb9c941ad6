"""Aligned 2-D embeddings of two models' penultimate features.

Model A is the original, model B the pruned one (../shared/design/SCIENCE.md). Both are shown to
the same N test samples; f_A(x) in R^{D_a} and f_B(x) in R^{D_b} are their penultimate features,
and the widths may differ (structured pruning removes channels). The dashboard draws one scatter
per model, so the two layouts must be *aligned*: the same sample should sit in about the same
place in both, otherwise nobody can tell what moved.

Pipeline, the same for every method:

1. Standardise each model's features separately, per feature (column): z = (f - mean) / std over
   the N samples, a zero-variance column (a dead ReLU unit, common after pruning) becoming 0.
   Why: the two models' feature scales are unrelated, and one large-variance unit should not own
   the Euclidean distances that UMAP's neighbour graph and PCA are built on.
2. Lay out A and B with one of three methods:

   - ``"aligned_umap"``: ``umap.AlignedUMAP`` on the two slices [z_A, z_B] with the identity
     relation {i: i for every sample}, so a regulariser pulls sample i of B towards sample i of A
     during one joint optimisation (McInnes et al., umap-learn "AlignedUMAP").
   - ``"umap_init"``: fit UMAP on z_A, then fit UMAP on z_B starting from A's layout
     (``init=coords_a``), which B's own graph then deforms. A cheaper, looser alternative: no
     term ties sample i of B to sample i of A once the optimisation starts. The layout of A
     does not depend on B, so it is cached and identical in every comparison against that A;
     B's result is mapped back into A's frame (umap rescales an initial layout to [0, 10]^2).
   - ``"pca"``: instant, deterministic fallback. The first two principal axes of z_A give
     coords_a; z_B is projected on its own first two principal axes and then rotated (possibly
     reflected) onto coords_a by orthogonal Procrustes.
   - ``"auto"``: ``"pca"`` below ``MIN_UMAP_SAMPLES`` samples or when UMAP raises, else
     ``"aligned_umap"``.

kNN graphs. ``knn_graph`` computes the k nearest neighbours once per feature matrix and keeps the
result in a per-process cache keyed by a hash of the array's bytes (plus k and seed), so the
original model's graph is reused by every comparison against it. ``umap.UMAP`` accepts it through
``precomputed_knn`` (umap-learn >= 0.5.2). ``umap.AlignedUMAP`` (0.5.12) has no such parameter:
its ``fit`` builds one plain ``UMAP`` per slice itself, so the aligned method recomputes the kNN
graphs and also runs (and discards) a full layout of each slice before the joint optimisation.
That is why it costs about three to four seeded plain fits (bench/bench_aligned_umap.py).

Determinism. With an integer seed every UMAP fit runs single-threaded (umap-learn forces
``n_jobs=1`` whenever ``random_state`` is set; here the numba thread count of the aligned
optimisation, which uses ``prange``, is also set to 1), which makes the layouts reproducible on
one machine. ``seed=None`` uses every core and is not reproducible. PCA is exactly deterministic
(the signs of the principal axes are fixed).

Compilation. umap-learn and pynndescent are compiled by numba on first use: about a minute on two
cores for all the paths used here. Call ``warm_up()`` once when a worker starts. AlignedUMAP also
re-jits its per-epoch function on every call (``numba.njit`` inside ``fit``), about 2 s each time.

Stopping early. A UMAP fit has no public way to stop it. ``aligned_embedding`` takes a
``cancel_check`` (a callable that raises to stop, e.g. a job's cancellation check) and calls it
between the steps (standardising, each fit) and, through :func:`epoch_checks`, before every
epoch of every layout optimisation, AlignedUMAP's joint one included (an epoch takes
milliseconds to a fraction of a second). What cannot be interrupted: the nearest-neighbour
search, the spectral initialisation of a fit and numba's compilation on first use (hence
``warm_up``); on 10^4 samples each of those takes seconds, which bounds how late a stop can be.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.linalg import eigh, orthogonal_procrustes
from scipy.spatial import procrustes

logger = logging.getLogger(__name__)

EmbeddingMethod = Literal["auto", "aligned_umap", "umap_init", "pca"]
METHODS: tuple[str, ...] = ("aligned_umap", "umap_init", "pca")
MIN_UMAP_SAMPLES = 50
"""``method="auto"`` uses PCA below this many samples: UMAP's neighbour graph says little there."""
EXACT_KNN_BELOW = 4096
"""Below this many samples kNN is exact (brute force), as umap-learn itself does; above it
nearest-neighbour descent (pynndescent) is used."""
KNN_CACHE_SIZE = 8


def standardize(features: np.ndarray) -> np.ndarray:
    """Per-feature z-score over the samples; zero-variance features become 0.

    Args:
        features: (N, D) real array.

    Returns:
        (N, D) float32 with every column of mean 0 and standard deviation 1 (or all 0).
    """
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std <= 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0)))] = np.inf
    return ((x - mean) / std).astype(np.float32)


def normalize_layout(coords: np.ndarray) -> np.ndarray:
    """Centre a layout and scale it to unit RMS radius.

    Args:
        coords: (N, 2) positions.

    Returns:
        (N, 2) float64 with column means 0 and sqrt(mean_i ||c_i||^2) = 1 (unchanged, merely
        centred, when all points coincide).
    """
    c = np.asarray(coords, dtype=np.float64)
    c = c - c.mean(axis=0)
    rms = float(np.sqrt((c**2).sum(axis=1).mean()))
    return c / rms if rms > 0 else c


def alignment_distance(coords_a: np.ndarray, coords_b: np.ndarray) -> float:
    """How far the same sample sits in two layouts, as the viewer sees them side by side.

    Both layouts are centred and scaled to unit RMS radius (``normalize_layout``); the result is
    the mean over samples of the Euclidean distance between sample i's two positions:
    mean_i ||a_i - b_i||. No rotation is removed, on purpose: an aligned layout must not need one.
    0 means identical up to translation and scale; two unrelated layouts give about 1.4
    (sqrt 2 for independent, centred, unit-RMS clouds), an exact mirror image up to 2.

    Args:
        coords_a: (N, 2) layout of model A.
        coords_b: (N, 2) layout of model B, same sample order.

    Returns:
        The mean distance, in units of the layouts' RMS radius.
    """
    a, b = _check_pair(coords_a, coords_b)
    return float(np.linalg.norm(normalize_layout(a) - normalize_layout(b), axis=1).mean())


def procrustes_distance(coords_a: np.ndarray, coords_b: np.ndarray) -> float:
    """Procrustes disparity of two layouts (``scipy.spatial.procrustes``).

    Both are centred and scaled to unit Frobenius norm, B is then optimally rotated, reflected
    and scaled onto A; the disparity is the remaining sum of squared differences, in [0, 1].
    Unlike ``alignment_distance`` it ignores any rotation between the layouts.

    Args:
        coords_a: (N, 2) layout of model A.
        coords_b: (N, 2) layout of model B, same sample order.

    Returns:
        The disparity (0 = same shape).
    """
    a, b = _check_pair(coords_a, coords_b)
    return float(procrustes(a, b)[2])


def _check_pair(coords_a: np.ndarray, coords_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(coords_a, dtype=np.float64)
    b = np.asarray(coords_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"layouts should be two (N, d) arrays of one shape, got {a.shape}, {b.shape}"
        )
    return a, b


# ---------------------------------------------------------------------------------------------
# kNN graph, computed once per feature matrix


@dataclass(frozen=True)
class KnnGraph:
    """k nearest neighbours of every sample, itself included (first column).

    Attributes:
        indices: (N, k) int64 neighbour indices, nearest first; indices[i, 0] == i.
        distances: (N, k) float32 Euclidean distances, ascending; distances[:, 0] == 0.
        exact: True when computed by brute force, False for nearest-neighbour descent.
    """

    indices: np.ndarray
    distances: np.ndarray
    exact: bool

    def for_umap(self) -> tuple[np.ndarray, np.ndarray]:
        """Fresh writeable copies in the form of ``umap.UMAP(precomputed_knn=...)``."""
        return self.indices.copy(), self.distances.copy()


_knn_cache: OrderedDict[tuple[Any, ...], KnnGraph] = OrderedDict()
_knn_lock = threading.Lock()


def _content_key(x: np.ndarray) -> tuple[str, tuple[int, ...], str]:
    c = np.ascontiguousarray(x)
    return (
        hashlib.blake2b(c.view(np.uint8).reshape(-1).data, digest_size=20).hexdigest(),
        c.shape,
        c.dtype.str,
    )


def clear_knn_cache() -> None:
    """Forget every cached kNN graph (and cached UMAP layout of a model A)."""
    with _knn_lock:
        _knn_cache.clear()
        _layout_cache.clear()


def knn_graph(features: np.ndarray, n_neighbors: int = 15, seed: int | None = 0) -> KnnGraph:
    """k nearest neighbours in Euclidean distance, cached within the process.

    Exact (brute force, float64) below ``EXACT_KNN_BELOW`` samples, as umap-learn does; otherwise
    umap-learn's ``nearest_neighbors`` (pynndescent). The cache key is a BLAKE2 hash of the
    array's bytes, shape and dtype, with k and (for the approximate graph) the seed; the
    ``KNN_CACHE_SIZE`` most recent graphs are kept. The returned arrays are read-only.

    Args:
        features: (N, D) array, usually ``standardize``d.
        n_neighbors: k, counting the sample itself; clipped to N.
        seed: random state of pynndescent (which then runs single-threaded); None for parallel.

    Returns:
        The graph, with (N, min(k, N)) arrays.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"features should be (N, D) with N >= 1, got shape {x.shape}")
    if n_neighbors < 1:
        raise ValueError(f"n_neighbors={n_neighbors} should be >= 1")
    k = min(int(n_neighbors), x.shape[0])
    exact = x.shape[0] < EXACT_KNN_BELOW
    key = (*_content_key(x), k, None if exact else seed)
    with _knn_lock:
        hit = _knn_cache.get(key)
        if hit is not None:
            _knn_cache.move_to_end(key)
            return hit
    graph = _exact_knn(x, k) if exact else _approximate_knn(x, k, seed)
    graph.indices.flags.writeable = False
    graph.distances.flags.writeable = False
    with _knn_lock:
        _knn_cache[key] = graph
        while len(_knn_cache) > KNN_CACHE_SIZE:
            _knn_cache.popitem(last=False)
    return graph


def _exact_knn(x: np.ndarray, k: int, chunk: int = 1024) -> KnnGraph:
    x64 = x.astype(np.float64)
    sq = (x64**2).sum(axis=1)
    n = x.shape[0]
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        rows = np.arange(start, min(start + chunk, n))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (x64[rows] @ x64.T)
        d2[np.arange(len(rows)), rows] = -np.inf  # the sample itself always comes first
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        part_d = np.take_along_axis(d2, part, axis=1)
        order = np.lexsort((part, part_d), axis=1)
        indices[rows] = np.take_along_axis(part, order, axis=1)
        distances[rows] = np.sqrt(np.maximum(np.take_along_axis(part_d, order, axis=1), 0.0))
    return KnnGraph(indices=indices, distances=distances, exact=True)


def _approximate_knn(x: np.ndarray, k: int, seed: int | None) -> KnnGraph:
    from umap.umap_ import nearest_neighbors

    indices, distances, _ = nearest_neighbors(
        x,
        k,
        "euclidean",
        {},
        False,
        np.random.RandomState(seed) if seed is not None else None,
        low_memory=True,
        use_pynndescent=True,
        n_jobs=1 if seed is not None else -1,
    )
    return KnnGraph(
        indices=np.asarray(indices, dtype=np.int64),
        distances=np.asarray(distances, dtype=np.float32),
        exact=False,
    )


# ---------------------------------------------------------------------------------------------
# Layouts


@dataclass(frozen=True)
class AlignedEmbedding:
    """Two aligned 2-D layouts of the same samples.

    Attributes:
        coords_a: (N, 2) float32 layout of model A.
        coords_b: (N, 2) float32 layout of model B, in the same frame.
        method: the method actually used ("aligned_umap", "umap_init" or "pca").
        seconds: wall time of the computation, kNN graphs included unless they were cached.
        alignment_distance: ``alignment_distance(coords_a, coords_b)``.
        requested: the method asked for (may be "auto").
        fallback_reason: why PCA replaced UMAP, None when it did not.
    """

    coords_a: np.ndarray
    coords_b: np.ndarray
    method: str
    seconds: float
    alignment_distance: float
    requested: str = ""
    fallback_reason: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "coords_a": self.coords_a.astype(float).tolist(),
            "coords_b": self.coords_b.astype(float).tolist(),
            "method": self.method,
            "requested": self.requested,
            "seconds": self.seconds,
            "alignment_distance": self.alignment_distance,
            "procrustes_distance": procrustes_distance(self.coords_a, self.coords_b),
            "fallback_reason": self.fallback_reason,
        }


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection on the first two principal axes, with a fixed sign per axis.

    The axes are the top eigenvectors of the D x D scatter matrix (of the N x N Gram matrix
    when D > N), which is much faster than an SVD of the data for N >> D. Sign convention of
    sklearn's ``svd_flip``: the largest-magnitude loading of each axis is positive, so the
    result does not depend on the LAPACK build.

    Args:
        x: (N, D) array.

    Returns:
        (N, 2) float64; a column beyond the rank of the centred data is (about) 0.
    """
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0)
    n, d = xc.shape
    out = np.zeros((n, 2))
    k = min(2, n, d)
    if k == 0:
        return out
    if d <= n:
        _, v = eigh(xc.T @ xc, subset_by_index=[d - k, d - 1])
        v = v[:, ::-1]
    else:
        _, u = eigh(xc @ xc.T, subset_by_index=[n - k, n - 1])
        v = xc.T @ u[:, ::-1]
        norms = np.linalg.norm(v, axis=0)
        v = v / np.where(norms > 0, norms, 1.0)
    signs = np.sign(v[np.abs(v).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1.0
    out[:, :k] = xc @ (v * signs)
    return out


def _pca_pair(za: np.ndarray, zb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ca = pca_2d(za)
    cb = pca_2d(zb)
    rotation, _ = orthogonal_procrustes(cb, ca)
    return ca, cb @ rotation


_epoch_hook = threading.local()  # .check: the cancel_check of this thread's UMAP fits
_epoch_hook_lock = threading.Lock()


def _install_epoch_hook() -> None:
    """Wrap ``umap.layouts.tqdm`` once: umap-learn (0.5) runs every layout optimisation as
    ``for n in tqdm(range(n_epochs), ...)`` in that module, so the wrapper sees each epoch and
    calls the check :func:`epoch_checks` set for the current thread (none: it only iterates)."""
    import umap.layouts as layouts

    with _epoch_hook_lock:
        original = getattr(layouts, "tqdm", None)
        if original is None or getattr(original, "_prunescope_epoch_hook", False):
            return

        def checked(iterable: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            for item in original(iterable, *args, **kwargs):
                check = getattr(_epoch_hook, "check", None)
                if check is not None:
                    check()
                yield item

        checked._prunescope_epoch_hook = True  # type: ignore[attr-defined]
        layouts.tqdm = checked


class StopRecorder:
    """Calls a job's cancellation check (a no-op without one) and remembers that it raised:
    under ``method="auto"`` a UMAP failure falls back to PCA, a stop must not."""

    def __init__(self, cancel_check: Callable[[], None] | None) -> None:
        self.cancel_check = cancel_check
        self.stopped = False

    def __call__(self) -> None:
        if self.cancel_check is None:
            return
        try:
            self.cancel_check()
        except BaseException:
            self.stopped = True
            raise


@contextmanager
def epoch_checks(cancel_check: Callable[[], None] | None) -> Iterator[None]:
    """Within the block, call ``cancel_check`` before every epoch of the UMAP fits that this
    thread runs (module docstring, "Stopping early"); it stops a fit by raising."""
    if cancel_check is None:
        yield
        return
    _install_epoch_hook()
    previous = getattr(_epoch_hook, "check", None)
    _epoch_hook.check = cancel_check
    try:
        yield
    finally:
        _epoch_hook.check = previous


@contextmanager
def quiet_umap(threads: int | None) -> Iterator[None]:
    """Route umap's UserWarnings to the log and optionally pin numba's thread count."""
    import numba

    previous = numba.get_num_threads()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if threads is not None:
                numba.set_num_threads(threads)
            yield
        finally:
            numba.set_num_threads(previous)
    for w in caught:
        logger.debug("umap: %s", w.message)


def _umap_fit(
    z: np.ndarray,
    knn: KnnGraph | None,
    n_neighbors: int,
    min_dist: float,
    seed: int | None,
    init: str | np.ndarray = "spectral",
    n_epochs: int | None = None,
) -> np.ndarray:
    import umap

    kwargs: dict[str, Any] = {}
    if knn is not None:
        kwargs["precomputed_knn"] = knn.for_umap()
    mapper = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        init=init,
        n_epochs=n_epochs,
        random_state=seed,
        n_jobs=1 if seed is not None else -1,
        **kwargs,
    )
    with quiet_umap(None):
        coords = mapper.fit_transform(z)
    return np.asarray(coords, dtype=np.float64)


_layout_cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()


def _umap_init_pair(
    za: np.ndarray,
    zb: np.ndarray,
    n_neighbors: int,
    min_dist: float,
    seed: int | None,
    cancel_check: Callable[[], None] = lambda: None,
) -> tuple[np.ndarray, np.ndarray]:
    key = (*_content_key(za), n_neighbors, min_dist, seed)
    with _knn_lock:
        ca = _layout_cache.get(key) if seed is not None else None
    if ca is None:
        ca = _fill_missing(
            _umap_fit(za, knn_graph(za, n_neighbors, seed), n_neighbors, min_dist, seed)
        )
        if seed is not None:
            with _knn_lock:
                _layout_cache[key] = ca
                while len(_layout_cache) > KNN_CACHE_SIZE:
                    _layout_cache.popitem(last=False)
    cancel_check()  # between the two fits
    # umap rescales any initial layout to the box [0, 10]^2 per axis before optimising; do it
    # here so that the inverse map below puts B back into A's frame.
    lo, span = ca.min(axis=0), np.ptp(ca, axis=0)
    span[span == 0] = 1.0
    init = 10.0 * (ca - lo) / span
    cb = _umap_fit(zb, knn_graph(zb, n_neighbors, seed), n_neighbors, min_dist, seed, init=init)
    cb = _fill_missing(cb, init)
    return ca.copy(), cb * span / 10.0 + lo


def _aligned_umap_pair(
    za: np.ndarray, zb: np.ndarray, n_neighbors: int, min_dist: float, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    import umap

    n = za.shape[0]
    mapper = umap.AlignedUMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed)
    with quiet_umap(1 if seed is not None else None):
        mapper.fit([za, zb], relations=[{i: i for i in range(n)}])
    ca, cb = (np.asarray(e, dtype=np.float64) for e in mapper.embeddings_)
    return _fill_missing(ca, cb), _fill_missing(cb, ca)


def _fill_missing(coords: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """UMAP puts samples with no neighbour edge at NaN: use the other layout's position of the
    same sample when it has one, else the centroid."""
    bad = ~np.isfinite(coords).all(axis=1)
    if not bad.any():
        return coords
    coords = coords.copy()
    centroid = coords[~bad].mean(axis=0) if (~bad).any() else np.zeros(coords.shape[1])
    coords[bad] = centroid
    if other is not None:
        ok = bad & np.isfinite(other).all(axis=1)
        coords[ok] = other[ok]
    return coords


def _validate(features_a: np.ndarray, features_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(features_a)
    b = np.asarray(features_b)
    for name, x in (("features_a", a), ("features_b", b)):
        if x.ndim != 2:
            raise ValueError(f"{name} should be (N, D), got shape {x.shape}")
        if x.shape[1] < 1:
            raise ValueError(f"{name} has no features: shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"features_a has {a.shape[0]} samples but features_b has {b.shape[0]}")
    if a.shape[0] < 2:
        raise ValueError(f"an embedding needs at least 2 samples, got N={a.shape[0]}")
    return a, b


def aligned_embedding(
    features_a: np.ndarray,
    features_b: np.ndarray,
    method: EmbeddingMethod = "auto",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int | None = 0,
    cancel_check: Callable[[], None] | None = None,
) -> AlignedEmbedding:
    """Aligned 2-D layouts of model A's and model B's features (module docstring).

    Args:
        features_a: (N, D_a) penultimate features of model A.
        features_b: (N, D_b) penultimate features of model B, same samples in the same order;
            D_b may differ from D_a.
        method: "auto", "aligned_umap", "umap_init" or "pca".
        n_neighbors: UMAP's neighbourhood size; clipped to N - 1.
        min_dist: UMAP's minimum distance between embedded points.
        seed: random state; None for parallel, non-reproducible UMAP.
        cancel_check: called between the steps and before every UMAP epoch; raise from it to
            stop (module docstring, "Stopping early"). What it raises is never taken for a
            UMAP failure: "auto" does not fall back to PCA then.

    Returns:
        The two layouts, the method used, the time taken and their alignment distance.

    Raises:
        ValueError: on a bad method, mismatched or non-finite features, fewer than 2 samples,
            or fewer than ``MIN_UMAP_SAMPLES`` samples for an explicit UMAP method.
    """
    if method not in ("auto", *METHODS):
        raise ValueError(
            f"method={method!r} should be one of 'auto', {', '.join(map(repr, METHODS))}"
        )
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors={n_neighbors} should be >= 2")
    a, b = _validate(features_a, features_b)
    n = a.shape[0]
    if method in ("aligned_umap", "umap_init") and n < MIN_UMAP_SAMPLES:
        raise ValueError(
            f"method={method!r} needs at least {MIN_UMAP_SAMPLES} samples, got N={n}; use 'pca'"
        )
    check = StopRecorder(cancel_check)

    t0 = time.perf_counter()
    check()
    za, zb = standardize(a), standardize(b)
    check()
    k = min(n_neighbors, n - 1)
    used: str = "pca" if method == "auto" and n < MIN_UMAP_SAMPLES else method
    if used == "auto":
        used = "aligned_umap"
    reason = f"N={n} < {MIN_UMAP_SAMPLES} samples" if method == "auto" and used == "pca" else None
    try:
        # (PCA needs no hook: umap is not even imported for it)
        with epoch_checks(check if cancel_check is not None and used != "pca" else None):
            if used == "aligned_umap":
                ca, cb = _aligned_umap_pair(za, zb, k, min_dist, seed)
            elif used == "umap_init":
                ca, cb = _umap_init_pair(za, zb, k, min_dist, seed, check)
            else:
                ca, cb = _pca_pair(za, zb)
    except Exception as exc:  # any UMAP failure degrades to PCA under "auto"
        if method != "auto" or check.stopped:
            raise
        logger.warning("UMAP failed (%s: %s); falling back to PCA", type(exc).__name__, exc)
        used, reason = "pca", f"{type(exc).__name__}: {exc}"
        ca, cb = _pca_pair(za, zb)
    ca32, cb32 = ca.astype(np.float32), cb.astype(np.float32)
    return AlignedEmbedding(
        coords_a=ca32,
        coords_b=cb32,
        method=used,
        seconds=time.perf_counter() - t0,
        alignment_distance=alignment_distance(ca32, cb32),
        requested=method,
        fallback_reason=reason,
    )


def warm_up(seed: int | None = 0, large: bool = True) -> float:
    """Compile (numba) every UMAP / pynndescent code path used here, on a tiny random input.

    Call once when a worker process starts: the first real comparison then does not pay about
    a minute of compilation (two cores). Leaves the kNN cache as it was. Later calls cost a few
    seconds, since AlignedUMAP re-jits its epoch function on every fit.

    Args:
        seed: the seed the worker will use (seeded and unseeded runs compile different
            single- and multi-threaded variants).
        large: also compile the approximate nearest-neighbour search (pynndescent) used from
            4096 samples on; most of the time on two cores (about 25 of 45 s).

    Returns:
        Seconds it took.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    n = 2 * MIN_UMAP_SAMPLES
    za = standardize(rng.normal(size=(n, 8)))
    zb = standardize(rng.normal(size=(n, 6)))
    if large:
        _approximate_knn(za, 5, seed)
    knn = _exact_knn(za, 5)
    ca = _umap_fit(za, knn, 5, 0.1, seed, n_epochs=5)
    _umap_fit(zb, _exact_knn(zb, 5), 5, 0.1, seed, init=_fill_missing(ca), n_epochs=5)
    import umap

    with quiet_umap(1 if seed is not None else None):
        umap.AlignedUMAP(n_neighbors=5, n_epochs=5, random_state=seed).fit(
            [za, zb], relations=[{i: i for i in range(n)}]
        )
    return time.perf_counter() - t0
