"""Both lung segmentation methods, the bundled 2D UNet and the unsupervised threshold method, on real CTs.

* CIP COPDGene case (real whole-lung mask, 4 mm voxels, never trained on): Dice ≥ 0.95.
* COVID-CT-MD P001, P002 (COVID-19) and normal001: each lung 1.0–4.5 L, label 1 on the patient's
  right, no air from outside the body, no trachea above the carina, and the same lungs from a copy
  reoriented to RAS.
* Lesions: dense consolidation (−100…+50 HU, 1–4 cm) inserted into the real lungs of P001 and
  normal001 (:func:`real_lungs`), touching the costal pleura or the pleura anywhere, while the rest of
  the lung keeps Dice ≥ 0.97 against the clean CT's mask. The threshold method puts back part of the
  lesions at the **costal** pleura only (:mod:`covidct.lungs.pleura`); the UNet method, trained with
  such lesions and finished by their rims (:mod:`covidct.lungs.lesion_rims`), holds most of them on
  every side. :data:`COVERAGE` guards what was measured. Coverages are printed (``pytest -s``).

The big CTs are loaded and segmented once per module and method (:func:`segmented`).
"""

from __future__ import annotations

import functools

import lung_checks as checks
import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_file

from covidct.data.synth import insert_lesions
from covidct.io import load_ct, read_image
from covidct.lungs import METHODS, lung_volumes_ml, segment_lungs

CASES = ("P001", "P002", "normal001")
LESION_CASES = ("P001", "normal001")
#: lesion volumes per test (random seeds), their lesions pooled: 5 × 8 costal or 5 × 6 anywhere lesions per CT
SEEDS = (7, 8, 9, 10, 11)
#: lesions replace aerated lung: voxels of the clean CT below this density (HU)
AERATED_HU = -300.0
#: share of lesion voxels each method's mask must hold. Measured (costal / anywhere): UNet P001 94.8 /
#: 92.7 %, normal001 94.8 / 92.7 %; threshold P001 87.6 / 83.0 %, normal001 75.1 / 72.7 %. The UNet's
#: misses are anterior lesions (against the anterior chest wall and the heart) and lesions against the
#: mediastinum beside the heart. Lesions go where both masks hold lung (the bundled UNet's and the threshold
#: method's), so the lesion set changes with the UNet's weights: the previous UNet (before its gas-mottled
#: hard negatives) on this set held 95.9 / 92.8 % and 95.4 / 93.3 %, and on its own set 95.1 / 96.3 % and
#: 95.5 / 94.9 % (this UNet there: 94.2 / 95.8 %, 95.3 / 95.1 %). They also sit on the domes the organ caps keep out
#: (:mod:`covidct.lungs.organ_caps`); consolidation wrapping a dome goes out with it. The UNet's weights
#: trade coverage against organ inside the mask on real CTs (``Testing/test_real_cts.py``): a later stage-2
#: epoch held 92.0–98.5 % of an earlier lesion set but took 13–19 ml of organ into normal lungs and 56 ml
#: into P001.
COVERAGE = {"unet": 0.92, "threshold": 0.55}


@functools.cache
def load_case(name: str) -> sitk.Image:
    """A COVID-CT-MD sample CT, loaded once."""
    return load_ct(shared_file(f"covid-ct-md-sample/{name}.nii.gz"))


@functools.cache
def segmented(name: str, method: str) -> tuple[sitk.Image, sitk.Image]:
    """``(CT, labelmap)`` of a COVID-CT-MD sample case by ``method``, computed once."""
    ct = load_case(name)
    return ct, segment_lungs(ct, method=method)


@pytest.fixture(
    scope="module", params=[(name, method) for method in METHODS for name in CASES], ids=lambda param: "-".join(param)
)
def case(request):
    name, method = request.param
    ct, labels = segmented(name, method)
    hu, lab, spacing = checks.arrays(ct, labels)
    return {
        "name": name,
        "method": method,
        "ct": ct,
        "labels": labels,
        "hu": hu,
        "lab": lab,
        "spacing": spacing,
        "body": checks.body_mask(hu),
    }


@pytest.mark.parametrize("method", METHODS)
def test_cip_dice_against_real_whole_lung_mask(method):
    ct = load_ct(shared_file("cip-copdgene-10002K-ct64/ct-64.nrrd"))
    truth = sitk.GetArrayFromImage(read_image(shared_file("cip-copdgene-10002K-ct64/wholeLung-64.nrrd"))) > 0
    labels = sitk.GetArrayFromImage(segment_lungs(ct, method=method))
    score = checks.dice(labels > 0, truth)
    print(f"CIP whole-lung Dice ({method}): {score:.4f}")
    assert score >= 0.95
    assert set(np.unique(labels)) == {0, 1, 2}


def test_labelmap_is_uint8_on_the_ct_grid(case):
    labels, ct = case["labels"], case["ct"]
    assert labels.GetPixelID() == sitk.sitkUInt8
    assert labels.GetSize() == ct.GetSize()
    assert np.allclose(labels.GetOrigin(), ct.GetOrigin()) and labels.GetDirection() == ct.GetDirection()


def test_each_lung_holds_one_to_four_and_a_half_litres(case):
    volumes = checks.volumes_l(case["lab"], case["spacing"])
    print(f"{case['name']} ({case['method']}): right {volumes[1]:.2f} L, left {volumes[2]:.2f} L")
    assert 1.0 <= volumes[1] <= 4.5 and 1.0 <= volumes[2] <= 4.5
    assert lung_volumes_ml(case["labels"])["right lung"] == pytest.approx(1000 * volumes[1])


def test_label_one_is_the_patients_right_lung(case):
    # canonical x runs to the patient's left, so the right lung has the smaller x
    assert checks.centre_x(case["lab"] == 1) < checks.centre_x(case["lab"] == 2)


