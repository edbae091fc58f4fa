"""The CovidCTDetect module's detection logic end to end on real MRML (slicer-core) and the real CIP CT.

The logic writes the volume node (and the lungs of a lung segmentation node) to temporary files, runs
``covidct detect`` in a background process with a catalogue model (random weights, from
the ``models_dir`` fixture) and loads the outputs into the scene. The probability must be the library's for
the same CT and lungs, the heat map must lie on the CT's grid and be the foreground of every slice
view, and the suspicious-region segment must exist exactly when suspicious.nii.gz has voxels.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO, TEST_DATA

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML without the Slicer application) is not installed")
import vtk  # noqa: E402  (installed with slicer-core)

import covidct.detection as detect_module
from covidct.detection import detect  # noqa: E402
from covidct.errors import CTInputError, ModelError, UsageError  # noqa: E402
from CovidCTDetectLib import detect_logic  # noqa: E402
from CovidCTDetectLib.detect_logic import (
    RESULTS_TABLE_NAME,
    SUSPICIOUS_SEGMENTS,
    DetectionLogic,  # noqa: E402
    classifier_card,
    classifier_models,
    lung_segment_ids,
)
from CovidCTDetectLib.process import CommandCancelled, CommandFailed  # noqa: E402
from CovidCTDetectLib.segmentations import (
    LUNG_SEGMENTS,
    SegmentSpec,
    labelmap_array_from_segmentation,  # noqa: E402
    segmentation_from_labelmap,
)
from CovidCTDetectLib.volumes import volume_from_image  # noqa: E402

CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
MASK = TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"
MODEL = "tiny-covid19net"
HAS_LUNGS = (REPO / "CovidCTDetect" / "covidct" / "lungs" / "__init__.py").is_file()
needs_lungs = pytest.mark.skipif(not HAS_LUNGS, reason="covidct.lungs (lung segmentation) is not in this checkout yet")
VIEWS = ("Red", "Green", "Yellow")


@pytest.fixture
def scene(mrml_scene):
    """The scene with the slice composite nodes of three slice views, as the application has."""
    for view in VIEWS:
        composite = mrml_scene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        composite.SetLayoutName(view)
    return mrml_scene


def ct_node(name="CIP CT"):
    return volume_from_image(sitk.ReadImage(str(CT)), name=name)


def lungs_node(volume, segments=(SegmentSpec(1, "lungs", "Lungs", (0.8, 0.6, 0.5), ""),)):
    """A segmentation node holding the CIP whole-lung mask (one segment by default)."""
    return segmentation_from_labelmap(
        sitk.ReadImage(str(MASK)), segments, f"{volume.GetName()} mask", volume.GetScene()
    )


def matrix(volume_node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return slicer.util.arrayFromVTKMatrix(m)


def table_rows(table_node) -> list[dict]:
    table = table_node.GetTable()
    columns = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
    return [{column.GetName(): column.GetValue(r) for column in columns} for r in range(table.GetNumberOfRows())]


def test_detection_with_a_lung_segmentation_node(scene, models_dir, tmp_path):
    volume = ct_node()
    segmentation = lungs_node(volume)
    logic = DetectionLogic()
    events = []
    started = time.perf_counter()
    result = logic.detect(
        volume, MODEL, segmentation, device="cpu", threshold=0.25, outputFolder=tmp_path / "out", onEvent=events.append
    )
    print(
        f"DetectionLogic.detect (tiny COVID-19Net, given lungs, cpu) on 64x64x79: {time.perf_counter() - started:.2f} s"
    )

    # the library's own result for the same CT and lungs
    expected = detect(str(CT), model=MODEL, lungs=str(MASK), device="cpu", threshold=0.25)
    assert result.probability == pytest.approx(expected.probability, abs=1e-5)
    assert result.label == ("positive" if result.probability > 0.25 else "negative") == expected.label
    assert result.threshold == 0.25 and result.model == MODEL
    assert len(result.features) == 64
    np.testing.assert_allclose(result.features, expected.features, atol=1e-4)
    assert any(e.get("event") == "stage" for e in events)

    # one row in the results table
    assert result.tableNode.GetName() == RESULTS_TABLE_NAME
    [row] = table_rows(result.tableNode)
    assert row["Volume"] == "CIP CT" and row["Model"] == MODEL and row["Label"] == result.label
    assert row["Probability"] == pytest.approx(result.probability) and row["Threshold"] == 0.25
    assert 0 < row["Time (s)"] < 600

    # the heat map: on the CT's grid, the saved values, the foreground of every slice view
    heat = result.heatMapNode
    assert heat.GetName() == "CIP CT COVID-19 heat map"
    np.testing.assert_allclose(matrix(heat), matrix(volume), atol=1e-6)
    assert heat.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(result.outputFolder / "heatmap.nii.gz")))
    np.testing.assert_allclose(slicer.util.arrayFromVolume(heat), saved, atol=1e-6)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(heat), sitk.GetArrayFromImage(expected.heatmap), atol=1e-4)
    assert slicer.util.arrayFromVolume(heat).max() == pytest.approx(1.0)
    assert heat.GetDisplayNode().GetColorNodeID() == "vtkMRMLPETProceduralColorNodePET-Heat"  # warm; Inferno in the app
    composites = slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")
    assert len(composites) == len(VIEWS)
    for composite in composites:
        assert composite.GetBackgroundVolumeID() == volume.GetID()
        assert composite.GetForegroundVolumeID() == heat.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.4)
    logic.setHeatMapOpacity(0.7)
    assert all(c.GetForegroundOpacity() == pytest.approx(0.7) for c in composites)

    # the suspicious region: a segment exactly when suspicious.nii.gz has voxels, holding those voxels
    suspicious = sitk.GetArrayFromImage(sitk.ReadImage(str(result.outputFolder / "suspicious.nii.gz")))
    assert (result.suspiciousSegmentationNode is not None) == bool(suspicious.any())
    if suspicious.any():
        node = result.suspiciousSegmentationNode
        assert node.GetSegmentation().GetNthSegment(0).GetName() == "Suspicious region"
        np.testing.assert_array_equal(labelmap_array_from_segmentation(node, volume, SUSPICIOUS_SEGMENTS), suspicious)
    assert result.suspiciousRegions["regions"] >= (1 if suspicious.any() else 0)
    assert result.lungSegmentationNode is None  # the lungs were given
    assert result.montagePath.read_bytes()[:4] == b"\x89PNG"
    assert json.loads((result.outputFolder / "report.json").read_text(encoding="utf-8"))[
        "probability"
    ] == pytest.approx(result.probability)

    # later results go into the same table
    assert logic.appendResultRow(result) is result.tableNode and len(table_rows(result.tableNode)) == 2
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 1


@pytest.mark.slow  # a full-size DeCoVNet on the CPU
def test_suspicious_segment_present_when_the_heat_map_has_hot_regions(scene, models_dir, tmp_path):
    """The full-size random DeCoVNet: whatever its heat map, node and file agree."""
    volume = ct_node()
    result = DetectionLogic().detect(
        volume, "random-decovnet", lungs_node(volume), device="cpu", outputFolder=tmp_path, show=False
    )
    suspicious = sitk.GetArrayFromImage(sitk.ReadImage(str(result.outputFolder / "suspicious.nii.gz")))
    assert (result.suspiciousSegmentationNode is not None) == bool(suspicious.any())
    assert result.features is None and result.model == "random-decovnet"
    if suspicious.any():
        np.testing.assert_array_equal(
            labelmap_array_from_segmentation(result.suspiciousSegmentationNode, volume, SUSPICIOUS_SEGMENTS), suspicious
        )
    assert all(c.GetForegroundVolumeID() is None for c in slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode"))


def test_lung_segments_are_found_by_name_terminology_or_as_the_only_segment(scene, models_dir):
    volume = ct_node()
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(MASK)))
    # ours: "Right lung"/"Left lung" (here the whole mask split at the volume's middle column)
    halves = sitk.GetImageFromArray(
        np.where(mask > 0, np.where(np.arange(64)[None, None, :] < 32, 1, 2), 0).astype(np.uint8)
    )
    halves.CopyInformation(sitk.ReadImage(str(MASK)))
    ours = segmentation_from_labelmap(halves, LUNG_SEGMENTS, "ours", scene)
    assert lung_segment_ids(ours) == ["right_lung", "left_lung"]
    # another tool's: a lung by terminology only, beside a non-lung segment
    heart = SegmentSpec(
        1,
        "Segment_1",
        "Segment_1",
        (1, 0, 0),
        "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
        "~SCT^80891009^Heart~^^~Anatomic codes - DICOM master list~^^~^^",
    )
    lung = SegmentSpec(2, "Segment_2", "Segment_2", (0, 0, 1), LUNG_SEGMENTS[0].terminology)
    other = segmentation_from_labelmap(halves, (heart, lung), "other", scene)
    assert lung_segment_ids(other) == ["Segment_2"]
    lobes = segmentation_from_labelmap(
        halves,
        (SegmentSpec(1, "a", "lung_upper_lobe_left", (0, 0, 1), ""), SegmentSpec(2, "b", "trachea", (0, 1, 0), "")),
        "lobes",
        scene,
    )
    assert lung_segment_ids(lobes) == ["a"]
    assert lung_segment_ids(lungs_node(volume)) == ["lungs"]  # a single segment is the lungs
    no_lungs = segmentation_from_labelmap(halves, (heart, SegmentSpec(2, "x", "Liver", (0, 1, 0), "")), "none", scene)
    with pytest.raises(CTInputError, match="has no lung segment"):
        lung_segment_ids(no_lungs)
    with pytest.raises(CTInputError, match="has no lung segment"):
        DetectionLogic().startDetection(volume, MODEL, no_lungs)


def test_background_job_polls_cancels_and_reports_errors(scene, models_dir, tmp_path):
    volume = ct_node()
    segmentation = lungs_node(volume)
    logic = DetectionLogic()
    job = logic.startDetection(volume, MODEL, segmentation, device="cpu", outputFolder=tmp_path / "a")
    assert (job.workdir / "CIP_CT.nrrd").is_file() and (job.workdir / "lungs.nrrd").is_file()
    assert job.case_folder == tmp_path / "a" / "CIP_CT"  # named after the volume
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(job.workdir / "lungs.nrrd")))
    np.testing.assert_array_equal(lungs, sitk.GetArrayFromImage(sitk.ReadImage(str(MASK))))  # exported on the CT grid
    job.cancel()
    assert job.done and not job.workdir.exists()
    with pytest.raises(CommandCancelled):
        job.finish()
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 1  # the CT only

    # without heat map, at the model card's threshold
    job = logic.startDetection(volume, MODEL, segmentation, device="cpu", heatmap=False, outputFolder=tmp_path / "b")
    polled, deadline = [], time.monotonic() + 300
    while not job.done and time.monotonic() < deadline:
        polled += job.poll()
        time.sleep(0.05)
    polled += job.poll()
    assert [e["step"] for e in polled if e.get("event") == "stage" and e.get("stage") == "detect"][-1] == "done"
    assert job.fraction == 1.0
    result = job.finish()
    assert not job.workdir.exists() and (tmp_path / "b" / "CIP_CT" / "report.json").is_file()
    assert result.heatMapNode is None and result.montagePath is None and result.suspiciousSegmentationNode is None
    [row] = table_rows(result.tableNode)
    assert row["Threshold"] == 0.3 and row["Label"] == ("positive" if row["Probability"] > 0.3 else "negative")
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 1  # no heat-map volume

    with pytest.raises(UsageError, match="Unknown device 'gpu'"):
        logic.startDetection(volume, MODEL, segmentation, device="gpu")
    with pytest.raises(UsageError, match="strictly between 0 and 1"):
        logic.startDetection(volume, MODEL, segmentation, threshold=1.5)
    with pytest.raises(UsageError, match="Unknown lung segmentation method 'atlas'"):
        logic.startDetection(volume, MODEL, None, lungsMethod="atlas")
    # a 2-slice volume is refused by the command line with its one sentence (exit status 2)
    two_slices = volume_from_image(sitk.ReadImage(str(CT))[:, :, 30:32], name="two slices")
    with pytest.raises(CommandFailed) as failure:
        logic.detect(two_slices, MODEL, lungsMethod="threshold", device="cpu", outputFolder=tmp_path / "c")
    assert failure.value.returncode == 2 and "\n" not in str(failure.value) and str(failure.value).endswith(".")
    assert len(table_rows(logic.resultsTableNode)) == 1  # only the finished run, not the failed one


def test_model_choices_are_the_libraries(scene, models_dir):
    """The logic offers the library's choices: the catalogue's classifiers and its model lookup, and
    covidct.detection's lung methods mirrored without importing it (it needs scipy, which Slicer may lack)."""
    assert detect_logic.CLASSIFIERS == ("decovnet", "covid19net")
    # an architecture name stands for the installed model of that architecture, as in covidct detect --model
    assert classifier_card("decovnet").name == "decovnet-demo"
    assert classifier_card("covid19net").name == "covid19net-demo"
    with pytest.raises(UsageError, match="is a unet model, not a COVID-19 classifier"):
        classifier_card("unet-lungs")
    assert ("auto", *detect_module.LUNGS_METHODS) == detect_logic.LUNGS_METHODS
    assert [card.name for card in classifier_models()][-2:] == ["random-decovnet", "tiny-covid19net"]
    volume = ct_node()
    with pytest.raises(ModelError, match="Unknown model 'no-such-model'"):
        DetectionLogic().startDetection(volume, "no-such-model")


