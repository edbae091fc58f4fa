"""Inputs checked before they are trusted: each bad input of the real-CT issue gives exit status 2, one
sentence on stderr and no output file; a usable CT outside a model's validated range (or one that cuts
the lungs off) gets a warning in the output, report.json and results.csv. Also: one answer per CT
whatever the entry point.

Real CTs: the CIP CT (a small fixture) and its real lung mask; models are catalogue-saved with
random weights (``models_dir``), so only the checks are asserted, not the probabilities' meaning.
"""

from __future__ import annotations

import functools
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TEST_DATA, shared_file

import covidct
from covidct.errors import CTInputError
from covidct.io import load_ct, read_image

CIP_CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
CIP_LUNGS = TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"
QUICK = ["--model", "random-decovnet", "--device", "cpu", "--lungs-method", "threshold"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``covidct ARGS`` in a fresh process (stdout and stderr captured, not a terminal)."""
    return subprocess.run([sys.executable, "-m", "covidct", *args], capture_output=True, text=True, timeout=300)


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2 and exactly one line on stderr (no traceback, no progress bar) containing ``words``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def image_like(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


@pytest.fixture(scope="module")
def cip():
    return load_ct(CIP_CT)


def test_uniform_noise_is_refused_before_anything_is_written(models_dir, tmp_path):
    rng = np.random.default_rng(0)
    noise = sitk.GetImageFromArray(rng.uniform(-1000, 1000, (60, 128, 128)).astype(np.int16))
    noise.SetSpacing((2.5, 2.5, 5.0))
    sitk.WriteImage(noise, str(tmp_path / "noise.nii.gz"))
    out = tmp_path / "out"
    assert_refused(run_cli("detect", str(tmp_path / "noise.nii.gz"), "--out", str(out), *QUICK), "noise")
    assert not (out / "noise").exists()
    assert_refused(run_cli("segment", str(tmp_path / "noise.nii.gz"), "--out", str(tmp_path / "l.nii.gz")), "noise")
    assert not (tmp_path / "l.nii.gz").exists()


def test_noise_inside_a_plausible_ct_range_fails_at_the_lungs(cip, models_dir):
    """Noise that passes the value checks (a CT's own voxels shuffled) still has no plausible lungs."""
    array = sitk.GetArrayFromImage(cip)
    shuffled = np.random.default_rng(1).permutation(array.ravel()).reshape(array.shape)
    with pytest.raises(CTInputError):
        covidct.detect(image_like(shuffled, cip), model="random-decovnet", lungs_method="threshold")


def write_nifti_with_pixdim(path, image: sitk.Image, pixdim: float) -> None:
    """Write ``image`` as .nii and set pixdim[1..3] in its header to ``pixdim``."""
    sitk.WriteImage(image, str(path))
    data = bytearray(path.read_bytes())
    data[80:92] = struct.pack("<3f", pixdim, pixdim, pixdim)
    path.write_bytes(bytes(data))


def test_nifti_with_zero_pixdim_is_refused(cip, models_dir, tmp_path):
    path = tmp_path / "nospacing.nii"
    write_nifti_with_pixdim(path, cip, 0.0)
    with pytest.raises(CTInputError, match="states no voxel spacing"):
        load_ct(path)
    assert_refused(run_cli("info", str(path)), "no voxel spacing")
    assert_refused(run_cli("detect", str(path), "--out", str(tmp_path / "out"), *QUICK), "no voxel spacing")


def test_nrrd_without_spacing_is_refused(cip, tmp_path):
    array = sitk.GetArrayFromImage(cip).astype("<i2")
    header = f"NRRD0004\ntype: short\ndimension: 3\nsizes: {' '.join(map(str, cip.GetSize()))}\nendian: little\n"
    path = tmp_path / "nospacing.nrrd"
    path.write_bytes((header + "encoding: raw\n\n").encode() + array.tobytes())
    assert read_image(path).GetSpacing() == (1.0, 1.0, 1.0)  # what ITK makes of it
    with pytest.raises(CTInputError, match="states no voxel spacing"):
        load_ct(path)


def test_dicom_with_zero_pixel_spacing_is_refused(tmp_path):
    """The Pixel Spacing element (0028,0030) of every file set to 0\\0 in place (GDCM itself would write
    the image's spacing), so that the reader's 1 mm default would otherwise be used."""
    folder = tmp_path / "series"
    folder.mkdir()
    for path in sorted(shared_file("cip-copdgene-10002K-ct64/ct-64Dicom").glob("*.dcm"))[:20]:
        data = bytearray(path.read_bytes())
        at = data.index(b"\x28\x00\x30\x00")
        explicit = data[at + 4 : at + 6] == b"DS"  # explicit VR: 2-byte length; implicit: 4-byte length
        length_bytes = data[at + 6 : at + 8] if explicit else data[at + 4 : at + 8]
        length = struct.unpack("<H" if explicit else "<I", length_bytes)[0]
        data[at + 8 : at + 8 + length] = b"0\\0".ljust(length)
        (folder / path.name).write_bytes(bytes(data))
    with pytest.raises(CTInputError, match="Pixel Spacing"):
        load_ct(folder)


@pytest.mark.parametrize(
    "kind, words",
    [
        ("heat map", ("fractional values",)),
        ("the CT itself", ("holds the values",)),
        ("lobes 1-5", ("holds the values",)),
        ("a speck", ("outside the",)),
    ],
)
def test_a_lung_mask_that_is_not_one_is_refused(cip, models_dir, tmp_path, kind, words):
    lungs = sitk.GetArrayFromImage(read_image(CIP_LUNGS)) > 0
    if kind == "heat map":
        mask = image_like(lungs * np.float32(0.7), cip)
    elif kind == "the CT itself":
        mask = cip
    elif kind == "lobes 1-5":
        lobe = 1 + np.arange(lungs.shape[0])[:, None, None] * 5 // lungs.shape[0]
        mask = image_like((lungs * lobe).astype(np.uint8), cip)
    else:
        speck = np.zeros(lungs.shape, np.uint8)
        speck[40, 30:33, 20:23] = 1
        mask = image_like(speck, cip)
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    with pytest.raises(CTInputError):
        covidct.detect(cip, model="random-decovnet", lungs=mask)
    out = tmp_path / "out"
    result = run_cli("detect", str(CIP_CT), "--lungs", str(tmp_path / "mask.nrrd"), "--out", str(out), *QUICK)
    assert_refused(result, *words)
    assert not (out / "ct-64").exists()


def test_a_lung_mask_on_another_grid_is_resampled_with_a_notice(cip, models_dir, tmp_path):
    mask = read_image(CIP_LUNGS)
    shifted = sitk.Image(mask)
    shifted.SetOrigin(tuple(o + 0.5 * s for o, s in zip(mask.GetOrigin(), mask.GetSpacing(), strict=True)))
    result = covidct.detect(cip, model="random-decovnet", lungs=shifted, heatmap=False)
    assert len(result.warnings) == 1 and "resampled" in result.warnings[0]
    on_grid = covidct.detect(cip, model="random-decovnet", lungs=mask, heatmap=False)
    assert on_grid.warnings == []


def with_validated(models_dir, validated: dict, lungs_method: str | None = None) -> str:
    """A copy of ``random-decovnet`` whose card states ``validated`` (and ``input.lungs_method`` when
    given); returns its name."""
    from covidct.models import find_model, load_model, save_model

    model, card = load_model(find_model("random-decovnet").path, "cpu")
    card.name, card.validated, card.sha256 = "validated-decovnet", validated, ""
    if lungs_method:
        card.input = {**(card.input or {}), "lungs_method": lungs_method}
    save_model(model, card, models_dir / "validated-decovnet")
    return card.name


def test_slices_thicker_than_validated_are_refused_and_other_ranges_warn(cip, models_dir, tmp_path):
    # the CIP CT: 4.17 mm pixels, 3.99 mm slices
    name = with_validated(models_dir, {"slice_mm": [1.0, 3.0], "pixel_mm": [0.5, 1.0]})
    with pytest.raises(CTInputError, match="thicker than the 3 mm"):
        covidct.detect(cip, model=name, lungs_method="threshold")
    out = tmp_path / "out"
    assert_refused(run_cli("detect", str(CIP_CT), "--out", str(out), "--model", name, "--device", "cpu"), "thicker")
    assert not (out / "ct-64").exists()

    name = with_validated(models_dir, {"slice_mm": [1.0, 5.0], "pixel_mm": [0.5, 1.0]})
    result = run_cli("detect", str(CIP_CT), "--out", str(out), "--model", name, "--device", "cpu", "--no-heatmap")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "ct-64" / "report.json").read_text(encoding="utf-8"))
    assert len(report["warnings"]) == 1 and "pixel size of 4.17 mm lies outside the 0.5-1 mm" in report["warnings"][0]
    assert "outside the 0.5-1 mm" in result.stderr
    assert "pixel size" in (out / "results.csv").read_text(encoding="utf-8")


