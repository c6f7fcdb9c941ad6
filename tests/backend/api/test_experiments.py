"""GET /api/experiments (and .csv, /facets) on SQLite and PostgreSQL, against generated rows:
every filter and sort against a brute-force filter and sort in Python over all rows read with
the ORM, alpha_t against numpy.linalg.lstsq, one SQL statement per page whatever the number of
models, and the CSV holding the same rows."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import get_engine, session_scope
from backend.db.tables import AnalysisRow, DatasetRow, JobRow, ModelRow
from backend.jobs.executor import InlineExecutor
from tests.experiment_rows import insert_experiments

N_ROWS = 150


@dataclass
class World:
    client: TestClient
    settings: Settings
    rows: list[dict[str, Any]]  # the reference: every model, computed here from the ORM


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def world(settings: Settings, app_client: TestClient) -> World:
    insert_experiments(settings.database_url, N_ROWS, seed=3)
    return World(app_client, settings, reference_rows(settings.database_url))


# the reference --------------------------------------------------------------------------------
def lstsq_alpha(recall: list[Any], acc: float, recall0: list[Any], acc0: float) -> float | None:
    """alpha_t as the least-squares slope through the origin of Bn_t on Bn (numpy's lstsq),
    classes without a recall left out."""
    after = np.array([np.nan if r is None else r for r in recall], dtype=float)
    before = np.array([np.nan if r is None else r for r in recall0], dtype=float)
    if after.shape != before.shape or acc == 0 or acc0 == 0:
        return None
    bn_after, bn_before = (after - acc) / acc, (before - acc0) / acc0
    keep = ~(np.isnan(bn_after) | np.isnan(bn_before))
    if not np.any(bn_before[keep] != 0):
        return None
    slope, *_ = np.linalg.lstsq(bn_before[keep, None], bn_after[keep], rcond=None)
    return float(slope[0])


def reference_rows(url: str) -> list[dict[str, Any]]:
    """Every model as the experiments table should show it, computed in Python."""
    with session_scope(url) as s:
        models = {m.id: m for m in s.scalars(select(ModelRow))}
        datasets = {d.id: d for d in s.scalars(select(DatasetRow))}
        jobs = {j.id: j for j in s.scalars(select(JobRow))}
        analyses = {
            (a.model_id, a.dataset_id): a
            for a in s.scalars(select(AnalysisRow).where(AnalysisRow.split == "test"))
        }
        out = []
        for m in models.values():
            root, depth = m, 0
            while root.parent_id is not None:
                root, depth = models[root.parent_id], depth + 1
            own = analyses.get((m.id, m.dataset_id))
            base = analyses.get((root.id, m.dataset_id)) if root.id != m.id else None
            report = m.sparsity_report or {}
            params = m.pruning_params or {}
            job = jobs.get(m.job_id) if m.job_id is not None else None
            seed = (params.get("training") or {}).get("seed")
            seed = seed if seed is not None else params.get("seed")
            seed = seed if seed is not None else (job.spec.get("seed") if job else None)
            robustness = ((own.summary if own else {}).get("robustness") or {}).get("accuracy")
            corrupted = None
            if robustness:
                means = [float(np.mean(r)) for r in robustness]
                corrupted = float(np.mean(means))
            alpha = None
            if own is not None and base is not None:
                alpha = lstsq_alpha(
                    own.summary["recall"], own.accuracy, base.summary["recall"], base.accuracy
                )
            dataset = datasets.get(m.dataset_id) if m.dataset_id is not None else None
            out.append(
                {
                    "id": m.id,
                    "name": m.name,
                    "parent_id": m.parent_id,
                    "original_id": root.id,
                    "depth": depth,
                    "architecture": m.architecture,
                    "dataset_id": m.dataset_id,
                    "dataset_name": dataset.name if dataset else None,
                    "pruning_method": m.pruning_method,
                    "sparsity": m.sparsity,
                    "t": 1 / (1 - m.sparsity),
                    "compression_ratio": report.get("compression_ratio")
                    or m.n_params / m.n_nonzero,
                    "seed": seed,
                    "n_params": m.n_params,
                    "n_nonzero": m.n_nonzero,
                    "accuracy": m.accuracy if m.accuracy is not None else (own and own.accuracy),
                    "corrupted_accuracy": corrupted,
                    "alpha_t": alpha,
                    "flops_dense": report.get("flops_dense"),
                    "flops_nonzero": report.get("flops_nonzero"),
                    "latency_ms": report.get("latency_ms_pruned"),
                    "learning_distance": (params.get("learning") or {}).get("distance"),
                    "created_at": m.created_at.replace(tzinfo=None),
                }
            )
        return out


SORT_VALUE = {
    "id": lambda r: r["id"],
    "name": lambda r: r["name"].lower(),
    "created_at": lambda r: r["created_at"],
    "parent": lambda r: r["parent_id"],
    "original": lambda r: r["original_id"],
    "architecture": lambda r: r["architecture"].lower(),
    "dataset": lambda r: r["dataset_name"].lower() if r["dataset_name"] else None,
    "method": lambda r: r["pruning_method"],
    "sparsity": lambda r: r["sparsity"],
    "t": lambda r: r["sparsity"],
    "compression_ratio": lambda r: r["compression_ratio"],
    "seed": lambda r: r["seed"],
    "accuracy": lambda r: r["accuracy"],
    "corrupted_accuracy": lambda r: r["corrupted_accuracy"],
    "alpha_t": lambda r: r["alpha_t"],
    "n_params": lambda r: r["n_params"],
    "n_nonzero": lambda r: r["n_nonzero"],
    "flops_dense": lambda r: r["flops_dense"],
    "flops_nonzero": lambda r: r["flops_nonzero"],
    "latency_ms": lambda r: r["latency_ms"],
    "learning_distance": lambda r: r["learning_distance"],
}


def brute_force(rows: list[dict[str, Any]], params: dict[str, Any]) -> list[int]:
    """The ids ``params`` should list, in order: filtered, then sorted with missing values
    last in either order and ties broken by id in the same direction."""

    def keep(r: dict[str, Any]) -> bool:
        methods = params.get("method") or []
        if methods and (r["pruning_method"] or "original") not in methods:
            return False
        if params.get("dataset") and r["dataset_id"] not in params["dataset"]:
            return False
        if params.get("architecture") and r["architecture"] not in params["architecture"]:
            return False
        if params.get("id") and r["id"] not in params["id"]:
            return False
        low, high = params.get("sparsity_min"), params.get("sparsity_max")
        if low is not None and r["sparsity"] < low:
            return False
        if high is not None and r["sparsity"] > high:
            return False
        texts = [
            r["name"].lower(),
            r["architecture"].lower(),
            (r["pruning_method"] or "original").lower(),
            (r["dataset_name"] or "").lower(),
        ]
        return all(any(w in t for t in texts) for w in str(params.get("q", "")).lower().split())

    sort, desc = params.get("sort", "id"), params.get("order", "desc") == "desc"
    kept = [r for r in rows if keep(r)]
    value = SORT_VALUE[sort]
    present = sorted(
        (r for r in kept if value(r) is not None),
        key=lambda r: (value(r), r["id"]),
        reverse=desc,
    )
    missing = sorted((r for r in kept if value(r) is None), key=lambda r: r["id"], reverse=desc)
    return [r["id"] for r in present + missing]


def get(client: TestClient, path: str, params: dict[str, Any]) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json() if path != "/api/experiments.csv" else response.text


# filters and sorts ----------------------------------------------------------------------------
def queries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    methods = sorted({r["pruning_method"] or "original" for r in rows})
    datasets = sorted({r["dataset_id"] for r in rows if r["dataset_id"] is not None})
    architectures = sorted({r["architecture"] for r in rows})
    some = [r["id"] for r in rows[::7]]
    return [
        {},
        {"method": [methods[0]]},
        {"method": ["original", methods[-1]]},
        {"dataset": [datasets[0]]},
        {"dataset": datasets[1:]},
        {"architecture": [architectures[1]]},
        {"architecture": architectures[:2], "method": ["lottery_ticket"]},
        {"sparsity_min": 0.5},
        {"sparsity_max": 0.3},
        {"sparsity_min": 0.2, "sparsity_max": 0.8, "dataset": [datasets[-1]]},
        {"sparsity_min": 0.0, "sparsity_max": 0.0},
        {"q": "MAGNITUDE"},
        {"q": "on 100% #1"},  # "%" is matched literally, not as a wildcard
        {"q": "_mini"},  # so is "_"
        {"q": "original mlp"},
        {"q": "no such model"},
        {"id": some},
        {"id": some, "method": ["original"]},
    ]


def test_every_filter_matches_a_brute_force_filter(world: World) -> None:
    for params in queries(world.rows):
        want = brute_force(world.rows, params)
        page = get(world.client, "/api/experiments", {**params, "limit": 10_000})
        assert [r["id"] for r in page["data"]] == want, params
        assert page["count"] == len(want), params


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_sort_matches_a_brute_force_sort(world: World, order: str) -> None:
    for sort in SORT_VALUE:
        for params in ({}, {"method": ["lottery_ticket", "original"], "sparsity_max": 0.9}):
            query = {**params, "sort": sort, "order": order}
            want = brute_force(world.rows, query)
            page = get(world.client, "/api/experiments", {**query, "limit": 10_000})
            assert [r["id"] for r in page["data"]] == want, query
            # a page in the middle is that slice of the same order, with the whole count
            middle = get(world.client, "/api/experiments", {**query, "limit": 9, "offset": 11})
            assert [r["id"] for r in middle["data"]] == want[11:20], query
            assert middle["count"] == len(want)


def close(got: Any, want: Any) -> bool:
    if want is None or got is None:
        return got is want
    return math.isclose(got, want, rel_tol=1e-9)


def test_values_match_the_reference(world: World) -> None:
    page = get(world.client, "/api/experiments", {"limit": 10_000, "sort": "id", "order": "asc"})
    got = {r["id"]: r for r in page["data"]}
    assert len(got) == N_ROWS
    checked_alpha = 0
    for ref in world.rows:
        row = got[ref["id"]]
        for key in ("name", "parent_id", "original_id", "depth", "architecture", "dataset_id"):
            assert row[key] == ref[key], (key, ref["id"])
        for key in ("dataset_name", "pruning_method", "seed", "n_params", "n_nonzero"):
            assert row[key] == ref[key], (key, ref["id"])
        for key in ("sparsity", "t", "compression_ratio", "accuracy", "corrupted_accuracy"):
            assert close(row[key], ref[key]), (key, ref["id"], row[key], ref[key])
        for key in ("flops_dense", "flops_nonzero", "latency_ms", "learning_distance"):
            assert close(row[key], ref[key]), (key, ref["id"], row[key], ref[key])
        if ref["alpha_t"] is None:
            assert row["alpha_t"] is None, ref["id"]
        else:
            assert row["alpha_t"] == pytest.approx(ref["alpha_t"], rel=1e-9, abs=1e-12)
            checked_alpha += 1
        assert row["created_at"].startswith(ref["created_at"].isoformat()[:19])
        if row["pruning_method"] is None:
            assert row["parent_id"] is None and row["depth"] == 0 and row["alpha_t"] is None
        assert row["t"] == pytest.approx(1 / (1 - row["sparsity"]))
    assert checked_alpha > N_ROWS // 3  # most pruned models have both analyses
    # not recorded: null, never a made-up figure
    assert any(r["flops_dense"] is None for r in got.values())
    assert any(r["latency_ms"] is None for r in got.values())
    assert any(r["seed"] is None for r in got.values())


def test_alpha_t_is_the_papers_worked_example() -> None:
    """SCIENCE.md 2: A = .8, R = (.9, .7) -> A_t = .6, R_t = (.7, .5): Bn = (1/8, -1/8),
    Bn_t = (1/6, -1/6), so alpha_t = 4/3 (and I^c = 4/3 for both classes)."""
    from backend.api.routes.experiments import alpha_t

    assert alpha_t([0.7, 0.5], 0.6, [0.9, 0.7], 0.8) == pytest.approx(4 / 3)
    assert alpha_t([0.7, None], 0.6, [0.9, 0.7], 0.8) == pytest.approx(4 / 3)
    assert alpha_t([0.7, 0.5, 0.1], 0.6, [0.9, 0.7], 0.8) is None  # class counts differ
    assert alpha_t([0.7, 0.5], 0.6, [0.8, 0.8], 0.8) is None  # no balance before: undefined
    assert alpha_t(None, 0.6, [0.9, 0.7], 0.8) is None


# one statement --------------------------------------------------------------------------------
@contextmanager
def statements(url: str) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def counted(client: TestClient, url: str, path: str, params: dict[str, Any]) -> int:
    with statements(url) as seen:
        get(client, path, params)
    return len(seen)


PAGES = [
    {"limit": 25},
    {"limit": 25, "offset": 10, "sort": "accuracy", "order": "desc"},
    {"limit": 50, "sort": "alpha_t", "method": ["global_magnitude", "lottery_ticket"]},
    {"limit": 25, "sort": "seed", "q": "on", "sparsity_min": 0.1},
    {"limit": 25, "sort": "corrupted_accuracy", "order": "asc"},
    {"limit": 25, "sort": "flops_nonzero", "architecture": ["mlp", "resnet20"]},
]


def test_a_page_is_one_statement_for_20_and_for_2000_models(
    settings: Settings, app_client: TestClient
) -> None:
    url = settings.database_url
    insert_experiments(url, 20, seed=1)
    small = [counted(app_client, url, "/api/experiments", p) for p in PAGES]
    small.append(counted(app_client, url, "/api/experiments.csv", {"sort": "alpha_t"}))
    insert_experiments(url, 1980, seed=2)
    page = get(app_client, "/api/experiments", {"limit": 1})
    assert page["count"] == 2000
    large = [counted(app_client, url, "/api/experiments", p) for p in PAGES]
    large.append(counted(app_client, url, "/api/experiments.csv", {"sort": "alpha_t"}))
    assert small == large == [1] * len(PAGES) + [1]
    # past the last page the window count has no row to ride on: one more, still fixed
    beyond = {"limit": 25, "offset": 5000}
    assert counted(app_client, url, "/api/experiments", beyond) == 2
    assert get(app_client, "/api/experiments", beyond) == {"data": [], "count": 2000}


# CSV, facets, errors --------------------------------------------------------------------------
def test_the_csv_holds_the_same_rows(world: World) -> None:
    for params in (
        {},
        {"method": ["lottery_ticket"], "sort": "alpha_t", "order": "asc"},
        {"q": "100%", "sort": "accuracy"},
    ):
        page = get(world.client, "/api/experiments", {**params, "limit": 10_000})
        response = world.client.get("/api/experiments.csv", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        lines = list(csv.DictReader(io.StringIO(response.text)))
        assert [int(line["id"]) for line in lines] == [r["id"] for r in page["data"]]
        for line, row in zip(lines, page["data"], strict=True):
            assert line["name"] == row["name"]
            for key in ("sparsity", "accuracy", "alpha_t", "flops_nonzero", "latency_ms"):
                want = row[key]
                assert (line[key] == "") if want is None else math.isclose(float(line[key]), want)
            assert (line["seed"] == "") == (row["seed"] is None)


def test_facets_count_what_is_there(world: World) -> None:
    facets = get(world.client, "/api/experiments/facets", {})
    assert facets["count"] == N_ROWS
    methods = {f["value"]: f["count"] for f in facets["methods"]}
    for method, n in methods.items():
        assert n == sum(1 for r in world.rows if (r["pruning_method"] or "original") == method)
    assert sum(f["count"] for f in facets["architectures"]) == N_ROWS
    datasets = {int(f["value"]): f["count"] for f in facets["datasets"]}
    assert sum(datasets.values()) == sum(1 for r in world.rows if r["dataset_id"] is not None)
    assert facets["sparsity_min"] == min(r["sparsity"] for r in world.rows)
    assert facets["sparsity_max"] == max(r["sparsity"] for r in world.rows)


def test_an_empty_workspace(app_client: TestClient) -> None:
    assert get(app_client, "/api/experiments", {}) == {"data": [], "count": 0}
    assert get(app_client, "/api/experiments.csv", {}).splitlines()[0].startswith("id,name,")
    facets = get(app_client, "/api/experiments/facets", {})
    assert facets["count"] == 0 and facets["methods"] == [] and facets["sparsity_min"] is None


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"sort": "nonsense"}, "sort"),
        ({"order": "up"}, "order"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sparsity_min": 1.5}, "sparsity_min"),
        ({"sparsity_min": 0.8, "sparsity_max": 0.2}, None),
        ({"dataset": "abc"}, "dataset"),
        ({"id": 0}, "id"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_bad_queries_are_422_naming_the_field(
    app_client: TestClient, params: dict[str, Any], where: str | None
) -> None:
    for path in ("/api/experiments", "/api/experiments.csv"):
        if path.endswith(".csv") and where in ("limit", "offset"):
            continue  # the CSV has no page
        response = app_client.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text)
        detail = response.json()["detail"]
        if where is not None:
            assert any(where in map(str, issue["loc"]) for issue in detail), detail
        else:
            assert "sparsity_min=0.8 should not exceed sparsity_max=0.2" in str(detail)


def test_a_report_sqlite_cannot_read_still_lists(
    settings: Settings, app_client: TestClient
) -> None:
    """SQLite keeps what Python's json wrote, Infinity included, which its JSON functions
    refuse: that model's figures come from Python's reading, and every other row still lists."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL refuses Infinity in JSON when it is written")
    insert_experiments(settings.database_url, 12, seed=5)
    with session_scope(settings.database_url) as s:
        row = s.scalars(select(ModelRow).where(ModelRow.parent_id.is_not(None))).first()
        assert row is not None
        row.sparsity_report = {
            **(row.sparsity_report or {}),
            "theoretical_speedup": math.inf,
            "flops_dense": 1000,
            "flops_nonzero": 0,
            "latency_ms_pruned": 2.5,
            "device": "cpu",
        }
        broken = row.id
    for sort in ("id", "flops_nonzero", "compression_ratio"):
        page = get(app_client, "/api/experiments", {"limit": 100, "sort": sort})
        assert page["count"] == 12
        (found,) = [r for r in page["data"] if r["id"] == broken]
        assert found["flops_dense"] == 1000 and found["flops_nonzero"] == 0
        assert found["latency_ms"] == 2.5 and found["latency_device"] == "cpu"
