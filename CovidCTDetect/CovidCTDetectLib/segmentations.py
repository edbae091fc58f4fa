"""Labelmaps ⇄ segmentation nodes with named segments, colours and standard terminology.

Terminology entries use Slicer's serialised format (``vtkSlicerTerminologiesModuleLogic``):
``context~category~type~typeModifier~anatomicContext~region~regionModifier``, each code written as
``codingScheme^codeValue^codeMeaning``. The lung codes are those of Slicer's "3D Slicer General
Anatomy list": category SCT 123037004 "Anatomical Structure", type SCT 39607008 "Lung", modifier
SCT 24028007 "Right" / SCT 7771000 "Left". The right lung has that list's recommended lung colour
(197, 165, 145); the left lung a blue-grey so the two stay distinguishable side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from .volumes import scene_or_default, volume_from_image

_LUNG_TERMINOLOGY = (
    "Segmentation category and type - 3D Slicer General Anatomy list"
    "~SCT^123037004^Anatomical Structure~SCT^39607008^Lung~SCT^{modifier}"
    "~Anatomic codes - DICOM master list~^^~^^"
)


@dataclass(frozen=True)
class SegmentSpec:
    """One label of a labelmap as a segment: label value, segment ID and name, RGB colour (0..1), terminology."""

    label: int
    segment_id: str
    name: str
    color: tuple[float, float, float]
    terminology: str


#: The lung labelmap of ``covidct segment`` / ``covidct.lungs.segment_lungs``: 1 = right lung, 2 = left lung.
LUNG_SEGMENTS = (
    SegmentSpec(
        1,
        "right_lung",
        "Right lung",
        (197 / 255, 165 / 255, 145 / 255),
        _LUNG_TERMINOLOGY.format(modifier="24028007^Right"),
    ),
    SegmentSpec(
        2,
        "left_lung",
        "Left lung",
        (128 / 255, 174 / 255, 208 / 255),
        _LUNG_TERMINOLOGY.format(modifier="7771000^Left"),
    ),
)


def ensure_segmentation_converters() -> None:
    """Register the binary-labelmap ⇄ closed-surface conversion rules if none are registered.

    The Slicer application registers them at start-up; the ``slicer-core`` wheel (Slicer's MRML
    without the application) does not, and segmentations cannot hold labelmaps without them.
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if factory.GetConverterRules():
        return
    factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
    factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())


def segmentation_from_labelmap(labelmap: sitk.Image, segments=LUNG_SEGMENTS, name: str = "", scene=None):
    """A new segmentation node holding one segment per :class:`SegmentSpec` of ``segments``.

    ``labelmap`` is an integer image (any geometry); voxels equal to ``spec.label`` form the segment;
    ``segments`` must have labels 1, 2, ... n in this order.
    Every listed segment is created, empty when its label is absent. The segmentation's reference
    geometry is the labelmap's grid, so exporting it back on that grid reproduces the labelmap.
    """
    if [spec.label for spec in segments] != list(range(1, len(segments) + 1)):
        raise ValueError("segments must have labels 1, 2, ... n in order")
    ensure_segmentation_converters()
    scene = scene_or_default(scene)
    labelmap_node = volume_from_image(labelmap, name="__covidct_labelmap__", labelmap=True, display=False, scene=scene)
    try:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", scene.GenerateUniqueName(name))
        segmentation_node.CreateDefaultDisplayNodes()
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(labelmap_node)
        segmentation = segmentation_node.GetSegmentation()
        segment_ids = vtk.vtkStringArray()  # entry n-1 receives the voxels of label value n
        for spec in segments:
            segmentation.AddEmptySegment(spec.segment_id, spec.name, list(spec.color))
            segment = segmentation.GetSegment(spec.segment_id)
            segment.SetTag(segment.GetTerminologyEntryTagName(), spec.terminology)
            segment_ids.InsertNextValue(spec.segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
            labelmap_node, segmentation_node, segment_ids
        ):
            raise RuntimeError("Slicer could not import the labelmap into the segmentation node")
    finally:
        remove_volume_node(labelmap_node)
    return segmentation_node


def labelmap_array_from_segmentation(segmentation_node, reference_volume_node, segments=LUNG_SEGMENTS) -> np.ndarray:
    """Export ``segments`` back to a labelmap array ``(k, j, i)`` on ``reference_volume_node``'s grid.

    Voxels of ``segments[n-1]`` get label value n (as in :func:`segmentation_from_labelmap`).
    """
    ensure_segmentation_converters()
    scene = segmentation_node.GetScene()
    labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__covidct_export__")
    try:
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node,
            [spec.segment_id for spec in segments],
            labelmap_node,
            reference_volume_node,
            slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
        ):
            raise RuntimeError("Slicer could not export the segments to a labelmap")
        return slicer.util.arrayFromVolume(labelmap_node).copy()
    finally:
        remove_volume_node(labelmap_node)


def remove_volume_node(volume_node) -> None:
    """Remove a temporary volume node with its display node and that display's own colour table: a
    labelmap export creates one per export; the scene's default colour nodes are singletons and stay."""
    scene = volume_node.GetScene()
    display = volume_node.GetDisplayNode()
    if display is not None:
        color = display.GetColorNode()
        if color is not None and color.GetSingletonTag() is None:
            scene.RemoveNode(color)
        scene.RemoveNode(display)
    scene.RemoveNode(volume_node)
