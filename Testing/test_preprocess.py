"""DeCoVNet and COVID-19Net inputs from a real chest CT and its real lung mask (CIP COPDGene 10002K)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_file
from scipy import ndimage

from covidct.errors import CTInputError, UsageError
from covidct.geometry import from_canonical, image_from_array, to_canonical
from covidct.preprocess import input_options, model_input
from covidct.preprocess.covid19net import FILL_HU, covid19net_input
from covidct.preprocess.decovnet import MARGIN_MM, decovnet_input
from covidct.preprocess.window import hu_window

CIP = "cip-copdgene-10002K-ct64"


@pytest.fixture(scope="module")
def cip():
    """The real CT (HU, 64×64×79 @ ~4 mm) and its real whole-lung mask, as stored (LPS, identity)."""
    ct = sitk.ReadImage(str(shared_file(f"{CIP}/ct-64.nrrd")))
    lungs = sitk.ReadImage(str(shared_file(f"{CIP}/wholeLung-64.nrrd")))
    return ct, lungs


def _ras_copy(image):
    """The same voxels stored in RAS axis order (x and y flipped, direction diag(-1, -1, 1))."""
    return sitk.DICOMOrient(image, "RAS")


def _dice(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def decovnet_cip(cip):
    return decovnet_input(*cip)


@pytest.fixture(scope="module")
def covid19net_cip(cip):
    return covid19net_input(*cip)


def test_decovnet_input_shape_and_values(cip, decovnet_cip):
    x, grid = decovnet_cip
    assert x.shape == (2, 79, 224, 336) and x.dtype == np.float32
    assert x[0].min() >= 0.0 and x[0].max() <= 1.0
    assert set(np.unique(x[1])) == {0.0, 1.0}
    assert grid.ct_shape == (79, 64, 64) and grid.model_shape == (79, 224, 336)
    assert grid.box == (slice(0, 79), slice(0, 64), slice(0, 64))
    # lungs fill the same fraction of the field of view before and after resizing
    lung_fraction = (sitk.GetArrayFromImage(cip[1]) > 0).mean()
    assert x[1].mean() == pytest.approx(lung_fraction, abs=0.01)
    # mean windowed CT inside the lungs: the README's mean lung HU (−874) through the window
    assert x[0][x[1] > 0].mean() == pytest.approx(float(hu_window(np.array([-874.0]))[0]), abs=0.02)


def test_decovnet_grid_maps_back_onto_ct(cip, decovnet_cip):
    x, grid = decovnet_cip
    truth = sitk.GetArrayFromImage(to_canonical(cip[1])) > 0
    back = grid.to_ct(x[1]) >= 0.5
    assert _dice(back, truth) >= 0.95
    ct_window = hu_window(sitk.GetArrayFromImage(to_canonical(cip[0])))
    assert np.abs(grid.to_ct(x[0]) - ct_window).mean() < 0.03
    # and from canonical back onto the CT's own grid as stored
    image = from_canonical(image_from_array(back.astype(np.uint8), to_canonical(cip[0])), cip[0])
    assert _dice(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(cip[1]) > 0) >= 0.95


def test_decovnet_lung_box_crop(cip, decovnet_cip):
    x, grid = decovnet_input(*cip, size=(96, 144), crop="lung_box")
    assert x.shape == (2, 79, 96, 144)
    lungs = sitk.GetArrayFromImage(to_canonical(cip[1])) > 0
    # every slice kept; rows and columns cut to the lungs' box grown by 10 mm (3 voxels at ~4.17 mm)
    spacing_yx = to_canonical(cip[0]).GetSpacing()[1::-1]
    margin = [int(np.ceil(MARGIN_MM / s)) for s in spacing_yx]
    assert grid.box[0] == slice(0, 79)
    nz = np.nonzero(lungs)
    for axis in (1, 2):
        assert grid.box[axis].start == max(nz[axis].min() - margin[axis - 1], 0)
        assert grid.box[axis].stop == min(nz[axis].max() + 1 + margin[axis - 1], lungs.shape[axis])
    assert lungs[grid.box].sum() == lungs.sum()
    # the lungs fill more of the cropped input than of the whole field of view, and map back
    assert x[1].mean() > decovnet_cip[0][1].mean() + 0.05
    assert _dice(grid.to_ct(x[1]) >= 0.5, lungs) >= 0.95
    # the card's input spec names the crop; model_input passes it on
    options = input_options("decovnet", {"shape": [2, "T", 96, 144], "crop": "lung_box"})
    assert options == {
        "size": (96, 144),
        "crop": "lung_box",
        "slice_mm": None,
        "antialias": False,
        "pipeline": None,
        "hu_stats": None,
    }
    x2, grid2 = model_input("decovnet", *cip, **options)
    assert np.array_equal(x, x2) and grid == grid2
    assert input_options("covid19net", None) == {
        "size": None,
        "crop": None,
        "slice_mm": None,
        "antialias": False,
        "pipeline": None,
        "hu_stats": None,
    }
    with pytest.raises(UsageError, match="Unknown DeCoVNet input crop 'lungs'"):
        decovnet_input(*cip, crop="lungs")
    with pytest.raises(UsageError, match="COVID-19Net always crops to its lung-ROI"):
        model_input("covid19net", *cip, crop="lung_box")


def test_covid19net_input_shape_and_values(cip, covid19net_cip):
    x, grid = covid19net_cip
    assert x.shape == (1, 48, 240, 360) and x.dtype == np.float32
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(x.std()) == pytest.approx(1.0, abs=1e-4)
    lungs = sitk.GetArrayFromImage(to_canonical(cip[1])) > 0
    # the lung-ROI holds every lung voxel, and is the bounding box grown by 5 mm (2 voxels at ~4 mm)
    assert lungs[grid.box].sum() == lungs.sum()
    nz = np.nonzero(lungs)
    for axis, s in enumerate(grid.box):
        assert s.start == max(nz[axis].min() - 2, 0)
        assert s.stop == min(nz[axis].max() + 3, lungs.shape[axis])
    # suppressed voxels (far from the lungs) all hold the z-scored fill value, the minimum
    lung_model = grid.to_model(lungs.astype(np.float32)) >= 0.5
    fill = x.min()
    suppressed = x[0] == fill
    assert 0.05 < suppressed.mean() < 0.6
    assert (suppressed & lung_model).sum() < 0.001 * lung_model.sum()  # only lung voxels at ≤ −1024 HU
    # lung tissue (≈ −874 HU) is brighter than the fill value (−1024 HU) and darker than the rest
    assert fill < x[0][lung_model].mean() < x[0][~lung_model & ~suppressed].mean()


def test_covid19net_fixed_statistics_keep_the_lungs_values_when_the_box_changes(cip):
    """The z-score over the ROI moves every voxel's value when the box's composition changes (here: a wider
    shell of tissue kept around the lungs, the box itself the same); with fixed statistics (a card's
    ``hu_mean_std``) the lungs' values stay, and the fill is (-1024 - mean) / sd."""
    shape = (16, 64, 96)
    lungs = None
    values = {}
    for stats in (None, (-800.0, 350.0)):
        for keep_mm in (10.0, 30.0):
            x, grid = covid19net_input(*cip, keep_mm=keep_mm, shape=shape, hu_stats=stats)
            if lungs is None:
                lungs = grid.to_model(sitk.GetArrayFromImage(to_canonical(cip[1])).astype(np.float32)) >= 0.5
            values[stats, keep_mm] = x[0][lungs]
    own = np.abs(values[None, 10.0] - values[None, 30.0]).mean()
    fixed = np.abs(values[(-800.0, 350.0), 10.0] - values[(-800.0, 350.0), 30.0]).max()
    assert own > 0.05 and fixed == 0.0
    x, _ = covid19net_input(*cip, shape=shape, hu_stats=(-800.0, 350.0))
    assert float(x.min()) == pytest.approx((FILL_HU + 800.0) / 350.0)
    with pytest.raises(UsageError, match="DeCoVNet windows its HU"):
        model_input("decovnet", *cip, hu_stats=(-800.0, 350.0))


