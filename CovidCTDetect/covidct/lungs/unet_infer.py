"""Lung segmentation with the trained 2D UNet, slice by slice (DeCoVNet paper: "testing the trained
2D UNet frame-by-frame without using any temporal information").

1. The model ``unet-lungs`` is loaded from the catalogue (:func:`covidct.models.load_model`:
   sha256-checked, ``weights_only``); its card names the slice size it was trained at.
2. Every canonical slice is windowed and resized (:func:`covidct.preprocess.unet.unet_input`) and
   run through the network in batches under ``torch.inference_mode`` — channels-last memory on the
   CPU (about twice as fast there); bfloat16 autocast on CUDA only. On CPUs with AMX bfloat16 halves
   the network's time too, but the mask would then depend on the CPU (the lesion-coverage figures of
   ``Testing/test_lungs.py`` moved by up to 12 points), so the CPU stays in float32. The DeCoVNet
   authors' UNet (:func:`zheng2020_labels`) always runs in float32, as published.
3. The lung-vs-background logit margin (``logit₁ − logit₀``, the log-odds of lung) goes back onto the
   ~1.5 mm working grid (:func:`covidct.preprocess.unet.to_working_grid`); lung is where it exceeds the
   log-odds of the card's ``threshold`` (an operating point on P(lung) per pixel, :func:`margin_cut`:
   0.5 → 0, the argmax, the bundled card's). A lower threshold moves the mask's edge outwards: more of
   the consolidation at the pleura, and more fat and organ beside the lung
   (``Testing/benchmarks/unet_threshold_sweep.py``; figures in ``CovidCTDetect/covidct/weights/README.md``).
   In-plane pieces touching the slice border are dropped (lungs never reach it, air outside does).
   The trachea and main bronchi, found in the CT as the threshold method finds them
   (:func:`covidct.lungs.threshold.extrapulmonary_airways`, on a worker thread while the network
   runs), are taken out: at ~2.8 mm per input pixel the network merges the trachea with the apices.
4. The threshold method's finishing steps follow (:func:`covidct.lungs.postprocess.finish_lungs`:
   two largest components, left/right labels by patient side, holes filled); instead of its costal
   lesion fill, the outer rims of the lesions the mask holds are put back
   (:mod:`covidct.lungs.lesion_rims`). The labels are repeated back onto the full grid.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import ModelError
from ..geometry import bounding_box
from . import grid
from .lesion_rims import RIM_MM
from .morphology import remove_inplane_border
from .postprocess import finish_lungs
from .threshold import extrapulmonary_airways

#: the catalogue name of the bundled lung UNet
MODEL_NAME = "unet-lungs"
#: slices per forward pass on the CPU (4-8 fastest there: 0.45 s for P001's 148 slices at 160 px on
#: 2 cores, 0.58 s with 16, 0.80 s with 64) and on a GPU
CPU_BATCH, GPU_BATCH = 8, 32
STEPS = ("load", "network", "finish")


def load_unet(device="auto"):
    """``(model, card)`` of the bundled lung UNet, or :class:`ModelError` with one sentence when missing."""
    from ..models import find_model, load_model

    try:
        find_model(MODEL_NAME)
    except ModelError as exc:
        raise ModelError(
            f"The lung UNet's weights ('{MODEL_NAME}' in covidct/weights) are not installed yet, "
            'so use the threshold method meanwhile (--lungs-method threshold, or method="threshold").'
        ) from exc
    return load_model(MODEL_NAME, device)


def unet_labels(
    ct: sitk.Image,
    device="auto",
    progress=None,
    model=None,
    card_input: dict | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """Lung labelmap ``(z, y, x)`` uint8 (0, 1 = right, 2 = left) of a **canonical** CT image (HU).

    ``model``: a UNet2D to use instead of the bundled one (e.g. for benchmarks or just-trained
    weights), with ``card_input`` its input specification (slice size) and ``threshold`` its operating
    point on P(lung) (0 < threshold < 1); ``device`` is then ignored. Without ``model`` the bundled
    UNet's card gives both.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..preprocess.unet import to_working_grid, unet_input, unet_size

    _report(progress, 0)
    if model is None:
        model, card = load_unet(device)
        card_input, threshold = card.input, card.threshold
    cut = margin_cut(threshold)
    factor = grid.shrink_factor(ct.GetSpacing())
    small = grid.shrink(ct, factor)
    hu = sitk.GetArrayViewFromImage(small)
    # the airway search (SciPy) runs on a worker thread while PyTorch runs the network
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="covidct-airways") as pool:
        airways = pool.submit(extrapulmonary_airways, hu, small.GetSpacing())
        margin, model_grid = lung_margin(
            model,
            *unet_input(ct, unet_size(card_input)),
            progress=progress,
            bfloat16=next(model.parameters()).device.type == "cuda",
        )
        _report(progress, 2)
        lung, _, _ = remove_inplane_border(to_working_grid(margin, model_grid, factor) > cut)
        lung &= ~airways.result()
    labels = np.zeros(lung.shape, np.uint8)
    box = finishing_box(lung, small.GetSpacing())
    if box is not None:
        labels[box] = finish_lungs(
            lung[box], np.asarray(hu[box]), small.GetSpacing(), pleura=False, rims=True, body_below=box[0].start > 0
        )
    _report(progress, 3)
    return grid.expand(labels, factor, tuple(reversed(ct.GetSize())))


