"""Issue 16 GPU figures: timm's ResNet-18 pruned, fine-tuned and analysed on CUDA.

Runs only where a CUDA device exists; elsewhere it says so and exits 0 (``make bench`` and CI
have no GPU). ``--device cpu --n 512`` runs the same code path on the CPU, to check the script
itself without a GPU.

Figures (one BENCH line each, baseline measured in the same run on the same device):

* ``gpu_prune_analyze_timm_resnet18``: seconds for global magnitude pruning to 90% + one masked
  fine-tuning epoch + the full per-sample analysis of 10,000 generated 32x32 images, against the
  same work on the unpruned model without the pruning step (dense epoch + analysis);
* ``gpu_analysis_overhead_timm_resnet18``: full analysis / plain inference of the 10,000 images;
* ``gpu_masked_finetune_epoch``: a 90%-pruned fine-tuning epoch / the dense epoch (the cost of
  the mask reparametrisation; 1.0 is the best unstructured sparsity can do on dense kernels).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import bench_line  # noqa: E402

from backend.analysis.features import extract_features  # noqa: E402
from backend.analysis.geometry import class_geometry, sample_geometry  # noqa: E402
from backend.analysis.metrics import summarize  # noqa: E402
from backend.pruning.finetune import TrainConfig, train  # noqa: E402
from backend.pruning.registry import create as create_method  # noqa: E402
from models.registry import create as create_model  # noqa: E402

BATCH = 256


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn) -> float:  # type: ignore[no-untyped-def]
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def analyse(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, device: str) -> None:
    out = extract_features(model, x, batch_size=BATCH, device=device)
    geom = sample_geometry(out.features, out.weight, out.bias, y)
    summarize(y, out.logits.argmax(1), 10)
    class_geometry(geom, y, out.weight, 10)


def plain(model: torch.nn.Module, x: torch.Tensor, device: str) -> None:
    with torch.inference_mode():
        for i in range(0, len(x), BATCH):
            model(x[i : i + BATCH].to(device, non_blocking=True)).argmax(1).cpu()


def epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: str) -> None:
    train(model, x, y, TrainConfig(epochs=1, batch_size=BATCH, lr=1e-3, device=device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu, to dry-run")
    parser.add_argument("--n", type=int, default=10_000, help="generated samples (10,000)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; skipped (run it on a GPU machine)", flush=True)
        return
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.n, 3, 32, 32, generator=gen)
    y_t = torch.randint(0, 10, (args.n,), generator=gen)
    y = y_t.numpy()
    torch.manual_seed(0)
    dense = create_model("timm/resnet18", num_classes=10).to(device)
    where = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"

    # warm-up: cuDNN autotuning, allocator growth, first-call costs
    epoch(copy.deepcopy(dense), x[: 2 * BATCH], y_t[: 2 * BATCH], device)
    analyse(dense.eval(), x[:BATCH], y[:BATCH], device)

    def pruned_pipeline() -> None:
        model = copy.deepcopy(dense)
        create_method("global_magnitude", sparsity=0.9).apply(model)
        epoch(model, x, y_t, device)
        analyse(model.eval(), x, y, device)

    def dense_pipeline() -> None:
        model = copy.deepcopy(dense)
        epoch(model, x, y_t, device)
        analyse(model.eval(), x, y, device)

    pruned_90 = copy.deepcopy(dense)
    create_method("global_magnitude", sparsity=0.9).apply(pruned_90)
    t: dict[str, list[float]] = {k: [] for k in ("pp", "dp", "an", "pl", "pe", "de")}
    for _ in range(args.repeats):
        t["pp"].append(timed(device, pruned_pipeline))
        t["dp"].append(timed(device, dense_pipeline))
        t["an"].append(timed(device, lambda: analyse(dense.eval(), x, y, device)))
        t["pl"].append(timed(device, lambda: plain(dense.eval(), x, device)))
        t["pe"].append(timed(device, lambda: epoch(pruned_90, x, y_t, device)))
        t["de"].append(timed(device, lambda: epoch(dense, x, y_t, device)))
    m = {k: statistics.median(v) for k, v in t.items()}
    n = f"{args.n // 1000}k" if args.n >= 1000 else str(args.n)
    bench_line(
        "gpu_prune_analyze_timm_resnet18",
        m["pp"],
        "s",
        m["dp"],
        f"dense_epoch+analysis_{n}({m['dp']:.2f}s,{where})",
    )
    bench_line(
        "gpu_analysis_overhead_timm_resnet18",
        m["an"] / m["pl"],
        "x",
        1.0,
        f"plain_inference_{n}({m['pl']:.2f}s;full_analysis={m['an']:.2f}s,{where})",
    )
    bench_line(
        "gpu_masked_finetune_epoch",
        m["pe"] / m["de"],
        "x",
        1.0,
        f"dense_finetune_epoch_{n}({m['de']:.2f}s,{where})",
    )


if __name__ == "__main__":
    main()
