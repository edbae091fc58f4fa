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

``layout="released"`` builds the authors' released ``myDenseNetv2`` instead (the twin that
:mod:`covidct.models.published` imports their Keras weights into; 894,545 parameters): a stem of
two 3×3×3 convolutions (the first with stride (1, 2, 2)), dense blocks of 2, 3 and 4 layers (16, 24
and 32 filters) whose layers are BN-ReLU-Conv3×3×3-BN-ReLU-Conv3×3×3 (no bottleneck), 1×1×1
transitions to 16 and 24 channels, 2×2×2 max-pooling after each of the three blocks, a final
BN-ReLU, a fourth block of 2 layers × 32 ("EGFR" in their names), a (1, 2, 2) max-pool, a 1×1×1
transition to 64 channels and global average pooling: the 64-d feature; then one sigmoid output.
Its submodules carry the Keras layer names, its batch norms ε = 1.001e-5, and its convolutions and
poolings TensorFlow's 'same' padding (where a stride-2 window meets an even size the extra row goes
at the end), so the same weights give the same numbers. Its ``cam_layer`` is ``block_31``, the third
dense block (12 × 30 × 45 at 48 × 240 × 360).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: length of the deep-learning feature vector
FEATURES = 64
#: network layouts: this package's DenseNet-BC-like default, or the authors' released myDenseNetv2
LAYOUTS = ("default", "released")
#: batch-norm epsilon of the released Keras model
KERAS_BN_EPS = 1.001e-5


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
        layout: str = "default",
    ):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"COVID19Net layout must be one of {', '.join(LAYOUTS)} (got {layout!r})")
        self.layout = layout
        if layout == "released":
            self.released = ReleasedDenseNet()
            self.fc = nn.Linear(FEATURES, 1)
            return
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
        """The module whose activations and gradients HiResCAM uses (``dense3``, or ``block_31`` of the
        released layout; see the module docstring)."""
        return self.released.block_31 if self.layout == "released" else self.dense3

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d deep-learning feature ``(N, 64)`` (global average pooling, non-negative)."""
        if self.layout == "released":
            return self.released(x)
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


class SamePad(nn.Module):
    """TensorFlow's 'same' padding for a following convolution or pooling of ``kernel`` and ``stride``
    (3D): ``ceil(n / stride)`` outputs, the padding split with the odd extra at the end, filled with
    ``value`` (0 for convolutions, -inf for max-pooling)."""

    def __init__(self, kernel, stride, value: float = 0.0):
        super().__init__()
        self.kernel, self.stride, self.value = tuple(kernel), tuple(stride), value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad: list[int] = []
        for n, k, s in zip(reversed(x.shape[-3:]), reversed(self.kernel), reversed(self.stride), strict=True):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pad += [total // 2, total - total // 2]
        return F.pad(x, pad, value=self.value) if any(pad) else x


def _keras_bn(channels: int) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=KERAS_BN_EPS, momentum=0.01)


class _ReleasedLayer(nn.Module):
    """One dense layer of myDenseNetv2 (``<name>_<i>``): BN-ReLU-Conv3×3×3-BN-ReLU-Conv3×3×3, its
    output concatenated after its input."""

    def __init__(self, in_ch: int, filters: int):
        super().__init__()
        self.bn0 = _keras_bn(in_ch)
        self.conv1 = nn.Conv3d(in_ch, filters, 3, padding=1, bias=False)
        self.bn1 = _keras_bn(filters)
        self.conv2 = nn.Conv3d(filters, filters, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn0(x)))
        return torch.cat([x, self.conv2(F.relu(self.bn1(y)))], dim=1)


class _ReleasedTransition(nn.Sequential):
    """``<name>_trans``: BN-ReLU-Conv1×1×1."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(_keras_bn(in_ch), nn.ReLU(), nn.Conv3d(in_ch, out_ch, 1, bias=False))


def _released_block(in_ch: int, filters: list[int]) -> nn.Sequential:
    """A dense block of myDenseNetv2: one :class:`_ReleasedLayer` per entry of ``filters``."""
    return nn.Sequential(*(_ReleasedLayer(in_ch + sum(filters[:i]), width) for i, width in enumerate(filters)))


def _same_max_pool(kernel) -> nn.Sequential:
    return nn.Sequential(SamePad(kernel, kernel, float("-inf")), nn.MaxPool3d(kernel, stride=kernel))


class ReleasedDenseNet(nn.Module):
    """The authors' myDenseNetv2 up to its 64-d global-average feature (see the module docstring);
    submodule names follow the Keras layer names (dense blocks as ``block_11``, ``block_21``,
    ``block_31``, ``EGFR_block_11``; transitions as ``block13``, ``block23``, ``EGFR_block_12``)."""

    def __init__(self):
        super().__init__()
        self.block0_conv1 = nn.Sequential(SamePad((3, 3, 3), (1, 2, 2)), nn.Conv3d(1, 16, 3, (1, 2, 2), bias=False))
        self.block0_bn1 = _keras_bn(16)
        self.block0_conv2 = nn.Conv3d(16, 16, 3, padding=1, bias=False)
        self.block_11 = _released_block(16, [16, 16])  # 16 -> 48 channels
        self.block13 = _ReleasedTransition(48, 16)
        self.block_21 = _released_block(16, [24] * 3)  # -> 88
        self.block23 = _ReleasedTransition(88, 24)
        self.block_31 = _released_block(24, [32] * 4)  # -> 152
        self.block_final_bn = _keras_bn(152)
        self.EGFR_block_11 = _released_block(152, [32, 32])  # -> 216
        self.EGFR_block_12 = _ReleasedTransition(216, FEATURES)
        self.pool2 = _same_max_pool((2, 2, 2))
        self.pool_inplane = _same_max_pool((1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, D, H, W)`` → the 64-d feature ``(N, 64)``."""
        x = self.block0_conv2(F.relu(self.block0_bn1(self.block0_conv1(x))))
        x = self.pool2(self.block13(self.block_11(x)))
        x = self.pool2(self.block23(self.block_21(x)))
        x = F.relu(self.block_final_bn(self.pool2(self.block_31(x))))
        x = self.EGFR_block_12(self.pool_inplane(self.EGFR_block_11(x)))
        return x.mean(dim=(2, 3, 4))
