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

COMMANDS = ["serve", "demo", "train", "prune", "sweep", "methods", "jobs"]


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
