"""The DeCoVNet paper's online augmentation, in PyTorch so that it runs on the training device.

"The affine transformation was composed of rotation (0° ± 10°), horizontal and vertical translations
(0 % ± 10 %), scaling (0 % ± 20 %) and shearing in the width dimension (0° ± 10°). The color jittering
adjusted brightness (0 % ± 50 %) and contrast (0 % ± 30 %). For each training sample, the parameters
were randomly generated and the augmentation was identically applied for each slice."

A sample is a stack ``(C, T, H, W)`` (channels, slices, rows, columns) of one volume. One 2D affine
transform of the (H, W) plane is applied to every slice; image channels are resampled bilinearly,
mask channels with nearest neighbour (they stay binary/integer). Outside the field of view a channel
takes its own minimum (air for a windowed CT, 0 for a mask). Colour jitter acts on the image channels
only: brightness multiplies by ``b``, contrast blends with the volume's mean, ``(x - m)·c + m``, as
torchvision's ``adjust_brightness``/``adjust_contrast`` do per image (here one mean for the whole
volume, so every slice gets the same transform); values are clamped to ``clamp`` when given
(``(0, 1)`` for windowed CT inputs). Random draws come from a ``torch.Generator``, so a sample's
augmentation is fixed by its seed.

Not from the paper: :func:`random_mask_edge_shift` moves a mask channel's edge in or out by up to one
cell, so that a model trained on one lung method's masks does not read another method's edge (a pixel
inside or outside) as a finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentRanges:
    """Half-widths of the uniform ranges the parameters are drawn from (0 turns a part off)."""

    rotation_deg: float = 10.0
    translate: float = 0.10  # fraction of the width (x) and of the height (y)
    scale: float = 0.20  # relative: factor in [1 - scale, 1 + scale]
    shear_deg: float = 10.0  # shear along the width (x) axis
    brightness: float = 0.5  # factor in [1 - b, 1 + b]
    contrast: float = 0.3  # factor in [1 - c, 1 + c]


#: The paper's ranges.
PAPER_RANGES = AugmentRanges()


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation. The defaults are the identity."""

    rotation_deg: float = 0.0
    translate_x: float = 0.0  # fraction of the width, positive = content moves to larger column index
    translate_y: float = 0.0  # fraction of the height, positive = content moves to larger row index
    scale: float = 1.0
    shear_deg: float = 0.0
    brightness: float = 1.0
    contrast: float = 1.0


def sample_params(generator: torch.Generator, ranges: AugmentRanges = PAPER_RANGES) -> AugmentParams:
    """Draw :class:`AugmentParams` uniformly within ``ranges`` from ``generator`` (a CPU generator)."""
    u = (torch.rand(7, generator=generator, dtype=torch.float64) * 2.0 - 1.0).tolist()
    return AugmentParams(
        rotation_deg=u[0] * ranges.rotation_deg,
        translate_x=u[1] * ranges.translate,
        translate_y=u[2] * ranges.translate,
        scale=1.0 + u[3] * ranges.scale,
        shear_deg=u[4] * ranges.shear_deg,
        brightness=1.0 + u[5] * ranges.brightness,
        contrast=1.0 + u[6] * ranges.contrast,
    )


def affine_theta(params: AugmentParams, height: int, width: int) -> torch.Tensor:
    """The ``(2, 3)`` float64 matrix for ``F.affine_grid(align_corners=False)`` that realises ``params``.

    The forward transform, in pixels about the image centre, is ``p' = R(rotation)·Shear_x(shear)·scale·p
    + (tx·W, ty·H)``. ``affine_grid`` needs the inverse (output → input) in normalised coordinates,
    where a pixel offset ``p`` is ``(2 p_x / W, 2 p_y / H)``, so rotations stay rotations on
    non-square images.
    """
    angle = math.radians(params.rotation_deg)
    rotation = torch.tensor(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64
    )
    shear = torch.tensor([[1.0, math.tan(math.radians(params.shear_deg))], [0.0, 1.0]], dtype=torch.float64)
    forward = rotation @ shear * params.scale
    shift = torch.tensor([params.translate_x * width, params.translate_y * height], dtype=torch.float64)
    inverse = torch.linalg.inv(forward)
    to_norm = torch.diag(torch.tensor([2.0 / width, 2.0 / height], dtype=torch.float64))
    linear = to_norm @ inverse @ torch.linalg.inv(to_norm)
    offset = to_norm @ (-(inverse @ shift))
    return torch.cat([linear, offset[:, None]], dim=1)


