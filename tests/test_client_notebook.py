"""The notebook client (``from prunescope import Client``): the whole notebook path against the
app in-process (upload a timm network, prune, compare, tables, download back as an nn.Module
with the server's predictions), the download checks against fake routes, the packaging that
makes ``prunescope`` importable, and the same path over HTTP against ``prunescope serve`` with
authentication on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient
from prunescope import (
    TABLE_KINDS,
    ApiError,
    ChecksumError,
    Client,
    ClientError,
    JobFailedError,
)
from torch import nn

from backend.api.app import create_app
from backend.config import Settings
from backend.data.stored import float_inputs
from backend.jobs.executor import InlineExecutor
from frontend.client import RestClient, attachment_filename, get_analysis_table_columns

CLASSES = 4


def tiny_images(path: Path, n: int = 96, side: int = 16, seed: int = 0) -> Path:
    """An npz of n uint8 (side, side, 3) images in CLASSES classes told apart by brightness."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = rng.integers(0, 60, size=(n, side, side, 3)) + (y * 60)[:, None, None, None]
    names = np.array([f"c{i}" for i in range(CLASSES)])
    np.savez(path, X=x.astype(np.uint8), y=y, class_names=names)
    return path


def stored_checkpoint(settings: Settings, model_id: int) -> nn.Module:
    """The model as the server stores it, read from its artifact store directly."""
    from backend.db.session import session_scope
    from backend.db.tables import ModelRow
    from backend.storage import ArtifactStore
    from models.checkpoint import load_checkpoint

    with session_scope(settings.database_url) as s:
        sha = s.get(ModelRow, model_id).checkpoint_sha
    with ArtifactStore(settings.artifacts).local_path(sha) as path:
        model, _ = load_checkpoint(path)
    return model


def server_test_split(settings: Settings, dataset_id: int) -> torch.Tensor:
    """The test split the server analyses, from its artifact store."""
    from backend.data import ArrayDataset
    from backend.db.session import session_scope
    from backend.db.tables import DatasetRow
    from backend.storage import ArtifactStore

    with session_scope(settings.database_url) as s:
        sha = s.get(DatasetRow, dataset_id).artifact_sha
    arrays = ArrayDataset.from_npz_bytes(ArtifactStore(settings.artifacts).get_bytes(sha))
    return torch.from_numpy(float_inputs(arrays.x_test))


class InProcess(httpx.BaseTransport):
    """Requests of an httpx client answered by the app in-process, through its TestClient
    (which may speak another httpx: starlette's own ``httpx2``)."""

    def __init__(self, tc: TestClient) -> None:
        self.tc = tc

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.tc.request(
            request.method,
            str(request.url),
            headers=list(request.headers.multi_items()),
            content=request.read(),  # a streamed upload's chunks, all of them
        )
        return httpx.Response(
            answer.status_code, headers=list(answer.headers.multi_items()), content=answer.content
        )


@pytest.fixture
def ps(settings: Settings) -> Iterator[Client]:
    """A Client of the app in-process (jobs run inline at submission)."""
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as tc, Client("http://testserver", token="", transport=InProcess(tc)) as c:
        yield c


