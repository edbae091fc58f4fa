"""Does the heat map point at the disease? Weak-localisation figures for a detection model.

Real COVID-19 (COVID-CT-MD P001 and P002, radiologists' slice labels in ``P00x_slice_labels.csv``,
column ``infection`` per ``nifti_k``): the share of the heat-map mass (inside the lungs) that falls in
infection-positive slices, next to the share of lung volume in those slices. A heat map that
concentrates on the disease has a larger heat share than volume share (ratio > 1); a heat map spread
evenly over the lungs has equal shares.

Synthetic lesions (known voxel masks): the fraction of positive synthetic volumes whose heat-map
maximum lies inside a lesion, and the mean share of heat inside the lesions next to the lesions'
share of lung volume. The volumes come from a synthetic dataset folder made by ``covidct synth`` /
:func:`covidct.data.synth.make_synth_dataset` (``--synth DIR``, its positive rows, optionally one
split), or are made here from real lesion-free backgrounds (``--backgrounds CT... --count N``).

Prints a table and, with ``--json``, writes the figures. Asserts nothing.

Usage (from the repository root)::

    python Testing/benchmarks/heatmap_sanity.py --model decovnet --device cpu
    python Testing/benchmarks/heatmap_sanity.py --model runs/decovnet-synth/model --synth data/synth --split test
    python Testing/benchmarks/heatmap_sanity.py --model decovnet \\
        --backgrounds ../shared/data/covid-ct-md-sample/normal001.nii.gz --count 10
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("COVIDCT_SHARED_DATA", REPO.parent / "shared" / "data"))
COVID_CT_MD = DATA / "covid-ct-md-sample"


def infection_slices(labels_csv: Path, depth: int) -> np.ndarray:
    """Bool per stored slice ``k`` (NIfTI z index) that the radiologists labelled infection-positive."""
    positive = np.zeros(depth, bool)
    with open(labels_csv, newline="") as stream:
        for row in csv.DictReader(stream):
            positive[int(row["nifti_k"])] = row["infection"].strip() == "1"
    return positive


def real_case(name: str, loaded, lungs_method: str | None) -> dict:
    """Heat share vs. lung-volume share in the infection-positive slices of one COVID-CT-MD case."""
    from covidct.detection import detect
    from covidct.explain import heat_share

    result = detect(COVID_CT_MD / f"{name}.nii.gz", model=loaded, lungs_method=lungs_method)
    lungs = sitk.GetArrayViewFromImage(result.lungs) > 0
    slices = infection_slices(COVID_CT_MD / f"{name}_slice_labels.csv", lungs.shape[0])
    in_slices = np.zeros(lungs.shape, bool)
    in_slices[slices] = True
    volume_share = float(lungs[slices].sum()) / float(lungs.sum())
    share = heat_share(result.heatmap, in_slices)
    return {
        "case": name,
        "probability": result.probability,
        "positive_slices": int(slices.sum()),
        "slices": int(slices.size),
        "heat_share": share,
        "lung_volume_share": volume_share,
        "ratio": share / volume_share if volume_share > 0 else float("nan"),
    }


def synth_folder(args, tmp: Path) -> Path:
    """``--synth``, or a dataset of ``--count`` positive volumes made here from ``--backgrounds``."""
    if args.synth:
        return Path(args.synth)
    from covidct.data.synth import make_synth_dataset

    return Path(
        make_synth_dataset(
            args.backgrounds,
            tmp / "synth",
            n_pos=args.count,
            n_neg=0,
            seed=args.seed,
            lungs_method=args.lungs_method or "threshold",
            device=args.device,
        )
    ).parent


def synth_cases(folder: Path, split: str | None, count: int) -> list[dict]:
    """Up to ``count`` positive cases of a synthetic dataset as ``{"id", "ct", "lungs", "lesions"}``."""
    from covidct.data.manifest import read_manifest

    cases = [
        case
        for case in read_manifest(folder / "manifest.csv")
        if case.label == 1 and case.extra.get("lesions") and (not split or case.split == split)
    ]
    return [
        {"id": case.id, "ct": case.ct, "lungs": case.lungs, "lesions": folder / case.extra["lesions"]} for case in cases
    ][:count]


def synth_case(case: dict, loaded) -> dict:
    """Is the heat-map maximum inside a synthetic lesion, how far from one (mm, 0 inside); heat share vs.
    volume share of the lesions."""
    from scipy import ndimage as ndi

    from covidct.detection import detect
    from covidct.explain import heat_share, peak_inside
    from covidct.io import read_image

    result = detect(case["ct"], model=loaded, lungs=case["lungs"])
    lesions = sitk.GetArrayFromImage(read_image(case["lesions"])) > 0
    lungs = sitk.GetArrayViewFromImage(result.lungs) > 0
    heat = sitk.GetArrayViewFromImage(result.heatmap)
    to_lesion = ndi.distance_transform_edt(~lesions, sampling=tuple(reversed(result.heatmap.GetSpacing())))
    return {
        "case": case["id"],
        "probability": result.probability,
        "peak_in_lesion": peak_inside(result.heatmap, lesions),
        "peak_to_lesion_mm": float(to_lesion.flat[int(np.argmax(heat))]),
        "heat_share": heat_share(result.heatmap, lesions),
        "lesion_volume_share": float((lesions & lungs).sum()) / float(lungs.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="catalogue name or model folder (e.g. the demo weights)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--lungs-method",
        choices=("unet", "threshold"),
        help="lung segmentation for the real cases and generated synthetic volumes (default: the "
        "one the model's training masks came from, else unet; threshold for generated volumes)",
    )
    parser.add_argument("--real", nargs="*", default=["P001", "P002"], help="COVID-CT-MD cases (default P001 P002)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--synth", help="synthetic dataset folder (manifest.csv with lesions)")
    source.add_argument("--backgrounds", nargs="+", help="lesion-free real CTs to make synthetic volumes from")
    parser.add_argument("--split", help="use only this split of --synth (e.g. test: cases the model never saw)")
    parser.add_argument("--count", type=int, default=10, help="synthetic positive volumes (default 10)")
    parser.add_argument("--seed", type=int, default=12345, help="seed of generated synthetic volumes")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    from covidct.detection import load_classifier

    loaded = load_classifier(args.model, args.device)
    figures = {"model": loaded[1].name, "real": [], "synth": []}
    if args.real and not COVID_CT_MD.is_dir():
        sys.exit(f"COVID-CT-MD sample not found at {COVID_CT_MD} (set COVIDCT_SHARED_DATA)")
    print(f"model {loaded[1].name}; real COVID-19, heat-map mass in the radiologists' infection-positive slices:")
    print(f"{'case':<8} {'P(COVID)':>8} {'pos. slices':>12} {'heat share':>11} {'lung-vol share':>15} {'ratio':>6}")
    for name in args.real:
        row = real_case(name, loaded, args.lungs_method)
        figures["real"].append(row)
        print(
            f"{name:<8} {row['probability']:>8.3f} {row['positive_slices']:>5}/{row['slices']:<6} "
            f"{row['heat_share']:>11.3f} {row['lung_volume_share']:>15.3f} {row['ratio']:>6.2f}"
        )

    if args.synth or args.backgrounds:
        with tempfile.TemporaryDirectory() as tmp:
            folder = synth_folder(args, Path(tmp))
            cases = synth_cases(folder, args.split, args.count)
            print(f"\nsynthetic lesions ({len(cases)} positive volumes of {folder.name}):")
            print(f"{'case':<28} {'P(COVID)':>8} {'peak in lesion':>15} {'heat share':>11} {'lesion-vol share':>17}")
            for case in cases:
                row = synth_case(case, loaded)
                figures["synth"].append(row)
                print(
                    f"{row['case']:<28} {row['probability']:>8.3f} {str(row['peak_in_lesion']):>15} "
                    f"{row['heat_share']:>11.3f} {row['lesion_volume_share']:>17.3f}"
                )
        hits = [row["peak_in_lesion"] for row in figures["synth"]]
        figures["synth_peak_in_lesion_fraction"] = float(np.mean(hits)) if hits else None
        if hits:
            print(
                f"heat-map maximum inside a lesion: {sum(hits)} of {len(hits)} ({100 * np.mean(hits):.0f} %); "
                f"mean heat share in lesions {np.mean([r['heat_share'] for r in figures['synth']]):.3f} vs. "
                f"lesion volume share {np.mean([r['lesion_volume_share'] for r in figures['synth']]):.3f}"
            )
    if args.json:
        from covidct.outputs import write_json

        write_json(args.json, figures)


if __name__ == "__main__":
    main()
