"""Extract COVID-19Net's 64-d deep feature of every CT in a manifest (input of 'covidct prognosis').

  covidct features --manifest M --out features.csv [--weights covid19net-demo] [--device auto]

Writes a CSV with the manifest's case id and f0 … f63 (global average pooling of COVID-19Net's
last convolution). Labels are not needed; lung masks given in the manifest are used, others are
segmented.
"""

from __future__ import annotations

from ._options import add_device_option, add_lungs_method_option, add_progress_options, progress_from_args


def add_arguments(parser) -> None:
    parser.add_argument("--manifest", required=True, metavar="CSV", help="dataset manifest (id,ct[,lungs])")
    parser.add_argument("--out", required=True, metavar="CSV", help="output features CSV (id,f0,…,f63)")
    parser.add_argument(
        "--weights",
        default="covid19net-demo",
        metavar="NAME|DIR",
        help="COVID-19Net model: bundled name or folder (default: covid19net-demo)",
    )
    add_lungs_method_option(parser)
    add_device_option(parser)
    add_progress_options(parser)


def run(args) -> int:
    from ..evaluate.cohort import predict_cohort
    from ..outputs import atomic_path

    with progress_from_args(args) as progress:
        table = predict_cohort(
            args.manifest,
            args.weights,
            device=args.device,
            lungs_method=args.lungs_method,
            with_features=True,
            require_label=False,
            progress=progress,
        )
        features = table.drop(columns=["label", "probability"]).rename(columns={"case_id": "id"})
        with atomic_path(args.out) as tmp:
            features.to_csv(tmp, index=False)
        progress.event("result", cases=len(features), features=features.shape[1] - 1, out=str(args.out))
    if not args.progress_json:
        print(f"{len(features)} cases × {features.shape[1] - 1} features: {args.out}")
    return 0
