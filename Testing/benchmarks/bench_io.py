"""Load time and peak memory of ``covidct.io.load_ct`` on real CTs.

Prints a table; asserts nothing (timings are machine facts, not test results). Each case runs in
its own Python process, so one case's peak memory cannot hide another's. Columns:

* ``load s``: wall time of ``load_ct`` (reading, DICOM series handling, HU conversion, validation),
  the median over ``--repeat`` loads in that process;
* ``peak MB``: peak resident memory of the process (``ru_maxrss``);
* ``growth MB``: that peak minus the resident memory after the imports (≈ what loading needs).

Cases (files under ``../shared/data``, or the folder named by ``COVIDCT_SHARED_DATA``):

* ``P001-nifti``: COVID-CT-MD P001, 512×512×148 int16, gzip NIfTI (47 MB on disk, 78 MB in memory);
* ``cip-dicom``: the CIP 79-file DICOM series (64×64×79);
* ``P001-dicom``: P001 written as a 148-file DICOM series into a temporary folder first (not timed),
  to measure the DICOM path at clinical size.

Usage (from the repository root)::

    python Testing/benchmarks/bench_io.py
    python Testing/benchmarks/bench_io.py --cases P001-nifti --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("COVIDCT_SHARED_DATA", REPO.parent / "shared" / "data"))
P001 = DATA / "covid-ct-md-sample" / "P001.nii.gz"
CASES = {
    "P001-nifti": lambda tmp: P001,
    "cip-dicom": lambda tmp: DATA / "cip-copdgene-10002K-ct64" / "ct-64Dicom",
    "P001-dicom": lambda tmp: write_dicom_series(P001, tmp / "P001-dicom"),
}


def write_dicom_series(source: Path, folder: Path) -> Path:
    """Write a NIfTI CT as one DICOM CT slice per file (int16, slope 1, intercept 0) into ``folder``."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(source))
    folder.mkdir(parents=True, exist_ok=True)
    direction = image.GetDirection()
    orientation = "\\".join(
        f"{v:.6f}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7])
    )
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.900"
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0020|000e": series_uid,
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0037": orientation,
            "0020|0032": "\\".join(f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0008|103e": "benchmark copy of P001",
        }
        for key, value in tags.items():
            plane.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"IMG{k + 1:04d}.dcm"))
        writer.Execute(plane)
    return folder


def measure(path: str, repeat: int) -> dict:
    """Run in a child process: load ``path`` ``repeat`` times; time and memory figures."""
    from covidct.io import load_ct

    base = _rss_mb()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        image = load_ct(path)
        times.append(time.perf_counter() - start)
        size, pixel_type = list(image.GetSize()), image.GetPixelIDTypeAsString()
        del image  # so that the next load does not count this one's memory
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    return {
        "load_s": statistics.median(times),
        "peak_mb": peak,
        "growth_mb": peak - base,
        "size": size,
        "pixel_type": pixel_type,
    }


def _rss_mb() -> float:
    """Resident memory now (Linux), else the peak so far."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--repeat", type=int, default=3, help="loads per case (median time reported)")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    if not P001.exists():
        sys.exit(f"real CT data not found under {DATA}")
    print(f"{'case':<12} {'size':<14} {'load s':>7} {'peak MB':>8} {'growth MB':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            path = CASES[name](Path(tmp))
            result = subprocess.run(
                [sys.executable, __file__, "--child", str(path), str(args.repeat)],
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            size = "×".join(map(str, figures["size"]))
            print(
                f"{name:<12} {size:<14} {figures['load_s']:>7.2f} {figures['peak_mb']:>8.0f} "
                f"{figures['growth_mb']:>10.0f}"
            )


if __name__ == "__main__":
    main()
