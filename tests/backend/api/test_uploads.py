"""Uploads through the REST API (on SQLite and PostgreSQL; jobs inline): checkpoints and
datasets are streamed, validated by their import job, deduplicated, refused clearly when
hostile or wrong, and an externally pruned upload compares with its uploaded original exactly
as if the pruning had run here."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_bytes
from sqlalchemy import func, select
from torch.nn.utils import prune

from backend.data import create as create_dataset
from backend.db.session import session_scope
from backend.db.tables import ModelRow
from backend.storage import ArtifactStore
from models.checkpoint import load_checkpoint
from models.registry import create as create_model


def ok(resp):
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def upload_model(c, data: bytes, filename="model.safetensors", **fields):
    form = {k: str(v) for k, v in fields.items()}
    return c.post("/api/models/upload", files={"file": (filename, data)}, data=form)


def job_of(c, answer):
    return ok(c.get(f"/api/jobs/{answer['job_id']}"))


def trained(c, epochs=3):
    ds = ok(c.post("/api/datasets", json={"builtin": "digits"}))
    spec = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": epochs}
    job = ok(c.post("/api/jobs", json={"kind": "train", "spec": spec}))
    assert job["status"] == "succeeded", job
    return ds["id"], job["result"]["model_id"]


def stored_model(settings, c, model_id):
    with session_scope(settings.database_url) as s:
        row = s.get(ModelRow, model_id)
        sha = row.checkpoint_sha
    with ArtifactStore(settings.artifact_location).local_path(sha) as path:
        model, _ = load_checkpoint(path)
    return model


def state_dict_bytes(model) -> bytes:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getvalue()


def test_uploaded_checkpoint_is_validated_evaluated_and_deduplicated(client, settings):
    c = client
    ds_id, trained_id = trained(c, epochs=4)
    model = stored_model(settings, c, trained_id).eval()
    data = safetensors_bytes(model.state_dict())
    answer = upload_model(c, data, architecture="digits_cnn", dataset_id=ds_id)
    assert answer.status_code == 201, answer.text
    answer = answer.json()
    assert answer["format"] == "safetensors" and answer["size"] == len(data)
    job = job_of(c, answer)
    assert job["status"] == "succeeded", job
    model_id = job["result"]["model_id"]
    row = ok(c.get(f"/api/models/{model_id}"))
    assert row["architecture"] == "digits_cnn" and row["dataset_id"] == ds_id
    assert row["n_params"] == sum(p.numel() for p in model.parameters())
    # accuracy against an independent evaluation of the same weights
    x, y = create_dataset("digits").split("test")
    with torch.no_grad():
        expected = (model(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
    assert 0.3 < expected and row["accuracy"] == pytest.approx(float(expected), abs=1e-6)
    again = upload_model(c, data, architecture="digits_cnn", dataset_id=ds_id)
    assert again.status_code == 200 and again.json()["deduplicated"] is True
    assert again.json()["model_id"] == model_id and again.json()["job_id"] is None
    assert ok(c.get("/api/models"))["count"] == 2  # the trained one and this upload


class Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_pickle_with_code_is_refused_and_nothing_is_kept(client, settings, tmp_path):
    c = client
    target = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(2)}, "evil": Payload(target)}, buf)
    answer = ok(upload_model(c, buf.getvalue(), "model.pt", architecture="mlp"))
    job = job_of(c, answer)
    assert job["status"] == "failed"
    assert "never unpickles" in job["error"], job["error"]
    assert not target.exists(), "the pickled command ran"
    assert not ArtifactStore(settings.artifact_location).exists(answer["sha256"])
    assert ok(c.get("/api/models"))["count"] == 0
    # the payload is real: plain unpickling would have run it
    pickle.loads(pickle.dumps(Payload(target)))
    assert target.exists()


def test_not_a_checkpoint_is_refused_at_once(client, settings):
    resp = upload_model(client, b"hello, I am a text file\n" * 10, "notes.pt")
    assert resp.status_code == 422
    assert resp.json()["detail"].startswith("Not a checkpoint: the file starts with bytes 68 65")
    store = ArtifactStore(settings.artifact_location)
    assert [p for p in store.root.rglob("*") if p.is_file()] == []  # nothing stored, no temp


def test_upload_ids_past_the_database_range_are_refused_not_500(client, settings):
    data = safetensors_bytes({"w": torch.zeros(2)})
    for field in ("parent_id", "dataset_id"):
        resp = upload_model(client, data, architecture="mlp", **{field: 2**31})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"] == (
            f"{field}: Input should be less than or equal to 2147483647"
        )
    store = ArtifactStore(settings.artifact_location)
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_wrong_shapes_fail_the_job_with_the_mismatched_keys(client):
    c = client
    ds_id, _ = trained(c, epochs=1)
    other = create_model("digits_cnn", num_classes=3)
    answer = ok(upload_model(c, safetensors_bytes(other.state_dict()), architecture="digits_cnn"))
    job = job_of(c, answer)
    assert job["status"] == "failed"
    assert "mismatched" in job["error"] and "(3, " in job["error"], job["error"]


def test_nan_weights_are_refused(client):
    model = create_model("digits_cnn")
    sd = model.state_dict()
    sd[next(iter(sd))][0] = float("nan")
    job = job_of(client, ok(upload_model(client, safetensors_bytes(sd), architecture="digits_cnn")))
    assert job["status"] == "failed" and "NaN" in job["error"]


@pytest.fixture
def small_limit(settings):
    return settings.model_copy(update={"max_upload_bytes": 10_000})


def test_too_large_upload_answers_413_with_the_limit(small_limit):
    from fastapi.testclient import TestClient

    from backend.api.app import create_app
    from backend.jobs.executor import InlineExecutor

    app = create_app(small_limit, executor=InlineExecutor(small_limit), dashboard=False)
    with TestClient(app) as c:
        declared = c.post(
            "/api/models/upload", files={"file": ("big.pt", b"\x80" + b"0" * 3_000_000)}
        )
        assert declared.status_code == 413
        assert "the limit is 10000 bytes" in declared.json()["detail"]

        def chunked():  # no Content-Length: refused while streaming
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
            for _ in range(100):
                yield b"\x80" * 1000
            yield b"\r\n--b--\r\n"

        streamed = c.post(
            "/api/models/upload",
            content=chunked(),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413
        store = ArtifactStore(small_limit.artifact_location)
        assert [p for p in store.root.rglob("*") if p.is_file()] == []


def test_uploaded_dataset_is_registered_with_its_summary(client):
    c = client
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 8, 8), dtype=np.uint8)
    y = np.repeat(np.arange(3), 20)
    buf = io.BytesIO()
    np.savez(buf, X=x, y=y)
    resp = c.post(
        "/api/datasets/upload",
        files={"file": ("three.npz", buf.getvalue())},
        data={"test_fraction": "0.25"},
    )
    answer = ok(resp)
    job = job_of(c, answer)
    assert job["status"] == "succeeded", job
    ds = ok(c.get(f"/api/datasets/{job['result']['dataset_id']}"))
    assert ds["name"] == "three.npz" and ds["num_classes"] == 3
    assert ds["input_shape"] == [1, 8, 8] and ds["n_train"] + ds["n_test"] == 60
    counts = ds["params"]["summary"]["class_counts"]
    assert [a + b for a, b in zip(counts["train"], counts["test"], strict=True)] == [20, 20, 20]
    # a model predicting 10 classes cannot be analysed on it
    _, model_id = trained(c, epochs=1)
    spec = {"model_id": model_id, "dataset_id": ds["id"]}
    refused = c.post("/api/jobs", json={"kind": "analyze", "spec": spec})
    assert refused.status_code == 422 and "has 3 classes but model" in refused.json()["detail"]
    # a different file under the same name is a conflict, not a silent overwrite
    other = io.BytesIO()
    np.savez(other, X=x[:30], y=y[:30])
    clash = c.post("/api/datasets/upload", files={"file": ("three.npz", other.getvalue())})
    assert clash.status_code == 409


def assert_same(a, b, where=""):
    """Nested JSON equal, numbers to 1e-9 relative."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), where
        for k in b:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12, nan_ok=True), where
    else:
        assert a == b, where


