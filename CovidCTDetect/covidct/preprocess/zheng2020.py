"""The DeCoVNet authors' own preprocessing (Zheng et al. 2020, released scripts), for their released weights.

Their scripts (``preprocess/preprocess-obtain-puredicom``, ``2dunet/dataset/dataset_test.py``,
``deCoVnet/cropresize.py``, ``deCoVnet/dataset/dataset_test.py``), step by step, on the canonical
CT array ``(z, y, x)`` in HU:

1. pixels outside a circle of radius 253 around (255, 255) of the 512 × 512 matrix are lowered by
   2000 HU (outside the scanner's reconstruction circle; other matrix sizes: the same circle scaled);
2. the slices are resampled to 1 mm (``scipy.ndimage.zoom`` along z by the slice spacing, order 3,
   ``mode="nearest"``, on int16 HU);
3. HU window −1200…600 → 0…255 ``uint8`` (truncated, as ``astype('uint8')`` does);
4. their UNet test keeps the slices from 20 % to 70 % of the volume (its dataset forces
   ``clip_range = (0.2, 0.7)`` and prints it as "the true clip range") and sees each slice resized to
   368 × 368 and divided by 255; the images it saves are ``uint8(image × 255)`` at 368 × 368;
5. the classifier's input: the volume and the UNet mask cropped to the mask's bounding box (their
   crop excludes the last index of each axis), each zoomed in-plane (order 3) to 224 × 336, the
   image divided by 255 and the mask (0/1) as the second channel.

Choices where their scripts disagree or are silent, and why:

* 224 × 336, not 192 × 288: the classifier's test configuration reads ``NpyData-size224x336``;
  ``cropresize.py`` as released writes 192 × 288 for another experiment.
* One slice clip, (0.2, 0.7), not also ``cropresize.py``'s (0.15, 1): the test configuration's data
  folder (``size368x368-dlmask``) holds the UNet test's output, clipped once; the classifier's own
  dataset calls its clip range "useless" and applies none.
* The 512 → 368 resize is not in the released code; bilinear (PyTorch ``interpolate``, edge-aligned)
  is used.
* The lung mask comes from detection's lung step (``covidct.lungs`` with the imported UNet: the
  authors' UNet on their slices) and reaches the classifier's input through the CT's own grid
  (nearest neighbour both ways), so it may differ from theirs by a voxel at its edge.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import CTInputError
from ..geometry import ModelGrid, resize_array, to_canonical
from .canonical import canonical_ct_and_lungs

#: the UNet's slice size and the classifier's in-plane size
UNET_HW = (368, 368)
INPUT_HW = (224, 336)
#: the slices the UNet test keeps (fractions of the 1 mm volume)
CLIP = (0.2, 0.7)
HU_WINDOW = (-1200.0, 600.0)
UNET_INPUT = {
    "pipeline": "zheng2020",
    "shape": [1, *UNET_HW],
    "hu_window": list(HU_WINDOW),
    "per_slice": True,
    "slices": "the authors' steps: circle mask, 1 mm slices, 8-bit window, slices 20-70 % of the volume",
}
CLASSIFIER_INPUT = {
    "pipeline": "zheng2020",
    "shape": [2, "T", *INPUT_HW],
    "channels": ["CT, 8-bit HU window -1200..600 / 255", "lung mask 0/1"],
    "hu_window": list(HU_WINDOW),
    "slices": "1 mm slices 20-70 % of the volume, cropped to the lung mask's box (the authors' scripts)",
}


def volume_1mm(ct: sitk.Image) -> np.ndarray:
    """Steps 1–3 of the module docstring: ``uint8 (Z1, Y, X)``, the canonical CT at 1 mm slices."""
    canonical = to_canonical(ct)
    array = sitk.GetArrayFromImage(canonical).astype(np.int16)
    rows, columns = array.shape[1:]
    yy, xx = np.ogrid[:rows, :columns]
    scale = np.array([rows, columns]) / 512.0
    outside = ((yy - 255 * scale[0]) / scale[0]) ** 2 + ((xx - 255 * scale[1]) / scale[1]) ** 2 > 253**2
    array[:, outside] -= 2000
    resampled = ndi.zoom(array, (canonical.GetSpacing()[2], 1, 1), mode="nearest")
    windowed = (resampled.astype(np.float64) - HU_WINDOW[0]) / (HU_WINDOW[1] - HU_WINDOW[0])
    return (np.clip(windowed, 0.0, 1.0) * 255).astype(np.uint8)


def clip_range(depth: int) -> tuple[int, int]:
    """The slices ``[lo, hi)`` of a ``depth``-slice 1 mm volume that the UNet test keeps."""
    return int(depth * CLIP[0]), int(depth * CLIP[1])


def unet_slices(volume: np.ndarray) -> np.ndarray:
    """``float32 (n, 1, 368, 368)``: the 8-bit slices of the clip range resized for the UNet, / 255."""
    import torch

    lo, hi = clip_range(volume.shape[0])
    slab = torch.from_numpy(volume[lo:hi].astype(np.float32) / 255.0)[:, None]
    return torch.nn.functional.interpolate(slab, size=UNET_HW, mode="bilinear", align_corners=False).numpy()


def lungs_on_ct(mask_368: np.ndarray, volume_depth: int, ct_shape: tuple[int, int, int]) -> np.ndarray:
    """The UNet's mask of the clip range ``(n, 368, 368)`` on the canonical CT grid (nearest neighbour)."""
    lo, _ = clip_range(volume_depth)
    full = np.zeros((volume_depth, *UNET_HW), np.uint8)
    full[lo : lo + mask_368.shape[0]] = mask_368
    return resize_array(full, ct_shape, order=0)


