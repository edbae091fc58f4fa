"""The HU window of the DeCoVNet paper ("−1200…600 HU, 16-bit to 8-bit")."""

from __future__ import annotations

import numpy as np

HU_WINDOW = (-1200.0, 600.0)


def hu_window(array: np.ndarray, low: float = HU_WINDOW[0], high: float = HU_WINDOW[1]) -> np.ndarray:
    """Map HU linearly so that ``low`` → 0 and ``high`` → 1, clipped; returns float32 of the same shape.

    This is the paper's 0…255 8-bit scaling divided by 255 (no 8-bit quantisation).
    """
    out = (np.asarray(array, dtype=np.float32) - low) * (1.0 / (high - low))
    return np.clip(out, 0.0, 1.0, out=out)
