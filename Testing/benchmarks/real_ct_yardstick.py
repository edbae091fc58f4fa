"""The real-CT yardstick: every real chest CT of ``../shared/data`` through lung segmentation and detection.

Model and method choices are judged by this table, not by synthetic-lesion figures. Per CT and lung
method it prints:

* the mask volume of each lung (ml) and the *thick dense* tissue inside it (ml): voxels above −300 HU
  that survive a binary opening with a 4 mm ball (``Testing/real_cts.py``). On a real negative this is
  organ inside "lung" (stomach, spleen, liver, heart); on P001/P002 it is also consolidation; the
  piece that holds a known lung tumour (A0001) is its own column (``tumour``);
* on P001/P002, in the radiologists' infection-positive slices, the ground-glass-density (−750…−300
  HU) and dense (> −300 HU) tissue inside the mask (lesions kept);
* the classifier's probability and the card's threshold, the heat map's maximum on the card's absolute
  scale (1 = a typical synthetic positive's hottest lung area) and the volume it shows at ≥ 0.5 (ml: on a
  negative CT, what a user would take for a suspicious area), and where the hottest heat-map voxel lies:
  in thick dense tissue or not (for a negative CT, heat there is heat on an organ), and for P001/P002
  whether its slice is infection-positive.

With ``--edge N`` the lungs are eroded (N < 0) or dilated (N > 0) by ``|N|`` pixels in-plane before
detection (the thick-dense columns still measure the lungs as segmented): how much the classifier's
answer depends on where the mask's edge lies, which differs between lung methods, scanners and a
user's own masks.

With ``--scanner NAME`` every CT is first replaced by a copy as another scanner might have shown it
(:data:`SCANNERS`, made by ``tools/domain_backgrounds.py``'s ``domain_copy`` with fixed settings and no
mirror image): thicker slices, coarser pixels, a sharp or soft kernel with more noise, the noise of a
low-dose scan (50 HU), an HU offset, intravenous contrast (blood in the mediastinum and the lungs'
vessels brightened). The positives P001/P002 were never trained on, so their rows say whether a call
holds on their anatomy as another scanner would show it; the radiologists' slice labels follow each
copy slice's centre.

Asserts nothing. With ``--out DIR`` it also writes per CT and method a PNG of the mask over the CT
(lung window; right lung red, left lung blue, thick dense tissue yellow) to look at, and
``yardstick.json``.

Usage (from the repository root)::

    python Testing/benchmarks/real_ct_yardstick.py                       # default model and lungs
    python Testing/benchmarks/real_ct_yardstick.py --methods unet threshold --out yardstick/
    python Testing/benchmarks/real_ct_yardstick.py --model RUN/model --cases normal001 POPI
    python Testing/benchmarks/real_ct_yardstick.py --methods unet --edge -1        # mask one pixel smaller
    python Testing/benchmarks/real_ct_yardstick.py --methods unet my-unet     # a user lung UNet beside the bundled one
    python Testing/benchmarks/real_ct_yardstick.py --extra-negatives other/chest1.nrrd   # and a CT of your own
    python Testing/benchmarks/real_ct_yardstick.py --scanner thick                 # every CT in 4-5 mm slabs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from real_cts import REAL_BY_NAME, REAL_CTS, RealCT, infection_slices, split_tumour, thick_dense  # noqa: E402

#: ``--scanner`` copies: changes to a neutral ``domain_copy`` draw (lengths in mm, noise and offset in HU). Slabs
#: average whole source slices, the count nearest to ``slice_mm`` (4 mm from 2 mm slices); a CT already that thick
#: keeps its slices; pixels are never made finer.
SCANNERS = {
    "thick": {"slice_mm": 5.0},
    "coarse": {"slice_mm": 5.0, "pixel_mm": 1.5},
    "sharp": {"kernel": "sharp", "soft_sigma_mm": 0.8, "sharp_amount": 1.0, "noise_hu": 10.0},
    "noisy": {"soft_sigma_mm": 0.8, "noise_hu": 25.0},
    "lowdose": {"soft_sigma_mm": 0.5, "noise_hu": 50.0},
    "offset": {"offset_hu": 8.0},
    "contrast": {"contrast_hu": 150.0},
}


def scanner_copy(ct: sitk.Image, name: str) -> sitk.Image:
    """``ct`` (HU) as the ``--scanner`` preset ``name`` of :data:`SCANNERS` shows it: a canonical (LPS) copy."""
    tools = str(Path(__file__).resolve().parents[2] / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    from domain_backgrounds import NEUTRAL, domain_copy

    return domain_copy(ct, {**NEUTRAL, **SCANNERS[name]}, np.random.default_rng(0))


def copy_infection_slices(infection: np.ndarray, ct: sitk.Image, copy: sitk.Image) -> np.ndarray:
    """Bool per slice of ``copy`` (z index of its array): the slice of ``ct`` at the copy slice's centre is
    infection-positive (``infection``: bool per slice of ``ct``)."""
    centre = [(n - 1) / 2 for n in copy.GetSize()[:2]]
    source = [
        ct.TransformPhysicalPointToIndex(copy.TransformContinuousIndexToPhysicalPoint((*centre, k)))[2]
        for k in range(copy.GetSize()[2])
    ]
    return infection[np.clip(source, 0, len(infection) - 1)]


def moved_edge(labels: sitk.Image, pixels: int) -> sitk.Image:
    """``labels`` with each lung eroded (``pixels`` < 0) or dilated (> 0, into background only, by
    :func:`covidct.lungs.sides.grow_each_lung`) by ``|pixels|`` pixels in-plane (a square in x and y, none in z)."""
    if pixels == 0:
        return labels
    from scipy import ndimage

    from covidct.lungs import LEFT, RIGHT
    from covidct.lungs.sides import grow_each_lung

    square = np.ones((1, 2 * abs(pixels) + 1, 2 * abs(pixels) + 1), bool)
    array = sitk.GetArrayFromImage(labels)
    if pixels > 0:
        moved = grow_each_lung(array, lambda mask, box: ndimage.binary_dilation(mask, square), (0, pixels, pixels))
    else:
        moved = np.zeros_like(array)
        for value in (RIGHT, LEFT):
            moved[ndimage.binary_erosion(array == value, square, border_value=1)] = value
    out = sitk.GetImageFromArray(moved)
    out.CopyInformation(labels)
    return out


def load_case(case, scanner: str | None = None) -> tuple[sitk.Image, sitk.Image]:
    """``(stored CT, CT measured)`` of ``case`` (a :class:`real_cts.RealCT`): the CT measured is its ``scanner``
    copy (:func:`scanner_copy`), or the stored CT itself."""
    from covidct.io import load_ct

    original = load_ct(case.file)
    return original, scanner_copy(original, scanner) if scanner else original


def measure(case, loaded_ct, method, loaded, out: Path | None, edge: int = 0) -> dict:
    """One row of the table for ``case`` (a :class:`real_cts.RealCT`) with lung ``method``; ``loaded_ct``: its
    :func:`load_case` pair."""
    from covidct.detection import detect
    from covidct.lungs import lung_volumes_ml, segment_lungs

    original, ct = loaded_ct
    start = time.perf_counter()
    card_method = None if loaded is None else (loaded[1].input or {}).get("lungs_method")
    labels = segment_lungs(ct, method=method or card_method)
    seconds = time.perf_counter() - start
    hu = sitk.GetArrayViewFromImage(ct)
    mask = sitk.GetArrayViewFromImage(labels)
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    thick = thick_dense(hu, mask > 0, ct.GetSpacing())
    volumes = lung_volumes_ml(labels)
    outside, tumour = split_tumour(thick, ct, case.tumour_lps)
    row = {
        "case": case.name,
        "covid": case.covid,
        "method": (method or f"{card_method} (card)") + (f" {edge:+d}px" if edge else ""),
        "right_ml": volumes["right lung"],
        "left_ml": volumes["left lung"],
        "thick_dense_ml": outside * voxel_ml,
        "tumour_thick_dense_ml": tumour * voxel_ml,
        "segment_s": seconds,
    }
    infection = None
    if case.labels_file is not None:
        infection = infection_slices(case.labels_file, original.GetSize()[2])
        if ct is not original:
            infection = copy_infection_slices(infection, original, ct)
        inside = (mask > 0)[infection]
        values = hu[infection]
        row["dense_in_infection_slices_ml"] = float((inside & (values > -300)).sum()) * voxel_ml
        row["ggo_in_infection_slices_ml"] = float((inside & (values > -750) & (values <= -300)).sum()) * voxel_ml
    if loaded is not None:
        result = detect(ct, model=loaded, lungs=moved_edge(labels, edge))
        heat = sitk.GetArrayViewFromImage(result.heatmap)
        hottest = np.unravel_index(int(np.argmax(heat)), heat.shape)
        row.update(
            probability=result.probability,
            threshold=result.threshold,
            label=result.label,
            hot_hu=float(hu[hottest]),
            hot_in_thick_dense=bool(thick[hottest]),
            hot_k=int(hottest[0]),
            heat_max=float(heat[hottest]),
            heat_half_ml=float((heat >= 0.5).sum()) * voxel_ml,
            warnings=result.warnings,
        )
        if infection is not None:
            row["hot_in_infection_slice"] = bool(infection[hottest[0]])
    if out is not None:
        save_review(
            out / f"{case.name}-{method or card_method}.png",
            hu,
            mask,
            thick,
            ct.GetSpacing(),
            f"{case.name} ({case.note}) - {row['method']} lungs - thick dense {row['thick_dense_ml']:.0f} ml",
        )
    return row


def save_review(path: Path, hu: np.ndarray, mask: np.ndarray, thick: np.ndarray, spacing, title: str) -> None:
    """Eight panels: the six axial slices with the most thick dense tissue in the mask (else evenly spaced
    through the lungs) and coronal slices through each lung; outlines of the labels, thick dense in yellow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lung_k = np.flatnonzero(mask.any(axis=(1, 2)))
    per_slice = thick.sum(axis=(1, 2))
    ks = [int(k) for k in np.argsort(per_slice)[::-1][:6] if per_slice[k] > 0]
    if lung_k.size:
        ks += [int(k) for k in np.linspace(lung_k[0], lung_k[-1], 8)[1:-1] if int(k) not in ks]
    ks = sorted(ks[:6])
    figure, axes = plt.subplots(2, 4, figsize=(16, 8.5), facecolor="black")
    views = [("axial", k) for k in ks] + [("coronal", j) for j in coronal_levels(mask)]
    for axis, (view, index) in zip(axes.ravel(), views, strict=True):
        if view == "axial":
            image, labels, dense, aspect = hu[index], mask[index], thick[index], spacing[1] / spacing[0]
        else:
            image, labels, dense = hu[:, index], mask[:, index], thick[:, index]
            aspect = spacing[2] / spacing[0]
        axis.imshow(
            image, cmap="gray", vmin=-1350, vmax=150, aspect=aspect, origin="upper" if view == "axial" else "lower"
        )
        overlay = np.zeros((*dense.shape, 4))
        overlay[dense] = (1.0, 0.9, 0.0, 0.8)
        axis.imshow(overlay, aspect=aspect, origin="upper" if view == "axial" else "lower")
        for value, colour in ((1, "red"), (2, "deepskyblue")):
            if (labels == value).any():
                axis.contour(labels == value, levels=[0.5], colors=colour, linewidths=0.7)
        axis.set_title(f"{view} {index}", color="white", fontsize=9)
        axis.axis("off")
    for axis in axes.ravel()[len(views) :]:
        axis.axis("off")
    figure.suptitle(title, color="white")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=70, facecolor="black")
    plt.close(figure)


