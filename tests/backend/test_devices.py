"""A configured device that does not exist (PRUNESCOPE_DEVICE=cuda on a machine without CUDA,
cuda:3 on a one-GPU host): /api/health says so, the local executor refuses submissions with
503 and a sentence saying what to change, and `prunescope worker` refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend import devices
from backend.api.app import create_app
from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import JobRow
from backend.devices import DeviceProbe, device_problem, gpu_problem, probe_device
from backend.jobs.executor import LocalExecutor

ROOT = Path(__file__).resolve().parents[2]
CPU_TORCH = DeviceProbe(torch="2.14.1+cpu", gpu_build=None)
GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    devices._cache.clear()
    yield
    devices._cache.clear()


@pytest.fixture
def no_child(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and forbid) asking torch in a child process."""
    asked: list[str] = []

    def ask(device: str) -> DeviceProbe | None:
        asked.append(device)
        raise AssertionError(f"asked a child process about {device!r}")

    monkeypatch.setattr(devices, "_ask_torch", ask)
    return asked


def test_auto_and_cpu_always_exist_without_asking_torch(no_child: list[str]) -> None:
    assert device_problem("auto") is None and device_problem("cpu") is None
    assert no_child == []


def test_cuda_with_a_torch_built_without_it_is_refused_from_its_version_file(
    monkeypatch: pytest.MonkeyPatch, no_child: list[str]
) -> None:
    monkeypatch.setattr(devices, "_installed_torch", lambda: CPU_TORCH)
    assert device_problem("cuda") == (
        "PRUNESCOPE_DEVICE=cuda, but this torch (torch 2.14.1+cpu, built without CUDA) cannot "
        "use a GPU: set PRUNESCOPE_DEVICE to cpu or auto, or install a CUDA build of torch"
    )
    problem = device_problem("cuda:1", "--device")
    assert problem is not None and problem.startswith("--device=cuda:1, but this torch")
    assert no_child == []  # answered without importing torch anywhere


def test_the_installed_torchs_build_is_read_without_importing_it() -> None:
    build = devices._installed_torch()
    assert build.torch == torch.__version__
    assert build.gpu_build == (torch.version.cuda or torch.version.hip)


def test_a_gpu_index_beyond_the_hosts_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_gpu(device: str) -> DeviceProbe:
        index = int(device.partition(":")[2]) if ":" in device else None
        return DeviceProbe(torch="2.14.1", gpu_build="12.4", type="cuda", index=index, count=1)

    monkeypatch.setattr(devices, "_ask_torch", one_gpu)
    monkeypatch.setattr(devices, "_installed_torch", lambda: DeviceProbe("2.14.1", "12.4"))
    assert device_problem("cuda:3") == (
        "PRUNESCOPE_DEVICE=cuda:3, but this machine has 1 CUDA GPU (cuda:0): set "
        "PRUNESCOPE_DEVICE to it, cuda, auto or cpu"
    )
    assert device_problem("cuda:0") is None and device_problem("cuda") is None


def test_a_name_that_is_no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = DeviceProbe(torch="2.14.1", invalid="Expected one of cpu, cuda, ... : gpu")
    monkeypatch.setattr(devices, "_ask_torch", lambda device: answer)
    problem = device_problem("gpu")
    assert problem is not None and problem.startswith("PRUNESCOPE_DEVICE=gpu is not a torch device")
    assert problem.endswith("set PRUNESCOPE_DEVICE to cpu or auto")


def test_each_device_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def ask(device: str) -> DeviceProbe:
        asked.append(device)
        return DeviceProbe(torch="2.14.1", type="mps", error="MPS is not available")

    monkeypatch.setattr(devices, "_ask_torch", ask)
    first = device_problem("mps")
    assert (
        first == "PRUNESCOPE_DEVICE=mps cannot be used here (MPS is not available): set "
        "PRUNESCOPE_DEVICE to cpu or auto"
    )
    assert device_problem("mps") == first and asked == ["mps"]


