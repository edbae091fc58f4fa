"""UNet2D: the 2D lung-segmentation network of the DeCoVNet paper (Ronneberger et al. 2015, lighter).

Input ``x``: float tensor ``(N, 1, H, W)``, one canonical axial CT slice per item, windowed to 0…1
(−1200…600 HU, :mod:`covidct.preprocess.unet`). Output: logits ``(N, 2, H, W)``, channel 1 = lung.
Any ``H, W`` works (the input is padded to a multiple of ``2**(levels - 1)`` and the output cropped).

The paper says only "a simple 2D UNet". The original UNet (64…1024 channels, 31 M parameters) is
far more than a binary lung mask needs and takes tens of seconds per CT on a CPU, so this one is
lighter, with the same shape:

* ``levels`` resolution levels (default 4: full, 1/2, 1/4, 1/8), ``base`` channels at full
  resolution (default 16), doubled at every level down: 16-32-64-128.
* Each level: two 3×3 convolutions, each followed by batch norm and ReLU. Down: 2×2 max-pool.
  Up: 2×2 transposed convolution (stride 2), concatenation with the skip connection, two 3×3
  convolutions. Head: 1×1 convolution to 2 classes.
* Defaults: 0.48 M parameters (``UNet2D().parameter_count()``); receptive field ≈ 140 voxels, about
  200 mm at 368 × 368 over a 512-voxel field of view, so a lesion is seen together with the pleura
  around it. ``base=8`` gives 0.12 M parameters at about a third of the run time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UNet2D(nn.Module):
    """A UNet for ``(N, in_channels, H, W)`` → logits ``(N, classes, H, W)``; see the module docstring."""

    def __init__(self, in_channels: int = 1, classes: int = 2, base: int = 16, levels: int = 4):
        super().__init__()
        if levels < 2 or base < 1:
            raise ValueError(f"UNet2D needs levels >= 2 and base >= 1 (got levels={levels}, base={base})")
        self.levels = levels
        widths = [base * 2**i for i in range(levels)]
        self.down = nn.ModuleList(
            [_double_conv(in_channels, widths[0])] + [_double_conv(widths[i - 1], widths[i]) for i in range(1, levels)]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(levels - 1, 0, -1)]
        )
        self.merge = nn.ModuleList([_double_conv(2 * widths[i - 1], widths[i - 1]) for i in range(levels - 1, 0, -1)])
        self.head = nn.Conv2d(widths[0], classes, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2 ** (self.levels - 1)
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)[..., :height, :width]

    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
