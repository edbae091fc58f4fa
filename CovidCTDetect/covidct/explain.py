"""Heat maps of suspicious lung areas: HiResCAM of the COVID-19 log-odds, mapped back onto the CT grid.

COVID-19Net's paper shows "DL-discovered suspicious lung areas" made with Grad-CAM (Selvaraju et al.
2017, its reference 20); DeCoVNet's authors localise lesions weakly from patient-level labels. Both
classifiers here expose ``cam_layer``, the 3D convolutional stage whose activations ``A`` (``K``
channels, ``d × h × w`` voxels) and gradients give the map. Grad-CAM averages each channel's gradient
over the voxels before weighting the channel; HiResCAM (Draelos & Carin 2020, "Use HiResCAM instead of
Grad-CAM for faithful explanations of convolutional neural networks") keeps the gradient per voxel::

    Grad-CAM:  cam = ReLU(sum_k mean_v(d score/dA_k) · A_k)
    HiResCAM:  cam = ReLU(sum_k (d score/dA_k) ⊙ A_k)          (used here)

For a head that is linear in ``A`` (global average pooling then a linear layer, CAM's architecture)
the two are equal and equal CAM. Where the head after ``cam_layer`` still has convolutions and pooling
(both models here), Grad-CAM's averaged weight also lights voxels whose activation does not reach the
score, while HiResCAM's map, before the ReLU, adds up over voxels to the layer's gradient × activation
contribution to the score: it marks only what the model used. ``Testing/benchmarks/heatmap_sanity.py``
measures where a model's heat maps fall (real COVID-19 infection slices, synthetic lesions); the
figures of the bundled models are in ``covidct/weights/README.md``.

``score`` is the log-odds of COVID-19: the single logit of a one-output model (sigmoid), the COVID
logit minus the negative logit of a two-output model (softmax, P = sigmoid(l₁ − l₀)). The difference,
not the COVID logit alone, is what moves the probability: a feature raising both logits alike is no
evidence for COVID-19.

The cam (at the layer's resolution) is then

1. mapped back by the preprocessing's own inverse onto the canonical CT array: one edge-aligned
   trilinear resize from the layer's cells to the model input's crop box (the layer's cells tile the
   model input, up to the ceil-mode padding of odd sizes, and the model input tiles the box, so this
   is the same mapping as resizing to ``(D, H, W)`` first, with one interpolation instead of two),
   placed in the box by :meth:`covidct.geometry.ModelGrid.to_ct`, and by
   :func:`covidct.geometry.from_canonical` onto the CT's own grid,
2. set to 0 outside the lungs and divided by the model card's ``heatmap_scale`` (clipped to 1, in
   steps of :data:`HEAT_STEP`): one
   absolute scale, so that a CT the model finds little evidence in shows little heat. A model
   without a scale gets its map divided by its maximum inside the lungs (1 = the most
   COVID-suggestive lung voxel of this CT): relative within one CT, not comparable across CTs, and
   labelled so wherever it is shown. An all-zero map means that no lung area raised the score.

:func:`suspicious_regions` turns a heat map into a labelmap (heat ≥ a level, connected components
of at least a minimum volume in mL).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .geometry import ModelGrid, bounding_box, from_canonical, image_from_box, to_canonical

#: heat-map level (0…1) above which a lung voxel belongs to a suspicious region
SUSPICIOUS_LEVEL = 0.5
#: smallest suspicious region kept, in millilitres
SUSPICIOUS_MIN_ML = 1.0
#: heat maps hold multiples of this (8 bits, finer than any display shows and than the cam's
#: cells resolve): a chest CT's float32 heat map then compresses ~20x smaller and ~3x faster
HEAT_STEP = 1.0 / 255.0


def covid_score(logits):
    """The log-odds of COVID-19 of each case, shape ``(N,)``, from ``(N,)``, ``(N, 1)`` or ``(N, 2)`` logits.

    One logit is the log-odds itself. Two-output models follow the paper's order ``(negative,
    COVID-19)``: their log-odds is column 1 minus column 0.
    """
    if logits.ndim == 1:
        return logits
    if logits.shape[1] == 1:
        return logits[:, 0]
    if logits.shape[1] == 2:
        return logits[:, 1] - logits[:, 0]
    raise ValueError(f"expected 1 or 2 logits per case, got shape {tuple(logits.shape)}")


class HiResCAM:
    """HiResCAM of the COVID-19 log-odds on ``model.cam_layer``, in two steps that can be timed apart::

        with HiResCAM(model) as explainer:
            logits = explainer.forward(x)      # x: (1, C, D, H, W) on the model's device
            cam = explainer.cam(logits)        # (d, h, w) float32 numpy array >= 0

    ``forward`` keeps the graph from ``cam_layer`` to the logits; ``cam`` back-propagates the COVID-19
    log-odds (:func:`covid_score`) and returns ``ReLU(sum_k dscore/dA_k ⊙ A_k)`` at ``cam_layer``'s output
    resolution. The model's parameters receive no gradients (their ``requires_grad`` flags are restored
    on exit) and its eval/train mode is left as it is.
    """

    def __init__(self, model):
        self.model = model
        self._activation = None
        self._handle = None
        self._flags: list[bool] = []

    def __enter__(self) -> HiResCAM:
        self._flags = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._handle = self.model.cam_layer.register_forward_hook(self._keep)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        for p, flag in zip(self.model.parameters(), self._flags, strict=True):
            p.requires_grad_(flag)
        self._activation = None

    def _keep(self, _module, _inputs, output):
        # The layer's output becomes the leaf of the graph: back-propagation stops here, and the layers
        # before it run without keeping anything for a backward pass (time and memory of a plain forward).
        self._activation = output.detach().requires_grad_(True)
        return self._activation

    def forward(self, x):
        """Logits of ``x`` (one case, ``(1, C, D, H, W)``) with the graph kept for :meth:`cam`."""
        import torch

        if x.ndim != 5 or x.shape[0] != 1:
            raise ValueError(f"HiResCAM expects one input of shape (1, C, D, H, W), got {tuple(x.shape)}")
        with torch.enable_grad():
            return self.model(x)

    def cam(self, logits) -> np.ndarray:
        """Back-propagate the COVID-19 log-odds of :meth:`forward`'s output; ``(d, h, w)`` float32 map >= 0."""
        import torch

        activation = self._activation
        covid_score(logits).sum().backward()
        if activation is None or activation.grad is None:  # cam_layer is not on the path to the logits
            raise RuntimeError("HiResCAM: the COVID-19 score does not depend on model.cam_layer")
        cam = torch.relu((activation.grad * activation).sum(dim=1))[0]
        return cam.detach().float().cpu().numpy()