# ------------------------------------------------------------------------ the notebook path
@pytest.mark.slow
def test_upload_a_timm_network_prune_compare_tables_and_download(ps, settings, tmp_path, capsys):
    import timm

    torch.manual_seed(0)
    torch.set_num_threads(1)
    ds = ps.upload_dataset(tiny_images(tmp_path / "tiny.npz"), test_fraction=0.25)
    assert (ds["num_classes"], ds["input_shape"], ds["n_test"]) == (CLASSES, [3, 16, 16], 24)

    net = timm.create_model("resnet18", pretrained=False, num_classes=CLASSES).eval()
    original = ps.upload_model(
        net, architecture="timm/resnet18", arch_kwargs={"num_classes": CLASSES}, dataset=ds
    )
    assert original["architecture"] == "timm/resnet18"
    assert original["n_params"] == sum(p.numel() for p in net.parameters())
    assert original["dataset_id"] == ds["id"] and original["accuracy"] is not None
    assert original["name"] == "timm_resnet18.safetensors"  # the temporary file's name

    pruned = ps.prune(original, "global_magnitude", 0.5, finetune=0, analyze=True, name="half")
    assert (pruned["parent_id"], pruned["name"]) == (original["id"], "half")
    assert pruned["sparsity"] == pytest.approx(0.5, abs=0.01)

    comparison = ps.compare(original["id"], pruned, name="nb", embedding="pca")
    assert (comparison["model_a_id"], comparison["model_b_ids"]) == (original["id"], [pruned["id"]])
    assert comparison["name"] == "nb" and comparison["dataset_id"] == ds["id"]

    # tables: one row per thing, the documented leading columns, timestamps as datetimes
    models = ps.table("models")
    assert list(models.index) == [original["id"], pruned["id"]] and models.index.name == "id"
    assert list(models.columns[: len(TABLE_KINDS["models"]) - 1]) == list(TABLE_KINDS["models"][1:])
    assert models.loc[pruned["id"], "sparsity"] == pytest.approx(pruned["sparsity"])
    assert str(models["created_at"].dtype).startswith("datetime64")
    jobs = ps.table("jobs")
    assert set(jobs["status"]) == {"succeeded"}
    assert {"import_dataset", "import_model", "prune", "compare"} <= set(jobs["kind"])
    assert list(ps.table("comparisons")["model_b_ids"]) == [[pruned["id"]]]
    assert ps.table("datasets").loc[ds["id"], "n_train"] == 72
    with pytest.raises(ValueError, match="kind='runs' should be one of models, comparisons"):
        ps.table("runs")  # type: ignore[arg-type]

    # download: the nn.Module the server holds, pruned as it is (masks and all)
    x = server_test_split(settings, ds["id"])
    back = ps.download(pruned["id"])
    served_model = stored_checkpoint(settings, pruned["id"])
    with torch.no_grad():
        assert torch.equal(back(x), served_model(x))
        masks = {k: v for k, v in back.state_dict().items() if k.endswith("weight_mask")}
        assert masks and all(torch.equal(v, served_model.state_dict()[k]) for k, v in masks.items())
        # the prune job analysed it: the downloaded module predicts what the analysis recorded
        (analysis,) = ps.list_analyses(model_id=pruned["id"], dataset_id=ds["id"])
        table = get_analysis_table_columns(ps, analysis["id"], columns=["index", "pred"])
        assert back(x).argmax(1)[table["index"]].tolist() == table["pred"]
        # the original comes back with the weights that were uploaded
        assert torch.equal(ps.download(original["id"])(x), net(x))
    # the progress bars went to stderr
    err = capsys.readouterr().err
    for label in ("upload tiny.npz", "validate timm_resnet18", "prune global_magnitude 50%"):
        assert label in err


