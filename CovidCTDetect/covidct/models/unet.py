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


def _double_conv(in_ch: int, out_ch: int, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=bias),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UNet2D(nn.Module):
    """A UNet for ``(N, in_channels, H, W)`` → logits ``(N, classes, H, W)``; see the module docstring.

    ``bilinear=True`` gives the layout of the DeCoVNet authors' released lung UNet (the common
    "Pytorch-UNet" one; with ``base=16, levels=5, bias=True`` its exact twin): the deepest level keeps
    the width of the one above it, the way up is a bilinear ×2 upsampling (``align_corners=True``)
    padded to the skip connection's size, concatenated after the skip, and each merge halves the
    channels (the top one keeps ``base``); the input is not padded (odd sizes are floored by the
    max-pooling and padded back on the way up). ``bias``: convolutions with a bias (the released one)
    or without (the default; batch norm follows each).
    """

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 2,
        base: int = 16,
        levels: int = 4,
        bilinear: bool = False,
        bias: bool = False,
    ):
        super().__init__()
        if levels < 2 or base < 1:
            raise ValueError(f"UNet2D needs levels >= 2 and base >= 1 (got levels={levels}, base={base})")
        self.levels = levels
        self.bilinear = bilinear
        widths = [base * 2**i for i in range(levels)]
        if bilinear:
            widths[-1] = widths[-2]
        self.down = nn.ModuleList(
            [_double_conv(in_channels, widths[0], bias)]
            + [_double_conv(widths[i - 1], widths[i], bias) for i in range(1, levels)]
        )
        if bilinear:
            self.up = nn.ModuleList(
                [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True) for _ in range(levels - 1)]
            )
            below = [widths[-1]] + [max(widths[i] // 2, base) for i in range(levels - 2, 0, -1)]
            self.merge = nn.ModuleList(
                [
                    _double_conv(widths[i - 1] + below[k], max(widths[i - 1] // 2, base) if i > 1 else base, bias)
                    for k, i in enumerate(range(levels - 1, 0, -1))
                ]
            )
        else:
            self.up = nn.ModuleList(
                [nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(levels - 1, 0, -1)]
            )
            self.merge = nn.ModuleList(
                [_double_conv(2 * widths[i - 1], widths[i - 1], bias) for i in range(levels - 1, 0, -1)]
            )
        self.head = nn.Conv2d(widths[0], classes, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2 ** (self.levels - 1)
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if not self.bilinear and (pad_h or pad_w):
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            skip = skips.pop()
            if self.bilinear:
                x = up(x)
                dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
                x = merge(torch.cat([skip, F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])], dim=1))
            else:
                x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)[..., :height, :width]

    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
