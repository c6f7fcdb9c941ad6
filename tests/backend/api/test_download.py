"""GET /api/models/{id}/download (issue 16, sect. 5): the pruned model back out, as a file
a user loads in their own code, streamed with its name, size and sha256, built once per
(checkpoint, format), and opened to share links only for their comparison's models."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors import safe_open
from safetensors.torch import load as safetensors_load

from backend.api import security
from backend.api.app import create_app
from backend.api.routes import models as models_route
from backend.config import Settings
from backend.db.session import session_factory
from backend.db.tables import ModelRow
from backend.jobs.executor import InlineExecutor
from backend.storage import ArtifactCorrupted, ArtifactStore
from models.checkpoint import load_checkpoint, read_checkpoint_meta
from models.export import EXTENSIONS
from models.registry import create
from models.structured import rebuild_structure
from tests.conftest import free_port


@dataclass
class World:
    off: TestClient  # authentication off (the embedded default)
    on: TestClient  # the same data, authentication on
    store: ArtifactStore
    settings: Settings
    a: int  # the original
    b: int  # pruned (global magnitude), in the comparison with a
    other: int  # pruned (structured, l1_filter), in no comparison
    comparison: int
    share: str
    read: str
    x: torch.Tensor  # a few test inputs of the dataset


def _ok(resp):  # type: ignore[no-untyped-def]
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def _job(c: TestClient, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    job = _ok(c.post("/api/jobs", json={"kind": kind, "spec": spec}))
    job = _ok(c.get(f"/api/jobs/{job['id']}"))
    assert job["status"] == "succeeded", job
    return job["result"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("download") / "data"
    common = {"data_dir": data, "port": free_port(), "warm_embeddings": False}
    off_settings, on_settings = Settings(**common, auth="off"), Settings(**common, auth="on")
    app_off = create_app(off_settings, executor=InlineExecutor(off_settings), dashboard=False)
    app_on = create_app(on_settings, executor=InlineExecutor(on_settings), dashboard=False)
    with TestClient(app_off) as off, TestClient(app_on) as on:
        ds = _ok(off.post("/api/datasets", json={"builtin": "digits"}))
        train = {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": 1}
        a = _job(off, "train", train)["model_id"]
        b = _job(off, "prune", {"model_id": a, "sparsity": 0.6, "finetune": {"epochs": 1}})
        other = _job(
            off,
            "prune",
            {"model_id": a, "method": "l1_filter", "sparsity": 0.5, "finetune": {"epochs": 1}},
        )
        comp = _ok(
            off.post(
                "/api/comparisons",
                json={"model_a_id": a, "model_b_ids": [b["model_id"]], "embedding": "pca"},
            )
        )
        share = _ok(off.post(f"/api/comparisons/{comp['id']}/shares", json={}))
        with session_factory(on_settings.database_url)() as session:
            _row, read = security.create_token(session, "reader", read_only=True)
        x = torch.rand(5, *ds["input_shape"])
        store = ArtifactStore(on_settings.artifact_location)
        yield World(
            off, on, store, on_settings, a, b["model_id"], other["model_id"], comp["id"],
            share["token"], read, x,
        )  # fmt: skip


def _row(world: World, model_id: int) -> ModelRow:
    with session_factory(world.settings.database_url)() as session:
        row = session.get(ModelRow, model_id)
        assert row is not None
        session.expunge(row)
        return row


def _prunescope_model(world: World, model_id: int) -> torch.nn.Module:
    with world.store.local_path(_row(world, model_id).checkpoint_sha) as path:
        return load_checkpoint(path)[0]


def _download(client: TestClient, model_id: int, fmt: str | None, **headers: str) -> Any:
    query = "" if fmt is None else f"?format={fmt}"
    return client.get(f"/api/models/{model_id}/download{query}", headers=headers)


def _checked(resp: Any, model_id: int, name: str, fmt: str) -> bytes:
    """The body, once the headers say what the contract says."""
    assert resp.status_code == 200, resp.text
    body = resp.content
    assert resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["content-length"] == str(len(body))
    assert resp.headers["x-content-sha256"] == hashlib.sha256(body).hexdigest()
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    assert resp.headers["content-disposition"] == (
        f'attachment; filename="{slug}-{model_id}.{EXTENSIONS[fmt]}"'
    )
    return body


def _metadata(data: bytes) -> dict[str, str]:
    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        f.write(data)
        f.flush()
        with safe_open(f.name, framework="pt") as opened:
            return dict(opened.metadata())


@pytest.mark.parametrize("fmt", ["safetensors", "pt", None])
def test_plain_weights_load_strictly_into_the_architecture(world: World, fmt: str | None) -> None:
    row = _row(world, world.b)
    body = _checked(_download(world.off, world.b, fmt), world.b, row.name, fmt or "safetensors")
    if fmt == "pt":
        state = torch.load(io.BytesIO(body), weights_only=True)
    else:  # safetensors, the default
        state = safetensors_load(body)
        meta = _metadata(body)
        assert meta["architecture"] == "digits_cnn"
        assert json.loads(meta["kwargs"]) == row.arch_kwargs
    assert not [k for k in state if k.endswith(("_mask", "_orig"))]
    mine = create("digits_cnn", **row.arch_kwargs).eval()
    mine.load_state_dict(state, strict=True)
    theirs = _prunescope_model(world, world.b).eval()
    with torch.no_grad():
        assert torch.equal(mine(world.x), theirs(world.x))
    nonzero = sum(int(v.count_nonzero()) for k, v in state.items() if k.endswith("weight"))
    total = sum(v.numel() for k, v in state.items() if k.endswith("weight"))
    assert nonzero < 0.5 * total  # pruned at 60% globally: the zeros came along


def test_structured_model_comes_as_its_smaller_network_with_kept_channels(world: World) -> None:
    row = _row(world, world.other)
    body = _checked(_download(world.on, world.other, "safetensors", **_bearer(world.read)),
                    world.other, row.name, "safetensors")  # fmt: skip
    meta = _metadata(body)
    kept = json.loads(meta["kept_channels"])
    assert kept and all(isinstance(v, list) for v in kept.values())
    rebuilt = rebuild_structure(
        create("digits_cnn", **row.arch_kwargs), json.loads(meta["structure"])
    )
    rebuilt.eval().load_state_dict(safetensors_load(body), strict=True)
    for name, channels in kept.items():
        assert rebuilt.get_submodule(name).weight.shape[0] == len(channels)
    with torch.no_grad():
        assert torch.equal(rebuilt(world.x), _prunescope_model(world, world.other).eval()(world.x))


def test_onnx_runs_in_onnxruntime_with_the_same_logits(world: World) -> None:
    ort = pytest.importorskip("onnxruntime")
    row = _row(world, world.b)
    body = _checked(_download(world.off, world.b, "onnx"), world.b, row.name, "onnx")
    session = ort.InferenceSession(body, providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"input": world.x.numpy()})
    with torch.no_grad():
        want = _prunescope_model(world, world.b).eval()(world.x)
    torch.testing.assert_close(torch.from_numpy(logits), want, atol=1e-4, rtol=1e-4)


def test_prunescope_checkpoint_keeps_masks_and_records_lineage(world: World) -> None:
    row = _row(world, world.b)
    body = _checked(_download(world.off, world.b, "prunescope"), world.b, row.name, "prunescope")
    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        f.write(body)
        f.flush()
        lineage = read_checkpoint_meta(f.name)["extra"]["lineage"]
        model, _meta = load_checkpoint(f.name)
    assert lineage["model_id"] == world.b and lineage["parent_id"] == world.a
    assert lineage["pruning_method"] == "global_magnitude"
    assert lineage["sparsity"] == pytest.approx(row.sparsity)
    assert any(k.endswith("_mask") for k in model.state_dict())
    with torch.no_grad():
        assert torch.equal(model(world.x), _prunescope_model(world, world.b)(world.x))
    # the tensors are the stored ones, byte for byte: only the header was rewritten
    stored = world.store.get_bytes(row.checkpoint_sha)
    assert body[-1000:] == stored[-1000:] and len(body) != len(stored)


def test_a_conversion_is_built_once_and_then_served_from_the_store(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _download(world.off, world.a, "pt")
    assert first.status_code == 200
    index = Path(str(world.store.root), models_route.DERIVED_DIR)
    checkpoint_sha = _row(world, world.a).checkpoint_sha
    entry = json.loads((index / checkpoint_sha[:2] / checkpoint_sha / "pt-v1.json").read_text())
    assert entry["sha"] == first.headers["x-content-sha256"]
    assert world.store.exists(entry["sha"])

    def refuse(*_args: Any) -> Any:
        raise AssertionError("converted again")

    monkeypatch.setattr(models_route, "converted", refuse)
    again = _download(world.off, world.a, "pt")
    assert again.status_code == 200 and again.content == first.content


def test_a_corrupted_file_is_caught_the_first_time_a_process_serves_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _download(world.off, world.a, "safetensors")
    assert good.status_code == 200
    path = world.store.path(good.headers["x-content-sha256"])
    original = path.read_bytes()
    monkeypatch.setattr(models_route, "_served_intact", set())  # as in a fresh process
    try:
        path.write_bytes(original[:-4] + b"\x00\x01\x02\x03")
        with pytest.raises(ArtifactCorrupted):
            _download(world.off, world.a, "safetensors")
    finally:
        path.write_bytes(original)
    assert _download(world.off, world.a, "safetensors").content == original


NO_TORCH_SCRIPT = """
import sys
sys.modules["torch"] = None  # any import of torch in this process raises ImportError
from fastapi.testclient import TestClient
from backend.api.app import create_app
from backend.config import Settings

