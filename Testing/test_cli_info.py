"""``covidct info`` on real CTs, and every kind of bad input refused with exit status 2 and one stderr line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_file
from dicom_copies import MODALITY, copy_series, read_slices, with_tags

from covidct.cli import main

CIP = "cip-copdgene-10002K-ct64"


def run_info(capsys, *args) -> tuple[int, str, str]:
    code = main(["info", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_info_on_a_dicom_folder_shows_the_chosen_series_and_no_patient_fields(capsys):
    code, out, err = run_info(capsys, shared_file(f"{CIP}/ct-64Dicom"))
    assert code == 0 and err == ""
    assert "64 × 64 × 79 voxels" in out and "4.1719 × 4.1719 × 3.9873 mm" in out
    assert "orientation:" in out and "LPS" in out and "slices:           79" in out
    assert "79 slices, chosen from 1 series" in out
    assert "p1 -1000, p5 -997, p50 -469, p95 74, p99 326" in out  # exact percentiles of this CT
    assert "Anonymous" not in out and "20060101" not in out  # patient name and birth date of these files


def test_info_json_on_a_ras_nifti(capsys):
    code, out, _ = run_info(capsys, shared_file("totalsegmentator-example-ct/example_ct_sm.nii.gz"), "--json")
    facts = json.loads(out)
    assert code == 0
    assert facts["size_xyz"] == [122, 101, 30] and facts["orientation"] == "RAS" and facts["slices"] == 30
    assert facts["spacing_mm"] == [3.0, 3.0, 3.0] and facts["extent_mm"] == [366.0, 303.0, 90.0]
    assert facts["format"] == "NIfTI" and "dicom_series" not in facts


# ---------------------------------------------------------------------------------------------
# bad inputs: name -> what the one sentence must say (a regular expression)
WORDS = {
    "missing": "does not exist",
    "empty": r"is empty \(0 bytes\)",
    "truncated NIfTI": "could not be read completely",
    "random bytes .nrrd": "is not a readable image",
    "DICOM with a truncated file": "missing slices .* 1 unreadable file",
    "folder without DICOM": "No DICOM files found in 'no-dicom'; point to",
    "folder with a NIfTI": "such as 'ct.nii.gz'; pass that file instead",
    "MR DICOM series": "holds only MR DICOM",
    "label map": "looks like a label map",
    "MR-like values": "does not hold Hounsfield units",
    "NaN voxel": "contains 1 NaN or infinite",
    "2D image": "is a 2D image",
    "4D image": "is a 4D image",
    "vector image": "3 values per voxel",
    "absurd spacing": "implausible voxel spacing",
    "too large for memory": r"needs about [0-9.]+ GB of memory \(100000×100000×1000",
    "2-slice DICOM (lungmask)": "only 2 slices .fewer than 16 slices",
    "2-slice NRRD": "only 2 slices .fewer than 16 slices",
}


def _save(image, path):
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def _truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def _array_image(array, like):
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def _huge_header(folder: Path) -> Path:
    """A real NRRD header announcing 100000×100000×1000 int16 voxels (about 56 TB with working memory)."""
    (folder / "huge.raw").write_bytes(b"")
    header = folder / "huge.nhdr"
    header.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
        "sizes: 100000 100000 1000\nspace directions: (0.5,0,0) (0,0.5,0) (0,0,1)\n"
        "kinds: domain domain domain\nendian: little\nencoding: raw\n"
        "space origin: (0,0,0)\ndata file: huge.raw\n"
    )
    return header


def _bad_inputs(tmp: Path) -> dict:
    """name -> path of each bad input (copies of real data made in ``tmp``; shared files are only read)."""
    ct = sitk.ReadImage(str(shared_file(f"{CIP}/ct-64.nrrd")))
    hu = sitk.GetArrayFromImage(ct)
    dicom = shared_file(f"{CIP}/ct-64Dicom")

    truncated_dicom = tmp / "ct-64Dicom-one-truncated"
    shutil.copytree(dicom, truncated_dicom)
    for path in truncated_dicom.iterdir():
        os.chmod(path, 0o644)
    _truncate(truncated_dicom / "IMG0040.dcm", 0.5)
    (tmp / "no-dicom").mkdir()
    (tmp / "no-dicom" / "notes.txt").write_text("not an image\n")
    (tmp / "nifti-folder").mkdir()
    _save(ct, tmp / "nifti-folder" / "ct.nii.gz")
    (tmp / "empty.nii.gz").write_bytes(b"")
    (tmp / "random.nrrd").write_bytes(np.random.default_rng(0).bytes(5000))
    nan = hu.astype(np.float32)
    nan[40, 30, 30] = np.nan
    mr = np.clip((hu.astype(np.float32) + 1000) * 1.8, 0, 4000).astype(np.int16)
    wide = sitk.Image(ct)
    wide.SetSpacing((4.17, 4.17, 25.0))
    return {
        "missing": tmp / "nope.nii.gz",
        "empty": tmp / "empty.nii.gz",
        "truncated NIfTI": _truncate(_save(ct, tmp / "cut.nii.gz")),
        "random bytes .nrrd": tmp / "random.nrrd",
        "DICOM with a truncated file": truncated_dicom,
        "folder without DICOM": tmp / "no-dicom",
        "folder with a NIfTI": tmp / "nifti-folder",
        "MR DICOM series": copy_series(read_slices(dicom), tmp / "mr", lambda i, s: with_tags(s, {MODALITY: "MR"})),
        "label map": shared_file(f"{CIP}/wholeLung-64.nrrd"),
        "MR-like values": _save(_array_image(mr, ct), tmp / "mr-like.nii.gz"),
        "NaN voxel": _save(_array_image(nan, ct), tmp / "nan.nrrd"),
        "2D image": _save(ct[:, :, 40], tmp / "slice.nrrd"),
        "4D image": _save(sitk.JoinSeries([ct, ct]), tmp / "two-phases.nii.gz"),
        "vector image": _save(sitk.Compose(ct, ct, ct), tmp / "rgb.nrrd"),
        "absurd spacing": _save(wide, tmp / "wide.nrrd"),
        "too large for memory": _huge_header(tmp),
        "2-slice DICOM (lungmask)": shared_file("lungmask-testdata"),
        "2-slice NRRD": shared_file(f"{CIP}/crop_ct_2slices.nrrd"),
    }


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict:
    return _bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", list(WORDS))
def test_bad_input_exits_2_with_one_sentence(capsys, bad_inputs, case):
    import re

    path, words = bad_inputs[case], WORDS[case]
    code, out, err = run_info(capsys, path)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("covidct info: error: ") and lines[0].endswith(".")
    assert re.search(words, lines[0]), lines[0]
    assert "Traceback" not in err


def test_console_script_refuses_the_2_slice_dicom_in_one_line():
    script = Path(sys.executable).with_name("covidct")
    if not script.exists():
        pytest.skip(f"console script not installed next to {sys.executable} (pip install -e .)")
    data = shared_file("lungmask-testdata")
    result = subprocess.run([str(script), "info", str(data)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "covidct info: error: 'lungmask-testdata' has only 2 slices (fewer than 16 slices, too few for a chest CT); "
        "load the complete CT series or volume."
    ]