def test_the_default_lung_method_is_unet_once_a_lung_unet_is_installed(tmp_path, monkeypatch):
    from covidct.models import catalogue, default_lungs_method

    monkeypatch.setenv("COVIDCT_MODELS_DIR", str(tmp_path))
    assert default_lungs_method() == "unet"  # the bundled unet-lungs
    monkeypatch.setattr(catalogue, "BUNDLED_DIR", tmp_path / "no-bundled-weights")
    assert default_lungs_method() == "threshold"
    (tmp_path / "my-unet").mkdir()
    (tmp_path / "my-unet" / "model.json").write_text(json.dumps({"name": "my-unet", "architecture": "unet"}))
    assert default_lungs_method() == "unet"


@needs_lungs
def test_detection_segments_the_lungs_when_none_are_given(scene, models_dir, tmp_path):
    volume = ct_node()
    result = DetectionLogic().detect(
        volume, MODEL, lungsMethod="threshold", device="cpu", heatmap=False, outputFolder=tmp_path
    )
    lungs = result.lungSegmentationNode
    assert lungs.GetName() == "CIP CT lungs"
    segmentation = lungs.GetSegmentation()
    assert [segmentation.GetNthSegment(n).GetName() for n in range(2)] == ["Right lung", "Left lung"]
    labels = labelmap_array_from_segmentation(lungs, volume)
    np.testing.assert_array_equal(
        labels, sitk.GetArrayFromImage(sitk.ReadImage(str(result.outputFolder / "lungs.nii.gz")))
    )
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(MASK))) > 0
    assert 2 * np.sum(mask & (labels > 0)) / (mask.sum() + (labels > 0).sum()) > 0.9