def test_no_air_from_outside_the_body(case):
    lung = case["lab"] > 0
    assert not (lung & checks.border_air(case["hu"])).any()
    assert not (lung & ~case["body"]).any()
    assert not (lung[:, [0, -1], :].any() or lung[:, :, [0, -1]].any())


def test_no_trachea_above_the_carina(case):
    trachea = checks.trachea_above_carina(case["hu"], case["body"], case["spacing"])
    extent_mm = np.ptp(np.flatnonzero(trachea.any(axis=(1, 2)))) * case["spacing"][2]
    assert extent_mm >= 40.0, "the independent trachea finder must find a real trachea for this check to mean anything"
    carina = np.flatnonzero(trachea.any(axis=(1, 2)))[0]  # where the finder stopped
    above = carina + int(np.ceil(6.0 / case["spacing"][2]))
    assert not (trachea[above:] & (case["lab"][above:] > 0)).any()
    # the mask's top 10 mm hold the two apices, lateral to the trachea, not a midline airway
    lung = case["lab"] > 0
    top = np.flatnonzero(lung.any(axis=(1, 2)))[-1]
    for z in range(top - int(10 / case["spacing"][2]), top + 1):
        midline = np.mean(np.nonzero(trachea[z])[1])
        components, count = checks.ndi.label(lung[z])
        for index in range(1, count + 1):
            distance = abs(np.mean(np.nonzero(components == index)[1]) - midline) * case["spacing"][0]
            assert distance >= 15.0, f"slice {z}: a lung component lies on the trachea's line"


def test_same_lungs_from_a_copy_reoriented_to_ras(case):
    ras = sitk.DICOMOrient(case["ct"], "RAS")
    labels_ras = segment_lungs(ras, method=case["method"])
    assert labels_ras.GetSize() == ras.GetSize() and labels_ras.GetDirection() == ras.GetDirection()
    back = sitk.GetArrayFromImage(sitk.DICOMOrient(labels_ras, "LPS"))
    original = sitk.GetArrayFromImage(case["labels"])
    for value in (1, 2):
        assert checks.dice(back == value, original == value) >= 0.99


@functools.cache
def real_lungs(name: str) -> tuple[sitk.Image, sitk.Image]:
    """Where the lesions go: ``(lungs, aerated)`` labelmaps on the CT grid with the UNet's right/left
    labels. ``lungs``: voxels both methods call lung on the clean CT (lesion centres are drawn at its
    surface); ``aerated``: those of them below :data:`AERATED_HU` (lesion voxels). Consolidation
    fills air spaces; this keeps lesions out of tissue one method's mask wrongly holds (e.g.
    retrosternal fat) and out of vessels."""
    ct, unet = segmented(name, "unet")
    _, threshold = segmented(name, "threshold")
    both = sitk.GetArrayFromImage(unet) * (sitk.GetArrayViewFromImage(threshold) > 0)
    images = []
    for array in (both, both * (sitk.GetArrayViewFromImage(ct) < AERATED_HU)):
        image = sitk.GetImageFromArray(array.astype(np.uint8))
        image.CopyInformation(unet)
        images.append(image)
    return images[0], images[1]


def _costal(name: str, seed: int) -> tuple[sitk.Image, np.ndarray]:
    """8 consolidations at the costal pleura (:func:`lung_checks.costal_lesions`): CT and canonical lesion mask."""
    ct = load_case(name)
    lungs, aerated = real_lungs(name)
    hu, surface, spacing = checks.arrays(ct, lungs)
    new_hu, lesions = checks.costal_lesions(
        hu, surface, spacing, np.random.default_rng(seed), n=8, cut=checks.arrays(ct, aerated)[1]
    )
    return checks.image_like(new_hu, ct), lesions


def _anywhere(name: str, seed: int) -> tuple[sitk.Image, np.ndarray]:
    """6 consolidations touching the pleura anywhere (:func:`covidct.data.synth.insert_lesions`)."""
    ct = load_case(name)
    with_lesions, lesion_mask = insert_lesions(
        ct,
        real_lungs(name)[1],
        np.random.default_rng(seed),
        kinds=("consolidation",),
        n_lesions=(6, 6),
        size_mm=(10.0, 40.0),
        subpleural=1.0,
    )
    return with_lesions, checks.arrays(ct, lesion_mask)[1] > 0


@pytest.mark.slow  # five lesion volumes segmented per case
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", LESION_CASES)
@pytest.mark.parametrize("where", ["costal", "anywhere"])
def test_consolidation_touching_the_pleura_is_inside_the_mask(where, name, method):
    """Lesions of :data:`SEEDS` volumes pooled: the share of their voxels inside the mask, and the rest
    of the lung's Dice against the clean CT's mask in each volume."""
    ct, labels = segmented(name, method)
    clean = checks.arrays(ct, labels)[1] > 0
    inside = total = 0
    rests = []
    for seed in SEEDS:
        with_lesions, lesions = (_costal if where == "costal" else _anywhere)(name, seed)
        result = checks.arrays(ct, segment_lungs(with_lesions, method=method))[1] > 0
        inside += int(result[lesions].sum())
        total += int(lesions.sum())
        rests.append(checks.dice(result & ~lesions, clean & ~lesions))
    coverage = inside / total
    print(
        f"{name}: {where} lesions ({len(SEEDS)} volumes, {total * np.prod(ct.GetSpacing()) / 1000:.0f} ml) "
        f"{100 * coverage:.1f} % inside the {method} mask; rest of the lung Dice >= {min(rests):.4f}"
    )
    assert min(rests) >= 0.97
    assert coverage >= COVERAGE[method]
