"""`prunescope demo`'s progress (issue 18.4e): one bar for the whole demo that never goes back.

The demo runs a train job, two prune jobs and a compare job; the compare job analyses every
model in turn and each analysis starts its own count from 0, so the compare job's progress
falls back (79% -> 10%, twice, on a three-model demo). The bar maps each stage into its share
of the demo and only ever moves forward.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from backend import cli
from backend.cli import DEMO_STAGES, DemoProgress, demo_progress, follow_stage
from frontend.client import JobFailedError

# (stage, that stage's own progress) as the demo polls them; the compare job's fall-backs are
# what a real three-model demo with one corruption reported
COMPARE_REPORTS = [0.0, 0.1, 0.45, 0.79, 0.2, 0.0, 0.1, 0.5, 0.79, 0.4, 0.0, 0.1, 0.79]
COMPARE_REPORTS += [0.6, 0.77, 0.96, 1.0]
REPORTS = (
    [("train", f) for f in (0.0, 0.05, 0.3, 0.6, 0.96, 1.0)]
    + [("prune", f) for f in (0.0, 0.02, 0.45, 0.9, 1.0)]
    + [("compare", f) for f in COMPARE_REPORTS]
)


def non_decreasing(values: list[float]) -> bool:
    return all(b >= a for a, b in itertools.pairwise(values))


def test_stage_reports_give_a_non_decreasing_bar_ending_at_100_percent() -> None:
    # what the old bars showed: each job's own progress, which falls back
    assert not non_decreasing([f for _stage, f in REPORTS])
    progress = DemoProgress()
    overall = [progress.update(stage, f) for stage, f in REPORTS]
    assert non_decreasing(overall)
    assert overall[0] == 0.0
    assert overall[-1] == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in overall)


def test_each_stage_fills_its_own_share_of_the_bar() -> None:
    assert sum(share for _stage, share in DEMO_STAGES) == pytest.approx(1.0)
    start = 0.0
    for stage, share in DEMO_STAGES:
        assert demo_progress(stage, 0.0) == pytest.approx(start)
        assert demo_progress(stage, 0.5) == pytest.approx(start + share / 2)
        start += share
        assert demo_progress(stage, 1.0) == pytest.approx(start)
    assert start == pytest.approx(1.0)
    # a job's progress is in [0, 1]; anything else is clamped, never spills into a neighbour
    assert demo_progress("prune", 1.7) == demo_progress("prune", 1.0)
    assert demo_progress("prune", -0.2) == demo_progress("prune", 0.0)


def test_unknown_stage_is_named() -> None:
    with pytest.raises(ValueError, match=r"stage='sweep'"):
        demo_progress("sweep", 0.5)


def test_a_later_stage_never_moves_the_bar_back() -> None:
    progress = DemoProgress()
    assert progress.update("compare", 0.5) > progress.update("train", 1.0) - 1e-12
    assert progress.update("compare", 0.1) == progress.update("compare", 0.5)


# the bar itself, against a fake API ------------------------------------------------------------


class FakeBar:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.n = 0
        self.values: list[int] = []
        self.descriptions: list[str] = []
        self.postfix = ""
        self.closed = False

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.descriptions.append(desc)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def refresh(self) -> None:
        self.values.append(self.n)

    def close(self) -> None:
        self.closed = True


def job(job_id: int, progress: float, status: str = "running", kind: str = "compare") -> dict:
    return {
        "id": job_id,
        "kind": kind,
        "status": status,
        "progress": progress,
        "stage": f"at {progress:.0%}",
        "error": "boom" if status == "failed" else None,
        "result": {"model_id": 100 + job_id, "comparison_id": 7},
    }


class FakeApi:
    """The demo's API: every job runs through ``script[id]`` (its progress at each poll)."""

    def __init__(self, script: dict[int, list[float]], failed: int | None = None) -> None:
        self.polls: dict[int, Iterator[float]] = {j: iter(p) for j, p in script.items()}
        self.failed = failed
        self.last: dict[int, float] = {}
        self.bars: list[FakeBar] = []
        self.posted: list[tuple[str, dict]] = []
        self.next_job = 1

    def progress_bar(self, **kwargs: Any) -> FakeBar:
        self.bars.append(FakeBar(**kwargs))
        return self.bars[-1]

    def get_job(self, job_id: int) -> dict:
        value = next(self.polls[job_id], None)
        if value is None:
            status = "failed" if job_id == self.failed else "succeeded"
            return job(job_id, self.last.get(job_id, 1.0), status)
        self.last[job_id] = value
        return job(job_id, value)

    def get(self, path: str, **params: Any) -> Any:
        if path == "/comparisons":
            return {"data": []}
        if path == "/datasets":
            return {"data": [{"name": "digits", "id": 1, "n_train": 1437, "n_test": 360}]}
        raise AssertionError(path)

    def post(self, path: str, body: dict) -> dict:
        self.posted.append((path, body))
        if path == "/comparisons":
            return {"id": 7, "job_id": 4}
        self.next_job += 1
        return {"id": self.next_job - 1}


SCRIPT = {
    1: [0.0, 0.3, 0.7, 0.96],  # train
    2: [0.0, 0.4, 0.9],  # prune 50%
    3: [0.1, 0.2, 0.5, 0.95],  # prune 90%
    4: COMPARE_REPORTS[:-1],  # analyse + compare, falling back twice
}


def test_follow_stage_moves_one_bar_forward_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.time, "sleep", lambda _s: None)
    api = FakeApi(SCRIPT)
    bar, progress = api.progress_bar(), DemoProgress()
    follow_stage(api, bar, progress, "train", [1], ["train digits_cnn"])  # type: ignore[arg-type]
    follow_stage(api, bar, progress, "prune", [2, 3], ["prune 50%", "prune 90%"])  # type: ignore[arg-type]
    jobs = follow_stage(api, bar, progress, "compare", [4], ["analyse + compare"])  # type: ignore[arg-type]
    assert [j["status"] for j in jobs] == ["succeeded"]
    assert non_decreasing(bar.values), bar.values
    assert bar.values[-1] == 100
    # which jobs the bar is following, in its description
    assert any("prune 50%" in d and "prune 90%" in d for d in bar.descriptions)
    assert "analyse + compare" in bar.descriptions[-1]


def test_follow_stage_raises_for_a_failed_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.time, "sleep", lambda _s: None)
    api = FakeApi({2: [0.1, 0.5], 3: [0.2, 0.3]}, failed=3)
    bar = api.progress_bar()
    with pytest.raises(JobFailedError, match="job 3"):
        follow_stage(api, bar, DemoProgress(), "prune", [2, 3], ["a", "b"])  # type: ignore[arg-type]
    assert non_decreasing(bar.values)


def test_the_whole_demo_draws_one_monotone_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.time, "sleep", lambda _s: None)
    api = FakeApi(SCRIPT)
    comp_id = cli.run_demo_pipeline(api, 1, 1, fresh=False, corruptions=["brightness"])  # type: ignore[arg-type]
    assert comp_id == 7
    (bar,) = api.bars
    assert non_decreasing(bar.values), bar.values
    assert bar.values[0] == 0 and bar.values[-1] == 100
    assert bar.kwargs["total"] == 100 and bar.closed
