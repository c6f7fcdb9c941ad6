"""Registry of neural-network architectures (timm/models/_registry.py style).

One registry resolves every name a model row or checkpoint can carry:

* built-ins (``mlp``, ``digits_cnn``, ``resnet20``, :mod:`models.architectures`) and anything else
  registered in-process with :func:`register_model` (the ``onnx`` graph architecture of
  :mod:`models.onnx_graph`);
* trusted plug-ins: a package's entry points in the group ``prunescope.architectures``
  (``name = module:factory``), read once, lazily; a plug-in that fails to load is logged and
  skipped, never fatal;
* ``timm/<name>``: any model of ``timm.list_models()``, built with
  ``timm.create_model(name, pretrained=False, **kwargs)``;
* ``torchvision/<name>``: any classification model of ``torchvision.models.list_models``, built
  with ``torchvision.models.get_model(name, weights=None, **kwargs)``.

Nothing is ever downloaded: keyword arguments that would fetch weights (``pretrained``,
``weights``, ``checkpoint_path``, ...) are refused, and the Hugging Face hub is set offline
before timm is imported so that a stray download fails loudly instead of hanging.

The keyword arguments must survive a JSON round trip (lists, not tuples), because they are stored
next to the weights in every checkpoint (see :mod:`models.checkpoint`).
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any, TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "ENTRY_POINT_GROUP",
    "LIBRARY_PREFIXES",
    "TooManyParameters",
    "UnknownNameError",
    "check_size",
    "count_parameters",
    "create",
    "create_meta",
    "fill_kwargs",
    "is_known",
    "list_models",
    "model_info",
    "register_model",
    "search",
    "source_of",
]

log = logging.getLogger(__name__)

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

ENTRY_POINT_GROUP = "prunescope.architectures"
LIBRARY_PREFIXES = ("timm/", "torchvision/")
# Arguments that make timm or torchvision fetch weights from the internet.
_DOWNLOADING_KWARGS = (
    "pretrained",
    "pretrained_cfg",
    "pretrained_cfg_overlay",
    "pretrained_strict",
    "checkpoint_path",
    "weights",
    "weights_backbone",
    "progress",
)

_MODELS: dict[str, ModelFactory] = {}
_PLUGINS: set[str] = set()
_plugins_loaded = False
_plugin_lock = threading.Lock()


class UnknownNameError(ValueError):
    """A registry was asked for a name it does not hold.

    Shared by every plug-in registry (architectures, pruning methods, ...) so that callers can
    catch one exception type. The message lists the known names.
    """

    def __init__(
        self, kind: str, name: object, known: list[str], hint: str = "", message: str = ""
    ) -> None:
        self.kind = kind
        self.name = name
        self.known = list(known)
        super().__init__(
            message or f"unknown {kind} {name!r}; known: {', '.join(self.known)}{hint}"
        )


def register_model(name: str) -> Callable[[F], F]:
    """Class/function decorator recording an architecture factory under ``name``.

    Args:
        name: Registry key, e.g. ``"resnet20"``. Names under ``timm/`` and ``torchvision/``
            are reserved for those libraries.

    Returns:
        A decorator that registers the factory and returns it unchanged.

    Raises:
        ValueError: If ``name`` is already taken by a different factory, or is reserved.
    """
    if name.startswith(LIBRARY_PREFIXES):
        raise ValueError(f"architecture names under {name.split('/')[0]}/ are reserved")

    def decorator(fn: F) -> F:
        previous = _MODELS.get(name)
        if previous is not None and _qualname(previous) != _qualname(fn):
            raise ValueError(
                f"architecture {name!r} is already registered by {_qualname(previous)}"
            )
        _MODELS[name] = fn
        return fn

    return decorator


# --- plug-ins --------------------------------------------------------------------------------


def _load_plugins() -> None:
    """Register every ``prunescope.architectures`` entry point once (trusted code by design)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    with _plugin_lock:
        if _plugins_loaded:
            return
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                factory = ep.load()
                if not callable(factory):
                    raise TypeError(f"{ep.value} is not callable")
                register_model(ep.name)(factory)
                _PLUGINS.add(ep.name)
            except Exception as exc:  # a broken plug-in must not take the registry down
                log.warning("architecture plug-in %r (%s) skipped: %s", ep.name, ep.value, exc)
        _plugins_loaded = True


def reload_plugins() -> None:
    """Read the entry points again (after installing a plug-in package in a running process)."""
    global _plugins_loaded
    _plugins_loaded = False
    _load_plugins()


