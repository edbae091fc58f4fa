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
from .geometry import orientation_code, resample_to_reference

#: stages of :attr:`Detection.timings`, in pipeline order
STAGES = ("load", "lungs", "preprocess", "forward", "heatmap", "save")
LUNGS_METHODS = ("unet", "threshold")


@dataclass
class Detection:
    """The result of :func:`detect` for one CT.

    ``probability``: P(COVID-19) in 0…1; ``label``: ``"positive"`` when ``probability > threshold``,
    else ``"negative"``; ``model``: the catalogue name of the model; ``lungs``: UInt8 labelmap on the
    CT grid (1 right, 2 left lung when segmented here; a given mask keeps its values);
    ``heatmap``: float32 image on the CT grid, 0…1 inside the lungs (HiResCAM scaled by its maximum
    inside the lungs), 0 outside, or ``None``; ``suspicious``: UInt8 labelmap (1 = heat ≥
    ``SUSPICIOUS_LEVEL`` in regions ≥ ``SUSPICIOUS_MIN_ML`` mL) or ``None``; ``features``: the 64-d
    deep feature of COVID-19Net (``None`` for other models); ``timings``: seconds per stage
    (:data:`STAGES`; ``load`` = the model, unless it was passed loaded, and the CT); ``source``: the
    input's file or folder name (never patient data), or ``""``
    for an in-memory image; ``ct``: the CT (HU) the result belongs to; ``card``: the model card.
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
            "heatmap": None,
            "features": None if self.features is None else [round(float(v), 6) for v in self.features],
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "model_card": _card_summary(self.card),
            "covidct_version": __version__,
        }
        if self.heatmap is not None:
            report["heatmap"] = {
                "method": "HiResCAM (gradient x activation) of the COVID-19 log-odds at the model's cam_layer",
                "scaling": "0 outside the lungs; divided by its maximum inside the lungs (relative to this CT)",
                "suspicious_level": SUSPICIOUS_LEVEL,
                "suspicious_min_ml": SUSPICIOUS_MIN_ML,
                "suspicious": region_summary(self.suspicious),
            }
        return report

    def save(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write the outputs into ``folder`` (created) and return ``{kind: path}``.

        Files: ``lungs.nii.gz``; with a heat map also ``heatmap.nii.gz`` (float32 0…1),
        ``suspicious.nii.gz`` and ``montage.png`` (the hottest axial slices, lung window, heat overlay);
        ``report.json`` last (it records the save time). Every file is written atomically.
        """
        from .io import save_image
        from .montage import save_heatmap_montage
        from .outputs import write_json

        folder = Path(folder)
        start = time.perf_counter()
        paths = {"lungs": save_image(self.lungs, folder / "lungs.nii.gz")}
        if self.heatmap is not None:
            paths["heatmap"] = save_image(self.heatmap, folder / "heatmap.nii.gz")
            paths["suspicious"] = save_image(self.suspicious, folder / "suspicious.nii.gz")
            title = (
                f"{self.source or 'CT'} · {self.model} · P(COVID-19) = {self.probability:.3f} "
                f"({self.label} at > {self.threshold:g}) · research use, not clinically validated"
            )
            save_heatmap_montage(folder / "montage.png", self.ct, self.heatmap, self.lungs, title=title)
            paths["montage"] = folder / "montage.png"
        self.timings["save"] = time.perf_counter() - start
        report = self.report()
        report["files"] = {kind: Path(path).name for kind, path in paths.items()}
        paths["report"] = write_json(folder / "report.json", report)
        return {kind: Path(path) for kind, path in paths.items()}


def detect(
    ct,
    model="decovnet",
    lungs=None,
    threshold: float | None = None,
    device="auto",
    heatmap: bool = True,
    progress=None,
    lungs_method: str | None = None,
) -> Detection:
    """Detect COVID-19 on one chest CT.

    ``ct``: a SimpleITK image in HU (checked like a loaded file) or a path (file or DICOM folder).
    ``model``: anything :func:`load_classifier` takes (``"decovnet"``, ``"covid19net"``, a catalogue
    name, a model folder), or an already loaded ``(model, card)`` pair (batch runs load it once).
    ``lungs``: a labelmap image or path (any value > 0 is lung; resampled onto the CT when on another
    grid); ``None`` segments the lungs with ``lungs_method`` (``"unet"``, or ``"threshold"``, the
    unsupervised method; None: the method the model card's ``input`` names as the one its training
    masks came from (``lungs_method``), else unet when its weights are installed, else threshold — an
    explicit ``"unet"`` without weights is an error, never a silent fallback). ``threshold``: operating
    threshold in (0, 1), default the model card's. ``device``: ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``
    (ignored for a loaded model, which stays where it is). ``heatmap``: compute the HiResCAM heat map
    and suspicious regions. ``progress``: a :class:`covidct.progress.Progress`.

    Raises :class:`~covidct.errors.CTInputError` for unusable input,
    :class:`~covidct.errors.UsageError` for bad options, :class:`~covidct.errors.ModelError` for
    missing or damaged weights.
    """
    import torch

    from .io import load_ct, read_image
    from .preprocess import input_options, model_input
    from .validate import validate_ct

    if lungs_method is not None and lungs_method not in LUNGS_METHODS:
        raise UsageError(f"Unknown lung segmentation method '{lungs_method}'; choose unet or threshold.")
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
    threshold = check_threshold(card.threshold if threshold is None else threshold)
    model_device = next(net.parameters()).device

    with _timed(timings, "lungs"):
        report("detect", 1, steps, step="lungs")
        if lungs is None:
            from .lungs import segment_lungs

            method = lungs_method or (card.input or {}).get("lungs_method")
            mask = segment_lungs(image, method=method, device=str(model_device), progress=progress)
        else:
            mask = lungs_on_ct_grid(lungs if isinstance(lungs, sitk.Image) else read_image(lungs), image)
        if not sitk.GetArrayViewFromImage(mask).any():
            raise CTInputError(
                "No lungs were found in this CT, so there is nothing to analyse; check that it is a "
                "chest CT in Hounsfield units, or give a lung mask."
            )

    with _timed(timings, "preprocess"):
        report("detect", 2, steps, step="preprocess")
        array, grid = model_input(card.architecture, image, mask, **input_options(card.architecture, card.input))
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
                heat = heatmap_on_ct(cam, grid, image, mask)
                suspicious = suspicious_regions(heat)
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


def lungs_on_ct_grid(lungs: sitk.Image, ct: sitk.Image) -> sitk.Image:
    """A lung labelmap as UInt8 on ``ct``'s grid: copied when already on it (to 1 µm / 1e-5), else
    resampled (nearest neighbour). Values above 255 become 1 (any non-zero value is lung)."""
    if lungs.GetDimension() != 3:
        raise CTInputError("The lung mask is not a 3D image; give a labelmap volume made from this CT.")
    values = sitk.GetArrayViewFromImage(lungs)
    if values.max(initial=0) > 255 or values.min(initial=0) < 0:
        lungs = sitk.Cast(lungs != 0, sitk.sitkUInt8)
    else:
        lungs = sitk.Cast(lungs, sitk.sitkUInt8)
    same = (
        lungs.GetSize() == ct.GetSize()
        and np.allclose(lungs.GetSpacing(), ct.GetSpacing(), rtol=1e-5)
        and np.allclose(lungs.GetOrigin(), ct.GetOrigin(), atol=1e-3)
        and np.allclose(lungs.GetDirection(), ct.GetDirection(), atol=1e-5)
    )
    if same:
        lungs.CopyInformation(ct)
        return lungs
    return resample_to_reference(lungs, ct, "nearest")


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
