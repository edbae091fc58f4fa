"""Figures written straight to PNG files, without pyplot.

Figures are built with ``matplotlib.figure.Figure`` and its Agg canvas, so no GUI backend is chosen,
no global pyplot state is touched (safe inside Slicer's Python and in worker processes), and files
are written atomically via :func:`covidct.outputs.atomic_path`.
"""

from __future__ import annotations

import os

from .outputs import atomic_path, verify_png


def new_figure(width: float = 5.0, height: float = 5.0, dpi: int = 120, rows: int = 1, height_ratios=None):
    """A ``(figure, axes)`` pair; ``axes`` is one Axes, or an array of ``rows`` Axes stacked vertically."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    axes = figure.subplots(rows, 1, gridspec_kw={"height_ratios": height_ratios} if height_ratios else None)
    return figure, axes


def save_png(figure, path: str | os.PathLike) -> None:
    """Lay out ``figure`` and write it to ``path`` as PNG (atomically)."""
    figure.tight_layout()
    with atomic_path(path, verify=verify_png) as tmp:
        figure.savefig(tmp, format="png")