@needs_lungs
def test_batch_on_a_folder_with_a_bad_file_gives_a_table_with_an_error_row(scene, models_dir, tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(CT, cases / "good.nrrd")
    (cases / "broken.nii.gz").write_bytes(b"\x1f\x8b not really a NIfTI file")
    logic = DetectionLogic()
    events = []
    table_node = logic.runBatch(
        cases, tmp_path / "out", MODEL, lungsMethod="threshold", device="cpu", heatmap=False, onEvent=events.append
    )
    assert table_node.GetName().startswith("CovidCT batch cases")
    rows = {row["case"]: row for row in table_rows(table_node)}
    assert set(rows) == {"broken", "good"}
    assert rows["broken"]["error"] and np.isnan(rows["broken"]["probability"])
    assert rows["good"]["error"] == "" and 0 <= rows["good"]["probability"] <= 1
    assert rows["good"]["label"] == ("positive" if rows["good"]["probability"] > 0.3 else "negative")
    assert (tmp_path / "out" / "good" / "report.json").is_file()
    assert any(e.get("stage") == "cases" for e in events)


def test_batch_where_every_case_fails_gives_a_table_of_error_rows(scene, models_dir, tmp_path):
    """Exit status 2 (no CT succeeded) still has results.csv: the table holds each case's one-sentence error."""
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "broken.nii.gz").write_bytes(b"\x1f\x8b not really a NIfTI file")
    (cases / "empty.nrrd").write_bytes(b"")
    job = DetectionLogic().startBatch(cases, tmp_path / "out", MODEL, device="cpu")
    job.wait()
    assert job.process.returncode == 2 and job.fraction == 1.0 and job.stage.startswith("case 2 of 2")
    rows = table_rows(job.finish())
    assert [row["case"] for row in rows] == ["broken", "empty"]
    for row in rows:
        assert row["error"].endswith(".") and "\n" not in row["error"] and row["model"] == MODEL
        assert np.isnan(row["probability"]) and row["label"] == ""


