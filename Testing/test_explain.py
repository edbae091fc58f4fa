"""HiResCAM heat maps: the COVID class and sign on a model whose evidence is known, only the voxels
the score uses, the way back onto
the CT grid (LPS and RAS copies of the real CIP CT), suspicious regions, and the montage's orientation."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import TEST_DATA
from torch import nn

from covidct.explain import (
    HEAT_STEP,
    HiResCAM,
    heat_share,
    heatmap_on_ct,
    hires_cam,
    peak_inside,
    region_summary,
    suspicious_regions,
)
from covidct.geometry import resample_to_reference, to_canonical
from covidct.montage import (
    CELL_PX,
    COLOURBAR_PX,
    PANEL_PX,
    PANEL_TITLE_PX,
    TITLE_PX,
    axial_panels,
    hottest_slices,
    save_heatmap_montage,
)
from covidct.preprocess.decovnet import decovnet_input

CIP = TEST_DATA / "cip-ct64"
POSITIVE_AT, NEGATIVE_AT = (2, 3, 4), (6, 7, 9)


class KnownEvidence(nn.Module):
    """``cam_layer`` = [x⁺, x⁻] (1×1×1 convolution + ReLU); the COVID logit is mean(x⁺) − mean(x⁻), so
    bright voxels are evidence for COVID-19 and dark voxels evidence against it. ``outputs`` = 1 (the
    logit) or 2 (negative, COVID logits, the second the COVID one, the first its negation: log-odds
    2 × (mean(x⁺) − mean(x⁻)))."""

    def __init__(self, outputs: int):
        super().__init__()
        conv = nn.Conv3d(1, 2, 1, bias=False)
        conv.weight.data = torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1, 1)
        self.cam_layer = nn.Sequential(conv, nn.ReLU())
        self.fc = nn.Linear(2, outputs, bias=False)
        rows = [[1.0, -1.0]] if outputs == 1 else [[-1.0, 1.0], [1.0, -1.0]]
        self.fc.weight.data = torch.tensor(rows)

    def forward(self, x):
        return self.fc(self.cam_layer(x).mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("outputs", [1, 2])
def test_cam_marks_the_evidence_for_covid_and_not_the_evidence_against(outputs):
    model = KnownEvidence(outputs)
    x = torch.zeros(1, 1, 8, 10, 12)
    x[(0, 0, *POSITIVE_AT)] = 3.0
    x[(0, 0, *NEGATIVE_AT)] = -5.0
    cam, logits = hires_cam(model, x)
    assert cam.shape == (8, 10, 12)
    assert np.unravel_index(np.argmax(cam), cam.shape) == POSITIVE_AT
    n = x.numel()
    assert cam[POSITIVE_AT] == pytest.approx(outputs * 3.0 / n)  # alpha_+ = 1/N (2/N: log-odds of two), A_+ = 3
    assert cam[NEGATIVE_AT] == 0.0  # ReLU removes evidence against COVID-19
    assert np.count_nonzero(cam) == 1
    covid_logit = logits[0, -1]
    assert float(covid_logit) == pytest.approx((3.0 - 5.0) / n)
    # the model is left as it was: trainable, without gradients
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_cam_forward_and_cam_can_be_split_and_the_hook_is_removed():
    model = KnownEvidence(2)
    x = torch.rand(1, 1, 4, 4, 4)
    with HiResCAM(model) as explainer:
        logits = explainer.forward(x)
        cam = explainer.cam(logits)
    assert cam.shape == (4, 4, 4) and (cam > 0).all()
    assert not model.cam_layer._forward_hooks
    with pytest.raises(ValueError, match="one input"):
        hires_cam(model, torch.rand(2, 1, 4, 4, 4))


class HalfUsed(nn.Module):
    """``cam_layer`` = ReLU(x); the COVID logit is the mean of the layer over the first half of the
    depth only: bright voxels in the second half are activation that never reaches the score."""

    def __init__(self):
        super().__init__()
        self.cam_layer = nn.ReLU()

    def forward(self, x):
        a = self.cam_layer(x)
        return a[:, :, : a.shape[2] // 2].mean(dim=(1, 2, 3, 4))


def test_cam_marks_only_the_voxels_that_reach_the_score():
    """HiResCAM keeps the gradient per voxel, so the unused bright voxel gets no heat (Grad-CAM's
    voxel-averaged gradient would light both equally), and the map adds up to the logit."""
    x = torch.zeros(1, 1, 8, 4, 4)
    x[0, 0, 1, 2, 2] = x[0, 0, 6, 2, 2] = 5.0
    cam, logits = hires_cam(HalfUsed(), x)
    assert cam[1, 2, 2] > 0 and cam[6, 2, 2] == 0.0
    assert cam.sum() == pytest.approx(float(logits[0]))


def _cip(orientation: str):
    ct = sitk.ReadImage(str(CIP / "ct-64.nrrd"))
    lungs = sitk.Cast(sitk.ReadImage(str(CIP / "wholeLung-64.nrrd")), sitk.sitkUInt8)
    if orientation != "LPS":
        ct, lungs = sitk.DICOMOrient(ct, orientation), sitk.DICOMOrient(lungs, orientation)
    return ct, lungs


def _physical_blob(image: sitk.Image, centre_mm, sigma_mm: float) -> np.ndarray:
    """A Gaussian blob around a physical point, as an array (z, y, x) on ``image``'s grid."""
    size = image.GetSize()
    index = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), -1).reshape(-1, 3)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    points = np.array(image.GetOrigin()) + (index * image.GetSpacing()) @ direction.T
    d2 = ((points - centre_mm) ** 2).sum(1)
    return np.exp(-d2 / (2 * sigma_mm**2)).reshape(size).transpose(2, 1, 0).astype(np.float32)


