"""Formatting of headline numbers (accuracy, sparsity, sizes) for cards and tables."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MISSING = "—"


def _number(value: Any) -> float | None:
    """``value`` as a finite-or-infinite float; None when absent or NaN."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def format_percent(value: float | None, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage: ``0.9123 -> "91.2%"``; None or NaN -> "—"."""
    number = _number(value)
    if number is None:
        return MISSING
    return f"{100 * number:.{digits}f}%"


def format_delta_pp(a: float | None, b: float | None, digits: int = 1) -> str:
    """Change from ``a`` to ``b`` (fractions) in percentage points: ``"-1.3 pp"``, ``"+0.0 pp"``."""
    na, nb = _number(a), _number(b)
    if na is None or nb is None:
        return MISSING
    return f"{100 * (nb - na):+.{digits}f} pp"


def format_ratio(value: float | None, digits: int = 1) -> str:
    """A compression ratio: ``10.0 -> "10.0×"``; None, NaN or infinite -> "—"."""
    number = _number(value)
    if number is None or math.isinf(number):
        return MISSING
    return f"{number:.{digits}f}×"


def format_count(value: int | None) -> str:
    """A parameter count, compact: ``950 -> "950"``, ``11_173_962 -> "11.17M"``."""
    number = _number(value)
    if number is None:
        return MISSING
    n = int(number)
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= threshold:
            return f"{n / threshold:.2f}{suffix}"
    return str(n)


def model_label(model: Mapping[str, Any]) -> str:
    """Short name of a model for selectors and legends.

    A pruned model is named by its method and sparsity (``"global_magnitude 90%"``), an
    original by its name.
    """
    method = model.get("pruning_method")
    if method:
        sparsity = _number(model.get("sparsity"))
        pct = MISSING if sparsity is None else f"{100 * sparsity:.3g}%"
        return f"{method} {pct}"
    return str(model.get("name") or f"model {model.get('id')}")
