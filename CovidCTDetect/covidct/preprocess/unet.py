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
INPUT_SPEC = {
    "shape": [1, INPUT_HW[0], INPUT_HW[1]],
    "channels": ["CT slice, HU window -1200..600 HU mapped to 0..1"],
    "hu_window": list(HU_WINDOW),
    "per_slice": True,
    "slices": "every canonical axial slice (LPS order), whole field of view, in-plane resize only",
}


def unet_size(card_input: dict | None) -> tuple[int, int]:
    """The slice size ``(H, W)`` a model card's ``input`` names (``shape`` ``[1, H, W]``), else the paper's."""
    shape = (card_input or {}).get("shape") or INPUT_SPEC["shape"]
    return int(shape[-2]), int(shape[-1])


def unet_input(ct: sitk.Image, size: tuple[int, int] = INPUT_HW) -> tuple[np.ndarray, ModelGrid]:
    """``(float32 array (Z, 1, H, W), ModelGrid)``: the canonical slices of ``ct`` (HU) for the UNet.

    ``Z`` is the number of slices along canonical z (inferior → superior); rows run anterior →
    posterior, columns right → left. The grid maps ``(Z, Y, X)`` ↔ ``(Z, H, W)``.
    """
    canonical = to_canonical(ct)
    array = sitk.GetArrayViewFromImage(canonical)
    grid = ModelGrid.full(array.shape, (array.shape[0], *size))
    out = np.empty((array.shape[0], 1, *size), np.float32)
    for start, stop in _chunks(array.shape[0]):
        out[start:stop] = _resize(hu_window(array[start:stop])[:, None], size)
    return out, grid


def to_working_grid(values: np.ndarray, grid: ModelGrid, factor: int) -> np.ndarray:
    """Model-grid ``values`` ``(Z, H, W)`` on the working grid: mapped onto the canonical CT grid
    (:meth:`ModelGrid.to_ct`, bilinear) and averaged over ``factor × factor`` blocks, as
    :func:`covidct.lungs.grid.shrink` averages the CT; returns float32 ``(Z, Y // factor, X // factor)``.

    Done a few slices at a time, so the full-resolution intermediate stays small.
    """
    import torch
    from torch.nn import functional as F

    depth, rows, columns = grid.ct_shape
    out = np.empty((depth, rows // factor, columns // factor), np.float32)
    for start, stop in _chunks(depth):
        full = torch.from_numpy(_resize(np.asarray(values[start:stop], np.float32)[:, None], (rows, columns)))
        full = full[..., : out.shape[1] * factor, : out.shape[2] * factor]
        out[start:stop] = F.avg_pool2d(full, factor)[:, 0].numpy()
    return out


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