@pytest.mark.parametrize("orientation", ["LPS", "RAS", "RPI"])
def test_heatmap_returns_to_the_physical_place_on_the_ct_grid(orientation):
    """A blob drawn on the model grid at a known physical point of the right lung comes back at that
    point on the CT's own grid, whatever the CT's stored orientation; 0 outside the lungs, max 1."""
    ct, lungs = _cip(orientation)
    _, grid = decovnet_input(ct, lungs)
    centre = np.array([-60.0, -130.0, -200.0])  # LPS mm: patient's right lung, mid-height
    assert sitk.GetArrayViewFromImage(lungs)[tuple(reversed(lungs.TransformPhysicalPointToIndex(centre)))] > 0
    canonical = to_canonical(ct)
    cam = grid.to_model(_physical_blob(canonical, centre, 12.0))
    heat = heatmap_on_ct(cam, grid, ct, lungs)

    assert heat.GetSize() == ct.GetSize() and heat.GetPixelID() == sitk.sitkFloat32
    assert np.allclose(heat.GetOrigin(), ct.GetOrigin()) and heat.GetDirection() == ct.GetDirection()
    values = sitk.GetArrayViewFromImage(heat)
    inside = sitk.GetArrayViewFromImage(lungs) > 0
    assert values.max() == pytest.approx(1.0) and values.min() >= 0.0
    assert not values[~inside].any()
    peak = heat.TransformIndexToPhysicalPoint([int(i) for i in np.unravel_index(np.argmax(values), values.shape)][::-1])
    assert np.linalg.norm(np.array(peak) - centre) < 1.5 * max(ct.GetSpacing())
    expected = _physical_blob(ct, centre, 12.0) * inside
    assert np.corrcoef(values[inside], expected[inside])[0, 1] > 0.99


def test_heatmaps_of_an_lps_and_a_ras_copy_agree_after_resampling():
    maps = []
    for orientation in ("LPS", "RAS"):
        ct, lungs = _cip(orientation)
        _, grid = decovnet_input(ct, lungs)
        rng = np.random.default_rng(7)
        cam = rng.random((8, 14, 21)).astype(np.float32)  # an arbitrary map on the model grid
        maps.append(heatmap_on_ct(cam, grid, ct, lungs))
    on_lps = sitk.GetArrayFromImage(resample_to_reference(maps[1], maps[0], "nearest"))
    assert np.allclose(on_lps, sitk.GetArrayViewFromImage(maps[0]), atol=1e-6)


def test_heatmap_of_a_zero_cam_is_all_zero():
    ct, lungs = _cip("LPS")
    _, grid = decovnet_input(ct, lungs)
    heat = heatmap_on_ct(np.zeros((4, 7, 10), np.float32), grid, ct, lungs)
    assert not sitk.GetArrayViewFromImage(heat).any()


def test_suspicious_regions_keep_large_hot_regions_only():
    heat = np.zeros((20, 30, 30), np.float32)
    heat[2:8, 2:12, 2:12] = 0.9  # 600 voxels × 8 mm³ = 4.8 mL
    heat[15:17, 20:22, 20:22] = 1.0  # 8 voxels = 0.064 mL, below 1 mL
    heat[10:12, 2:30, 2:30] = 0.4  # below the 0.5 level
    image = sitk.GetImageFromArray(heat)
    image.SetSpacing((2.0, 2.0, 2.0))
    labels = suspicious_regions(image, level=0.5, min_volume_ml=1.0)
    array = sitk.GetArrayViewFromImage(labels)
    assert labels.GetPixelID() == sitk.sitkUInt8 and set(np.unique(array)) == {0, 1}
    assert np.count_nonzero(array) == 600 and array[3, 3, 3] == 1 and array[15, 20, 20] == 0
    assert region_summary(labels) == {"regions": 1, "volume_ml": 4.8}
    assert region_summary(suspicious_regions(image, level=0.5, min_volume_ml=0.01))["regions"] == 2
    with pytest.raises(ValueError):
        suspicious_regions(image, level=0.0)


