"""Training checkpoints: atomic writes, safe loading, random-number-generator states.

A checkpoint is a dict of tensors and plain Python values only (numpy's RNG state is stored as a
tensor), so it loads with ``torch.load(..., weights_only=True)``: no code runs from a checkpoint file.
It is written to a temporary name and renamed, so a ``kill -9`` during the write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from ..outputs import write_bytes

FORMAT = 1


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (plus the format version) to ``path`` atomically and verified; the same state always
    gives the same bytes (:func:`covidct.models.catalogue.torch_bytes`)."""
    from ..models.catalogue import torch_bytes

    return write_bytes(path, torch_bytes({"format": FORMAT, **state}))


def load_checkpoint(path: str | os.PathLike, device="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"Checkpoint {path} does not exist; check the path.") from None
    except Exception as exc:
        raise ModelError(
            f"Checkpoint {path} cannot be read ({type(exc).__name__}); it is damaged or not a "
            "covidct checkpoint, so start again without it."
        ) from exc
    if not isinstance(state, dict) or "model" not in state:
        raise ModelError(f"Checkpoint {path} holds no model weights; give a checkpoint written by covidct train.")
    return state


def rng_state() -> dict:
    """The states of Python's, numpy's and torch's (CPU and every CUDA device) global generators."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
