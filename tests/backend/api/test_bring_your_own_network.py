"""Issue 16 end to end through the REST API, on architectures nobody here wrote.

For each of timm's ResNet-18, torchvision's MobileNetV2 and timm's ViT-Tiny (patch 4 on 32x32):
a checkpoint built outside PruneScope (for one of them pruned there with torch.nn.utils.prune)
is uploaded -> pruned here -> analysed -> compared -> downloaded -> loaded into a freshly built
timm/torchvision model in "the user's own code" -> gives the predictions the analysis stored.
Hostile or mismatched submissions are refused at submission with a 422 that says why.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import timm
import torch
import torchvision
from safetensors.torch import load as load_safetensors
from torch.nn.utils import prune

from backend.config import Settings
from backend.data import ArrayDataset
from backend.data.stored import float_inputs
from backend.db.session import session_scope
from backend.db.tables import DatasetRow
from backend.storage import ArtifactStore
from tests.conftest import free_port

N_CLASSES = 4


@pytest.fixture
def settings(tmp_path):
    """SQLite only: these are heavy, and PostgreSQL is exercised by every other API test."""
    return Settings(data_dir=tmp_path / "data", port=free_port(), warm_embeddings=False)


N_IMAGES = 120  # 25% test: 30 test samples


def ok(resp):
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def job_of(c, job_id):
    job = ok(c.get(f"/api/jobs/{job_id}"))
    assert job["status"] == "succeeded", job
    return job


def image_dataset(c, name="colours.npz"):
    """32x32 RGB images whose class decides the mean colour: learnable, made here."""
    rng = np.random.default_rng(0)
    y = np.arange(N_IMAGES) % N_CLASSES
    x = rng.normal(0.0, 40.0, size=(N_IMAGES, 3, 32, 32))
    for k in range(N_CLASSES):
        x[y == k, k % 3] += 60.0 * (1 + k // 3)
    x = np.clip(x + 100.0, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    np.savez(buf, X=x, y=y)
    answer = ok(
        c.post(
            "/api/datasets/upload",
            files={"file": (name, buf.getvalue())},
            data={"test_fraction": "0.25"},
        )
    )
    return job_of(c, answer["job_id"])["result"]["dataset_id"]


def user_model(name: str) -> torch.nn.Module:
    """The network as the researcher builds it in their own code."""
    lib, arch = name.split("/")
    if lib == "timm":
        extra = {"img_size": 32, "patch_size": 4} if arch.startswith("vit") else {}
        return timm.create_model(arch, pretrained=False, num_classes=N_CLASSES, **extra)
    return torchvision.models.get_model(arch, weights=None, num_classes=N_CLASSES)


def upload(c, model: torch.nn.Module, architecture: str, dataset_id: int, **fields) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    form = {"architecture": architecture, "dataset_id": str(dataset_id)}
    form.update({k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()})
    answer = ok(
        c.post("/api/models/upload", files={"file": ("mine.pt", buf.getvalue())}, data=form)
    )
    return job_of(c, answer["job_id"])["result"]["model_id"]


def prune_job(c, model_id: int, method: str, sparsity: float, **spec) -> int:
    body = {"model_id": model_id, "method": method, "sparsity": sparsity}
    body.update({"finetune": {"epochs": 1, "batch_size": 32}, **spec})
    job = ok(c.post("/api/jobs", json={"kind": "prune", "spec": body}))
    return job_of(c, job["id"])["result"]["model_id"]


def safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read as the format defines it."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n])["__metadata__"]


def stored_columns(c, comparison_id: int) -> dict[str, np.ndarray]:
    resp = c.get(
        f"/api/comparisons/{comparison_id}/table", params={"format": "columns", "limit": 10000}
    )
    assert resp.status_code == 200, resp.text
    return {k: np.array(v) for k, v in resp.json()["columns"].items()}


def _test_split(settings, dataset_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The test inputs exactly as the jobs read them (float32, (N, C, H, W))."""
    with session_scope(settings.database_url) as s:
        sha = s.get(DatasetRow, dataset_id).artifact_sha
    data = ArtifactStore(settings.artifact_location).get_bytes(sha)
    x, y = ArrayDataset.from_npz_bytes(data).split("test")
    return float_inputs(x), y  # a uint8 upload stays uint8; jobs read it as x / 255


