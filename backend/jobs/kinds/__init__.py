"""One module per job kind, each with ``run(job, ctx) -> dict`` (the job's result)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from backend.db.tables import JobRow
from backend.jobs.context import JobContext
from backend.jobs.specs import RUNNABLE_KINDS

RunFn = Callable[[JobRow, JobContext], dict[str, Any]]


def get_kind(kind: str) -> RunFn:
    """The run function of a job kind (imported lazily: kinds import torch)."""
    if kind not in RUNNABLE_KINDS:
        raise ValueError(
            f"job kind {kind!r} is not runnable; runnable: {', '.join(RUNNABLE_KINDS)}"
        )
    return import_module(f"backend.jobs.kinds.{kind}").run  # type: ignore[no-any-return]
