"""End-to-end detection time per stage and peak memory on a clinical-size CT (COVID-CT-MD P001).

Prints a table; asserts nothing (timings are machine facts). Each configuration (lung method)
runs in its own Python process so that one run's peak memory cannot hide another's. Stages are
those of :attr:`covidct.detection.Detection.timings`, plus the model load, measured apart:

* ``model``: :func:`covidct.detection.load_classifier` (sha256 check + ``torch.load``), once per process;
* ``load``: :func:`covidct.io.load_ct` of the CT (P001: 512×512×148 int16 gzip NIfTI);
* ``lungs``: :func:`covidct.lungs.segment_lungs` with the configuration's method;
* ``preprocess``: the model's paper input (DeCoVNet: 2×148×224×336; COVID-19Net: 1×48×240×360);
* ``forward``: the forward pass (kept for HiResCAM) and the probability;
* ``heatmap``: HiResCAM back-propagation, mapping onto the CT grid, suspicious regions;
* ``save``: :meth:`Detection.save` (three gzip NIfTI volumes, montage PNG, report.json);
* ``total``: load … save (the model load excluded: a batch loads it once);
* ``peak MB``: peak resident memory of the process (``VmHWM``); ``GPU MB``: peak CUDA memory.

``--repeat 2`` also runs a second, warm detection in the same process (PyTorch's first call pays
one-off costs). Without bundled weights, ``--random`` times randomly initialised weights of the
model's architecture (saved through the catalogue into a temporary ``COVIDCT_MODELS_DIR``): the
time of a forward pass does not depend on the weights' values. ``--published decovnet|covid19net``
times the papers' own pipelines the same way: the twins of the released models
(:mod:`covidct.models.published`) with random weights and the authors' preprocessing, lungs by the
card (DeCoVNet: the authors' UNet on 368 × 368 slices at 1 mm).

Usage (from the repository root)::

    python Testing/benchmarks/bench_detect.py                      # decovnet, CPU, unet and threshold lungs
    python Testing/benchmarks/bench_detect.py --random decovnet --threads 2
    python Testing/benchmarks/bench_detect.py --model covid19net --device cuda --repeat 2
    python Testing/benchmarks/bench_detect.py --published decovnet --lungs card --repeat 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from process_memory import child_or_environment, peak_rss_mb

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("COVIDCT_SHARED_DATA", REPO.parent / "shared" / "data"))
P001 = DATA / "covid-ct-md-sample" / "P001.nii.gz"
STAGES = ("load", "lungs", "preprocess", "forward", "heatmap", "save")


def measure(
    ct: str, model: str, device: str, lungs_method: str, repeat: int, out: str, random_lungs: bool = False
) -> dict:
    """Run in a child process: load the model, then detect + save ``repeat`` times; figures of each run.

    ``random_lungs``: the model's lung UNet has random weights (``--published``), so its mask is no
    lung mask: the ``lungs`` stage times it (``segment_lungs`` with the card's method) and detection
    goes on with threshold lungs."""
    import torch

    from covidct.detection import detect, load_classifier
    from covidct.io import load_ct
    from covidct.lungs import segment_lungs

    start = time.perf_counter()
    loaded = load_classifier(model, device)
    model_s = time.perf_counter() - start
    lungs = segment_lungs(load_ct(ct), method="threshold") if random_lungs else None
    runs = []
    for i in range(repeat):
        result = detect(ct, model=loaded, lungs_method=lungs_method, lungs=lungs)
        if random_lungs:
            start = time.perf_counter()
            segment_lungs(result.ct, method=loaded[1].input["lungs_method"])
            result.timings["lungs"] = time.perf_counter() - start
        result.save(Path(out) / f"run{i}")
        runs.append({**result.timings, "probability": result.probability})
    peak = peak_rss_mb()
    where = next(loaded[0].parameters()).device
    gpu = torch.cuda.max_memory_allocated() / 2**20 if where.type == "cuda" else None
    return {
        "model_s": model_s,
        "runs": runs,
        "peak_mb": peak,
        "gpu_mb": gpu,
        "device": str(where),
        "threads": torch.get_num_threads(),
    }


def save_random_model(architecture: str, root: Path) -> str:
    """Save a randomly initialised ``architecture`` model under ``root``; return its folder."""
    import torch

    from covidct.models import ModelCard, build_model, save_model

    torch.manual_seed(0)
    folder = root / f"random-{architecture}"
    save_model(
        build_model(architecture),
        ModelCard(
            name=f"random-{architecture}", architecture=architecture, description="random weights, for timing only"
        ),
        folder,
    )
    return str(folder)


def save_published_twin(paper: str, root: Path) -> str:
    """Save the twin of a paper's released model (random weights, the authors' preprocessing in its card)
    under ``root``, with its lung UNet for DeCoVNet; return the classifier's folder."""
    import torch

    from covidct.models import build_model
    from covidct.models import published as p
    from covidct.preprocess import wang2020, zheng2020

    torch.manual_seed(0)
    if paper == "covid19net":
        state = build_model("covid19net", **p.COVID19NET_CONFIG).state_dict()
        fields = {"name": "random-wang2020", "input": dict(wang2020.INPUT), "threshold": 0.8}
        return str(p.save_twin("covid19net", p.COVID19NET_CONFIG, state, fields, root))
    unet = build_model("unet", **p.UNET_CONFIG).state_dict()
    p.save_twin(
        "unet", p.UNET_CONFIG, unet, {"name": "random-zheng2020-lungs", "input": dict(zheng2020.UNET_INPUT)}, root
    )
    state = build_model("decovnet", **p.DECOVNET_CONFIG).state_dict()
    fields = {
        "name": "random-zheng2020",
        "input": {**zheng2020.CLASSIFIER_INPUT, "lungs_method": "random-zheng2020-lungs"},
    }
    return str(p.save_twin("decovnet", p.DECOVNET_CONFIG, state, fields, root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", default=str(P001), help="CT to time (default: COVID-CT-MD P001)")
    parser.add_argument("--model", default="decovnet", help="catalogue name or model folder (default: decovnet)")
    parser.add_argument(
        "--random",
        choices=("decovnet", "covid19net"),
        help="time randomly initialised weights of this architecture instead of --model",
    )
    parser.add_argument(
        "--published",
        choices=("decovnet", "covid19net"),
        help="time the twin of this paper's released model (random weights) with the authors' preprocessing",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default: cpu)")
    parser.add_argument(
        "--lungs",
        nargs="+",
        choices=("unet", "threshold", "card"),
        default=["unet", "threshold"],
        help="lung methods to time ('card': the model card's)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="detections per process (later ones are warm)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: PyTorch's choice)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    env = child_or_environment(args, measure, DATA)
    with tempfile.TemporaryDirectory() as tmp:
        if args.published:
            os.environ["COVIDCT_MODELS_DIR"] = env["COVIDCT_MODELS_DIR"] = tmp
            model = save_published_twin(args.published, Path(tmp))
        else:
            model = save_random_model(args.random, Path(tmp)) if args.random else args.model
        print(f"CT {Path(args.ct).name}, model {model}, device {args.device}")
        header = f"{'lungs':<10} {'run':>3} {'model':>6} " + " ".join(f"{s:>10}" for s in STAGES)
        print(header + f" {'total':>7} {'peak MB':>8} {'GPU MB':>7}  (seconds)")
        for method in args.lungs:
            job = {
                "ct": args.ct,
                "model": model,
                "device": args.device,
                "lungs_method": None if method == "card" else method,
                "repeat": args.repeat,
                "out": str(Path(tmp) / method),
                "random_lungs": args.published == "decovnet",
            }
            result = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True, env=env
            )
            if result.returncode != 0:
                print(f"{method:<10} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")
                continue
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"{method:<10} (device {figures['device']}, {figures['threads']} torch threads)")
            for i, run in enumerate(figures["runs"]):
                total = sum(run[s] for s in STAGES)
                gpu = f"{figures['gpu_mb']:>7.0f}" if figures["gpu_mb"] is not None else f"{'-':>7}"
                print(
                    f"{method:<10} {i + 1:>3} {figures['model_s'] if i == 0 else 0:>6.2f} "
                    + " ".join(f"{run[s]:>10.2f}" for s in STAGES)
                    + f" {total:>7.2f} {figures['peak_mb']:>8.0f} {gpu}"
                )


if __name__ == "__main__":
    main()
