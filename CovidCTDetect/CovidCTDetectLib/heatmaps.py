"""Heat maps (values 0..1 on the CT grid) as scalar volume nodes shown over the CT.

The colour table is the first of :data:`HEAT_COLOR_NODE_IDS` present in the scene: "Inferno" is
loaded from file by the Slicer application; "PET-Heat" is one of MRML's built-in procedural colour
nodes, present in any scene whose default colour nodes were added (``vtkMRMLColorLogic``).

Both tables start with opaque near-black, and the heat is 0 everywhere outside the lungs, so the heat
map's display is thresholded at :data:`DISPLAY_THRESHOLD`: voxels below it are transparent and the CT
shows through unchanged; only heat above it is coloured. Heat-map nodes carry the attribute
:data:`HEAT_MAP_ATTRIBUTE` so that CT selectors can leave them out.
"""

from __future__ import annotations

import SimpleITK as sitk
import slicer

from .volumes import volume_from_image

#: Warm colour tables for heat maps, in order of preference.
HEAT_COLOR_NODE_IDS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLPETProceduralColorNodePET-Heat")
#: heat below this (0..1) is not drawn: the CT under it is shown as it is
DISPLAY_THRESHOLD = 0.1
#: node attribute marking a CovidCT heat map (value "1")
HEAT_MAP_ATTRIBUTE = "CovidCT.HeatMap"


def heat_color_node_id(scene) -> str:
    """ID of the heat-map colour node to use in ``scene``; raises ``RuntimeError`` if none is there."""
    for node_id in HEAT_COLOR_NODE_IDS:
        if scene.GetNodeByID(node_id) is not None:
            return node_id
    raise RuntimeError("the scene has none of Slicer's default colour tables (" + ", ".join(HEAT_COLOR_NODE_IDS) + ")")


def heat_map_volume(heat_map: sitk.Image, volume_node=None, name: str = "", scene=None):
    """Put ``heat_map`` (float, 0..1) into a scalar volume node with a warm colour table, window 0..1 and
    the display threshold :data:`DISPLAY_THRESHOLD` (nothing drawn below it).

    ``volume_node`` is updated when given; otherwise a new node named ``name`` is added to ``scene``.
    """
    volume_node = volume_from_image(
        sitk.Cast(heat_map, sitk.sitkFloat32), volume_node, name=name, scene=scene, display=False
    )
    display = volume_node.GetDisplayNode()
    if display is None:  # made here, not by CreateDefaultDisplayNodes: its automatic window/level would
        # first compute a histogram of the whole heat map (0.3 s for P001) only to be replaced by 0..1
        display = volume_node.GetScene().AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
        display.AutoWindowLevelOff()
        volume_node.SetAndObserveDisplayNodeID(display.GetID())
    display.SetAndObserveColorNodeID(heat_color_node_id(volume_node.GetScene()))
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.AutoThresholdOff()
    display.SetThreshold(DISPLAY_THRESHOLD, 1.0)
    display.ApplyThresholdOn()
    volume_node.SetAttribute(HEAT_MAP_ATTRIBUTE, "1")
    return volume_node


def show_heat_map(ct_volume_node, heat_volume_node, opacity: float = 0.4) -> None:
    """Show the CT as background and the heat map as foreground (``opacity`` 0..1) in every slice view."""
    slicer.util.setSliceViewerLayers(background=ct_volume_node, foreground=heat_volume_node, foregroundOpacity=opacity)
