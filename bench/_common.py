"""Shared helpers for benchmarks: one output format for every figure."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def bench_line(name: str, value: float, unit: str, baseline_value: float, baseline: str) -> str:
    """The one line format `make bench` prints and the README table is copied from."""
    ratio = value / baseline_value if baseline_value else float("nan")
    line = f"BENCH {name} {value:.4g} {unit} ratio={ratio:.3g} baseline={baseline}"
    print(line, flush=True)
    return line


def run_measured(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600):
    """Run a command; return (wall seconds, peak RSS in MiB of the process itself, peak RSS of
    its whole tree, stdout). RSS is sampled every 50 ms with psutil."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak_self = peak_tree = 0
    while proc.poll() is None:
        try:
            own = ps.memory_info().rss
            tree = own + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak_self, peak_tree = max(peak_self, own), max(peak_tree, tree)
        except psutil.Error:
            pass
        time.sleep(0.05)
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise TimeoutError(f"{cmd} took more than {timeout} s")
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.stderr.write(err)
        raise RuntimeError(f"{cmd} exited with {proc.returncode}")
    return wall, peak_self / 2**20, peak_tree / 2**20, out


def start_server(data: Path, port: int, log: Path, auth: str = "off") -> subprocess.Popen[bytes]:
    """`prunescope serve` on 127.0.0.1:port with this auth setting and one idle worker, its own
    data folder, none of the caller's PRUNESCOPE_ settings; its output goes to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
    env |= {
        "PRUNESCOPE_DATA_DIR": str(data),
        "PRUNESCOPE_PORT": str(port),
        "PRUNESCOPE_AUTH": auth,
        "PRUNESCOPE_WORKERS": "1",
        "PRUNESCOPE_WARM_EMBEDDINGS": "false",
    }
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_ready(server: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 120) -> None:
    """Until the server on ``port`` answers its health check; raises with its log's tail if it
    exits or does not answer in time."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the server on port {port} did not start:\n{tail}")
        time.sleep(0.2)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts its job workers down), then kill what is left of its tree."""
    try:
        children = psutil.Process(server.pid).children(recursive=True)
    except psutil.Error:
        children = []
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
