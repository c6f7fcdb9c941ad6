"""Registry of pruning methods (torch/nn/utils/prune.py + timm registry style).

A pruning method is an object whose only job is to compute masks: ``__init__`` validates and
stores the hyper-parameters, :meth:`PruningMethod.compute_masks` returns ``{module name: mask}``
and :func:`backend.pruning.masks.apply_masks` puts the masks where torch keeps them
(``weight_orig``, ``weight_mask``). New masks build on the existing mask and never revive a
pruned weight.

``sparsity`` is always cumulative: the fraction of the method's prunable weights that are zero
after pruning, whatever was pruned before.
"""

from __future__ import annotations

import abc
import inspect
import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from torch import Tensor, nn

from backend.pruning.masks import apply_masks
from models.registry import UnknownNameError

if TYPE_CHECKING:
    from backend.pruning.session import PruneSession

__all__ = [
    "PruningMethod",
    "UnknownNameError",
    "check_bool",
    "check_int",
    "check_number",
    "create",
    "list_methods",
    "method_info",
    "register_method",
]

M = TypeVar("M", bound="type[PruningMethod]")

_METHODS: dict[str, type[PruningMethod]] = {}


def check_number(
    name: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_closed: bool = True,
    high_closed: bool = True,
) -> float:
    """Validate a real number in an interval; the error message names the value.

    Raises:
        ValueError: e.g. ``"sparsity=1.1 should be in [0, 1)"``.
    """
    interval = f"{'[' if low_closed else '('}{_fmt(low)}, {_fmt(high)}{']' if high_closed else ')'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r} should be a number in {interval}")
    v = float(value)
    above = v >= low if low_closed else v > low
    below = v <= high if high_closed else v < high
    if not (above and below):  # also rejects NaN
        raise ValueError(f"{name}={value!r} should be in {interval}")
    return v


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """Validate an integer (not a bool) in ``[low, high]``; the error message names the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} should be an integer")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        if high is None:
            raise ValueError(f"{name}={value!r} should be an integer >= {low}")
        if low is None:
            raise ValueError(f"{name}={value!r} should be an integer <= {high}")
        raise ValueError(f"{name}={value!r} should be an integer in [{low}, {high}]")
    return v


def check_bool(name: str, value: object) -> bool:
    """Validate a bool; the error message names the value."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} should be true or false")
    return value


