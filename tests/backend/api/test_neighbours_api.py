"""Neighbourhood change through the compare job and the API (SCIENCE.md sect. 7): the table's
``nbr_jaccard`` column and ``GET /api/comparisons/{id}/neighbours/{index}`` against a brute
force over the stored feature files (read straight from the artifact store)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import AnalysisRow
from backend.jobs.executor import InlineExecutor
from backend.storage import ArtifactStore
from tests.conftest import free_port

K = 7


def ok(resp: Any) -> Any:
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


@dataclass
class World:
    client: TestClient
    settings: Settings
    cid: int
    a: int
    b: int
    other_b: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("nbr") / "data", port=free_port(), warm_embeddings=False
    )
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as c:
        ds = ok(c.post("/api/datasets", json={"builtin": "digits"}))
        spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
        a = ok(c.post("/api/jobs", json={"kind": "train", "spec": spec}))["result"]["model_id"]
        bs = []
        for sparsity in (0.8, 0.5):
            prune = {"model_id": a, "sparsity": sparsity, "finetune": None}
            job = ok(c.post("/api/jobs", json={"kind": "prune", "spec": prune}))
            bs.append(job["result"]["model_id"])
        body = {"model_a_id": a, "model_b_ids": [bs[0]], "embedding": "pca", "neighbours_k": K}
        cid = ok(c.post("/api/comparisons", json=body))["id"]
        yield World(c, settings, cid, a, bs[0], bs[1])


def stored_features(settings: Settings, model_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's stored penultimate features and its per-sample table's dataset indices."""
    import pandas as pd

    store = ArtifactStore(settings.artifact_location)
    with session_scope(settings.database_url) as s:
        an = s.scalars(select(AnalysisRow).where(AnalysisRow.model_id == model_id)).one()
        features_sha, samples_sha = an.features_sha, an.samples_sha
    assert features_sha is not None
    features = np.load(io.BytesIO(store.get_bytes(features_sha)), allow_pickle=False)
    index = pd.read_parquet(io.BytesIO(store.get_bytes(samples_sha)))["index"].to_numpy()
    return features, index


