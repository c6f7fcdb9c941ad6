"""PruneScope from Python: a notebook's client of a PruneScope server.

    from prunescope import Client

    ps = Client("http://127.0.0.1:8050", token="psk_...")
    original = ps.upload_model(net, architecture="timm/resnet18", dataset=1)
    pruned = ps.prune(original["id"], "global_magnitude", 0.8)
    comparison = ps.compare(original["id"], pruned["id"])
    ps.table("models")                       # a pandas DataFrame
    net_pruned = ps.download(pruned["id"])   # an nn.Module, pruned as the server holds it

The client speaks the same REST API as the dashboard and the ``prunescope`` command line, through
the same client code (:mod:`frontend.client`). Installed, this package is ``prunescope``; in the
source tree it lives in ``frontend/prunescope`` (pyproject.toml maps it).
"""

from __future__ import annotations

from frontend.client import (
    ApiError,
    ApiUnreachableError,
    ChecksumError,
    ClientError,
    JobFailedError,
)

from .client import TABLE_KINDS, Client

__all__ = [
    "TABLE_KINDS",
    "ApiError",
    "ApiUnreachableError",
    "ChecksumError",
    "Client",
    "ClientError",
    "JobFailedError",
]
