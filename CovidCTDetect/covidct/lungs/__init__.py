"""Lung segmentation: ``segment_lungs(ct, method)`` → labelmap on the CT grid, 1 = right lung, 2 = left lung.

Two methods (DeCoVNet paper, "The Proposed DeCoVNet" and Fig. 2):

* ``"unet"`` (the default once its weights are installed) — the 2D UNet run slice by slice
  (:mod:`.unet_infer`), trained on pseudo-labels of the threshold method on real CTs with synthetic
  lesions inserted at the pleura and a heavier loss where the lungs touch the heart, liver, stomach and
  spleen, then the rims of the lesions it holds grown (:mod:`.lesion_rims`); needs the bundled
  ``unet-lungs`` weights.
* ``"threshold"`` — the unsupervised method (:mod:`.threshold`): HU threshold, outside air, trachea
  and main bronchi removed, holes filled, consolidation at the costal pleura put back.

Both fill each lung's holes slice by slice but keep out the organ domes that rise into the lung from
below (:mod:`.organ_caps`; :mod:`.postprocess` holds the steps they share).

Both work on the canonical (LPS-ordered) CT and map the result back, so an LPS file and its RAS copy
give the same lungs; "right" and "left" are the patient's sides, read from the direction matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import CTInputError, UsageError

if TYPE_CHECKING:
    import SimpleITK as sitk

#: the built-in lung segmentation methods (a catalogue lung UNet's name is also a method); this package
#: imports nothing heavy at module level, so that command-line parsers and Slicer modules can read it
METHODS = ("unet", "threshold")
#: labelmap values of the patient's right and left lung
RIGHT, LEFT = 1, 2
#: names of the labels, in label order (1, 2)
LABEL_NAMES = {RIGHT: "right lung", LEFT: "left lung"}

__all__ = ["LABEL_NAMES", "LEFT", "METHODS", "RIGHT", "lung_volumes_ml", "segment_lungs"]


def segment_lungs(ct: sitk.Image, method: str | None = None, device="auto", progress=None) -> sitk.Image:
    """Segment the lungs of a CT.

    Parameters
    ----------
    ct : SimpleITK.Image
        3D CT in Hounsfield units, any orientation (worked on in canonical LPS order, see
        :mod:`covidct.geometry`).
    method : str or None
        ``"unet"`` (:mod:`.unet_infer`), ``"threshold"`` (:mod:`.threshold`, unsupervised), the
        catalogue name of another lung UNet (e.g. an imported published one, run with the preprocessing
        its card names), or None: unet when its weights are installed, else threshold
        (:func:`covidct.models.default_lungs_method`).
    device : str or torch.device
        UNet only: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    progress : covidct.progress.Progress or None
        Receives a stage report per step.

    Returns
    -------
    SimpleITK.Image
        UInt8 labelmap on the CT's own grid: 0 background, 1 right lung, 2 left lung (patient sides).

    Raises
    ------
    UsageError
        Unknown method.
    CTInputError
        The image is not a 3D CT, or shows no air-filled lungs.
    ModelError
        The UNet's weights are missing.
    """
    import numpy as np
    import SimpleITK as sitk

    from ..geometry import from_canonical, image_from_array, to_canonical

    if method is None:
        from ..models import default_lungs_method

        method = default_lungs_method()
    card = None if method in METHODS else lung_model_card(method)
    if not isinstance(ct, sitk.Image) or ct.GetDimension() != 3:
        raise CTInputError("Lung segmentation needs a 3D CT volume; load the CT with covidct.load_ct.")
    canonical = to_canonical(ct)
    if method == "threshold":
        from .threshold import threshold_labels

        labels = threshold_labels(canonical, progress)
    elif card is not None:
        from .unet_infer import catalogue_unet_labels

        labels = catalogue_unet_labels(canonical, card, device=device, progress=progress)
    else:
        from .unet_infer import unet_labels

        labels = unet_labels(canonical, device=device, progress=progress)
    return from_canonical(image_from_array(labels.astype(np.uint8, copy=False), canonical), ct)


def lung_volumes_ml(labels: sitk.Image) -> dict[str, float]:
    """Volume of each lung of a labelmap.

    Parameters
    ----------
    labels : SimpleITK.Image
        Unsigned-integer labelmap, 1 = right and 2 = left lung (as :func:`segment_lungs` writes).

    Returns
    -------
    dict
        ``{"right lung": ml, "left lung": ml}``, from voxel counts times the voxel volume.
    """
    import numpy as np
    import SimpleITK as sitk

    counts = np.bincount(sitk.GetArrayViewFromImage(labels).ravel(), minlength=3)
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    return {name: float(counts[value]) * voxel_ml for value, name in LABEL_NAMES.items()}


def lung_model_card(name: str):
    """The model card of the lung UNet named ``name`` in the catalogue, or :class:`UsageError` saying
    which methods exist."""
    from ..errors import ModelError
    from ..models import find_model

    try:
        card = find_model(name)
    except ModelError as exc:
        raise UsageError(
            f"Unknown lung segmentation method '{name}'; choose {', '.join(METHODS)} or the name of an installed "
            "lung model."
        ) from exc
    if card.architecture != "unet":
        raise UsageError(f"'{name}' is a {card.architecture} model, not a lung segmentation; choose a lung model.")
    return card
