"""Run the whole pipeline on the bundled sample CT (and a copy with synthetic lesions) with the bundled weights.

The sample is a small real chest CT from the Chest Imaging Platform (a non-COVID COPDGene scan,
64×64×79 voxels of ~4 mm; CIP licence, see covidct/sample/README.md). The demo segments its lungs,
computes P(COVID-19) and a HiResCAM heat map, then repeats on a copy with synthetic COVID-19-like
lesions so the heat map has lesions to point at, and prints the probabilities, stage timings and
the output files. Research use only: the bundled weights are not clinically validated.
"""

from __future__ import annotations

from ..models.catalogue import DEFAULT_CLASSIFIER
from ._options import add_device_option, add_lungs_method_option, add_progress_options, progress_from_args


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="covidct-demo", help="output folder (default: ./covidct-demo)")
    parser.add_argument(
        "--model",
        default=DEFAULT_CLASSIFIER,
        help="bundled model name or a model folder holding model.json (default: decovnet)",
    )
    add_lungs_method_option(parser)
    add_device_option(parser)
    add_progress_options(parser)


def run(args) -> int:
    from ..demo import run_demo

    with progress_from_args(args) as progress:
        cases = run_demo(
            args.out, model=args.model, device=args.device, lungs_method=args.lungs_method, progress=progress
        )
        if args.progress_json:
            for case in cases:
                progress.event(
                    "result",
                    case=case.name,
                    probability=case.detection.probability,
                    label=case.detection.label,
                    lesion_heat_share=case.lesion_heat_share,
                    lesion_volume_share=case.lesion_volume_share,
                    peak_in_lesion=case.peak_in_lesion,
                    timings=case.detection.timings,
                    files={kind: str(path) for kind, path in case.paths.items()},
                )
            return 0
    for case in cases:
        r = case.detection
        print(f"{case.name}: {r.source}")
        print(f"  P(COVID-19) = {r.probability:.3f} -> {r.label} (threshold {r.threshold:g}, model {r.model})")
        if case.lesion_heat_share is not None:
            print(
                f"  heat inside the synthetic lesions: {100 * case.lesion_heat_share:.1f} % of the heat-map mass "
                f"(they are {100 * case.lesion_volume_share:.1f} % of the lung volume); "
                f"hottest voxel in a lesion: {'yes' if case.peak_in_lesion else 'no'}"
            )
        print(
            "  timings: "
            + ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in r.timings.items())
            + f" (total {sum(r.timings.values()):.2f} s)"
        )
        for kind, path in case.paths.items():
            print(f"  {kind:<10} {path}")
    print("Research software: these results are not a diagnosis; the weights are not clinically validated.")
    return 0