def test_covid19net_suppression_spares_a_shell_around_the_lungs(cip, covid19net_cip):
    x, grid = covid19net_cip
    ct = sitk.GetArrayFromImage(to_canonical(cip[0])).astype(np.float32)
    hu = np.clip(grid.to_model(ct), FILL_HU, 600)
    lung_model = grid.to_model(sitk.GetArrayFromImage(to_canonical(cip[1])).astype(np.float32)) >= 0.5
    kept = x[0] > x.min()
    # chest wall and mediastinum next to the lungs stay (soft tissue, > −200 HU), far tissue does not
    assert ((hu > -200) & kept & ~lung_model).sum() > 1000
    assert ((hu > -200) & ~kept).sum() > 1000


def test_covid19net_grid_maps_back_onto_ct(cip, covid19net_cip):
    _, grid = covid19net_cip
    truth = sitk.GetArrayFromImage(to_canonical(cip[1])) > 0
    model_mask = grid.to_model(truth.astype(np.float32)) >= 0.5
    assert _dice(grid.to_ct(model_mask.astype(np.float32)) >= 0.5, truth) >= 0.9


@pytest.mark.parametrize(
    "make_input",
    [decovnet_input, covid19net_input, lambda ct, lungs: decovnet_input(ct, lungs, (64, 96), crop="lung_box")],
    ids=["decovnet", "covid19net", "decovnet-lung-box"],
)
def test_ras_copy_gives_identical_input(cip, make_input):
    ct, lungs = cip
    x, grid = make_input(ct, lungs)
    ct_ras = _ras_copy(ct)
    assert ct_ras.GetDirection() != ct.GetDirection()
    x_ras, grid_ras = make_input(ct_ras, _ras_copy(lungs))
    assert np.array_equal(x, x_ras) and grid == grid_ras
    # a mask stored in the other orientation is brought onto the CT's grid first
    x_mixed, _ = make_input(ct_ras, lungs)
    assert np.array_equal(x, x_mixed)


