"""A fake PruneScope REST API (httpx.MockTransport) serving fixture JSON in the API contract.

This tests the dashboard's routing and rendering, not the backend: the fixture follows the
documented response shapes, and every request is recorded so tests can assert URLs and params.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from frontend import client as client_module

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer"]
CREATED = "2024-05-01T12:00:00Z"


def _dataset() -> dict[str, Any]:
    return {
        "id": 1,
        "name": "cifar5-mini",
        "source": "builtin",
        "num_classes": 5,
        "class_names": list(CLASS_NAMES),
        "input_shape": [3, 32, 32],
        "n_train": 5000,
        "n_test": 1000,
        "created_at": CREATED,
    }


def _model(
    model_id: int,
    name: str,
    parent_id: int | None,
    method: str | None,
    sparsity: float,
    accuracy: float | None,
) -> dict[str, Any]:
    n_params = 1_000_000
    n_nonzero = round(n_params * (1 - sparsity))
    return {
        "id": model_id,
        "name": name,
        "architecture": "resnet8",
        "arch_kwargs": {"num_classes": 5},
        "dataset_id": 1,
        "parent_id": parent_id,
        "pruning_method": method,
        "pruning_params": None if method is None else {"amount": sparsity},
        "sparsity": sparsity,
        "n_params": n_params,
        "n_nonzero": n_nonzero,
        "compression_ratio": n_params / n_nonzero,
        "accuracy": accuracy,
        "job_id": model_id,
        "created_at": CREATED,
    }


def _analysis(analysis_id: int, model_id: int, confusion: list[list[int]]) -> dict[str, Any]:
    support = [sum(row) for row in confusion]
    n = sum(support)
    correct = sum(confusion[i][i] for i in range(len(confusion)))
    col = [sum(row[j] for row in confusion) for j in range(len(confusion))]
    return {
        "id": analysis_id,
        "model_id": model_id,
        "dataset_id": 1,
        "split": "test",
        "accuracy": correct / n,
        "n_samples": n,
        "recall": [confusion[i][i] / support[i] for i in range(len(confusion))],
        "precision": [confusion[i][i] / col[i] if col[i] else 0.0 for i in range(len(confusion))],
        "support": support,
        "confusion": confusion,
        "created_at": CREATED,
    }


CONFUSION_A = [
    [18, 1, 0, 1, 0],
    [0, 19, 0, 0, 1],
    [1, 0, 16, 2, 1],
    [0, 0, 2, 15, 3],
    [0, 1, 1, 1, 17],
]
CONFUSION_B = {
    2: [
        [17, 2, 0, 1, 0],
        [0, 19, 0, 0, 1],
        [1, 0, 15, 3, 1],
        [0, 0, 3, 13, 4],
        [0, 1, 1, 1, 17],
    ],
    3: [
        [15, 3, 1, 1, 0],
        [1, 17, 0, 1, 1],
        [2, 0, 12, 4, 2],
        [1, 0, 4, 9, 6],
        [0, 2, 2, 2, 14],
    ],
}


def _flips(b: int) -> list[dict[str, Any]]:
    """Deterministic flipped samples for pruned model ``b``."""
    out = []
    cats = ["correct_to_wrong", "correct_to_wrong", "wrong_to_correct", "wrong_to_other_wrong"]
    n = 7 if b == 2 else 60
    for k in range(n):
        label = k % 5
        cat = cats[k % 4]
        pred_a = label if cat == "correct_to_wrong" else (label + 1) % 5
        pred_b = label if cat == "wrong_to_correct" else (label + 2) % 5
        out.append(
            {
                "index": 10 * k + b,
                "label": label,
                "pred_a": pred_a,
                "pred_b": pred_b,
                "category": cat,
                "confidence_a": 0.8,
                "confidence_b": 0.55,
                "image_url": f"/api/datasets/1/images/test/{10 * k + b}.png",
            }
        )
    return out


SAMPLE_CORRUPTIONS = ["gaussian_noise", "fog"]
SAMPLE_SEVERITIES = [1, 2, 3]
ATTRIBUTION_GRID = (3, 4)
ATTRIBUTION_ACTIVE = ("queued", "running", "cancelling")


def _side(model_id: int, index: int, label: int, pred: int, shift: float) -> dict[str, Any]:
    """One model's half of a ``/samples/{index}`` body, deterministic in ``index``."""
    correct = pred == label
    confidence = 0.9 - 0.1 * shift if correct else 0.55
    others = [c for c in range(5) if c != pred][:4]
    rest = (1.0 - confidence) / len(others)
    return {
        "model_id": model_id,
        "pred": pred,
        "correct": correct,
        "confidence": confidence,
        "top5": [{"label": pred, "prob": confidence}]
        + [{"label": c, "prob": round(rest * (1 - 0.1 * k), 4)} for k, c in enumerate(others)],
        "angle": 30.0 + (index % 7) * 5 + 10 * shift,
        "length": 12.0 - shift - (index % 3),
        "length_z": 0.2 * (index % 5) - 0.4 - 0.3 * shift,
        "margin": (1.0 - 0.4 * shift) if correct else -0.5 - 0.1 * shift,
    }


