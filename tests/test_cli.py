"""The command line: --help texts, the streamed multipart uploads, and the whole demo and the
uploads through a real server and workers."""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.cli import (
    CliError,
    MultipartFile,
    build_parser,
    class_balance_table,
    layer_table,
    main,
    parse_arch_kwargs,
)
from backend.config import Settings
from backend.jobs.executor import InlineExecutor

COMMANDS = [
    "serve",
    "worker",
    "demo",
    "train",
    "prune",
    "sweep",
    "methods",
    "architectures",
    "jobs",
    "upload",
    "download",
    "gc",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: prunescope {command}" in out
    assert len(out.splitlines()) > 4
    # argparse %-formats argument help but prints a description as written: "50%%" stays "%%"
    assert "%%" not in out, "a doubled percent sign in --help"


def test_top_level_help_lists_commands():
    text = build_parser().format_help()
    for command in COMMANDS:
        assert command in text


def test_methods_lists_every_registered_method(capsys):
    from backend.pruning import list_methods, method_info

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in list_methods():
        assert f"{name} " in out
        assert method_info(name)["schedule"] in out


def test_architectures_searches_every_library(capsys):
    from models.registry import search

    assert main(["architectures", "resnet", "18", "--limit", "200"]) == 0
    out = capsys.readouterr().out.splitlines()
    names, total = search("resnet 18", limit=200)
    assert [line.split()[0] for line in out[:-1]] == names
    assert "timm/resnet18" in names and "torchvision/resnet18" in names
    assert out[-1] == f"(1-{total} of {total})"
    assert main(["architectures", "--limit", "2", "--offset", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:-1]] == search("", limit=2, offset=1)[0]
    assert "--offset 3 for more" in out[-1]


def test_prune_sends_layer_patterns_and_train_sends_arch_kwargs(monkeypatch):
    sent = []

    class FakeApi:
        def get(self, path, **params):
            return {"data": [{"name": "digits", "id": 1}]}

        def post(self, path, body):
            sent.append(body)
            return {"id": 9}

    monkeypatch.setattr("backend.cli._api", lambda args: FakeApi())
    done = {"id": 9, "result": {"model_id": 2, "accuracy": 0.5}}
    monkeypatch.setattr("backend.cli.follow_jobs", lambda api, ids, labels: [done])
    assert (
        main(
            [
                "prune",
                "--model",
                "1",
                "--sparsity",
                "0.5",
                "--include",
                "layer4.*",
                "--include",
                "fc",
                "--exclude",
                "*.downsample.*",
            ]
        )
        == 0
    )
    assert sent[-1]["spec"]["include"] == ["layer4.*", "fc"]
    assert sent[-1]["spec"]["exclude"] == ["*.downsample.*"]
    assert main(["train", "--arch", "timm/vit_tiny_patch16_224", "--arch-kw", "patch_size=4"]) == 0
    assert sent[-1]["spec"]["architecture"] == "timm/vit_tiny_patch16_224"
    assert sent[-1]["spec"]["arch_kwargs"] == {"patch_size": 4}


def test_bad_json_params_are_named(capsys):
    assert (
        main(
            [
                "prune",
                "--api",
                "http://127.0.0.1:9/api",
                "--model",
                "1",
                "--sparsity",
                "0.5",
                "--params",
                "{eps: 1}",
            ]
        )
        == 1
    )
    assert "--params is not valid JSON" in capsys.readouterr().err


def test_client_commands_say_when_no_server_runs(capsys):
    assert main(["jobs", "--api", "http://127.0.0.1:9/api"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the PruneScope server at http://127.0.0.1:9/api" in err
    assert "prunescope serve" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo(env: dict[str, str], *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "demo", "--no-serve", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_end_to_end(tmp_path):
    """`prunescope demo --no-serve`: real uvicorn, real worker process, progress on stderr."""
    port = _free_port()
    env = {"PRUNESCOPE_DATA_DIR": str(tmp_path), "PRUNESCOPE_PORT": str(port)}
    proc = _demo(
        env, "--epochs", "3", "--finetune-epochs", "1", "--corruptions", "brightness", timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"http://127.0.0.1:{port}/compare?id=1" in proc.stdout
    # tqdm bars for training, pruning and analysis went to the terminal
    for label in ("train digits_cnn", "prune 50%", "prune 90%", "analyse + compare (1 corruption)"):
        assert label in proc.stderr
    # the data folder now holds a complete comparison
    settings = Settings(data_dir=tmp_path)
    with TestClient(create_app(settings, executor=InlineExecutor(settings), dashboard=False)) as c:
        view = c.get("/api/comparisons/1/view").json()
        assert [m["sparsity"] for m in (view["model_a"], view["model_b"])] == [0.0, 0.5]
        assert all(j["status"] == "succeeded" for j in c.get("/api/jobs").json()["data"])
        results = c.get("/api/comparisons/1/results").json()
        assert results["embedding"]["method"] == "aligned_umap"
        assert results["mce"]["corruptions"] == ["brightness"]
    # running it again reuses the finished demo instead of training anew
    again = _demo(env, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Reusing the existing demo comparison 1" in again.stdout


def _run_cli(args, env_extra, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_wrong_database_url_is_one_clear_line(command, tmp_path):
    """A database nobody listens on: exit 1 with what was wrong, no traceback, no password."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://alice:s3cret@127.0.0.1:{port}/prunescope"
    out = _run_cli(
        [command],
        {"PRUNESCOPE_DATABASE_URL": url, "PRUNESCOPE_DATA_DIR": str(tmp_path / "d")},
    )
    assert out.returncode == 1, out
    assert out.stderr.startswith("prunescope: error: cannot open the database at ")
    assert f"alice:***@127.0.0.1:{port}/prunescope" in out.stderr
    assert "s3cret" not in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_malformed_database_url_is_named(tmp_path):
    out = _run_cli(
        ["serve"],
        {"PRUNESCOPE_DATABASE_URL": "not a url", "PRUNESCOPE_DATA_DIR": str(tmp_path / "d")},
    )
    assert out.returncode == 1
    assert "PRUNESCOPE_DATABASE_URL='not a url' is not a database URL" in out.stderr


def test_worker_refuses_unknown_queues(tmp_path):
    out = _run_cli(["worker", "--queues", "gpu,fast"], {"PRUNESCOPE_DATA_DIR": str(tmp_path)})
    assert out.returncode == 1
    assert "--queues 'gpu,fast': queues are gpu, cpu" in out.stderr


# ------------------------------------------------------------------------------------ upload
@pytest.mark.parametrize(
    ("what", "words"),
    [
        ("model", ["--arch NAME", "--arch-kw KEY=VALUE", "--parent ID", "state_dict", "refused"]),
        ("dataset", ["--format", "--test-fraction F", "--severity S", "npz", "CIFAR-10-C"]),
    ],
)
def test_upload_subcommands_explain_themselves(what, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["upload", what, "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"usage: prunescope upload {what}" in out
    for word in words:
        assert word in out


def test_upload_needs_to_know_what():
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["upload", "x.pt"])
    assert exc.value.code == 2


def test_arch_kw_values_are_json_when_they_can_be():
    assert parse_arch_kwargs(
        ["num_classes=10", "hidden=[128, 64]", "input_shape=[3,32,32]", "act=relu", "bias=true"]
    ) == {
        "num_classes": 10,
        "hidden": [128, 64],
        "input_shape": [3, 32, 32],
        "act": "relu",
        "bias": True,
    }
    assert parse_arch_kwargs(["name=a=b", "empty="]) == {"name": "a=b", "empty": ""}
    assert parse_arch_kwargs(None) == {}
    assert type(parse_arch_kwargs(["num_classes=10"])["num_classes"]) is int


@pytest.mark.parametrize("bad", ["num_classes", "=10"])
def test_arch_kw_without_a_key_is_named(bad):
    with pytest.raises(CliError, match=f"--arch-kw {bad!r} should be KEY=VALUE"):
        parse_arch_kwargs([bad])


def _body(upload: MultipartFile, sizes: list[int] | None = None) -> bytes:
    return b"".join(upload.chunks(None if sizes is None else sizes.append))


FIELDS = {"architecture": "mlp", "arch_kwargs": '{"num_classes": 10}', "name": "réseau 1"}


def test_multipart_body_parses_back_with_python_multipart(tmp_path):
    from python_multipart import parse_form

    data = os.urandom(3 * 1024 + 17)
    path = tmp_path / 'my "net" v2.safetensors'
    path.write_bytes(data)
    upload = MultipartFile(path, {**FIELDS, "parent_id": None}, chunk_size=1024)
    sizes: list[int] = []
    body = _body(upload, sizes)
    assert len(body) == upload.length == int(upload.headers["Content-Length"])
    assert sizes == [1024, 1024, 1024, 17]  # the file goes in chunks, each reported once sent

    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}

    def on_field(f):  # type: ignore[no-untyped-def]
        fields[f.field_name.decode()] = f.value.decode()

    def on_file(f):  # type: ignore[no-untyped-def]
        f.file_object.seek(0)
        files[f.field_name.decode()] = (f.file_name.decode(), f.file_object.read())

    headers = {k: v.encode() for k, v in upload.headers.items()}
    parse_form(headers, io.BytesIO(body), on_field, on_file)
    assert fields == FIELDS  # None values are left out
    name, content = files["file"]
    assert content == data
    assert name == "my %22net%22 v2.safetensors"  # quotes escaped the way browsers do


def test_multipart_body_parses_back_with_the_email_parser(tmp_path):
    data = bytes(range(256)) * 40
    path = tmp_path / "tiny.npz"
    path.write_bytes(data)
    upload = MultipartFile(path, FIELDS)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {upload.headers['Content-Type']}\r\n\r\n".encode() + _body(upload)
    )
    parts = list(message.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        *FIELDS,
        "file",
    ]
    for part, value in zip(parts, FIELDS.values(), strict=False):
        assert part.get_payload(decode=True).decode() == value
    assert parts[-1].get_filename() == "tiny.npz"
    assert parts[-1].get_payload(decode=True) == data


def test_multipart_body_is_a_stream_not_a_copy(tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as fh:
        fh.truncate(8 * 2**20)  # 8 MiB, sparse on disk
    upload = MultipartFile(path, {})
    chunks = upload.chunks()
    head = next(chunks)
    assert head.startswith(b"--prunescope-") and len(head) < 300
    assert all(len(next(chunks)) == 2**20 for _ in range(8))
    assert next(chunks) == f"\r\n--{upload.boundary}--\r\n".encode()
    assert upload.length == len(head) + 8 * 2**20 + len(upload.tail)


def test_httpx_sends_the_exact_length_not_chunks(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"w" * 5000)
    upload = MultipartFile(path, FIELDS)
    request = httpx.Request("POST", "http://x/api", content=upload.chunks(), headers=upload.headers)
    assert request.headers["content-length"] == str(upload.length)
    assert "transfer-encoding" not in request.headers
    assert request.headers["content-type"] == f"multipart/form-data; boundary={upload.boundary}"


def test_a_file_that_changes_while_it_is_sent_is_refused(tmp_path):
    path = tmp_path / "grows.bin"
    path.write_bytes(b"x" * 10)
    upload = MultipartFile(path, {})
    path.write_bytes(b"x" * 20)
    with pytest.raises(CliError, match="changed while it was being uploaded"):
        _body(upload)


def test_a_missing_file_is_one_line(tmp_path, capsys):
    assert main(["upload", "dataset", str(tmp_path / "none.npz"), "--api", "http://x:9/api"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == f"prunescope: error: {tmp_path / 'none.npz'}: no such file"
    )


def test_summary_tables():
    lines = layer_table(
        [
            {"name": "conv1", "shape": [16, 3, 3, 3], "n_params": 432, "n_zero": 0, "sparsity": 0},
            {"name": "fc", "shape": [10, 64], "n_params": 640, "n_zero": 576, "sparsity": 0.9},
        ]
    )
    assert lines == [
        "layer  shape     weights  zeros  sparsity",
        "conv1  16x3x3x3      432      0      0.0%",
        "fc     10x64         640    576     90.0%",
    ]
    lines = class_balance_table(
        {"class_names": ["cat", "dog"], "class_counts": {"train": [30, 10], "test": [10, 0]}}
    )
    assert lines == [
        "class  train  test  share",
        "0 cat     30    10  80.0%",
        "1 dog     10     0  20.0%",
    ]


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prunescope serve` in a subprocess over an empty data folder; a 1 MB upload limit."""
    data_dir = tmp_path_factory.mktemp("upload") / "data"
    data_dir.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
    env.update(
        PRUNESCOPE_DATA_DIR=str(data_dir),
        PRUNESCOPE_PORT=str(port),
        PRUNESCOPE_WARM_EMBEDDINGS="false",
        PRUNESCOPE_MAX_UPLOAD_BYTES=str(1_000_000),
    )
    log = open(data_dir / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "server.log").read_text())
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _mlp_checkpoint(path: Path, zero_columns: int, seed: int = 0) -> Path:
    import torch
    from safetensors.torch import save_file

    from models.registry import create

    torch.manual_seed(seed)
    model = create("mlp", input_shape=[64], num_classes=4, hidden=[16])
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["features.1.weight"][:, :zero_columns] = 0  # exact zeros: the import makes them masks
    save_file(state, str(path))
    return path


def _upload(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["upload", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_upload_end_to_end(upload_server, tmp_path, capsys):
    """Upload a dataset and checkpoints to a real server; the import jobs' verdicts are printed."""
    import numpy as np

    api = ["--api", upload_server]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 64)).astype("float32")
    y = np.arange(160) % 4
    np.savez(tmp_path / "tiny.npz", X=x, y=y, class_names=np.array(["a", "b", "c", "d"]))

    code, out, err = _upload(
        capsys, "dataset", str(tmp_path / "tiny.npz"), "--test-fraction", "0.25", *api
    )
    assert code == 0, err
    assert "dataset #1 'tiny.npz' (npz)" in out
    assert "120 train / 40 test samples, input shape 64, 4 classes" in out
    assert "class  train  test  share" in out
    assert out.splitlines()[-1].split() == ["3", "d", "30", "10", "25.0%"]
    assert "upload tiny.npz" in err and "B/s" in err  # the byte progress bar
    assert "validate tiny.npz" in err  # then the import job's

    original = _mlp_checkpoint(tmp_path / "mlp.safetensors", zero_columns=0)
    kws = [
        "--arch-kw",
        "input_shape=[64]",
        "--arch-kw",
        "num_classes=4",
        "--arch-kw",
        "hidden=[16]",
    ]
    code, out, err = _upload(
        capsys,
        "model",
        str(original),
        "--arch",
        "mlp",
        *kws,
        "--dataset",
        "1",
        "--name",
        "tiny-mlp",
        *api,
    )
    assert code == 0, err
    assert "model #1 'tiny-mlp'" in out
    assert 'architecture: mlp {"input_shape": [64], "num_classes": 4, "hidden": [16]}' in out
    assert "format: safetensors   masks: none   sparsity: 0.0%" in out
    assert "test accuracy:" in out

    pruned = _mlp_checkpoint(tmp_path / "mlp-pruned.safetensors", zero_columns=48)
    code, out, err = _upload(
        capsys, "model", str(pruned), "--arch", "mlp", *kws, "--parent", "1", *api
    )
    assert code == 0, err
    assert "model #2 'mlp-pruned.safetensors'" in out
    assert "masks: zeros" in out and "pruned from: model #1" in out
    table = out[out.index("layer  ") :].splitlines()
    assert table[1].split() == ["features.1", "16x64", "1024", "768", "75.0%"]
    assert table[2].split() == ["classifier", "4x16", "64", "0", "0.0%"]
    model = httpx.get(f"{upload_server}/models/2").json()
    assert model["parent_id"] == 1 and model["dataset_id"] == 1

    # the identical file again: the existing model, no new job
    jobs_before = len(httpx.get(f"{upload_server}/jobs").json()["data"])
    code, out, err = _upload(
        capsys, "model", str(pruned), "--arch", "mlp", *kws, "--parent", "1", *api
    )
    assert code == 0, err
    assert "mlp-pruned.safetensors was already uploaded as model #2" in out
    assert "75.0%" in out  # the layers of the first import
    assert len(httpx.get(f"{upload_server}/jobs").json()["data"]) == jobs_before

    # refusals are one line: a checkpoint of another architecture, a file over the limit
    code, out, err = _upload(capsys, "model", str(pruned), "--arch", "digits_cnn", *api)
    assert code == 1
    (last,) = [line for line in err.splitlines() if line.startswith("prunescope: error:")]
    assert "(import_model) failed: CheckpointError:" in last and "missing keys" in last
    big = tmp_path / "big.safetensors"
    big.write_bytes(b"\0" * 3_000_000)
    code, out, err = _upload(capsys, "model", str(big), "--arch", "mlp", *api)
    assert code == 1
    assert "prunescope: error: POST /models/upload failed (413): Upload too large" in err
    assert out == ""


# ---------------------------------------------------------------------------------- download
def test_download_explains_each_format(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["download", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "usage: prunescope download" in out and "MODEL_ID" in out and "-o PATH" in out
    assert "X-Content-SHA256" in out and "(default: safetensors)" in out
    for fmt, words in {
        "safetensors": "load_state_dict",
        "pt": "weights_only=True",
        "onnx": "onnxruntime",
        "prunescope": "load_checkpoint",
    }.items():
        assert f" {fmt} " in out and words in out


def _fake_download(monkeypatch, body: bytes, sha: str | None = None) -> list[httpx.Request]:
    """The CLI's client answered by a fake GET /api/models/3/download (the route's contract)."""
    import hashlib

    import backend.cli as cli

    seen: list[httpx.Request] = []

    def route(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path != "/api/models/3/download":
            return httpx.Response(404, json={"detail": "Model not found"})
        fmt = request.url.params["format"]
        return httpx.Response(
            200,
            content=body,
            headers={
                "Content-Disposition": f'attachment; filename="tiny-mlp-3.{fmt}"',
                "X-Content-SHA256": sha or hashlib.sha256(body).hexdigest(),
            },
        )

    def api(args):  # type: ignore[no-untyped-def]
        return cli.Api(args.api, token=args.token or "", transport=httpx.MockTransport(route))

    monkeypatch.setattr(cli, "_api", api)
    return seen


def test_download_writes_the_checked_file(monkeypatch, tmp_path, capsys):
    import hashlib

    body = os.urandom(3000)
    seen = _fake_download(monkeypatch, body)
    api = ["--api", "http://fake:1/api", "--token", "psk_t"]
    assert main(["download", "3", "--format", "onnx", "-o", str(tmp_path), *api]) == 0
    out, err = capsys.readouterr()
    assert (tmp_path / "tiny-mlp-3.onnx").read_bytes() == body
    assert f"model #3 (onnx): {tmp_path / 'tiny-mlp-3.onnx'}" in out
    assert f"3000 bytes, sha256 {hashlib.sha256(body).hexdigest()}" in out
    assert "download tiny-mlp-3.onnx" in err and "B/s" in err  # the progress bar
    assert seen[0].url.params["format"] == "onnx"
    assert seen[0].headers["authorization"] == "Bearer psk_t"
    # -o names the file; the default format is safetensors
    assert main(["download", "3", "-o", str(tmp_path / "w.safetensors"), *api]) == 0
    assert (tmp_path / "w.safetensors").read_bytes() == body
    assert seen[1].url.params["format"] == "safetensors"


def test_download_errors_are_one_line(monkeypatch, tmp_path, capsys):
    _fake_download(monkeypatch, b"w" * 100, sha="0" * 64)
    api = ["--api", "http://fake:1/api"]
    assert main(["download", "3", "-o", str(tmp_path / "w.pt"), *api]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("prunescope: error: download of w.pt is corrupt: its sha256 is ")
    assert list(tmp_path.iterdir()) == []  # nothing is left behind
    assert main(["download", "4", "-o", str(tmp_path), *api]) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("prunescope: error: GET /models/4/download failed (404): Model not found")
    )
    assert main(["download", "3", "-o", str(tmp_path / "no" / "w.pt"), *api]) == 1
    assert "no such folder to write w.pt into" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["download", "3", "--format", "zip"])
    assert "invalid choice: 'zip'" in capsys.readouterr().err


def test_download_says_when_no_server_runs(tmp_path, capsys):
    assert main(["download", "1", "-o", str(tmp_path), "--api", "http://127.0.0.1:9/api"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the PruneScope server at http://127.0.0.1:9/api" in err


@pytest.mark.slow
def test_download_end_to_end_in_every_format(upload_server, tmp_path, capsys):
    """Upload a checkpoint, download it back in each format, load each as its users would."""
    import re

    import torch
    from safetensors.torch import load_file

    from models.checkpoint import load_checkpoint
    from models.registry import create

    checkpoint = _mlp_checkpoint(tmp_path / "to-download.safetensors", zero_columns=32, seed=3)
    kwargs = {"input_shape": [64], "num_classes": 4, "hidden": [16]}
    code, out, err = _upload(
        capsys,
        "model",
        str(checkpoint),
        "--arch",
        "mlp",
        *[f"--arch-kw={k}={json.dumps(v)}" for k, v in kwargs.items()],
        "--name",
        "to download",
        "--api",
        upload_server,
    )
    assert code == 0, err
    model_id = re.search(r"model #(\d+) 'to download'", out)[1]  # type: ignore[index]
    reference = create("mlp", **kwargs).eval()
    reference.load_state_dict(load_file(str(checkpoint)))
    x = torch.rand(5, 64)
    with torch.no_grad():
        expected = reference(x)

    def download(fmt: str) -> Path:
        args = ["download", model_id, "--format", fmt, "-o", str(tmp_path), "--api", upload_server]
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert "(checked against the server's)" in out and "download " in err
        return Path(out.split(": ", 1)[1].splitlines()[0])

    plain = create("mlp", **kwargs).eval()
    plain.load_state_dict(load_file(str(download("safetensors"))))
    pickled = create("mlp", **kwargs).eval()
    pickled.load_state_dict(torch.load(download("pt"), weights_only=True))
    own, meta = load_checkpoint(download("prunescope"))
    assert meta["architecture"] == "mlp" and meta["kwargs"] == kwargs
    with torch.no_grad():
        for model in (plain, pickled, own):
            torch.testing.assert_close(model(x), expected)
    assert torch.count_nonzero(own.features[1].weight_mask) == 16 * 32  # the zeros became masks
    onnx_file = download("onnx")
    assert onnx_file.suffix == ".onnx"
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------- upload: pruned from a parent
def test_upload_help_says_the_parent_gives_the_architecture(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["upload", "model", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "with --parent: the server then takes the parent's architecture and its arguments" in out
    assert "without --arch, its architecture and arguments are the checkpoint's too" in out


@pytest.mark.slow
def test_upload_with_a_parent_needs_no_architecture(upload_server, tmp_path, capsys):
    """Issue 18, bug 6: `--parent` without `--arch`: the server takes the parent's
    architecture and its arguments."""
    import re

    api = ["--api", upload_server]
    original = _mlp_checkpoint(tmp_path / "parent-mlp.safetensors", zero_columns=0, seed=5)
    kwargs = {"input_shape": [64], "num_classes": 4, "hidden": [16]}
    code, out, err = _upload(
        capsys,
        "model",
        str(original),
        "--arch",
        "mlp",
        *[f"--arch-kw={k}={json.dumps(v)}" for k, v in kwargs.items()],
        *api,
    )
    assert code == 0, err
    parent_id = int(re.search(r"model #(\d+) 'parent-mlp.safetensors'", out)[1])  # type: ignore[index]

    pruned = _mlp_checkpoint(tmp_path / "child-mlp.safetensors", zero_columns=32, seed=5)
    code, out, err = _upload(capsys, "model", str(pruned), "--parent", str(parent_id), *api)
    assert code == 0, err
    assert f"architecture: mlp {json.dumps(kwargs)}" in out
    assert f"pruned from: model #{parent_id}" in out and "masks: zeros" in out
    model_id = int(re.search(r"model #(\d+) 'child-mlp.safetensors'", out)[1])  # type: ignore[index]
    model = httpx.get(f"{upload_server}/models/{model_id}").json()
    assert model["architecture"] == "mlp" and model["arch_kwargs"] == kwargs
    assert model["parent_id"] == parent_id