@pytest.mark.skipif(GPUS > 0, reason="this machine has a CUDA GPU")
def test_the_real_probe_on_this_machine() -> None:
    """A child process imports torch: this machine's answer for cuda, a name that is no
    device, and the process's own torch never touched."""
    problem = device_problem("cuda")
    assert problem is not None and problem.startswith("PRUNESCOPE_DEVICE=cuda, but ")
    assert "set PRUNESCOPE_DEVICE to cpu or auto" in problem
    probe = probe_device("cuda")
    assert probe is not None and probe.count in (0, None)
    invalid = device_problem("gpu")
    assert invalid is not None and "is not a torch device" in invalid


# --- the local executor: health and submissions ---------------------------------------------


def app_on(tmp_path: Path, device: str) -> TestClient:
    settings = Settings(data_dir=tmp_path / "data", device=device, warm_embeddings=False, workers=1)
    app = create_app(settings, executor=LocalExecutor(settings), dashboard=False)
    return TestClient(app)


def job_rows(client: TestClient) -> int:
    url = client.app.state.settings.database_url  # type: ignore[attr-defined]
    with session_scope(url) as s:
        return int(s.scalar(select(func.count()).select_from(JobRow)) or 0)


def test_health_and_submissions_report_a_device_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "_installed_torch", lambda: CPU_TORCH)
    with app_on(tmp_path, "cuda") as client:
        health = client.get("/api/health")
        assert health.status_code == 200
        body = health.json()
        assert body["job_queue"] == (
            "unavailable: PRUNESCOPE_DEVICE=cuda, but this torch (torch 2.14.1+cpu, built "
            "without CUDA) cannot use a GPU: set PRUNESCOPE_DEVICE to cpu or auto, or install "
            "a CUDA build of torch"
        )
        resp = client.post("/api/jobs", json={"kind": "ping", "spec": {}})
        assert resp.status_code == 503
        detail = resp.json()["detail"]
        assert detail.startswith("Job queue unavailable: PRUNESCOPE_DEVICE=cuda, but this torch")
        assert detail.endswith("Nothing was submitted.")
        assert job_rows(client) == 0
        # a dry run checks the spec only: the form learns the device problem on submission
        dry = client.post(
            "/api/jobs", params={"dry_run": "true"}, json={"kind": "ping", "spec": {}}
        )
        assert dry.status_code == 200
        assert client.get("/api/datasets").status_code == 200  # reads keep working


def test_a_device_that_exists_changes_nothing(tmp_path: Path) -> None:
    with app_on(tmp_path, "cpu") as client:
        assert client.get("/api/health").json()["job_queue"].startswith("ok: ")
        resp = client.post("/api/jobs", json={"kind": "ping", "spec": {}})
        assert resp.status_code == 201, resp.text


# --- prunescope worker ---------------------------------------------------------------------


def worker(tmp_path: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
    environ |= {
        "PRUNESCOPE_DATA_DIR": str(tmp_path / "data"),
        # nothing listens here: a worker that got past the device check would fail on it
        "PRUNESCOPE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "PRUNESCOPE_BROKER_URL": "redis://127.0.0.1:1/0",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "worker", *flags],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.skipif(GPUS > 0, reason="this machine has a CUDA GPU")
def test_the_worker_refuses_to_start_on_a_device_that_does_not_exist(tmp_path: Path) -> None:
    done = worker(tmp_path, "--queues", "gpu,cpu", PRUNESCOPE_DEVICE="cuda")
    assert done.returncode == 1, done
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("prunescope: error: PRUNESCOPE_DEVICE=cuda, but "), line
    assert "set PRUNESCOPE_DEVICE to cpu or auto" in line
    assert line.endswith("The worker did not start"), line

    flag = worker(tmp_path, "--device", "cuda:3")
    assert flag.returncode == 1
    assert "prunescope: error: --device=cuda:3, but " in flag.stderr
    assert "set --device to cpu or auto" in flag.stderr


@pytest.mark.skipif(GPUS > 3, reason="this machine has a GPU 3")
def test_the_worker_refuses_a_gpu_it_does_not_have(tmp_path: Path) -> None:
    done = worker(tmp_path, "--gpu", "3")
    assert done.returncode == 1, done
    assert "prunescope: error: --gpu 3, but " in done.stderr
    assert "leave out --gpu (with --device cpu)" in done.stderr


def test_gpu_problem_names_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_installed_torch", lambda: CPU_TORCH)
    problem = gpu_problem(0)
    assert problem is not None and problem.startswith("--gpu 0, but this torch")
