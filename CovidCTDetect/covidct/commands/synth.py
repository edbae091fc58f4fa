"""Make a labelled training set: synthetic COVID-19 lesions inserted into the lungs of real CTs.

Every background CT gives positives (with ground-glass opacity, consolidation and crazy-paving
lesions, irregular, multifocal, peripheral, often bilateral) and negatives (the same CT, no lesion,
fresh noise), so the lesions are the only signal. Writes NIfTI CTs, lung masks, lesion masks and a
manifest.csv usable by 'covidct train'. The volumes are synthetic: never report results on them as
clinical performance.

example: covidct synth normal001.nii.gz popi.nii.gz --out synth --positives 40 --negatives 40 --seed 1
"""

from __future__ import annotations

from ..lungs import METHODS
from ._options import add_device_option, add_progress_options, progress_from_args


def add_arguments(parser) -> None:
    parser.add_argument("ct", nargs="+", metavar="CT", help="real lesion-free chest CT files or DICOM folders")
    parser.add_argument("--out", required=True, help="output folder (must not hold a manifest.csv yet)")
    parser.add_argument("--positives", type=int, required=True, metavar="N", help="number of volumes with lesions")
    parser.add_argument("--negatives", type=int, required=True, metavar="N", help="number of volumes without")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    parser.add_argument(
        "--lungs", nargs="+", metavar="MASK", help="lung masks, one per CT in the same order (default: segment them)"
    )
    parser.add_argument(
        "--lungs-method",
        choices=METHODS,
        default="threshold",
        help="lung segmentation for CTs without --lungs (default: threshold)",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=("ggo", "consolidation", "crazy_paving"),
        default=["ggo", "consolidation", "crazy_paving"],
        help="lesion kinds to draw from",
    )
    parser.add_argument("--lesions", default="2-6", metavar="MIN-MAX", help="lesions per positive (default 2-6)")
    parser.add_argument("--size-mm", default="15-60", metavar="MIN-MAX", help="lesion diameter in mm (default 15-60)")
    parser.add_argument(
        "--strength", type=float, default=1.0, help="scale of the lesions' density change, 1 = typical (default 1)"
    )
    parser.add_argument(
        "--background-noise",
        type=float,
        default=0.25,
        help="fresh noise added to every volume, as a fraction of the CT's own noise (default 0.25)",
    )
    parser.add_argument(
        "--negative-masses",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the negatives that get a non-COVID lesion, a solitary solid nodule or mass of 10-50 mm "
        "(default 0)",
    )
    add_device_option(parser)
    add_progress_options(parser)


def run(args) -> int:
    from ..data.synth import LesionOptions, make_synth_dataset

    options = LesionOptions(
        kinds=tuple(args.kinds),
        n_lesions=_range(args.lesions, "--lesions", int),
        size_mm=_range(args.size_mm, "--size-mm", float),
        strength=args.strength,
    )
    with progress_from_args(args) as progress:
        manifest = make_synth_dataset(
            args.ct,
            args.out,
            args.positives,
            args.negatives,
            seed=args.seed,
            lungs=args.lungs,
            lungs_method=args.lungs_method,
            device=args.device,
            options=options,
            background_noise=args.background_noise,
            progress=progress,
            negative_masses=args.negative_masses,
        )
        progress.event("result", manifest=str(manifest), positives=args.positives, negatives=args.negatives)
    return 0


def _range(text: str, option: str, kind):
    from ..errors import UsageError

    low, sep, high = text.partition("-")
    try:
        values = (kind(low), kind(high if sep else low))
    except ValueError:
        raise UsageError(f"{option} '{text}' is not a range; write MIN-MAX, e.g. 2-6.") from None
    return values