def margin_cut(threshold: float) -> float:
    """The logit margin (``logit₁ − logit₀``) above which a pixel is lung, for an operating threshold on
    P(lung) = sigmoid(margin): its log-odds, ``log(t / (1 − t))``; 0 for 0.5."""
    if not 0.0 < threshold < 1.0:
        raise ModelError(f"A lung UNet's threshold must lie strictly between 0 and 1, not {threshold}.")
    return float(np.log(threshold / (1.0 - threshold)))


def finishing_box(lung: np.ndarray, spacing_xyz):
    """The part of a working-grid ``(z, y, x)`` array the finishing steps need, or None for an empty mask:
    the slices and rows of the mask's bounding box, the rows grown by the lesion rims' reach
    (:data:`.lesion_rims.RIM_MM`) plus one, and every column (the side of a single lung is judged
    from the middle of the columns, :func:`.sides.label_sides`). The steps give the same labels there
    as on the whole array (``Testing/test_lesion_rims.py``)."""
    rows = int(RIM_MM / min(float(spacing_xyz[0]), float(spacing_xyz[1]))) + 1
    box = bounding_box(lung, (0, rows, 0))
    return None if box is None else (box[0], box[1], slice(0, lung.shape[2]))


def lung_margin(
    model, slices: np.ndarray, model_grid, progress=None, bfloat16: bool = False
) -> tuple[np.ndarray, object]:
    """Run ``model`` over ``slices`` ``(Z, 1, H, W)``; returns the logit margin ``(Z, H, W)`` float32 and the grid.

    ``bfloat16``: autocast the forward passes to bfloat16 (on CUDA), else float32.
    """
    import torch

    device = next(model.parameters()).device
    channels_last = device.type == "cpu"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    margin = np.empty((slices.shape[0], *slices.shape[2:]), np.float32)
    with torch.inference_mode():
        size = CPU_BATCH if device.type == "cpu" else GPU_BATCH
        for start in range(0, slices.shape[0], size):
            batch = torch.from_numpy(slices[start : start + size]).to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                logits = model(batch)
            margin[start : start + size] = (logits[:, 1] - logits[:, 0]).float().cpu().numpy()
            if progress is not None:
                progress.stage(
                    "lungs",
                    1,
                    len(STEPS),
                    step="network",
                    slices=min(start + size, slices.shape[0]),
                    of=slices.shape[0],
                )
    return margin, model_grid


def _report(progress, done: int) -> None:
    if progress is not None:
        progress.stage("lungs", done, len(STEPS), step=STEPS[done] if done < len(STEPS) else "done")


def catalogue_unet_labels(ct: sitk.Image, card, device="auto", progress=None) -> np.ndarray:
    """Lung labelmap ``(z, y, x)`` of a **canonical** CT by the catalogue lung UNet of ``card``: this
    package's pipeline (:func:`unet_labels`), or the DeCoVNet authors' when the card's input names
    ``"zheng2020"`` (:func:`zheng2020_labels`)."""
    from ..models import load_model

    model, card = load_model(card.path, device)
    if (card.input or {}).get("pipeline") == "zheng2020":
        return zheng2020_labels(ct, model, progress)
    return unet_labels(ct, progress=progress, model=model, card_input=card.input, threshold=card.threshold)


def zheng2020_labels(ct: sitk.Image, model, progress=None) -> np.ndarray:
    """The DeCoVNet authors' UNet on their slices (:mod:`covidct.preprocess.zheng2020`: 1 mm, 8-bit,
    368 × 368, 20-70 % of the volume), its argmax mapped back onto the canonical grid; every mask
    voxel is kept (the classifier crops to the mask's box), labelled by patient side: the two
    largest parts as lungs (:mod:`.sides`), any other voxel by the side of the midline between them."""
    from ..preprocess.zheng2020 import lungs_on_ct, unet_slices, volume_1mm
    from . import LEFT, RIGHT
    from .morphology import largest_components
    from .sides import label_sides

    _report(progress, 0)
    volume = volume_1mm(ct)
    margin, _ = lung_margin(model, unet_slices(volume), None, progress=progress)
    _report(progress, 2)
    mask = lungs_on_ct((margin > 0).astype(np.uint8), volume.shape[0], tuple(reversed(ct.GetSize()))) > 0
    parts = largest_components(mask, 2)
    if not parts:
        return mask.astype(np.uint8)
    labels = label_sides(parts, ct.GetSpacing())
    rest = mask & (labels == 0)
    if rest.any():
        centres = [np.mean(np.nonzero(labels == side)[2]) for side in (RIGHT, LEFT) if (labels == side).any()]
        midline = float(np.mean(centres))
        columns = np.nonzero(rest)[2]
        labels[rest] = np.where(columns < midline, RIGHT, LEFT)
    _report(progress, 3)
    return labels