def test_externally_pruned_upload_compares_like_pruning_here(client, settings):
    """torch.nn.utils.prune in 'another tool', then upload original + pruned: the comparison
    equals the one of the same pruning run by PruneScope (global magnitude, no fine-tune)."""
    c = client
    ds_id, original_id = trained(c, epochs=3)
    here = ok(
        c.post(
            "/api/jobs",
            json={
                "kind": "prune",
                "spec": {
                    "model_id": original_id,
                    "method": "global_magnitude",
                    "sparsity": 0.5,
                    "finetune": {"epochs": 0},
                },
            },
        )
    )
    assert here["status"] == "succeeded", here
    pruned_here = here["result"]["model_id"]

    original = stored_model(settings, c, original_id)
    external = stored_model(settings, c, original_id)
    params = [
        (m, "weight")
        for m in external.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.5)
    up_a = job_of(
        c,
        ok(
            upload_model(
                c,
                state_dict_bytes(original),
                "original.pt",
                architecture="digits_cnn",
                dataset_id=ds_id,
            )
        ),
    )
    up_b = job_of(
        c,
        ok(
            upload_model(
                c,
                state_dict_bytes(external),
                "pruned.pt",
                architecture="digits_cnn",
                parent_id=up_a["result"]["model_id"],
            )
        ),
    )
    assert up_a["status"] == up_b["status"] == "succeeded", (up_a, up_b)
    assert up_b["result"]["masks"] == "explicit"
    assert up_b["result"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    a_id, b_id = up_a["result"]["model_id"], up_b["result"]["model_id"]
    assert ok(c.get(f"/api/models/{b_id}"))["parent_id"] == a_id

    def compare(a, b):
        body = {"model_a_id": a, "model_b_ids": [b], "embedding": "pca"}
        comp = ok(c.post("/api/comparisons", json=body))
        assert ok(c.get(f"/api/jobs/{comp['job_id']}"))["status"] == "succeeded"
        results = ok(c.get(f"/api/comparisons/{comp['id']}/results"))
        table = ok(
            c.get(
                f"/api/comparisons/{comp['id']}/table", params={"limit": 1000, "format": "records"}
            )
        )
        return results, table

    res_up, table_up = compare(a_id, b_id)
    res_here, table_here = compare(original_id, pruned_here)
    # (PIE is left out: it reads the population of sibling models, which differs by design)
    for key in ("recall_distortion", "flip_counts"):
        assert key in res_here, sorted(res_here)
        assert_same(res_up[key], res_here[key], key)
    assert table_up["count"] == table_here["count"] == 450
    rows_up, rows_here = table_up["data"], table_here["data"]
    cols = [k for k in table_here["column_names"] if k.startswith(("pred", "correct", "flip"))]
    assert len(cols) >= 2, table_here["column_names"]
    for col in cols:
        assert [r[col] for r in rows_up] == [r[col] for r in rows_here], col
    with session_scope(settings.database_url) as s:
        assert s.scalar(select(func.count()).select_from(ModelRow)) == 4


def dry_import(c, **fields):
    body = {"kind": "import_model", "spec": {k: str(v) for k, v in fields.items()}}
    return c.post("/api/jobs", params={"dry_run": "true"}, json=body)


def test_a_parent_without_architecture_gives_its_architecture_and_arguments(client, settings):
    """Issue 18, bug 6: an upload naming its original ("Pruned from") needs no architecture:
    the server takes the parent's and its arguments (the user's arguments over them), the dry
    run shows them filled, and the model registered is the parent's architecture, loads and
    is analysed like any other."""
    c = client
    ds_id, parent_id = trained(c, epochs=2)
    parent = ok(c.get(f"/api/models/{parent_id}"))
    assert parent["architecture"] == "digits_cnn" and parent["arch_kwargs"]

    resp = dry_import(c, parent_id=parent_id)
    assert resp.status_code == 200, resp.text
    assert resp.json()["spec"] == {
        "architecture": "digits_cnn",
        "arch_kwargs": parent["arch_kwargs"],
        "name": None,
        "parent_id": parent_id,
        "dataset_id": None,
    }
    resp = dry_import(c, parent_id=parent_id, arch_kwargs='{"in_channels": 3}')
    assert resp.status_code == 200, resp.text
    assert resp.json()["spec"]["arch_kwargs"] == {**parent["arch_kwargs"], "in_channels": 3}
    # an unknown parent is still refused at its field, nothing filled
    resp = dry_import(c, parent_id=999)
    assert resp.status_code == 422
    assert [(i["loc"], i["type"]) for i in resp.json()["detail"]] == [
        (["spec", "parent_id"], "not_found")
    ]

    # a real upload: pruned outside, no architecture named
    external = stored_model(settings, c, parent_id)
    params = [
        (m, "weight")
        for m in external.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
    ]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.6)
    data = state_dict_bytes(external)
    answer = ok(upload_model(c, data, "pruned.pt", parent_id=parent_id))
    job = job_of(c, answer)
    assert job["status"] == "succeeded", job
    assert job["spec"]["architecture"] == "digits_cnn"  # what the server filled in
    model_id = job["result"]["model_id"]
    row = ok(c.get(f"/api/models/{model_id}"))
    assert row["architecture"] == parent["architecture"]
    assert row["arch_kwargs"] == parent["arch_kwargs"]
    assert row["parent_id"] == parent_id and row["dataset_id"] == ds_id
    assert row["sparsity"] == pytest.approx(0.6, abs=1e-3)
    # it loads, and predicts what the pruned network predicts
    loaded = stored_model(settings, c, model_id).eval()
    x = torch.from_numpy(create_dataset("digits").split("test")[0][:16])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), external.eval()(x))
    # it is analysed like any model
    analysis = ok(c.post("/api/jobs", json={"kind": "analyze", "spec": {"model_id": model_id}}))
    assert analysis["status"] == "succeeded", analysis
    # the same file again: the model already registered
    again = upload_model(c, data, "pruned.pt", parent_id=parent_id)
    assert again.status_code == 200 and again.json()["model_id"] == model_id