def hires_cam(model, x):
    """One-call HiResCAM: ``(cam (d, h, w) float32 >= 0, detached logits)`` for ``x (1, C, D, H, W)``."""
    with HiResCAM(model) as explainer:
        logits = explainer.forward(x)
        return explainer.cam(logits), logits.detach()


def heatmap_on_ct(
    cam: np.ndarray, grid: ModelGrid, ct: sitk.Image, lungs: sitk.Image, scale: float | None = None
) -> sitk.Image:
    """Map a class-activation array back onto the CT's grid, restricted to the lungs and scaled 0…1.

    Parameters
    ----------
    cam : numpy.ndarray
        ``(d, h, w)`` array (≥ 0) covering the model input that ``grid`` describes, at any resolution:
        its cells tile the model input edge to edge.
    grid : ModelGrid
        The preprocessing's grid (canonical CT array ↔ model input).
    ct : SimpleITK.Image
        The CT the model input was made from, any orientation.
    lungs : SimpleITK.Image
        Labelmap on ``ct``'s grid; any value > 0 is lung.
    scale : float or None
        The cam value shown as 1: a model card's ``heatmap_scale`` (one absolute scale for every CT),
        or None for the maximum inside the lungs (relative to this CT).

    Returns
    -------
    SimpleITK.Image
        Float32 image with ``ct``'s geometry: 0 outside the lungs, ``cam / scale`` clipped to 0…1 and
        rounded to multiples of :data:`HEAT_STEP` inside.
    """
    canonical_ct = to_canonical(ct)
    heat = np.ascontiguousarray(grid.to_box(cam))  # outside the box the heat is 0: only the box is worked on
    canonical_lungs = to_canonical(lungs)  # kept alive while its array view is read
    heat *= sitk.GetArrayViewFromImage(canonical_lungs)[grid.box] > 0
    divisor = float(scale) if scale else float(heat.max())
    if divisor > 0:
        heat /= divisor
    np.clip(heat, 0.0, 1.0, out=heat)
    return from_canonical(image_from_box(quantise_heat(heat), grid.box, canonical_ct), ct)


