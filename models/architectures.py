"""Built-in architectures.

Every model here follows two conventions the rest of PruneScope relies on:

* the final ``nn.Linear`` is the attribute ``model.classifier`` and produces the logits, so the
  penultimate feature f of SCIENCE.md sect. 1 is the input of ``model.classifier``;
* ``forward_features(x)`` returns that feature, shape (N, D), and
  ``forward(x) == classifier(forward_features(x))`` returns logits, shape (N, C).

Images are (N, C, H, W) float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from models.registry import register_model

__all__ = ["MLP", "BasicBlock", "DigitsCNN", "ResNetCIFAR", "digits_cnn", "mlp", "resnet20"]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} should be a positive integer")
    return value


class MLP(nn.Module):
    """Flatten -> [Linear, ReLU] * len(hidden) -> Linear classifier."""

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, *input_shape) -> penultimate features (N, hidden[-1])."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """(N, *input_shape) -> logits (N, C)."""
        return self.classifier(self.forward_features(x))


@register_model("mlp")
def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (128, 64),
) -> MLP:
    """Fully connected ReLU network on the flattened input.

    Args:
        input_shape: Shape of one sample without the batch dimension, e.g. ``[1, 8, 8]``.
        num_classes: Number of classes C.
        hidden: Widths of the hidden layers (may be empty: a linear model).
    """
    shape = [_check_positive_int("input_shape", d) for d in input_shape]
    if not shape:
        raise ValueError(f"input_shape={list(input_shape)!r} should not be empty")
    widths = [_check_positive_int("hidden", h) for h in hidden]
    return MLP(math.prod(shape), _check_positive_int("num_classes", num_classes), widths)


class DigitsCNN(nn.Module):
    """Small CNN for 8x8 images (sklearn digits); no BatchNorm.

    Conv(in,16,3,p1)-ReLU-Conv(16,32,3,p1)-ReLU-MaxPool2 -> Conv(32,64,3,p1)-ReLU-MaxPool2
    -> Flatten -> Linear(64*2*2, 64)-ReLU -> classifier Linear(64, C).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, 64),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(64, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, in_channels, 8, 8) -> penultimate features (N, 64)."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, 8, 8) -> logits (N, C)."""
        return self.classifier(self.forward_features(x))


@register_model("digits_cnn")
def digits_cnn(num_classes: int = 10, in_channels: int = 1) -> DigitsCNN:
    """Small 3-conv CNN for 8x8 inputs (sklearn digits), no BatchNorm.

    Args:
        num_classes: Number of classes C.
        in_channels: Channels of the 8x8 input.
    """
    return DigitsCNN(
        _check_positive_int("num_classes", num_classes),
        _check_positive_int("in_channels", in_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or 1x1-conv+BN projection shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # Separate modules (not one shared ReLU) so a hook on a ReLU fires once per use.
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_planes, H, W) -> (N, planes, H / stride, W / stride)."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """CIFAR ResNet (He et al. 2016, sect. 4.2): 3 stages of n BasicBlocks, 16/32/64 channels."""

    def __init__(
        self,
        blocks_per_stage: int = 3,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: Sequence[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        stages: list[nn.Module] = []
        in_planes = widths[0]
        for i, planes in enumerate(widths):
            blocks: list[nn.Module] = []
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(in_planes, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> globally pooled features (N, 64)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.flatten(self.pool(x))

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> logits (N, C)."""
        return self.classifier(self.forward_features(x))


@register_model("resnet20")
def resnet20(num_classes: int = 10, in_channels: int = 3) -> ResNetCIFAR:
    """ResNet-20 for 32x32 images (He et al., "Deep Residual Learning", CVPR 2016).

    Deviation from the paper: shortcuts that change shape use a 1x1 conv + BN projection
    (the paper's option B) instead of option A's zero padding, so every parameter is an ordinary
    Conv2d/BatchNorm2d that pruning and checkpoints handle uniformly.

    Args:
        num_classes: Number of classes C.
        in_channels: Channels of the input image.
    """
    return ResNetCIFAR(
        blocks_per_stage=3,
        num_classes=_check_positive_int("num_classes", num_classes),
        in_channels=_check_positive_int("in_channels", in_channels),
    )
