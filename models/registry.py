"""Registry of neural-network architectures (timm/models/_registry.py style).

An architecture is a factory ``fn(**kwargs) -> nn.Module`` recorded under a name with
:func:`register_model`. :func:`create` builds one by name; the keyword arguments must survive a
JSON round trip (lists, not tuples), because they are stored next to the weights in every
checkpoint (see :mod:`models.checkpoint`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "UnknownNameError",
    "create",
    "list_models",
    "model_info",
    "register_model",
]

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

_MODELS: dict[str, ModelFactory] = {}


class UnknownNameError(ValueError):
    """A registry was asked for a name it does not hold.

    Shared by every plug-in registry (architectures, pruning methods, ...) so that callers can
    catch one exception type. The message lists the known names.
    """

    def __init__(self, kind: str, name: object, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = list(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")


def register_model(name: str) -> Callable[[F], F]:
    """Class/function decorator recording an architecture factory under ``name``.

    Args:
        name: Registry key, e.g. ``"resnet20"``.

    Returns:
        A decorator that registers the factory and returns it unchanged.

    Raises:
        ValueError: If ``name`` is already taken by a different factory.
    """

    def decorator(fn: F) -> F:
        previous = _MODELS.get(name)
        if previous is not None and _qualname(previous) != _qualname(fn):
            raise ValueError(
                f"architecture {name!r} is already registered by {_qualname(previous)}"
            )
        _MODELS[name] = fn
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of all registered architectures, sorted."""
    return sorted(_MODELS)


def _factory(name: str) -> ModelFactory:
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise UnknownNameError("architecture", name, list_models()) from None


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered architecture.

    Args:
        name: A name from :func:`list_models`.
        **kwargs: Arguments of the factory (JSON values: lists rather than tuples are fine).

    Returns:
        A freshly initialised model whose final ``nn.Linear`` is ``model.classifier`` and
        whose ``forward`` returns logits of shape (N, C).

    Raises:
        UnknownNameError: If ``name`` is not registered.
        ValueError: If ``kwargs`` do not match the factory's signature.
    """
    fn = _factory(name)
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"invalid arguments for architecture {name!r}: {exc}") from None
    return fn(**kwargs)


def model_info(name: str) -> dict[str, Any]:
    """Describe an architecture for the UI.

    Returns:
        ``{"name", "doc" (first docstring line), "defaults" (keyword -> default value),
        "required" (keywords without a default)}``.
    """
    fn = _factory(name)
    defaults: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is param.empty:
            required.append(param.name)
        else:
            default = param.default
            defaults[param.name] = list(default) if isinstance(default, tuple) else default
    doc = inspect.getdoc(fn) or ""
    return {
        "name": name,
        "doc": doc.splitlines()[0] if doc else "",
        "defaults": defaults,
        "required": required,
    }


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