def test_dataset_shapes(client):
    ds = ok(client.get(f"/api/datasets/{image_dataset(client)}"))
    assert ds["input_shape"] == [3, 32, 32] and ds["num_classes"] == N_CLASSES


CASES = {
    # name: (prune method here, pruned outside first?, arch kwargs the user gives)
    "timm/resnet18": ("l1_filter", False, {}),
    "torchvision/mobilenet_v2": ("global_magnitude", True, {}),
    "timm/vit_tiny_patch16_224": ("global_magnitude", False, {"patch_size": 4}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_upload_prune_analyze_compare_download_roundtrip(client, settings, name):
    c = client
    method, pruned_outside, kwargs = CASES[name]
    ds_id = image_dataset(c)
    torch.manual_seed(0)
    mine = user_model(name).eval()
    original_id = upload(c, mine, name, ds_id, **({"arch_kwargs": kwargs} if kwargs else {}))
    original = ok(c.get(f"/api/models/{original_id}"))
    assert original["architecture"] == name
    # the model proved it accepts the dataset's samples when it was registered
    assert original["input_shape"] == [3, 32, 32] and original["num_classes"] == N_CLASSES
    assert original["n_params"] == sum(p.numel() for p in mine.parameters())

    parent_id = original_id
    if pruned_outside:
        outside = user_model(name)
        outside.load_state_dict(mine.state_dict())
        layers = [
            (m, "weight")
            for m in outside.modules()
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
        ]
        prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=0.3)
        parent_id = upload(c, outside, name, ds_id, parent_id=original_id)
        assert ok(c.get(f"/api/models/{parent_id}"))["sparsity"] == pytest.approx(0.3, abs=0.01)

    pruned_id = prune_job(c, parent_id, method, 0.5)
    pruned = ok(c.get(f"/api/models/{pruned_id}"))
    assert pruned["architecture"] == name and pruned["input_shape"] == [3, 32, 32]
    if method == "l1_filter":
        assert pruned["n_params"] < 0.5 * original["n_params"]  # channels really removed
    else:
        assert pruned["sparsity"] >= 0.5 - 1e-3

    comp = ok(
        c.post(
            "/api/comparisons",
            json={"model_a_id": original_id, "model_b_ids": [pruned_id], "embedding": "pca"},
        )
    )
    job_of(c, comp["job_id"])
    results = ok(c.get(f"/api/comparisons/{comp['id']}/results"))
    assert "recall_distortion" in results

    # the pruned model back out, into a freshly built model in the user's own code
    resp = c.get(f"/api/models/{pruned_id}/download", params={"format": "safetensors"})
    assert resp.status_code == 200, resp.text
    tensors = load_safetensors(resp.content)
    assert not any(k.endswith(("_mask", "_orig")) for k in tensors)
    theirs = user_model(name)
    if method == "l1_filter":
        # a smaller network: the download's metadata says which channels were kept, and the
        # structure that rebuilds it from the original architecture
        from models.structured import rebuild_structure

        meta = safetensors_metadata(resp.content)
        kept = json.loads(meta["kept_channels"])
        assert kept["conv1"] and len(kept["conv1"]) < 64
        rebuild_structure(theirs, json.loads(meta["structure"]))
    theirs.load_state_dict(tensors, strict=True)
    theirs.eval()

    stored = stored_columns(c, comp["id"])
    x, _ = _test_split(settings, ds_id)
    with torch.no_grad():
        preds = theirs(torch.from_numpy(np.ascontiguousarray(x))).argmax(1).numpy()
    assert np.array_equal(preds, stored["pred_b"][np.argsort(stored["index"])])


def train_spec(ds_id: int, architecture: str, **kwargs) -> dict:
    return {
        "kind": "train",
        "spec": {"dataset_id": ds_id, "architecture": architecture, "arch_kwargs": kwargs},
    }


def test_bad_names_and_downloading_kwargs_are_refused_at_submission(client):
    c = client
    ds_id = image_dataset(c)
    resp = c.post("/api/jobs", json=train_spec(ds_id, "timm/resnet_18"))
    assert resp.status_code == 422
    assert "timm has no model 'resnet_18'" in resp.json()["detail"]
    assert "timm/resnet18" in resp.json()["detail"]  # the close match
    for kwargs in ({"pretrained": True}, {"checkpoint_path": "/etc/passwd"}):
        resp = c.post("/api/jobs", json=train_spec(ds_id, "timm/resnet18", **kwargs))
        assert resp.status_code == 422 and "never downloads weights" in resp.json()["detail"]
    resp = c.post("/api/jobs", json=train_spec(ds_id, "torchvision/resnet18", weights="DEFAULT"))
    assert resp.status_code == 422 and "never downloads weights" in resp.json()["detail"]
    assert ok(c.get("/api/jobs"))["count"] == 1  # only the dataset import: nothing was queued


def test_shape_mismatches_are_a_422_naming_both_shapes(client):
    c = client
    images = image_dataset(c)
    digits = ok(c.post("/api/datasets", json={"builtin": "digits"}))["id"]
    # torchvision's ResNet takes 3 channels only: digits are (1, 8, 8)
    resp = c.post("/api/jobs", json=train_spec(digits, "torchvision/resnet18"))
    assert resp.status_code == 422, resp.text
    assert "does not accept inputs of shape (1, 8, 8)" in resp.json()["detail"]
    # a model proven on 32x32 RGB images cannot be analysed on digits
    model_id = upload(c, user_model("timm/resnet18"), "timm/resnet18", images)
    resp = c.post(
        "/api/jobs", json={"kind": "analyze", "spec": {"model_id": model_id, "dataset_id": digits}}
    )
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "accepts inputs of shape (3, 32, 32)" in detail and "shape (1, 8, 8)" in detail
    resp = c.post(
        "/api/comparisons",
        json={"model_a_id": model_id, "model_b_ids": [model_id + 100], "dataset_id": digits},
    )
    assert resp.status_code == 422


@pytest.mark.slow
def test_regions_and_filter_pruning_of_a_vit_are_refused_at_submission_with_a_sentence(client):
    c = client
    ds_id = image_dataset(c)
    vit = upload(
        c,
        user_model("timm/vit_tiny_patch16_224"),
        "timm/vit_tiny_patch16_224",
        ds_id,
        arch_kwargs={"patch_size": 4},
    )
    body = {"model_id": vit, "method": "global_magnitude", "sparsity": 0.5}
    body["finetune"] = {"epochs": 0}
    pruned = job_of(c, ok(c.post("/api/jobs", json={"kind": "prune", "spec": body}))["id"])
    comp = ok(
        c.post(
            "/api/comparisons",
            json={
                "model_a_id": vit,
                "model_b_ids": [pruned["result"]["model_id"]],
                "embedding": "pca",
            },
        )
    )
    resp = c.post("/api/jobs", json={"kind": "regions", "spec": {"comparison_id": comp["id"]}})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "not piecewise linear" in detail and "GELU" in detail and "timm/vit" in detail
    # filter pruning cannot cut attention heads: refused before a job is queued, with the reason
    body = {"model_id": vit, "method": "l1_filter", "sparsity": 0.5}
    resp = c.post("/api/jobs", json={"kind": "prune", "spec": body})
    assert resp.status_code == 422
    assert "attention" in resp.json()["detail"] and "global_magnitude" in resp.json()["detail"]


def test_include_and_exclude_patterns_choose_the_pruned_layers(client):
    c = client
    digits = ok(c.post("/api/datasets", json={"builtin": "digits"}))["id"]
    spec = {"dataset_id": digits, "architecture": "digits_cnn", "epochs": 1}
    original = job_of(c, ok(c.post("/api/jobs", json={"kind": "train", "spec": spec}))["id"])
    model_id = original["result"]["model_id"]
    body = {
        "model_id": model_id,
        "method": "layer_magnitude",
        "sparsity": 0.5,
        "finetune": {"epochs": 0},
        "include": ["features.*"],
        "exclude": ["features.2", "features.9"],
    }
    pruned = job_of(c, ok(c.post("/api/jobs", json={"kind": "prune", "spec": body}))["id"])
    report = ok(c.get(f"/api/models/{pruned['result']['model_id']}/report"))
    by_layer = {layer["name"]: layer["sparsity"] for layer in report["layers"]}
    # layer-wise magnitude: each chosen layer at 50%, every other layer untouched
    assert by_layer["features.0"] == pytest.approx(0.5, abs=0.01)
    assert by_layer["features.5"] == pytest.approx(0.5, abs=0.01)
    for untouched in ("features.2", "features.9", "classifier"):
        assert by_layer[untouched] == 0.0, untouched
    body["include"] = [""]
    resp = c.post("/api/jobs", json={"kind": "prune", "spec": body})
    assert resp.status_code == 422 and "spec.include" in resp.json()["detail"]
