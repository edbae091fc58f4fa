"""The lung UNet's architecture, its preprocessing (window, slice resize, way back) and inference path.

The trained weights are tested in ``test_lungs_unet.py``; here the network is untrained, or replaced
by a fixed threshold written as a PyTorch module, so that the inference plumbing (canonical slices,
batches, mapping back to the working grid, left/right labels) is checked on a real CT.
"""

from __future__ import annotations

import lung_checks as checks
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import shared_file

from covidct.errors import ModelError
from covidct.geometry import resize_array
from covidct.io import load_ct, read_image
from covidct.lungs import grid, segment_lungs
from covidct.lungs.unet_infer import MODEL_NAME, unet_labels
from covidct.models import build_model, find_model
from covidct.models.unet import UNet2D
from covidct.preprocess.unet import INPUT_HW, INPUT_SPEC, PAD_HU, to_working_grid, unet_input, unet_size
from covidct.preprocess.window import hu_window


@pytest.fixture(scope="module")
def cip_ct():
    return load_ct(shared_file("cip-copdgene-10002K-ct64/ct-64.nrrd"))


@pytest.mark.parametrize("size", [(368, 368), (256, 256), (100, 75)])
def test_forward_shape(size):
    model = UNet2D().eval()
    with torch.inference_mode():
        logits = model(torch.rand(2, 1, *size))
    assert logits.shape == (2, 2, *size)
    assert torch.isfinite(logits).all()


def test_parameter_count_and_config():
    assert UNet2D().parameter_count() == 482_466  # levels=4, base=16: 16-32-64-128 channels
    assert UNet2D(base=8).parameter_count() == 121_042
    assert UNet2D(levels=3).parameter_count() < UNet2D().parameter_count()
    assert isinstance(build_model("unet", base=8), UNet2D)
    with pytest.raises(ValueError):
        UNet2D(levels=1)


