"""CT input on real data: file formats, DICOM series choice and geometry, rescale, tilt, uneven spacing, saving."""

from __future__ import annotations

import gzip
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_file
from dicom_copies import (
    INTERCEPT,
    MODALITY,
    SERIES_UID,
    SLOPE,
    copy_series,
    position,
    read_slices,
    set_position,
    with_tags,
)

from covidct.commands.info import ct_facts, format_facts
from covidct.errors import CTInputError, UsageError
from covidct.filecheck import nifti_is_complete
from covidct.io import load_ct, load_ct_with_source, quiet_itk, read_image, save_image

CIP = "cip-copdgene-10002K-ct64"
CIP_DICOM = f"{CIP}/ct-64Dicom"

#: name -> (file, size (x, y, z), spacing mm) as documented in the data READMEs
LARGE = {
    "P001": ("covid-ct-md-sample/P001.nii.gz", (512, 512, 148), (0.748, 0.748, 2.0)),
    "P002": ("covid-ct-md-sample/P002.nii.gz", (512, 512, 133), (0.604, 0.604, 2.0)),
    "normal001": ("covid-ct-md-sample/normal001.nii.gz", (512, 512, 154), (0.635, 0.635, 2.0)),
    "POPI": ("popi-phase00-via-itkelastix/popi_phase00_ct.nii.gz", (512, 512, 141), (0.977, 0.977, 2.0)),
}


def assert_same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-3) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=tol)


@pytest.fixture(scope="module")
def cip_nrrd() -> sitk.Image:
    return load_ct(shared_file(f"{CIP}/ct-64.nrrd"))


@pytest.fixture(scope="module")
def cip_slices() -> list[sitk.Image]:
    """The 79 CIP DICOM slices with their tags, read once."""
    return read_slices(shared_file(CIP_DICOM))


def test_cip_dicom_series_and_nrrd_load_to_identical_voxels_and_geometry(cip_nrrd):
    dicom, source = load_ct_with_source(shared_file(CIP_DICOM))
    assert dicom.GetPixelID() == cip_nrrd.GetPixelID() == sitk.sitkInt16
    assert_same_geometry(dicom, cip_nrrd)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(dicom), sitk.GetArrayViewFromImage(cip_nrrd))
    assert (source.format, source.series_slices, source.series_found, source.corrections) == ("DICOM", 79, 1, ())
    assert dicom.GetMetaDataKeys() == ()  # no DICOM (patient) fields travel with the image


@pytest.mark.parametrize(
    ("compressor", "transfer_syntax"), [("JPEG", b"1.2.840.10008.1.2.4.70"), ("JPEG2000", b"1.2.840.10008.1.2.4.90")]
)
def test_losslessly_compressed_dicom_loads_to_the_same_voxels(
    cip_slices, cip_nrrd, compressor, transfer_syntax, tmp_path
):
    """PACS exports are often JPEG-lossless or JPEG 2000: the CIP series written so reads back voxel for voxel."""
    folder = copy_series(cip_slices, tmp_path / compressor, compressor=compressor)
    first = sorted(folder.iterdir())[0].read_bytes()
    assert transfer_syntax in first and len(first) < 0.8 * len(sorted(shared_file(CIP_DICOM).iterdir())[0].read_bytes())
    ct = load_ct(folder)
    assert_same_geometry(ct, cip_nrrd)
    assert np.array_equal(sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(cip_nrrd))


def test_one_dicom_file_loads_its_whole_series(cip_nrrd):
    image = load_ct(shared_file(f"{CIP_DICOM}/IMG0005.dcm"))
    assert_same_geometry(image, cip_nrrd)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(cip_nrrd))


@pytest.mark.parametrize("name", LARGE)
def test_large_real_ct_loads_with_documented_size_and_spacing(name):
    relative, size, spacing = LARGE[name]
    image, source = load_ct_with_source(shared_file(relative))  # each large CT is read once in this module
    assert image.GetSize() == size
    np.testing.assert_allclose(image.GetSpacing(), spacing, atol=1e-3)
    assert image.GetPixelID() == sitk.sitkInt16
    facts = ct_facts(image, source)  # what `covidct info` prints for it
    assert facts["orientation"] == "LPS" and facts["slices"] == size[2] and facts["format"] == "NIfTI"
    assert -1030 <= facts["hu_percentiles"]["p1"] <= -1000 and 0 < facts["hu_percentiles"]["p99"] < 1000
    assert f"{size[0]} × {size[1]} × {size[2]} voxels" in format_facts(facts)


def test_int32_ras_ct_is_converted_to_int16_without_changing_values():
    path = shared_file("totalsegmentator-example-ct/example_ct.nii.gz")
    image, source = load_ct_with_source(path)
    stored = sitk.ReadImage(str(path))
    assert source.stored_pixel_type == "32-bit signed integer" and image.GetPixelID() == sitk.sitkInt16
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(stored))
    assert_same_geometry(image, stored, tol=1e-9)
    assert ct_facts(image, source)["orientation"] == "RAS"


