"""One call from a chest CT to a COVID-19 probability, a label, the lungs and a heat map.

::

    import covidct
    result = covidct.detect("chest.nii.gz", model="decovnet")       # or a SimpleITK image
    print(result.probability, result.label)                          # e.g. 0.93 positive
    result.save("out/chest")   # report.json, lungs/heatmap/suspicious .nii.gz, montage.png

Pipeline: :func:`covidct.io.load_ct` → :func:`covidct.lungs.segment_lungs` (unless a mask is given)
→ :func:`covidct.preprocess.model_input` (the model's paper-exact input and its
:class:`~covidct.geometry.ModelGrid`) → forward pass → P(COVID-19) → HiResCAM heat map on the CT grid
(:mod:`covidct.explain`). A case is *positive* when ``probability > threshold`` (the DeCoVNet paper's
rule); the default threshold is the model card's operating threshold.

Research software: the result is not a diagnosis and no bundled model is clinically validated.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .contrast import contrast_warnings
from .coverage import lung_end_warnings, lung_side_warnings
from .errors import CTInputError, UsageError
from .explain import (
    SUSPICIOUS_LEVEL,
    SUSPICIOUS_MIN_ML,
    HiResCAM,
    heatmap_on_ct,
    region_summary,
    suspicious_regions,
    voxel_volume_ml,
)
from .geometry import (
    from_canonical,
    orientation_code,
    resample_to_reference,
    same_grid,
    slice_and_pixel_mm,
    to_canonical,
)
from .lungs import METHODS as LUNGS_METHODS
from .lungs import lung_model_card
from .models.catalogue import DEFAULT_CLASSIFIER

#: stages of :attr:`Detection.timings`, in pipeline order
STAGES = ("load", "lungs", "preprocess", "forward", "heatmap", "save")


@dataclass
class Detection:
    """The result of :func:`detect` for one CT.

    Attributes
    ----------
    probability : float
        P(COVID-19), 0…1.
    label : str
        ``"positive"`` when ``probability > threshold``, else ``"negative"``.
    threshold : float
        The decision threshold used (the model card's unless one was given).
    model : str
        The catalogue name of the model.
    lungs : SimpleITK.Image
        UInt8 labelmap on the CT's grid: 1 right, 2 left lung when segmented here (a given mask keeps
        its values).
    heatmap : SimpleITK.Image or None
        Float32 image on the CT's grid: 0 outside the lungs; inside, HiResCAM divided by the model
        card's ``heatmap_scale`` (one absolute scale for every CT, clipped at 1) or, for a model without
        one, by its maximum inside the lungs (relative to this CT; :attr:`heatmap_scaling` says which),
        in steps of 1/255. None when no heat map was asked for.
    suspicious : SimpleITK.Image or None
        UInt8 labelmap on the CT's grid: 1 where heat ≥ ``SUSPICIOUS_LEVEL`` in connected regions of
        at least ``SUSPICIOUS_MIN_ML`` mL; all 0 for a negative result. None without a heat map.
    features : numpy.ndarray or None
        COVID-19Net's 64-d deep feature ``(64,)`` float32; None for other models.
    timings : dict
        Seconds per stage (:data:`STAGES`): ``load`` = the model, unless it was passed loaded, and
        the CT; ``lungs`` = the segmentation (or the given mask's checks) and the checks of what the CT
        holds (:mod:`covidct.coverage`, :mod:`covidct.contrast`); ``save`` once :meth:`save` has run.
    source : str
        The input's file or folder name (never patient data), or ``""`` for an in-memory image.
    ct : SimpleITK.Image
        The CT (HU) the result belongs to, as given (any orientation).
    card : ModelCard
        The model's card.
    warnings : list of str
        Sentences about the input the user should know (outside the model's validated range, a lung
        mask resampled onto the CT), shown by the command line, the report and Slicer.
    """

    probability: float
    label: str
    threshold: float
    model: str
    lungs: sitk.Image = field(repr=False)
    heatmap: sitk.Image | None = field(repr=False)
    suspicious: sitk.Image | None = field(repr=False)
    features: np.ndarray | None = field(repr=False)
    timings: dict
    source: str
    ct: sitk.Image = field(repr=False)
    card: object = field(repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def heatmap_scaling(self) -> str:
        """``"absolute"`` when the heat map uses the model card's ``heatmap_scale``, else ``"relative"``."""
        return "absolute" if getattr(self.card, "heatmap_scale", None) else "relative"

    @property
    def positive(self) -> bool:
        """True when the CT is called COVID-19 positive at :attr:`threshold`."""
        return self.label == "positive"

    def report(self) -> dict:
        """The JSON-able report: every scalar, timings, geometry, suspicious regions, model card summary."""
        from . import __version__

        size = self.ct.GetSize()
        lung_ml = float(np.count_nonzero(sitk.GetArrayViewFromImage(self.lungs))) * voxel_volume_ml(self.ct)
        report = {
            "source": self.source,
            "model": self.model,
            "probability": round(float(self.probability), 6),
            "label": self.label,
            "threshold": self.threshold,
            "rule": "positive when probability > threshold",
            "ct": {
                "size_xyz": list(size),
                "spacing_mm": [round(s, 4) for s in self.ct.GetSpacing()],
                "orientation": orientation_code(self.ct),
            },
            "lung_volume_ml": round(lung_ml, 1),
            "warnings": list(self.warnings),
            "heatmap": None,
            "features": None if self.features is None else [round(float(v), 6) for v in self.features],
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "model_card": _card_summary(self.card),
            "covidct_version": __version__,
        }
        if self.heatmap is not None:
            report["heatmap"] = {
                "method": "HiResCAM (gradient x activation) of the COVID-19 log-odds at the model's cam_layer",
                "scaling": self.heatmap_scaling,
                "scaling_rule": (
                    f"0 outside the lungs; HiResCAM divided by the model's heatmap_scale "
                    f"({self.card.heatmap_scale:g}), the same for every CT, clipped to 1"
                    if self.heatmap_scaling == "absolute"
                    else "0 outside the lungs; divided by its maximum inside the lungs (relative to this CT: "
                    "a negative CT shows bright heat too)"
                ),
                "suspicious_level": SUSPICIOUS_LEVEL,
                "suspicious_min_ml": SUSPICIOUS_MIN_ML,
                "suspicious": region_summary(self.suspicious),
                "suspicious_rule": "marked only for a positive result",
            }
        return report

    def save(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write the outputs into ``folder`` (created) and return ``{kind: path}``.

        Files: ``lungs.nii.gz``; with a heat map also ``heatmap.nii.gz`` (float32 0…1 in steps of 1/255),
        ``suspicious.nii.gz`` and ``montage.png`` (the hottest axial slices, lung window, heat overlay);
        ``report.json`` last (it records the save time). Every file is written atomically. The volumes
        are compressed and written on a worker thread while the montage is drawn (ITK's writer
        releases the GIL), which halves the save time on two cores.
        """
        from concurrent.futures import ThreadPoolExecutor

        from .montage import save_heatmap_montage
        from .outputs import write_json

        folder = Path(folder)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="covidct-save") as pool:
            volumes = pool.submit(self._save_volumes, folder)
            if self.heatmap is not None:
                title = (
                    f"{self.source or 'CT'} · {self.model} · P(COVID-19) = {self.probability:.3f} "
                    f"({self.label} at > {self.threshold:g}) · research use, not clinically validated"
                )
                save_heatmap_montage(
                    folder / "montage.png", self.ct, self.heatmap, self.lungs, title=title, scaling=self.heatmap_scaling
                )
            paths = volumes.result()
        if self.heatmap is not None:
            paths["montage"] = folder / "montage.png"
        self.timings["save"] = time.perf_counter() - start
        report = self.report()
        report["files"] = {kind: Path(path).name for kind, path in paths.items()}
        paths["report"] = write_json(folder / "report.json", report)
        return {kind: Path(path) for kind, path in paths.items()}

    def _save_volumes(self, folder: Path) -> dict[str, Path]:
        """Write ``lungs.nii.gz`` and, with a heat map, ``heatmap.nii.gz`` and ``suspicious.nii.gz``."""
        from .io import save_image

        paths = {"lungs": save_image(self.lungs, folder / "lungs.nii.gz")}
        if self.heatmap is not None:
            paths["heatmap"] = save_image(self.heatmap, folder / "heatmap.nii.gz")
            paths["suspicious"] = save_image(self.suspicious, folder / "suspicious.nii.gz")
        return paths


def detect(
    ct,
    model=DEFAULT_CLASSIFIER,
    lungs=None,
    threshold: float | None = None,
    device="auto",
    heatmap: bool = True,
    progress=None,
    lungs_method: str | None = None,
) -> Detection:
    """Detect COVID-19 on one chest CT.

    The CT is reoriented to canonical LPS order once (:func:`covidct.geometry.to_canonical`); every
    step works on canonical arrays and the outputs are mapped back onto the CT's own grid once.

    Parameters
    ----------
    ct : SimpleITK.Image or path
        The CT in Hounsfield units, any orientation (an image is checked like a loaded file), or a
        NIfTI/NRRD/MHA file or DICOM folder (:func:`covidct.io.load_ct`).
    model : str, path or (torch.nn.Module, ModelCard)
        Anything :func:`load_classifier` takes (``"decovnet"``, ``"covid19net"``, a catalogue name, a
        model folder), or an already loaded ``(model, card)`` pair (batch runs load it once).
    lungs : SimpleITK.Image, path or None
        A lung labelmap (0/1, or 0/1/2 for right/left), checked like segmented lungs and resampled
        onto the CT (nearest neighbour, with a warning) when on another grid. ``None`` segments the
        lungs with ``lungs_method``.
    threshold : float or None
        Operating threshold in (0, 1); the case is positive when ``probability > threshold``.
        ``None``: the model card's.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; ignored for a loaded model, which
        stays where it is.
    heatmap : bool
        Compute the HiResCAM heat map and the suspicious regions.
    progress : covidct.progress.Progress or None
        Receives a stage report per step.
    lungs_method : str or None
        ``"unet"``, ``"threshold"`` or the catalogue name of a lung UNet. ``None``: the method the model
        card's ``input`` names (the one its training masks came from), else the default of
        :func:`covidct.lungs.segment_lungs`; an explicit ``"unet"`` without weights is an error, never
        a silent fallback.

    Returns
    -------
    Detection
        Probability, label, the lungs, heat map and suspicious regions on the CT's own grid, timings
        per stage (seconds) and warnings.

    Raises
    ------
    CTInputError
        Unusable input, including lungs outside 0.3-5 L each (:func:`covidct.validate.check_lungs`) and
        slices thicker than the card's ``validated`` range (:func:`check_validated_range`).
    UsageError
        Bad options.
    ModelError
        Missing or damaged weights.
    """
    import torch

    from .io import load_ct, read_image
    from .preprocess import input_options, model_input
    from .validate import check_lungs, validate_ct

    if lungs_method is not None and lungs_method not in LUNGS_METHODS:
        lung_model_card(lungs_method)  # a catalogue lung model, else UsageError
    if threshold is not None:
        check_threshold(threshold)
    timings: dict[str, float] = {}
    report = progress.stage if progress is not None else (lambda *a, **k: None)
    steps = 5 if heatmap else 4

    with _timed(timings, "load"):
        report("detect", 0, steps, step="load")
        net, card = model if isinstance(model, tuple) else load_classifier(model, device)
        if isinstance(ct, sitk.Image):
            source, image = "", ct
            validate_ct(image, "the CT image")
        else:
            source, image = Path(ct).name, load_ct(ct)
        canonical = to_canonical(image)  # every step works on canonical arrays; outputs are mapped back once
    threshold = check_threshold(card.threshold if threshold is None else threshold)
    model_device = next(net.parameters()).device

    warnings = check_validated_range(image, card, source or "the CT image")
    with _timed(timings, "lungs"):
        report("detect", 1, steps, step="lungs")
        if lungs is None:
            from .lungs import segment_lungs

            validated_method = (card.input or {}).get("lungs_method")
            method = lungs_method or validated_method
            warnings += lungs_method_warnings(method, validated_method, card.name)
            canonical_mask = segment_lungs(canonical, method=method, device=str(model_device), progress=progress)
            check_lungs(canonical_mask, source or "the CT image")
            mask = from_canonical(canonical_mask, image)
        else:
            given = lungs if isinstance(lungs, sitk.Image) else read_image(lungs)
            name = Path(lungs).name if not isinstance(lungs, sitk.Image) else "the lung mask image"
            mask = lungs_on_ct_grid(given, image, name, warnings)
            check_lungs(mask, source or "the CT image", what="given lung mask")
            canonical_mask = to_canonical(mask)
        canonical_hu, canonical_lungs = (
            sitk.GetArrayViewFromImage(canonical),
            sitk.GetArrayViewFromImage(canonical_mask),
        )
        warnings += lung_end_warnings(canonical_lungs, card.name)
        warnings += lung_side_warnings(canonical_hu, canonical_lungs, canonical.GetSpacing(), card.name)
        warnings += contrast_warnings(canonical_hu, canonical_lungs, card)

    with _timed(timings, "preprocess"):
        report("detect", 2, steps, step="preprocess")
        array, grid = model_input(
            card.architecture, canonical, canonical_mask, **input_options(card.architecture, card.input)
        )
        x = torch.from_numpy(array)[None].to(model_device)

    features = None
    with _feature_capture(net) as captured, HiResCAM(net) if heatmap else nullcontext() as explainer:
        with _timed(timings, "forward"):
            report("detect", 3, steps, step="forward")
            if heatmap:
                logits = explainer.forward(x)
            else:
                with torch.no_grad():
                    logits = net(x)
            probability = float(net.probability(logits.detach())[0])
            if captured:
                features = captured[0][0].detach().float().cpu().numpy()
        heat = suspicious = None
        if heatmap:
            with _timed(timings, "heatmap"):
                report("detect", 4, steps, step="heatmap")
                cam = explainer.cam(logits)
                canonical_heat = heatmap_on_ct(cam, grid, canonical, canonical_mask, scale=card.heatmap_scale)
                marked = suspicious_regions(canonical_heat, marked=probability > threshold)
                heat, suspicious = from_canonical(canonical_heat, image), from_canonical(marked, image)
    report("detect", steps, steps, step="done")
    return Detection(
        probability=probability,
        label="positive" if probability > threshold else "negative",
        threshold=threshold,
        model=card.name,
        lungs=mask,
        heatmap=heat,
        suspicious=suspicious,
        features=features,
        timings=timings,
        source=source,
        ct=image,
        card=card,
        warnings=warnings,
    )


def load_classifier(model, device="auto"):
    """``(model in eval mode, card)`` of the COVID-19 classifier
    :func:`covidct.models.find_classifier` finds for ``model`` (a name, ``"decovnet"``/``"covid19net"``,
    a folder or a card file)."""
    from .models import find_classifier, load_model

    return load_model(find_classifier(model).path, device)


def check_threshold(threshold) -> float:
    """``threshold`` as a float strictly between 0 and 1, else :class:`UsageError`."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise UsageError(
            f"The threshold {threshold} is not a probability strictly between 0 and 1; give a value such as 0.5."
        )
    return value


def lungs_on_ct_grid(lungs: sitk.Image, ct: sitk.Image, name: str, warnings: list[str]) -> sitk.Image:
    """A given lung labelmap as UInt8 on ``ct``'s grid.

    ``lungs`` must be a labelmap of 0/1 or 0/1/2 (:func:`covidct.validate.check_lung_mask_values`:
    a heat map, a CT or another segmentation is refused with :class:`CTInputError`). On the CT's grid
    (:func:`covidct.geometry.same_grid`) it is copied; on another grid it is resampled (nearest
    neighbour) and a sentence saying so is appended to ``warnings``. ``name`` names the mask in
    messages.
    """
    from .validate import check_lung_mask_values

    check_lung_mask_values(lungs, name)
    lungs = sitk.Cast(lungs, sitk.sitkUInt8)
    if same_grid(lungs, ct):
        lungs.CopyInformation(ct)
        return lungs
    warnings.append(
        f"The lung mask '{name}' lies on another voxel grid than the CT and was resampled onto it (nearest "
        "neighbour); give the mask made on this CT's own grid to avoid this."
    )
    return resample_to_reference(lungs, ct, "nearest")


def check_validated_range(ct: sitk.Image, card, source: str) -> list[str]:
    """The warnings for a CT outside the model card's ``validated`` ranges (slice spacing and pixel size,
    mm); raises :class:`CTInputError` for slices thicker than the validated maximum, which changes
    what the model sees too much to give a probability."""
    validated = getattr(card, "validated", None) or {}
    slice_mm, pixel_mm = slice_and_pixel_mm(ct)
    warnings = []
    for key, value, what in (("slice_mm", slice_mm, "slice spacing"), ("pixel_mm", pixel_mm, "pixel size")):
        if key not in validated:
            continue
        low, high = (float(v) for v in validated[key])
        if key == "slice_mm" and value > high * 1.01:
            raise CTInputError(
                f"'{source}' has {value:.3g} mm slices, thicker than the {high:g} mm that the model "
                f"'{card.name}' was validated on; use a reconstruction with slices of {high:g} mm or thinner."
            )
        if not low * 0.99 <= value <= high * 1.01:
            warnings.append(
                f"The {what} of {value:.3g} mm lies outside the {low:g}-{high:g} mm this model ('{card.name}') was "
                "validated on: the probability may be less reliable."
            )
    return warnings


def lungs_method_warnings(method: str | None, validated_method: str | None, model_name: str) -> list[str]:
    """A warning when the lungs are segmented by another method than the one the model card names
    (``input.lungs_method``, the masks its real-CT figures were measured with): the classifiers see the
    mask, and another method's edge and lesion coverage move their probabilities."""
    if validated_method is None or method is None or method == validated_method:
        return []
    return [
        f"The lungs were segmented by the '{method}' method, but this model ('{model_name}') was validated "
        f"with '{validated_method}' lungs: the probability may be less reliable."
    ]


@contextmanager
def _timed(timings: dict, stage: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = time.perf_counter() - start


@contextmanager
def _feature_capture(net):
    """For a model with ``features`` (COVID-19Net, whose output neuron is fully connected to its 64-d
    feature), collect the input of its final ``fc`` layer during the forward pass; else collect nothing."""
    captured: list = []
    if not hasattr(net, "features"):
        yield captured
        return
    handle = net.fc.register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0]))
    try:
        yield captured
    finally:
        handle.remove()


def _card_summary(card) -> dict:
    """The model card fields a report needs (no weights path: reports travel between machines)."""
    return {
        "name": card.name,
        "architecture": card.architecture,
        "description": card.description,
        "threshold": card.threshold,
        "sha256": card.sha256,
        "licence": card.licence,
        "training_data": card.training_data,
        "created": card.created,
        "not_clinically_validated": card.not_clinically_validated,
    }