# --- timm and torchvision --------------------------------------------------------------------


# The hub is offline for good: PruneScope never downloads weights, and an accidental
# pretrained=True anywhere must fail at once rather than wait on a closed network. Set when the
# registry is imported, before timm (and huggingface_hub, which reads it once) can be.
os.environ["HF_HUB_OFFLINE"] = "1"


@functools.cache
def _timm() -> Any:
    import timm

    return timm


@functools.cache
def _torchvision_models() -> Any:
    import torchvision.models as tvm

    return tvm


@functools.cache
def _timm_names() -> tuple[str, ...]:
    return tuple(_timm().list_models())


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    tvm = _torchvision_models()
    # classification models only (the module tvm itself, not detection/segmentation/video)
    return tuple(sorted(tvm.list_models(module=tvm)))


def _split(name: str) -> tuple[str, str]:
    lib, _, inner = name.partition("/")
    return lib, inner


def _library_names(lib: str) -> tuple[str, ...]:
    return _timm_names() if lib == "timm" else _torchvision_names()


def _check_no_download(name: str, kwargs: dict[str, Any]) -> None:
    bad = [k for k in _DOWNLOADING_KWARGS if k in kwargs]
    if bad:
        raise ValueError(
            f"{name}: {', '.join(f'{k}={kwargs[k]!r}' for k in bad)} refused: PruneScope never "
            "downloads weights; upload your checkpoint instead"
        )


def _library_factory(name: str) -> ModelFactory:
    lib, inner = _split(name)

    def factory(**kwargs: Any) -> nn.Module:
        _check_no_download(name, kwargs)
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        if lib == "timm":
            return _timm().create_model(inner, pretrained=False, **kw)
        return _torchvision_models().get_model(inner, weights=None, **kw)

    factory.__name__ = inner
    factory.__qualname__ = name
    return factory


# --- lookup ----------------------------------------------------------------------------------


def source_of(name: str) -> str:
    """``"builtin"``, ``"plugin"``, ``"onnx"``, ``"timm"`` or ``"torchvision"``.

    Raises:
        UnknownNameError: If ``name`` is not an architecture.
    """
    _factory(name)
    if name.startswith(LIBRARY_PREFIXES):
        return _split(name)[0]
    if name in _PLUGINS:
        return "plugin"
    if name == "onnx":
        return "onnx"
    return "builtin"


def is_known(name: object) -> bool:
    """Whether :func:`create` can build ``name`` (without building it)."""
    if not isinstance(name, str):
        return False
    try:
        _factory(name)
    except UnknownNameError:
        return False
    return True


def list_models() -> list[str]:
    """Names registered in-process and by plug-ins, sorted (not timm's and torchvision's: see
    :func:`search` for every name)."""
    _load_plugins()
    return sorted(_MODELS)


def _factory(name: str) -> ModelFactory:
    if not isinstance(name, str):
        raise UnknownNameError("architecture", name, list_models(), _LIB_HINT)
    _load_plugins()
    fn = _MODELS.get(name)
    if fn is not None:
        return fn
    if name.startswith(LIBRARY_PREFIXES):
        lib, inner = _split(name)
        names = _library_names(lib)
        if inner in names:
            return _library_factory(name)
        close = difflib.get_close_matches(inner, names, n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(f'{lib}/{c}' for c in close)}" if close else ""
        raise UnknownNameError(
            "architecture",
            name,
            [f"{lib}/{c}" for c in close],
            message=f"unknown architecture {name!r}: {lib} has no model {inner!r}{hint}",
        )
    raise UnknownNameError("architecture", name, list_models(), _LIB_HINT)


