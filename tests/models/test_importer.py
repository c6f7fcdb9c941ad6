"""models.importer: user checkpoints in every accepted layout, and hostile or broken files.

Invariants in the style of PyTorch test/nn/test_pruning.py: an imported model computes what the
original computed; masks equal weight != 0 and weight == weight_orig * weight_mask; sparsity
figures equal zeros counted independently; every bad file raises CheckpointError and nothing
else, and no payload in a pickle ever runs.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import pickle
import random
import struct
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn.utils import prune

from models.checkpoint import save_checkpoint
from models.importer import CheckpointError, ImportedCheckpoint, read_checkpoint
from models.registry import create, list_models

CASES: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "mlp": ({"input_shape": [1, 8, 8], "num_classes": 10, "hidden": [32, 16]}, (1, 8, 8)),
    "digits_cnn": ({"num_classes": 10}, (1, 8, 8)),
}
PRUNABLE = (nn.Conv2d, nn.Linear)


def _make(name: str) -> tuple[nn.Module, dict[str, Any], Tensor]:
    torch.manual_seed(0)
    kwargs, shape = CASES[name]
    return create(name, **kwargs).eval(), kwargs, torch.randn(6, *shape)


def _contiguous(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def _save_safetensors(state: dict[str, Tensor], path: Path) -> None:
    save_file(_contiguous(state), str(path))


def _save_zip(state: dict[str, Tensor], path: Path) -> None:
    torch.save(state, path)


def _save_legacy(state: dict[str, Tensor], path: Path) -> None:
    torch.save(state, path, _use_new_zipfile_serialization=False)


def _save_wrapped(state: dict[str, Tensor], path: Path) -> None:
    torch.save({"state_dict": state, "epoch": 3, "optimizer": {"lr": 0.1}}, path)


def _save_model_state_dict(state: dict[str, Tensor], path: Path) -> None:
    torch.save({"model_state_dict": state, "best_acc": 0.9}, path)


def _save_net(state: dict[str, Tensor], path: Path) -> None:
    torch.save({"net": state, "epoch": 1}, path, _use_new_zipfile_serialization=False)


def _save_dataparallel(state: dict[str, Tensor], path: Path) -> None:
    torch.save({f"module.{k}": v for k, v in state.items()}, path)


def _save_ddp_wrapped_safetensors(state: dict[str, Tensor], path: Path) -> None:
    _save_safetensors({f"module.module.{k}": v for k, v in state.items()}, path)


# The file names lie on purpose: the format must come from the content.
SAVERS: dict[str, tuple[Callable[[dict[str, Tensor], Path], None], str, str]] = {
    "safetensors": (_save_safetensors, "weights.pt", "safetensors"),
    "zip": (_save_zip, "weights.safetensors", "torch_state_dict"),
    "legacy": (_save_legacy, "weights.pth", "torch_state_dict"),
    "wrapped": (_save_wrapped, "ckpt.tar", "torch_state_dict"),
    "model_state_dict": (_save_model_state_dict, "ckpt.pt", "torch_state_dict"),
    "net": (_save_net, "ckpt.pt", "torch_state_dict"),
    "dataparallel": (_save_dataparallel, "ddp.pt", "torch_state_dict"),
    "ddp_safetensors": (_save_ddp_wrapped_safetensors, "ddp.bin", "safetensors"),
}


def _zeros_by_layer(model: nn.Module) -> dict[str, tuple[int, int]]:
    """{module name: (n_zero, numel)} of the effective weights, counted directly."""
    return {
        name: (int((m.weight == 0).sum()), m.weight.numel())
        for name, m in model.named_modules()
        if isinstance(m, PRUNABLE)
    }


def _check_counts(imported: ImportedCheckpoint, reference: nn.Module) -> None:
    """Layer statistics, sparsity, n_params and n_nonzero against independent counts."""
    expected = _zeros_by_layer(reference)
    assert [layer["name"] for layer in imported.layers] == list(expected)
    for layer in imported.layers:
        n_zero, numel = expected[layer["name"]]
        module = reference.get_submodule(layer["name"])
        assert layer["shape"] == list(module.weight.shape)
        assert layer["n_params"] == numel
        assert layer["n_zero"] == n_zero
        assert layer["sparsity"] == pytest.approx(n_zero / numel)
    total_zero = sum(z for z, _ in expected.values())
    total = sum(n for _, n in expected.values())
    assert imported.sparsity == pytest.approx(total_zero / total)
    effective = [
        getattr(m, name)
        for m in reference.modules()
        for name in {p.removesuffix("_orig") for p, v in m._parameters.items() if v is not None}
    ]
    assert imported.n_params == sum(t.numel() for t in effective)
    assert imported.n_nonzero == sum(int(torch.count_nonzero(t)) for t in effective)


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("saver", list(SAVERS))
@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_outputs_equal(name: str, saver: str, tmp_path: Path) -> None:
    model, kwargs, x = _make(name)
    save, filename, fmt = SAVERS[saver]
    path = tmp_path / filename
    save(model.state_dict(), path)

    imported = read_checkpoint(path, name, kwargs)

    assert imported.format == fmt
    assert imported.architecture == name
    assert imported.arch_kwargs == kwargs
    assert imported.masks == "none"
    assert imported.sparsity == 0.0
    assert not imported.model.training
    assert not any(name.endswith("_mask") for name, _ in imported.model.named_buffers())
    with torch.no_grad():
        torch.testing.assert_close(imported.model(x), model(x), rtol=0, atol=0)
    _check_counts(imported, model)


def test_wrapper_entries_reported_as_ignored(tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    path = tmp_path / "ckpt.pt"
    torch.save({**model.state_dict(), "epoch": 3, "best": "yes"}, path)
    imported = read_checkpoint(path, "mlp", kwargs)
    assert any("'epoch'" in w and "'best'" in w for w in imported.warnings)


def test_half_precision_is_converted(tmp_path: Path) -> None:
    model, kwargs, x = _make("digits_cnn")
    half = {k: v.half() for k, v in model.state_dict().items()}
    path = tmp_path / "half.safetensors"
    _save_safetensors(half, path)
    imported = read_checkpoint(path, "digits_cnn", kwargs)
    assert all(p.dtype == torch.float32 for p in imported.model.parameters())
    assert any("float16" in w for w in imported.warnings)
    reference = create("digits_cnn", **kwargs).eval()
    reference.load_state_dict({k: v.float() for k, v in half.items()})
    with torch.no_grad():
        torch.testing.assert_close(imported.model(x), reference(x), rtol=0, atol=0)


def test_batchnorm_buffers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create("resnet20", num_classes=10).eval()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.num_batches_tracked.fill_(7)
    x = torch.randn(2, 3, 16, 16)
    state = model.state_dict()
    without_counter = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "r.pt"
    torch.save(without_counter, path)
    imported = read_checkpoint(path, "resnet20", {"num_classes": 10})
    assert any("num_batches_tracked" in w for w in imported.warnings)
    with torch.no_grad():
        torch.testing.assert_close(imported.model(x), model(x), rtol=0, atol=0)

    without_stats = {k: v for k, v in state.items() if k != "bn1.running_mean"}
    torch.save(without_stats, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys: 'bn1\.running_mean'"):
        read_checkpoint(path, "resnet20", {"num_classes": 10})


def test_prunescope_format_takes_architecture_from_metadata(tmp_path: Path) -> None:
    model, kwargs, x = _make("digits_cnn")
    prune.l1_unstructured(model.features[0], "weight", amount=0.5)
    path = tmp_path / "own.bin"
    save_checkpoint(model, "digits_cnn", kwargs, path)
    imported = read_checkpoint(path, None)
    assert imported.format == "prunescope"
    assert imported.architecture == "digits_cnn"
    assert imported.arch_kwargs == kwargs
    assert imported.masks == "explicit"
    with torch.no_grad():
        torch.testing.assert_close(imported.model(x), model(x), rtol=0, atol=0)
    _check_counts(imported, model)


@pytest.mark.parametrize("saver", ["safetensors", "zip", "legacy"])
def test_architecture_required_without_metadata(saver: str, tmp_path: Path) -> None:
    model, _, _ = _make("mlp")
    save, filename, _ = SAVERS[saver]
    path = tmp_path / filename
    save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="name the architecture") as info:
        read_checkpoint(path, None)
    assert all(known in str(info.value) for known in list_models())


# --- pruning layouts -------------------------------------------------------------------------


def _pruned_digits() -> tuple[nn.Module, dict[str, Any], Tensor, list[str]]:
    model, kwargs, x = _make("digits_cnn")
    pruned = ["features.0", "features.5", "classifier"]
    for name in pruned:
        prune.l1_unstructured(model.get_submodule(name), "weight", amount=0.6)
    return model, kwargs, x, pruned


@pytest.mark.parametrize("saver", ["zip", "legacy", "safetensors", "wrapped", "dataparallel"])
def test_torch_prune_state_dict_gives_explicit_masks(saver: str, tmp_path: Path) -> None:
    model, kwargs, x, pruned = _pruned_digits()
    state = model.state_dict()
    assert "features.0.weight_orig" in state and "features.0.weight_mask" in state
    save, filename, _ = SAVERS[saver]
    path = tmp_path / filename
    save(state, path)

    imported = read_checkpoint(path, "digits_cnn", kwargs)

    assert imported.masks == "explicit"
    masked = {layer["name"] for layer in imported.layers if layer["masked"]}
    assert masked == set(pruned)
    for name in pruned:
        module = imported.model.get_submodule(name)
        original = model.get_submodule(name)
        assert module.weight_mask.shape == module.weight_orig.shape
        torch.testing.assert_close(module.weight_mask, original.weight_mask, rtol=0, atol=0)
        # the file's weight_orig is kept, values under the mask included
        torch.testing.assert_close(module.weight_orig, original.weight_orig, rtol=0, atol=0)
        torch.testing.assert_close(
            module.weight, module.weight_orig * module.weight_mask, rtol=0, atol=0
        )
        layer = next(la for la in imported.layers if la["name"] == name)
        zeros = int((original.weight == 0).sum())
        assert layer["sparsity"] == pytest.approx(zeros / original.weight.numel())
        assert layer["sparsity"] == pytest.approx(0.6, abs=1 / original.weight.numel())
    with torch.no_grad():
        torch.testing.assert_close(imported.model(x), model(x), rtol=0, atol=0)
    _check_counts(imported, model)
    copy.deepcopy(imported.model)  # no autograd history left on the pruned weights


def test_removed_pruning_gives_masks_from_zeros(tmp_path: Path) -> None:
    model, kwargs, x, pruned = _pruned_digits()
    for name in pruned:
        prune.remove(model.get_submodule(name), "weight")
    state = model.state_dict()
    assert not any(k.endswith(("_mask", "_orig")) for k in state)
    path = tmp_path / "zeros.pt"
    torch.save(state, path)

    imported = read_checkpoint(path, "digits_cnn", kwargs)

    assert imported.masks == "zeros"
    assert {layer["name"] for layer in imported.layers if layer["masked"]} == set(pruned)
    for name in pruned:
        module = imported.model.get_submodule(name)
        expected = (model.get_submodule(name).weight != 0).float()
        torch.testing.assert_close(module.weight_mask, expected, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(imported.model(x), model(x), rtol=0, atol=0)
    _check_counts(imported, model)

    # the same sparsity as the explicit-mask file of the same model
    model2, _, _, _ = _pruned_digits()
    torch.save(model2.state_dict(), path)
    explicit = read_checkpoint(path, "digits_cnn", kwargs)
    assert explicit.sparsity == pytest.approx(imported.sparsity)
    assert [la["n_zero"] for la in explicit.layers] == [la["n_zero"] for la in imported.layers]

    # fine-tuning keeps the zeros pruned
    trained = imported.model.train()
    opt = torch.optim.SGD(trained.parameters(), lr=0.5)
    loss = trained(x).logsumexp(dim=1).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        trained(x)
    for name in pruned:
        weight = trained.get_submodule(name).weight
        assert bool((weight[model.get_submodule(name).weight == 0] == 0).all())


def test_plain_weights_with_explicit_masks(tmp_path: Path) -> None:
    """The layout weight + weight_mask (bool) with a weight not zeroed under the mask."""
    model, kwargs, x = _make("mlp")
    state = _contiguous(model.state_dict())
    mask = torch.rand(state["features.1.weight"].shape, generator=torch.Generator().manual_seed(2))
    state["features.1.weight_mask"] = mask > 0.3
    path = tmp_path / "m.safetensors"
    _save_safetensors(state, path)
    imported = read_checkpoint(path, "mlp", kwargs)
    assert imported.masks == "explicit"
    module = imported.model.get_submodule("features.1")
    expected = model.features[1].weight * (mask > 0.3)
    torch.testing.assert_close(module.weight, expected, rtol=0, atol=0)
    reference = copy.deepcopy(model)
    prune.custom_from_mask(reference.features[1], "weight", mask > 0.3)
    with torch.no_grad():
        torch.testing.assert_close(imported.model(x), reference(x), rtol=0, atol=0)


def test_non_binary_mask_refused(tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    state = _contiguous(model.state_dict())
    state["classifier.weight_mask"] = torch.full_like(state["classifier.weight"], 0.5)
    path = tmp_path / "m.safetensors"
    _save_safetensors(state, path)
    with pytest.raises(CheckpointError, match=r"0 and 1: 'classifier\.weight_mask'"):
        read_checkpoint(path, "mlp", kwargs)


def test_orig_without_mask_is_reported(tmp_path: Path) -> None:
    model, kwargs, _, _ = _pruned_digits()
    state = {k: v for k, v in model.state_dict().items() if k != "classifier.weight_mask"}
    path = tmp_path / "m.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, "digits_cnn", kwargs)
    message = str(info.value)
    assert "'classifier.weight'" in message and "'classifier.weight_orig'" in message
    assert "needs its *_mask" in message


# --- hostile pickles -------------------------------------------------------------------------


class _SystemPayload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


class _TouchPayload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


PAYLOADS = {"os.system": _SystemPayload, "Path.touch": _TouchPayload}
WRITERS: dict[str, Callable[[object, Path], object]] = {
    "torch.save": lambda obj, p: torch.save(obj, p),
    "torch.save legacy": lambda obj, p: torch.save(obj, p, _use_new_zipfile_serialization=False),
    "torch.save in dict": lambda obj, p: torch.save({"state_dict": {"w": obj}}, p),
    "pickle.dump": lambda obj, p: p.write_bytes(pickle.dumps(obj)),
    "pickle.dump protocol 0": lambda obj, p: p.write_bytes(pickle.dumps(obj, protocol=0)),
    "pickle.dump protocol 2": lambda obj, p: p.write_bytes(pickle.dumps(obj, protocol=2)),
}


@pytest.mark.parametrize("writer", list(WRITERS))
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_hostile_pickle_never_runs(payload: str, writer: str, tmp_path: Path) -> None:
    # the payload is live: plain unpickling does create the file
    decoy = tmp_path / "decoy"
    pickle.loads(pickle.dumps(PAYLOADS[payload](decoy)))
    assert decoy.exists()

    pwned = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    WRITERS[writer](PAYLOADS[payload](pwned), path)
    with pytest.raises(CheckpointError):
        read_checkpoint(path, "mlp", CASES["mlp"][0])
    with pytest.raises(CheckpointError):
        read_checkpoint(path, None)
    assert not pwned.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_whole_pickled_module_refused_with_advice(legacy: bool, tmp_path: Path) -> None:
    model, kwargs, _ = _make("digits_cnn")
    path = tmp_path / "model.pt"
    torch.save(model, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, "digits_cnn", kwargs)
    message = str(info.value)
    assert "pickled Python object" in message
    assert "torch.save(model.state_dict(), 'model.pt')" in message
    assert "safetensors.torch.save_file(model.state_dict(), 'model.safetensors')" in message
    assert "weights_only" not in message  # never advise turning the protection off


def test_torchscript_archive_refused(tmp_path: Path) -> None:
    model, kwargs, x = _make("digits_cnn")
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in recent torch
        torch.jit.save(torch.jit.trace(model, x), str(path))
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        read_checkpoint(path, "digits_cnn", kwargs)


# --- broken files ----------------------------------------------------------------------------


def _valid_safetensors(tmp_path: Path) -> bytes:
    model, _, _ = _make("mlp")
    path = tmp_path / "valid.safetensors"
    _save_safetensors(model.state_dict(), path)
    return path.read_bytes()


def _read_bytes(tmp_path: Path, data: bytes, name: str = "bad.bin") -> CheckpointError:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, "mlp", CASES["mlp"][0])
    return info.value


def test_truncated_safetensors(tmp_path: Path) -> None:
    data = _valid_safetensors(tmp_path)
    error = _read_bytes(tmp_path, data[: len(data) // 2])
    assert "truncated" in str(error)
    error = _read_bytes(tmp_path, data[:40])
    assert "truncated" in str(error)


def test_absurd_header_length_allocates_nothing(tmp_path: Path) -> None:
    data = struct.pack("<Q", 2**62) + b'{"w": {}}' + b"\0" * 64
    tracemalloc.start()
    try:
        error = _read_bytes(tmp_path, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(2**62) in str(error)
    assert peak < 10 * 2**20


def _safetensors_with_header(header: object, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (struct.pack("<Q", 9) + b"{not json", "not valid JSON"),
        (struct.pack("<Q", 4) + b"{\xff\xfe}", "not valid JSON"),
        (_safetensors_with_header([1, 2]), "neither safetensors"),
        (
            _safetensors_with_header(
                {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
            ),
            "truncated",
        ),
        (
            _safetensors_with_header(
                {"w": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 16]}}, b"\0" * 16
            ),
            "needs",
        ),
        (
            _safetensors_with_header(
                {"w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, b"\0" * 16
            ),
            "invalid data_offsets",
        ),
        (
            _safetensors_with_header(
                {"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, b"\0" * 16
            ),
            "invalid shape",
        ),
        (
            _safetensors_with_header(
                {"w": {"dtype": "X9", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16
            ),
            "unsupported dtype",
        ),
        (
            _safetensors_with_header(
                {
                    "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                },
                b"\0" * 16,
            ),
            "not a readable safetensors file",
        ),
        (_safetensors_with_header({"__metadata__": {"a": 1}}), "str to str"),
        (_safetensors_with_header({}), "no tensors"),
    ],
    ids=[
        "invalid-json",
        "invalid-utf8",
        "json-list",
        "offsets-beyond-file",
        "shape-overflow",
        "reversed-offsets",
        "negative-shape",
        "unknown-dtype",
        "overlapping-tensors",
        "bad-metadata",
        "empty-header",
    ],
)
def test_corrupt_safetensors_headers(data: bytes, match: str, tmp_path: Path) -> None:
    assert match in str(_read_bytes(tmp_path, data))


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (bytes(range(7, 71)), "binary"),
        (b"hello, this is a text file\n" * 4, "text"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        (b'[{"weights": [1, 2, 3]}]', "JSON"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 40, "HDF5"),
        (b"\x93NUMPY\x01\x00" + b"\0" * 40, "NumPy"),
        (b"\x1f\x8b\x08\x00" + b"\0" * 40, "gzip"),
        (b"abc", "text"),
    ],
)
def test_unrecognised_content_is_described(data: bytes, looks_like: str, tmp_path: Path) -> None:
    message = str(_read_bytes(tmp_path, data, "model.safetensors"))
    assert "neither safetensors nor a torch.save file" in message
    assert looks_like in message


def test_empty_and_missing_files(tmp_path: Path) -> None:
    assert "empty" in str(_read_bytes(tmp_path, b""))
    with pytest.raises(CheckpointError, match="cannot read"):
        read_checkpoint(tmp_path / "absent.pt", "mlp", CASES["mlp"][0])


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_torch_files(legacy: bool, tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 64):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="not a readable torch.save file"):
            read_checkpoint(path, "mlp", kwargs)


def test_non_torch_zip(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    np.savez(path, w=np.zeros(3))
    with pytest.raises(CheckpointError, match="zip archive"):
        read_checkpoint(path, "mlp", CASES["mlp"][0])


@pytest.mark.parametrize(
    "content",
    [torch.zeros(3), [torch.zeros(3)], {"epoch": 3}, {1: torch.zeros(3)}],
    ids=["tensor", "list", "no-tensors", "int-key"],
)
def test_torch_files_without_a_state_dict(content: object, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError):
        read_checkpoint(path, "mlp", CASES["mlp"][0])


@pytest.mark.parametrize("kind", ["safetensors", "zip", "legacy"])
def test_random_corruption_only_raises_checkpoint_error(kind: str, tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    save, filename, _ = SAVERS[kind]
    path = tmp_path / filename
    save(model.state_dict(), path)
    original = path.read_bytes()
    rng = random.Random(0)
    for _ in range(40):
        data = bytearray(original)
        # a few flipped bytes near the start (headers, pickles) and one anywhere
        for _ in range(3):
            data[rng.randrange(min(len(data), 400))] = rng.randrange(256)
        data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            imported = read_checkpoint(path, "mlp", kwargs)
        except CheckpointError:
            continue
        assert all(bool(torch.isfinite(p).all()) for p in imported.model.parameters())


@pytest.mark.parametrize(
    ("saver", "filename", "counted"),
    [
        ("safetensors", "m.safetensors", "tensors"),
        ("zip", "m.pt", "tensors"),  # memory-mapped: the storages are counted
        ("zip", "m.safetensors", "file"),  # read through a file object: the file size
        ("legacy", "m.pt", "file"),
    ],
)
def test_max_tensor_bytes(saver: str, filename: str, counted: str, tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    path = tmp_path / filename
    SAVERS[saver][0](model.state_dict(), path)
    n_tensor_bytes = sum(t.numel() * 4 for t in model.state_dict().values())
    limit = n_tensor_bytes if counted == "tensors" else path.stat().st_size
    with pytest.raises(CheckpointError, match="more than the limit"):
        read_checkpoint(path, "mlp", kwargs, max_tensor_bytes=limit - 1)
    assert read_checkpoint(path, "mlp", kwargs, max_tensor_bytes=limit).masks == "none"


# --- validation against the registry ---------------------------------------------------------


def test_shape_mismatch_lists_both_shapes(tmp_path: Path) -> None:
    model, _, _ = _make("digits_cnn")
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, "digits_cnn", {"num_classes": 5})
    message = str(info.value)
    assert "2 mismatched shapes" in message
    assert "classifier.weight: file (10, 64) vs model (5, 64)" in message
    assert "classifier.bias: file (10,) vs model (5,)" in message
    assert "num_classes" in message


def test_missing_and_unexpected_keys_listed(tmp_path: Path) -> None:
    model, kwargs, _ = _make("digits_cnn")
    state = dict(model.state_dict())
    del state["features.2.bias"]
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "m.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, "digits_cnn", kwargs)
    message = str(info.value)
    assert "1 missing keys: 'features.2.bias'" in message
    assert "1 unexpected keys: 'extra.weight'" in message


def test_long_key_lists_are_truncated(tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    state = {**model.state_dict(), **{f"head{i}.weight": torch.zeros(1) for i in range(15)}}
    path = tmp_path / "m.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path, "mlp", kwargs)
    message = str(info.value)
    assert "15 unexpected keys" in message and "(and 5 more)" in message
    assert "'head9.weight'" in message and "'head10.weight'" not in message


def test_integer_weights_refused(tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    state = dict(model.state_dict())
    state["classifier.weight"] = state["classifier.weight"].round().to(torch.int32)
    path = tmp_path / "m.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"classifier\.weight: file torch\.int32"):
        read_checkpoint(path, "mlp", kwargs)


@pytest.mark.parametrize(
    ("key", "value", "counts"),
    [
        ("features.0.weight", float("nan"), "1 NaN, 0 Inf"),
        ("classifier.bias", float("inf"), "0 NaN, 1 Inf"),
    ],
)
def test_non_finite_weights_refused(key: str, value: float, counts: str, tmp_path: Path) -> None:
    model, kwargs, _ = _make("digits_cnn")
    state = _contiguous(model.state_dict())
    state[key].view(-1)[3] = value
    path = tmp_path / "m.safetensors"
    _save_safetensors(state, path)
    with pytest.raises(CheckpointError, match="non-finite") as info:
        read_checkpoint(path, "digits_cnn", kwargs)
    assert f"{key} ({counts})" in str(info.value)


def test_float64_overflow_counts_as_inf(tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    state = {k: v.double() for k, v in model.state_dict().items()}
    state["classifier.bias"][0] = 1e300
    path = tmp_path / "m.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"classifier\.bias \(0 NaN, 1 Inf\)"):
        read_checkpoint(path, "mlp", kwargs)


def test_nan_under_a_mask_refused(tmp_path: Path) -> None:
    """weight_orig * weight_mask is NaN where orig is NaN, pruned or not."""
    model, kwargs, _, _ = _pruned_digits()
    state = _contiguous(model.state_dict())
    pruned_at = (state["classifier.weight_mask"] == 0).nonzero()[0]
    state["classifier.weight_orig"][tuple(pruned_at)] = float("nan")
    path = tmp_path / "m.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"classifier\.weight_orig|classifier\.weight "):
        read_checkpoint(path, "digits_cnn", kwargs)


def test_unknown_architecture_lists_known(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(tmp_path / "never-read.pt", "resnet9000")
    message = str(info.value)
    assert "resnet9000" in message
    assert all(known in message for known in list_models())


def test_bad_arch_kwargs(tmp_path: Path) -> None:
    model, kwargs, _ = _make("mlp")
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="cannot build architecture 'mlp'"):
        read_checkpoint(path, "mlp", {"num_classes": 10})
    with pytest.raises(CheckpointError, match="cannot build architecture 'mlp'"):
        read_checkpoint(path, "mlp", {**kwargs, "num_classes": 0})
