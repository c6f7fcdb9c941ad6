"""ONNX through the REST API (issue 16, sect. 3): a ResNet-18 exported with torch.onnx.export
is uploaded like any checkpoint, registered as the architecture "onnx", predicts what the
original predicts, is pruned by a prune job, and downloads as its own graph with the pruned
weights; a zip carries external data; a hostile file fails its import job and is deleted."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from sqlalchemy import select

from backend.db.session import session_scope
from backend.db.tables import ModelRow
from backend.storage import ArtifactStore
from models import onnx_graph
from models.checkpoint import load_checkpoint

TOL = 1e-4


def ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def job_of(c, answer):  # type: ignore[no-untyped-def]
    return ok(c.get(f"/api/jobs/{answer['job_id']}"))


def trained_like_resnet18() -> torch.nn.Module:
    """torchvision's ResNet-18 with BatchNorm statistics as after training (distinct biases)."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.2, 0.2)
    return model.eval()


def onnx_bytes(model: torch.nn.Module, sample: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (sample,),
        buf,
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return buf.getvalue()


def stored_model(settings, model_id: int) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    store = ArtifactStore(settings.artifact_location)
    onnx_graph.set_graph_loader(store.get_bytes)
    with session_scope(settings.database_url) as s:
        sha = s.get(ModelRow, model_id).checkpoint_sha
    with store.local_path(sha) as path:
        model, _ = load_checkpoint(path)
    return model.eval()


def run_onnx(data: bytes, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


# the database plays no part in the conversion: one engine keeps the file fast
@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_an_onnx_resnet18_is_registered_pruned_and_downloaded_as_onnx(client, settings):
    c = client
    rng = np.random.default_rng(0)
    x_train = rng.random((10, 3, 32, 32), dtype=np.float32)
    x_test = rng.random((6, 3, 32, 32), dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, x_train=x_train, y_train=np.arange(10), x_test=x_test, y_test=np.arange(6))
    ds = job_of(c, ok(c.post("/api/datasets/upload", files={"file": ("ten.npz", buf.getvalue())})))
    assert ds["status"] == "succeeded", ds
    ds_id = ds["result"]["dataset_id"]

    original = trained_like_resnet18()
    data = onnx_bytes(original, torch.randn(2, 3, 32, 32))
    answer = ok(
        c.post(
            "/api/models/upload",
            files={"file": ("resnet18.onnx", data)},
            data={"dataset_id": str(ds_id)},
        )
    )
    assert answer["format"] == "onnx"
    job = job_of(c, answer)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert (result["architecture"], result["format"]) == ("onnx", "onnx")
    assert [layer["kind"] for layer in result["layers"]].count("Conv2d") == 20
    model_id = result["model_id"]

    # the registered model predicts what the original predicts
    x = torch.from_numpy(x_test)
    with torch.no_grad():
        want = original(x)
        got = stored_model(settings, model_id)(x)
    torch.testing.assert_close(got, want, atol=TOL, rtol=TOL)
    row = ok(c.get(f"/api/models/{model_id}"))
    expected_acc = float((want.argmax(1) == torch.arange(6)).float().mean())
    assert row["accuracy"] == expected_acc and row["architecture"] == "onnx"

    # pruning works on the converted graph (layer1 only: a global sort of 11M weights is slow)
    spec = {
        "model_id": model_id,
        "sparsity": 0.5,
        "finetune": {"epochs": 0},
        "include": ["layer1*"],
    }
    submitted = ok(c.post("/api/jobs", json={"kind": "prune", "spec": spec}))
    pruned_job = ok(c.get(f"/api/jobs/{submitted['id']}"))
    assert pruned_job["status"] == "succeeded", pruned_job
    pruned_id = pruned_job["result"]["model_id"]
    pruned = stored_model(settings, pruned_id)
    conv_zeros = sum(
        int((m.weight == 0).sum()) for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)
    )
    assert conv_zeros > 0

    # ... and it downloads as the uploaded graph with the pruned weights
    resp = c.get(f"/api/models/{pruned_id}/download", params={"format": "onnx"})
    assert resp.status_code == 200, resp.text
    uploaded, downloaded = onnx.load_from_string(data), onnx.load_from_string(resp.content)
    assert [(n.op_type, list(n.input)) for n in downloaded.graph.node] == [
        (n.op_type, list(n.input)) for n in uploaded.graph.node
    ]
    assert [(t.name, list(t.dims)) for t in downloaded.graph.initializer] == [
        (t.name, list(t.dims)) for t in uploaded.graph.initializer
    ]
    weights = [numpy_helper.to_array(t) for t in downloaded.graph.initializer]
    assert sum(int((w == 0).sum()) for w in weights if w.ndim == 4) == conv_zeros
    with torch.no_grad():
        want_pruned = pruned(x).numpy()
    np.testing.assert_allclose(run_onnx(resp.content, x), want_pruned, atol=TOL, rtol=TOL)


def tiny_onnx_zip() -> bytes:
    """A small net exported with its weights as external data, zipped with them."""
    import tempfile
    from pathlib import Path

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(16, 3))
    proto = onnx.load_from_string(onnx_bytes(net.eval(), torch.randn(1, 3, 4, 4)))
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save_model(
            proto,
            str(Path(tmp) / "net.onnx"),
            save_as_external_data=True,
            location="net.onnx.data",
            size_threshold=0,
        )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in ("net.onnx", "net.onnx.data"):
                zf.write(Path(tmp) / name, name)
    return out.getvalue()


def test_a_zip_of_an_onnx_model_and_its_external_data_is_imported(client):
    answer = ok(client.post("/api/models/upload", files={"file": ("net.zip", tiny_onnx_zip())}))
    assert answer["format"] == "onnx zip"
    job = job_of(client, answer)
    assert job["status"] == "succeeded", job
    assert job["result"]["architecture"] == "onnx"
    assert any("net.onnx.data" in w for w in job["result"]["warnings"])


def test_an_onnx_file_naming_a_server_path_fails_and_is_deleted(client, settings):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    proto = onnx.load_from_string(onnx_bytes(net.eval(), torch.randn(1, 3, 2, 2)))
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    answer = ok(
        client.post("/api/models/upload", files={"file": ("evil.onnx", proto.SerializeToString())})
    )
    job = job_of(client, answer)
    assert job["status"] == "failed"
    assert "external file '../../etc/passwd'" in job["error"] and "'evil.onnx'" in job["error"]
    assert not ArtifactStore(settings.artifact_location).exists(answer["sha256"])
    with session_scope(settings.database_url) as s:
        assert s.scalars(select(ModelRow)).all() == []
