"""Issue 2 figures: the demo pipeline's wall time and the server's peak memory.

Baseline, measured in the same run: a plain PyTorch training loop (the same digits_cnn, same
epochs, same optimiser and batch size, no server, no jobs, no database) in its own process.
The pipeline does more than that (3 extra fine-tuning epochs for each of two pruned models,
three analyses, worker spawn, API round trips), so its ratio shows the whole cost of the
product around the training a user would otherwise write by hand.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_line, run_measured  # noqa: E402

EPOCHS = 15

PLAIN = f"""
import time, torch, torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from models.registry import create
torch.set_num_threads(1)  # as the demo's worker does (PRUNESCOPE_TORCH_THREADS=1)
t0 = time.perf_counter()
d = load_digits()
x = (d.images / 16.0).astype("float32")[:, None]
xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, stratify=d.target,
                                      random_state=0)
xtr, xte, ytr, yte = (torch.from_numpy(a.copy()) for a in (xtr, xte, ytr, yte))
torch.manual_seed(0)
model = create("digits_cnn", num_classes=10, in_channels=1)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
for epoch in range({EPOCHS}):
    model.train()
    perm = torch.randperm(len(xtr), generator=g)
    for i in range(0, len(xtr), 64):
        idx = perm[i:i + 64]
        opt.zero_grad()
        F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
model.eval()
with torch.no_grad():
    acc = (model(xte).argmax(1) == yte).float().mean().item()
print(time.perf_counter() - t0, acc)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    py = sys.executable
    _, plain_rss, _, out = run_measured([py, "-c", PLAIN])
    plain_s, plain_acc = (float(v) for v in out.split())
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PRUNESCOPE_DATA_DIR": tmp, "PRUNESCOPE_PORT": str(free_port())}
        prunescope = str(Path(py).with_name("prunescope"))
        wall, server_rss, tree_rss, _ = run_measured(
            [prunescope, "demo", "--no-serve", "--fresh", "--epochs", str(EPOCHS)], env=env
        )
    bench_line(
        "demo_pipeline",
        wall,
        "s",
        plain_s,
        f"plain_training_loop_{EPOCHS}_epochs({plain_s:.2f}s,acc={plain_acc:.3f})",
    )
    bench_line(
        "demo_server_peak_rss",
        server_rss,
        "MiB",
        plain_rss,
        f"plain_training_process_peak_rss({plain_rss:.0f}MiB)",
    )
    bench_line(
        "demo_all_processes_peak_rss",
        tree_rss,
        "MiB",
        plain_rss,
        f"plain_training_process_peak_rss({plain_rss:.0f}MiB)",
    )


if __name__ == "__main__":
    main()
