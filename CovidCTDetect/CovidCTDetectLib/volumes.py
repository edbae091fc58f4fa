"""Volume nodes ⇄ SimpleITK images, exactly.

A Slicer volume node holds voxels as a VTK image indexed ``(k, j, i)`` by ``slicer.util.arrayFromVolume``
and its geometry as an ``IJKToRAS`` 4×4 matrix (RAS millimetres). A SimpleITK image holds the same
voxels indexed ``(z, y, x)`` = ``(k, j, i)`` and its geometry as origin, spacing and direction in LPS
millimetres. The conversion copies voxels unchanged and converts the geometry with
:func:`covidct.geometry.ijk_to_ras_matrix` / :func:`covidct.geometry.geometry_from_ijk_to_ras`, so a
round trip is exact in voxels and, to float round-off, in geometry.

A volume under a linear parent transform is converted in world coordinates (the transform is
composed into the geometry, as "harden transform" would, without changing the scene); a volume
under a non-linear transform is refused with one sentence.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from covidct.errors import CTInputError
from covidct.geometry import ijk_to_ras_matrix, set_geometry_from_ijk_to_ras

#: volume node classes holding one scalar per voxel (vector and tensor volumes derive from the first)
SCALAR_VOLUME_CLASSES = ("vtkMRMLScalarVolumeNode", "vtkMRMLLabelMapVolumeNode")


def scene_or_default(scene=None):
    """``scene`` if given, else the application's ``slicer.mrmlScene``."""
    return scene if scene is not None else slicer.mrmlScene


def ijk_to_world_matrix(volume_node) -> np.ndarray:
    """4×4 matrix from voxel index ``(i, j, k, 1)`` to world RAS millimetres, parent transforms included.

    Raises :class:`CTInputError` when a parent transform is not linear or would shear the voxel grid.
    """
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    matrix = slicer.util.arrayFromVTKMatrix(ijk_to_ras)
    transform_node = volume_node.GetParentTransformNode()
    if transform_node is None:
        return matrix
    name = volume_node.GetName()
    if not transform_node.IsTransformToWorldLinear():
        raise CTInputError(
            f"Volume '{name}' is under a non-linear transform; harden it (Transforms module, "
            "'Harden transform') and try again."
        )
    to_world = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(to_world)
    matrix = slicer.util.arrayFromVTKMatrix(to_world) @ matrix
    axes = matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0)
    if not np.allclose(axes.T @ axes, np.eye(3), atol=1e-6):
        raise CTInputError(
            f"Volume '{name}' is under a transform that shears its voxel grid; resample it "
            "(Resample Scalar/Vector/DWI Volume module) and try again."
        )
    return matrix


def image_from_volume(volume_node) -> sitk.Image:
    """SimpleITK image (LPS geometry, world coordinates) holding a copy of a scalar volume node's voxels.

    The pixel type is the node's (e.g. int16 CT stays int16). Raises :class:`CTInputError` for a
    missing node, a node without voxels, or a vector/tensor volume.
    """
    if volume_node is None or volume_node.GetClassName() not in SCALAR_VOLUME_CLASSES:
        raise CTInputError("Select a scalar volume (a CT) as input.")
    if volume_node.GetImageData() is None:
        raise CTInputError(f"Volume '{volume_node.GetName()}' has no voxels; load the CT again.")
    image = sitk.GetImageFromArray(slicer.util.arrayFromVolume(volume_node))  # copies (k, j, i) voxels
    return set_geometry_from_ijk_to_ras(image, ijk_to_world_matrix(volume_node))


def volume_from_image(
    image: sitk.Image, volume_node=None, name: str = "", labelmap: bool = False, display: bool = True, scene=None
):
    """Put a scalar SimpleITK ``image`` (voxels and geometry) into a volume node and return the node.

    ``volume_node``: the node to update; when ``None`` a new ``vtkMRMLScalarVolumeNode`` (or
    ``vtkMRMLLabelMapVolumeNode`` with ``labelmap=True``) named ``name`` is added to ``scene``
    (default ``slicer.mrmlScene``). With ``display`` (the default), default display nodes are created
    if the node has none.
    """
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetDimension() != 3:
        raise ValueError("volume_from_image expects a 3D scalar image")
    if volume_node is None:
        class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
        volume_node = scene_or_default(scene).AddNewNodeByClass(class_name, name)
    volume_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_matrix(image)))
    slicer.util.updateVolumeFromArray(volume_node, sitk.GetArrayViewFromImage(image))
    if display and volume_node.GetDisplayNode() is None:
        volume_node.CreateDefaultDisplayNodes()
    return volume_node


def remove_nodes(*nodes) -> None:
    """Remove each node (None is skipped) from its scene together with its display and storage nodes.

    A display node left behind keeps its volume's image data alive through its input connection, so
    removing the data node alone does not free the voxels (about 0.2 GB per full-size CT and heat map).
    """
    for node in nodes:
        if node is None or node.GetScene() is None:
            continue
        scene = node.GetScene()
        attached = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
        attached += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
        scene.RemoveNode(node)
        for other in attached:
            if other is not None and other.GetScene() is scene:
                scene.RemoveNode(other)