def _fmt(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return str(int(x)) if float(x).is_integer() else str(x)


class PruningMethod(abc.ABC):
    """Base class: validates ``sparsity`` and stores the method's hyper-parameters.

    Subclasses declare their hyper-parameters as keyword arguments with defaults in
    ``__init__``, validate them with :func:`check_number` / :func:`check_int` /
    :func:`check_bool`, and pass them on to ``super().__init__`` so that :attr:`params` and
    :meth:`describe` can store them.

    Attributes:
        name: Registry name, set by :func:`register_method`.
        needs_batch: Whether :meth:`compute_masks` needs a batch ``(x, y)`` (e.g. SNIP).
        scope: ``"global"`` if ``sparsity`` is met over all prunable weights jointly,
            ``"layer"`` if it is met in every prunable layer, ``"structured"`` if it is the
            fraction of output channels physically removed from each prunable layer.
        schedule: When the method prunes: ``"one_shot"`` (a trained model, then fine-tuning),
            ``"at_init"`` (a freshly initialised model, then training), ``"during_training"``
            (masks change while training), ``"iterative"`` (prune-train rounds).
        revives: Whether the method may set a pruned weight live again (DNS, RigL).
        sparsity: Target fraction of prunable weights that are zero after pruning, in [0, 1).
        params: The validated hyper-parameters other than ``sparsity``.
    """

    name: ClassVar[str] = ""
    needs_batch: ClassVar[bool] = False
    scope: ClassVar[Literal["global", "layer", "structured"]] = "global"
    schedule: ClassVar[Literal["one_shot", "at_init", "during_training", "iterative"]] = "one_shot"
    revives: ClassVar[bool] = False

    def __init__(self, sparsity: float, **params: Any) -> None:
        self.sparsity = check_number("sparsity", sparsity, 0.0, 1.0, high_closed=False)
        self.params: dict[str, Any] = dict(params)

    @abc.abstractmethod
    def compute_masks(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Compute new masks; the model is not modified.

        Args:
            model: The model, possibly already pruned.
            batch: ``(x, y)`` with x (N, ...) inputs and y (N,) integer labels, for methods
                with ``needs_batch``; ignored otherwise.

        Returns:
            ``{qualified module name: mask}``; each mask is a 0/1 float tensor with the shape
            of that module's weight, and is zero wherever the current mask is zero.
        """

    def apply(
        self, model: nn.Module, batch: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Compute the masks and apply them to ``model`` in place; returns the masks."""
        if self.needs_batch and batch is None:
            raise ValueError(f"pruning method {self.name!r} needs a batch (x, y)")
        masks = self.compute_masks(model, batch)
        if not masks and self.sparsity > 0:
            raise ValueError(
                f"the model has no layer that {self.name!r} can prune "
                f"(prunable: Conv2d and Linear weights; parameters: {self.params})"
            )
        apply_masks(model, masks)
        return masks

    def run(self, model: nn.Module, session: PruneSession) -> nn.Module:
        """Prune ``model`` and train it as the method prescribes; returns the pruned model.

        The default is one-shot pruning of a trained model followed by fine-tuning with the
        session's settings. Methods that prune at initialisation, during training or in rounds
        override this. The returned model may be a new object (structured pruning, methods
        that start from a fresh initialisation).
        """
        batch = session.batch() if self.needs_batch else None
        session.progress(0.0, f"pruning: {self.name} to {self.sparsity:.0%}")
        self.apply(model, batch)
        session.train(model, span=(0.05, 1.0))
        return model

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: ``{"method", "sparsity", "params"}``."""
        return {"method": self.name, "sparsity": self.sparsity, "params": dict(self.params)}

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}" for k, v in {"sparsity": self.sparsity, **self.params}.items()
        )
        return f"{type(self).__name__}({args})"


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator recording a :class:`PruningMethod` subclass under ``name``.

    Raises:
        ValueError: If ``name`` is taken by a different class.
    """

    def decorator(cls: M) -> M:
        previous = _METHODS.get(name)
        if previous is not None and _qualname(previous) != _qualname(cls):
            raise ValueError(
                f"pruning method {name!r} is already registered by {_qualname(previous)}"
            )
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorator


def list_methods() -> list[str]:
    """Names of all registered pruning methods, sorted."""
    return sorted(_METHODS)


def _method_class(name: str) -> type[PruningMethod]:
    try:
        return _METHODS[name]
    except (KeyError, TypeError):
        raise UnknownNameError("pruning method", name, list_methods()) from None


def _hyper_parameters(cls: type[PruningMethod]) -> list[inspect.Parameter]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    return [
        p
        for p in params
        if p.name != "sparsity" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def create(name: str, **params: Any) -> PruningMethod:
    """Instantiate a registered pruning method.

    Args:
        name: A name from :func:`list_methods`.
        **params: ``sparsity`` and the method's hyper-parameters.

    Raises:
        UnknownNameError: (a ValueError) if ``name`` is not registered.
        ValueError: If a parameter is unknown, missing or invalid.
    """
    cls = _method_class(name)
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        known = ", ".join(["sparsity"] + [p.name for p in _hyper_parameters(cls)])
        raise ValueError(
            f"invalid parameters for pruning method {name!r} ({exc}); known: {known}"
        ) from None
    return cls(**params)


def method_info(name: str) -> dict[str, Any]:
    """Describe a method for the UI.

    Returns:
        ``{"name", "doc" (first docstring line), "defaults" ({param: default}, excluding
        sparsity), "needs_batch", "scope", "schedule", "revives"}``.
    """
    cls = _method_class(name)
    defaults = {
        p.name: (None if p.default is p.empty else p.default) for p in _hyper_parameters(cls)
    }
    doc = inspect.getdoc(cls) or ""
    return {
        "name": name,
        "doc": doc.splitlines()[0] if doc else "",
        "defaults": defaults,
        "needs_batch": cls.needs_batch,
        "scope": cls.scope,
        "schedule": cls.schedule,
        "revives": cls.revives,
    }


def _qualname(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"