def test_a_module_pruned_here_uploads_with_its_masks(ps, tmp_path):
    from torch.nn.utils import prune

    from models.registry import create

    torch.manual_seed(1)
    ds = ps.upload_dataset(tiny_images(tmp_path / "small.npz", n=48, side=8))
    kwargs = {"input_shape": [3, 8, 8], "num_classes": CLASSES, "hidden": [16]}
    net = create("mlp", **kwargs).eval()
    original = ps.upload_model(net, "mlp", kwargs, dataset=ds["id"], name="mlp")
    layer = net.features[1]
    prune.l1_unstructured(layer, "weight", amount=0.75)
    child = ps.upload_model(net, "mlp", kwargs, parent=original, name="mlp, 75% of one layer")
    assert child["parent_id"] == original["id"] and child["dataset_id"] == ds["id"]
    assert child["pruning_method"] == "external"
    back = ps.download(child)
    assert torch.equal(back.features[1].weight_mask, layer.weight_mask)
    x = torch.rand(5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    # the identical file again is the same model, no new job
    jobs = len(ps.list_jobs())
    again = ps.upload_model(net, "mlp", kwargs, parent=original, name="mlp, 75% of one layer")
    assert again["id"] == child["id"]
    assert len(ps.list_jobs()) == jobs


def test_refusals_are_api_errors_and_failed_jobs_raise(ps, tmp_path):
    ds = ps.upload_dataset(tiny_images(tmp_path / "t.npz", n=48, side=8))
    kwargs = {"input_shape": [3, 8, 8], "num_classes": CLASSES, "hidden": [8]}
    net = nn.Linear(3, 2)  # not an mlp: the import job fails, naming the keys
    with pytest.raises(JobFailedError, match=r"\(import_model\) failed: CheckpointError:") as exc:
        ps.upload_model(net, "mlp", kwargs, dataset=ds)
    assert exc.value.job["status"] == "failed"
    with pytest.raises(ApiError) as refused:
        ps.prune(999, "global_magnitude", 0.5)
    assert refused.value.status in (404, 422) and "999" in refused.value.detail
    with pytest.raises(ValueError, match="architecture= is needed"):
        ps.upload_model(net)
    with pytest.raises(TypeError, match="should be an id"):
        ps.prune("7", "global_magnitude", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ClientError, match="no such file"):
        ps.upload_model(tmp_path / "missing.safetensors", "mlp")
    with pytest.raises(ValueError, match="download_file"):
        ps.download(1, format="onnx")


def test_empty_tables_have_their_columns(ps):
    for kind in ("models", "comparisons", "jobs", "datasets"):
        frame = ps.table(kind)
        assert isinstance(frame, pd.DataFrame) and len(frame) == 0
        assert frame.index.name == "id"
        assert list(frame.columns) == list(TABLE_KINDS[kind][1:])


# ---------------------------------------------------------------- downloads, fake routes
Route = Callable[[httpx.Request], httpx.Response]


def fake_server(body: bytes, **headers: str) -> Route:
    """GET /api/models/{id}/download as the contract says: the file with its sha256."""
    sent = {
        "Content-Disposition": 'attachment; filename="my-net-3.prunescope.safetensors"',
        "X-Content-SHA256": hashlib.sha256(body).hexdigest(),
        **headers,
    }

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/models/3/download":
            return httpx.Response(404, json={"detail": "Model not found"})
        if request.url.params.get("format") not in ("safetensors", "pt", "onnx", "prunescope"):
            return httpx.Response(422, json={"detail": "format: bad"})
        return httpx.Response(200, content=body, headers={k: v for k, v in sent.items() if v})

    return route


def fake_client(route: Route) -> RestClient:
    return RestClient("http://fake", transport=httpx.MockTransport(route))


def test_download_writes_the_file_checked_into_the_folder_or_path(tmp_path):
    body = b"weights" * 1000
    api = fake_client(fake_server(body))
    got = api.download_model(3, tmp_path, format="prunescope")
    assert got.path == tmp_path / "my-net-3.prunescope.safetensors"
    assert got.path.read_bytes() == body and got.size == len(body)
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    other = api.download_model(3, tmp_path / "mine.bin", format="pt").path
    assert other == tmp_path / "mine.bin" and other.read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mine.bin",
        "my-net-3.prunescope.safetensors",
    ]  # no temporary files left
    with pytest.raises(ApiError) as exc:
        api.download_model(4, tmp_path)
    assert (exc.value.status, exc.value.detail) == (404, "Model not found")
    with pytest.raises(ValueError, match="format='zip' should be one of safetensors, pt"):
        api.download_model(3, tmp_path, format="zip")
    with pytest.raises(ClientError, match="no such folder"):
        api.download_model(3, tmp_path / "nope" / "x.pt")


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ({"X-Content-SHA256": "0" * 64}, ChecksumError, "is corrupt: its sha256 is"),
        ({"X-Content-SHA256": ""}, ClientError, "sent no X-Content-SHA256 header"),
    ],
)
def test_a_download_that_does_not_check_out_leaves_nothing(tmp_path, headers, error, message):
    api = fake_client(fake_server(b"x" * 5000, **headers))
    with pytest.raises(error, match=message):
        api.download_model(3, tmp_path / "out.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_short_body_is_refused(tmp_path):
    def route(request: httpx.Request) -> httpx.Response:
        body = b"y" * 100
        return httpx.Response(
            200,
            stream=httpx.ByteStream(body),
            headers={"Content-Length": "150", "X-Content-SHA256": hashlib.sha256(body).hexdigest()},
        )

    with pytest.raises(ChecksumError, match="stopped after 100 of 150 bytes"):
        fake_client(route).download_model(3, tmp_path / "out.pt")
    assert list(tmp_path.iterdir()) == []


def test_download_rebuilds_the_module_from_a_prunescope_checkpoint(tmp_path):
    from torch.nn.utils import prune

    from models.checkpoint import save_checkpoint
    from models.registry import create

    net = create("digits_cnn", num_classes=10)
    prune.l1_unstructured(net.classifier, "weight", amount=0.5)
    save_checkpoint(net, "digits_cnn", {"num_classes": 10}, tmp_path / "ck.safetensors")
    route = fake_server((tmp_path / "ck.safetensors").read_bytes())
    c = Client("http://fake", token="t", progress=False, transport=httpx.MockTransport(route))
    back = c.download(3)
    assert torch.equal(back.classifier.weight_mask, net.classifier.weight_mask)
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(back(x), net.eval()(x))
    assert c.download_file(3, tmp_path, format="prunescope").name == (
        "my-net-3.prunescope.safetensors"
    )


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="net-1.safetensors"', "net-1.safetensors"),
        ("attachment; filename=net-1.pt", "net-1.pt"),
        ("attachment; filename*=UTF-8''r%C3%A9seau-2.onnx", "réseau-2.onnx"),
        ("attachment; filename=\"x.pt\"; filename*=UTF-8''y.pt", "y.pt"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="..\\\\evil.pt"', "evil.pt"),
        ('attachment; filename=".."', "fallback.bin"),
        ("attachment", "fallback.bin"),
        (None, "fallback.bin"),
    ],
)
def test_attachment_filename_is_a_bare_name(header, name):
    assert attachment_filename(header, "fallback.bin") == name


