"""Lung segmentation time per stage and peak memory on a clinical-size CT (COVID-CT-MD P001).

Prints a table; asserts nothing (timings are machine facts). Each configuration runs in its own
Python process, so that one run's peak memory cannot hide another's. Stages:

* ``load``: :func:`covidct.io.load_ct` (P001: 512×512×148 int16 gzip NIfTI);
* ``canonical``: :func:`covidct.geometry.to_canonical` (a no-op for an LPS file);
* threshold method: ``threshold`` (shrink to the ~1.5 mm working grid, air, outside air, airway
  tree), ``airways`` (trachea and main bronchi), then the finishing steps ``components`` (two largest),
  ``sides`` (left/right split), ``holes`` (slice-wise hole filling, twice) and ``pleura`` (costal
  lesions put back), ``expand`` (labels back on the full grid);
* UNet method: ``preprocess`` (window, air padding, slice resize), ``network`` (forward passes),
  ``map back`` (logit margin onto the working grid), ``trachea`` (trachea and main bronchi found in the
  CT and taken out), ``components``, ``sides``, ``holes``, ``rims`` (the outer rims of the lesions the
  mask holds), ``expand``;
* ``back``: :func:`covidct.geometry.from_canonical` and the SimpleITK labelmap;
* ``total``: everything after ``load``; ``peak MB``: the process's peak resident memory (``VmHWM``),
  ``traced MB``: the peak of Python/numpy allocations during segmentation (``tracemalloc``, second run).

The UNet timed is the bundled ``unet-lungs`` (its card's slice size). With ``--sizes``/``--base``, or
without bundled weights, a **randomly initialised** ``UNet2D`` of that size is timed instead (the time
of a forward pass does not depend on the weights' values; the post-processing then sees a random
mask, so its times are only indicative) — the printout says so.

Usage (from the repository root)::

    python Testing/benchmarks/bench_lungs.py                        # threshold and the bundled UNet
    python Testing/benchmarks/bench_lungs.py --methods threshold --repeat 3
    python Testing/benchmarks/bench_lungs.py --methods unet --sizes 368 256 --base 16 --device cuda
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from process_memory import child_or_environment, peak_rss_mb

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("COVIDCT_SHARED_DATA", REPO.parent / "shared" / "data"))
P001 = DATA / "covid-ct-md-sample" / "P001.nii.gz"
STAGES = {
    "threshold": (
        "load",
        "canonical",
        "threshold",
        "airways",
        "components",
        "sides",
        "holes",
        "pleura",
        "expand",
        "back",
    ),
    "unet": (
        "load",
        "canonical",
        "preprocess",
        "network",
        "map back",
        "trachea",
        "components",
        "sides",
        "holes",
        "rims",
        "expand",
        "back",
    ),
}


class Clock:
    """Accumulates wall time per stage name; ``wrap`` times a module-level function under a name."""

    def __init__(self):
        self.times: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.times[name] = self.times.get(name, 0.0) + seconds

    def wrap(self, module, attribute: str, name: str) -> None:
        function = getattr(module, attribute)

        @functools.wraps(function)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start)

        setattr(module, attribute, timed)


def measure(ct: str, method: str, size: int, base: int, device: str, repeat: int) -> dict:
    """Run in a child process: segment ``repeat`` times (timed), then once more under tracemalloc."""
    import torch

    from covidct import geometry
    from covidct.io import load_ct
    from covidct.lungs import grid, postprocess, threshold, unet_infer
    from covidct.models.unet import UNet2D
    from covidct.preprocess import unet as unet_preprocess

    clock = Clock()
    clock.wrap(postprocess, "largest_components", "components")
    clock.wrap(postprocess, "label_sides", "sides")
    clock.wrap(postprocess, "fill_lung_holes", "holes")
    clock.wrap(postprocess, "fill_pleural_lesions", "pleura")
    clock.wrap(postprocess, "extend_lesion_rims", "rims")
    clock.wrap(grid, "expand", "expand")
    clock.wrap(threshold, "find_airways", "airways")
    clock.wrap(unet_preprocess, "unet_input", "preprocess")
    clock.wrap(unet_infer, "lung_margin", "network")
    clock.wrap(unet_preprocess, "to_working_grid", "map back")
    clock.wrap(unet_infer, "extrapulmonary_airways", "trachea")
    model = None
    if method == "unet" and base:
        torch.manual_seed(0)
        model = UNet2D(base=base).eval().to(torch.device(device))
    elif method == "unet":
        from covidct.models import load_model

        model, card = load_model(unet_infer.MODEL_NAME, device)
        size = unet_preprocess.unet_size(card.input)[0]

    def segment(image):
        start = time.perf_counter()
        canonical = geometry.to_canonical(image)
        clock.add("canonical", time.perf_counter() - start)
        if method == "threshold":
            labels = threshold.threshold_labels(canonical)
        else:
            labels = unet_infer.unet_labels(canonical, model=model, card_input={"shape": [1, size, size]})
        start = time.perf_counter()
        geometry.from_canonical(geometry.image_from_array(labels, canonical), image)
        clock.add("back", time.perf_counter() - start)

    runs = []
    for _ in range(repeat):
        clock.times = {}
        start = time.perf_counter()
        image = load_ct(ct)
        clock.add("load", time.perf_counter() - start)
        start = time.perf_counter()
        segment(image)
        total = time.perf_counter() - start
        stages = dict(clock.times)
        if method == "threshold":  # 'threshold' = the whole method minus its timed parts
            inner = sum(stages.get(k, 0.0) for k in STAGES["threshold"][3:9])
            stages["threshold"] = total - stages["canonical"] - stages["back"] - inner
        runs.append({**stages, "total": total})
    peak = peak_rss_mb()
    tracemalloc.start()
    segment(image)
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "runs": runs,
        "peak_mb": peak,
        "traced_mb": traced,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def bundled_unet() -> bool:
    from covidct.errors import ModelError
    from covidct.models import find_model

    try:
        find_model("unet-lungs")
    except ModelError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", default=str(P001), help="CT to time (default: COVID-CT-MD P001)")
    parser.add_argument("--methods", nargs="+", choices=("threshold", "unet"), default=["threshold", "unet"])
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        help="time a random UNet at these slice sizes instead of the bundled one (e.g. 368 256)",
    )
    parser.add_argument("--base", type=int, help="base channels of that random UNet (default 16)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps (default: cpu)")
    parser.add_argument("--repeat", type=int, default=2, help="segmentations per process (later ones are warm)")
    parser.add_argument("--threads", type=int, help="torch/OpenMP CPU threads (default: PyTorch's choice)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    env = child_or_environment(args, measure, DATA)
    print(f"CT {Path(args.ct).name}, device {args.device}")
    random_unet = args.sizes is not None or args.base is not None or not bundled_unet()
    sizes = (args.sizes or [368, 256]) if random_unet else [0]
    base = (args.base or 16) if random_unet else 0  # 0: the bundled unet-lungs
    if "unet" in args.methods and random_unet:
        print(
            f"UNet: timing a RANDOMLY INITIALISED UNet2D(base={base}) (no bundled 'unet-lungs', or --sizes/--base "
            "given); network times are real, post-processing times only indicative"
        )
    configs = [("threshold", 0)] * ("threshold" in args.methods) + [("unet", s) for s in sizes] * (
        "unet" in args.methods
    )
    for method, size in configs:
        job = {
            "ct": args.ct,
            "method": method,
            "size": size,
            "base": base,
            "device": args.device,
            "repeat": args.repeat,
        }
        result = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True, env=env
        )
        name = method if method == "threshold" else f"unet {size}" if size else "unet (bundled unet-lungs)"
        if result.returncode != 0:
            print(f"{name}: failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        stages = STAGES[method]
        print(
            f"\n{name}  ({figures['threads']} torch threads, {figures['cores']} cores, "
            f"load average {figures['load']:.1f}; seconds)"
        )
        print(f"{'run':>4} " + " ".join(f"{s:>10}" for s in stages) + f" {'total':>7} {'peak MB':>8} {'traced MB':>9}")
        for i, run in enumerate(figures["runs"]):
            print(
                f"{i + 1:>4} "
                + " ".join(f"{run.get(s, 0.0):>10.2f}" for s in stages)
                + f" {run['total']:>7.2f} {figures['peak_mb']:>8.0f} {figures['traced_mb']:>9.0f}"
            )


if __name__ == "__main__":
    main()
