"""Axial PNG montage of a heat map over the lung-window CT (matplotlib, Agg, no pyplot state).

Slices are drawn from the canonical LPS arrays (x → patient Left, y → Posterior), which is the
radiological convention without any flip: the patient's right is on the image's left, anterior at
the top. Each panel is titled with the slice index ``k`` of the CT *as stored* and its z in mm (LPS).
"""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from .geometry import to_canonical
from .outputs import atomic_path, verify_png

#: lung window of the montage, HU
LUNG_WINDOW = (-1350.0, 150.0)
#: heat below this is not drawn
HEAT_FLOOR = 0.1


def hottest_slices(heat: np.ndarray, count: int, fallback: np.ndarray | None = None) -> list[int]:
    """Indices (ascending) of up to ``count`` axial slices of ``heat`` (z, y, x) with the most heat.

    Slices are taken greedily by total heat, at least ``len(heat) // (3 * count)`` slices apart so
    that one hot spot does not fill the montage. When ``heat`` is all zero, ``fallback`` (e.g. the
    lung mask) is ranked instead.
    """
    score = heat.reshape(len(heat), -1).sum(axis=1, dtype=np.float64)
    if not score.any() and fallback is not None:
        score = fallback.reshape(len(fallback), -1).sum(axis=1, dtype=np.float64)
    gap = max(1, len(score) // (3 * max(count, 1)))
    chosen: list[int] = []
    for k in np.argsort(-score, kind="stable"):
        if score[k] <= 0 and chosen:
            break
        if all(abs(int(k) - c) >= gap for c in chosen):
            chosen.append(int(k))
        if len(chosen) == count:
            break
    return sorted(chosen)


def axial_panels(ct: sitk.Image, heatmap: sitk.Image, lungs: sitk.Image | None = None, count: int = 8) -> list[dict]:
    """The montage's panels: for each of the hottest axial slices (:func:`hottest_slices`), a dict with
    ``k`` (index of the slice along the stored CT's axis closest to head-foot, so also for a CT stored
    sagittally or coronally), ``z_mm`` (LPS z of the slice), ``ct`` and ``heat`` (2D
    arrays ``(y, x)`` in canonical order: column 0 = patient's right, row 0 = anterior) and
    ``spacing`` (``(x, y)`` mm)."""
    canonical_ct, canonical_heat = to_canonical(ct), to_canonical(heatmap)
    canonical_lungs = None if lungs is None else to_canonical(lungs)
    # array views are valid while their images live (this function's scope); panels get copies
    ct_array = sitk.GetArrayViewFromImage(canonical_ct)
    heat = sitk.GetArrayViewFromImage(canonical_heat)
    fallback = None if lungs is None else sitk.GetArrayViewFromImage(canonical_lungs)
    ny, nx = ct_array.shape[1:]
    axial_axis = int(np.argmax(np.abs(np.array(ct.GetDirection()).reshape(3, 3)[2])))
    panels = []
    for k in hottest_slices(heat, count, fallback):
        point = canonical_ct.TransformIndexToPhysicalPoint((nx // 2, ny // 2, k))
        panels.append(
            {
                "k": int(ct.TransformPhysicalPointToIndex(point)[axial_axis]),
                "z_mm": float(point[2]),
                "ct": np.array(ct_array[k]),
                "heat": np.array(heat[k]),
                "spacing": canonical_ct.GetSpacing()[:2],
            }
        )
    return panels


def save_heatmap_montage(
    path: str | os.PathLike,
    ct: sitk.Image,
    heatmap: sitk.Image,
    lungs: sitk.Image | None = None,
    title: str = "",
    count: int = 8,
    scaling: str = "relative",
) -> list[int]:
    """Write the montage PNG (atomically) and return the stored-CT slice indices ``k`` it shows.

    ``ct`` in HU and ``heatmap`` (0…1) must share one grid; ``lungs`` (optional, same grid) picks the
    slices when the heat map is all zero. Panels: lung-window CT (:data:`LUNG_WINDOW`) in grey, heat
    above :data:`HEAT_FLOOR` in the ``hot`` colour map (semi-transparent), one colour bar, labelled
    with the heat map's ``scaling`` (``"absolute"``: the model's scale, the same for every CT, or
    ``"relative"``: 1 = this CT's maximum).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = axial_panels(ct, heatmap, lungs, count)
    columns = min(4, len(panels))
    rows = int(np.ceil(len(panels) / columns))
    figure = Figure(figsize=(3.0 * columns + 0.8, 3.2 * rows + 0.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    overlay = None
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        (ny, nx), (sx, sy) = panel["ct"].shape, panel["spacing"]
        extent = (0.0, nx * sx, ny * sy, 0.0)
        ax.imshow(
            panel["ct"], cmap="gray", vmin=LUNG_WINDOW[0], vmax=LUNG_WINDOW[1], extent=extent, interpolation="nearest"
        )
        overlay = ax.imshow(
            np.ma.masked_less_equal(panel["heat"], HEAT_FLOOR),
            cmap="hot",
            vmin=0.0,
            vmax=1.0,
            alpha=0.6,
            extent=extent,
            interpolation="nearest",
        )
        ax.set_title(f"k = {panel['k']}   z = {panel['z_mm']:.1f} mm", fontsize=9)
        for x, side, align in ((0.02, "R", "left"), (0.98, "L", "right")):
            ax.text(
                x,
                0.5,
                side,
                color="yellow",
                transform=ax.transAxes,
                ha=align,
                va="center",
                fontsize=10,
                fontweight="bold",
            )
        ax.set_axis_off()
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    top = 1.0 - 0.5 / figure.get_figheight()
    figure.subplots_adjust(left=0.01, right=0.89, bottom=0.01, top=top, wspace=0.04, hspace=0.14)
    if overlay is not None:
        label = (
            "heat (HiResCAM, absolute scale: the same for every CT)"
            if scaling == "absolute"
            else "heat (HiResCAM, relative: 1 = this CT's maximum)"
        )
        figure.colorbar(overlay, cax=figure.add_axes((0.91, 0.15, 0.015, 0.7)), label=label)
    if title:
        figure.suptitle(title, fontsize=10, y=1.0 - 0.15 / figure.get_figheight(), va="top")
    with atomic_path(path, verify=verify_png) as tmp:
        figure.savefig(tmp, format="png")
    return [panel["k"] for panel in panels]