def test_batch_options_are_checked_before_starting(scene, models_dir, tmp_path):
    logic = DetectionLogic()
    with pytest.raises(UsageError, match="does not exist"):
        logic.startBatch(tmp_path / "absent", tmp_path / "out", MODEL)
    with pytest.raises(UsageError, match="output folder"):
        logic.startBatch(tmp_path, "", MODEL)
    # a folder without any CT: the command's one sentence, no table
    (tmp_path / "notes.txt").write_text("no CT here")
    with pytest.raises(CommandFailed, match="No CT found"):
        logic.runBatch(tmp_path, tmp_path / "out", MODEL, device="cpu")
    assert scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 0


EXAMPLE = REPO / "CovidCTDetect" / "Resources" / "Examples" / "batch_detect.py"


@needs_lungs
@pytest.mark.slow  # the documented example end to end (one more detection process)
def test_example_batch_script(scene, models_dir, tmp_path, monkeypatch, capsys):
    """The documented ``Slicer --python-script`` example (each CT file loaded as a volume node; its --whole-folder
    mode is ``runBatch``, tested above); its three application-only calls (load a volume file, save a table,
    exit Slicer) are done with slicer-core's MRML means, the rest runs as in Slicer."""
    import runpy

    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(CT, cases / "ct.nrrd")
    (cases / "broken.nrrd").write_bytes(b"NRRD0004\nnot really a volume\n")

    def load_volume(path):
        try:
            return volume_from_image(sitk.ReadImage(path), name=Path(path).name.split(".")[0])
        except RuntimeError as error:  # as slicer.util.loadVolume: RuntimeError when the file cannot be read
            raise RuntimeError(f"Failed to load node from file: {path}") from error

    def save_node(node, path):
        storage = slicer.vtkMRMLTableStorageNode()
        storage.SetFileName(path)
        return storage.WriteData(node)

    def exit_slicer(status):
        raise SystemExit(status)

    monkeypatch.setattr(slicer.util, "loadVolume", load_volume)
    monkeypatch.setattr(slicer.util, "saveNode", save_node)
    monkeypatch.setattr(slicer.util, "exit", exit_slicer)
    out = tmp_path / "out"
    argv = [
        "--",
        "--input",
        str(cases),
        "--out",
        str(out),
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--lungs-method",
        "threshold",
    ]
    monkeypatch.setattr("sys.argv", [str(EXAMPLE), *argv])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    printed = capsys.readouterr().out
    assert exit_status.value.code == 1, printed  # one of the two CTs failed
    assert "1 of 2 CTs done" in printed
    # memory stays flat: only the results table is left in the scene, no heat map or segmentation
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
    assert "ct.nrrd: P(COVID-19) =" in printed and "broken.nrrd: Slicer could not load this file" in printed
    report = json.loads((out / "ct" / "report.json").read_text(encoding="utf-8"))
    with open(out / "slicer_results.csv", newline="", encoding="utf-8") as stream:
        [row] = list(csv.DictReader(stream))
    assert row["Volume"] == "ct" and row["Model"] == MODEL
    assert float(row["Probability"]) == pytest.approx(report["probability"], abs=1e-4)