def zheng2020_input(ct: sitk.Image, lungs: sitk.Image) -> tuple[np.ndarray, ModelGrid]:
    """``(float32 (2, T, 224, 336), ModelGrid)``: the authors' classifier input (step 5) for a CT (HU)
    and its lung mask on the CT grid. ``T`` is the mask's extent in 1 mm slices within the clip range.
    The grid maps the crop back onto the canonical CT (approximately: through the 1 mm and 368 × 368
    grids), for heat maps. Raises :class:`CTInputError` when the clip range holds no lung."""
    canonical, ct_array, lung_array = canonical_ct_and_lungs(ct, lungs)
    volume = volume_1mm(canonical)
    depth = volume.shape[0]
    lo, hi = clip_range(depth)
    images = np.uint8(unet_slices(volume)[:, 0] * 255)
    mask = resize_array(lung_array.astype(np.uint8), (depth, *UNET_HW), order=0)[lo:hi]
    zz, yy, xx = np.nonzero(mask)
    if zz.size == 0:
        raise CTInputError(
            "No lung lies in the slices the DeCoVNet authors' pipeline uses (20-70 % of the volume); "
            "check that the CT covers the chest."
        )
    box = (slice(zz.min(), zz.max()), slice(yy.min(), yy.max()), slice(xx.min(), xx.max()))
    if any(s.stop - s.start < 2 for s in box):
        raise CTInputError("The lungs of this CT are too small for the DeCoVNet authors' crop; check the lung mask.")
    crop_images, crop_mask = images[box], mask[box]
    factors = (1, INPUT_HW[0] / crop_images.shape[1], INPUT_HW[1] / crop_images.shape[2])
    out = np.stack([ndi.zoom(crop_images, factors) / 255.0, ndi.zoom(crop_mask, factors)]).astype(np.float32)
    scale = np.array(ct_array.shape) / np.array((depth, *UNET_HW))
    ct_box = tuple(
        slice(
            int(np.floor((s.start + offset) * f)),
            max(int(np.ceil((s.stop + offset) * f)), int((s.start + offset) * f) + 1),
        )
        for s, offset, f in zip(box, (lo, 0, 0), scale, strict=True)
    )
    return out, ModelGrid(tuple(ct_array.shape), ct_box, out.shape[1:])