@pytest.mark.parametrize("make_input", [decovnet_input, covid19net_input], ids=["decovnet", "covid19net"])
def test_a_hole_in_a_lung_reads_as_lung(cip, make_input):
    """A hole that a lung rings in its slices (where the organ caps keep a dome out) is lung in the model
    input, as in the classifiers' training masks: the input equals that of the mask without the hole."""
    ct, lungs = cip
    mask = sitk.GetArrayFromImage(lungs)
    depth = ndimage.distance_transform_edt(mask > 0)
    z, y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)  # the deepest point inside a lung
    rows, columns = np.ogrid[: mask.shape[1], : mask.shape[2]]
    disc = (rows - y) ** 2 + (columns - x) ** 2 <= 9  # about 24 mm across at ~4 mm per pixel
    holed = mask.copy()
    holed[z - 3 : z + 3][:, disc] = 0
    assert (mask[z - 3 : z + 3][:, disc] > 0).all()  # cut out of lung, so the lung rings it
    holed_image = sitk.GetImageFromArray(holed)
    holed_image.CopyInformation(lungs)
    x_holed, grid_holed = make_input(ct, holed_image)
    x_intact, grid_intact = make_input(ct, lungs)
    assert np.array_equal(x_holed, x_intact) and grid_holed == grid_intact


