"""Fourier sensitivity heat map (SCIENCE.md sect. 7; Yin et al., NeurIPS 2019) cost on resnet20.

fourier_heatmap: wall time of :func:`backend.analysis.fourier.fourier_error_maps` for a
random-init resnet20 on 200 random 32 x 32 x 3 images in [0, 1] at v = 4, batched over
frequencies (128 perturbed images per forward pass). The whole 32 x 32 map needs the 514
distinct basis images (a frequency and its mirror share one; 4 are self-conjugate), so 514 x
200 = 102,800 perturbed forward passes. The ratio is against the same number of plain forward
passes of unperturbed images in batches of the same size: the overhead of building the
basis, the signs and the perturbed batches, and of counting the errors.

On a CPU the full map takes many minutes on one thread, so ``--quick`` (the default without a
GPU) evaluates every 16th distinct frequency (33 of 514) on the same 200 samples and says so in
the baseline text; ``--full`` runs the whole map.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import bench_line  # noqa: E402

import models  # noqa: E402, F401  (registers the architectures)
from backend.analysis.fourier import distinct_frequencies, fourier_error_maps  # noqa: E402
from models.registry import create as create_model  # noqa: E402

N = 200
SIZE = 32
V = 4.0
BATCH = 128
QUICK_STEP = 16  # --quick: every 16th distinct frequency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="every 16th frequency (CPU default)")
    mode.add_argument("--full", action="store_true", help="all 514 distinct frequencies")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    quick = args.quick or (not args.full and device == "cpu")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("resnet20").eval().to(device)
    x = torch.rand(N, 3, SIZE, SIZE)
    y = torch.randint(0, 10, (N,))
    positions = distinct_frequencies(SIZE, SIZE)
    if quick:
        positions = positions[::QUICK_STEP]
    images = len(positions) * N

    # baseline: the same number of plain forward passes, same batch size
    xb = x[:BATCH].to(device)
    with torch.no_grad():
        model(xb)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        done = 0
        while done < images:
            take = min(BATCH, images - done)
            model(xb[:take]).argmax(1)
            done += take
        if device == "cuda":
            torch.cuda.synchronize()
    t_plain = time.perf_counter() - t0

    t0 = time.perf_counter()
    (errors,) = fourier_error_maps(
        [model],
        x,
        y,
        V,
        seed=0,
        clip=(0.0, 1.0),
        batch_size=BATCH,
        device=device,
        positions=positions,
    )
    if device == "cuda":
        torch.cuda.synchronize()
    t_map = time.perf_counter() - t0
    what = f"quick,{len(positions)}_of_514_freqs" if quick else "full,514_distinct_freqs(32x32_map)"
    bench_line(
        "fourier_heatmap",
        t_map,
        "s",
        t_plain,
        f"plain_forward({t_plain:.3g}s;{images}_images=freqs_x_n;{what},n={N},resnet20,"
        f"batch={BATCH},v={V:g},{device},threads=1)",
    )


if __name__ == "__main__":
    main()
