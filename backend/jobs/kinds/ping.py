"""The ping job: stays running for ``seconds`` (cancellable) and says who ran it."""

from __future__ import annotations

import time
from typing import Any

from backend.db.tables import JobRow
from backend.jobs.context import JobContext
from backend.jobs.specs import PingSpec


def run(job: JobRow, ctx: JobContext) -> dict[str, Any]:
    """Wait ``spec.seconds`` while heartbeating and honouring cancellation."""
    from backend.jobs.runner import worker_name

    spec = PingSpec.model_validate(job.spec)
    deadline = time.monotonic() + spec.seconds
    while (left := deadline - time.monotonic()) > 0:
        ctx.check_cancelled()
        ctx.report(1.0 - left / spec.seconds, f"pinging, {left:.1f} s left")
        time.sleep(min(left, 0.1))
    return {"worker": worker_name(), "device": ctx.device}
