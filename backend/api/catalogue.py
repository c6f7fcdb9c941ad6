"""The architecture catalogue as the API serves it, without importing torch.

``GET /api/architectures`` lists every name the registry resolves (built-ins, plug-ins,
torchvision's, timm's). Listing them needs torch, timm and torchvision imported, which the API
never does to answer a read, so the list is built once per installed set of libraries and
plug-ins by a child process (``python -m models.catalogue OUT``, :mod:`models.catalogue`) and
kept as a JSON file; :func:`catalogue_key` names that set without importing any of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["catalogue_key", "load_or_build", "search_entries"]

_LIBRARIES = ("timm", "torchvision", "torch")


def _own_source_digest() -> str:
    """sha256 of PruneScope's own architecture code (models/*.py), read as text: the built-ins'
    descriptions change with it. Found without importing the package (that would load torch)."""
    spec = importlib.util.find_spec("models")
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")) if folder is not None else []:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def catalogue_key() -> str:
    """A short hash of what the catalogue depends on: PruneScope's architecture code, the
    libraries' versions and the plug-ins' entry points with their distributions' versions (no
    import of any of them)."""
    parts = [_own_source_digest()]
    for lib in _LIBRARIES:
        try:
            parts.append(f"{lib}={metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{lib}=none")
    for ep in sorted(metadata.entry_points(group="prunescope.architectures"), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        version = f"{dist.name}={dist.version}" if dist is not None else ""
        parts.append(f"{ep.name}={ep.value}@{version}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def load_or_build(folder: Path, timeout: float = 300.0) -> list[dict[str, Any]]:
    """The cached catalogue for this installation, built in a child process when missing.

    Args:
        folder: Where catalogue files are kept (``<data_dir>/cache``).
        timeout: Seconds the build may take.

    Raises:
        RuntimeError: The child process failed; its last error line is in the message.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"architectures-{catalogue_key()}.json"
    if path.exists():
        try:
            return list(json.loads(path.read_text()))
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache is rebuilt
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".architectures-", suffix=".tmp")
    os.close(fd)
    try:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "models.catalogue", tmp],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=Path(__file__).resolve().parents[2],
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"listing the architectures took more than {timeout} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"listing the architectures failed: {last}")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return list(json.loads(path.read_text()))


def search_entries(
    entries: list[dict[str, Any]], query: str = "", limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """``models.registry.search`` over a catalogue: every word of ``query`` must occur in
    the name (case-insensitive); catalogue order; ``(page, number matching)``."""
    words = query.lower().split()
    hits = [e for e in entries if all(w in e["name"].lower() for w in words)]
    return hits[offset : offset + limit], len(hits)