def test_rescale_slope_and_intercept_are_applied(cip_slices, cip_nrrd, tmp_path):
    # stored = (HU + 1024) / 0.5: only applying slope 0.5 and intercept -1024 gives back the HU of the NRRD
    folder = copy_series(
        cip_slices, tmp_path / "rescaled", lambda i, s: with_tags(s, {INTERCEPT: "-1024", SLOPE: "0.5"}, as_float=True)
    )
    header = sitk.ImageFileReader()
    header.SetFileName(str(folder / "IMG0001.dcm"))
    header.ReadImageInformation()
    assert (header.GetMetaData(INTERCEPT).strip(), header.GetMetaData(SLOPE).strip()) == ("-1024", ".5")
    image, source = load_ct_with_source(folder)
    assert source.stored_pixel_type == "64-bit float" and image.GetPixelID() == sitk.sitkInt16
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(cip_nrrd))


def test_gantry_tilt_is_resampled_onto_slices_along_the_normal(cip_slices, cip_nrrd, tmp_path):
    # each slice origin drifts one pixel row (+y) per slice: the table did not move along the slice normal
    row = cip_nrrd.GetSpacing()[1]
    folder = copy_series(
        cip_slices, tmp_path / "tilted", lambda i, s: set_position(s, np.add(position(s), (0, i * row, 0)))
    )
    image, source = load_ct_with_source(folder)
    assert len(source.corrections) == 1 and "gantry tilt of 46.3°" in source.corrections[0]
    assert image.GetSize() == (64, 64 + 78, 79)
    np.testing.assert_allclose(image.GetOrigin(), cip_nrrd.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), cip_nrrd.GetSpacing(), atol=1e-3)
    array, original = sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(cip_nrrd)
    for k in range(79):  # slice k of the input lies k rows further along +y in the output
        np.testing.assert_array_equal(array[k, k : k + 64], original[k])
    # voxel (i, j) of written slice k lies at that slice's (drifted) origin + (i, j) pixels: same value there
    rng = np.random.default_rng(0)
    for i, j, k in rng.integers(0, [64, 64, 79], size=(50, 3)):
        point = np.add(position(cip_slices[k]), (i * cip_nrrd.GetSpacing()[0], (k + j) * row, 0))
        index = image.TransformPhysicalPointToIndex(tuple(point))
        assert image[index] == original[k, j, i]


def test_uneven_slice_spacing_is_resampled_to_the_median_spacing(cip_slices, cip_nrrd, tmp_path):
    # odd slices moved 0.5 mm up: gaps alternate 4.49 / 3.49 mm around the true 3.99 mm
    folder = copy_series(
        cip_slices, tmp_path / "uneven", lambda i, s: set_position(s, np.add(position(s), (0, 0, 0.5 * (i % 2))))
    )
    image, source = load_ct_with_source(folder)
    assert "uneven slice spacing" in source.corrections[0] and image.GetSize() == (64, 64, 79)
    assert_same_geometry(image, cip_nrrd)
    array, original = sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(cip_nrrd).astype(float)
    z_in = np.array([position(s)[2] for s in cip_slices]) + 0.5 * (np.arange(79) % 2)
    for k in range(79):
        z = image.TransformIndexToPhysicalPoint((0, 0, k))[2]
        below = int(np.searchsorted(z_in, z + 1e-6)) - 1
        if below == 78:
            expected = original[78]
        else:
            w = (z - z_in[below]) / (z_in[below + 1] - z_in[below])
            expected = (1 - w) * original[below] + w * original[below + 1]
        assert np.abs(array[k] - expected).max() <= 0.5 + 1e-3  # linear along the normal, then rounded to int16
    np.testing.assert_array_equal(array[::2], original[::2].astype(np.int16))  # unmoved slices stay exact


def test_missing_slice_is_refused(cip_slices, tmp_path):
    folder = copy_series(cip_slices, tmp_path / "missing", lambda i, s: None if i == 40 else s)
    with pytest.raises(CTInputError, match=r"missing slices \(a gap of 7\.97 mm where slices are 3\.99 mm apart\)"):
        load_ct(folder)


def test_slices_at_the_same_position_are_refused(cip_slices, tmp_path):
    folder = copy_series(
        cip_slices, tmp_path / "duplicate", lambda i, s: set_position(s, position(cip_slices[40])) if i == 41 else s
    )
    with pytest.raises(CTInputError, match="several slices at the same position"):
        load_ct(folder)