def coronal_levels(mask: np.ndarray) -> list[int]:
    """Two coronal (y) indices: the mask's 40th and 60th percentile in y (through the lungs' middle)."""
    j = np.flatnonzero(mask.any(axis=(0, 2)))
    if j.size == 0:
        return []
    return [int(j[0] + f * (j[-1] - j[0])) for f in (0.45, 0.7)]


def print_header() -> None:
    print(
        f"{'case':<10} {'truth':<5} {'lungs':<17} {'R ml':>6} {'L ml':>6} {'thick ml':>8} {'tumour':>6} "
        f"{'inf.ggo':>7} {'inf.dense':>9} "
        f"{'P':>6} {'thr':>5} {'call':<4} {'heat':>4} {'≥.5 ml':>6} "
        f"{'hot HU':>7} {'hot thick':>9} {'hot inf':>7} {'seg s':>6}"
    )


def print_row(row: dict) -> None:
    prob = f"{row['probability']:.3f}" if "probability" in row else "-"
    heat = f"{row['heat_max']:.2f} {row['heat_half_ml']:>6.1f}" if "heat_max" in row else f"{'-':>4} {'-':>6}"
    thr = f"{row['threshold']:.2f}" if "threshold" in row else "-"
    call = ("pos" if row["label"] == "positive" else "neg") if "label" in row else "-"
    hot_hu = f"{row['hot_hu']:.0f}" if "hot_hu" in row else "-"
    print(
        f"{row['case']:<10} {'COVID' if row['covid'] else 'neg':<5} {row['method']:<17} {row['right_ml']:>6.0f} "
        f"{row['left_ml']:>6.0f} {row['thick_dense_ml']:>8.1f} {row['tumour_thick_dense_ml']:>6.1f} "
        f"{row.get('ggo_in_infection_slices_ml', float('nan')):>7.1f} "
        f"{row.get('dense_in_infection_slices_ml', float('nan')):>9.1f} {prob:>6} {thr:>5} {call:<4} {heat} "
        f"{hot_hu:>7} {str(row.get('hot_in_thick_dense', '-')):>9} {str(row.get('hot_in_infection_slice', '-')):>7} "
        f"{row['segment_s']:>6.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="decovnet", help="classifier (catalogue name or folder); 'none' skips it")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=[None],
        help="lung methods to compare: unet, threshold or the catalogue name of another lung UNet (default: the "
        "model card's)",
    )
    parser.add_argument("--cases", nargs="+", default=[ct.name for ct in REAL_CTS], choices=sorted(REAL_BY_NAME))
    parser.add_argument(
        "--extra-negatives",
        nargs="+",
        default=[],
        type=Path,
        metavar="CT",
        help="real non-COVID chest CTs from outside ../shared/data (other scanners), measured the same way",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--edge", type=int, default=0, help="erode (<0) or dilate (>0) the lungs by this many pixels in-plane"
    )
    parser.add_argument(
        "--scanner", choices=sorted(SCANNERS), help="measure every CT as another scanner might show it (SCANNERS)"
    )
    parser.add_argument("--out", type=Path, help="folder for the mask review PNGs and yardstick.json")
    args = parser.parse_args()

    from covidct.detection import load_classifier

    loaded = None if args.model == "none" else load_classifier(args.model, args.device)
    if loaded is None and args.methods == [None]:
        args.methods = ["unet"]
    print(
        f"model: {loaded[1].name if loaded else 'none'}"
        + (f", CTs as scanner copy '{args.scanner}'" if args.scanner else "")
    )
    print_header()
    rows = []
    extras = [
        RealCT(path.name.split(".")[0], str(path.resolve()), False, note="--extra-negatives")
        for path in args.extra_negatives
    ]
    for case in [REAL_BY_NAME[name] for name in args.cases] + extras:
        name = case.name
        if not case.file.exists():
            print(f"skipped {name}: {case.file} not found (set COVIDCT_SHARED_DATA)")
            continue
        loaded_ct = load_case(case, args.scanner)
        for method in args.methods:
            rows.append(measure(case, loaded_ct, method, loaded, args.out, args.edge))
            print_row(rows[-1])
            for warning in rows[-1].get("warnings", []):
                print(f"  warning: {warning}")
    negatives = [row for row in rows if not row["covid"]]
    if negatives:
        print(f"worst thick dense on a real negative: {max(r['thick_dense_ml'] for r in negatives):.1f} ml")
    if loaded is not None:
        wrong = [r["case"] for r in rows if (r["label"] == "positive") != r["covid"]]
        if negatives:
            hottest = max(negatives, key=lambda r: r["heat_max"])
            where = f"{hottest['case']}, {hottest['method']}"
            print(f"hottest heat on a real negative: {hottest['heat_max']:.2f} ({where})")
        print(f"misclassified: {', '.join(wrong) if wrong else 'none'} of {len(rows)}")
    if args.out is not None:
        from covidct.outputs import write_json

        write_json(args.out / "yardstick.json", {"model": loaded[1].name if loaded else None, "rows": rows})


if __name__ == "__main__":
    main()
