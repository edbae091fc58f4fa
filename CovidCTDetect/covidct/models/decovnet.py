"""DeCoVNet: the 3D CNN of Zheng et al. 2020 (Table 1), classifying a CT volume + lung mask.

Input ``x``: float tensor ``(N, 2, T, H, W)`` in canonical LPS array order (T slices from inferior
to superior, H anterior→posterior, W right→left); channel 0 is the CT windowed to 0…1
(−1200…600 HU), channel 1 the lung mask (0/1). The paper feeds ``T × 224 × 336`` with T the
CT's own slice count (73…250 in its cohort); Table 1 lists the sizes for ``T × 192 × 288``.
Output: logits ``(N, 2)`` (index 1 = COVID-19 positive).

Stage sizes for a ``2 × T × 192 × 288`` input (Table 1; ``T/2`` is rounded up here):

=====================================================  =========================
stem: Conv3d(2,16) 5×7×7 /(1,2,2) + BN + ReLU + pool     16 × T × 48 × 72
res1: ResBlock(16, 64) 3×1×1 & 1×3×3                     64 × T × 48 × 72
pool_t: MaxPool3d over T                                 64 × ⌈T/2⌉ × 48 × 72
res2: ResBlock(64, 128) 3×1×1 & 1×3×3, stride 2 in-plane 128 × ⌈T/2⌉ × 24 × 36
classifier: AdaptiveMaxPool3d                           128 × 16 × 24 × 36
  Conv3d(128, 64) 3×3×3 + ReLU                            64 × 16 × 24 × 36
  AdaptiveMaxPool3d                                       64 × 4 × 12 × 18
  Conv3d(64, 32) 3×3×3 + ReLU, Dropout3d(0.5)             32 × 4 × 12 × 18
  Conv3d(32, 32) 3×3×3 + ReLU                             32 × 4 × 12 × 18
  AdaptiveMaxPool3d, FC(32, 2)                            2
=====================================================  =========================

Details the table leaves open, chosen here (and why):

* The stem's pooling is a 1×3×3 max-pool with stride (1, 2, 2) (the ResNet stem), so the in-plane
  size is divided by 4 and T is kept, as the table's output sizes require.
* A ResBlock is a bottleneck residual block (He et al. 2016): 3×1×1 conv (in → out/4) + BN + ReLU,
  1×3×3 conv (out/4 → out/4, in-plane stride) + BN + ReLU, 1×1×1 conv (→ out) + BN; the shortcut is
  the 1×1×1 convolution + BN the paper mentions "for dimension alignment"; sum, then ReLU. This is
  the layout of the authors' released code (read for understanding, not copied).
* The max-pool over T uses ``ceil_mode`` so an odd T keeps its last slice and T = 1 still works.
* Weights: He (Kaiming) initialisation of the convolutions' weights. (Zero-initialising the last BN
  of each residual branch, as the released code does, would leave the branches nearly switched off
  for thousands of steps at the paper's Adam learning rate of 1e-5.)

``head="released"`` builds the network of the authors' released checkpoint instead (the
architectural twin :mod:`covidct.models.published` imports weights into): after the second
classifier convolution it max-pools adaptively to ``(1, 6, 9)`` before the third, its dropout is
p = 0, the classifier ends with two fully connected layers (32 → 32 → 2, nothing between them), and
the pooling over T drops the last slice of an odd T (no ``ceil_mode``).

``cam_layer`` is ``res2``, the last backbone stage, at ``⌈T/2⌉ × H/8 × W/8`` (28 × 42 in-plane for
the paper's 224 × 336): the finest layer whose channels have seen the whole backbone. The layer
feeding the classifier's last convolution is only 4 × 12 × 18 whatever the input, too coarse for a
heat map over a CT. The authors' released lesion-localisation code uses the same backbone output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: classifier heads: Table 1 of the paper, or the authors' released checkpoint
HEADS = ("table1", "released")


class ResBlock3d(nn.Module):
    """Bottleneck residual block with 3×1×1 and 1×3×3 kernels and a 1×1×1 convolution shortcut.

    ``(N, in_ch, T, H, W) -> (N, out_ch, T, ⌈H/stride⌉, ⌈W/stride⌉)``; ``stride`` is in-plane only.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, running_stats: bool = True):
        super().__init__()
        mid = out_ch // 4

        def bn(channels):
            return nn.BatchNorm3d(channels, track_running_stats=running_stats)

        self.branch = nn.Sequential(
            nn.Conv3d(in_ch, mid, (3, 1, 1), padding=(1, 0, 0), bias=False),
            bn(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            bn(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_ch, 1, bias=False),
            bn(out_ch),
        )
        self.shortcut = nn.Sequential(
            nn.Conv3d(in_ch, out_ch, 1, stride=(1, stride, stride), bias=False),
            bn(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.branch(x) + self.shortcut(x))


class DeCoVNet(nn.Module):
    """DeCoVNet (Table 1 of Zheng et al. 2020): ``forward((N, 2, T, H, W)) -> logits (N, 2)``.

    Any ``T >= 1`` and any in-plane size ``>= 16 × 16`` work: the progressive classifier's adaptive
    pooling fixes its sizes. ``dropout`` is the Dropout3d probability (0.5 in the paper). ``head``:
    ``"table1"`` (the paper) or ``"released"`` (the authors' checkpoint, see the module docstring).

    ``running_stats``: True (PyTorch's default) normalises with running averages at inference. False
    makes every BatchNorm use the statistics of the volume it sees, at inference as in training: with
    the paper's batch of one volume, training only ever normalises per volume, and running averages over
    volumes of different scanners and lengths then differ from what the network learnt with (the demo
    weights use False; feed one volume per forward pass then, as detection does).
    """

    architecture = "decovnet"
    in_channels = 2

    def __init__(self, dropout: float = 0.5, running_stats: bool = True, head: str = "table1"):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"DeCoVNet head must be one of {', '.join(HEADS)} (got {head!r})")
        self.stem = nn.Sequential(
            nn.Conv3d(2, 16, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(16, track_running_stats=running_stats),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.res1 = ResBlock3d(16, 64, running_stats=running_stats)
        self.pool_t = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1), ceil_mode=head == "table1")
        self.res2 = ResBlock3d(64, 128, stride=2, running_stats=running_stats)
        middle = [nn.Dropout3d(dropout)] if head == "table1" else [nn.AdaptiveMaxPool3d((1, 6, 9)), nn.Dropout3d(0.0)]
        self.classifier = nn.Sequential(
            nn.AdaptiveMaxPool3d((16, 24, 36)),
            nn.Conv3d(128, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool3d((4, 12, 18)),
            nn.Conv3d(64, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            *middle,
            nn.Conv3d(32, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool3d(1),
            nn.Flatten(1),
        )
        self.fc = nn.Linear(32, 2) if head == "table1" else nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 2))
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @property
    def cam_layer(self) -> nn.Module:
        """The module whose activations and gradients HiResCAM uses (``res2``, see module docstring)."""
        return self.res2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, 2, T, H, W)`` float → logits ``(N, 2)``."""
        x = self.res1(self.stem(x))
        x = self.res2(self.pool_t(x))
        return self.fc(self.classifier(x))

    @staticmethod
    def probability(logits: torch.Tensor) -> torch.Tensor:
        """P(COVID-19) per case, ``(N,)``: softmax over the two logits, positive class."""
        return torch.softmax(logits.float(), dim=1)[:, 1]

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of logits ``(N, 2)`` against labels ``(N,)`` in {0, 1}."""
        return F.cross_entropy(logits.float(), labels.long())
