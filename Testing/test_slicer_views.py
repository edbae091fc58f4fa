"""What Slicer users see, as pixels: the CovidCTDetect and CovidCTLungSegmentation logics run on the real
CIP CT in a real MRML scene, then Slicer's own slice and 3D rendering (``slicer-core``, headless,
:mod:`slicer_views`) draws the result with the modules' display settings.

Each screen pixel of a slice view is traced back to the CT voxel under it (the slice node's XY → RAS
matrix, the volume's RAS → IJK matrix), so the assertions compare what is drawn with the data:

* outside the heat (below the display threshold) the view is the CT alone, pixel for pixel;
* heat colours appear where the heat is above the display threshold (and only there);
* the lungs are outlined, not filled, over a heat map; the right lung's outline is on the screen's
  left in the axial and coronal views (radiological convention);
* the 3D view shows the lungs' closed surfaces;
* a negative result creates no suspicious-region segment (a positive one does where the heat marks a
  region).

Models are random-weight catalogue models (``models_dir``): the display, not the probability, is tested.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import TEST_DATA
from scipy import ndimage as ndi

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML without the Slicer application) is not installed")

from slicer_views import HeadlessSlicer  # noqa: E402

from CovidCTDetectLib.detect_logic import DetectionLogic  # noqa: E402
from CovidCTDetectLib.heatmaps import DISPLAY_THRESHOLD  # noqa: E402
from CovidCTDetectLib.lung_segmentation_logic import SEE_THROUGH_OPACITY_3D, LungSegmentationLogic  # noqa: E402
from CovidCTDetectLib.segmentations import LUNG_SEGMENTS, labelmap_array_from_segmentation  # noqa: E402
from CovidCTDetectLib.volumes import volume_from_image  # noqa: E402

CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
SIZE = (240, 240)
pytestmark = pytest.mark.usefixtures("slicer_temporary")


def voxels_under_pixels(views: HeadlessSlicer, view: str, volume_node) -> np.ndarray:
    """``(rows, columns, 3)`` int IJK index of ``volume_node`` under each screen pixel of slice view
    ``view`` (row 0 at the top), -1 outside the volume."""
    import vtk

    node = views.slice_views[view]["node"]
    xy_to_ras = slicer.util.arrayFromVTKMatrix(node.GetXYToRAS())
    ras_to_ijk = vtk.vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(ras_to_ijk)
    ras_to_ijk = slicer.util.arrayFromVTKMatrix(ras_to_ijk)
    width, height = SIZE
    xs, ys = np.meshgrid(np.arange(width), np.arange(height)[::-1])  # screen row 0 is the top: y = height-1
    points = np.stack([xs, ys, np.zeros_like(xs), np.ones_like(xs)], axis=-1).reshape(-1, 4).T
    ijk = np.rint((ras_to_ijk @ xy_to_ras @ points)[:3].T).astype(int).reshape(height, width, 3)
    dims = np.array(volume_node.GetImageData().GetDimensions())
    inside = ((ijk >= 0) & (ijk < dims)).all(axis=-1)
    ijk[~inside] = -1
    return ijk


def sample(array_kji: np.ndarray, ijk: np.ndarray, outside=0) -> np.ndarray:
    """Values of a ``(k, j, i)`` array at the pixels' IJK (``outside`` where the index is -1)."""
    valid = (ijk >= 0).all(axis=-1)
    out = np.full(ijk.shape[:2], outside, dtype=array_kji.dtype)
    k, j, i = ijk[valid][:, 2], ijk[valid][:, 1], ijk[valid][:, 0]
    out[valid] = array_kji[k, j, i]
    return out


def colour_pixels(pixels: np.ndarray, rgb, tolerance: int = 40) -> np.ndarray:
    """Bool mask of pixels within ``tolerance`` (per channel) of a segment colour ``rgb`` (0..1)."""
    target = np.array(rgb) * 255.0
    return (np.abs(pixels.astype(float) - target) <= tolerance).all(axis=-1)


@pytest.fixture(scope="module")
def detected(models_dir, slicer_temporary):
    """A positive detection (threshold 0.001) on the CIP CT shown by the module logic, and the views."""
    with HeadlessSlicer(SIZE) as views:
        volume = volume_from_image(sitk.ReadImage(str(CT)), name="CIP CT", scene=views.scene)
        slicer.util.setSliceViewerLayers(background=volume, fit=False)
        views.fit()
        before = {view: views.render_slice(view) for view in ("Red", "Green")}
        result = DetectionLogic().detect(
            volume, model="random-decovnet", lungsMethod="threshold", device="cpu", threshold=0.001, show=True
        )
        after = {view: views.render_slice(view) for view in ("Red", "Green")}
        ijk = {view: voxels_under_pixels(views, view, volume) for view in ("Red", "Green")}
        heat = slicer.util.arrayFromVolume(result.heatMapNode).copy()
        lungs = labelmap_array_from_segmentation(result.lungSegmentationNode, volume, LUNG_SEGMENTS)
        yield {
            "views": views,
            "volume": volume,
            "result": result,
            "before": before,
            "after": after,
            "ijk": ijk,
            "heat": heat,
            "three_d": views.render_3d(),
            "right_lung": lungs == 1,
        }


