"""covidct.detect (covidct.detection) on the real CIP CT with models saved through the catalogue (random weights, so the
pipeline runs without bundled weights): fields, geometry, saved files, orientation invariance,
thresholds and error sentences."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import TEST_DATA

from covidct.detection import Detection, detect
from covidct.errors import CTInputError, ModelError, UsageError
from covidct.geometry import resample_to_reference
from covidct.models import load_model
from covidct.preprocess import model_input

CIP_CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
CIP_LUNGS = TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"


@pytest.fixture(scope="module")
def cip_result(models_dir) -> Detection:
    return detect(CIP_CT, model="tiny-covid19net", lungs=CIP_LUNGS, device="cpu")


def _array(image):
    return sitk.GetArrayFromImage(image)


def test_detection_fields_and_geometry_on_a_real_ct(cip_result, models_dir):
    ct = sitk.ReadImage(str(CIP_CT))
    r = cip_result
    assert 0.0 <= r.probability <= 1.0 and r.threshold == 0.3  # the card's threshold
    assert r.label == ("positive" if r.probability > 0.3 else "negative") and r.positive == (r.label == "positive")
    assert r.model == "tiny-covid19net" and r.source == "ct-64.nrrd"
    assert set(r.timings) == {"load", "lungs", "preprocess", "forward", "heatmap"}
    assert all(seconds >= 0 for seconds in r.timings.values())
    for image in (r.heatmap, r.suspicious, r.lungs):
        assert image.GetSize() == ct.GetSize()
        assert np.allclose(image.GetOrigin(), ct.GetOrigin()) and np.allclose(image.GetSpacing(), ct.GetSpacing())
    heat, lungs = _array(r.heatmap), _array(r.lungs)
    assert r.heatmap.GetPixelID() == sitk.sitkFloat32 and r.suspicious.GetPixelID() == sitk.sitkUInt8
    assert heat.min() >= 0.0 and heat.max() == pytest.approx(1.0)
    assert not heat[lungs == 0].any()
    suspicious = _array(r.suspicious) > 0
    assert not (suspicious & (heat < 0.5)).any()  # suspicious regions are hot

    # probability and features are the model's own on the paper's input
    net, _ = load_model(models_dir / "tiny-covid19net", "cpu")
    x = torch.from_numpy(model_input("covid19net", ct, sitk.ReadImage(str(CIP_LUNGS)))[0])[None]
    with torch.no_grad():
        assert r.probability == pytest.approx(float(net.probability(net(x))[0]), abs=1e-6)
        assert r.features.shape == (64,)
        assert np.allclose(r.features, net.features(x)[0].numpy(), atol=1e-5)


def test_save_writes_every_output_with_the_cts_geometry(cip_result, tmp_path):
    paths = cip_result.save(tmp_path / "case")
    assert {p.name for p in (tmp_path / "case").iterdir()} == {
        "report.json",
        "heatmap.nii.gz",
        "lungs.nii.gz",
        "suspicious.nii.gz",
        "montage.png",
    }
    ct = sitk.ReadImage(str(CIP_CT))
    for kind in ("heatmap", "lungs", "suspicious"):
        image = sitk.ReadImage(str(paths[kind]))
        assert image.GetSize() == ct.GetSize() and np.allclose(image.GetOrigin(), ct.GetOrigin())
        assert np.allclose(image.GetDirection(), ct.GetDirection())
    assert np.array_equal(_array(sitk.ReadImage(str(paths["heatmap"]))), _array(cip_result.heatmap))
    report = json.loads(paths["report"].read_text(encoding="utf-8"))
    assert report["probability"] == pytest.approx(cip_result.probability, abs=1e-6)
    assert report["label"] == cip_result.label and report["threshold"] == 0.3
    assert report["source"] == "ct-64.nrrd" and report["model"] == "tiny-covid19net"
    assert set(report["timings_s"]) == {"load", "lungs", "preprocess", "forward", "heatmap", "save"}
    assert "not clinically validated" in report["model_card"]["not_clinically_validated"]
    assert len(report["features"]) == 64 and report["lung_volume_ml"] == pytest.approx(4554, rel=0.01)
    assert str(tmp_path) not in paths["report"].read_text(encoding="utf-8")  # no machine paths in the report
    png = paths["montage"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_same_probability_and_heat_map_for_an_lps_and_a_ras_copy(cip_result, models_dir):
    ct, lungs = sitk.ReadImage(str(CIP_CT)), sitk.ReadImage(str(CIP_LUNGS))
    ras = detect(
        sitk.DICOMOrient(ct, "RAS"), model="tiny-covid19net", lungs=sitk.DICOMOrient(lungs, "RAS"), device="cpu"
    )
    assert ras.source == "" and ras.heatmap.GetDirection() == sitk.DICOMOrient(ct, "RAS").GetDirection()
    assert ras.probability == pytest.approx(cip_result.probability, abs=1e-4)
    assert np.allclose(ras.features, cip_result.features, atol=1e-4)
    back = _array(resample_to_reference(ras.heatmap, cip_result.heatmap, "linear"))
    assert np.corrcoef(back.ravel(), _array(cip_result.heatmap).ravel())[0, 1] >= 0.99


@pytest.mark.parametrize("given_lungs", [True, False])
def test_a_ras_ct_is_reoriented_once_and_each_output_mapped_back_once(given_lungs, models_dir, monkeypatch):
    """Every step works on the canonical copy: one reorientation of the CT (and of a given mask), one per
    output on the way back (lungs when segmented, heat map, suspicious regions)."""
    ct = sitk.DICOMOrient(sitk.ReadImage(str(CIP_CT)), "RAS")
    lungs = sitk.DICOMOrient(sitk.ReadImage(str(CIP_LUNGS)), "RAS") if given_lungs else None
    reorient, calls = sitk.DICOMOrient, []
    monkeypatch.setattr(sitk, "DICOMOrient", lambda image, code: calls.append(code) or reorient(image, code))
    result = detect(ct, model="tiny-covid19net", lungs=lungs, lungs_method="threshold", device="cpu")
    expected = ["LPS", "LPS", "RAS", "RAS"] if given_lungs else ["LPS", "RAS", "RAS", "RAS"]
    assert sorted(calls) == expected
    assert result.heatmap.GetDirection() == ct.GetDirection() == result.lungs.GetDirection()


def test_without_heat_map_the_probability_is_the_same(cip_result, models_dir):
    r = detect(CIP_CT, model="tiny-covid19net", lungs=CIP_LUNGS, device="cpu", heatmap=False, threshold=0.999)
    assert r.heatmap is None and r.suspicious is None and "heatmap" not in r.timings
    assert r.probability == pytest.approx(cip_result.probability, abs=1e-6)
    assert r.threshold == 0.999 and r.label == "negative"


def test_a_mask_on_another_grid_is_brought_onto_the_ct_grid(models_dir):
    lungs = sitk.ReadImage(str(CIP_LUNGS))
    coarse = sitk.Resample(
        lungs,
        [32, 32, 40],
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        lungs.GetOrigin(),
        [s * 2 for s in lungs.GetSpacing()],
        lungs.GetDirection(),
        0,
        lungs.GetPixelID(),
    )
    r = detect(CIP_CT, model="tiny-covid19net", lungs=coarse, device="cpu", heatmap=False)
    assert r.lungs.GetSize() == (64, 64, 79)
    overlap = np.logical_and(_array(r.lungs) > 0, _array(lungs) > 0).sum() / (_array(lungs) > 0).sum()
    assert overlap > 0.9


def test_bad_options_and_inputs_are_one_sentence_errors(models_dir, tmp_path):
    with pytest.raises(UsageError, match="strictly between 0 and 1"):
        detect(CIP_CT, model="tiny-covid19net", lungs=CIP_LUNGS, threshold=1.0)
    with pytest.raises(UsageError, match="lung segmentation method"):
        detect(CIP_CT, model="tiny-covid19net", lungs_method="atlas")
    with pytest.raises(ModelError, match="Unknown model 'nonexistent'"):
        detect(CIP_CT, model="nonexistent", lungs=CIP_LUNGS)
    with pytest.raises(UsageError, match="Unknown device"):
        detect(CIP_CT, model="tiny-covid19net", lungs=CIP_LUNGS, device="tpu")
    empty = sitk.ReadImage(str(CIP_LUNGS)) * 0
    with pytest.raises(CTInputError, match="No lungs"):
        detect(CIP_CT, model="tiny-covid19net", lungs=empty, device="cpu")
    with pytest.raises(CTInputError):
        detect(tmp_path / "missing.nii.gz", model="tiny-covid19net", device="cpu")
    with pytest.raises(CTInputError):  # an in-memory image gets the checks of a loaded file: 2D is refused
        detect(sitk.ReadImage(str(CIP_CT))[:, :, 40], model="tiny-covid19net", lungs=CIP_LUNGS, device="cpu")


def test_threshold_lung_segmentation_when_no_mask_is_given(models_dir):
    r = detect(CIP_CT, model="tiny-covid19net", lungs_method="threshold", device="cpu", heatmap=False)
    labels = _array(r.lungs)
    assert set(np.unique(labels)) == {0, 1, 2}
    reference = _array(sitk.ReadImage(str(CIP_LUNGS))) > 0
    dice = 2 * np.logical_and(labels > 0, reference).sum() / ((labels > 0).sum() + reference.sum())
    assert dice > 0.85


@pytest.mark.slow
def test_decovnet_two_logit_model_end_to_end(models_dir):
    ct, lungs = sitk.ReadImage(str(CIP_CT)), sitk.ReadImage(str(CIP_LUNGS))
    r = detect(ct, model="random-decovnet", lungs=lungs, device="cpu")
    assert r.features is None and r.threshold == 0.5
    heat = _array(r.heatmap)
    assert heat.max() == pytest.approx(1.0) and not heat[_array(lungs) == 0].any()
    ras = detect(
        sitk.DICOMOrient(ct, "RAS"), model="random-decovnet", lungs=sitk.DICOMOrient(lungs, "RAS"), device="cpu"
    )
    assert ras.probability == pytest.approx(r.probability, abs=1e-4)
    back = _array(resample_to_reference(ras.heatmap, r.heatmap, "linear"))
    assert np.corrcoef(back.ravel(), heat.ravel())[0, 1] >= 0.99


def test_an_architecture_name_stands_for_the_installed_model_of_that_architecture(models_dir, monkeypatch, tmp_path):
    from covidct.detection import load_classifier
    from covidct.models import catalogue

    # the bundled model of an architecture comes first, before the user's models of that architecture
    net, card = load_classifier("covid19net", "cpu")
    assert card.name == "covid19net-demo" and not net.training
    assert load_classifier("decovnet", "cpu")[1].name == "decovnet-demo"
    assert load_classifier("random-decovnet", "cpu")[1].name == "random-decovnet"
    assert load_classifier(models_dir / "tiny-covid19net", "cpu")[1].name == "tiny-covid19net"
    # where none is bundled, the user's model of that architecture
    monkeypatch.setattr(catalogue, "BUNDLED_DIR", tmp_path / "no-bundled-weights")
    assert load_classifier("covid19net", "cpu")[1].name == "tiny-covid19net"


def test_without_lungs_the_bundled_model_gets_masks_by_its_cards_lung_method():
    from covidct.io import load_ct
    from covidct.lungs import segment_lungs

    ct = load_ct(CIP_CT)
    result = detect(ct, model="decovnet", device="cpu", heatmap=False)
    assert result.card.input["lungs_method"] == "unet"  # decovnet-demo was selected on real CTs with UNet lungs
    unet = sitk.GetArrayFromImage(segment_lungs(ct, method="unet"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.lungs), unet)
    # a method named by the caller wins
    threshold = detect(ct, model="decovnet", device="cpu", heatmap=False, lungs_method="threshold")
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(threshold.lungs), sitk.GetArrayFromImage(segment_lungs(ct, method="threshold"))
    )
    assert not np.array_equal(sitk.GetArrayFromImage(threshold.lungs), unet)