def test_lungs_by_another_method_than_the_cards_warn(cip, models_dir, tmp_path):
    name = with_validated(models_dir, {}, lungs_method="threshold")
    assert covidct.detect(cip, model=name, heatmap=False).warnings == []
    name = with_validated(models_dir, {}, lungs_method="unet")
    out = tmp_path / "out"
    result = run_cli(
        "detect",
        str(CIP_CT),
        "--out",
        str(out),
        "--model",
        name,
        "--lungs-method",
        "threshold",
        "--device",
        "cpu",
        "--no-heatmap",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "ct-64" / "report.json").read_text(encoding="utf-8"))
    assert len(report["warnings"]) == 1
    assert "segmented by the 'threshold' method" in report["warnings"][0]
    assert "validated with 'unet' lungs" in report["warnings"][0] and "validated with 'unet'" in result.stderr


def test_a_scan_that_cuts_the_lungs_off_warns(cip, models_dir):
    """The real CIP CT shows the whole lungs (no warning); cut 30 slices off one end or 29 off the other,
    the end that cuts through the lungs is named (canonical slice order: inferior first)."""
    detect = functools.partial(covidct.detect, model="random-decovnet", lungs_method="threshold", heatmap=False)
    assert detect(cip).warnings == []
    ends = set()
    for part in (cip[:, :, 30:], cip[:, :, :50]):
        warnings = detect(part).warnings
        assert len(warnings) == 1 and "cuts through the lungs" in warnings[0], warnings
        ends.add("lower" if "lower end" in warnings[0] else "upper")
    assert ends == {"lower", "upper"}