def test_largest_ct_series_is_chosen_and_other_modalities_ignored(cip_slices, tmp_path, caplog):
    study = tmp_path / "study"
    # CT with 30 slices (original series UID), CT with 20 slices, and MR with 79 slices (the biggest, not CT)
    copy_series(cip_slices[:30], study / "a" / "ct30")
    copy_series(
        cip_slices[30:50], study / "b", lambda i, s: with_tags(s, {SERIES_UID: "1.2.826.0.1.3680043.2.1125.1.1"})
    )
    copy_series(
        cip_slices,
        study / "c",
        lambda i, s: with_tags(s, {SERIES_UID: "1.2.826.0.1.3680043.2.1125.1.2", MODALITY: "MR"}),
    )
    with caplog.at_level(logging.INFO, logger="covidct"):
        image, source = load_ct_with_source(study)
    assert image.GetSize() == (64, 64, 30)
    assert (source.series_slices, source.series_found) == (30, 3)
    assert "3 series" in caplog.text and "30 slices" in caplog.text
    assert "Anonymous" not in caplog.text  # the patient name tag of these files is never logged


def test_only_non_ct_series_is_refused(cip_slices, tmp_path):
    folder = copy_series(cip_slices, tmp_path / "mr", lambda i, s: with_tags(s, {MODALITY: "MR"}))
    with pytest.raises(CTInputError, match="holds only MR DICOM images and no CT"):
        load_ct(folder)


def test_itk_warnings_do_not_reach_the_console(capfd):
    # ITK's series reader warns about this series' 0.0007 mm slice-spacing non-uniformity
    load_ct(shared_file(CIP_DICOM))
    assert capfd.readouterr().err == ""


def test_quiet_blocks_on_two_threads_take_turns_and_give_stderr_back(capfd):
    """Detection saves its volumes on a worker thread: ITK-quiet blocks on two threads must not interleave
    their redirections of fd 2 (the second waits for the first), and stderr works afterwards."""
    import os
    import threading

    inside, release, second_inside = threading.Event(), threading.Event(), threading.Event()

    def first():
        with quiet_itk():
            inside.set()
            release.wait(5)
            os.write(2, b"hidden on the first thread\n")

    def second():
        with quiet_itk():
            second_inside.set()
            os.write(2, b"hidden on the second thread\n")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert inside.wait(5)
    threads[1].start()
    assert not second_inside.wait(0.2)
    release.set()
    for thread in threads:
        thread.join(5)
    assert second_inside.is_set()
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"


def test_read_image_returns_a_mask_as_stored():
    path = shared_file(f"{CIP}/wholeLung-64.nrrd")
    mask = read_image(path)
    assert mask.GetPixelID() == sitk.sitkUInt16 and mask.GetSize() == (64, 64, 79)
    assert set(np.unique(sitk.GetArrayViewFromImage(mask))) == {0, 1}
    with pytest.raises(CTInputError, match="does not exist"):
        read_image(path.with_name("no-such-mask.nrrd"))


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_save_image_round_trip_is_exact_and_atomic(cip_nrrd, tmp_path, suffix):
    path = save_image(cip_nrrd, tmp_path / "out" / f"ct{suffix}")
    assert sorted(p.name for p in path.parent.iterdir()) == [f"ct{suffix}"]  # no temporary file left
    back = read_image(path)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(cip_nrrd))
    assert_same_geometry(back, cip_nrrd, tol=1e-5)
    raw_bytes = 64 * 64 * 79 * 2
    assert (path.stat().st_size < 0.8 * raw_bytes) == (suffix != ".nii")  # compressed unless plain .nii


def test_save_image_refuses_two_file_formats(cip_nrrd, tmp_path):
    with pytest.raises(UsageError, match="choose a name ending in"):
        save_image(cip_nrrd, tmp_path / "ct.mhd")


def test_nifti_truncation_is_detected_also_for_multi_member_gzip(cip_nrrd, tmp_path):
    complete = save_image(cip_nrrd, tmp_path / "ct.nii.gz")
    assert nifti_is_complete(complete)
    data = gzip.decompress(complete.read_bytes())
    two_members = tmp_path / "two.nii.gz"  # gzip trailer holds only the last member's size
    two_members.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    assert nifti_is_complete(two_members)
    assert not nifti_is_complete(_truncated(complete, tmp_path / "cut.nii.gz"))
    plain = save_image(cip_nrrd, tmp_path / "ct.nii")
    assert nifti_is_complete(plain) and not nifti_is_complete(_truncated(plain, tmp_path / "cut.nii"))


def _truncated(path, target, fraction=0.6):
    shutil.copyfile(path, target)
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def test_format_suffixes_and_stems_from_the_one_table():
    from covidct.formats import path_stem, suffix_of

    assert suffix_of("scans/CT.NII.GZ") == ".nii.gz" and suffix_of("a.nrrd") == ".nrrd"
    assert [path_stem(p) for p in ("scans/ct.nii.gz", "x.DCM", "y.mhd", "series.v2", "folder")] == [
        "ct",
        "x",
        "y",
        "series.v2",
        "folder",
    ]


def test_the_command_line_parser_imports_no_numerical_library():
    """``covidct --help`` stays fast: building every sub-command's parser (which reads the lung methods and
    the file formats) imports neither numpy, SimpleITK, scipy nor torch."""
    code = (
        "import sys, covidct.cli; covidct.cli.build_parser(); "
        "print(sorted(m for m in ('numpy', 'SimpleITK', 'scipy', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