def test_example_batch_script_always_ends_slicer_with_a_status(scene, tmp_path, monkeypatch, capsys):
    """Bad arguments exit 2; an unexpected error (here: the logic itself failing) prints its traceback and
    exits 1 instead of leaving ``Slicer --no-main-window`` running."""
    import runpy

    monkeypatch.setattr(slicer.util, "exit", lambda status: (_ for _ in ()).throw(SystemExit(status)))
    monkeypatch.setattr("sys.argv", [str(EXAMPLE), "--", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as bad_arguments:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert bad_arguments.value.code == 2
    cases = tmp_path / "cases"
    cases.mkdir()
    shutil.copy(CT, cases / "ct.nrrd")

    def broken(*args, **kwargs):
        raise RuntimeError("saveNode failed")

    monkeypatch.setattr(DetectionLogic, "detect", broken)
    monkeypatch.setattr(slicer.util, "loadVolume", lambda path: ct_node(Path(path).stem))
    monkeypatch.setattr("sys.argv", [str(EXAMPLE), "--", "--input", str(cases), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as crashed:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert crashed.value.code == 1
    assert "RuntimeError: saveNode failed" in capsys.readouterr().err


@needs_lungs
def test_auto_lung_method_segments_by_the_models_card(scene, tmp_path):
    from covidct.lungs import segment_lungs

    volume = ct_node()
    result = DetectionLogic().detect(
        volume, "decovnet-demo", lungsMethod="auto", device="cpu", heatmap=False, outputFolder=tmp_path
    )
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(result.outputFolder / "lungs.nii.gz")))
    expected = sitk.GetArrayFromImage(segment_lungs(sitk.ReadImage(str(CT)), method="unet"))
    np.testing.assert_array_equal(written, expected)  # decovnet-demo's card names the UNet
    np.testing.assert_array_equal(labelmap_array_from_segmentation(result.lungSegmentationNode, volume), expected)


def test_sample_data_source_is_the_bundled_ct_without_a_download():
    """What the module registers in Slicer's Sample Data: a file URI that reads back as the bundled CT's
    bytes, with a matching SHA256 checksum (Sample Data verifies it)."""
    import hashlib
    import urllib.request

    from CovidCTDetectLib import testdata

    source = testdata.sample_data_source()
    with urllib.request.urlopen(source["uris"]) as stream:
        data = stream.read()
    assert data == testdata.ct_path().read_bytes()
    assert source["checksums"] == "SHA256:" + hashlib.sha256(data).hexdigest()
    assert source["fileNames"].endswith(".nrrd") and source["category"] == testdata.SAMPLE_CATEGORY
