"""List the compute devices PyTorch sees: CUDA GPUs with their total and free memory, Apple MPS, the CPU.

Each line names the value to pass as --device (cuda:N, mps, cpu). With --progress-json, one
{"event": "device", "device": ..., "name": ..., "memory_gib": ..., "free_gib": ...} line per device,
after a {"event": "torch", "version": ..., "cuda": ...} line (the CovidCTTrain module reads them).
"""

from __future__ import annotations

from ._options import add_progress_options


def add_arguments(parser) -> None:
    add_progress_options(parser)


def run(args) -> int:
    import torch

    from ..device import list_devices

    devices = list_devices()
    if args.progress_json:
        from ..progress import JsonLinesProgress

        progress = JsonLinesProgress()
        progress.event("torch", version=torch.__version__, cuda=torch.version.cuda)
        for device in devices:
            progress.event("device", **device)
        return 0
    print(f"PyTorch {torch.__version__}" + (f" (CUDA {torch.version.cuda})" if torch.version.cuda else " (no CUDA)"))
    for device in devices:
        memory = f", {device['memory_gib']:g} GiB ({device['free_gib']:g} GiB free)" if "memory_gib" in device else ""
        print(f"{device['device']:<8} {device['name']}{memory}")
    return 0
