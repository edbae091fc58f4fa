"""Speed and memory of DeCoVNet and COVID-19Net: inference and one training step, per precision mode.

Prints a table; asserts nothing (timings are machine facts, not test results). Each measurement
runs in its own Python process so that the peak memory of one cannot hide another's:

* CPU: peak resident memory of the process (``VmHWM``; ``ru_maxrss`` would carry over the parent's
  peak through ``exec``) and its growth over the resident size once the model and input were built
  (≈ activations + workspace);
* CUDA: ``torch.cuda.max_memory_allocated`` (tensors only) of the step.

Modes: ``fp32``; ``bf16`` = ``torch.autocast`` bfloat16; ``cl`` = ``channels_last_3d`` memory
format; ``bf16+cl`` = both. Each mode also reports how far its inference logit (COVID-19 logit) for
a fixed random input lies from fp32's (``|dlogit|``), so a faster mode is only used where it keeps
the outputs. The freshly initialised model's batch-norm statistics are first set from that input
(one pass with momentum 1), so eval-mode activations have a realistic scale.

Inputs: DeCoVNet ``1 × 2 × T × 224 × 336`` (T = 148 by default: the CT-MD sample's slice count,
the paper's mean was 141), COVID-19Net ``1 × 1 × 48 × 240 × 360`` (the paper's sizes). Training
step = forward + backward + Adam update (the paper's optimiser), batch 1, model in train mode.

Usage (from the repository root)::

    python Testing/benchmarks/bench_models.py                    # CPU, all models and modes
    python Testing/benchmarks/bench_models.py --device cuda --repeat 10
    python Testing/benchmarks/bench_models.py --models decovnet --modes fp32 bf16 --slices 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

MODES = ("fp32", "bf16", "cl", "bf16+cl")
PHASES = ("infer", "train")


def make_input(arch: str, slices: int):
    """A fixed random input of the paper's size: DeCoVNet ``(1, 2, slices, 224, 336)``, COVID-19Net
    ``(1, 1, 48, 240, 360)``."""
    import torch

    from covidct.preprocess.covid19net import INPUT_SHAPE
    from covidct.preprocess.decovnet import INPUT_HW

    generator = torch.Generator().manual_seed(0)
    if arch == "decovnet":
        x = torch.rand(1, 2, slices, *INPUT_HW, generator=generator)
        x[:, 1] = (x[:, 1] > 0.6).float()  # a mask-like binary channel
        return x
    return torch.randn(1, 1, *INPUT_SHAPE, generator=generator)


def _status_mb(field: str) -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB; NaN
    where there is no /proc (macOS, Windows)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def measure(arch: str, mode: str, phase: str, device_name: str, slices: int, repeat: int, threads: int) -> dict:
    """One measurement in this process; returns a JSON-able dict."""
    import torch

    from covidct.device import resolve_device
    from covidct.models import build_model

    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device_name)
    torch.manual_seed(0)
    model = build_model(arch).to(device)
    x = make_input(arch, slices).to(device)
    if "cl" in mode:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled="bf16" in mode)
    labels = torch.ones(1, dtype=torch.long, device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-5) if phase == "train" else None
    model.train(phase == "train")

    def step():
        if phase == "infer":
            with torch.inference_mode(), autocast:
                return model(x)
        optimiser.zero_grad(set_to_none=True)
        with autocast:
            logits = model(x)
        loss = model.loss(logits, labels)
        loss.backward()
        optimiser.step()
        return logits

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    calibrate_batch_norm(model, x)
    logit = None
    if phase == "infer":
        with torch.inference_mode(), autocast:
            logit = float(model.eval()(x).float()[0, -1])
    baseline = _status_mb("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step()  # warm-up (oneDNN / cuDNN algorithm choice)
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    result = {
        "model": arch,
        "mode": mode,
        "phase": phase,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "median_s": statistics.median(times),
        "min_s": min(times),
        "logit": logit,
        "params": sum(p.numel() for p in model.parameters()),
        "input": list(x.shape),
    }
    if device.type == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name(device)
    else:
        result["peak_mb"] = _status_mb("VmHWM")
        result["growth_mb"] = result["peak_mb"] - baseline
    return result


def calibrate_batch_norm(model, x) -> None:
    """Set every batch norm's running statistics to those of ``x`` (one training-mode pass, momentum 1)."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for norm in norms:
        norm.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    for norm, momentum in zip(norms, saved, strict=True):
        norm.momentum = momentum


def flops(arch: str, slices: int) -> float:
    """Forward-pass GFLOP (multiply and add counted separately) from PyTorch's FLOP counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from covidct.models import build_model

    model = build_model(arch).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(make_input(arch, slices))
    return counter.get_total_flops() / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["decovnet", "covid19net"], choices=["decovnet", "covid19net"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--phases", nargs="+", default=list(PHASES), choices=PHASES)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument("--slices", type=int, default=148, help="DeCoVNet's T (slices)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions after one warm-up")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = PyTorch's default)")
    parser.add_argument("--json", action="store_true", help="also print each result as a JSON line")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "MODE", "PHASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(measure(*args.one, args.device, args.slices, args.repeat, args.threads)))
        return 0

    for arch in args.models:
        print(f"{arch}: forward {flops(arch, args.slices):.1f} GFLOP", flush=True)
    header = (
        f"{'model':<11}{'phase':<7}{'mode':<9}{'median s':>9}{'min s':>8}{'peak MB':>9}{'growth MB':>10}"
        f"{'|dlogit|':>10}{'logit':>8}"
    )
    print(header)
    print("-" * len(header))
    reference = {}
    for arch in args.models:
        for phase in args.phases:
            for mode in args.modes:
                command = [
                    sys.executable,
                    __file__,
                    "--one",
                    arch,
                    mode,
                    phase,
                    "--device",
                    args.device,
                    "--slices",
                    str(args.slices),
                    "--repeat",
                    str(args.repeat),
                    "--threads",
                    str(args.threads),
                ]
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
                    print(f"{arch:<11}{phase:<7}{mode:<9} failed: {reason}")
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                dlogit = logit = ""
                if r["logit"] is not None:
                    logit = f"{r['logit']:.3f}"
                    if mode == "fp32":
                        reference[arch] = r["logit"]
                    if arch in reference:
                        dlogit = f"{abs(r['logit'] - reference[arch]):.1e}"
                growth = f"{r['growth_mb']:.0f}" if "growth_mb" in r else "-"
                print(
                    f"{arch:<11}{phase:<7}{mode:<9}{r['median_s']:>9.2f}{r['min_s']:>8.2f}{r['peak_mb']:>9.0f}"
                    f"{growth:>10}{dlogit:>10}{logit:>8}",
                    flush=True,
                )
                if args.json:
                    print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
