"""The command line: --help texts, and the whole demo through a real server and workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.cli import build_parser, main
from backend.config import Settings
from backend.jobs.executor import InlineExecutor

COMMANDS = ["serve", "worker", "demo", "train", "prune", "sweep", "methods", "jobs"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: prunescope {command}" in out
    assert len(out.splitlines()) > 4


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