def test_model_input_dispatch_and_errors(cip, decovnet_cip):
    ct, lungs = cip
    x, grid = model_input("decovnet", ct, lungs)
    assert np.array_equal(x, decovnet_cip[0]) and grid == decovnet_cip[1]
    with pytest.raises(UsageError, match="No whole-CT model input for architecture 'unet'"):
        model_input("unet", ct, lungs)
    empty = sitk.Image(lungs.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(lungs)
    for arch in ("decovnet", "covid19net"):
        with pytest.raises(CTInputError, match="No lungs found in the lung mask"):
            model_input(arch, ct, empty)
    with pytest.raises(CTInputError, match="must both be 3D images"):
        model_input("covid19net", ct[:, :, 40], lungs[:, :, 40])


def test_unet_input_pads_a_narrow_field_of_view_with_air(cip):
    from covidct.preprocess.unet import MIN_FOV_MM, PAD_HU, fov_padding, to_working_grid, unet_input

    ct, lungs = cip
    image, grid = unet_input(ct, (128, 128))
    spacing = ct.GetSpacing()[0]  # 4.17 mm: a 267 mm field of view
    (_, _), (y0, y1), (x0, x1) = grid.pad
    assert grid.pad[0] == (0, 0) and abs(y0 - y1) <= 1 and abs(x0 - x1) <= 1
    assert MIN_FOV_MM <= (64 + x0 + x1) * spacing < MIN_FOV_MM + spacing
    assert image.shape == (79, 1, 128, 128)
    # the padding is air: every input column in the left margin reads the air value
    margin = int(128 * x0 / (64 + x0 + x1)) - 1
    assert np.allclose(image[:, 0, :, :margin], hu_window(np.full(1, PAD_HU, np.float32))[0])
    # wide fields of view are left alone (normal001: 325 mm is padded, a 500 mm one is not)
    assert fov_padding((10, 512, 512), (0.98, 0.98, 2.0)) == ((0, 0), (0, 0), (0, 0))
    assert sum(fov_padding((10, 512, 512), (0.635, 0.635, 2.0))[2]) == 197  # 709 columns of 0.635 mm
    # the way back drops the padding: the lung mask through the model grid and back
    mask = grid.to_model(sitk.GetArrayFromImage(lungs).astype(np.float32), order=1)
    back = to_working_grid(mask, grid, 1) > 0.5
    assert back.shape == (79, 64, 64)
    assert _dice(back, sitk.GetArrayFromImage(lungs) > 0) > 0.95


def test_decovnet_slice_thickness_and_antialias_average_away_noise(cip):
    """``slice_mm`` sets T from the chest's length; ``antialias`` averages each cell's voxels, so
    noise added to a real CT changes the input far less than with sampling (another scanner's noise
    level looks alike to the model), and the mask channel holds each cell's lung fraction."""
    ct, lungs = cip
    options = {"size": (24, 36), "crop": "lung_box", "slice_mm": 8.0}
    sampled, _ = decovnet_input(ct, lungs, **options)
    averaged, grid = decovnet_input(ct, lungs, **options, antialias=True)
    assert sampled.shape == averaged.shape == (2, round(79 * ct.GetSpacing()[2] / 8.0), 24, 36)
    assert set(np.unique(sampled[1])) <= {0.0, 1.0} and averaged[1][(averaged[1] > 0) & (averaged[1] < 1)].size > 0.0
    assert abs(averaged[1].mean() - sampled[1].mean()) < 0.02
    noise = np.random.default_rng(0).normal(0.0, 60.0, sitk.GetArrayViewFromImage(ct).shape)
    noisy = sitk.GetImageFromArray((sitk.GetArrayFromImage(ct) + noise).astype(np.float32))
    noisy.CopyInformation(ct)
    change = {
        name: np.abs(decovnet_input(noisy, lungs, **options, antialias=flag)[0][0] - clean[0]).mean()
        for name, flag, clean in (("sampled", False, sampled), ("averaged", True, averaged))
    }
    assert change["averaged"] < 0.5 * change["sampled"]  # about 8 voxels averaged per cell here: noise / 2.8
    assert input_options("decovnet", {"slice_mm": 8.0, "antialias": True})["slice_mm"] == 8.0
    back = grid.to_ct(averaged[1])
    assert _dice(back >= 0.5, sitk.GetArrayFromImage(to_canonical(lungs)) > 0) >= 0.9
