"""Evaluate a COVID-19 classifier: ROC/PR AUC with CI, operating points, threshold table, plots.

Two forms:

  covidct evaluate --predictions preds.csv --out DIR
      from per-case labels and probabilities (CSV with case_id,label,probability, or the
      DeCoVNet authors' whitespace-separated .txt: path case_id p(negative) p(COVID) label);
  covidct evaluate --manifest test.csv --weights decovnet-demo --out DIR [--device auto]
      runs the model over every CT of a labelled manifest first (writes DIR/predictions.csv).

Writes DIR/report.json, DIR/report.md, DIR/roc.png and DIR/pr.png. In the threshold table a case is
positive when its probability is > the threshold (the DeCoVNet paper's rule). Columns are named by
what they compute: the paper's Table 2 columns "PPV"/"NPV" are in fact sensitivity/specificity.
"""

from __future__ import annotations

from ._options import add_device_option, add_lungs_method_option, add_progress_options, progress_from_args


def add_arguments(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--predictions", metavar="CSV", help="per-case predictions (.csv, or the DeCoVNet authors' .txt)"
    )
    source.add_argument(
        "--manifest", metavar="CSV", help="labelled dataset manifest (id,ct,label[,lungs]) to run a model over"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for the report and plots")
    parser.add_argument("--label-column", default="label", help="label column of --predictions (default: label)")
    parser.add_argument(
        "--probability-column", default="probability", help="P(COVID-19) column of --predictions (default: probability)"
    )
    parser.add_argument("--id-column", default="case_id", help="case ID column of --predictions (default: case_id)")
    parser.add_argument(
        "--weights", metavar="NAME|DIR", help="with --manifest: bundled model name or folder with weights + model card"
    )
    add_lungs_method_option(parser)
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        metavar="N",
        help="bootstrap resamples for the ROC AUC's 95%% CI (default: 2000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap (default: 0)")
    add_device_option(parser)
    add_progress_options(parser)


def run(args) -> int:
    from pathlib import Path

    from ..errors import UsageError
    from ..evaluate import evaluate_predictions, make_predictions, read_predictions, write_report

    if args.bootstrap < 100:
        raise UsageError(
            f"--bootstrap {args.bootstrap} is too few resamples for a 95% interval; use at least 100 (default 2000)."
        )
    with progress_from_args(args) as progress:
        if args.predictions:
            predictions = read_predictions(args.predictions, args.label_column, args.probability_column, args.id_column)
        else:
            if not args.weights:
                raise UsageError(
                    "--manifest needs --weights (a bundled model name such as decovnet-demo, or a model folder)."
                )
            from ..evaluate.cohort import predict_cohort
            from ..outputs import atomic_path

            table = predict_cohort(
                args.manifest, args.weights, device=args.device, lungs_method=args.lungs_method, progress=progress
            )
            with atomic_path(Path(args.out) / "predictions.csv") as tmp:
                table.to_csv(tmp, index=False)
            predictions = make_predictions(
                table["label"],
                table["probability"],
                table["case_id"],
                source=f"the predictions on {Path(args.manifest).name}",
            )
        report = evaluate_predictions(predictions, n_resamples=args.bootstrap, seed=args.seed, progress=progress)
        files = write_report(report, predictions, args.out)
        ci = report["roc_auc_ci"]
        progress.event(
            "result",
            roc_auc=round(report["roc_auc"], 4),
            ci_low=round(ci["low"], 4),
            ci_high=round(ci["high"], 4),
            average_precision=round(report["pr_auc"]["average_precision"], 4),
            out=str(files["json"].parent),
        )
    if not args.progress_json:  # stdout then carries only JSON lines
        print(
            f"ROC AUC {report['roc_auc']:.3f} (95% CI {ci['low']:.3f}-{ci['high']:.3f}), "
            f"PR AUC {report['pr_auc']['average_precision']:.3f} (average precision) / "
            f"{report['pr_auc']['trapezoidal']:.3f} (trapezoidal), {report['n_cases']} cases; "
            f"report: {files['markdown']}"
        )
    return 0
