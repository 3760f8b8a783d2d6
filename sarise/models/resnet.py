"""ResNet-18/34/50 in plain torch, returning the logits and the pooled feature vector.

The layout follows He et al. (2016) with the stem and block order of timm's ``resnet``;
the width (channels of the first stage) and the input channels are free, so a narrow
model for CPUs and a single-channel microscope input are the same code.

>>> import torch
>>> model = resnet18(num_classes=17, in_chans=1, width=16)
>>> logits, features = model(torch.zeros(2, 1, 64, 64))
>>> tuple(logits.shape), tuple(features.shape)
((2, 17), (2, 128))
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["ARCHS", "ResNet", "create_model", "fold_batchnorm", "resnet18", "resnet34", "resnet50"]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, in_ch: int, ch: int, stride: int = 1):
        super().__init__()
        out_ch = ch * self.expansion
        self.conv1 = nn.Conv2d(in_ch, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return self.act(x + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut."""

    expansion = 4

    def __init__(self, in_ch: int, ch: int, stride: int = 1):
        super().__init__()
        out_ch = ch * self.expansion
        self.conv1 = nn.Conv2d(in_ch, ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.conv3 = nn.Conv2d(ch, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, out_ch, stride)

    def last_norm(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        x = self.act(self.bn1(self.conv1(x)))
        x = self.act(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        return self.act(x + shortcut)


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNet(nn.Module):
    """A ResNet whose forward returns ``(logits, features)``.

    Parameters
    ----------
    block : {BasicBlock, Bottleneck}
    layers : sequence of 4 int
        Blocks per stage.
    num_classes : int
        Outputs of the classifier head (17 wallpaper groups).
    in_chans : int
        Input channels (1 for a single microscope channel).
    width : int
        Channels of the stem and first stage; stage ``i`` has ``width * 2**i``
        (times 4 for bottlenecks). 64 is the standard ResNet.
    zero_init_residual : bool
        Start each residual branch at zero (its last BatchNorm scale is 0), which
        helps short training runs.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        *,
        num_classes: int = 17,
        in_chans: int = 1,
        width: int = 64,
        zero_init_residual: bool = True,
    ):
        super().__init__()
        if width < 1 or in_chans < 1 or num_classes < 1:
            raise ValueError("width, in_chans and num_classes must be >= 1")
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        in_ch = width
        for i, n in enumerate(layers):
            ch = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(in_ch, ch, stride=2 if (i > 0 and j == 0) else 1))
                in_ch = ch * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_ch
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    nn.init.zeros_(m.last_norm().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features, shape ``(batch, num_features)``."""
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.forward_features(x)
        return self.fc(features), features


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: basic blocks (2, 2, 2, 2); 512 features at width 64."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: basic blocks (3, 4, 6, 3); 512 features at width 64."""
    return ResNet(BasicBlock, (3, 4, 6, 3), **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: bottlenecks (3, 4, 6, 3); 2048 features at width 64."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


def fold_batchnorm(model: ResNet) -> ResNet:
    """A copy of ``model`` for inference, each BatchNorm folded into the convolution before it.

    Every ``conv -> bn`` pair (stem, blocks, projection shortcuts) becomes one convolution
    with a bias, computed with the BatchNorm's running statistics (its evaluation mode):
    the same function up to rounding, one pass over the activations fewer per layer.
    ``model`` itself is left as it is.

    >>> model = resnet18(num_classes=17, width=8).eval()
    >>> x = torch.randn(2, 1, 32, 32)
    >>> folded = fold_batchnorm(model)
    >>> torch.allclose(folded.forward_features(x), model.forward_features(x), atol=1e-5)
    True
    >>> any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    False
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        for i in (1, 2, 3):
            conv, bn = getattr(module, f"conv{i}", None), getattr(module, f"bn{i}", None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                setattr(module, f"conv{i}", fuse_conv_bn_eval(conv, bn))
                setattr(module, f"bn{i}", nn.Identity())
        shortcut = getattr(module, "downsample", None)
        if isinstance(shortcut, nn.Sequential) and isinstance(shortcut[1], nn.BatchNorm2d):
            module.downsample = fuse_conv_bn_eval(shortcut[0], shortcut[1])
    return folded


ARCHS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def create_model(arch: str = "resnet18", **kwargs) -> ResNet:
    """Build a model by name (``resnet18``, ``resnet34`` or ``resnet50``)."""
    try:
        return ARCHS[arch](**kwargs)
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}") from None