def test_a_field_of_view_that_cuts_the_lungs_at_the_side_warns(cip, models_dir, tmp_path):
    """The real CIP CT (267 mm across) cropped by 3 pixels (12.5 mm) on each side cuts through its lungs: the
    command line gives one warning, in ``report.json`` and on stderr; the whole CT gets none."""
    narrow = cip[3:-3, :, :]
    assert covidct.detect(cip, model="random-decovnet", lungs_method="threshold", heatmap=False).warnings == []
    path = tmp_path / "narrow.nrrd"
    sitk.WriteImage(narrow, str(path))
    out = tmp_path / "out"
    result = run_cli("detect", str(path), "--out", str(out), *QUICK, "--no-heatmap")
    assert result.returncode == 0, result.stderr
    warnings = json.loads((out / "narrow" / "report.json").read_text(encoding="utf-8"))["warnings"]
    assert len(warnings) == 1 and "field of view cuts through the lungs" in warnings[0], warnings
    assert "field of view cuts through the lungs" in result.stderr


def test_a_contrast_enhanced_ct_warns_where_the_card_says_so(cip, models_dir):
    """The real CIP CT (no contrast) gets no warning. Its copy with 150 HU more on the blood between and inside
    the lungs (the yardstick's ``contrast`` copy) is called contrast-enhanced for a card validated without
    contrast, and not for a card that states nothing about contrast."""
    from benchmarks.real_ct_yardstick import scanner_copy

    name = with_validated(models_dir, {"contrast": False})
    detect = functools.partial(covidct.detect, lungs_method="threshold", heatmap=False)
    assert detect(cip, model=name).warnings == []
    enhanced = scanner_copy(cip, "contrast")
    warnings = detect(enhanced, model=name).warnings
    assert len(warnings) == 1 and "looks contrast-enhanced" in warnings[0], warnings
    assert detect(enhanced, model="random-decovnet").warnings == []


def test_detect_stays_a_function_and_python_gives_the_cli_answer(cip, models_dir, tmp_path):
    """The README's snippet (``covidct.detect(ct)``, no lungs) and ``covidct detect CT`` agree."""
    import covidct.detection  # noqa: F401 (importing the module must not replace the function)

    first = covidct.detect(cip, model="random-decovnet", heatmap=False)
    second = covidct.detect(cip, model="random-decovnet", heatmap=False)
    assert first.probability == second.probability
    out = tmp_path / "out"
    result = run_cli("detect", str(CIP_CT), "--out", str(out), "--model", "random-decovnet", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "ct-64" / "report.json").read_text(encoding="utf-8"))
    assert report["probability"] == pytest.approx(first.probability, abs=1e-5)