def test_an_architecture_other_than_the_parents_is_said_clearly(client):
    """Naming an architecture that is not the parent's is not refused up front (it never
    was), but the failed import says what the parent is and how to take its architecture."""
    c = client
    _, parent_id = trained(c, epochs=1)
    weights = safetensors_bytes(create_model("digits_cnn").state_dict())
    resp = dry_import(c, parent_id=parent_id, architecture="mlp")
    assert resp.status_code == 200 and resp.json()["spec"]["architecture"] == "mlp"
    job = job_of(c, ok(upload_model(c, weights, architecture="mlp", parent_id=parent_id)))
    assert job["status"] == "failed", job
    assert f"parent model {parent_id} is a digits_cnn" in job["error"], job["error"]
    assert "leave the architecture empty" in job["error"], job["error"]
    # none named, and the file is not the parent's architecture: the message says whose it was
    mlp = safetensors_bytes(create_model("mlp", input_shape=[1, 8, 8], num_classes=10).state_dict())
    job = job_of(c, ok(upload_model(c, mlp, "mlp.safetensors", parent_id=parent_id)))
    assert job["status"] == "failed", job
    assert "do not fit digits_cnn" in job["error"], job["error"]
    assert f"are those of the parent model {parent_id}" in job["error"], job["error"]


def test_an_onnx_file_naming_a_parent_keeps_its_own_architecture(client, settings):
    """An ONNX file carries its own architecture: the parent's is not filled in for it (the
    import reads the graph, then says the architectures differ, as before)."""
    c = client
    _, parent_id = trained(c, epochs=1)
    model = stored_model(settings, c, parent_id).eval()
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (torch.zeros(2, 1, 8, 8),),
        buf,
        dynamo=False,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
    )
    answer = ok(upload_model(c, buf.getvalue(), "pruned.onnx", parent_id=parent_id))
    assert answer["format"] == "onnx"
    job = job_of(c, answer)
    assert job["spec"]["architecture"] is None and job["spec"]["arch_kwargs"] == {}
    assert job["status"] == "failed", job
    assert f"parent model {parent_id} is a digits_cnn, the upload a onnx" in job["error"]
    assert "leave the architecture empty" not in job["error"]