def sample_record(b: int, index: int, corruptions: bool = True) -> dict[str, Any]:
    """The ``/comparisons/1/samples/{index}?b=`` body (without its attribution status):
    the flipped samples of ``_flips(b)`` and, for every other index, A = B = the true label."""
    flips = {f["index"]: (k, f) for k, f in enumerate(_flips(b))}
    k, flip = flips.get(index, (-1, None))
    label = flip["label"] if flip else index % 5
    pred_a = flip["pred_a"] if flip else label
    pred_b = flip["pred_b"] if flip else label
    made_fragile = index % 9 == 0
    out: dict[str, Any] = {
        "comparison_id": 1,
        "model_b_id": b,
        "index": index,
        "label": label,
        "image_url": f"/api/datasets/1/images/test/{index}.png",
        "category": flip["category"] if flip else "",
        "pie": bool(flip) and k % 2 == 0,
        "made_fragile": made_fragile if corruptions else None,
        "a": _side(1, index, label, pred_a, 0.0),
        "b": _side(b, index, label, pred_b, 1.0),
        "corruptions": None,
    }
    if corruptions:
        n, s = len(SAMPLE_CORRUPTIONS), len(SAMPLE_SEVERITIES)
        # A holds everywhere; B fails at the highest severity of every corruption when
        # pruning made the sample fragile
        correct_a = [[pred_a == label] * s for _ in range(n)]
        correct_b = [
            [pred_b == label and not (made_fragile and j == s - 1) for j in range(s)]
            for _ in range(n)
        ]
        out["corruptions"] = {
            "names": list(SAMPLE_CORRUPTIONS),
            "severities": list(SAMPLE_SEVERITIES),
            "pred_a": [[pred_a] * s for _ in range(n)],
            "pred_b": [[pred_b if ok else (label + 3) % 5 for ok in row] for row in correct_b],
            "correct_a": correct_a,
            "correct_b": correct_b,
        }
    return out


def attribution_record(b: int, index: int, job_id: int) -> dict[str, Any]:
    """The ``/samples/{index}/attribution`` body: cell (r, c) of metric m of side A holds
    ``r + c / 10`` (+ 1 for length, + 2 for margin), B twice that."""
    rows, cols = ATTRIBUTION_GRID
    offsets = {"angle": 0.0, "length": 1.0, "margin": 2.0}

    def grid(metric: str, scale: float) -> list[list[float]]:
        return [[scale * (r + c / 10 + offsets[metric]) for c in range(cols)] for r in range(rows)]

    detail = sample_record(b, index)
    return {
        "comparison_id": 1,
        "model_b_id": b,
        "index": index,
        "label": detail["label"],
        "patch": 4,
        "stride": 2,
        "fill": "mean",
        "severity": None,
        "grid": [rows, cols],
        "rows": [2 * r for r in range(rows)],
        "cols": [2 * c for c in range(cols)],
        "metrics": ["angle", "length", "margin"],
        "base": {
            side: {m: detail[side][m] for m in ("angle", "length", "margin")} for side in ("a", "b")
        },
        "a": {m: grid(m, 1.0) for m in offsets},
        "b": {m: grid(m, 2.0) for m in offsets},
        "corrupted": [
            {
                "corruption": "fog",
                "severity": 3,
                "image": "data:image/png;base64,iVBORw0KGgo=",
                "pred_a": detail["a"]["pred"],
                "pred_b": (detail["label"] + 3) % 5,
                "correct_a": detail["a"]["correct"],
                "correct_b": False,
            }
        ],
        "job_id": job_id,
    }


