"""Shared fixtures: a fresh data folder per test, an app with an inline executor, and a
small trained/pruned/analysed pipeline built through the real REST API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.api.app import create_app
from backend.config import Settings
from backend.jobs.executor import InlineExecutor


def pytest_configure(config: pytest.Config) -> None:
    # CI has no display: the dash[testing] browser always runs headless here.
    if hasattr(config.option, "headless"):
        config.option.headless = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # no numba warm-up in every spawned test worker: it costs tens of seconds of CPU
    return Settings(data_dir=tmp_path / "data", port=free_port(), warm_embeddings=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """REST API on a fresh SQLite database; jobs run inline at submission."""
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as c:
        yield c


@dataclass
class Pipeline:
    dataset_id: int
    original_id: int
    pruned_ids: list[int]
    comparison_id: int


def build_pipeline(c: TestClient, epochs: int = 4, sparsities: tuple[float, ...] = (0.5, 0.9)):
    """Train digits_cnn, prune it, create a comparison (which analyses all models)."""

    def ok(resp):  # type: ignore[no-untyped-def]
        assert resp.status_code in (200, 201), resp.text
        return resp.json()

    ds = ok(c.post("/api/datasets", json={"builtin": "digits"}))
    job = ok(
        c.post(
            "/api/jobs",
            json={
                "kind": "train",
                "spec": {"dataset_id": ds["id"], "architecture": "digits_cnn", "epochs": epochs},
            },
        )
    )
    job = ok(c.get(f"/api/jobs/{job['id']}"))
    assert job["status"] == "succeeded", job
    original = job["result"]["model_id"]
    pruned = []
    for s in sparsities:
        job = ok(
            c.post(
                "/api/jobs",
                json={
                    "kind": "prune",
                    "spec": {"model_id": original, "sparsity": s, "finetune": {"epochs": 1}},
                },
            )
        )
        job = ok(c.get(f"/api/jobs/{job['id']}"))
        assert job["status"] == "succeeded", job
        pruned.append(job["result"]["model_id"])
    # PCA: instant; the UMAP path is exercised in tests/backend/api/test_analysis_jobs.py
    comp = ok(
        c.post(
            "/api/comparisons",
            json={"model_a_id": original, "model_b_ids": pruned, "embedding": "pca"},
        )
    )
    return Pipeline(ds["id"], original, pruned, comp["id"])


@pytest.fixture
def pipeline(client: TestClient) -> Pipeline:
    return build_pipeline(client)


@dataclass
class LiveServer:
    url: str
    pipeline: Pipeline
    data_dir: Path


@contextmanager
def served(data_dir: Path, log_name: str = "server.log", **env: str) -> Iterator[str]:
    """`prunescope serve` in a real subprocess over ``data_dir`` on a free port, with ``env``
    added as PRUNESCOPE_* variables (``{port}`` in a value is the port); yields its URL once
    /api/health answers, and stops it afterwards."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    environ = {
        **os.environ,
        "PRUNESCOPE_DATA_DIR": str(data_dir),
        "PRUNESCOPE_PORT": str(port),
        "PRUNESCOPE_WARM_EMBEDDINGS": "false",
        **{f"PRUNESCOPE_{k.upper()}": v.format(port=port) for k, v in env.items()},
    }
    log_path = data_dir / log_name
    log = open(log_path, "w")  # noqa: SIM115
    cli = [sys.executable, "-m", "backend.cli", "serve"]
    proc = subprocess.Popen(cli, env=environ, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text())
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`prunescope serve` in a real subprocess over a data folder holding a finished pipeline."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    settings = Settings(data_dir=data_dir, port=free_port())
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(app) as c:
        pipeline = build_pipeline(c, epochs=3)
    with served(data_dir) as url:
        yield LiveServer(url, pipeline, data_dir)
