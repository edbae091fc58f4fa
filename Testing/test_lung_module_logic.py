"""The CovidCTLungSegmentation module's logic end to end on real MRML (slicer-core) and the real CIP CT.

The logic writes the volume node to a temporary NRRD, runs ``covidct segment --lungs-method threshold`` in a
background process, and turns the labelmap into a segmentation node. The segmentation must hold
exactly the labelmap the command line writes for the same CT, on the CT's grid, with the right lung
on the patient's right — also when the volume node is stored in RAS order.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO, TEST_DATA

if not (REPO / "CovidCTDetect" / "covidct" / "commands" / "segment.py").exists():
    pytest.skip("'covidct segment' (covidct/commands/segment.py) is not in this checkout yet", allow_module_level=True)

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML without the Slicer application) is not installed")
import vtk  # noqa: E402  (installed with slicer-core)

from covidct.errors import UsageError  # noqa: E402
from CovidCTDetectLib.lung_segmentation_logic import LungSegmentationLogic  # noqa: E402
from CovidCTDetectLib.process import CommandCancelled, CommandFailed  # noqa: E402
from CovidCTDetectLib.segmentations import LUNG_SEGMENTS, labelmap_array_from_segmentation  # noqa: E402
from CovidCTDetectLib.volumes import volume_from_image  # noqa: E402

CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"


@pytest.fixture(scope="module")
def cli_labels(tmp_path_factory) -> np.ndarray:
    """What ``covidct segment --lungs-method threshold`` writes for the CIP CT, as an array (z, y, x)."""
    out = tmp_path_factory.mktemp("cli") / "lungs.nrrd"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "covidct",
            "segment",
            str(CT),
            "--out",
            str(out),
            "--lungs-method",
            "threshold",
            "--device",
            "cpu",
            "--quiet",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return sitk.GetArrayFromImage(sitk.ReadImage(str(out)))


def ras_centroid(labels: np.ndarray, label: int, volume_node) -> np.ndarray:
    """RAS millimetres of the centre of the voxels equal to ``label`` in a (k, j, i) array on the node's grid."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    k, j, i = np.nonzero(labels == label)
    return (slicer.util.arrayFromVTKMatrix(matrix) @ [i.mean(), j.mean(), k.mean(), 1.0])[:3]


def test_blocking_segment_lungs_gives_the_command_lines_labelmap_as_segments(mrml_scene, cli_labels):
    volume = volume_from_image(sitk.ReadImage(str(CT)), name="CIP CT")
    events = []
    started = time.perf_counter()
    segmentation_node = LungSegmentationLogic().segmentLungs(volume, "threshold", "cpu", onEvent=events.append)
    print(f"segmentLungs (threshold, cpu) on 64x64x79: {time.perf_counter() - started:.2f} s, {len(events)} events")
    assert segmentation_node.GetName() == "CIP CT lungs"
    assert segmentation_node.GetScene() is mrml_scene
    segmentation = segmentation_node.GetSegmentation()
    assert [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())] == [
        "Right lung",
        "Left lung",
    ]
    assert segmentation_node.GetClosedSurfaceInternalRepresentation("right_lung").GetNumberOfPoints() > 100
    assert segmentation_node.GetDisplayNode().GetVisibility2DFill()
    labels = labelmap_array_from_segmentation(segmentation_node, volume)
    np.testing.assert_array_equal(labels, cli_labels)
    for spec in LUNG_SEGMENTS:
        assert (labels == spec.label).sum() > 1000
    # right lung on the patient's right: larger RAS x (x grows towards the patient's right) than the left lung
    right, left = (ras_centroid(labels, spec.label, volume) for spec in LUNG_SEGMENTS)
    assert right[0] > left[0]
    assert any(e.get("event") == "stage" for e in events)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"))) > 0
    dice = 2 * np.sum(mask & (labels > 0)) / (mask.sum() + (labels > 0).sum())
    print(f"Dice against the CIP whole-lung mask: {dice:.3f}")
    assert dice > 0.9


def test_ras_ordered_volume_gives_the_same_lungs_at_the_same_places(mrml_scene, cli_labels):
    ras_copy = sitk.DICOMOrient(sitk.ReadImage(str(CT)), "RAS")
    volume = volume_from_image(ras_copy, name="CIP CT RAS")
    segmentation_node = LungSegmentationLogic().segmentLungs(volume, "threshold", "cpu", show=False)
    labels = labelmap_array_from_segmentation(segmentation_node, volume)
    # back to LPS order: the same voxels as the command line's result for the LPS file
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ras_copy)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS")), cli_labels)


def test_background_job_polls_and_cancels_without_leaving_files(mrml_scene):
    volume = volume_from_image(sitk.ReadImage(str(CT)), name="CIP CT")
    logic = LungSegmentationLogic()
    job = logic.startSegmentation(volume, "threshold", "cpu")
    workdir = job.workdir
    assert (workdir / "ct.nrrd").is_file()
    job.cancel()
    assert job.done and not workdir.exists()
    with pytest.raises(CommandCancelled):
        job.finish()
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0

    job = logic.startSegmentation(volume, "threshold", "cpu")
    polled, deadline = [], time.monotonic() + 300
    while not job.done and time.monotonic() < deadline:
        polled += job.poll()
        time.sleep(0.05)
    polled += job.poll()
    assert any(event["event"] == "stage" for event in polled)
    assert job.stage != "starting" and 0.0 <= job.fraction <= 1.0
    segmentation_node = job.finish()
    assert segmentation_node.GetSegmentation().GetNumberOfSegments() == 2
    assert not job.workdir.exists()


def test_bad_choices_and_bad_input_give_one_sentence(mrml_scene):
    volume = volume_from_image(sitk.ReadImage(str(CT)), name="CIP CT")
    logic = LungSegmentationLogic()
    with pytest.raises(UsageError, match="Unknown lung segmentation method 'fast'"):
        logic.startSegmentation(volume, "fast")
    with pytest.raises(UsageError, match="Unknown device 'gpu'"):
        logic.startSegmentation(volume, "threshold", "gpu")
    # a 2-slice volume is refused by the command line with its one sentence (exit status 2)
    two_slices = volume_from_image(sitk.ReadImage(str(CT))[:, :, 30:32], name="two slices")
    with pytest.raises(CommandFailed) as failure:
        logic.segmentLungs(two_slices, "threshold", "cpu")
    assert failure.value.returncode == 2
    assert "\n" not in str(failure.value) and str(failure.value).endswith(".")
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0
