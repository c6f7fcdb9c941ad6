"""Throughput of the corruption suite: all 15 CIFAR-10-C corruptions x 5 severities.

``backend.data.corruptions`` (Hendrycks & Dietterich 2019, re-implemented batched in torch) is
applied to one batch of 256 random 3x32x32 images in [0, 1], once per (corruption, severity)
pair, single-threaded (torch.set_num_threads(1)) on CPU. The figure is images per second over
the 75 pairs (256 * 75 images / total seconds), the median of ``REPEATS`` passes after one
warm-up pass. Baseline, measured in the same run and the same way: a plain copy-through
(``x.clone().clamp_(0, 1)``), so the ratio is the suite's throughput relative to touching every
value once (small by construction).

Prints ``BENCH corruption_throughput <images/s> images/s ratio=<vs copy> baseline=...``, and
``BENCH corruption_throughput_cuda ...`` the same measured on the GPU when one is present.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_line  # noqa: E402

from backend.data.corruptions import create, list_corruptions  # noqa: E402

BATCH = 256
SEVERITIES = (1, 2, 3, 4, 5)
REPEATS = 5
COPY_REPEATS = 2000


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def suite_seconds(x: torch.Tensor) -> float:
    """Seconds for one pass over every (corruption, severity) pair."""
    gen = torch.Generator(device=x.device).manual_seed(0)
    fns = [create(name) for name in list_corruptions()]
    _sync(x.device)
    t0 = time.perf_counter()
    for fn in fns:
        for severity in SEVERITIES:
            fn(x, severity, gen)
    _sync(x.device)
    return time.perf_counter() - t0


def copy_seconds(x: torch.Tensor) -> float:
    """Seconds per copy-through of the batch (mean over COPY_REPEATS)."""
    _sync(x.device)
    t0 = time.perf_counter()
    for _ in range(COPY_REPEATS):
        x.clone().clamp_(0.0, 1.0)
    _sync(x.device)
    return (time.perf_counter() - t0) / COPY_REPEATS


def median_of(fn: Callable[[torch.Tensor], float], x: torch.Tensor, repeats: int) -> float:
    fn(x)  # warm-up: allocator, first-call costs, CUDA kernels
    return statistics.median(fn(x) for _ in range(repeats))


def measure(device: torch.device) -> tuple[float, float, float]:
    """(suite images/s, copy images/s, suite seconds per pass) on ``device``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 3, 32, 32, generator=gen).to(device)
    pairs = len(list_corruptions()) * len(SEVERITIES)
    suite = median_of(suite_seconds, x, REPEATS)
    copy = median_of(copy_seconds, x, REPEATS)
    return BATCH * pairs / suite, BATCH / copy, suite


def main() -> None:
    torch.set_num_threads(1)
    n_pairs = len(list_corruptions()) * len(SEVERITIES)
    rate, copy_rate, seconds = measure(torch.device("cpu"))
    bench_line(
        "corruption_throughput",
        rate,
        "images/s",
        copy_rate,
        f"copy_through({copy_rate:.3g}images/s,cpu,1_thread,batch{BATCH}x3x32x32;"
        f"{n_pairs}pairs_in_{seconds:.2f}s)",
    )
    if torch.cuda.is_available():
        rate, copy_rate, seconds = measure(torch.device("cuda"))
        bench_line(
            "corruption_throughput_cuda",
            rate,
            "images/s",
            copy_rate,
            f"copy_through({copy_rate:.3g}images/s,cuda,batch{BATCH}x3x32x32;"
            f"{n_pairs}pairs_in_{seconds:.3f}s)",
        )


if __name__ == "__main__":
    main()
