"""Importing an ONNX model (issue 16, sect. 3).

- onnx_import: a torchvision ResNet-18 (10 classes, 32x32 input, ~45 MB of weights; BatchNorm
  statistics randomised as after training, so that onnx2torch alone can convert it) exported
  with ``torch.onnx.export(dynamo=False)``, read with ``models.importer.read_checkpoint`` (parse
  without following paths, size checks from the declared shapes, ``onnx.checker``, operator
  check, onnx2torch conversion with the initializer sources, weight-stripped graph, finiteness,
  layer statistics), against ``onnx.load`` + ``onnx2torch.convert`` alone on the same file.
  Median of 5 runs each, interleaved, in one process (imports warmed up first).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import onnx  # noqa: E402
import onnx2torch  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from _common import bench_line  # noqa: E402

from models.importer import read_checkpoint  # noqa: E402

REPEATS = 5


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    # BatchNorm statistics as after training: a fresh network's fold into equal zero biases,
    # which the exporter shares through Identity nodes that onnx2torch alone cannot convert
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                model,
                (torch.randn(2, 3, 32, 32),),
                str(path),
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        read_checkpoint(path, None)  # warm-up: lazy imports, converter registration
        onnx2torch.convert(onnx.load(str(path)))
        ours, plain = [], []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            imported = read_checkpoint(path, None)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            onnx2torch.convert(onnx.load(str(path)))
            plain.append(time.perf_counter() - t0)
        assert imported.architecture == "onnx"
    bench_line(
        "onnx_import",
        statistics.median(ours),
        "s",
        statistics.median(plain),
        "onnx.load+onnx2torch",
    )


if __name__ == "__main__":
    main()
