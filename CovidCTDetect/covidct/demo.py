"""The demonstration behind ``covidct demo``: the whole pipeline on the small real CT bundled with the
package (``covidct/sample/ct-64.nrrd``, a non-COVID COPDGene scan, CIP licence), then on a copy of it
with synthetic COVID-19-like lesions inserted into its lungs, so that the heat map has known
lesions to point at. Uses the bundled weights; nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import ModelError

SAMPLE_CT = Path(__file__).resolve().parent / "sample" / "ct-64.nrrd"
#: seed of the synthetic lesions (fixed, so every demo run shows the same lesions)
LESION_SEED = 2020
#: lesions per volume and their size in mm: those of the bundled demo classifiers' synthetic training
#: and test sets (``tools/make_demo_weights.sh``), the lesions they can be expected to find
LESIONS = {"n_lesions": (6, 12), "size_mm": (30.0, 80.0)}


@dataclass
class DemoCase:
    """One demo run: its name, the :class:`~covidct.detection.Detection`, the files written, and for the
    lesion copy the share of heat inside the synthetic lesions, the lesions' share of the lung volume
    (what an evenly spread heat map would give) and whether the hottest voxel is in a lesion."""

    name: str
    detection: object
    paths: dict
    lesion_heat_share: float | None = None
    lesion_volume_share: float | None = None
    peak_in_lesion: bool | None = None


def run_demo(
    out_dir: str | os.PathLike,
    model: str = "decovnet",
    device: str = "auto",
    lungs_method: str | None = None,
    progress=None,
) -> list[DemoCase]:
    """Run detection on the sample CT and on its copy with synthetic lesions; write both under ``out_dir``
    (``sample/`` and ``sample-lesions/``, the latter with ``lesions.nii.gz``) and return the two cases.

    The lesion copy reuses the lung mask of the first run (the lesions are inserted inside it).
    Raises :class:`ModelError` with one sentence when the model's weights are not installed.
    """
    from .data.synth import insert_lesions
    from .detection import detect, load_classifier
    from .explain import heat_share, peak_inside
    from .io import save_image

    loaded = load_classifier(_installed(model), device)
    out_dir = Path(out_dir)
    plain = detect(SAMPLE_CT, model=loaded, lungs_method=lungs_method, progress=progress)
    cases = [DemoCase("sample", plain, plain.save(out_dir / "sample"))]

    ct, lesions = insert_lesions(plain.ct, plain.lungs, np.random.default_rng(LESION_SEED), **LESIONS)
    result = detect(ct, model=loaded, lungs=plain.lungs, progress=progress)
    result.source = f"{SAMPLE_CT.name} with synthetic lesions (seed {LESION_SEED})"
    paths = result.save(out_dir / "sample-lesions")
    paths["lesions"] = save_image(lesions, out_dir / "sample-lesions" / "lesions.nii.gz")
    region = sitk.GetArrayViewFromImage(lesions) > 0
    lungs = sitk.GetArrayViewFromImage(plain.lungs) > 0
    cases.append(
        DemoCase(
            "sample-lesions",
            result,
            paths,
            heat_share(result.heatmap, region),
            float((region & lungs).sum() / lungs.sum()),
            peak_inside(result.heatmap, region),
        )
    )
    return cases


def _installed(model: str) -> str:
    """``model`` when it names an installed model (exactly, or as the architecture of one) or a model
    folder/card; else one sentence saying that the weights are missing."""
    from .models import list_models

    cards = list_models()
    if (
        Path(model).expanduser().exists()
        or model in {card.name for card in cards}
        or model in {card.architecture for card in cards}
    ):
        return model
    raise ModelError(
        f"The demo needs the bundled '{model}' weights, which this installation does not include "
        f"yet; pass a trained model's folder with --model, or install a covidct release with weights."
    )
