"""Synthetic COVID-19 lesions in the real lungs of the real CIP CT (ct-64 with its real lung mask)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_file
from scipy import ndimage as ndi

from covidct.data.manifest import read_manifest
from covidct.data.synth import (
    KINDS,
    LESION_LABELS,
    MIMIC_KINDS,
    LesionOptions,
    estimate_noise,
    insert_lesions,
    make_synth_dataset,
    paint_lesions,
)
from covidct.errors import DatasetError

CIP = "cip-copdgene-10002K-ct64/"


@pytest.fixture(scope="module")
def cip():
    ct = sitk.ReadImage(str(shared_file(CIP + "ct-64.nrrd")))
    lungs = sitk.ReadImage(str(shared_file(CIP + "wholeLung-64.nrrd")))
    return ct, lungs


def _arrays(*images):
    return [sitk.GetArrayFromImage(image) for image in images]


def test_lesions_lie_inside_the_lungs_and_only_their_surroundings_change(cip):
    ct, lungs = cip
    out, mask = insert_lesions(ct, lungs, np.random.default_rng(0))
    before, after, labels, lung = _arrays(ct, out, mask, lungs)
    lung = lung > 0
    assert out.GetPixelID() == ct.GetPixelID() and out.GetSize() == ct.GetSize()
    assert out.GetOrigin() == ct.GetOrigin() and mask.GetSpacing() == ct.GetSpacing()
    assert labels.any() and not labels[~lung].any()
    changed = before != after
    assert not changed[~lung].any()  # nothing outside the lungs changes
    # changes outside the mask are only the lesions' soft margins (within 2 voxels of the mask)
    near = ndi.binary_dilation(labels > 0, iterations=2)
    assert not changed[~near].any()
    delta = after.astype(float) - before
    assert delta[labels > 0].mean() > 200  # lesions are denser than the lung they replace


def test_density_ranges_of_each_kind(cip):
    ct, lungs = cip
    found = {kind: [] for kind in LESION_LABELS}
    for seed in range(8):
        for kinds in (KINDS, MIMIC_KINDS):
            out, mask = insert_lesions(ct, lungs, np.random.default_rng(seed), kinds=kinds, size_mm=(30, 60))
            after, labels = _arrays(out, mask)
            for kind, value in LESION_LABELS.items():
                if np.count_nonzero(labels == value) >= 20:
                    found[kind].append(np.median(after[labels == value]))
    assert all(found.values()), found
    assert min(found["ggo"]) >= -780 and max(found["ggo"]) <= -280
    assert min(found["consolidation"]) >= -140 and max(found["consolidation"]) <= 90
    assert min(found["crazy_paving"]) >= -780 and max(found["crazy_paving"]) <= -100
    assert min(found["mass"]) >= -10 and max(found["mass"]) <= 80  # solid, soft-tissue density


def test_negatives_with_masses_are_labelled_negative(cip, tmp_path):
    """``negative_masses``: the share of negatives that get a solitary solid lesion (a tumour mimic)."""
    import csv

    ct, lungs = cip
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(lungs, str(tmp_path / "lungs.nrrd"))
    manifest = make_synth_dataset(
        [tmp_path / "ct.nrrd"], tmp_path / "synth", 1, 4, lungs=[tmp_path / "lungs.nrrd"], negative_masses=1.0
    )
    with open(manifest, newline="") as stream:
        rows = list(csv.DictReader(stream))
    negatives = [row for row in rows if row["label"] == "0"]
    assert len(negatives) == 4 and all(row["kinds"] == "mass" for row in negatives)
    assert all(row["kinds"] and "mass" not in row["kinds"] for row in rows if row["label"] == "1")


def test_ggo_keeps_vessels_visible_and_noise_matches_the_background(cip):
    ct, lungs = cip
    before, lung = _arrays(ct, lungs)
    options = dict(kinds=("ggo",), size_mm=(40, 60))
    out, mask = insert_lesions(ct, lungs, np.random.default_rng(3), **options)
    after, labels = _arrays(out, mask)
    inside = labels > 0
    dense = inside & (before > -300)  # vessels and other dense structure inside the GGO
    assert dense.sum() >= 5
    assert after[dense].mean() > np.median(after[inside]) + 100  # still brighter than the opacity around them
    # consolidation replaces the lung, yet keeps a noise level like the background's
    out, mask = insert_lesions(ct, lungs, np.random.default_rng(4), kinds=("consolidation",), size_mm=(40, 60))
    after, labels = _arrays(out, mask)
    core = ndi.binary_erosion(labels > 0)
    ratio = estimate_noise(after, core) / estimate_noise(before, lung > 0)
    assert 0.4 < ratio < 2.0, ratio


def test_lesions_are_multifocal_bilateral_and_peripheral(cip):
    ct, lungs = cip
    lung = sitk.GetArrayFromImage(lungs) > 0
    spacing = np.array(ct.GetSpacing()[::-1])
    depth = ndi.distance_transform_edt(lung, sampling=spacing)
    components, _ = ndi.label(lung)
    sides = [components == v for v in np.argsort(np.bincount(components.ravel())[1:])[::-1][:2] + 1]
    multi = 0
    lesion_depth = []
    for seed in range(10):
        for bilateral in (1.0, 0.0):
            _, mask = insert_lesions(
                ct, lungs, np.random.default_rng(seed), n_lesions=(3, 5), size_mm=(15, 30), bilateral=bilateral
            )
            labels = sitk.GetArrayFromImage(mask) > 0
            multi += ndi.label(labels)[1] >= 2
            assert sum(labels[side].any() for side in sides) == (2 if bilateral else 1)
            lesion_depth.append(depth[labels])
    assert multi >= 18
    # lesions sit nearer the pleura than the lung as a whole
    assert np.median(np.concatenate(lesion_depth)) < 0.7 * np.median(depth[lung])


def test_same_seed_same_lesions_other_seed_other_lesions(cip):
    ct, lungs = cip
    a, ma = _arrays(*insert_lesions(ct, lungs, np.random.default_rng(11)))
    b, mb = _arrays(*insert_lesions(ct, lungs, np.random.default_rng(11)))
    c, mc = _arrays(*insert_lesions(ct, lungs, np.random.default_rng(12)))
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    assert not np.array_equal(ma, mc)


def test_2d_pleural_lesions_touch_the_lung_boundary(cip):
    ct, lungs = cip
    hu, lung = (array[40].astype(np.float32) for array in _arrays(ct, lungs))
    options = LesionOptions(kinds=("consolidation",), n_lesions=(2, 2), size_mm=(15, 30), subpleural=1.0)
    out, labels = paint_lesions(hu, lung, ct.GetSpacing()[1::-1], np.random.default_rng(5), options)
    assert out.shape == hu.shape and labels.any() and not labels[lung == 0].any()
    boundary = (lung > 0) & ~ndi.binary_erosion(lung > 0)
    components, count = ndi.label(labels > 0)
    assert all(boundary[components == i].any() for i in range(1, count + 1))


def test_mediastinal_share_puts_pleural_lesions_against_the_mediastinum_too(cip):
    """With ``mediastinal=1`` the lesions touching the pleura are placed on the lungs' whole surface, so
    more of them reach towards the mediastinum (measured from the gap between the two lungs) than with
    the default, the outer surface only (CIP: median 54 against 71 mm, within 30 mm 30 % against 17 %)."""
    ct, lungs = cip
    lung = sitk.GetArrayFromImage(lungs) > 0
    columns = lung.sum(axis=(0, 1))
    middle = len(columns) // 2
    gap = middle - 8 + int(np.argmin(columns[middle - 8 : middle + 8]))  # the column between the lungs
    distances = {}
    for share in (0.0, 1.0):
        distances[share] = []
        for seed in range(12):
            _, mask = insert_lesions(
                ct,
                lungs,
                np.random.default_rng(seed),
                kinds=("consolidation",),
                n_lesions=(3, 3),
                size_mm=(15, 25),
                subpleural=1.0,
                mediastinal=share,
            )
            components, count = ndi.label(sitk.GetArrayFromImage(mask) > 0)
            for i in range(1, count + 1):
                distance = np.abs(np.nonzero(components == i)[2] - gap).min() * ct.GetSpacing()[0]
                distances[share].append(distance)
    outer, anywhere = (np.array(distances[share]) for share in (0.0, 1.0))
    assert np.median(anywhere) < 0.85 * np.median(outer)
    assert np.mean(anywhere < 30.0) > np.mean(outer < 30.0) + 0.08


def test_ground_glass_over_tissue_as_dense_as_fluid_leaves_it_unchanged():
    """GGO and crazy paving blend towards fluid (20 HU); lung already at 20 HU or denser (a lesion painted
    over consolidation) gets nothing added, instead of a division by zero (found in a UNet training run)."""
    hu = np.full((40, 40), 20.0, np.float32)
    lung = np.zeros((40, 40), np.uint8)
    lung[5:35, 5:35] = 1
    options = LesionOptions(kinds=("ggo", "crazy_paving"), n_lesions=(3, 3), size_mm=(10, 20))
    out, labels = paint_lesions(hu, lung, (1.0, 1.0), np.random.default_rng(0), options)
    assert labels.any()
    lesion = labels > 0
    assert abs(float(out[lesion].mean()) - 20.0) < 5.0  # only the restored noise, no new density


def test_bad_inputs_raise_dataset_errors(cip):
    ct, lungs = cip
    with pytest.raises(DatasetError, match="empty"):
        insert_lesions(ct, lungs * 0, np.random.default_rng(0))
    with pytest.raises(DatasetError, match="differs"):
        insert_lesions(ct, lungs[:, :, :10], np.random.default_rng(0))
    with pytest.raises(DatasetError, match="Unknown lesion kind"):
        LesionOptions(kinds=("tumour",))
    with pytest.raises(DatasetError, match="mediastinal share"):
        LesionOptions(mediastinal=1.5)


def test_dataset_shares_backgrounds_and_is_reproducible(tmp_path):
    ct_path, lung_path = shared_file(CIP + "ct-64.nrrd"), shared_file(CIP + "wholeLung-64.nrrd")
    dicom = shared_file(CIP + "ct-64Dicom")
    kwargs = dict(n_pos=3, n_neg=3, seed=7, lungs=[lung_path, None], lungs_method="threshold")
    manifest = make_synth_dataset([ct_path, dicom], tmp_path / "a", **kwargs)
    cases = read_manifest(manifest)
    assert sorted(c.label for c in cases) == [0, 0, 0, 1, 1, 1]
    assert (
        {c.extra["background"] for c in cases if c.label == 1}
        == {c.extra["background"] for c in cases if c.label == 0}
        == {"ct-64.nrrd", "ct-64Dicom"}
    )
    segmented = sitk.GetArrayFromImage(sitk.ReadImage(str(manifest.parent / "lungs" / "ct-64Dicom.nii.gz")))
    assert set(np.unique(segmented)) == {0, 1, 2}  # the DICOM copy's lungs: threshold method, right/left
    original = sitk.GetArrayFromImage(sitk.ReadImage(str(ct_path))).astype(float)
    sigma = estimate_noise(original, sitk.GetArrayFromImage(sitk.ReadImage(str(lung_path))) > 0)
    for case in cases:
        volume = sitk.GetArrayFromImage(sitk.ReadImage(str(case.ct))).astype(float)
        assert volume.shape == original.shape
        diff = volume - original
        if case.label == 0:
            assert case.extra["lesions"] == "" and 0.1 * sigma < diff.std() < 0.5 * sigma  # fresh noise only
        else:
            lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(manifest.parent / case.extra["lesions"]))) > 0
            assert float(case.extra["lesion_ml"]) > 0
            assert np.abs(diff[lesions]).mean() > 10 * np.abs(diff[~lesions]).mean()  # the lesions are the signal
    again = make_synth_dataset([ct_path, dicom], tmp_path / "b", **kwargs)
    for case, twin in zip(cases, read_manifest(again), strict=True):
        assert case.id == twin.id
        assert np.array_equal(
            sitk.GetArrayFromImage(sitk.ReadImage(str(case.ct))), sitk.GetArrayFromImage(sitk.ReadImage(str(twin.ct)))
        )
    with pytest.raises(DatasetError, match="already holds"):
        make_synth_dataset([ct_path], tmp_path / "a", n_pos=1, n_neg=1, lungs=[lung_path])


@pytest.mark.slow
def test_full_resolution_lesions_on_normal001():
    """On a full-size real CT (0.6 mm pixels): noise texture kept, crazy paving's septa visible."""
    from covidct.io import load_ct
    from covidct.lungs import segment_lungs

    ct = load_ct(shared_file("covid-ct-md-sample/normal001.nii.gz"))
    lungs = segment_lungs(ct, method="threshold")
    before = sitk.GetArrayFromImage(ct).astype(np.float32)
    lung = sitk.GetArrayFromImage(lungs) > 0
    sigma = estimate_noise(before, lung)
    spread = {}
    for seed, kind in enumerate(("consolidation", "ggo", "crazy_paving")):
        out, mask = insert_lesions(
            ct, lungs, np.random.default_rng(seed), kinds=(kind,), n_lesions=(2, 2), size_mm=(40, 50)
        )
        after, labels = _arrays(out, mask)
        core = ndi.binary_erosion(labels > 0, iterations=2)
        assert core.sum() > 1000
        if kind == "consolidation":
            ratio = estimate_noise(after.astype(np.float32), core) / sigma
            assert 0.7 < ratio < 1.4, ratio  # the CT's own noise level inside the lesion
        spread[kind] = np.percentile(after[core], 90) - np.percentile(after[core], 10)
    assert spread["crazy_paving"] > spread["ggo"] + 50  # reticular septa add structure to the opacity
