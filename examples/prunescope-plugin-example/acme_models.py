"""ACME's own architectures for PruneScope: an example plug-in.

PruneScope finds the factories through the entry-point group ``prunescope.architectures`` that
pyproject.toml declares; nothing here imports PruneScope. A factory keeps the registry's contract:

* keyword arguments only, with JSON values (they are stored next to the weights);
* ``num_classes``, ``in_channels`` and ``input_shape`` are filled from the dataset when the
  factory takes them, so ``prunescope train --arch acme/tinynet`` needs no arguments;
* ``forward`` returns logits (N, C) from a final ``nn.Linear`` named ``classifier``: its input is
  the penultimate feature PruneScope's geometry views measure.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["TinyNet", "tinynet"]


class TinyNet(nn.Module):
    """Two 3x3 convolutions (the second with stride 2), global average pooling, a classifier."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 16) -> None:
        super().__init__()
        # one ReLU module per use: a hook on a ReLU fires once per forward
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W), any H and W -> logits (N, num_classes)."""
        return self.classifier(self.features(x))


def tinynet(num_classes: int = 10, in_channels: int = 3) -> TinyNet:
    """A tiny two-convolution CNN for small images of any size (ACME's example network).

    Args:
        num_classes: Number of classes C (the logits' width).
        in_channels: Channels of the input images (1 for grey, 3 for RGB).

    Raises:
        ValueError: If an argument is not a positive integer, naming it.
    """
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} should be a positive integer")
    return TinyNet(num_classes, in_channels)
