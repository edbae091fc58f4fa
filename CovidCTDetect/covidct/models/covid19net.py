"""COVID-19Net: the DenseNet-like 3D CNN of Wang et al. 2020, with its 64-d deep-learning feature.

Input ``x``: float tensor ``(N, 1, D, H, W)``, the z-scored lung-ROI of
:func:`covidct.preprocess.covid19net.covid19net_input` (``48 × 240 × 360`` in the paper), canonical
LPS array order. Output: one logit per case ``(N, 1)``; :meth:`COVID19Net.features` gives the
64-d feature vector (global average pooling after the last convolution) that the prognosis Cox
model uses; "the output neuron is fully connected to the DL features".

The paper's supplementary table S1 (exact layer list) is not available; its text and Figure 2 give:
four dense blocks of convolution + batch norm + ReLU with dense connections inside each block,
3×3×3 and 1×1×1 convolutions, max pooling with stride 2, global average pooling to 64 features.
This implementation (defaults; all are constructor arguments recorded in a model card's ``config``):

==========================================================  ==================================
stem: Conv3d(1, 16) 3×3×3 stride (1,2,2) + BN + ReLU,         16 × 48 × 60 × 90
      MaxPool3d 1×2×2 (in-plane only: the ROI's slices are
      ~6 mm apart against ~0.9 mm pixels, so this makes the
      voxels roughly cubic, ~6 × 3.5 × 3.5 mm)
dense1: 2 layers, growth 16                                  48 × 48 × 60 × 90
trans1: BN + ReLU + Conv 1×1×1 (×0.5) + MaxPool 2 stride 2   24 × 24 × 30 × 45
dense2: 4 layers                                             88 × 24 × 30 × 45
trans2                                                       44 × 12 × 15 × 23
dense3: 6 layers                                            140 × 12 × 15 × 23
trans3                                                       70 × 6 × 8 × 12
dense4: 4 layers                                            134 × 6 × 8 × 12
head: BN + ReLU + Conv 1×1×1 → 64 + BN + ReLU, global avg    64 (the DL feature)
fc: Linear(64, 1)                                            1
==========================================================  ==================================

A dense layer is BN-ReLU-Conv1×1×1 (bottleneck to 4 × growth channels) then BN-ReLU-Conv3×3×3
(growth channels), its output concatenated to its input (Huang et al. 2017, DenseNet-BC). Max
pooling uses ``ceil_mode`` so odd sizes keep their border. With these defaults the network has
543 k parameters and needs 42 GFLOP per forward pass at 48 × 240 × 360 (about 1 s on 2 CPU cores,
a training step about 2 s and 1.2 GB); DenseNet-121's proportions (3, 6, 12, 8) would double the
cost for a cohort of hundreds of cases. Figures: ``Testing/benchmarks/bench_models.py``.

``cam_layer`` is ``dense3`` (12 × 15 × 23 for the paper's input, ~20 mm cells over the ROI): the
last dense block's output, ``dense4``, is only 6 × 8 × 12, too coarse for a heat map of the lungs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: length of the deep-learning feature vector
FEATURES = 64


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1×1×1 (→ ``bottleneck`` channels) then BN-ReLU-Conv3×3×3 (→ ``growth``); returns
    the input with the new ``growth`` channels concatenated."""

    def __init__(self, in_ch: int, growth: int, bottleneck: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm3d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv3d(in_ch, bottleneck, 1, bias=False),
            nn.BatchNorm3d(bottleneck),
            nn.ReLU(inplace=True),
            nn.Conv3d(bottleneck, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class DenseBlock(nn.Sequential):
    """``layers`` dense layers; every layer sees the block input and all earlier layers' outputs."""

    def __init__(self, in_ch: int, layers: int, growth: int, bottleneck: int):
        super().__init__(*(DenseLayer(in_ch + i * growth, growth, bottleneck) for i in range(layers)))
        self.out_channels = in_ch + layers * growth


class Transition(nn.Sequential):
    """BN-ReLU-Conv1×1×1 (``in_ch → out_ch``) then max pooling, window 2, stride 2."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.BatchNorm3d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv3d(in_ch, out_ch, 1, bias=False),
            nn.MaxPool3d(2, stride=2, ceil_mode=True),
        )


class COVID19Net(nn.Module):
    """DenseNet-like 3D CNN: ``forward((N, 1, D, H, W)) -> logits (N, 1)``; ``features`` → ``(N, 64)``.

    ``growth``: channels each dense layer adds; ``block_layers``: layers in the four dense blocks;
    ``stem_channels``: stem width; ``compression``: channel factor of each transition;
    ``bottleneck_factor``: bottleneck width as a multiple of ``growth``. Any input size works
    (ceil-mode pooling, then global average pooling).
    """

    architecture = "covid19net"
    in_channels = 1

    def __init__(
        self,
        growth: int = 16,
        block_layers: tuple[int, ...] = (2, 4, 6, 4),
        stem_channels: int = 16,
        compression: float = 0.5,
        bottleneck_factor: int = 4,
    ):
        super().__init__()
        if len(block_layers) != 4:
            raise ValueError("COVID19Net has four dense blocks; block_layers needs four numbers")
        self.stem = nn.Sequential(
            nn.Conv3d(1, stem_channels, 3, stride=(1, 2, 2), padding=1, bias=False),
            nn.BatchNorm3d(stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2), ceil_mode=True),
        )
        channels = stem_channels
        stages = []
        for index, layers in enumerate(block_layers):
            block = DenseBlock(channels, layers, growth, bottleneck_factor * growth)
            channels = block.out_channels
            stages.append(block)
            if index < len(block_layers) - 1:
                out = max(int(channels * compression), 1)
                stages.append(Transition(channels, out))
                channels = out
        self.dense1, self.trans1, self.dense2, self.trans2, self.dense3, self.trans3, self.dense4 = stages
        self.head = nn.Sequential(
            nn.BatchNorm3d(channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, FEATURES, 1, bias=False),
            nn.BatchNorm3d(FEATURES),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(1),
        )
        self.fc = nn.Linear(FEATURES, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose activations and gradients HiResCAM uses (``dense3``, see module docstring)."""
        return self.dense3

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d deep-learning feature ``(N, 64)`` (global average pooling, non-negative)."""
        x = self.trans1(self.dense1(self.stem(x)))
        x = self.trans3(self.dense3(self.trans2(self.dense2(x))))
        return self.head(self.dense4(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, 1, D, H, W)`` float → logits ``(N, 1)`` (the single output neuron)."""
        return self.fc(self.features(x))

    @staticmethod
    def probability(logits: torch.Tensor) -> torch.Tensor:
        """P(COVID-19) per case, ``(N,)``: sigmoid of the output neuron."""
        return torch.sigmoid(logits.float()).reshape(-1)

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy (with logits) of ``(N, 1)`` logits against labels ``(N,)`` in {0, 1}."""
        return F.binary_cross_entropy_with_logits(logits.float().reshape(-1), labels.float().reshape(-1))
