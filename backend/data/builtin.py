"""Built-in datasets: nothing is downloaded.

- ``digits``: scikit-learn's 8x8 handwritten digits (1797 images shipped with the package),
  scaled to [0, 1], laid out (N, 1, 8, 8), with a fixed stratified train/test split.
- ``blobs``: generated Gaussian blobs with a geometric class imbalance, the controlled setting
  in which recall distortion (Good et al., NeurIPS 2022) is easy to provoke and observe.
"""

from __future__ import annotations

import numpy as np

from backend.data.registry import ArrayDataset, register_dataset


def _check_fraction(name: str, value: float) -> float:
    if not isinstance(value, int | float) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name}={value!r} should be in (0, 1)")
    return float(value)


@register_dataset("digits")
def digits(test_size: float = 0.25, seed: int = 0) -> ArrayDataset:
    """scikit-learn digits, 10 classes, inputs (1, 8, 8) in [0, 1]; stratified split."""
    test_size = _check_fraction("test_size", test_size)
    # scikit-learn is imported here, not at module level: it costs ~70 MB in every process
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return ArrayDataset(
        x_tr,
        y_tr,
        x_te,
        y_te,
        class_names=[str(c) for c in bunch.target_names],
        params={"test_size": test_size, "seed": seed},
    )


@register_dataset("blobs")
def blobs(
    num_classes: int = 10,
    dim: int = 32,
    n_largest: int = 600,
    imbalance: float = 0.7,
    spread: float = 1.5,
    test_size: float = 0.3,
    seed: int = 0,
) -> ArrayDataset:
    """Class-imbalanced Gaussian blobs in R^dim.

    Class c has ``round(n_largest * imbalance**c)`` samples (at least 10) drawn from
    N(mu_c, spread^2 I) with mu_c ~ N(0, I) * 3; inputs are (dim,) vectors.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} should be an integer >= 2")
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim={dim!r} should be a positive integer")
    imbalance = float(imbalance)
    if not 0.0 < imbalance <= 1.0:
        raise ValueError(f"imbalance={imbalance!r} should be in (0, 1]")
    test_size = _check_fraction("test_size", test_size)
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 3.0, size=(num_classes, dim))
    xs, ys = [], []
    for c in range(num_classes):
        n = max(10, round(n_largest * imbalance**c))
        xs.append(rng.normal(means[c], spread, size=(n, dim)))
        ys.append(np.full(n, c))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return ArrayDataset(
        x_tr,
        y_tr,
        x_te,
        y_te,
        class_names=[f"class {c}" for c in range(num_classes)],
        params={
            "num_classes": num_classes,
            "dim": dim,
            "n_largest": n_largest,
            "imbalance": imbalance,
            "spread": spread,
            "test_size": test_size,
            "seed": seed,
        },
    )