_LIB_HINT = "; or any timm/<name> or torchvision/<name>"


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build an architecture by name, with freshly initialised weights (never downloaded).

    Args:
        name: A registered name (:func:`list_models`), ``timm/<name>`` or
            ``torchvision/<name>``.
        **kwargs: Arguments of the factory (JSON values: lists rather than tuples are fine).

    Returns:
        A freshly initialised model whose ``forward`` returns logits of shape (N, C). Its
        classifier is found by :func:`models.heads.find_classifier`.

    Raises:
        UnknownNameError: If ``name`` is not registered (a ValueError).
        ValueError: If ``kwargs`` do not fit the factory, or would download weights.
    """
    fn = _factory(name)
    if name.startswith(LIBRARY_PREFIXES):
        _check_no_download(name, kwargs)
        try:
            return fn(**kwargs)
        except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
            raise ValueError(f"invalid arguments for architecture {name!r}: {exc}") from None
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        raise ValueError(f"invalid arguments for architecture {name!r}: {exc}") from None
    return fn(**kwargs)


# --- size without memory (the meta device) ----------------------------------------------------


class TooManyParameters(ValueError):
    """An architecture built with some arguments has more parameters than a limit allows;
    counted on the meta device, before anything was allocated."""

    def __init__(self, name: str, count: int | None, limit: int) -> None:
        self.name, self.count, self.limit = name, count, limit
        has = (
            f"{count:,} parameters"
            if count is not None
            else "more parameters than a tensor can hold (a layer's size overflows)"
        )
        super().__init__(
            f"{name} with these arguments has {has}; the limit is {limit:,} parameters "
            "(PRUNESCOPE_MAX_PARAMS)"
        )


# the factory functions whose first argument is the size of the tensor they make
_SIZED = frozenset({torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn})
# elements a constructor may keep in memory while its larger tensors go to the meta device
_REAL_BUDGET = 2**24


def _numel(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | None:
    size = kwargs.get("size", args[0] if args else None)
    if isinstance(size, int) and not isinstance(size, bool):  # torch.empty(3, 4)
        size = args if all(type(a) is int for a in args) else None
    if not isinstance(size, tuple | list | torch.Size) or not all(type(d) is int for d in size):
        return None
    return math.prod(size)


class _LargeOnMeta(TorchFunctionMode):
    """Tensors made by size (``torch.empty(out, in)``: parameters, buffers) go to the meta
    device once those kept in memory reach ``budget`` elements; anything else (``arange``,
    ``tensor``, ``linspace``: values a constructor computes with) stays in memory."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.left = budget

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = dict(kwargs or {})
        if func in _SIZED and kwargs.get("device") is None:
            n = _numel(args, kwargs)
            if n is not None and n > self.left:
                kwargs["device"] = torch.device("meta")
            elif n is not None:
                self.left -= n
        return func(*args, **kwargs)


def _about_meta(exc: BaseException) -> bool:
    """Whether a constructor failed because its tensors have no data (not its arguments)."""
    return isinstance(exc, NotImplementedError) or "meta" in str(exc).lower()


def _overflows(exc: BaseException) -> bool:
    return "overflow" in str(exc).lower()


def create_meta(name: str, **kwargs: Any) -> nn.Module | None:
    """:func:`create` without memory: every parameter and buffer on the meta device (shapes
    and dtypes, no data), for counting parameters and passing a sample's shape through.

    The constructor runs under ``torch.device("meta")``. One that reads back values of
    tensors it made (torchvision's RegNets compute their widths with torch) runs again with
    its small tensors in memory (2**24 elements in all) and every larger one on the meta
    device, and is then moved to it.

    Returns:
        The model on the meta device, or None when its constructor cannot run without data
        (build it with :func:`create`, which also reports bad arguments).

    Raises:
        UnknownNameError: If ``name`` is not registered.
        ValueError: If ``kwargs`` do not fit the factory (as :func:`create`).
        OverflowError: If a tensor the arguments ask for is too large to describe at all.
    """
    _factory(name)
    try:
        with torch.device("meta"):
            return create(name, **kwargs)
    except Exception as exc:
        if _overflows(exc):
            raise OverflowError(str(exc)) from None
        if not _about_meta(exc):
            raise
    try:
        with _LargeOnMeta(_REAL_BUDGET):
            model = create(name, **kwargs)
    except Exception as exc:
        if _overflows(exc):
            raise OverflowError(str(exc)) from None
        if _about_meta(exc):
            return None
        raise
    return model.to(torch.device("meta"))


def count_parameters(model: nn.Module) -> int:
    """Parameters of ``model`` (each shared one once), on any device, the meta one too."""
    return sum(p.numel() for p in model.parameters())


def check_size(name: str, kwargs: Mapping[str, Any], max_params: int) -> nn.Module | None:
    """Refuse ``name`` built with ``kwargs`` when it has more than ``max_params`` parameters,
    counted on the meta device (:func:`create_meta`): nothing is allocated.

    Returns:
        The model on the meta device (for a shape probe), or None when its constructor
        cannot run there: only building it counts its parameters then.

    Raises:
        TooManyParameters: It has more than ``max_params`` parameters.
        UnknownNameError, ValueError: As :func:`create`.
    """
    try:
        model = create_meta(name, **kwargs)
    except OverflowError:
        raise TooManyParameters(name, None, max_params) from None
    if model is not None:
        count = count_parameters(model)
        if count > max_params:
            raise TooManyParameters(name, count, max_params)
    return model


