"""The fourier job through the REST API (Yin et al., NeurIPS 2019; SCIENCE.md sect. 7): heat
maps of A and every B on digits (8 x 8 x 1), one frequency checked against an independent
recomputation, read back by a share link's viewer; non-image datasets are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.data.batches import model_input
from backend.data.stored import load_from_store
from backend.db.session import session_scope
from backend.db.tables import ComparisonMemberRow, ComparisonRow, DatasetRow, ModelRow
from backend.jobs.executor import InlineExecutor
from backend.storage import ArtifactStore
from models.checkpoint import load_checkpoint

N = 60  # test samples


def ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def finished(c: TestClient, kind: str, spec: dict) -> dict:  # type: ignore[type-arg]
    job = ok(c.post("/api/jobs", json={"kind": kind, "spec": spec}))
    assert job["status"] == "succeeded", job["error"]
    return job


def add_comparison(settings, dataset_id: int, a: int, bs: list[int]) -> int:  # type: ignore[no-untyped-def]
    """A comparison row of its own (the fourier job needs no analyses)."""
    with session_scope(settings.database_url) as s:
        comp = ComparisonRow(name=f"fourier {a}", dataset_id=dataset_id, model_a_id=a)
        for pos, b in enumerate(bs):
            comp.members.append(ComparisonMemberRow(model_id=b, position=pos))
        s.add(comp)
        s.flush()
        return int(comp.id)


def stored(settings, store: ArtifactStore, table, row_id: int, column: str):  # type: ignore[no-untyped-def]
    with session_scope(settings.database_url) as s:
        return getattr(s.get(table, row_id), column)


def yin_basis(h: int, w: int, i: int, j: int) -> np.ndarray:
    """U_ij as Yin et al. build it, with numpy alone: the inverse FFT of (1 + 1j)/2 at centred
    (i, j) and (1 - 1j)/2 at its conjugate-symmetric partner, scaled to unit norm."""
    freq = np.zeros((h, w), dtype=np.complex128)
    si = (h - i) % h if h % 2 == 0 else h - 1 - i
    sj = (w - j) % w if w % 2 == 0 else w - 1 - j
    if (si, sj) == (i, j):
        freq[i, j] = 1.0
    else:
        first, second = sorted([(i, j), (si, sj)])
        freq[first], freq[second] = 0.5 + 0.5j, 0.5 - 0.5j
    image = np.fft.ifft2(np.fft.ifftshift(freq)) * math.sqrt(h * w)
    assert np.abs(image.imag).max() < 1e-12
    return image.real


def test_fourier_job_stores_every_model_and_serves_it(client, settings):
    torch.set_num_threads(1)
    ds = ok(client.post("/api/datasets", json={"builtin": "digits"}))
    train = finished(
        client, "train", {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 2}
    )
    a = train["result"]["model_id"]
    prune = finished(client, "prune", {"model_id": a, "sparsity": 0.8, "finetune": {"epochs": 0}})
    b = prune["result"]["model_id"]
    cid = add_comparison(settings, ds["id"], a, [b])

    resp = client.get(f"/api/comparisons/{cid}/fourier")
    assert resp.status_code == 404
    assert resp.json()["detail"].startswith(
        "no Fourier sensitivity yet: submit a job of kind 'fourier'"
    )
    assert client.get("/api/comparisons/999/fourier").status_code == 404
    dry = ok(
        client.post(
            "/api/jobs?dry_run=true", json={"kind": "fourier", "spec": {"comparison_id": cid}}
        )
    )
    assert dry["spec"] == {"comparison_id": cid, "n_samples": 200, "v": None, "seed": 0}

    # a dataset that is not images is refused at submission
    blobs = ok(client.post("/api/datasets", json={"builtin": "blobs"}))
    flat = add_comparison(settings, blobs["id"], a, [b])
    refused = client.post("/api/jobs", json={"kind": "fourier", "spec": {"comparison_id": flat}})
    assert refused.status_code == 422
    assert "Fourier sensitivity needs images of shape (C, H, W)" in refused.json()["detail"]

    v, seed = 2.0, 5
    job = finished(client, "fourier", {"comparison_id": cid, "n_samples": N, "v": v, "seed": seed})
    body = ok(client.get(f"/api/comparisons/{cid}/fourier"))
    assert body["job_id"] == job["id"] and body["comparison_id"] == cid
    assert (body["n_samples"], body["v"], body["v_default"], body["seed"]) == (N, v, False, seed)
    assert (body["channels"], body["height"], body["width"]) == (1, 8, 8)
    assert body["frequencies"] == 34 and body["clipped"] is True
    assert [(m["model_id"], m["role"]) for m in body["models"]] == [(a, "a"), (b, "b")]

    store = ArtifactStore(settings.artifact_location)
    sha = stored(settings, store, DatasetRow, ds["id"], "artifact_sha")
    x_test, y_test = load_from_store(store, sha).split("test")
    x = model_input(torch.as_tensor(np.asarray(x_test[:N]))).double()
    y = torch.as_tensor(np.asarray(y_test[:N])).long()
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    i, j = 2, 5  # one frequency, recomputed independently; its partner holds the same value
    u = torch.from_numpy(yin_basis(8, 8, i, j))
    signs = np.random.default_rng([seed, 8, 8, i * 8 + j]).integers(0, 2, size=(N, 1)) * 2 - 1
    r = torch.from_numpy(signs.astype(np.float64))[:, :, None, None]
    perturbed = (x + v * r * u).clamp(0.0, 1.0).float()
    for entry in body["models"]:
        error = np.asarray(entry["error"])
        assert error.shape == (8, 8) and np.all((error >= 0) & (error <= 1))
        partner = error[(8 - np.arange(8)) % 8][:, (8 - np.arange(8)) % 8]
        np.testing.assert_array_equal(error, partner)  # point-symmetric about (4, 4)
        sha = stored(settings, store, ModelRow, entry["model_id"], "checkpoint_sha")
        with store.local_path(sha) as path:
            model, _ = load_checkpoint(path)
        with torch.no_grad():
            model.eval()
            want = float((model(perturbed).argmax(1) != y).double().mean())
            clean = float((model(x.float()).argmax(1) != y).double().mean())
        assert entry["error"][i][j] == pytest.approx(want, abs=1e-12)
        assert entry["error"][8 - i][8 - j] == entry["error"][i][j]
        assert entry["clean_error"] == pytest.approx(clean, abs=1e-12)
    assert np.asarray(body["models"][0]["error"]).max() > body["models"][0]["clean_error"]

    # the default v: 4 sqrt(64 / 3072); the latest job is the one served
    again = finished(client, "fourier", {"comparison_id": cid, "n_samples": 8})
    body = ok(client.get(f"/api/comparisons/{cid}/fourier"))
    assert body["job_id"] == again["id"] and body["v_default"] is True
    assert body["v"] == pytest.approx(4 * math.sqrt(64 / 3072))

    # a share link's viewer reads it too, on a server that asks for credentials
    share = ok(client.post(f"/api/comparisons/{cid}/shares", json={"label": "fourier"}))
    on = settings.model_copy(update={"auth": "on"})
    with TestClient(create_app(on, executor=InlineExecutor(on), dashboard=False)) as viewer:
        assert viewer.get(f"/api/comparisons/{cid}/fourier").status_code == 401
        seen = viewer.get(
            f"/api/comparisons/{cid}/fourier", headers={"Authorization": f"Bearer {share['token']}"}
        )
        assert seen.status_code == 200 and seen.json() == body
