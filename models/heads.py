"""Finding a network's classifier: the final ``nn.Linear`` whose output is the logits.

The penultimate feature f of ../shared/design/SCIENCE.md sect. 1 is the classifier's input, so
every geometric metric, the default "leave the classifier unpruned" rule and structured pruning
all start from this one function. Networks come from many places and name their heads
differently:

* PruneScope's built-ins: ``model.classifier``;
* timm: ``model.get_classifier()`` (``fc``, ``head``, ``head.fc``, ``classifier``, ...);
* torchvision: ``fc`` (ResNet, RegNet, ...), ``classifier[-1]`` (VGG, MobileNet, EfficientNet,
  ConvNeXt), ``heads.head`` (ViT), ``head`` (Swin);
* ONNX graphs converted to ``torch.fx`` (:mod:`models.onnx_graph`): the ``nn.Linear`` whose
  output is the graph's output;
* anything else: the last ``nn.Linear`` registered, if it is also the last module with
  parameters of its own.
"""

from __future__ import annotations

import torch
from torch import fx, nn

__all__ = ["ProbeError", "find_classifier", "probe_input", "shape_text", "try_find_classifier"]


class ProbeError(ValueError):
    """A model does not take a sample of a shape, or does not answer with (1, C) logits."""


def shape_text(shape: object) -> str:
    """``(3, 32, 32)``, ``(32,)``: a shape as Python and torch print it."""
    return str(tuple(int(d) for d in shape))  # type: ignore[attr-defined]


@torch.no_grad()
def probe_input(model: nn.Module, input_shape: list[int], device: str = "cpu") -> int:
    """One forward pass of a zero sample of ``input_shape`` in eval mode (the mode is restored);
    returns the number of logits C.

    What a model was proven to accept is recorded when it is registered, and a train job's
    architecture is probed before the job is queued, so that a dataset of another shape is
    refused at submission rather than failing inside a job.

    Raises:
        ProbeError: The sample is refused (the message names its shape and the first line of
            the model's error), or the output is not (1, C) logits.
    """
    was_training = model.training
    model.eval()
    try:
        out = model(torch.zeros(1, *input_shape, device=device))
    except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ProbeError(
            f"does not accept inputs of shape {shape_text(input_shape)}: {first}"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ProbeError(
            f"should return logits of shape (N, C) for inputs of shape "
            f"{shape_text(input_shape)}; it returned {got}"
        )
    return int(out.shape[1])


def _has_own_parameters(module: nn.Module) -> bool:
    # weight_orig of a pruned module is a parameter, so pruned layers count as well.
    return any(True for _ in module.parameters(recurse=False))


def _name_of(model: nn.Module, target: nn.Module) -> str | None:
    for name, module in model.named_modules():
        if module is target:
            return name
    return None


def _fx_output_linear(model: fx.GraphModule) -> str | None:
    """The qualified name of the nn.Linear that produces the graph's (single) output."""
    outputs = [n for n in model.graph.nodes if n.op == "output"]
    if len(outputs) != 1:
        return None
    arg = outputs[0].args[0]
    if isinstance(arg, tuple | list):
        if len(arg) != 1:
            return None
        arg = arg[0]
    if isinstance(arg, fx.Node) and arg.op == "call_module":
        module = model.get_submodule(str(arg.target))
        if isinstance(module, nn.Linear):
            return str(arg.target)
    return None


def _last_with_parameters(model: nn.Module) -> nn.Module | None:
    with_params = [m for m in model.modules() if _has_own_parameters(m)]
    return with_params[-1] if with_params else None


def _conventional(model: nn.Module) -> nn.Module | None:
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Linear):
        return classifier  # PruneScope's own convention
    get_classifier = getattr(model, "get_classifier", None)  # timm's own API
    if callable(get_classifier):
        try:
            head = get_classifier()
        except Exception:  # some timm heads raise when num_classes == 0
            head = None
        if isinstance(head, nn.Linear):
            return head
    # torchvision's attribute names: trusted only when the module is also the model's last
    # layer with parameters, since other models use the same names for hidden layers
    candidates: list[object] = []
    if isinstance(classifier, nn.Sequential) and len(classifier):
        candidates.append(classifier[-1])  # VGG, MobileNet, EfficientNet, ConvNeXt
    candidates += [getattr(model, "fc", None), getattr(model, "head", None)]  # ResNet, Swin
    heads = getattr(model, "heads", None)
    candidates.append(getattr(heads, "head", None) if heads is not None else None)  # ViT
    last = _last_with_parameters(model)
    for module in candidates:
        if isinstance(module, nn.Linear) and module is last:
            return module
    return None


def find_classifier(model: nn.Module, layer: str | None = None) -> tuple[str, nn.Linear]:
    """The final linear classifier of ``model``, whose input is the penultimate feature f.

    Resolution order: ``layer`` when given; ``model.classifier``; timm's ``get_classifier()``;
    torchvision's ``classifier[-1]``, ``fc``, ``head``, ``heads.head``; for a ``torch.fx``
    graph, the ``nn.Linear`` producing the output; finally the last ``nn.Linear`` registered,
    but only if it is also the last module with parameters of its own (registration order as a
    proxy for execution order), otherwise the choice would be a guess and ValueError is raised.

    Args:
        model: The network.
        layer: Qualified module name (``"classifier"``, ``"head.fc"``), or None to search.
            Jobs expose it as the option ``feature_layer``.

    Returns:
        ``(qualified name, module)``.

    Raises:
        ValueError: If ``layer`` names no module or a module that is not ``nn.Linear``, or if no
            classifier can be found without it (the message names the offending type and the
            ``feature_layer`` option).
    """
    model_name = type(model).__name__
    if layer is not None:
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"feature_layer={layer!r}: {model_name} has no module of that name")
        module = modules[layer]
        if not isinstance(module, nn.Linear):
            raise ValueError(
                f"feature_layer={layer!r} is {type(module).__name__}, not Linear; "
                "the classifier must be an nn.Linear"
            )
        return layer, module
    found = _conventional(model)
    if found is not None:
        name = _name_of(model, found)
        if name is not None:
            assert isinstance(found, nn.Linear)
            return name, found
    if isinstance(model, fx.GraphModule):
        name = _fx_output_linear(model)
        if name is not None:
            module = model.get_submodule(name)
            assert isinstance(module, nn.Linear)
            return name, module
    with_params = [(n, m) for n, m in model.named_modules() if _has_own_parameters(m)]
    if not with_params:
        raise ValueError(
            f"{model_name} has no layer with parameters; pass feature_layer='name' to choose "
            "the classifier"
        )
    name, last = with_params[-1]
    if not isinstance(last, nn.Linear):
        raise ValueError(
            f"the last layer of {model_name} is {type(last).__name__}, not Linear; "
            "pass feature_layer='name' to choose the classifier"
        )
    return name, last


def try_find_classifier(model: nn.Module) -> nn.Linear | None:
    """:func:`find_classifier`'s module, or None when the model has no recognisable one."""
    try:
        return find_classifier(model)[1]
    except ValueError:
        return None
