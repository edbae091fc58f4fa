"""The lung UNet's input: every canonical axial slice windowed and resized, and the way back.

DeCoVNet paper, "Preprocessing of 2D UNet": "the value was linearly normalized from 16-bit to 8-bit
(i.e., 0-255) after determining the threshold of a HU window (e.g., -1 200-600 HU). After that, all
the CT volumes were resampled into a same spatial resolution (e.g., 368 × 368)". Here: HU window
−1200…600 → 0…1 (:func:`covidct.preprocess.window.hu_window`, the paper's 0…255 divided by 255,
without 8-bit rounding), each whole canonical slice resized to ``(H, W)`` with edge-aligned bilinear
interpolation (PyTorch's ``interpolate(mode="bilinear", align_corners=False)``, which is
:func:`covidct.geometry.resize_array` to float round-off, multi-threaded; slices are never merged). The paper's size is
368 × 368; a model card may name another (the size the network was trained at), see
:func:`unet_size`.

One addition to the paper: a slice whose field of view is narrower than :data:`MIN_FOV_MM` is first
padded with air (−1024 HU) on both sides to that width. Resizing whole slices makes the lungs' size
in the input depend on the reconstruction diameter; on a small field of view (the CIP test CT's
267 mm, body touching the image edges) a UNet trained on 325–500 mm fields of view took the lungs
for air outside the body (whole-lung Dice 0.08–0.31, even with 0.6–1.4 scale augmentation), while
the same network on slices padded to 450 mm reached 0.965. So every slice is seen at a field of view
of at least 450 mm (about 2.8 mm per pixel at the bundled model's 160 × 160), in training and in use alike. The
:class:`~covidct.geometry.ModelGrid` records the padding, so the way back drops it.

The :class:`~covidct.geometry.ModelGrid` maps the network's output back onto the canonical CT grid;
:func:`to_working_grid` does so straight onto the ~1.5 mm working grid of :mod:`covidct.lungs.grid`
(block averages of the full-grid values, like the CT there).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..geometry import ModelGrid, to_canonical
from .window import HU_WINDOW, hu_window

#: the paper's slice size (H, W)
INPUT_HW = (368, 368)
#: narrowest in-plane field of view (mm) the UNet sees; narrower slices are padded with air
MIN_FOV_MM = 450.0
#: HU of the padding (air)
PAD_HU = -1024.0
INPUT_SPEC = {
    "shape": [1, INPUT_HW[0], INPUT_HW[1]],
    "channels": ["CT slice, HU window -1200..600 HU mapped to 0..1"],
    "hu_window": list(HU_WINDOW),
    "per_slice": True,
    "slices": f"every canonical axial slice (LPS order), whole field of view padded with air to at least "
    f"{MIN_FOV_MM:g} mm, in-plane resize only",
}


def unet_size(card_input: dict | None) -> tuple[int, int]:
    """The slice size ``(H, W)`` a model card's ``input`` names (``shape`` ``[1, H, W]``), else the paper's."""
    shape = (card_input or {}).get("shape") or INPUT_SPEC["shape"]
    return int(shape[-2]), int(shape[-1])


def unet_input(ct: sitk.Image, size: tuple[int, int] = INPUT_HW) -> tuple[np.ndarray, ModelGrid]:
    """``(float32 array (Z, 1, H, W), ModelGrid)``: the canonical slices of ``ct`` (HU) for the UNet.

    ``Z`` is the number of slices along canonical z (inferior → superior); rows run anterior →
    posterior, columns right → left. The grid maps ``(Z, Y, X)`` ↔ ``(Z, H, W)``, including the air
    padding of fields of view narrower than :data:`MIN_FOV_MM` (:func:`fov_padding`).
    """
    canonical = to_canonical(ct)
    array = sitk.GetArrayViewFromImage(canonical)
    grid = ModelGrid.full(array.shape, (array.shape[0], *size), fov_padding(array.shape, canonical.GetSpacing()))
    out = np.empty((array.shape[0], 1, *size), np.float32)
    for start, stop in _chunks(array.shape[0]):
        padded = np.pad(array[start:stop], grid.pad, constant_values=PAD_HU)
        out[start:stop] = _resize(hu_window(padded)[:, None], size)
    return out, grid


def fov_padding(shape_zyx, spacing_xyz) -> tuple[tuple[int, int], ...]:
    """Voxels of air to add ``((0, 0), (y0, y1), (x0, x1))`` so that each in-plane axis of an array of
    ``shape_zyx`` with ``spacing_xyz`` (mm) spans at least :data:`MIN_FOV_MM`, split evenly."""
    pad = [(0, 0)]
    for n, spacing in zip(shape_zyx[1:], (spacing_xyz[1], spacing_xyz[0]), strict=True):
        missing = max(0, int(np.ceil(MIN_FOV_MM / float(spacing) - n)))
        pad.append((missing // 2, missing - missing // 2))
    return tuple(pad)


def to_working_grid(values: np.ndarray, grid: ModelGrid, factor: int) -> np.ndarray:
    """Model-grid ``values`` ``(Z, H, W)`` on the working grid: resized bilinearly onto the padded canonical
    CT grid (``align_corners=False``, as :meth:`ModelGrid.to_ct`), the pad dropped, and averaged over
    ``factor × factor`` blocks, as :func:`covidct.lungs.grid.shrink` averages the CT (the rows and columns
    of an incomplete block dropped); returns float32 ``(Z, Y // factor, X // factor)``.

    Every step is linear and acts on rows and columns apart, so each axis's steps are composed into one
    small matrix and the slices are mapped by two matrix products: no full-resolution intermediate.
    """
    import torch

    _, rows, columns = grid.ct_shape
    to_rows = _axis_map(values.shape[1], grid.padded_shape[1], grid.pad[1][0], rows // factor, factor)
    to_columns = _axis_map(values.shape[2], grid.padded_shape[2], grid.pad[2][0], columns // factor, factor)
    with torch.inference_mode():
        stack = torch.from_numpy(np.ascontiguousarray(values, np.float32))
        return (to_rows.T @ (stack @ to_columns)).numpy()


def _axis_map(n_in: int, padded: int, before: int, n_out: int, factor: int):
    """``(n_in, n_out)`` float32 tensor: one axis resized linearly from ``n_in`` to ``padded`` samples
    (PyTorch's ``interpolate``, ``align_corners=False``), samples ``before … before + n_out * factor``
    kept and averaged in groups of ``factor``."""
    import torch
    from torch.nn import functional as F

    impulses = torch.eye(n_in, dtype=torch.float32)[:, None, :]
    resized = F.interpolate(impulses, size=padded, mode="linear", align_corners=False)[:, 0]
    return resized[:, before : before + n_out * factor].reshape(n_in, n_out, factor).mean(dim=2)


def _chunks(depth: int, size: int = 16):
    """``(start, stop)`` slice ranges of at most ``size`` slices (bounds the full-resolution temporaries)."""
    return [(start, min(start + size, depth)) for start in range(0, depth, size)]


def _resize(stack: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear, edge-aligned in-plane resize of ``(N, 1, H, W)`` float32 to ``(N, 1, *size)``."""
    import torch
    from torch.nn import functional as F

    with torch.inference_mode():
        tensor = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
        if tuple(tensor.shape[-2:]) == tuple(size):
            return tensor.numpy().copy()
        return F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False).numpy()
