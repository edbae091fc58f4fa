"""Domain-randomised copies of real lesion-free chest CTs, the backgrounds of the demo classifiers' training set.

A classifier trained on synthetic lesions in a few real CTs learns those CTs' scanner, kernel, noise
and slice thickness along with the lesions, and then calls any CT that looks different COVID-19
(the first demo DeCoVNet gave 0.86-0.999 to every real negative it had not seen). Each copy made here
is the same anatomy as another scanner might have shown it:

* resampled to a random pixel size (0.7-1.5 mm) and slice thickness (1.5-5 mm, each slice the
  average of the thin slices it covers, as a thick reconstruction is);
* a random reconstruction kernel: softened (Gaussian, sigma 0.3-1.0 mm) or sharpened (unsharp mask,
  amount 0.3-1.2), then extra noise of 0-25 HU with a CT-like in-plane correlation;
* a random HU offset of up to 8 HU (calibration), a random field of view (cropped to 300-380 mm
  around the body when the scan is wider) and, for half of the copies, a left-right mirror image
  (the heart on the other side: a plausible other patient, not a real one).

``domain_copy`` can also give a CT an intravenous-contrast look (setting ``contrast_hu``, used by the
real-CT yardstick's ``contrast`` copy, never drawn for training): see :func:`enhance_blood`.

Usage::

    python tools/domain_backgrounds.py OUT_DIR CT [CT ...] --copies 4 --seed 0

writes ``OUT_DIR/<ct stem>_d<k>.nii.gz`` (int16 HU) and ``OUT_DIR/backgrounds.json`` (each copy's draw).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from covidct.geometry import to_canonical
from covidct.io import load_ct, save_image
from covidct.lungs.morphology import hull_pixels

#: settings that leave a CT as it is (``domain_copy`` then only makes it canonical): the base that a copy
#: changing one property at a time starts from (lengths in mm, noise and offset in HU)
NEUTRAL = {
    "pixel_mm": 0.1,
    "slice_mm": 0.0,
    "kernel": "soft",
    "soft_sigma_mm": 0.0,
    "sharp_amount": 0.0,
    "noise_hu": 0.0,
    "offset_hu": 0.0,
    "fov_mm": 1e4,
    "mirror": False,
    "contrast_hu": 0.0,
}

#: soft-tissue HU that :func:`enhance_blood` takes for blood in the mediastinum (heart, great vessels)
BLOOD_HU = (-20.0, 100.0)
#: HU that it takes for a vessel inside the lung region (bone above it)
VESSEL_HU = (-20.0, 150.0)


def draw(rng: np.random.Generator) -> dict:
    """One copy's random settings (lengths in mm, HU for noise and offset)."""
    return {
        "pixel_mm": float(rng.uniform(0.7, 1.5)),
        "slice_mm": float(rng.choice([1.5, 2.0, 2.5, 3.0, 5.0])),
        "kernel": str(rng.choice(["soft", "sharp"])),
        "soft_sigma_mm": float(rng.uniform(0.3, 1.0)),
        "sharp_amount": float(rng.uniform(0.3, 1.2)),
        "noise_hu": float(rng.uniform(0.0, 25.0)),
        "offset_hu": float(rng.uniform(-8.0, 8.0)),
        "fov_mm": float(rng.uniform(300.0, 380.0)),
        "mirror": bool(rng.random() < 0.5),
    }


