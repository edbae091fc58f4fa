"""The yardstick's ``--scanner`` copies (``Testing/benchmarks/real_ct_yardstick.py``): each preset changes what it
names, and the radiologists' slice labels follow the copy's slices through reordering and slabbing. The lung
UNet's sharp-kernel training copies (``tools/sharp_copies.py``): sharper, on their CT's grid, labels unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from benchmarks.real_ct_yardstick import SCANNERS, copy_infection_slices, scanner_copy
from real_cts import REAL_BY_NAME, infection_slices

from covidct.geometry import to_canonical
from covidct.io import load_ct

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from sharp_copies import sharp_copy  # noqa: E402


def small_ct(z_direction: float) -> sitk.Image:
    """20 slices of 2 mm, 64 x 64 pixels of 0.75 mm: air, a 40 HU body holding a -800 HU lung; z stored in
    ``z_direction``."""
    array = np.full((20, 64, 64), -1000, np.int16)
    array[:, 8:56, 8:56] = 40
    array[:, 16:48, 16:48] = -800
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.75, 0.75, 2.0))
    image.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, z_direction))
    return image


@pytest.mark.parametrize("z_direction", [1.0, -1.0])
def test_slice_labels_follow_the_slab_centres(z_direction):
    ct = small_ct(z_direction)
    infection = np.zeros(20, bool)
    infection[5:10] = True  # stored slices 5-9
    copy = scanner_copy(ct, "thick")
    assert copy.GetSpacing()[2] == pytest.approx(4.0) and copy.GetSize()[2] == 10
    labels = copy_infection_slices(infection, ct, copy)
    for k, positive in enumerate(labels):
        # the two stored slices this 4 mm slab averages: 1 mm either side of its centre
        members = [
            infection[int(round(ct.TransformPhysicalPointToContinuousIndex(point)[2]))]
            for point in (copy.TransformContinuousIndexToPhysicalPoint((31.5, 31.5, k + d)) for d in (-0.25, 0.25))
        ]
        if all(members) or not any(members):
            assert positive == members[0], k  # a slab across the labels' edge may go either way


def test_each_preset_changes_what_it_names():
    ct = small_ct(1.0)
    hu = sitk.GetArrayFromImage(ct).astype(float)
    copies = {name: scanner_copy(ct, name) for name in SCANNERS}
    assert copies["coarse"].GetSpacing()[0] == pytest.approx(1.5)
    assert copies["sharp"].GetSpacing() == ct.GetSpacing()
    offset = sitk.GetArrayFromImage(copies["offset"]).astype(float) - hu
    assert offset.mean() == pytest.approx(SCANNERS["offset"]["offset_hu"], abs=0.5)
    air = sitk.GetArrayFromImage(copies["noisy"])[:, :8, :8].astype(float)
    assert air.std() > 10.0  # about 25 HU of noise in uniform air
    tissue = sitk.GetArrayFromImage(copies["lowdose"])[:, 9:15, 20:44].astype(float)  # 40 HU, no clipping there
    assert 40.0 < tissue.std() < 60.0  # about 50 HU of noise


def test_p001_infection_share_is_kept_in_its_thick_copy():
    """P001 (2 mm slices) in 4 mm slabs: about the same share of slices infection-positive."""
    case = REAL_BY_NAME["P001"]
    ct = load_ct(case.file)
    infection = infection_slices(case.labels_file, ct.GetSize()[2])
    copy = scanner_copy(ct, "thick")
    labels = copy_infection_slices(infection, ct, copy)
    assert copy.GetSpacing()[2] == pytest.approx(4.0)
    assert len(labels) == copy.GetSize()[2]
    assert labels.mean() == pytest.approx(infection.mean(), abs=0.02)


def test_sharp_training_copy_is_sharper_on_the_same_grid_with_the_same_labels():
    ct = small_ct(-1.0)  # stored inferior-first: the copy and its labels are both made canonical
    hu = sitk.GetArrayFromImage(ct)
    labels = np.where(hu == -800, 1, 0).astype(np.uint8)
    labels[:, :, 32:] *= 2
    lungs = sitk.GetImageFromArray(labels)
    lungs.CopyInformation(ct)
    copy, copy_labels, settings = sharp_copy(ct, lungs, np.random.default_rng(5))
    again, _, _ = sharp_copy(ct, lungs, np.random.default_rng(5))
    assert settings["kernel"] == "sharp" and settings["sharp_amount"] >= 0.5
    assert copy.GetSize() == ct.GetSize() and copy.GetSpacing() == ct.GetSpacing()
    assert copy_labels.GetOrigin() == copy.GetOrigin() and copy_labels.GetDirection() == copy.GetDirection()
    assert np.array_equal(sitk.GetArrayFromImage(copy_labels), sitk.GetArrayFromImage(to_canonical(lungs)))
    assert np.array_equal(sitk.GetArrayFromImage(copy), sitk.GetArrayFromImage(again))
    canonical = sitk.GetArrayFromImage(to_canonical(ct)).astype(float)
    sharp = sitk.GetArrayFromImage(copy).astype(float)
    # an unsharp mask overshoots at the lung's edge: darker than the lung just inside it, brighter than the
    # body just outside it; deep inside the lung the level stays (up to the added noise)
    assert sharp[:, 16:48, 16].mean() < canonical[:, 16:48, 16].mean() - 30.0
    assert sharp[:, 16:48, 15].mean() > canonical[:, 16:48, 15].mean() + 30.0
    assert abs(sharp[:, 24:40, 24:40].mean() - (-800.0)) < 10.0


def test_contrast_copy_brightens_the_blood_between_and_inside_the_lungs_only():
    """A chest phantom (2 mm pixels): two lungs (-850 HU) with a vessel in one, soft tissue (40 HU) between
    them and all round them. The ``contrast`` copy adds its enhancement to the mediastinum and the vessel;
    the chest wall (outside the lungs' hull) and the lung air keep their HU."""
    array = np.full((6, 128, 128), -1000, np.int16)
    array[:, 8:120, 8:120] = 40
    array[:, 30:98, 24:58] = -850
    array[:, 30:98, 70:104] = -850
    array[:, 62:66, 40:44] = 40  # a vessel inside the right-hand lung of the image
    ct = sitk.GetImageFromArray(array)
    ct.SetSpacing((2.0, 2.0, 2.0))
    gain = sitk.GetArrayFromImage(scanner_copy(ct, "contrast")).astype(float) - array
    enhancement = SCANNERS["contrast"]["contrast_hu"]
    assert gain[:, 50:80, 62:66].min() == pytest.approx(enhancement, abs=1)  # mediastinum
    assert gain[:, 63:65, 41:43].min() == pytest.approx(enhancement, abs=1)  # the vessel's core
    assert np.abs(gain[:, 12:24, 30:100]).max() < 1  # chest wall in front of the lungs
    assert np.abs(gain[:, 40:55, 30:50]).max() < 1  # lung air
