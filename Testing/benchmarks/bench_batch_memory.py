"""Memory of the Slicer batch over a folder: the example script's loop on real full-size CTs, in one scene.

``CovidCTDetect/Resources/Examples/batch_detect.py`` loads each CT as a volume node, runs the module's
blocking detection logic and removes the case's nodes (volume, heat map, segmentations) once its outputs
are on disk. This runs the same loop on a real MRML scene (``slicer-core``; the volume is loaded with
SimpleITK as Slicer's loader would) and prints, after each CT, the process's resident memory and the
number of nodes left: flat memory means nothing accumulates. The detections themselves run in a
background ``covidct`` process, as in Slicer; the figures are the Slicer process's.

Usage (from the repository root)::

    python Testing/benchmarks/bench_batch_memory.py            # P001, P002, normal001, POPI, A0001-B
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / "CovidCTDetect"))

from process_memory import rss_mb  # noqa: E402
from real_cts import REAL_BY_NAME  # noqa: E402

DEFAULT_CASES = ("P001", "P002", "normal001", "POPI", "A0001-B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=sorted(REAL_BY_NAME))
    parser.add_argument("--model", default=None, help="classifier (default: the module's)")
    args = parser.parse_args()

    import SimpleITK as sitk
    import slicer

    from CovidCTDetectLib.detect_logic import DetectionLogic
    from CovidCTDetectLib.volumes import remove_nodes, volume_from_image

    scene = slicer.vtkMRMLScene()
    color_logic = slicer.vtkMRMLColorLogic()
    color_logic.SetMRMLScene(scene)
    slicer.mrmlScene = scene
    logic = DetectionLogic()
    print(f"{'case':<10} {'voxels (M)':>10} {'P':>6} {'seconds':>8} {'RSS MB':>7} {'nodes':>6}")
    print(f"{'(start)':<10} {'':>10} {'':>6} {'':>8} {rss_mb():>7.0f} {scene.GetNumberOfNodes():>6}")
    with tempfile.TemporaryDirectory() as out:
        for name in args.cases:
            image = sitk.ReadImage(str(REAL_BY_NAME[name].file))
            voxels = image.GetNumberOfPixels() / 1e6
            volume = volume_from_image(image, name=name, scene=scene)
            start = time.perf_counter()
            result = logic.detect(volume, args.model, device="cpu", outputFolder=out, show=False)
            seconds, probability = time.perf_counter() - start, result.probability
            remove_nodes(volume, result.heatMapNode, result.lungSegmentationNode, result.suspiciousSegmentationNode)
            del image, volume, result
            print(
                f"{name:<10} {voxels:>10.1f} {probability:>6.3f} {seconds:>8.1f} {rss_mb():>7.0f} "
                f"{scene.GetNumberOfNodes():>6}"
            )


if __name__ == "__main__":
    main()
