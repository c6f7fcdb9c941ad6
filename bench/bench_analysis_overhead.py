"""Issue 4 and 16 figures: the cost of the full per-sample analysis against plain inference.

Full analysis of 10,000 CIFAR-size samples with ResNet-20 (issue 4) and with timm's ResNet-18
(``timm/resnet18``, an architecture nobody here wrote, issue 16; target ratio <= 1.1):
penultimate features through the classifier hook, logits, per-sample geometry (angles to
every class, length, margins), summary (accuracy, recall, confusion), flips against a second
model's predictions, and the per-sample Parquet table, exactly as the analyze job computes
them. Baseline, same run: a plain inference pass (model(x) under inference_mode, argmax) over
the same samples. One CPU thread for both; the median of two runs each, in alternating order.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_line  # noqa: E402

from backend.analysis.features import extract_features  # noqa: E402
from backend.analysis.geometry import class_geometry, sample_geometry  # noqa: E402
from backend.analysis.metrics import flip_categories, summarize  # noqa: E402
from backend.jobs.kinds.analyze import GEOMETRY_COLUMNS, samples_table  # noqa: E402
from models.registry import create  # noqa: E402

N, BATCH, REPEATS = 10_000, 128, 2


def plain_inference(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    preds = []
    with torch.inference_mode():
        for i in range(0, len(x), BATCH):
            preds.append(model(x[i : i + BATCH]).argmax(1))
    return torch.cat(preds).numpy()


def full_analysis(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, other: np.ndarray) -> int:
    out = extract_features(model, x, batch_size=BATCH)
    geom = sample_geometry(out.features, out.weight, out.bias, y)
    table = samples_table(y, out.logits)
    for column in GEOMETRY_COLUMNS:
        table[column] = getattr(geom, column).astype(np.float32)
    for c in range(geom.angles.shape[1]):
        table[f"a{c}"] = geom.angles[:, c].astype(np.float32)
    summary = summarize(y, table["pred"].to_numpy(), 10)
    class_geometry(geom, y, out.weight, 10)
    flip_categories(y, table["pred"].to_numpy(), other)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    return int(summary.confusion.sum())


def measure(figure: str, architecture: str, **kwargs: object) -> None:
    torch.manual_seed(0)
    model = create(architecture, num_classes=10, **kwargs).eval()
    x = torch.rand(N, 3, 32, 32)
    y = np.random.default_rng(0).integers(0, 10, N)
    other = np.random.default_rng(1).integers(0, 10, N)
    plain_inference(model, x[:BATCH])  # warm-up of both paths
    full_analysis(model, x[:BATCH], y[:BATCH], other[:BATCH])
    plain_t: list[float] = []
    full_t: list[float] = []

    def time_plain() -> None:
        t0 = time.perf_counter()
        plain_inference(model, x)
        plain_t.append(time.perf_counter() - t0)

    def time_full() -> None:
        t0 = time.perf_counter()
        assert full_analysis(model, x, y, other) == N
        full_t.append(time.perf_counter() - t0)

    for r in range(REPEATS):
        # whichever runs first pays for the allocator growing: alternate the order
        for step in (time_plain, time_full) if r % 2 == 0 else (time_full, time_plain):
            step()
    plain, full = statistics.median(plain_t), statistics.median(full_t)
    short = architecture.replace("/", "_")
    bench_line(
        figure,
        full / plain,
        "x",
        1.0,
        f"plain_inference_{short}_10k({plain:.2f}s;full_analysis={full:.2f}s,cpu,1_thread)",
    )


def main() -> None:
    torch.set_num_threads(1)
    measure("analysis_overhead", "resnet20", in_channels=3)
    measure("analysis_overhead_timm_resnet18", "timm/resnet18")


if __name__ == "__main__":
    main()
