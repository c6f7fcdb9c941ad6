"""Exact 2-D region slice (SCIENCE.md sect. 5) throughput on the digits CNN.

region_slice_2d: wall time of :func:`backend.analysis.region_slice.slice_regions` for the
random-init digits_cnn on the plane through three sklearn-digits test images. The full square
[-0.25, 1.25]^2 holds several 10^5 regions, so the domain is shrunk to [0, 0.15]^2 (next to
p0) to stay well under 60 s. The ratio is (seconds per region) / (seconds per dense-grid
sample), a dense-grid sample being one float64 forward pass with pattern recording
(linear_regions.sample_patterns, batch 256) at a grid point of the same domain.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_line  # noqa: E402

import models  # noqa: E402, F401  (registers the architectures)
from backend.analysis.linear_regions import sample_patterns  # noqa: E402
from backend.analysis.region_slice import slice_regions  # noqa: E402
from backend.data import create as create_dataset  # noqa: E402
from models.registry import create as create_model  # noqa: E402

DOMAIN = (0.0, 0.15, 0.0, 0.15)
GRID = 64


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x_te, _ = create_dataset("digits").split("test")
    xt = torch.as_tensor(x_te)
    p0, p1, p2 = xt[0], xt[1], xt[2]
    model = create_model("digits_cnn").eval()
    t0 = time.perf_counter()
    res = slice_regions(model, p0, p1, p2, domain=DOMAIN, max_regions=200_000)
    t_slice = time.perf_counter() - t0
    u0, u1, v0, v1 = DOMAIN
    t0 = time.perf_counter()
    found: set[bytes] = set()
    for v in np.linspace(v0, v1, GRID):
        a = p0 + u0 * (p1 - p0) + v * (p2 - p0)
        b = p0 + u1 * (p1 - p0) + v * (p2 - p0)
        found |= set(sample_patterns(model, a, b, GRID))
    t_sample = (time.perf_counter() - t0) / GRID**2
    per_region = t_slice / res.n_regions
    bench_line(
        "region_slice_2d",
        t_slice,
        "s",
        t_slice * t_sample / per_region,
        f"dense_grid_sample({t_sample:.3g}s/sample;regions={res.n_regions},"
        f"patterns={res.n_patterns},polygons={len(res.polygons)},"
        f"regions_per_s={res.n_regions / t_slice:.4g},grid{GRID}x{GRID}_found={len(found)},"
        f"domain=[0,0.15]^2_shrunk,digits_cnn_random_init)",
    )


if __name__ == "__main__":
    main()
