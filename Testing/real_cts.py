"""The real chest CTs of ``../shared/data`` and the measures every model and method choice is judged by.

Shared by the real-CT yardstick (``Testing/benchmarks/real_ct_yardstick.py``) and the tests that guard
its targets. Nothing here calls :mod:`covidct.lungs`: the measures are computed from the CT and a mask
alone, so they can fail.

Arrays are ``(z, y, x)`` as SimpleITK returns them; spacings are ``(x, y, z)`` in mm.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("COVIDCT_SHARED_DATA", REPO.parent / "shared" / "data"))

#: HU above which lung-mask tissue counts as solid (consolidation, organ, vessel wall)
DENSE_HU = -300.0
#: radius (mm) of the ball that opens the dense voxels: what survives is thicker than vessels
THICK_RADIUS_MM = 4.0
#: axes coarser than this (mm) are split into sub-voxels for the opening
FINE_MM = 2.5


@dataclass(frozen=True)
class RealCT:
    """One real CT of the shared data: ``name``, ``path`` relative to the shared data folder (or absolute,
    for a CT from elsewhere),
    ``covid`` (True for RT-PCR-positive COVID-19), ``labels`` (radiologists' slice-label CSV, or None),
    ``note`` (scanner, kernel, what makes it a hard case), ``tumour_lps`` (a point inside a known
    non-COVID lung tumour, LPS mm, or None: its thick dense tissue is reported apart)."""

    name: str
    path: str
    covid: bool
    labels: str | None = None
    note: str = ""
    tumour_lps: tuple[float, float, float] | None = None

    @property
    def file(self) -> Path:
        return SHARED_DATA / self.path

    @property
    def labels_file(self) -> Path | None:
        return SHARED_DATA / self.labels if self.labels else None


CT_MD = "covid-ct-md-sample/"
A0001 = "lung-pet-ct-dx-A0001/"
#: inside Lung_Dx-A0001's adenocarcinoma (left upper lobe, posterior; read off the CT, LPS mm)
A0001_TUMOUR = (43.0, 201.6, -199.0)
#: inside the POPI patient's lung tumour (right lung, a round solid mass of about 25 mm; read off the CT, LPS mm)
POPI_TUMOUR = (-86.0, 82.3, -9.0)
#: every real chest CT with a COVID-19 label: the positives are validation only, never training data
REAL_CTS = (
    RealCT("P001", CT_MD + "P001.nii.gz", True, CT_MD + "P001_slice_labels.csv", "Siemens Scope, 2 mm"),
    RealCT("P002", CT_MD + "P002.nii.gz", True, CT_MD + "P002_slice_labels.csv", "Siemens Scope, 2 mm"),
    RealCT("normal001", CT_MD + "normal001.nii.gz", False, note="Siemens Scope, 2 mm"),
    RealCT(
        "POPI",
        "popi-phase00-via-itkelastix/popi_phase00_ct.nii.gz",
        False,
        note="Philips Big Bore, 2 mm, lung-cancer radiotherapy patient, tumour",
        tumour_lps=POPI_TUMOUR,
    ),
    RealCT("CIP", "cip-copdgene-10002K-ct64/ct-64.nrrd", False, note="COPDGene, 4 mm, 64x64"),
    RealCT(
        "A0001-B",
        A0001 + "A0001_kernelB.nii.gz",
        False,
        note="Philips Brilliance 16, 5 mm, soft kernel, tumour",
        tumour_lps=A0001_TUMOUR,
    ),
    RealCT(
        "A0001-L",
        A0001 + "A0001_kernelL.nii.gz",
        False,
        note="Philips Brilliance 16, 5 mm, sharp kernel, tumour",
        tumour_lps=A0001_TUMOUR,
    ),
)
REAL_BY_NAME = {ct.name: ct for ct in REAL_CTS}


def infection_slices(labels_csv: Path, depth: int) -> np.ndarray:
    """Bool per stored slice ``k`` (the NIfTI z index) that the radiologists labelled infection-positive."""
    positive = np.zeros(depth, bool)
    with open(labels_csv, newline="") as stream:
        for row in csv.DictReader(stream):
            positive[int(row["nifti_k"])] = row["infection"].strip() == "1"
    return positive


def hottest_in_infection_slice(heatmap: sitk.Image, labels_csv: Path) -> bool:
    """Whether the hottest voxel of ``heatmap`` (on the CT's own grid, so its z index is the NIfTI ``k``) lies
    in a slice the radiologists labelled infection-positive (:func:`infection_slices`)."""
    heat = sitk.GetArrayViewFromImage(heatmap)
    k = int(np.unravel_index(int(np.argmax(heat)), heat.shape)[0])
    return bool(infection_slices(labels_csv, heat.shape[0])[k])


def thick_dense(hu: np.ndarray, mask: np.ndarray, spacing_xyz) -> np.ndarray:
    """Voxels of ``mask`` denser than :data:`DENSE_HU` that survive a binary opening with a ball of
    :data:`THICK_RADIUS_MM` (in mm, exact on anisotropic grids): solid tissue thicker than vessels.

    In a lesion-free lung mask this is organ (heart, liver, spleen, stomach wall, chest wall) that
    does not belong there; in a COVID-19 lung it is also consolidation. Axes coarser than
    :data:`FINE_MM` are first split into whole sub-voxels (each voxel repeated), so that one thick
    voxel of a 4–5 mm grid does not pass for a ball by itself; a voxel is then thick when at least
    half of its sub-voxels are. Returns a bool ``(z, y, x)`` array on the mask's grid.
    """
    dense = np.asarray(mask, bool) & (hu > DENSE_HU)
    out = np.zeros(dense.shape, bool)
    if not dense.any():
        return out
    factors = [max(1, int(np.ceil(float(s) / FINE_MM))) for s in reversed(spacing_xyz)]
    sampling = tuple(float(s) / f for s, f in zip(reversed(spacing_xyz), factors, strict=True))
    box = tuple(
        slice(int(h[0]), int(h[-1]) + 1) for h in (np.flatnonzero(dense.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
    )
    fine = dense[box]
    for axis, factor in enumerate(factors):
        fine = np.repeat(fine, factor, axis=axis)
    pad = [int(np.ceil(THICK_RADIUS_MM / s)) + 1 for s in sampling]
    fine = np.pad(fine, [(p, p) for p in pad])
    eroded = ndi.distance_transform_edt(fine, sampling=sampling) > THICK_RADIUS_MM
    if not eroded.any():
        return out
    opened = (ndi.distance_transform_edt(~eroded, sampling=sampling) <= THICK_RADIUS_MM) & fine
    opened = opened[tuple(slice(p, n - p) for p, n in zip(pad, opened.shape, strict=True))]
    shape = dense[box].shape
    blocks = opened.reshape(shape[0], factors[0], shape[1], factors[1], shape[2], factors[2])
    out[box] = blocks.mean(axis=(1, 3, 5)) >= 0.5
    return out


def thick_dense_ml(ct: sitk.Image, labels: sitk.Image, tumour_lps=None) -> tuple[float, float]:
    """``(outside, tumour)``: millilitres of :func:`thick_dense` tissue inside a lung labelmap (any value
    > 0) on ``ct``'s grid, apart from the connected piece of it that holds the point ``tumour_lps`` (LPS
    mm, or None), and that piece's millilitres (0 when the point is not in thick dense tissue)."""
    hu = sitk.GetArrayViewFromImage(ct)
    thick = thick_dense(hu, sitk.GetArrayViewFromImage(labels) > 0, ct.GetSpacing())
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    return tuple(float(n) * voxel_ml for n in split_tumour(thick, ct, tumour_lps))


def split_tumour(thick: np.ndarray, ct: sitk.Image, tumour_lps) -> tuple[int, int]:
    """``(voxels outside, voxels of the tumour's piece)`` of a bool ``thick`` array on ``ct``'s grid."""
    if tumour_lps is None:
        return int(thick.sum()), 0
    x, y, z = ct.TransformPhysicalPointToIndex([float(v) for v in tumour_lps])
    pieces, _ = ndi.label(thick)
    piece = pieces[z, y, x] if all(0 <= i < n for i, n in zip((z, y, x), thick.shape, strict=True)) else 0
    tumour = int((pieces == piece).sum()) if piece else 0
    return int(thick.sum()) - tumour, tumour
