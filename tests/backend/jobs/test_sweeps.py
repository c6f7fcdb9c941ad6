"""A sweep's state follows its children: derived on read (reads never write) and stored by
whoever ends a child: the runner, the lost-worker recovery, a cancel."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from backend.api.app import create_app
from backend.db.session import get_engine, session_scope
from backend.db.tables import JobRow, utcnow
from backend.jobs.lifecycle import recover_lost, sweep_state
from backend.jobs.runner import claim, finish

COLUMNS = ("status", "progress", "stage", "error", "result", "finished_at")


class IdleExecutor:
    """Takes job ids and runs nothing: the tests play the workers."""

    def __init__(self) -> None:
        self.handed: list[int] = []

    def start(self) -> None: ...
    def shutdown(self) -> None: ...
    def health(self) -> str:
        return "ok: idle (test)"

    def submit(self, job_id: int, queue: str | None = None) -> None:
        self.handed.append(job_id)


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    app = create_app(settings, executor=IdleExecutor(), dashboard=False)  # type: ignore[arg-type]
    with TestClient(app) as c:
        yield c


def add_sweep(settings, n: int, status: str = "running") -> tuple[int, list[int]]:
    """A sweep row and ``n`` queued child prune jobs, as a submission writes them."""
    with session_scope(settings.database_url) as s:
        sweep = JobRow(kind="sweep", spec={}, status=status, stage=f"0/{n} child jobs done")
        s.add(sweep)
        s.flush()
        children = [
            JobRow(kind="prune", spec={}, status="queued", stage="queued", parent_job_id=sweep.id)
            for _ in range(n)
        ]
        s.add_all(children)
        s.flush()
        return sweep.id, [c.id for c in children]


def stored(settings) -> dict[int, tuple[Any, ...]]:
    with session_scope(settings.database_url) as s:
        rows = s.scalars(select(JobRow).order_by(JobRow.id)).all()
        return {r.id: tuple(getattr(r, c) for c in COLUMNS) for r in rows}


def end_child(settings, job_id: int, status: str, model_id: int | None = None) -> None:
    """A worker's way: claim the job, then record how it ended."""
    attempt = claim(settings, job_id)
    assert attempt
    result = {"model_id": model_id} if model_id is not None else None
    values: dict[str, Any] = {"status": status, "stage": status, "result": result}
    if status == "succeeded":
        values["progress"] = 1.0
    assert finish(settings, job_id, attempt, **values)


def test_sweep_state_is_a_pure_function_of_the_children():
    def child(i: int, status: str, progress: float, model: int | None = None) -> JobRow:
        at = utcnow() + timedelta(seconds=i)
        return JobRow(
            id=i,
            status=status,
            progress=progress,
            result={"model_id": model} if model else None,
            finished_at=at if status in ("succeeded", "failed", "cancelled") else None,
        )

    going = [child(1, "succeeded", 1.0, 11), child(2, "running", 0.5)]
    assert sweep_state("running", going) == {
        "status": "running",
        "progress": 0.75,
        "stage": "1/2 child jobs done",
    }
    assert going[1].status == "running" and going[1].progress == 0.5  # nothing changed
    done = [child(1, "succeeded", 1.0, 11), child(2, "succeeded", 1.0, 12)]
    state = sweep_state("running", done)
    assert state["status"] == "succeeded" and state["error"] is None
    assert state["result"] == {"child_job_ids": [1, 2], "model_ids": [11, 12]}
    assert state["finished_at"] == done[1].finished_at  # the last child's end
    failed = [child(1, "succeeded", 1.0, 11), child(2, "failed", 0.3)]
    state = sweep_state("running", failed)
    assert state["status"] == "failed" and state["error"] == "1 of 2 child jobs failed"
    assert state["result"]["model_ids"] == [11]
    asked = [child(1, "succeeded", 1.0, 11), child(2, "cancelled", 0.2)]
    assert sweep_state("cancelling", asked)["status"] == "cancelled"
    assert sweep_state("running", [child(1, "cancelled", 0.0)])["status"] == "cancelled"
    assert sweep_state("succeeded", done) == {}  # an ended sweep stays as stored


