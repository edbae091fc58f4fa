"""Axial PNG montage of a heat map over the lung-window CT.

Panels are composed as RGB arrays and placed pixel for pixel (matplotlib, Agg, no pyplot state, draws
only the text and the colour bar).

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
#: colour map of the heat and its opacity over the CT
HEAT_COLOURMAP, HEAT_OPACITY = "hot", 0.6
#: panel size (pixels along the larger physical side), cell size (width, height: panel, title and
#: margins), the cell's title band, the figure's title band and the colour bar's band, in PNG pixels
PANEL_PX, CELL_PX, PANEL_TITLE_PX, TITLE_PX, COLOURBAR_PX = 288, (300, 320), 24, 40, 90


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
    """Write the montage PNG of the hottest axial slices, atomically.

    Panels (:func:`panel_rgb`, :data:`PANEL_PX` pixels along the larger physical side, drawn pixel for
    pixel, radiological convention): lung-window CT in grey, heat above :data:`HEAT_FLOOR` in the
    ``hot`` colour map; one colour bar.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG to write.
    ct : SimpleITK.Image
        The CT in Hounsfield units, any orientation.
    heatmap : SimpleITK.Image
        Heat 0…1 on ``ct``'s grid.
    lungs : SimpleITK.Image or None
        Lung labelmap on ``ct``'s grid: picks the slices when the heat map is all zero.
    title : str
        The figure's title line.
    count : int
        Panels at most (four per row).
    scaling : str
        Label of the colour bar: ``"absolute"`` (the model's scale, the same for every CT) or
        ``"relative"`` (1 = this CT's maximum).

    Returns
    -------
    list of int
        The slice index ``k`` along the stored CT's head-foot axis of each panel, in panel order.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    panels = axial_panels(ct, heatmap, lungs, count)
    columns = max(1, min(4, len(panels)))
    rows = max(1, int(np.ceil(len(panels) / columns)))
    width, height = columns * CELL_PX[0] + COLOURBAR_PX, rows * CELL_PX[1] + TITLE_PX
    figure = Figure(figsize=(width / 100, height / 100), dpi=100)
    FigureCanvasAgg(figure)
    for index, panel in enumerate(panels):
        rgb = panel_rgb(panel)
        row, column = divmod(index, columns)
        # pixel box of the cell (origin: the figure's lower left); the panel sits centred under its title
        left = column * CELL_PX[0] + (CELL_PX[0] - rgb.shape[1]) // 2
        top = height - TITLE_PX - row * CELL_PX[1] - PANEL_TITLE_PX
        figure.figimage(rgb, xo=left, yo=top - rgb.shape[0], origin="upper")
        centre = column * CELL_PX[0] + CELL_PX[0] / 2
        figure.text(
            centre / width,
            (top + 3) / height,
            f"k = {panel['k']}   z = {panel['z_mm']:.1f} mm",
            fontsize=9,
            ha="center",
            va="bottom",
        )
        middle = (top - rgb.shape[0] / 2) / height
        for x, side, align in ((left + 4, "R", "left"), (left + rgb.shape[1] - 4, "L", "right")):
            figure.text(x / width, middle, side, color="yellow", ha=align, va="center", fontsize=10, fontweight="bold")
    if panels:
        label = (
            "heat (HiResCAM, absolute scale: the same for every CT)"
            if scaling == "absolute"
            else "heat (HiResCAM, relative: 1 = this CT's maximum)"
        )
        bar = figure.add_axes(((width - COLOURBAR_PX + 10) / width, 0.15, 12 / width, 0.7))
        figure.colorbar(ScalarMappable(Normalize(0.0, 1.0), colormaps[HEAT_COLOURMAP]), cax=bar, label=label)
    if title:
        figure.suptitle(title, fontsize=10, y=1.0 - 15 / height, va="top")
    with atomic_path(path, verify=verify_png) as tmp:
        figure.savefig(tmp, format="png", pil_kwargs={"compress_level": 3})
    return [panel["k"] for panel in panels]


def panel_rgb(panel: dict, size: int = PANEL_PX) -> np.ndarray:
    """One montage panel as an RGB uint8 array ``(rows, columns, 3)``, in the panel's orientation
    (column 0 = patient's right, row 0 = anterior), ``size`` pixels along its larger physical side.

    The CT (HU) is drawn in :data:`LUNG_WINDOW` grey; heat above :data:`HEAT_FLOOR` is blended over it
    in :data:`HEAT_COLOURMAP` with opacity :data:`HEAT_OPACITY`. Resized with a box filter (each
    output pixel averages the input pixels under it), so that pixels keep their physical aspect.
    """
    from matplotlib import colormaps
    from PIL import Image

    low, high = LUNG_WINDOW
    grey = np.clip((panel["ct"] - low) * (255.0 / (high - low)), 0, 255)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    heat = panel["heat"]
    hot = heat > HEAT_FLOOR
    if hot.any():
        table = colormaps[HEAT_COLOURMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0
        colour = table[np.rint(np.clip(heat[hot], 0.0, 1.0) * 255).astype(np.intp)]
        rgb[hot] = (1.0 - HEAT_OPACITY) * rgb[hot] + HEAT_OPACITY * colour
    (ny, nx), (sx, sy) = heat.shape, panel["spacing"]
    scale = size / max(nx * sx, ny * sy)  # pixels per mm
    width_height = (max(1, round(nx * sx * scale)), max(1, round(ny * sy * scale)))
    image = Image.fromarray(np.rint(rgb).astype(np.uint8), "RGB").resize(width_height, Image.Resampling.BOX)
    return np.asarray(image)
