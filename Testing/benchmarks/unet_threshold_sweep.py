"""The lung UNet's operating threshold on P(lung) (model card ``threshold``) against what it costs.

For each threshold, prints the share of the synthetic pleural consolidation of ``Testing/test_lungs.py``
inside the mask (its lesion sets, pooled over its seeds: ``costal`` and ``anywhere`` on P001 and
normal001, placed once with the bundled card's masks so that every threshold meets the same lesions)
and the thick dense tissue (``real_cts.thick_dense``, ml; lung tumours apart) inside the mask of each
real non-COVID CT. The bundled card's choice and these figures: ``CovidCTDetect/covidct/weights/README.md``.

    python Testing/benchmarks/unet_threshold_sweep.py --thresholds 0.5 0.3 0.18
    python Testing/benchmarks/unet_threshold_sweep.py --model path/to/candidate-unet --thresholds 0.5

``--model`` (a model folder or catalogue name) scores another UNet on the same lesions: they are still
placed with the bundled card's masks.

About 5 minutes per threshold on 2 CPU cores (20 lesion volumes and 5 real CTs segmented).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import test_lungs  # noqa: E402
from real_cts import REAL_CTS, split_tumour, thick_dense  # noqa: E402

from covidct.geometry import to_canonical  # noqa: E402
from covidct.io import load_ct  # noqa: E402
from covidct.lungs.unet_infer import load_unet, unet_labels  # noqa: E402
from covidct.models import load_model  # noqa: E402

PLACES = ("costal", "anywhere")


def lung_mask(ct: sitk.Image, model, card, threshold: float) -> np.ndarray:
    """Canonical ``(z, y, x)`` bool lung mask of ``ct`` by the bundled UNet at ``threshold``."""
    return unet_labels(to_canonical(ct), model=model, card_input=card.input, threshold=threshold) > 0


def coverage(name: str, place: str, model, card, threshold: float) -> float:
    """Share of the lesion voxels of ``test_lungs``' ``place`` volumes of CT ``name`` inside the mask."""
    make = test_lungs._costal if place == "costal" else test_lungs._anywhere
    inside = total = 0
    for seed in test_lungs.SEEDS:
        with_lesions, lesions = make(name, seed)
        inside += int(lung_mask(with_lesions, model, card, threshold)[lesions].sum())
        total += int(lesions.sum())
    return inside / total


def organ_ml(case, model, card, threshold: float) -> tuple[float, float]:
    """``(outside, tumour)`` ml of thick dense tissue inside the mask of a real CT at ``threshold``."""
    canonical = to_canonical(load_ct(case.file))
    mask = lung_mask(canonical, model, card, threshold)
    thick = thick_dense(sitk.GetArrayViewFromImage(canonical), mask, canonical.GetSpacing())
    voxel_ml = float(np.prod(canonical.GetSpacing())) / 1000.0
    return tuple(n * voxel_ml for n in split_tumour(thick, canonical, case.tumour_lps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.3, 0.18])
    parser.add_argument("--model", help="UNet to score (model folder or name; default: the bundled one)")
    args = parser.parse_args()
    model, card = load_model(args.model, "cpu") if args.model else load_unet("cpu")
    for name in test_lungs.LESION_CASES:  # the lesions go where the bundled card's masks put them
        test_lungs.real_lungs(name)
    negatives = [case for case in REAL_CTS if not case.covid]
    columns = [f"{name} {place}" for place in PLACES for name in test_lungs.LESION_CASES]
    header = [f"{'P(lung) >':>9}"] + [f"{c:>18}" for c in columns] + [f"{c.name:>9}" for c in negatives]
    print(" ".join(header))
    for threshold in args.thresholds:
        shares = [coverage(name, place, model, card, threshold) for place in PLACES for name in test_lungs.LESION_CASES]
        organs = [organ_ml(case, model, card, threshold) for case in negatives]
        print(
            f"{threshold:>9.3g} "
            + " ".join(f"{100 * share:>17.1f}%" for share in shares)
            + " "
            + " ".join(f"{outside:>6.1f} ml" for outside, _ in organs),
            flush=True,
        )
    print("thick dense: ml outside the lung tumours of POPI and A0001 (their tumour is lung)")


if __name__ == "__main__":
    main()