class Idle:
    def start(self): pass
    def submit(self, job_id, queue=None): pass
    def shutdown(self): pass
    def health(self): return "ok"

settings = Settings(data_dir=sys.argv[1], auth="off", warm_embeddings=False)
with TestClient(create_app(settings, executor=Idle(), dashboard=False)) as c:
    route = f"/api/models/{sys.argv[2]}/download?format="
    print(c.get(route + "prunescope").status_code, c.get(route + "pt").status_code)
"""


def test_the_prunescope_format_is_served_without_torch(world: World) -> None:
    """The API needs torch only to convert (ARCHITECTURE: no torch at request time for
    reads): PruneScope's own file is its stored checkpoint with a rewritten header, served
    by a process in which torch cannot be imported (where a conversion answers 409)."""
    import subprocess
    import sys

    b = _row(world, world.b)
    # a checkpoint of its own (the same tensors, another header): nothing of it is cached
    sha, _size = models_route.checkpoint_with_lineage(world.store, b.checkpoint_sha, {"new": 1})
    with session_factory(world.settings.database_url)() as session:
        row = ModelRow(
            name="fresh",
            architecture=b.architecture,
            arch_kwargs=b.arch_kwargs,
            n_params=b.n_params,
            n_nonzero=b.n_nonzero,
            checkpoint_sha=sha,
        )
        session.add(row)
        session.commit()
        fresh = row.id
    out = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, str(world.settings.data_dir), str(fresh)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["200", "409"], out.stderr


def test_unknown_format_unknown_model_and_failed_export(world: World) -> None:
    bad = _download(world.off, world.a, "h5")
    assert bad.status_code == 422
    assert "'safetensors', 'pt', 'onnx' or 'prunescope'" in bad.text
    missing = _download(world.off, 987654, "safetensors")
    assert missing.status_code == 404 and missing.json()["detail"] == "Model not found"
    # a model whose stored file is not a checkpoint: a clear 409, never a 500
    junk = world.store.put_bytes(b"not a checkpoint at all" * 10)
    with session_factory(world.settings.database_url)() as session:
        row = ModelRow(
            name="Broken",
            architecture="digits_cnn",
            arch_kwargs={},
            n_params=1,
            n_nonzero=1,
            checkpoint_sha=junk,
        )
        session.add(row)
        session.commit()
        broken = row.id
    for fmt in ("safetensors", "pt", "onnx", "prunescope"):
        resp = _download(world.off, broken, fmt)
        assert resp.status_code == 409, (fmt, resp.text)
        assert resp.json()["detail"].startswith(f"Model {broken} could not be exported as {fmt}: ")


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_share_link_downloads_its_comparisons_models_only(world: World) -> None:
    share = _bearer(world.share)
    for model_id in (world.a, world.b):
        resp = _download(world.on, model_id, "safetensors", **share)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-content-sha256"] == hashlib.sha256(resp.content).hexdigest()
    refused = _download(world.on, world.other, "safetensors", **share)
    assert refused.status_code == 403
    assert f"opens comparison {world.comparison} read-only" in refused.json()["detail"]
    # the same, in a browser holding the link's cookie (how the dashboard's links are used)
    browser = TestClient(world.on.app)
    assert browser.get(f"/s/{world.share}", follow_redirects=False).status_code == 303
    assert _download(browser, world.b, "pt").status_code == 200
    assert _download(browser, world.other, "pt").status_code == 403
    # a read token may download any model; nobody without a credential
    assert _download(world.on, world.other, "pt", **_bearer(world.read)).status_code == 200
    assert _download(world.on, world.a, "pt").status_code == 401


def test_extensions_match_the_export_module() -> None:
    assert models_route.EXTENSIONS == EXTENSIONS
    assert models_route.DOWNLOAD_FORMATS == tuple(EXTENSIONS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("digits_cnn global_magnitude 60%", "digits-cnn-global-magnitude-60"),
        ("Réseau / pruned", "reseau-pruned"),
        ("../../etc/passwd", "etc-passwd"),
        ('a"b', "a-b"),
        ("日本", "model"),
        ("x" * 100, "x" * 60),
    ],
)
def test_file_names_are_safe(name: str, expected: str) -> None:
    assert models_route.slug(name) == expected
