"""Hessian eigenvalue density (SCIENCE.md sect. 7, the pruning limit) cost on resnet20.

hessian_density: wall time of :func:`backend.analysis.hessian.slq_density` with 20 Lanczos
iterations on 4 Rademacher vectors (80 Hessian-vector products by double back-propagation,
full reorthogonalisation) over the prunable weights of a random-init resnet20 (no download),
on one batch of 32 random 32 x 32 images in eval mode. The ratio is against 80 plain gradient
computations (forward + backward of the same loss with respect to the same weights) on the
same batch: the floor of any method that needs 80 products with the Hessian (a
Hessian-vector product costs a few gradients).
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
from backend.analysis.hessian import hessian_parameters, model_hvp, slq_density  # noqa: E402
from models.registry import create as create_model  # noqa: E402

ITERATIONS, VECTORS, BATCH = 20, 4, 32


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    x = torch.rand(BATCH, 3, 32, 32)
    y = torch.randint(0, 10, (BATCH,))
    hp = hessian_parameters(model)
    loss_fn = torch.nn.functional.cross_entropy

    t0 = time.perf_counter()
    for _ in range(ITERATIONS * VECTORS):
        torch.autograd.grad(loss_fn(model(x), y), hp.params)
    t_grad = time.perf_counter() - t0

    matvec = model_hvp(model, hp, [(x, y)])
    t0 = time.perf_counter()
    density = slq_density(matvec, hp.flat_mask(), ITERATIONS, VECTORS, seed=0)
    t_slq = time.perf_counter() - t0
    print(
        f"# D={hp.numel} nodes={len(density.nodes)} "
        f"lambda_max={density.nodes.max():.4g} lambda_min={density.nodes.min():.4g} "
        f"near_zero_mass={density.near_zero_mass():.3g}"
    )
    n = ITERATIONS * VECTORS
    bench_line("hessian_density", t_slq, "s", t_grad, f"{n}_gradient_computations({t_grad:.3g}s)")


if __name__ == "__main__":
    main()