@dataclass
class FakeApi:
    """In-memory API state plus the log of requests it answered."""

    datasets: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    analyses: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    down: bool = False
    errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Path -> (status, detail) to answer instead of the normal body."""
    sample_corruptions: bool = True
    """Whether ``/samples/{index}`` reports corruption outcomes."""

    @classmethod
    def populated(cls) -> FakeApi:
        """One dataset, an original with two pruned children (one with a child), one comparison."""
        a = _analysis(1, 1, CONFUSION_A)
        return cls(
            datasets=[_dataset()],
            models=[
                _model(1, "resnet8-cifar5", None, None, 0.0, a["accuracy"]),
                _model(3, "resnet8-gm90", 1, "global_magnitude", 0.9, 0.67),
                _model(2, "resnet8-gm50", 1, "global_magnitude", 0.5, 0.81),
                _model(4, "resnet8-gm90-ft", 3, "lottery_ticket", 0.95, 0.6),
            ],
            jobs=[
                {
                    "id": 1,
                    "kind": "train",
                    "spec": {},
                    "status": "succeeded",
                    "progress": 1.0,
                    "stage": "done",
                    "error": None,
                    "result": {"model_id": 1},
                    "created_at": CREATED,
                    "started_at": CREATED,
                    "finished_at": CREATED,
                    "heartbeat_at": CREATED,
                },
                {
                    "id": 2,
                    "kind": "prune",
                    "spec": {},
                    "status": "running",
                    "progress": 0.3,
                    "stage": "epoch 3/10",
                    "error": None,
                    "result": None,
                    "created_at": CREATED,
                    "started_at": CREATED,
                    "finished_at": None,
                    "heartbeat_at": CREATED,
                },
                {
                    "id": 3,
                    "kind": "analyze",
                    "spec": {},
                    "status": "failed",
                    "progress": 0.1,
                    "stage": "loading",
                    "error": "CUDA out of memory",
                    "result": None,
                    "created_at": CREATED,
                    "started_at": CREATED,
                    "finished_at": CREATED,
                    "heartbeat_at": CREATED,
                },
            ],
            analyses=[a, _analysis(2, 2, CONFUSION_B[2]), _analysis(3, 3, CONFUSION_B[3])],
            comparisons=[
                {
                    "id": 1,
                    "name": "resnet8 vs global magnitude",
                    "dataset_id": 1,
                    "model_a_id": 1,
                    "model_b_ids": [2, 3],
                    "created_at": CREATED,
                }
            ],
        )

    # routing ----------------------------------------------------------------------------------

    def _find(self, items: list[dict[str, Any]], item_id: int, what: str) -> dict[str, Any]:
        for item in items:
            if item["id"] == item_id:
                return item
        raise _NotFound(f"{what} not found")

    def _analysis_of(self, model_id: int) -> dict[str, Any]:
        for a in self.analyses:
            if a["model_id"] == model_id:
                return a
        raise _NotFound("Analysis not found")

    def view(self, comparison_id: int, b: int | None) -> dict[str, Any]:
        """The ``/comparisons/{id}/view`` body."""
        comparison = self._find(self.comparisons, comparison_id, "Comparison")
        b = comparison["model_b_ids"][0] if b is None else b
        if b not in comparison["model_b_ids"]:
            raise _Unprocessable(f"Model {b} is not one of this comparison's pruned models")
        an_a = self._analysis_of(comparison["model_a_id"])
        an_b = self._analysis_of(b)
        shift = [
            [vb - va for va, vb in zip(ra, rb, strict=True)]
            for ra, rb in zip(an_a["confusion"], an_b["confusion"], strict=True)
        ]
        flips = _flips(b)
        return {
            "comparison": comparison,
            "dataset": self._find(self.datasets, comparison["dataset_id"], "Dataset"),
            "model_a": self._find(self.models, comparison["model_a_id"], "Model"),
            "model_b": self._find(self.models, b, "Model"),
            "analysis_a": an_a,
            "analysis_b": an_b,
            "confusion_shift": shift,
            "flip_counts": {
                c: sum(1 for f in flips if f["category"] == c)
                for c in ("correct_to_wrong", "wrong_to_correct", "wrong_to_other_wrong")
            },
        }

    def flips(self, comparison_id: int, params: httpx.QueryParams) -> dict[str, Any]:
        """The ``/comparisons/{id}/flips`` body."""
        comparison = self._find(self.comparisons, comparison_id, "Comparison")
        b = int(params.get("b", comparison["model_b_ids"][0]))
        if b not in comparison["model_b_ids"]:
            raise _Unprocessable(f"Model {b} is not one of this comparison's pruned models")
        rows = _flips(b)
        if "category" in params:
            rows = [r for r in rows if r["category"] == params["category"]]
        if "label" in params:
            rows = [r for r in rows if r["label"] == int(params["label"])]
        offset, limit = int(params.get("offset", 0)), int(params.get("limit", 50))
        return {
            "data": rows[offset : offset + limit],
            "count": len(rows),
            "offset": offset,
            "limit": limit,
        }

    @staticmethod
    def sample_record(b: int, index: int, corruptions: bool = True) -> dict[str, Any]:
        """:func:`sample_record`, for test modules (conftest is not importable)."""
        return sample_record(b, index, corruptions)

    def _attribution_job(self, b: int, index: int) -> dict[str, Any] | None:
        """The latest attribution job of sample ``index`` of (comparison 1, ``b``)."""
        found = [
            j
            for j in self.jobs
            if j["kind"] == "attribution"
            and j["spec"].get("model_b_id") == b
            and j["spec"].get("index") == index
        ]
        return max(found, key=lambda j: j["id"]) if found else None

    def sample(self, comparison_id: int, index: int, params: httpx.QueryParams) -> dict[str, Any]:
        """The ``/comparisons/{id}/samples/{index}`` body, with its attribution status."""
        comparison = self._find(self.comparisons, comparison_id, "Comparison")
        b = int(params.get("b", comparison["model_b_ids"][0]))
        if b not in comparison["model_b_ids"]:
            raise _Unprocessable(f"Model {b} is not one of this comparison's pruned models")
        if not 0 <= index < self.datasets[0]["n_test"]:
            raise _NotFound("Sample not found")
        out = sample_record(b, index, self.sample_corruptions)
        job = self._attribution_job(b, index)
        out["attribution"] = {
            "status": "none" if job is None else job["status"],
            "job_id": None if job is None else job["id"],
            "progress": 0.0 if job is None else job["progress"],
            "message": "" if job is None else job["stage"],
            "error": None if job is None else job["error"],
        }
        return out

    def attribution(
        self, comparison_id: int, index: int, params: httpx.QueryParams
    ) -> dict[str, Any] | None:
        """The ``/samples/{index}/attribution`` body; None until its job has succeeded."""
        detail = self.sample(comparison_id, index, params)
        b = detail["model_b_id"]
        job = self._attribution_job(b, index)
        if job is None or job["status"] != "succeeded":
            return None
        return attribution_record(b, index, job["id"])

    def submit_attribution(self, spec: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/jobs`` of kind "attribution": a queued job (tests move it along)."""
        comparison = self._find(self.comparisons, int(spec["comparison_id"]), "Comparison")
        b = spec.get("model_b_id") or comparison["model_b_ids"][0]
        job = {
            "id": max([j["id"] for j in self.jobs], default=0) + 1,
            "kind": "attribution",
            "spec": {"comparison_id": comparison["id"], "model_b_id": b, "index": spec["index"]},
            "status": "queued",
            "progress": 0.0,
            "stage": "",
            "error": None,
            "result": None,
            "created_at": CREATED,
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": None,
        }
        self.jobs.append(job)
        return job

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The MockTransport handler."""
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("Connection refused", request=request)
        path, params = request.url.path, request.url.params
        if path in self.errors:
            status, detail = self.errors[path]
            return httpx.Response(status, json={"detail": detail})
        lists = {
            "/api/datasets": self.datasets,
            "/api/models": self.models,
            "/api/jobs": self.jobs,
            "/api/comparisons": self.comparisons,
        }
        try:
            if request.method == "POST" and path == "/api/jobs":
                body = json.loads(request.content or b"{}")
                if body.get("kind") == "attribution":
                    return httpx.Response(201, json=self.submit_attribution(body["spec"]))
            if m := re.fullmatch(r"/api/comparisons/(\d+)/samples/(\d+)", path):
                return httpx.Response(200, json=self.sample(int(m[1]), int(m[2]), params))
            if m := re.fullmatch(r"/api/comparisons/(\d+)/samples/(\d+)/attribution", path):
                found = self.attribution(int(m[1]), int(m[2]), params)
                if found is None:
                    detail = "attribution not computed: submit an attribution job"
                    return httpx.Response(409, json={"detail": detail})
                return httpx.Response(200, json=found)
            if path in lists:
                return httpx.Response(200, json={"data": lists[path], "count": len(lists[path])})
            if m := re.fullmatch(r"/api/comparisons/(\d+)/view", path):
                b = int(params["b"]) if "b" in params else None
                return httpx.Response(200, json=self.view(int(m[1]), b))
            if m := re.fullmatch(r"/api/comparisons/(\d+)/flips", path):
                return httpx.Response(200, json=self.flips(int(m[1]), params))
            if m := re.fullmatch(r"/api/(models|datasets|jobs|comparisons)/(\d+)", path):
                what = m[1][:-1].capitalize()
                return httpx.Response(200, json=self._find(lists[f"/api/{m[1]}"], int(m[2]), what))
        except _NotFound as exc:
            return httpx.Response(404, json={"detail": str(exc)})
        except _Unprocessable as exc:
            return httpx.Response(422, json={"detail": str(exc)})
        return httpx.Response(404, json={"detail": "Not Found"})

    def paths(self) -> list[str]:
        """Paths requested so far, in order."""
        return [r.url.path for r in self.requests]


class _NotFound(Exception):
    pass


class _Unprocessable(Exception):
    pass


def _install(api: FakeApi) -> Iterator[FakeApi]:
    client_module.configure("http://testserver", transport=httpx.MockTransport(api.handle))
    try:
        yield api
    finally:
        client_module.reset()


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    """The shared page client pointed at a populated fake API."""
    yield from _install(FakeApi.populated())


@pytest.fixture
def empty_api() -> Iterator[FakeApi]:
    """The shared page client pointed at a fake API with no rows at all."""
    yield from _install(FakeApi())


@pytest.fixture
def down_api() -> Iterator[FakeApi]:
    """The shared page client pointed at an API that refuses connections."""
    yield from _install(FakeApi(down=True))


@pytest.fixture
def server(client: Any) -> Iterator[Any]:
    """The real REST API (``client`` of tests/conftest.py: a fresh database, jobs inline) behind
    the pages' client, so that a form's checks are the server's dry run."""

    def forward(request: httpx.Request) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = client.request(
            request.method, str(request.url), content=request.content, headers=headers
        )
        return httpx.Response(
            answer.status_code,
            content=answer.content,
            headers={"content-type": answer.headers.get("content-type", "application/json")},
        )

    client_module.configure("http://testserver", transport=httpx.MockTransport(forward))
    try:
        yield client
    finally:
        client_module.reset()


@pytest.fixture(autouse=True)
def _no_prefetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compare page prefetches the embedding in a thread; a fake API's request log, and
    the views' caches, would then depend on thread timing. Tests of the prefetch turn it on."""
    from frontend.pages import compare

    monkeypatch.setattr(compare, "PREFETCH", False)