def brute(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours from the full float64 cosine distance matrix, sorted by (distance, index),
    self excluded; and for each row whether the k-th and (k+1)-th distances are apart (no
    near tie that float32 rounding could order either way)."""
    x = features.astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    unit = np.divide(x, norms[:, None], out=np.zeros_like(x), where=norms[:, None] > 0)
    d = 1.0 - unit @ unit.T
    np.fill_diagonal(d, np.inf)
    n = len(d)
    order = np.lexsort((np.broadcast_to(np.arange(n), d.shape), np.round(d, 9)), axis=1)
    nn = order[:, :k]
    sorted_d = np.take_along_axis(d, order[:, : k + 1], axis=1)
    return nn, np.diff(sorted_d, axis=1)[:, -1] > 1e-5


def test_table_column_equals_brute_force_from_the_stored_features(world: World) -> None:
    c = world.client
    params = {"b": world.b, "columns": ["index", "nbr_jaccard"], "limit": 10000}
    table = ok(c.get(f"/api/comparisons/{world.cid}/table", params=params))["columns"]
    fa, index_a = stored_features(world.settings, world.a)
    fb, index_b = stored_features(world.settings, world.b)
    assert np.array_equal(index_a, table["index"]) and np.array_equal(index_b, table["index"])
    nn_a, apart_a = brute(fa, K)
    nn_b, apart_b = brute(fb, K)
    want = np.array(
        [len(set(p) & set(q)) / len(set(p) | set(q)) for p, q in zip(nn_a, nn_b, strict=True)]
    )
    got = np.asarray(table["nbr_jaccard"], dtype=np.float64)
    clear = apart_a & apart_b
    assert clear.mean() > 0.9  # the check below covers nearly every sample
    np.testing.assert_array_equal(got[clear], want[clear])
    assert got.min() < 1.0  # pruning moved some neighbourhood: the test can fail
    summary = ok(c.get(f"/api/comparisons/{world.cid}/results", params={"b": world.b}))
    about = summary["neighbours"]
    assert about["k"] == K and about["metric"] == "cosine"
    assert about["mean"] == pytest.approx(got.mean()) and about["median"] == pytest.approx(
        np.median(got)
    )
    assert summary["inputs"]["neighbours"]["k"] == K


def test_neighbours_endpoint_matches_brute_force_and_the_table(world: World) -> None:
    c = world.client
    fa, index = stored_features(world.settings, world.a)
    fb, _ = stored_features(world.settings, world.b)
    params = {"b": world.b, "columns": ["index", "nbr_jaccard"], "limit": 10000}
    table = ok(c.get(f"/api/comparisons/{world.cid}/table", params=params))["columns"]
    for k in (K, 3):
        nn_a, apart_a = brute(fa, k)
        nn_b, apart_b = brute(fb, k)
        rows = [r for r in range(0, len(index), 37) if apart_a[r] and apart_b[r]][:6]
        assert rows
        for r in rows:
            query = {"b": world.b} if k == K else {"b": world.b, "k": k}
            got = ok(c.get(f"/api/comparisons/{world.cid}/neighbours/{index[r]}", params=query))
            assert got["index"] == int(index[r]) and got["k"] == k and got["metric"] == "cosine"
            assert got["a"] == [int(index[j]) for j in nn_a[r]]
            assert got["b"] == [int(index[j]) for j in nn_b[r]]
            assert got["shared"] == [j for j in got["a"] if j in set(got["b"])]
            union = len(set(got["a"]) | set(got["b"]))
            assert got["jaccard"] == pytest.approx(len(got["shared"]) / union)
            if k == K:
                assert got["jaccard"] == pytest.approx(table["nbr_jaccard"][r])


def test_neighbours_endpoint_refuses_clearly(world: World) -> None:
    c = world.client
    base = f"/api/comparisons/{world.cid}/neighbours"
    missing = c.get(f"{base}/99999")
    assert missing.status_code == 404 and missing.json()["detail"] == "Sample not found"
    outside = c.get(f"{base}/0", params={"b": world.other_b})
    assert outside.status_code == 422
    assert outside.json()["detail"] == (
        f"model {world.other_b} is not one of this comparison's pruned models"
    )
    for k in (0, 201):
        assert c.get(f"{base}/0", params={"k": k}).status_code == 422
    assert c.get("/api/comparisons/9999/neighbours/0").status_code == 404


def test_neighbours_k_is_checked_by_the_dry_run_and_kept_by_added_models(world: World) -> None:
    c = world.client
    body = {"model_a_id": world.a, "model_b_ids": [world.b], "embedding": "pca"}
    dry = ok(c.post("/api/comparisons", params={"dry_run": True}, json=body))
    assert dry["neighbours_k"] == 20
    bad = c.post("/api/comparisons", params={"dry_run": True}, json={**body, "neighbours_k": 0})
    assert bad.status_code == 422
    assert ["body", "neighbours_k"] == bad.json()["detail"][0]["loc"]
    # the compare job of added models uses the comparison's k (as it does its embedding)
    from backend.db.tables import ComparisonRow
    from backend.jobs import submit

    with session_scope(world.settings.database_url) as s:
        comparison = s.get(ComparisonRow, world.cid)
        plan = submit.validate_added_models(s, comparison, [world.other_b])
    assert plan.spec.neighbours_k == K


def test_a_share_link_reads_the_neighbours(world: World) -> None:
    share = ok(world.client.post(f"/api/comparisons/{world.cid}/shares", json={"label": "n"}))
    on_settings = world.settings.model_copy(update={"auth": "on"})
    app = create_app(on_settings, executor=InlineExecutor(on_settings), dashboard=False)
    with TestClient(app) as on:
        headers = {"Authorization": f"Bearer {share['token']}"}
        got = on.get(f"/api/comparisons/{world.cid}/neighbours/0", headers=headers)
        assert got.status_code == 200, got.text
        assert len(got.json()["a"]) == K
        assert on.get(f"/api/comparisons/{world.cid}/neighbours/0").status_code in (401, 403)