def test_reads_never_write(client, settings):
    sweep_id, children = add_sweep(settings, 3)
    # two children ended behind the writers' backs (as a row written by another version
    # might be): a read shows it, and stores nothing
    with session_scope(settings.database_url) as s:
        s.execute(
            update(JobRow)
            .where(JobRow.id.in_(children[:2]))
            .values(status="succeeded", progress=1.0, finished_at=utcnow())
        )
    before = stored(settings)
    writes: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement)

    engine = get_engine(settings.database_url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        one = client.get(f"/api/jobs/{sweep_id}").json()
        listed = client.get("/api/jobs").json()["data"]
        running = client.get("/api/jobs", params={"status": "running"}).json()["data"]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert one["status"] == "running" and one["stage"] == "2/3 child jobs done"
    assert one["progress"] == pytest.approx(2 / 3)
    assert next(j for j in listed if j["id"] == sweep_id) == one
    assert [j["id"] for j in running] == [sweep_id]
    assert writes == []
    assert stored(settings) == before


def test_a_sweep_settles_as_its_children_end(client, settings):
    sweep_id, children = add_sweep(settings, 2)
    end_child(settings, children[0], "succeeded", model_id=41)
    sweep = stored(settings)[sweep_id]
    assert sweep[:3] == ("running", 0.5, "1/2 child jobs done")  # stored by the runner
    end_child(settings, children[1], "succeeded", model_id=42)
    status, progress, stage, error, result, finished_at = stored(settings)[sweep_id]
    assert (status, progress, stage, error) == ("succeeded", 1.0, "2/2 child jobs done", None)
    assert result == {"child_job_ids": children, "model_ids": [41, 42]}
    assert finished_at is not None
    shown = client.get(f"/api/jobs/{sweep_id}").json()
    assert shown["status"] == "succeeded" and shown["result"]["model_ids"] == [41, 42]


def test_a_lost_child_that_cannot_be_retried_fails_its_sweep(client, settings):
    db = settings.model_copy(update={"job_retries": 0})
    sweep_id, children = add_sweep(db, 2)
    end_child(db, children[0], "succeeded", model_id=41)
    attempt = claim(db, children[1])
    assert recover_lost(db, children[1], "test kill", attempt=attempt) == "failed"
    status, _progress, stage, error, result, _ = stored(db)[sweep_id]
    assert (status, stage, error) == ("failed", "2/2 child jobs done", "1 of 2 child jobs failed")
    assert result["model_ids"] == [41]
    assert client.get(f"/api/jobs/{sweep_id}").json()["status"] == "failed"


def test_cancel_stores_the_sweeps_state(client, settings):
    sweep_id, children = add_sweep(settings, 3)
    claim(settings, children[0])  # one child running, two queued
    resp = client.post(f"/api/jobs/{sweep_id}/cancel")
    assert resp.status_code == 200
    assert resp.json()["status"] == "cancelling" and resp.json()["stage"] == "2/3 child jobs done"
    rows = stored(settings)
    assert rows[sweep_id][:3] == ("cancelling", 0.0, "2/3 child jobs done")
    assert [rows[c][0] for c in children] == ["cancelling", "cancelled", "cancelled"]
    # the running child's worker sees the request and stops: the sweep ends with it
    assert finish(settings, children[0], 1, status="cancelled", stage="cancelled")
    assert stored(settings)[sweep_id][0] == "cancelled"
    assert client.post(f"/api/jobs/{sweep_id}/cancel").status_code == 409
    # a sweep whose children were all still queued ends at once
    other, _ = add_sweep(settings, 2)
    assert client.post(f"/api/jobs/{other}/cancel").json()["status"] == "cancelled"
    assert stored(settings)[other][0] == "cancelled"


def test_a_submitted_sweep_is_queued_child_by_child(client, settings):
    """A sweep is written running with its children queued, and only the children go to the
    executor (``submit.enqueue``, what POST /api/jobs does once the spec passed its checks)."""
    from backend.jobs import submit
    from backend.jobs.specs import SweepSpec

    executor: IdleExecutor = client.app.state.executor  # type: ignore[attr-defined]
    spec = SweepSpec(model_id=1, methods=["random"], sparsities=[0.2, 0.4])
    with session_scope(settings.database_url) as s:
        job = submit.enqueue(s, executor, "sweep", spec)  # type: ignore[arg-type]
        sweep_id = job.id
    shown = client.get(f"/api/jobs/{sweep_id}").json()
    assert (shown["status"], shown["stage"]) == ("running", "0/2 child jobs done")
    children = [j["id"] for j in client.get("/api/jobs").json()["data"] if j["id"] != sweep_id]
    assert sorted(executor.handed) == sorted(children) and len(children) == 2