def test_the_token_is_sent_and_a_401_is_an_api_error():
    seen: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("authorization") != "Bearer psk_x":
            return httpx.Response(401, json={"detail": "Not authenticated"})
        return httpx.Response(200, json={"data": [], "count": 0})

    assert (
        Client("http://h:1/api", token="psk_x", transport=httpx.MockTransport(route))
        .table("models")
        .empty
    )
    assert str(seen[0].url) == "http://h:1/api/models"
    with pytest.raises(ApiError, match="401: Not authenticated"):
        Client("http://h:1", token="", transport=httpx.MockTransport(route)).list_models()
    assert "psk_x" not in repr(Client("http://h:1", token="psk_x"))


def test_url_and_token_default_to_the_settings(monkeypatch):
    seen: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "count": 0})

    monkeypatch.setenv("PRUNESCOPE_PORT", "8123")
    monkeypatch.setenv("PRUNESCOPE_TOKEN", "psk_from_env")
    Client(transport=httpx.MockTransport(route)).list_models()
    assert str(seen[0].url) == "http://127.0.0.1:8123/api/models"
    assert seen[0].headers["authorization"] == "Bearer psk_from_env"
    Client(token="", transport=httpx.MockTransport(route)).list_models()
    assert "authorization" not in seen[1].headers  # an explicit "" sends none


# ------------------------------------------------------------------------------ packaging
def test_pyproject_installs_the_client_as_prunescope():
    """``prunescope`` is frontend/prunescope in the tree, and only that once installed."""
    from setuptools.config.pyprojecttoml import read_configuration

    root = Path(__file__).resolve().parents[1]
    config = read_configuration(root / "pyproject.toml", expand=True)["tool"]["setuptools"]
    packages = set(config["packages"])
    assert "prunescope" in packages and not any(
        p.startswith("frontend.prunescope") for p in packages
    )
    assert Path(config["package-dir"]["prunescope"]) == Path("frontend/prunescope")
    # every package of the tree is still found
    for top in ("backend", "frontend", "models"):
        for init in (root / top).rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(root).parts)
            if not name.startswith("frontend.prunescope"):
                assert name in packages, name


def test_prunescope_is_the_notebook_client():
    import prunescope

    assert prunescope.Client is Client and issubclass(Client, RestClient)
    assert Path(prunescope.__file__).parent.name == "prunescope"


# ----------------------------------------------------------- over HTTP, authentication on
@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`prunescope serve` with authentication on over an empty data folder, and a write token."""
    from backend.api import security
    from backend.db.session import migrate, session_scope
    from tests.conftest import served

    data_dir = tmp_path_factory.mktemp("secured") / "data"
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir)
    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        _row, secret = security.create_token(session, "notebook")
    with served(data_dir, auth="on") as url:
        yield url, secret


@pytest.mark.slow
def test_the_notebook_path_over_http_with_a_token(secured, tmp_path):
    url, token = secured
    with pytest.raises(ApiError) as exc:
        Client(url, token="").list_models()
    assert exc.value.status == 401
    ps = Client(url, token=token, progress=False)
    ds = ps.upload_dataset(tiny_images(tmp_path / "http.npz", n=64, side=8))
    kwargs = {"input_shape": [3, 8, 8], "num_classes": CLASSES, "hidden": [16]}
    original = ps.train(ds, "mlp", arch_kwargs=kwargs, epochs=2, name="mlp over http")
    pruned = ps.prune(original["id"], "global_magnitude", 0.6, finetune={"epochs": 1})
    comparison = ps.compare(original, [pruned], embedding="pca")
    assert comparison["model_b_ids"] == [pruned["id"]]
    assert list(ps.table("models").index) == [original["id"], pruned["id"]]
    back = ps.download(pruned)
    x = torch.rand(6, 3, 8, 8)
    file = ps.download_file(pruned, tmp_path, format="prunescope")
    from models.checkpoint import load_checkpoint

    again, meta = load_checkpoint(file)
    assert meta["architecture"] == "mlp" and meta["extra"]["lineage"]["model_id"] == pruned["id"]
    with torch.no_grad():
        assert torch.equal(back(x), again(x))
    assert ps.get_model(pruned["id"])["sparsity"] == pytest.approx(0.6, abs=0.02)