@pytest.mark.parametrize("view", ["Red", "Green"])
def test_the_ct_outside_the_heat_is_unchanged_and_heat_is_coloured(detected, view):
    before, after, ijk = detected["before"][view], detected["after"][view], detected["ijk"][view]
    heat = sample(detected["heat"], ijk, outside=0.0)
    changed = np.abs(after.astype(int) - before.astype(int)).max(axis=-1) > 2
    outline_colours = np.zeros(changed.shape, bool)
    for spec in LUNG_SEGMENTS:
        outline_colours |= colour_pixels(after, spec.color)
    # the heat layer is drawn interpolated: a pixel is cold when no voxel under its neighbours is warm
    cold = ndi.maximum_filter(heat, size=5) < DISPLAY_THRESHOLD * 0.5
    # away from the heat, only the lungs' outline may differ from the CT alone
    assert not (changed & cold & ~outline_colours).any()
    assert cold.mean() > 0.5  # most of the view is CT alone (no dimming of the whole CT)
    hot = heat > 0.3
    assert hot.any(), "the random model gave no heat above 0.3 in this view"
    assert changed[hot].mean() > 0.95  # heat above the threshold is drawn in colour


@pytest.mark.parametrize("view", ["Red", "Green"])
def test_lungs_are_outlined_with_the_right_lung_on_the_screens_left(detected, view):
    after, ijk = detected["after"][view], detected["ijk"][view]
    right = colour_pixels(after, LUNG_SEGMENTS[0].color, tolerance=30)
    left = colour_pixels(after, LUNG_SEGMENTS[1].color, tolerance=30)
    assert right.sum() > 50 and left.sum() > 50
    assert np.nonzero(right)[1].mean() < after.shape[1] / 2 < np.nonzero(left)[1].mean()
    # outline only over a heat map: the right lung's pixels are a thin ring, not its area
    inside_right = sample(detected["right_lung"], ijk, outside=0) > 0
    assert right.sum() < 0.5 * inside_right.sum()


def test_3d_view_shows_the_lung_surfaces(detected):
    pixels = detected["three_d"]
    assert colour_pixels(pixels, LUNG_SEGMENTS[0].color, tolerance=60).sum() > 200
    assert colour_pixels(pixels, LUNG_SEGMENTS[1].color, tolerance=60).sum() > 200


def test_suspicious_region_segment_only_for_a_positive_result(detected, models_dir):
    positive = detected["result"]
    assert positive.label == "positive"
    assert (positive.suspiciousSegmentationNode is not None) == (positive.suspiciousRegions["regions"] > 0)
    # the lungs' 3D surfaces let a suspicious region inside them show
    lung_opacity = positive.lungSegmentationNode.GetDisplayNode().GetOpacity3D()
    assert lung_opacity == (SEE_THROUGH_OPACITY_3D if positive.suspiciousSegmentationNode is not None else 1.0)
    with HeadlessSlicer(SIZE) as views:
        volume = volume_from_image(sitk.ReadImage(str(CT)), name="CIP CT", scene=views.scene)
        result = DetectionLogic().detect(
            volume, model="random-decovnet", lungsMethod="threshold", device="cpu", threshold=0.999, show=True
        )
        assert result.label == "negative" and result.suspiciousSegmentationNode is None
        assert result.suspiciousRegions["regions"] == 0 and result.heatMapNode is not None
        names = [
            views.scene.GetNthNodeByClass(i, "vtkMRMLSegmentationNode").GetName()
            for i in range(views.scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))
        ]
        assert not any("suspicious" in name for name in names)


def test_lung_segmentation_module_shows_filled_lungs_right_on_the_left():
    with HeadlessSlicer(SIZE) as views:
        volume = volume_from_image(sitk.ReadImage(str(CT)), name="CIP CT", scene=views.scene)
        slicer.util.setSliceViewerLayers(background=volume, fit=False)
        views.fit()
        LungSegmentationLogic().segmentLungs(volume, method="threshold", device="cpu")
        pixels = views.render_slice("Red")
        right = colour_pixels(pixels, LUNG_SEGMENTS[0].color, tolerance=60)
        left = colour_pixels(pixels, LUNG_SEGMENTS[1].color, tolerance=60)
        assert right.sum() > 500 and left.sum() > 500  # filled areas, not outlines
        assert np.nonzero(right)[1].mean() < np.nonzero(left)[1].mean()


def test_screenshot_script_writes_the_five_views(models_dir, tmp_path):
    """``Testing/slicer_screenshots.py`` (the README's screenshots): five PNGs of the module's display;
    the axial view with overlays differs from the CT alone only where the heat or the outlines are."""
    from slicer_screenshots import screenshots

    from covidct.io import read_image

    figures = screenshots(CT, tmp_path, model="random-decovnet", size=SIZE)
    assert sorted(figures["paths"]) == ["3d", "axial", "axial-ct-only", "coronal", "sagittal"]
    images = {name: sitk.GetArrayFromImage(read_image(path)) for name, path in figures["paths"].items()}
    for name, pixels in images.items():
        assert pixels.shape[:2] == (SIZE[1], SIZE[0]), name
        assert pixels.std() > 10, f"{name} is blank"
    changed = np.abs(images["axial"].astype(int) - images["axial-ct-only"].astype(int)).max(axis=-1) > 2
    assert 0.001 < changed.mean() < 0.5
