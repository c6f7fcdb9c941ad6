"""Layer comparison (SCIENCE.md sect. 7) cost on resnet20: linear CKA of every prunable layer.

layer_cka: wall time of :func:`backend.analysis.layers.compare_layers` for a random-init
resnet20 (A) against a copy magnitude-pruned to 70 % per layer (B) on 1,000 random 32 x 32
images: forward passes of A and B with the layer outputs kept a slice at a time, the n x n
float64 centred Gram matrices of all 21 layers, dead-ReLU rates, weight figures. The ratio is
against one plain forward pass of the same 1,000 samples through A and through B (batch 64,
no hooks), the least any per-layer comparison on those samples has to do.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_line  # noqa: E402

import models  # noqa: E402, F401  (registers the architectures)
from backend.analysis.layers import compare_layers  # noqa: E402
from backend.pruning.masks import apply_masks, prunable_layers  # noqa: E402
from models.registry import create as create_model  # noqa: E402

N = 1000
SPARSITY = 0.7
BATCH = 64


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    a = create_model("resnet20").eval()
    b = copy.deepcopy(a)
    masks = {}
    for name, module in prunable_layers(b):
        w = module.weight.detach().abs().flatten()
        k = int(SPARSITY * w.numel())
        masks[name] = (module.weight.detach().abs() > w.kthvalue(k).values).float()
    apply_masks(b, masks)
    x = torch.rand(N, 3, 32, 32)
    t0 = time.perf_counter()
    with torch.no_grad():
        for model in (a, b):
            for start in range(0, N, BATCH):
                model(x[start : start + BATCH])
    t_forward = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = compare_layers(a, [b], x, batch_size=BATCH)[0]
    t_cka = time.perf_counter() - t0
    mean_cka = sum(r.cka or 0.0 for r in rows) / len(rows)
    bench_line(
        "layer_cka",
        t_cka,
        "s",
        t_forward,
        f"forward_A_and_B({t_forward:.3g}s;resnet20,n={N},layers={len(rows)},"
        f"mean_cka={mean_cka:.3f},threads=1)",
    )


if __name__ == "__main__":
    main()
