"""The real-CT yardstick's targets that fit in CI time (the whole table: ``Testing/benchmarks/real_ct_yardstick.py``).

* Lung masks without organs: on real non-COVID CTs from three scanners, the *thick dense* tissue inside
  the mask (voxels above −300 HU surviving an opening with a 4 mm ball, ``real_cts.thick_dense``) is at
  most 20 ml for both lung methods, A0001's and POPI's lung tumours reported apart (tumour is lung, so
  it may be in the mask).
* The same on those CTs as a sharper reconstruction kernel shows them (the yardstick's ``--scanner sharp``
  copy), where a UNet that had only seen soft kernels took in chest wall and heart border (A0001-L 35 ml).
* Organ domes out: the top of the liver under normal001's right lung and of the stomach and spleen
  under P001's left lung, where the axial slices cut them as islands of tissue in the lung, and P001's
  gas-bubbled stomach contents under its left lung's basal crescent are not in either method's mask
  (points read off the CTs, :data:`ORGAN_DOMES`).
* Lesions kept: in the radiologists' infection-positive slices of the real COVID-19 CTs P001 and P002,
  the default method's mask holds the lesion-density tissue (−750…+100 HU) that the unsupervised
  method's holds more than :data:`SURFACE_MM` inside it (closer to its surface it is mostly the
  partial volume of the lung's edge, which a mask drawn at about 2 mm per pixel may cut differently).
* The bundled DeCoVNet on every real CT: no warning on any, each real negative below the card's
  threshold, P001 and P002 above it, their hottest heat-map voxel in an infection-positive slice, and
  the negatives' heat below what was measured plus a margin (:data:`NEGATIVE_HEAT_LIMIT`) or, on POPI,
  on its lung tumour. The bundled COVID-19Net: no warning, every real CT on the right side of the
  threshold, P001's and P002's hottest heat-map voxel in an infection-positive slice, and every
  probability the one its card lists.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import SimpleITK as sitk
from benchmarks.real_ct_yardstick import scanner_copy
from real_cts import REAL_BY_NAME, REAL_CTS, hottest_in_infection_slice, infection_slices, thick_dense_ml
from scipy import ndimage as ndi

from covidct.io import load_ct
from covidct.lungs import METHODS, segment_lungs

#: real non-COVID CTs of three scanners; the fast tier runs the first two
NEGATIVES = ("normal001", "A0001-L", "POPI", "A0001-B")
THICK_DENSE_LIMIT_ML = 20.0
LESION_HU = (-750.0, 100.0)
#: lesion-density tissue this close (mm) to the threshold mask's surface is not counted
SURFACE_MM = 2.0
#: points (LPS mm) inside organs under the diaphragm whose tops the default mask held before organ caps
#: (:mod:`covidct.lungs.organ_caps`), at least 4 mm deep in the part it held: normal001's liver dome under the
#: right lung, and under P001's left lung the dome of the stomach and spleen (an island ringed by lung) and,
#: lower, gas-bubbled stomach contents under the lung's basal crescent (which the UNet held, 5.2 ml, before
#: its gas-mottled hard negatives, :mod:`covidct.data.organ_gas`)
ORGAN_DOMES = {
    "normal001-liver": ("normal001", (-74.6, -168.8, -188.5)),
    "P001-dome": ("P001", (105.4, -189.0, -262.1)),
    "P001-stomach": ("P001", (109.1, -110.4, -304.1)),
}
#: radius (mm) of the ball around each point that must hold no lung
DOME_CLEAR_MM = 3.0


def case_file(name: str):
    path = REAL_BY_NAME[name].file
    if not path.exists():
        pytest.skip(f"real CT {name} not found at {path} (set COVIDCT_SHARED_DATA)")
    return path


@functools.cache
def segmented(name: str, method: str) -> tuple[sitk.Image, sitk.Image]:
    ct = load_ct(case_file(name))
    return ct, segment_lungs(ct, method=method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "name", [n if i < 2 else pytest.param(n, marks=pytest.mark.slow) for i, n in enumerate(NEGATIVES)]
)
def test_lung_mask_holds_no_organ_on_real_normal_cts(name, method):
    ct, labels = segmented(name, method)
    thick, tumour = thick_dense_ml(ct, labels, REAL_BY_NAME[name].tumour_lps)
    print(f"{name} ({method}): thick dense {thick:.1f} ml outside the tumour, {tumour:.1f} ml tumour")
    assert thick <= THICK_DENSE_LIMIT_ML


@pytest.mark.parametrize(
    "scanner",
    ["sharp", pytest.param("lowdose", marks=pytest.mark.slow), pytest.param("contrast", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("name", ["A0001-L", "normal001"])
def test_default_lung_mask_holds_no_organ_on_scanner_copies(name, scanner):
    """The yardstick's copies of a sharp kernel, a low-dose scan (50 HU of noise) and intravenous contrast.
    Measured, A0001-L besides its tumour / normal001: sharp 4.7 / 4.6 ml (the UNet before its sharp-kernel
    training copies: 35.0 and 13.1 ml), lowdose 1.3 / 2.4 ml, contrast 3.4 / 6.2 ml."""
    ct = scanner_copy(load_ct(case_file(name)), scanner)
    thick, tumour = thick_dense_ml(ct, segment_lungs(ct, method=METHODS[0]), REAL_BY_NAME[name].tumour_lps)
    print(f"{name}, {scanner} copy: thick dense {thick:.1f} ml outside the tumour, {tumour:.1f} ml tumour")
    assert thick <= THICK_DENSE_LIMIT_ML


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("organ", sorted(ORGAN_DOMES))
def test_organ_domes_under_the_diaphragm_stay_out_of_the_lungs(organ, method):
    name, point = ORGAN_DOMES[organ]
    ct, labels = segmented(name, method)
    centre = np.array(labels.TransformPhysicalPointToIndex(point)[::-1])
    reach = np.array([int(np.ceil(DOME_CLEAR_MM / s)) for s in reversed(ct.GetSpacing())])
    box = tuple(slice(c - r, c + r + 1) for c, r in zip(centre, reach, strict=True))
    offsets_mm = (np.indices(2 * reach + 1) - reach[:, None, None, None]) * np.array(ct.GetSpacing()[::-1])[
        :, None, None, None
    ]
    ball = np.sqrt((offsets_mm**2).sum(axis=0)) <= DOME_CLEAR_MM
    lung = sitk.GetArrayViewFromImage(labels)[box] > 0
    assert lung.shape == ball.shape and not (lung & ball).any()


@pytest.mark.parametrize("name", ["P001", "P002"])
def test_lesions_of_the_infection_slices_stay_in_the_default_mask(name):
    ct, default = segmented(name, METHODS[0])
    _, threshold = segmented(name, "threshold")
    hu = sitk.GetArrayViewFromImage(ct)
    slices = infection_slices(REAL_BY_NAME[name].labels_file, hu.shape[0])
    inside = sitk.GetArrayViewFromImage(threshold) > 0
    depth = ndi.distance_transform_edt(inside, sampling=tuple(reversed(ct.GetSpacing())))[slices]
    lesion = (hu[slices] > LESION_HU[0]) & (hu[slices] < LESION_HU[1]) & (depth > SURFACE_MM)
    in_default = lesion & (sitk.GetArrayViewFromImage(default)[slices] > 0)
    ml = float(np.prod(ct.GetSpacing())) / 1000.0
    share = in_default.sum() / lesion.sum()
    print(
        f"{name}: lesion-density tissue of the infection slices in the default mask {100 * share:.1f} % "
        f"of {lesion.sum() * ml:.0f} ml"
    )
    assert share >= 0.97


#: the bundled DeCoVNet's hottest heat-map voxel (card scale) on each real negative but POPI stays below this.
#: Measured: normal001 0.17, CIP 0.44, A0001-B 0.29, A0001-L 0.21 (a guard of this model with the bundled UNet's
#: lungs, with a margin: a one-pixel change of the mask's edge moved an earlier model's by up to 0.52)
NEGATIVE_HEAT_LIMIT = {"normal001": 0.4, "CIP": 0.65, "A0001-B": 0.5, "A0001-L": 0.45}
#: POPI's heat is high on its lung tumour (1.00 there, P 0.018): its hottest voxel lies within this distance
#: (mm) of the tumour point (12 mm measured; the mass is about 25 mm across)
TUMOUR_HEAT_MM = 20.0


@pytest.mark.slow
@pytest.mark.parametrize("model", ["decovnet"])
def test_bundled_classifier_on_every_real_ct(model):
    from covidct.detection import detect, load_classifier

    loaded = load_classifier(model, "cpu")
    for case in REAL_CTS:
        result = detect(case_file(case.name), model=loaded)
        heat = sitk.GetArrayViewFromImage(result.heatmap)
        print(f"{case.name}: P = {result.probability:.3f} ({result.label}), hottest heat {heat.max():.2f}")
        assert result.positive == case.covid, f"{case.name}: {result.probability:.3f}"
        assert result.warnings == []  # whole lungs, in the validated range, the card's lung method
        if case.labels_file is not None:
            assert hottest_in_infection_slice(result.heatmap, case.labels_file)
        elif case.name in NEGATIVE_HEAT_LIMIT:
            assert heat.max() < NEGATIVE_HEAT_LIMIT[case.name], f"{case.name}: heat {heat.max():.2f}"
        else:
            hottest = np.unravel_index(int(np.argmax(heat)), heat.shape)[::-1]
            at = np.array(result.heatmap.TransformIndexToPhysicalPoint([int(i) for i in hottest]))
            assert np.linalg.norm(at - np.array(case.tumour_lps)) <= TUMOUR_HEAT_MM


@pytest.mark.slow
def test_bundled_covid19net_on_every_real_ct_is_what_its_card_says():
    from covidct.detection import detect, load_classifier

    loaded = load_classifier("covid19net", "cpu")
    listed = loaded[1].metrics["real_ct_probabilities"]
    assert set(listed) == {case.name for case in REAL_CTS}
    for case in REAL_CTS:
        result = detect(case_file(case.name), model=loaded, heatmap=case.labels_file is not None)
        print(f"{case.name}: P = {result.probability:.3f} ({result.label}), card {listed[case.name]:.3f}")
        assert result.probability == pytest.approx(listed[case.name], abs=0.01)
        assert result.warnings == []
        assert result.positive == case.covid, f"{case.name}: {result.probability:.3f}"
        if case.labels_file is not None:
            assert hottest_in_infection_slice(result.heatmap, case.labels_file)