def quantise_heat(heat: np.ndarray) -> np.ndarray:
    """Round heat values (0…1, float32) in place to multiples of :data:`HEAT_STEP` and return the array."""
    levels = round(1.0 / HEAT_STEP)
    heat *= levels
    np.rint(heat, out=heat)
    heat /= levels
    return heat


def suspicious_regions(
    heatmap: sitk.Image, level: float = SUSPICIOUS_LEVEL, min_volume_ml: float = SUSPICIOUS_MIN_ML, marked: bool = True
) -> sitk.Image:
    """The suspicious regions of a heat map as a labelmap.

    Parameters
    ----------
    heatmap : SimpleITK.Image
        Heat 0…1 (:func:`heatmap_on_ct`).
    level : float
        Heat at or above which a voxel is suspicious, in (0, 1].
    min_volume_ml : float
        Smallest connected region (26-connectivity) kept, in millilitres.
    marked : bool
        False returns all zeros: a negative result marks no region as suspicious.

    Returns
    -------
    SimpleITK.Image
        UInt8 labelmap on the heat map's grid: 1 in the kept regions, 0 elsewhere.
    """
    if not 0.0 < level <= 1.0:
        raise ValueError(f"suspicious-region level must be in (0, 1], got {level}")
    hot = sitk.GetArrayViewFromImage(heatmap) >= level
    found = _components(hot) if marked else None
    if found is None:
        empty = sitk.Image(heatmap.GetSize(), sitk.sitkUInt8)  # zero-filled
        empty.CopyInformation(heatmap)
        return empty
    labels, counts, box = found
    keep = counts * voxel_volume_ml(heatmap) >= min_volume_ml
    keep[0] = False
    return image_from_box(keep[labels].astype(np.uint8), box, heatmap)


def region_summary(labelmap: sitk.Image) -> dict:
    """Number of connected regions (26-connectivity) of a labelmap's non-zero voxels and their total
    volume in mL."""
    found = _components(sitk.GetArrayViewFromImage(labelmap) > 0)
    if found is None:
        return {"regions": 0, "volume_ml": 0.0}
    counts = found[1][1:]
    return {"regions": int(counts.size), "volume_ml": round(float(counts.sum()) * voxel_volume_ml(labelmap), 3)}


def _components(mask: np.ndarray):
    """Connected components (26-connectivity) of a bool array (z, y, x), labelled inside its bounding
    box only (a heat map's hot voxels fill a small part of a CT): ``(labels in the box, voxel count per
    label with index 0 = background, box)``, or ``None`` when the mask is empty."""
    box = bounding_box(mask)
    if box is None:
        return None
    labels, count = ndimage.label(mask[box], structure=np.ones((3, 3, 3), bool))
    return labels, np.bincount(labels.ravel(), minlength=count + 1), box


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel of ``image`` in millilitres."""
    return float(np.prod(image.GetSpacing())) / 1000.0


def heat_share(heatmap: sitk.Image, region: np.ndarray) -> float:
    """Fraction of the heat map's total mass (sum of heat) inside ``region`` (bool array (z, y, x) on the
    heat map's grid, e.g. lesion voxels or labelled slices); 0 for an all-zero heat map."""
    heat = sitk.GetArrayViewFromImage(heatmap)
    total = float(heat.sum(dtype=np.float64))
    return float(heat[np.asarray(region, bool)].sum(dtype=np.float64)) / total if total > 0 else 0.0


def peak_inside(heatmap: sitk.Image, region: np.ndarray) -> bool:
    """True when the heat map's maximum voxel (the first one, in array order, on ties) lies in ``region``."""
    heat = sitk.GetArrayViewFromImage(heatmap)
    return bool(heat.any() and np.asarray(region, bool).flat[int(np.argmax(heat))])
