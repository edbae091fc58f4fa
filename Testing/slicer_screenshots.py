"""Screenshots of what the CovidCTDetect module shows, rendered by Slicer's own views (headless, ``slicer-core``).

Runs detection on a CT with the module's logic and the default model (or ``--model``), exactly as the
Apply button does, then draws Slicer's slice and 3D views with the module's display settings (heat map
as the thresholded foreground over the CT, lungs outlined, suspicious region, closed surfaces) and
writes ``axial.png``, ``coronal.png``, ``sagittal.png``, ``3d.png`` and ``axial-ct-only.png`` (the
same axial view without overlays). The slice views go through the hottest heat-map voxel. The README's
and the Extensions Index's screenshots are made with it from P001.

Usage (from the repository root)::

    python Testing/slicer_screenshots.py --ct ../shared/data/covid-ct-md-sample/P001.nii.gz --out docs/screenshots
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "CovidCTDetect"))

from slicer_views import HeadlessSlicer, save_png  # noqa: E402


def screenshots(ct: Path, out: Path, model=None, size=(600, 600), device: str = "cpu") -> dict:
    """Write the five screenshots of ``ct`` into ``out``; returns ``{name: path}`` and the result."""
    import numpy as np
    import slicer
    import vtk

    from covidct.io import load_ct
    from CovidCTDetectLib.detect_logic import DetectionLogic
    from CovidCTDetectLib.volumes import volume_from_image

    # the detection's files (report, montage, volumes) go to a folder removed afterwards, not to the PNGs
    with HeadlessSlicer(size) as views, tempfile.TemporaryDirectory(prefix="covidct-screenshots-") as results:
        volume = volume_from_image(load_ct(ct), name=Path(ct).name.split(".")[0], scene=views.scene)
        slicer.util.setSliceViewerLayers(background=volume, fit=False)
        views.fit()
        result = DetectionLogic().detect(volume, model=model, device=device, show=True, outputFolder=results)
        heat = slicer.util.arrayFromVolume(result.heatMapNode)
        k, j, i = np.unravel_index(int(np.argmax(heat)), heat.shape)
        ijk_to_ras = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijk_to_ras)
        ras = slicer.util.arrayFromVTKMatrix(ijk_to_ras) @ np.array([i, j, k, 1.0])
        for view, axis in (("Red", 2), ("Green", 1), ("Yellow", 0)):
            views.slice_offset(view, float(ras[axis]))
        paths = {
            "axial": save_png(views.render_slice("Red"), out / "axial.png"),
            "coronal": save_png(views.render_slice("Green"), out / "coronal.png"),
            "sagittal": save_png(views.render_slice("Yellow"), out / "sagittal.png"),
            "3d": save_png(views.render_3d(), out / "3d.png"),
        }
        for node in (result.heatMapNode, result.lungSegmentationNode, result.suspiciousSegmentationNode):
            if node is not None:
                node.GetDisplayNode().SetVisibility(False)
        slicer.util.setSliceViewerLayers(background=volume, foreground=None, fit=False)
        paths["axial-ct-only"] = save_png(views.render_slice("Red"), out / "axial-ct-only.png")
        return {"paths": paths, "probability": result.probability, "label": result.label, "model": result.model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", required=True, type=Path, help="CT file or DICOM folder")
    parser.add_argument("--out", required=True, type=Path, help="folder for the PNGs")
    parser.add_argument("--model", help="classifier (default: the module's default)")
    parser.add_argument("--size", type=int, default=600, help="pixels per view side (default 600)")
    args = parser.parse_args()
    figures = screenshots(args.ct, args.out, args.model, (args.size, args.size))
    print(f"{args.ct.name}: P(COVID-19) = {figures['probability']:.3f} ({figures['label']}, {figures['model']})")
    for name, path in figures["paths"].items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
