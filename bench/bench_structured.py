"""Structured pruning figures: ResNet-20 with 50% of its channels removed vs the dense model.

l1_filter (Li et al. 2017) removes half of the output channels of every convolution (residual
groups together) from a randomly initialised ResNet-20 (10 classes); no fine-tuning, since only
speed is measured. Latency is the median forward pass of a 64x3x32x32 batch, eval mode,
torch.inference_mode, one CPU thread (torch.set_num_threads(1)), dense and pruned taking turns
(backend.pruning.report.measure_latency_ms). Baseline, measured in the same run: the dense
model's latency. A second line is printed on CUDA when a GPU is present. The theoretical
speed-up is the ratio of multiply-accumulates (ShrinkBench, Blalock et al. 2020).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_line  # noqa: E402

from backend.pruning.report import compression_report  # noqa: E402
from backend.pruning.structured import prune_filters  # noqa: E402
from models.registry import create  # noqa: E402

SPARSITY = 0.5
BATCH = 64
REPEATS = 30


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dense = create("resnet20", num_classes=10).eval()
    x = torch.randn(BATCH, 3, 32, 32)
    pruned = prune_filters(copy.deepcopy(dense), SPARSITY, x[:2]).eval()

    report = compression_report(dense, pruned, x, device="cpu", repeats=REPEATS)
    bench_line(
        "structured_speedup",
        report["measured_speedup"],
        "x",
        1.0,
        f"dense_resnet20_latency({report['latency_ms_dense']:.1f}ms,cpu,1_thread,batch{BATCH})",
    )
    if torch.cuda.is_available():
        cuda = compression_report(dense, pruned, x, device="cuda", repeats=REPEATS)
        bench_line(
            "structured_speedup_cuda",
            cuda["measured_speedup"],
            "x",
            1.0,
            f"dense_resnet20_latency({cuda['latency_ms_dense']:.2f}ms,cuda,batch{BATCH})",
        )
    bench_line(
        "structured_theoretical_speedup",
        report["theoretical_speedup"],
        "x",
        1.0,
        f"dense_resnet20_flops({report['flops_dense'] / 1e6:.1f}MMAC_per_image,"
        f"pruned={report['flops_nonzero'] / 1e6:.1f}MMAC)",
    )


if __name__ == "__main__":
    main()
