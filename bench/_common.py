"""Shared helpers for benchmarks: one output format for every figure."""

from __future__ import annotations

import subprocess
import sys
import time

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