def domain_copy(ct: sitk.Image, settings: dict, rng: np.random.Generator) -> sitk.Image:
    """A canonical (LPS) copy of ``ct`` (HU) as another scanner might show it (see the module docstring)."""
    ct = to_canonical(ct)
    array = sitk.GetArrayFromImage(ct).astype(np.float32)
    spacing = np.array(ct.GetSpacing()[::-1], dtype=float)  # z, y, x
    # field of view: crop in-plane around the body's centre when wider than the draw
    body = array > -500
    centre = [int(np.mean(np.flatnonzero(body.any(axis=axes)))) for axes in ((0, 2), (0, 1))]
    box = [slice(None)]
    for axis, c in zip((1, 2), centre, strict=True):
        half = int(settings["fov_mm"] / 2 / spacing[axis])
        box.append(slice(max(c - half, 0), min(c + half, array.shape[axis])))
    array = array[tuple(box)]
    if settings.get("contrast_hu", 0.0):
        array = enhance_blood(array, spacing, settings["contrast_hu"])
    # slice thickness: average the thin slices each thick slice covers (never thinner than the source)
    factor_z = max(1, int(round(settings["slice_mm"] / spacing[0])))
    if factor_z > 1:
        depth = array.shape[0] // factor_z * factor_z
        array = array[:depth].reshape(-1, factor_z, *array.shape[1:]).mean(axis=1)
    # pixel size: anti-aliased resize in-plane
    zoom = min(1.0, spacing[1] / settings["pixel_mm"])
    if zoom < 1.0:
        array = ndi.gaussian_filter(array, (0, 0.5 / zoom, 0.5 / zoom))
        array = ndi.zoom(array, (1.0, zoom, zoom), order=1)
    new_spacing = (spacing[0] * factor_z, spacing[1] / zoom, spacing[2] / zoom)
    # kernel and noise
    sigma_px = settings["soft_sigma_mm"] / new_spacing[1]
    blurred = ndi.gaussian_filter(array, (0, sigma_px, sigma_px))
    sharpened = array + settings["sharp_amount"] * (array - blurred)
    array = blurred if settings["kernel"] == "soft" else sharpened
    noise = ndi.gaussian_filter(rng.standard_normal(array.shape).astype(np.float32), (0, 0.6, 0.6))
    noise *= settings["noise_hu"] / max(float(noise.std()), 1e-6)
    array = array + noise + settings["offset_hu"]
    if settings["mirror"]:
        array = array[:, :, ::-1]
    out = sitk.GetImageFromArray(np.clip(np.rint(array), -1024, 3071).astype(np.int16))
    # a slab lies at the centre of the slices it averages
    origin = ct.TransformContinuousIndexToPhysicalPoint([box[2].start or 0, box[1].start or 0, (factor_z - 1) / 2])
    out.SetOrigin(origin)
    out.SetSpacing(tuple(float(s) for s in new_spacing[::-1]))
    out.SetDirection(ct.GetDirection())
    return out


def enhance_blood(array: np.ndarray, spacing, enhancement_hu: float) -> np.ndarray:
    """``array`` (canonical ``(z, y, x)`` HU, ``spacing`` (z, y, x) mm) as an intravenous-contrast CT
    might show it: ``enhancement_hu`` added to the blood, found without labels.

    Per slice, the lung region is the air inside the body (below −400 HU, smoothed over 3 × 3 pixels)
    opened by 5 mm (no thin gaps along the skin or the table) and closed by 5 mm, so that the vessels
    it surrounds belong to it; the mediastinum is the rest of the lung air's convex hull. Soft tissue of
    :data:`BLOOD_HU` there (heart, great vessels, and with them oesophagus and lymph nodes) and of
    :data:`VESSEL_HU` in the lung region (vessels) gains the full enhancement; the pixels around a
    vessel gain the share of it that their density says they hold of vessel (0 at −700 HU, all of it at
    +40 HU: partial volume). Fat, bone and everything outside the hull stay. A stress copy for the
    classifiers and the lung mask (COVID-19 CTs are mostly taken without contrast), not a model of any
    one contrast phase: liver, spleen and muscle do not enhance here.
    """
    smooth = ndi.uniform_filter(array, (1, 3, 3))
    close_px = max(1, int(round(5.0 / spacing[1])))
    disk = np.hypot(*np.mgrid[-close_px : close_px + 1, -close_px : close_px + 1]) <= close_px
    weight = np.zeros(array.shape, np.float32)
    for z, plane in enumerate(smooth):
        body = ndi.binary_fill_holes(plane > -500)
        air = ndi.binary_opening(body & (plane < -400), disk)  # no thin gaps at the skin or the table
        if not air.any():
            continue
        lung_region = ndi.binary_closing(air, disk) & body
        hull = hull_pixels(air, step=4)  # its edge to within a few mm is enough here
        blood = hull & ~lung_region & (plane > BLOOD_HU[0]) & (plane < BLOOD_HU[1])
        inside = lung_region & hull & (plane < VESSEL_HU[1])
        core = inside & (plane > VESSEL_HU[0])  # vessels' soft tissue, not fat at the lung's edge
        rim = ndi.binary_dilation(core) & inside  # their partial-volume edge
        weight[z] = np.maximum(blood, np.where(core, 1.0, rim * np.clip((plane + 700.0) / 740.0, 0.0, 1.0)))
    return array + enhancement_hu * weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("cts", nargs="+", type=Path)
    parser.add_argument("--copies", type=int, default=4, help="copies per CT (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    record = {}
    for index, path in enumerate(args.cts):
        ct = load_ct(path)
        stem = path.name.split(".")[0]
        for k in range(args.copies):
            rng = np.random.default_rng([args.seed, index, k])
            settings = draw(rng)
            target = args.out / f"{stem}_d{k}.nii.gz"
            save_image(domain_copy(ct, settings, rng), target)
            record[target.name] = {"source": path.name, **settings}
            print(f"{target.name}: {settings}", flush=True)
    (args.out / "backgrounds.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
