"""Choice of the PyTorch device from a user's ``--device auto|cpu|cuda|cuda:N|mps``."""

from __future__ import annotations

from .errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto"):
    """Return a ``torch.device`` for ``name``, or raise :class:`UsageError` with one sentence.

    ``auto`` picks the first CUDA GPU, then Apple MPS, then the CPU. ``cuda:N`` names one GPU.
    """
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise UsageError("Device 'mps' was requested but this PyTorch has no Apple MPS support; use --device cpu.")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"Device '{name}' was requested but PyTorch sees no CUDA GPU (CPU-only build or no driver); "
                "use --device cpu or install a CUDA build of PyTorch."
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UsageError(
                f"Device '{name}' does not exist: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered 0 to {torch.cuda.device_count() - 1}."
            )
        return torch.device(name)
    raise UsageError(f"Unknown device '{name}'; choose one of auto, cpu, cuda, cuda:N or mps.")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def list_devices() -> list[dict]:
    """The devices this PyTorch can compute on, in the order ``auto`` prefers them.

    One dict per device: ``device`` (the ``--device`` value: ``cuda:N``, ``mps``, ``cpu``), ``name``
    (GPU model, or "Apple MPS" / "CPU (N cores)"), and for CUDA GPUs ``memory_gib`` (total) and
    ``free_gib`` (free now, other programs' use subtracted), in GiB rounded to 0.1. Initialises CUDA
    in the calling process, so the Slicer modules call it through ``covidct devices`` in a child process.
    """
    import os

    import torch

    devices = []
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        free, total = torch.cuda.mem_get_info(index)
        devices.append(
            {
                "device": f"cuda:{index}",
                "name": torch.cuda.get_device_name(index),
                "memory_gib": round(total / 2**30, 1),
                "free_gib": round(free / 2**30, 1),
            }
        )
    if _mps_available():
        devices.append({"device": "mps", "name": "Apple MPS"})
    devices.append({"device": "cpu", "name": f"CPU ({os.cpu_count()} cores)"})
    return devices
