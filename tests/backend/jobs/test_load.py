"""200 job submissions from 20 concurrent clients against a real server on loopback: every
job is accounted for exactly once (none lost, none duplicated, none run twice)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import select

from backend.db.session import session_scope
from backend.db.tables import JobRow

CLIENTS, PER_CLIENT = 20, 10


def test_200_concurrent_submissions_each_run_exactly_once(settings, serve, spawn_worker, request):
    """SQLite + two local worker processes, and PostgreSQL + Celery with two real workers."""
    if settings.database_url.startswith("sqlite"):
        stack = settings.model_copy(update={"workers": 2})  # the embedded default
        url = serve(stack)
    else:
        broker = request.getfixturevalue("broker_url")
        stack = settings.model_copy(update={"executor": "celery", "broker_url": broker})
        url = serve(stack)  # migrates the database before the workers look at it
        spawn_worker(stack)
        spawn_worker(stack)

    def client(i: int) -> list[int]:
        ids = []
        with httpx.Client(base_url=f"{url}/api", timeout=30) as http:
            for _ in range(PER_CLIENT):
                resp = http.post("/jobs", json={"kind": "ping", "spec": {}})
                assert resp.status_code == 201, resp.text
                ids.append(resp.json()["id"])
        return ids

    with ThreadPoolExecutor(CLIENTS) as pool:
        submitted = [i for ids in pool.map(client, range(CLIENTS)) for i in ids]
    assert len(submitted) == CLIENTS * PER_CLIENT
    assert len(set(submitted)) == len(submitted), "two submissions got the same job id"

    deadline = time.monotonic() + 180
    while True:
        with session_scope(stack.database_url) as s:
            rows = s.execute(select(JobRow.id, JobRow.status, JobRow.attempts)).all()
        if all(r.status == "succeeded" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(r.id for r in rows) == sorted(submitted), "jobs lost or invented"
    assert [r for r in rows if r.status != "succeeded"] == []
    assert [r for r in rows if r.attempts != 1] == [], "a job ran more than once"
