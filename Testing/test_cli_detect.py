"""``covidct detect`` and ``covidct demo`` on real CTs with catalogue-saved random models: one output
folder per case, results.csv with the failed case's error, exit codes and one-sentence errors."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import SimpleITK as sitk
from conftest import TEST_DATA, shared_file

from covidct.batch import case_names, find_cases
from covidct.cli import main

CIP_CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
CIP_LUNGS = TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"
QUICK = ["--model", "tiny-covid19net", "--device", "cpu", "--quiet"]


def _rows(out):
    with open(out / "results.csv", newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_single_ct_with_its_lung_mask(models_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["detect", str(CIP_CT), "--lungs", str(CIP_LUNGS), "--out", str(out), "--threshold", "0.25", *QUICK]) == 0
    )
    [row] = _rows(out)
    assert row["case"] == "ct-64" and row["source"] == "ct-64.nrrd" and row["model"] == "tiny-covid19net"
    assert 0 <= float(row["probability"]) <= 1 and row["threshold"] == "0.25" and row["error"] == ""
    assert row["label"] == ("positive" if float(row["probability"]) > 0.25 else "negative")
    report = json.loads((out / "ct-64" / "report.json").read_text(encoding="utf-8"))
    assert report["probability"] == pytest.approx(float(row["probability"]), abs=1e-6)
    assert (out / "ct-64" / "montage.png").is_file()
    assert "ct-64: P(COVID-19) =" in capsys.readouterr().out


def test_batch_folder_with_a_bad_file_records_the_error_and_finishes_the_others(models_dir, tmp_path, capsys):
    """A folder with two CTs (one stored RAS), a DICOM sub-folder, a damaged NIfTI and a notes file."""
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(CIP_CT, cases / "ct.nrrd")
    sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(CIP_CT)), "RAS"), str(cases / "ct.nii.gz"))
    (cases / "broken.nii.gz").write_bytes(b"\x1f\x8b not really a NIfTI file")
    (cases / "notes.txt").write_text("not an image")
    shutil.copytree(shared_file("cip-copdgene-10002K-ct64/ct-64Dicom"), cases / "dicom-series")
    out = cases / "out"  # outputs inside the input folder (as when a batch is run again) are not a case
    out.mkdir()
    code = main(["detect", str(cases), "--out", str(out), "--lungs-method", "threshold", "--no-heatmap", *QUICK])
    assert code == 0
    rows = {row["case"]: row for row in _rows(out)}
    assert set(rows) == {"broken", "ct", "ct-2", "dicom-series"}  # sorted names; 'ct' made unique
    assert "not a readable image" in rows["broken"]["error"] or "truncated" in rows["broken"]["error"]
    assert rows["broken"]["probability"] == "" and not (out / "broken").exists()
    good = [rows[name] for name in ("ct", "ct-2", "dicom-series")]
    assert all(row["error"] == "" and row["label"] in ("positive", "negative") for row in good)
    # the same CT as NRRD (LPS), NIfTI (RAS) and DICOM series gives the same probability
    assert max(float(r["probability"]) for r in good) - min(float(r["probability"]) for r in good) < 1e-4
    assert (out / "ct" / "report.json").is_file() and (out / "dicom-series" / "lungs.nii.gz").is_file()
    assert "3 of 4 CTs done" in capsys.readouterr().out


def test_all_cases_failing_exits_2(models_dir, tmp_path, capsys):
    for name in ("a.nii.gz", "b.nrrd"):
        (tmp_path / name).write_bytes(b"garbage")
    assert (
        main(["detect", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nrrd"), "--out", str(tmp_path / "o"), *QUICK])
        == 2
    )
    assert [row["error"] != "" for row in _rows(tmp_path / "o")] == [True, True]


@pytest.mark.parametrize(
    "options, sentence",
    [
        (["--threshold", "1.5"], "The threshold 1.5 is not a probability strictly between 0 and 1"),
        (["--threshold", "0"], "strictly between 0 and 1"),
        (["--model", "no-such-model"], "Unknown model 'no-such-model'"),
        (["--device", "tpu"], "Unknown device 'tpu'"),
    ],
)
def test_bad_options_give_one_sentence_and_exit_2(models_dir, tmp_path, capsys, options, sentence):
    code = main(
        [
            "detect",
            str(CIP_CT),
            "--lungs",
            str(CIP_LUNGS),
            "--out",
            str(tmp_path / "o"),
            "--model",
            "tiny-covid19net",
            "--quiet",
            *options,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and sentence in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "results.csv").exists()  # nothing ran


def test_a_single_bad_input_exits_2_with_its_sentence(models_dir, tmp_path, capsys):
    code = main(["detect", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o"), *QUICK])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_lung_mask_with_several_cts_is_refused(models_dir, tmp_path, capsys):
    code = main(
        [
            "detect",
            str(CIP_CT),
            str(CIP_CT.with_name("wholeLung-64.nrrd")),
            "--lungs",
            str(CIP_LUNGS),
            "--out",
            str(tmp_path / "o"),
            *QUICK,
        ]
    )
    assert code == 2 and "one lung mask but 2 CTs" in capsys.readouterr().err


def test_case_discovery_and_names(tmp_path):
    (tmp_path / "x.nii.gz").write_bytes(b"")
    (tmp_path / "x.nrrd").write_bytes(b"")
    (tmp_path / "readme.md").write_text("")
    (tmp_path / "sub dir").mkdir()
    found = find_cases([tmp_path])
    assert [p.name for p in found] == ["sub dir", "x.nii.gz", "x.nrrd"]
    assert case_names(found) == ["sub_dir", "x", "x-2"]
    dicom = shared_file("cip-copdgene-10002K-ct64/ct-64Dicom")
    assert find_cases([dicom, dicom]) == [dicom.resolve()]  # a DICOM folder is one case, named once


def test_demo_without_bundled_weights_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COVIDCT_MODELS_DIR", str(tmp_path / "none"))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--model", "no-bundled-model"]) == 2
    err = capsys.readouterr().err
    assert "needs the bundled 'no-bundled-model' weights" in err and len(err.strip().splitlines()) == 1


def test_demo_runs_the_pipeline_on_the_sample_and_its_lesion_copy(models_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--out",
                str(out),
                "--model",
                str(models_dir / "tiny-covid19net"),
                "--lungs-method",
                "threshold",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert text.count("P(COVID-19) =") == 2 and "heat inside the synthetic lesions" in text
    for case in ("sample", "sample-lesions"):
        assert {"report.json", "heatmap.nii.gz", "lungs.nii.gz", "montage.png"} <= {
            p.name for p in (out / case).iterdir()
        }
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "sample-lesions" / "lesions.nii.gz")))
    assert lesions.any()