def _first_doc_line(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    lines = [line.strip() for line in doc.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _library_info(name: str) -> dict[str, Any]:
    lib, inner = _split(name)
    defaults: dict[str, Any] = {"num_classes": 1000}
    doc = ""
    if lib == "timm":
        timm = _timm()
        doc = _first_doc_line(timm.models.model_entrypoint(inner))
        cfg = timm.get_pretrained_cfg(inner)
        if cfg is not None:
            shape = list(cfg.input_size)
            defaults = {"num_classes": cfg.num_classes or 1000, "in_chans": shape[0]}
            if cfg.fixed_input_size:
                defaults["img_size"] = shape[1] if shape[1] == shape[2] else shape[1:]
    else:
        doc = _first_doc_line(_torchvision_models().get_model_builder(inner))
        if inner.startswith("vit_"):
            defaults["image_size"] = 224
    return {
        "name": name,
        "doc": doc or f"{inner} from {lib}",
        "defaults": defaults,
        "required": [],
        "source": lib,
    }


def model_info(name: str) -> dict[str, Any]:
    """Describe an architecture for the UI.

    Returns:
        ``{"name", "doc" (first docstring line), "defaults" (keyword -> default value),
        "required" (keywords without a default), "source"}``. For timm and torchvision names
        the defaults are the arguments PruneScope fills from the dataset.
    """
    fn = _factory(name)
    if name.startswith(LIBRARY_PREFIXES):
        return _library_info(name)
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
    return {
        "name": name,
        "doc": _first_doc_line(fn),
        "defaults": defaults,
        "required": required,
        "source": source_of(name),
    }


def search(query: str = "", limit: int = 50, offset: int = 0) -> tuple[list[str], int]:
    """Architecture names matching ``query``: built-ins and plug-ins first, then torchvision's,
    then timm's.

    Args:
        query: Case-insensitive; every whitespace-separated word must occur in the name.
        limit: Page size.
        offset: Names to skip.

    Returns:
        ``(names of the page, number of matching names)``.
    """
    words = query.lower().split()
    local = [n for n in list_models() if n != "onnx"]  # onnx graphs come from uploads only
    every = (
        local
        + [f"torchvision/{n}" for n in _torchvision_names()]
        + [f"timm/{n}" for n in _timm_names()]
    )
    hits = [n for n in every if all(w in n.lower() for w in words)]
    return hits[offset : offset + limit], len(hits)


def fill_kwargs(
    name: str,
    kwargs: dict[str, Any],
    input_shape: Sequence[int],
    num_classes: int,
) -> dict[str, Any]:
    """Complete an architecture's kwargs from a dataset, keeping what the user gave.

    Built-ins and plug-ins get ``num_classes``, ``input_shape`` and ``in_channels`` when their
    factory takes them. timm models get ``num_classes`` and ``in_chans`` and, for models with a
    fixed input size (ViT, DeiT, ...), ``img_size``; torchvision models get ``num_classes`` and,
    for ViTs, ``image_size``.

    Args:
        name: Architecture name.
        kwargs: The user's arguments (returned values win over nothing: they are kept).
        input_shape: One sample's shape, e.g. ``[3, 32, 32]``.
        num_classes: Classes of the dataset.
    """
    out = dict(kwargs)
    shape = [int(d) for d in input_shape]
    if name.startswith(LIBRARY_PREFIXES):
        _factory(name)
        lib, inner = _split(name)
        out.setdefault("num_classes", int(num_classes))
        if lib == "timm":
            if len(shape) == 3:
                out.setdefault("in_chans", shape[0])
                cfg = _timm().get_pretrained_cfg(inner)
                if cfg is not None and cfg.fixed_input_size:
                    out.setdefault("img_size", shape[1] if shape[1] == shape[2] else shape[1:])
        elif inner.startswith("vit_") and len(shape) == 3:
            out.setdefault("image_size", shape[1])
        return out
    info = model_info(name)
    params = set(info["defaults"]) | set(info["required"])
    if "num_classes" in params:
        out.setdefault("num_classes", int(num_classes))
    if "input_shape" in params:
        out.setdefault("input_shape", shape)
    if "in_channels" in params and len(shape) == 3:
        out.setdefault("in_channels", shape[0])
    if "in_chans" in params and len(shape) == 3:
        out.setdefault("in_chans", shape[0])
    return out


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
