"""The Slicer bridge (CovidCTDetectLib) on real MRML from the slicer-core wheel and the real CIP CT.

Volume node ⇄ SimpleITK must be exact in voxels and geometry, also for a rotated direction and for a
copy stored in RAS order; labelmaps become segmentation nodes with named segments, colours and
terminology and come back voxel for voxel; heat maps, result tables and plots become real nodes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TEST_DATA

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML without the Slicer application) is not installed")
import vtk  # noqa: E402  (installed with slicer-core)

from covidct.errors import CTInputError  # noqa: E402
from covidct.geometry import ijk_to_ras_matrix, lps_to_ras  # noqa: E402
from CovidCTDetectLib.heatmaps import HEAT_COLOR_NODE_IDS, heat_map_volume  # noqa: E402
from CovidCTDetectLib.segmentations import (
    LUNG_SEGMENTS,
    labelmap_array_from_segmentation,  # noqa: E402
    segmentation_from_labelmap,
)
from CovidCTDetectLib.tables import append_result_row, plot_curve  # noqa: E402
from CovidCTDetectLib.volumes import image_from_volume, remove_nodes, volume_from_image  # noqa: E402

CIP = TEST_DATA / "cip-ct64"


@pytest.fixture(scope="module")
def ct() -> sitk.Image:
    return sitk.ReadImage(str(CIP / "ct-64.nrrd"))


@pytest.fixture(scope="module")
def lung_labels(ct) -> sitk.Image:
    """The real CIP whole-lung mask split at the body midline: 1 = patient's right (LPS x below the
    middle of the lungs), 2 = left."""
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(CIP / "wholeLung-64.nrrd"))) > 0
    x_index = np.nonzero(mask)[2]
    middle = (x_index.min() + x_index.max()) / 2.0  # identity direction: index x grows to the patient's left
    labels = np.zeros(mask.shape, np.uint8)
    xs = np.arange(mask.shape[2])[None, None, :]
    labels[mask & (xs < middle)] = 1
    labels[mask & (xs >= middle)] = 2
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    return image


def rotated(image: sitk.Image) -> sitk.Image:
    """Same voxels, non-identity direction (30° about z, then 10° about x) and a shifted origin."""
    a, b = math.radians(30), math.radians(10)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    out = sitk.Image(image)
    out.SetDirection(tuple((rx @ rz).ravel()))
    out.SetOrigin(tuple(np.array(image.GetOrigin()) + [12.5, -7.25, 3.0]))
    return out


def assert_same_image(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetPixelID() == b.GetPixelID()
    assert a.GetSize() == b.GetSize()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-12)


def ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


@pytest.mark.parametrize("make", [lambda image: image, rotated], ids=["identity-direction", "rotated"])
def test_volume_round_trip_is_exact(mrml_scene, ct, make):
    image = make(ct)
    node = volume_from_image(image, name="CT")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), sitk.GetArrayViewFromImage(image))
    np.testing.assert_allclose(ijk_to_ras(node), ijk_to_ras_matrix(image), atol=1e-12)
    # a voxel's RAS position in Slicer is the LPS position SimpleITK gives, with x and y negated
    index = (40, 17, 55)
    ras = ijk_to_ras(node) @ np.array([*index, 1.0])
    np.testing.assert_allclose(ras[:3], lps_to_ras(image.TransformIndexToPhysicalPoint(index)), atol=1e-9)
    assert_same_image(image_from_volume(node), image)
    assert node.GetDisplayNode() is not None


def test_ras_ordered_copy_lands_on_the_same_physical_positions(mrml_scene, ct):
    ras_copy = sitk.DICOMOrient(rotated(ct), "RAS")  # voxels re-ordered, physical positions kept
    node_a = volume_from_image(rotated(ct), name="LPS-ordered")
    node_b = volume_from_image(ras_copy, name="RAS-ordered")
    assert not np.array_equal(slicer.util.arrayFromVolume(node_a), slicer.util.arrayFromVolume(node_b))
    k, j, i = np.indices(slicer.util.arrayFromVolume(node_a).shape).reshape(3, -1)
    ras = ijk_to_ras(node_a) @ np.stack([i, j, k, np.ones_like(i)])
    ijk_b = np.rint(np.linalg.inv(ijk_to_ras(node_b)) @ ras).astype(int)
    values_b = slicer.util.arrayFromVolume(node_b)[ijk_b[2], ijk_b[1], ijk_b[0]]
    np.testing.assert_array_equal(values_b, slicer.util.arrayFromVolume(node_a)[k, j, i])
    # and back in SimpleITK, the RAS-ordered node is still the RAS-ordered image
    assert_same_image(image_from_volume(node_b), ras_copy)


def test_linear_parent_transform_is_composed_and_nonlinear_is_refused(mrml_scene, ct):
    node = volume_from_image(ct, name="CT")
    transform_node = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    to_parent = np.eye(4)
    to_parent[:3, :3] = np.array(rotated(ct).GetDirection()).reshape(3, 3)
    to_parent[:3, 3] = [10.0, -20.0, 5.0]
    transform_node.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(to_parent))
    node.SetAndObserveTransformNodeID(transform_node.GetID())
    image = image_from_volume(node)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(ct))
    np.testing.assert_allclose(ijk_to_ras_matrix(image), to_parent @ ijk_to_ras_matrix(ct), atol=1e-9)

    thin_plate = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for point in ([0, 0, 0], [100, 0, 0], [0, 100, 0], [0, 0, 100]):
        source.InsertNextPoint(point)
        target.InsertNextPoint([c + 5.0 * (n == 0) for n, c in enumerate(point)])
    thin_plate.SetSourceLandmarks(source)
    thin_plate.SetTargetLandmarks(target)
    warp = mrml_scene.AddNewNodeByClass("vtkMRMLTransformNode")
    warp.SetAndObserveTransformToParent(thin_plate)
    node.SetAndObserveTransformNodeID(warp.GetID())
    with pytest.raises(CTInputError, match="non-linear transform"):
        image_from_volume(node)


def test_image_from_volume_refuses_what_is_not_a_scalar_volume(mrml_scene):
    with pytest.raises(CTInputError, match="scalar volume"):
        image_from_volume(None)
    with pytest.raises(CTInputError, match="scalar volume"):
        image_from_volume(mrml_scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "RGB"))
    with pytest.raises(CTInputError, match="no voxels"):
        image_from_volume(mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty"))


def test_labelmap_becomes_named_lung_segments_and_comes_back_voxel_for_voxel(mrml_scene, ct, lung_labels):
    ct_node = volume_from_image(rotated(ct), name="CT")
    labels = rotated(lung_labels)
    nodes_before = mrml_scene.GetNumberOfNodes()
    segmentation_node = segmentation_from_labelmap(labels, LUNG_SEGMENTS, "CT lungs")
    assert segmentation_node.GetName() == "CT lungs"
    # only the segmentation, its display node and the subject hierarchy are left: no temporary nodes
    assert mrml_scene.GetNumberOfNodes() - nodes_before <= 3
    segmentation = segmentation_node.GetSegmentation()
    assert [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())] == [
        "Right lung",
        "Left lung",
    ]
    terminology = slicer.vtkSlicerTerminologiesModuleLogic
    for spec, modifier in zip(LUNG_SEGMENTS, ("Right", "Left"), strict=True):
        segment = segmentation.GetSegment(spec.segment_id)
        np.testing.assert_allclose(segment.GetColor(), spec.color)
        entry = slicer.vtkSlicerTerminologyEntry()
        assert terminology.DeserializeTerminologyEntry(segment.GetTerminology(), entry)
        assert entry.GetCategoryObject().GetCodeValue() == "123037004"
        assert (
            entry.GetTypeObject().GetCodingSchemeDesignator(),
            entry.GetTypeObject().GetCodeValue(),
            entry.GetTypeObject().GetCodeMeaning(),
        ) == ("SCT", "39607008", "Lung")
        assert entry.GetTypeModifierObject().GetCodeMeaning() == modifier
    back = labelmap_array_from_segmentation(segmentation_node, ct_node)
    expected = sitk.GetArrayViewFromImage(labels)
    for spec in LUNG_SEGMENTS:
        assert (back == spec.label).sum() == (expected == spec.label).sum() > 1000
    np.testing.assert_array_equal(back, expected)


def test_heat_map_volume_has_a_warm_colour_table_and_window_0_to_1(mrml_scene, ct):
    values = np.linspace(0.0, 1.0, ct.GetNumberOfPixels(), dtype=np.float32).reshape(
        sitk.GetArrayViewFromImage(ct).shape
    )
    heat = sitk.GetImageFromArray(values)
    heat.CopyInformation(ct)
    node = heat_map_volume(heat, name="CT heat map")
    display = node.GetDisplayNode()
    assert display.GetColorNodeID() in HEAT_COLOR_NODE_IDS
    assert mrml_scene.GetNodeByID(display.GetColorNodeID()) is not None
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)
    assert not display.GetAutoWindowLevel()
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), values)
    np.testing.assert_allclose(ijk_to_ras(node), ijk_to_ras_matrix(ct), atol=1e-12)


def test_removed_results_take_their_display_nodes_and_voxels_with_them(mrml_scene, ct, lung_labels):
    """What the batch script removes after each case leaves no node behind (a display node left behind
    keeps the volume's voxels alive)."""
    before = mrml_scene.GetNumberOfNodes()
    heat = heat_map_volume(sitk.Cast(ct, sitk.sitkFloat32), name="CT heat map")
    volume = volume_from_image(ct, name="CT")
    lungs = segmentation_from_labelmap(lung_labels, LUNG_SEGMENTS, "CT lungs", mrml_scene)
    image, heat_image = volume.GetImageData(), heat.GetImageData()
    assert heat.GetDisplayNode() is not None and lungs.GetDisplayNode() is not None
    references, heat_references = image.GetReferenceCount(), heat_image.GetReferenceCount()
    remove_nodes(heat, volume, lungs, None)
    assert mrml_scene.GetNumberOfNodes() == before
    assert image.GetReferenceCount() < references  # the display pipeline let go of the voxels
    assert heat_image.GetReferenceCount() <= heat_references


def test_result_rows_and_plot_chart(mrml_scene):
    table = append_result_row({"case": "P001", "probability": 0.93, "model": "decovnet"})
    append_result_row({"case": "normal001", "probability": 0.12, "seconds": 4.5}, table)
    assert table.GetNumberOfRows() == 2
    assert [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())] == [
        "case",
        "probability",
        "model",
        "seconds",
    ]
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(table, "probability"), [0.93, 0.12])
    seconds = slicer.util.arrayFromTableColumn(table, "seconds")
    assert math.isnan(seconds[0]) and seconds[1] == 4.5
    assert table.GetCellText(1, 0) == "normal001" and table.GetCellText(1, 2) == ""

    chart = plot_curve([0.0, 0.5, 1.0], [0.0, 0.8, 1.0], "ROC", x_title="1 - specificity", y_title="sensitivity")
    plot_curve([0.0, 1.0], [0.0, 1.0], "chance", chart_node=chart, color=(0.5, 0.5, 0.5))
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    series = chart.GetNthPlotSeriesNode(0)
    assert series.GetYColumnName() == "sensitivity"
    np.testing.assert_allclose(slicer.util.arrayFromTableColumn(series.GetTableNode(), "sensitivity"), [0.0, 0.8, 1.0])
    assert chart.GetXAxisTitle() == "1 - specificity"
