"""Whether the configured torch device exists, found without importing torch in this process.

``Settings.device`` (``PRUNESCOPE_DEVICE``) names where jobs run. ``auto`` and ``cpu`` always
exist and cost nothing. For ``cuda`` / ``cuda:N`` the installed torch's build is read from its
``torch/version.py`` first (no import): a torch built without CUDA (or ROCm) is refused at
once. Anything else is asked of torch in a child process, once per device name and process:
the API stays free of torch (it never imports it to answer a read), and a Celery worker's
parent never initialises CUDA before it forks its pool. The answer, when the device does not
exist, is one sentence that says what to change:

* ``/api/health`` reports it in ``job_queue`` (``"unavailable: ..."``) for the local executor;
* the local executor refuses submissions with 503 (``"Job queue unavailable: ..."``), so no
  job is queued only to fail with "Torch not compiled with CUDA enabled";
* ``prunescope worker`` refuses to start with it (exit status 1).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALWAYS_THERE", "DeviceProbe", "device_problem", "gpu_problem", "probe_device"]

log = logging.getLogger(__name__)

ALWAYS_THERE = frozenset({"auto", "cpu"})
PROBE_TIMEOUT = 180.0  # seconds: importing torch from a cold disk can take a while
_CUDA = re.compile(r"cuda(?::(\d+))?")
_MAX_ERROR = 200

_PROBE = r"""
import json, sys
out = {}
try:
    import torch
except Exception as exc:
    out["error"] = f"torch cannot be imported ({exc})"
    print(json.dumps(out))
    raise SystemExit(0)
out["torch"] = torch.__version__
out["gpu_build"] = torch.version.cuda or torch.version.hip
try:
    dev = torch.device(sys.argv[1])
except (RuntimeError, ValueError) as exc:
    out["invalid"] = str(exc).strip().splitlines()[0]
else:
    out["type"], out["index"] = dev.type, dev.index
    if dev.type == "cuda":
        out["count"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
    elif dev.type not in ("cpu", "meta"):
        try:
            torch.empty(1, device=dev)
        except Exception as exc:
            out["error"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
print(json.dumps(out))
"""


@dataclass(frozen=True)
class DeviceProbe:
    """What torch says about one device name."""

    torch: str | None = None  # torch's version; None when it is not installed or importable
    gpu_build: str | None = None  # the CUDA (or ROCm) version torch was built with; None: CPU
    type: str | None = None  # "cuda", "cpu", "mps", ...
    index: int | None = None
    count: int | None = None  # CUDA GPUs visible (cuda devices only; None: not asked)
    invalid: str | None = None  # why the name is no torch device
    error: str | None = None  # why torch could not be used or the device not reached


def _installed_torch() -> DeviceProbe:
    """The installed torch's version and build, read from ``torch/version.py`` (no import)."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        return DeviceProbe(error="torch is not installed")
    values: dict[str, object] = {}
    try:
        tree = ast.parse(Path(locations[0], "version.py").read_text())
    except (OSError, SyntaxError):
        return DeviceProbe(torch="?", gpu_build="?")  # unknown: the child process will say
    for node in tree.body:
        target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
            values[target.id] = value.value
    gpu = values.get("cuda") or values.get("hip")
    return DeviceProbe(
        torch=str(values.get("__version__", "?")), gpu_build=str(gpu) if gpu else None
    )


_cache: dict[str, DeviceProbe | None] = {}
_lock = threading.Lock()


def probe_device(device: str) -> DeviceProbe | None:
    """What torch says about ``device``, once per name and process. ``cuda[:N]`` with a torch
    built without GPU support is answered from its version file; anything else by a child
    process (it sees this process's environment, CUDA_VISIBLE_DEVICES included). None when
    the child gave no answer in time (then nothing is refused)."""
    with _lock:
        if device in _cache:
            return _cache[device]
        found: DeviceProbe | None = None
        cuda = _CUDA.fullmatch(device)
        if cuda is not None:
            build = _installed_torch()
            if build.torch is None or build.gpu_build is None:
                index = int(cuda.group(1)) if cuda.group(1) is not None else None
                found = DeviceProbe(
                    torch=build.torch,
                    gpu_build=None,
                    type="cuda",
                    index=index,
                    count=0,
                    error=build.error,
                )
        if found is None:
            found = _ask_torch(device)
        _cache[device] = found
        return found


def _ask_torch(device: str) -> DeviceProbe | None:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, device],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
        )
        return DeviceProbe(**json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError, TypeError) as exc:
        log.warning("could not check the torch device %r: %s", device, exc)
        return None


def _build(probe: DeviceProbe) -> str:
    gpu = f", CUDA {probe.gpu_build}" if probe.gpu_build else ", built without CUDA"
    return f"torch {probe.torch}{gpu}"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def device_problem(device: str, named: str | None = None) -> str | None:
    """Why jobs cannot run on ``device``, as one sentence saying what to change (``named``:
    how the user set it, ``--device``; default ``PRUNESCOPE_DEVICE``); None when it exists,
    and for ``auto`` and ``cpu`` without asking torch."""
    if device in ALWAYS_THERE:
        return None
    named = named or "PRUNESCOPE_DEVICE"
    probe = probe_device(device)
    if probe is None:
        return None
    fix = f"set {named} to cpu or auto"
    if probe.torch is None:
        return f"{named}={device}, but {probe.error}: install torch, or {fix}"
    if probe.invalid is not None:
        return f"{named}={device} is not a torch device ({_short(probe.invalid)}): {fix}"
    if probe.type == "meta":
        return f"{named}={device} holds shapes, not data, so no job can run on it: {fix}"
    if probe.type == "cuda":
        if probe.gpu_build is None:
            return (
                f"{named}={device}, but this torch ({_build(probe)}) cannot use a GPU: {fix}, "
                "or install a CUDA build of torch"
            )
        count = probe.count or 0
        if count == 0:
            return (
                f"{named}={device}, but no CUDA GPU is visible on this machine ({_build(probe)}): "
                f"{fix}, or make a GPU visible (its driver, CUDA_VISIBLE_DEVICES, the "
                "container's GPU reservation)"
            )
        if probe.index is not None and probe.index >= count:
            gpus = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            return (
                f"{named}={device}, but this machine has {count} CUDA "
                f"GPU{'s' if count > 1 else ''} ({gpus}): set {named} to "
                f"{'it' if count == 1 else 'one of them'}, cuda, auto or cpu"
            )
        return None
    if probe.error is not None:
        return f"{named}={device} cannot be used here ({_short(probe.error)}): {fix}"
    return None


def gpu_problem(gpu: int) -> str | None:
    """Why ``prunescope worker --gpu N`` finds no GPU N (CUDA_VISIBLE_DEVICES=N is already set
    in this process, so the one GPU it sees is ``cuda``); None when it does."""
    probe = probe_device("cuda")
    if probe is None or (probe.gpu_build is not None and (probe.count or 0) > 0):
        return None
    if probe.torch is None:
        return f"--gpu {gpu}, but {probe.error}: install torch"
    if probe.gpu_build is None:
        return (
            f"--gpu {gpu}, but this torch ({_build(probe)}) cannot use a GPU: install a CUDA "
            "build of torch, or leave out --gpu (with --device cpu)"
        )
    return (
        f"--gpu {gpu}, but CUDA sees no GPU {gpu} on this machine ({_build(probe)}): give the "
        "index of a GPU nvidia-smi lists, or leave out --gpu (with --device cpu)"
    )
