"""Build the architecture catalogue: every name the registry resolves, described, as JSON.

Listing timm's and torchvision's models needs torch, timm and torchvision imported (seconds, and
hundreds of MB in the process). The API never imports torch to answer a read: it runs this
module in a child process (``python -m models.catalogue OUT``) once per installed set of
libraries and plug-ins and serves ``GET /api/architectures`` from the file
(:mod:`backend.api.catalogue`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["build_catalogue"]


def build_catalogue() -> list[dict[str, Any]]:
    """Every architecture in :func:`models.registry.search` order with its
    :func:`models.registry.model_info` (imports torch, timm and torchvision)."""
    import models  # noqa: F401  (registers the built-ins and the onnx architecture)
    from models.registry import model_info, search

    names, _ = search("", limit=1_000_000)
    return [model_info(name) for name in names]


def _main(out: str) -> None:
    entries = build_catalogue()
    with open(out, "w") as fh:
        json.dump(entries, fh)


if __name__ == "__main__":
    _main(sys.argv[1])