def test_gradients_reach_every_parameter():
    model = UNet2D(base=4)
    model(torch.rand(2, 1, 64, 64)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_input_spec_and_size():
    assert INPUT_HW == (368, 368) and INPUT_SPEC["hu_window"] == [-1200.0, 600.0]
    assert unet_size(None) == (368, 368)
    assert unet_size({"shape": [1, 256, 256]}) == (256, 256)


def test_preprocessing_round_trip(cip_ct):
    slices, model_grid = unet_input(cip_ct, (96, 96))
    assert slices.shape == (79, 1, 96, 96) and slices.dtype == np.float32
    assert slices.min() >= 0.0 and slices.max() <= 1.0
    # the same numbers as the geometry module's pad and resize (which the training masks use): the
    # 267 mm field of view is padded with air to 450 mm first
    window = hu_window(sitk.GetArrayViewFromImage(cip_ct))
    air = float(hu_window(np.full(1, PAD_HU, np.float32))[0])
    assert sum(model_grid.pad[2]) == 44 and model_grid.padded_shape == (79, 108, 108)
    np.testing.assert_allclose(slices[:, 0], model_grid.to_model(window, fill=air), atol=1e-5)
    np.testing.assert_allclose(
        model_grid.to_model(window, fill=air),
        resize_array(np.pad(window, model_grid.pad, constant_values=air), (79, 96, 96)),
    )
    # and back onto the CT grid: close to the windowed CT (the 64 -> 96 -> 64 resize blurs a little)
    back = model_grid.to_ct(slices[:, 0])
    assert back.shape == window.shape
    assert np.mean(np.abs(back - window)) < 0.03
    # the same slices from a copy reoriented to RAS
    ras_slices, _ = unet_input(sitk.DICOMOrient(cip_ct, "RAS"), (96, 96))
    np.testing.assert_array_equal(ras_slices, slices)


def test_way_back_to_the_working_grid_matches_the_shrunk_ct():
    ct = load_ct(shared_file("covid-ct-md-sample/P001.nii.gz"))
    factor = grid.shrink_factor(ct.GetSpacing())
    slices, model_grid = unet_input(ct, (256, 256))
    working = to_working_grid(slices[:, 0], model_grid, factor)
    expected = hu_window(sitk.GetArrayFromImage(grid.shrink(ct, factor)))
    assert factor == 2 and working.shape == expected.shape == (148, 256, 256)
    assert np.mean(np.abs(working - expected)) < 0.01


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_the_way_back_is_the_bilinear_resize_then_the_block_average(factor):
    """to_working_grid's per-axis matrices give what its definition says: a bilinear resize onto the padded
    CT grid, the pad dropped, the incomplete blocks dropped, ``factor × factor`` blocks averaged."""
    from covidct.geometry import ModelGrid

    values = np.random.default_rng(factor).normal(size=(7, 40, 48)).astype(np.float32)
    model_grid = ModelGrid.full((7, 101, 95), (7, 40, 48), ((0, 0), (6, 5), (0, 9)))
    full = torch.nn.functional.interpolate(
        torch.from_numpy(values)[:, None], size=model_grid.padded_shape[1:], mode="bilinear", align_corners=False
    )[:, 0, 6:-5, :-9]
    rows, columns = 101 // factor * factor, 95 // factor * factor
    expected = torch.nn.functional.avg_pool2d(full[None, :, :rows, :columns], factor)[0].numpy()
    ours = to_working_grid(values, model_grid, factor)
    assert ours.shape == (7, 101 // factor, 95 // factor) == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-5)


class WindowThreshold(torch.nn.Module):
    """A fixed 'network': lung where the windowed slice is below 0.3 (about −660 HU)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(50.0))

    def forward(self, x):
        return torch.cat([x - 0.3, 0.3 - x], dim=1) * self.scale


def test_inference_path_maps_back_onto_the_ct(cip_ct):
    truth = sitk.GetArrayFromImage(read_image(shared_file("cip-copdgene-10002K-ct64/wholeLung-64.nrrd"))) > 0
    canonical = sitk.DICOMOrient(cip_ct, "LPS")
    labels = unet_labels(canonical, model=WindowThreshold(), card_input={"shape": [1, 128, 128]})
    assert labels.shape == truth.shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1, 2}
    assert checks.centre_x(labels == 1) < checks.centre_x(labels == 2)
    assert checks.dice(labels > 0, truth) >= 0.9  # a bare threshold, with trachea, still finds the lungs


def test_the_threshold_on_p_lung_moves_the_mask_edge(cip_ct):
    """The card's ``threshold`` is an operating point on P(lung) per pixel: lower holds more (here
    P = 0.02 moves the fixed network's cut from about −660 to −590 HU, a wider lung)."""
    canonical = sitk.DICOMOrient(cip_ct, "LPS")
    masks = [
        unet_labels(canonical, model=WindowThreshold(), card_input={"shape": [1, 128, 128]}, threshold=t) > 0
        for t in (0.5, 0.02)
    ]
    assert masks[1].sum() > 1.01 * masks[0].sum()
    assert (masks[0] & ~masks[1]).sum() <= 0.001 * masks[0].sum()
    for threshold in (0.0, 1.0):
        with pytest.raises(ModelError, match="strictly between 0 and 1"):
            unet_labels(canonical, model=WindowThreshold(), card_input={"shape": [1, 128, 128]}, threshold=threshold)


def test_a_lung_models_card_threshold_is_used(cip_ct, tmp_path, monkeypatch):
    """A user's copy of the bundled UNet whose card says 0.18 segments with it: a wider mask of the
    real CIP CT than the bundled card's 0.5 gives."""
    from covidct.models import load_model, save_model

    model, card = load_model(MODEL_NAME, "cpu")
    card.name, card.threshold = "unet-lungs-wide", 0.18
    save_model(model, card, tmp_path / card.name)
    monkeypatch.setenv("COVIDCT_MODELS_DIR", str(tmp_path))
    volumes = [
        (sitk.GetArrayViewFromImage(segment_lungs(cip_ct, method=name)) > 0).sum() for name in (MODEL_NAME, card.name)
    ]
    assert volumes[1] > 1.005 * volumes[0]


def test_untrained_network_runs_end_to_end(cip_ct):
    labels = unet_labels(
        sitk.DICOMOrient(cip_ct, "LPS"), model=UNet2D(base=4).eval(), card_input={"shape": [1, 64, 64]}
    )
    assert labels.shape == sitk.GetArrayViewFromImage(cip_ct).shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2}


def test_bundled_unet_is_the_default_and_its_absence_is_one_sentence(cip_ct, tmp_path, monkeypatch):
    from covidct.models import catalogue, default_lungs_method

    assert find_model(MODEL_NAME).architecture == "unet" and default_lungs_method() == "unet"
    # an installation without the weights (no bundled file, empty user folder)
    monkeypatch.setattr(catalogue, "BUNDLED_DIR", tmp_path / "no-weights")
    monkeypatch.setenv("COVIDCT_MODELS_DIR", str(tmp_path / "no-models"))
    assert default_lungs_method() == "threshold"
    with pytest.raises(ModelError, match="--lungs-method threshold"):
        segment_lungs(cip_ct, method="unet")