def test_hottest_slices_are_spread_and_fall_back_to_the_lungs():
    heat = np.zeros((30, 4, 4))
    heat[10] = 5
    heat[11] = 4
    heat[20] = 3
    assert hottest_slices(heat, 2) == [10, 20]  # 11 is too close to 10 (gap 5)
    lungs = np.zeros((30, 4, 4))
    lungs[5:8] = 1
    assert hottest_slices(np.zeros((30, 4, 4)), 1, lungs) == [5]


@pytest.mark.parametrize("orientation", ["LPS", "RAS"])
def test_montage_panels_show_the_patients_right_on_the_image_left(orientation):
    """Radiological convention: heat in the right lung (LPS x < 0 here) is drawn in the panel's left
    half whatever the stored orientation, and the panel names the slice's stored index k."""
    ct, lungs = _cip(orientation)
    centre = np.array([-70.0, -130.0, -200.0])
    heat = sitk.GetImageFromArray(_physical_blob(ct, centre, 8.0))
    heat.CopyInformation(ct)
    panel = axial_panels(ct, heat, lungs, count=1)[0]
    column = np.unravel_index(np.argmax(panel["heat"]), panel["heat"].shape)[1]
    assert column < panel["heat"].shape[1] / 2
    assert panel["k"] == ct.TransformPhysicalPointToIndex(centre)[2]
    assert panel["z_mm"] == pytest.approx(-200.0, abs=ct.GetSpacing()[2])


def test_montage_png_shows_heat_on_the_right_lung_in_the_panel_left_half_and_grey_ct_elsewhere(tmp_path):
    """The PNG as a user sees it: the first panel holds hot colours only in its left half (the heat is
    in the right lung), and the CT around them is grey (R = G = B)."""
    from PIL import Image

    ct, lungs = _cip("RAS")
    heat = sitk.GetImageFromArray(_physical_blob(ct, np.array([-70.0, -130.0, -200.0]), 8.0))
    heat.CopyInformation(ct)
    shown = save_heatmap_montage(tmp_path / "montage.png", ct, heat, lungs, title="t", count=1)
    assert shown == [axial_panels(ct, heat, lungs, count=1)[0]["k"]]
    png = np.asarray(Image.open(tmp_path / "montage.png").convert("RGB")).astype(int)
    assert png.shape[1] == CELL_PX[0] + COLOURBAR_PX and png.shape[0] == CELL_PX[1] + TITLE_PX
    top = TITLE_PX + PANEL_TITLE_PX
    panel = png[top : top + PANEL_PX, (CELL_PX[0] - PANEL_PX) // 2 :][:, :PANEL_PX]
    coloured = np.abs(panel[..., 0] - panel[..., 2]) > 40
    coloured[:, :20] = coloured[:, -20:] = False  # the yellow "R" and "L" labels
    columns = np.flatnonzero(coloured.any(axis=0))
    assert columns.size > 5 and columns.max() < PANEL_PX / 2
    grey = panel[:, PANEL_PX // 2 + 20 : -30]  # the panel's right half without the "L" label
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 2 and grey.std() > 20  # CT, not blank


def test_heat_maps_hold_multiples_of_the_heat_step():
    ct, lungs = _cip("LPS")
    x, grid = decovnet_input(ct, lungs)
    cam = np.random.default_rng(0).random((4, 6, 8)).astype(np.float32)
    heat = sitk.GetArrayFromImage(heatmap_on_ct(cam, grid, ct, lungs))
    assert np.allclose(heat / HEAT_STEP, np.rint(heat / HEAT_STEP), atol=1e-3) and heat.max() == 1.0


def test_heat_share_and_peak_inside_a_region():
    heat = np.zeros((4, 5, 6), np.float32)
    heat[1, 2, 3], heat[3, 0, 0] = 3.0, 1.0
    image = sitk.GetImageFromArray(heat)
    region = np.zeros(heat.shape, bool)
    region[1] = True
    assert heat_share(image, region) == pytest.approx(0.75) and peak_inside(image, region)
    assert heat_share(image, ~region) == pytest.approx(0.25) and not peak_inside(image, ~region)
    zero = sitk.GetImageFromArray(np.zeros_like(heat))
    assert heat_share(zero, region) == 0.0 and not peak_inside(zero, region)