def apply_augmentation(
    stack: torch.Tensor,
    params: AugmentParams,
    image_channels: tuple[int, ...] = (0,),
    mask_channels: tuple[int, ...] = (),
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Apply ``params`` to a ``(C, T, H, W)`` float stack on any device; returns a new tensor.

    Channels not listed in ``image_channels`` or ``mask_channels`` are returned unchanged.
    """
    if stack.ndim != 4:
        raise ValueError(f"expected a (C, T, H, W) stack, got shape {tuple(stack.shape)}")
    channels, slices, height, width = stack.shape
    theta = affine_theta(params, height, width).to(device=stack.device, dtype=stack.dtype)
    grid = F.affine_grid(theta.expand(slices, 2, 3), [slices, 1, height, width], align_corners=False)
    out = stack.clone()
    for channel, mode in [(c, "bilinear") for c in image_channels] + [(c, "nearest") for c in mask_channels]:
        plane = stack[channel]
        fill = plane.min()
        warped = F.grid_sample((plane - fill)[:, None], grid, mode=mode, padding_mode="zeros", align_corners=False)
        out[channel] = warped[:, 0] + fill
    for channel in image_channels:
        plane = out[channel] * params.brightness
        if clamp is not None:
            plane = plane.clamp(*clamp)
        mean = plane.mean()
        plane = (plane - mean) * params.contrast + mean
        if clamp is not None:
            plane = plane.clamp(*clamp)
        out[channel] = plane
    return out


def random_augmentation(
    stack: torch.Tensor, generator: torch.Generator, ranges: AugmentRanges = PAPER_RANGES, **kwargs
) -> torch.Tensor:
    """:func:`apply_augmentation` with parameters drawn by :func:`sample_params`."""
    return apply_augmentation(stack, sample_params(generator, ranges), **kwargs)


def shift_mask_edge(mask: torch.Tensor, cells: float) -> torch.Tensor:
    """A ``(T, H, W)`` lung-fraction mask (0…1) with its edge moved in-plane by ``cells`` input cells:
    outwards for ``cells > 0`` (up to a dilation by one cell), inwards for ``cells < 0`` (up to an
    erosion by one cell), each slice on its own; ``|cells| < 1`` blends the mask with its one-cell
    dilation or erosion (a 3 × 3 maximum or minimum), so a fractional edge moves by a fraction of a
    cell. Interior and far background are unchanged; returns a new tensor."""
    if not -1.0 <= cells <= 1.0:
        raise ValueError(f"cells must lie in [-1, 1], got {cells}")
    planes = mask[:, None]
    if cells >= 0:
        moved = F.max_pool2d(planes, 3, stride=1, padding=1)
    else:
        moved = -F.max_pool2d(-planes, 3, stride=1, padding=1)
    return (planes + abs(cells) * (moved - planes))[:, 0]


def random_mask_edge_shift(
    stack: torch.Tensor, generator: torch.Generator, channel: int, max_cells: float
) -> torch.Tensor:
    """``stack`` (``(C, T, H, W)``) with the mask in ``channel`` moved by :func:`shift_mask_edge` by one
    uniform draw in ``[-max_cells, max_cells]`` for the whole volume (a lung method's edge lies a little
    inside or outside another's everywhere at once); other channels unchanged."""
    cells = float((torch.rand(1, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * max_cells)
    out = stack.clone()
    out[channel] = shift_mask_edge(stack[channel], cells)
    return out
