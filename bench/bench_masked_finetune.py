"""Cost of fine-tuning through prune masks: a 90%-pruned ResNet-20 epoch vs the dense one.

The product fine-tunes pruned models through ``torch.nn.utils.prune`` reparametrisation
(``weight = weight_orig * weight_mask`` recomputed by a forward pre-hook, the gradient masked by
autograd). Unstructured sparsity makes nothing faster on dense kernels, so the best possible
ratio is 1.0; the figure is the overhead of the masking itself.

Baseline, measured in the same run: the same ResNet-20 (same initial weights), unpruned, one
fine-tuning epoch of the product's training loop (``backend.pruning.finetune.train``, Adam,
batch 64) on the same 512 random 3x32x32 samples, single-threaded. Dense and pruned epochs are
interleaved; each figure is the median over ``REPEATS`` epochs after one warm-up epoch.

Prints ``BENCH masked_finetune_epoch <pruned/dense> x ratio=<same>
baseline=dense_finetune_epoch(<s>s)`` (one line).
``--profile`` also prints where the pruned epoch's extra time goes (torch profiler, CPU).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import bench_line  # noqa: E402

from backend.pruning.finetune import TrainConfig, train  # noqa: E402
from backend.pruning.registry import create as create_method  # noqa: E402
from models.registry import create as create_model  # noqa: E402

N_SAMPLES = 512
BATCH = 64
SPARSITY = 0.9
REPEATS = 5


def epoch_seconds(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=1e-3)
    t0 = time.perf_counter()
    train(model, X, y, config)
    return time.perf_counter() - t0


def profile(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, label: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        epoch_seconds(model, X, y)
    print(f"--- {label}: top operators by self CPU time")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(N_SAMPLES, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (N_SAMPLES,), generator=gen)
    torch.manual_seed(0)
    dense = create_model("resnet20", num_classes=10)
    pruned = copy.deepcopy(dense)
    create_method("global_magnitude", sparsity=SPARSITY).apply(pruned)

    for model in (dense, pruned):  # warm-up (allocator, first-call costs)
        epoch_seconds(model, X, y)
    times: dict[str, list[float]] = {"dense": [], "pruned": []}
    for _ in range(args.repeats):
        times["dense"].append(epoch_seconds(dense, X, y))
        times["pruned"].append(epoch_seconds(pruned, X, y))
    dense_s = statistics.median(times["dense"])
    pruned_s = statistics.median(times["pruned"])
    if args.profile:
        profile(dense, X, y, "dense")
        profile(pruned, X, y, "pruned")
        print(f"dense epochs: {[round(t, 3) for t in times['dense']]}")
        print(f"pruned epochs: {[round(t, 3) for t in times['pruned']]}")
    ratio = pruned_s / dense_s
    bench_line("masked_finetune_epoch", ratio, "x", 1.0, f"dense_finetune_epoch({dense_s:.3g}s)")


if __name__ == "__main__":
    main()
