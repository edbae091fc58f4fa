"""Sharp-kernel copies of a lung-UNet training manifest's CTs, each labelled with its original's lung mask.

A UNet trained on soft-kernel CTs reads the crisp edges and grain of a sharp (lung or bone) kernel as
lung and takes chest wall, heart border and fat into its mask. Each training CT of the manifest gets
``--copies`` copies on its own grid (:func:`domain_backgrounds.domain_copy` with only the kernel
changed: an unsharp mask of sigma 0.5-1.0 mm and amount 0.5-1.2, then 0-20 HU of CT-like noise),
labelled with the original's lung mask (its ``lungs`` column, or the threshold method's pseudo-label
where that is empty, as ``covidct train --lungs-method threshold`` would make it).

Usage::

    python tools/sharp_copies.py MANIFEST OUT_DIR [--copies 2] [--seed 5]

writes ``OUT_DIR/<id>_sharp<k>.nii.gz`` (HU), ``OUT_DIR/<id>_sharp<k>_lungs.nii.gz`` (uint8 labels) and
``OUT_DIR/manifest.csv``: the manifest's rows followed by one training row per copy.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from domain_backgrounds import NEUTRAL, domain_copy

from covidct.geometry import to_canonical
from covidct.io import load_ct, read_image, save_image
from covidct.lungs import segment_lungs

#: ranges of the sharp-kernel draw: unsharp-mask sigma (mm) and amount, extra noise (HU)
SIGMA_MM = (0.5, 1.0)
AMOUNT = (0.5, 1.2)
NOISE_HU = (0.0, 20.0)


def sharp_copy(ct: sitk.Image, lungs: sitk.Image, rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image, dict]:
    """``(copy, its labels, settings)``: ``ct`` (HU) through a random sharp kernel, canonical (LPS) and on the
    canonical grid of ``ct``, with ``lungs`` (labels on the grid of ``ct``) carried over unchanged."""
    settings = {
        **NEUTRAL,
        "kernel": "sharp",
        "soft_sigma_mm": float(rng.uniform(*SIGMA_MM)),
        "sharp_amount": float(rng.uniform(*AMOUNT)),
        "noise_hu": float(rng.uniform(*NOISE_HU)),
    }
    copy = domain_copy(ct, settings, rng)
    labels = sitk.Cast(to_canonical(lungs), sitk.sitkUInt8)
    if labels.GetSize() != copy.GetSize():
        raise ValueError(f"the copy's grid {copy.GetSize()} is not its CT's canonical grid {labels.GetSize()}")
    labels.CopyInformation(copy)
    return copy, labels, settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path, help="UNet training manifest: id,ct,lungs,split")
    parser.add_argument("out", type=Path)
    parser.add_argument("--copies", type=int, default=2, help="copies per training CT (default 2)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.manifest, newline="") as stream:
        rows = list(csv.DictReader(stream))
    rng = np.random.default_rng(args.seed)
    added = []
    for row in rows:
        if row["split"] != "train":
            continue
        ct = load_ct(row["ct"])
        lungs = read_image(row["lungs"]) if row["lungs"] else segment_lungs(ct, method="threshold")
        for k in range(args.copies):
            copy, labels, settings = sharp_copy(ct, lungs, rng)
            name = f"{row['id']}_sharp{k}"
            save_image(copy, args.out / f"{name}.nii.gz")
            save_image(labels, args.out / f"{name}_lungs.nii.gz")
            added.append(
                {
                    "id": name,
                    "ct": args.out / f"{name}.nii.gz",
                    "lungs": args.out / f"{name}_lungs.nii.gz",
                    "split": "train",
                }
            )
            print(
                name,
                {key: round(settings[key], 2) for key in ("soft_sigma_mm", "sharp_amount", "noise_hu")},
                flush=True,
            )
    with open(args.out / "manifest.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["id", "ct", "lungs", "split"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows + added)


if __name__ == "__main__":
    main()
