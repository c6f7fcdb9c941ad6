"""Exact 1-D region counting (SCIENCE.md sect. 5) vs dense sampling, and its throughput.

region_count_vs_sampling_<net>: on each network, the exact count of one segment takes T_exact
and finds P distinct activation patterns. Dense sampling (backend.analysis.linear_regions.
sample_patterns, float64 forward passes at n evenly spaced t) is run with n = 16, 32, 64, ...
until it finds P distinct patterns or reaches a cap; T_sample is the wall time of that single
run (earlier, smaller runs are not charged). The value is T_sample / T_exact; when the cap is
hit the baseline string says so and the value is a lower bound. ``at_equal_time`` is the number
of distinct patterns of the largest sampling run that took no longer than T_exact.

* digits_cnn: random init, segment between two test digits of sklearn digits (len ~3).
* resnet20: random init, segment from a uniform random 32x32 input to a point 0.02 away
  (a full segment between two random inputs crosses ~5000 regions and takes ~80 s on one CPU
  thread, too long for this benchmark).

region_segments_per_s: ResNet-20 segments (same short length) counted per second on CPU, one
thread, divided by plain float32 single-input forward passes per second. A ``_cuda`` line is
added when CUDA is available.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_line  # noqa: E402

import models  # noqa: E402, F401  (registers the architectures)
from backend.analysis.linear_regions import count_regions, sample_patterns  # noqa: E402
from backend.data import create as create_dataset  # noqa: E402
from models.registry import create as create_model  # noqa: E402

RESNET_LEN = 0.02
SAMPLE_CAP = {"digits_cnn": 2**17, "resnet20": 2**12}
SAMPLE_TIME_CAP_S = 20.0


def _short_segment(gen: torch.Generator, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.rand(3, 32, 32, generator=gen)
    d = torch.randn(3, 32, 32, generator=gen)
    return a.to(device), (a + RESNET_LEN * d / d.norm()).to(device)


def count_vs_sampling(name: str, model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> None:
    t0 = time.perf_counter()
    r = count_regions(model, a, b, max_pieces=1_000_000)
    t_exact = time.perf_counter() - t0
    p = r.distinct_patterns
    n, found, t_sample, at_equal = 16, 0, float("nan"), 0
    while True:
        t0 = time.perf_counter()
        found = len(set(sample_patterns(model, a, b, n)))
        t_sample = time.perf_counter() - t0
        if t_sample <= t_exact:
            at_equal = found
        if found >= p or n >= SAMPLE_CAP[name] or t_sample > SAMPLE_TIME_CAP_S:
            break
        n *= 2
    capped = "" if found >= p else ",capped"
    bench_line(
        f"region_count_vs_sampling_{name}",
        t_sample / t_exact,
        "x",
        1.0,
        f"dense_sampling(n={n},found={found}/{p}{capped},t_sample={t_sample:.3g}s,"
        f"t_exact={t_exact:.3g}s,pieces={r.activation_pieces},at_equal_time={at_equal},"
        f"len={r.length:.3g})",
    )


def segments_per_s(device: str) -> None:
    torch.manual_seed(0)
    model = create_model("resnet20").to(device).eval()
    gen = torch.Generator().manual_seed(1)
    segments = [_short_segment(gen, device) for _ in range(3)]
    count_regions(model, *segments[0])  # warm-up
    t0 = time.perf_counter()
    pieces = sum(count_regions(model, a, b).activation_pieces for a, b in segments)
    seg_s = len(segments) / (time.perf_counter() - t0)
    x = segments[0][0][None]
    with torch.no_grad():
        model(x)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(50):
            model(x)
        if device == "cuda":
            torch.cuda.synchronize()
        fwd_s = 50 / (time.perf_counter() - t0)
    suffix = "_cuda" if device == "cuda" else ""
    bench_line(
        f"region_segments_per_s{suffix}",
        seg_s,
        "segments/s",
        fwd_s,
        f"plain_forward_resnet20_float32_batch1({fwd_s:.3g}/s;segments_len={RESNET_LEN},"
        f"mean_pieces={pieces / len(segments):.3g})",
    )


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ds = create_dataset("digits")
    x_te, y_te = ds.split("test")
    xt = torch.as_tensor(x_te)
    count_vs_sampling("digits_cnn", create_model("digits_cnn"), xt[0], xt[1])
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    count_vs_sampling("resnet20", create_model("resnet20"), *_short_segment(gen))
    segments_per_s("cpu")
    if torch.cuda.is_available():
        segments_per_s("cuda")


if __name__ == "__main__":
    main()
