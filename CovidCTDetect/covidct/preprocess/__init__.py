"""Paper-exact model inputs, each with the :class:`~covidct.geometry.ModelGrid` that maps outputs back.

* :mod:`.window` — the HU window both papers' pipelines start from (−1200…600 HU → 0…1).
* :mod:`.decovnet` — CT + lung mask, ``(2, T, 224, 336)`` (DeCoVNet paper, "Preprocessing of DeCoVNet").
* :mod:`.covid19net` — lung-ROI crop, non-lung suppression, z-score, ``(1, 48, 240, 360)``.
* :mod:`.unet` — 2D slices for the lung UNet, 368×368 (DeCoVNet paper, "Preprocessing of 2D UNet").
"""

from __future__ import annotations


def model_input(
    arch: str,
    ct,
    lungs,
    size: tuple[int, ...] | None = None,
    crop: str | None = None,
    slice_mm: float | None = None,
    antialias: bool = False,
    pipeline: str | None = None,
    hu_stats: tuple[float, float] | None = None,
):
    """The input array of a classifier for one CT, and the grid that maps model outputs back.

    Parameters
    ----------
    arch : str
        ``"decovnet"`` or ``"covid19net"``.
    ct : SimpleITK.Image
        The CT in Hounsfield units, any orientation (reoriented to canonical LPS order; already
        canonical in :func:`covidct.detection.detect`, where that costs nothing).
    lungs : SimpleITK.Image
        Lung labelmap (non-zero = lung), normally on the CT's grid (else resampled onto it).
    size : tuple of int or None
        Overrides the paper's size: DeCoVNet's in-plane ``(H, W)``, COVID-19Net's ``(D, H, W)``.
    crop, slice_mm, antialias
        DeCoVNet only: in-plane crop (None or ``"lung_box"``), slice thickness in mm (None keeps every
        slice) and area resize (:func:`.decovnet.decovnet_input`). COVID-19Net always crops to its
        lung-ROI and takes none of them. :func:`input_options` reads them from a model card.
    pipeline : str or None
        None for this package's preprocessing, or the authors' own for their released weights:
        ``"zheng2020"`` (DeCoVNet, :mod:`.zheng2020`) or ``"wang2020"`` (COVID-19Net, :mod:`.wang2020`);
        those fix every other option.
    hu_stats : (float, float) or None
        COVID-19Net only: fixed ``(mean, sd)`` in HU for its z-score instead of the ROI's own
        (:func:`.covid19net.covid19net_input`).

    Returns
    -------
    (numpy.ndarray, ModelGrid)
        The float32 input without the batch axis (DeCoVNet ``(2, T, H, W)``: windowed CT and lung
        mask; COVID-19Net ``(1, D, H, W)``), axes in canonical order (z inferior→superior, rows
        anterior→posterior, columns right→left), and the :class:`~covidct.geometry.ModelGrid` from the
        canonical CT array to that input and back.

    Raises
    ------
    UsageError
        An unknown architecture or pipeline, or options the architecture does not take.
    CTInputError
        The mask holds no lung voxel.
    """
    from ..errors import UsageError

    if pipeline is not None:
        if (arch, pipeline) == ("decovnet", "zheng2020"):
            from .zheng2020 import zheng2020_input

            return zheng2020_input(ct, lungs)
        if (arch, pipeline) == ("covid19net", "wang2020"):
            from .wang2020 import wang2020_input

            return wang2020_input(ct, lungs)
        raise UsageError(f"Unknown preprocessing pipeline '{pipeline}' for {arch}; fix the model card's input.")
    if arch == "decovnet":
        if hu_stats is not None:
            raise UsageError(
                "DeCoVNet windows its HU to 0..1 and takes no z-score statistics; leave hu_mean_std unset."
            )
        from .decovnet import INPUT_HW, decovnet_input

        return decovnet_input(
            ct, lungs, size=tuple(size) if size else INPUT_HW, crop=crop, slice_mm=slice_mm, antialias=antialias
        )
    if arch == "covid19net":
        if crop is not None or slice_mm is not None or antialias:
            raise UsageError(
                "COVID-19Net always crops to its lung-ROI and resizes to its input shape; leave the input "
                "crop, slice thickness and antialias options unset."
            )
        from .covid19net import INPUT_SHAPE, covid19net_input

        return covid19net_input(ct, lungs, shape=tuple(size) if size else INPUT_SHAPE, hu_stats=hu_stats)
    raise UsageError(
        f"No whole-CT model input for architecture '{arch}'; use decovnet or covid19net "
        "(the lung UNet takes 2D slices, see covidct.preprocess.unet)."
    )


def input_options(arch: str, input_spec: dict | None) -> dict:
    """The keyword arguments of :func:`model_input` a model card's ``input`` spec asks for: ``size``
    from the last two entries of ``shape`` for DeCoVNet (``[2, "T", H, W]``), the last three for
    COVID-19Net (``[1, D, H, W]``), None for the paper's; ``crop``, ``slice_mm``, ``antialias`` and
    ``pipeline`` from the fields of those names, ``hu_stats`` from ``hu_mean_std``."""
    spec = input_spec or {}
    shape = spec.get("shape")
    n = 3 if arch == "covid19net" else 2
    stats = spec.get("hu_mean_std")
    return {
        "hu_stats": (float(stats[0]), float(stats[1])) if stats else None,
        "size": tuple(int(v) for v in shape[-n:]) if shape else None,
        "crop": spec.get("crop"),
        "slice_mm": spec.get("slice_mm"),
        "antialias": bool(spec.get("antialias", False)),
        "pipeline": spec.get("pipeline"),
    }
