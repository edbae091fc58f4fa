"""Prognosis: fit a Cox model on deep + clinical features, predict risk groups, plot deep-feature PCA.

  covidct prognosis fit --features F --clinical C --time hospital_days --event discharged --out MODEL_DIR
        [--selection forward|backward|both] [--criterion p|aic] [--event-favourable]
  covidct prognosis predict --model MODEL_DIR --features F --clinical C [--time T --event E] --out DIR
  covidct prognosis pca --features F --labels C --column class --out plot.png

Features CSV: id + f0…f63 (from 'covidct features'). Clinical CSV: id, follow-up time, event
(1 = happened, 0 = censored), covariates (numeric, or text = categorical). The fit standardises,
selects covariates stepwise, fits a multivariate Cox model (lifelines), splits risk groups at the
median training hazard and reports hazard ratios, concordance, Kaplan-Meier curves and log-rank p.
With --event-favourable (e.g. discharge) the low-hazard group (long stays) is the high-risk group.
"""

from __future__ import annotations

from ._options import add_progress_options, progress_from_args


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser("fit", help="fit a Cox model with stepwise selection on a training cohort")
    _inputs(fit)
    fit.add_argument("--time", required=True, help="follow-up time column of the clinical CSV (e.g. hospital_days)")
    fit.add_argument("--event", required=True, help="event column, 1 = happened, 0 = censored (e.g. discharged)")
    fit.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for model.json, report and plots")
    fit.add_argument(
        "--selection",
        choices=("forward", "backward", "both"),
        default="both",
        help="stepwise direction (default: both = forward with backward checks)",
    )
    fit.add_argument(
        "--criterion", choices=("p", "aic"), default="p", help="entry/removal by Wald p-value or by AIC (default: p)"
    )
    fit.add_argument("--p-enter", type=float, default=0.05, help="p-value to enter (default 0.05)")
    fit.add_argument("--p-remove", type=float, default=0.10, help="p-value to be removed (default 0.10)")
    fit.add_argument(
        "--penalizer",
        type=float,
        default=0.0,
        help="L2 penalty of lifelines' CoxPHFitter for stability, e.g. 0.01 (default 0)",
    )
    fit.add_argument("--covariates", help="comma-separated clinical columns to use (default: all but id/time/event)")
    fit.add_argument("--categorical", help="comma-separated numeric-coded clinical columns to treat as categorical")
    fit.add_argument(
        "--event-favourable",
        action="store_true",
        help="the event is good news (e.g. discharge): the low-hazard group is then the high-risk group",
    )
    add_progress_options(fit)

    predict = actions.add_parser("predict", help="hazards and risk groups of a cohort; KM and log-rank with outcomes")
    predict.add_argument("--model", required=True, metavar="MODEL_DIR", help="folder written by 'prognosis fit'")
    _inputs(predict, id_default=None)
    predict.add_argument("--time", help="follow-up time column (with --event: validation statistics)")
    predict.add_argument("--event", help="event column (with --time)")
    predict.add_argument("--out", required=True, metavar="DIR", help="folder for predictions.csv, report and plots")
    add_progress_options(predict)

    pca = actions.add_parser("pca", help="PCA scatter plot of deep features coloured by a label column")
    pca.add_argument("--features", required=True, metavar="CSV", help="features CSV (id + f0…f63)")
    pca.add_argument("--labels", required=True, metavar="CSV", help="CSV with the id column and the label column")
    pca.add_argument("--column", required=True, help="label column to colour by (e.g. class)")
    pca.add_argument("--id-column", default="id", help="ID column of both files (default: id)")
    pca.add_argument("--out", required=True, metavar="PNG", help="output image")


def _inputs(parser, id_default: str | None = "id") -> None:
    parser.add_argument("--features", required=True, metavar="CSV", help="deep features CSV (id + f0…f63)")
    parser.add_argument("--clinical", required=True, metavar="CSV", help="clinical CSV (id, time, event, covariates)")
    parser.add_argument(
        "--id-column",
        default=id_default,
        help="ID column of both files (default: " + (id_default or "the model's") + ")",
    )


def run(args) -> int:
    return {"fit": _fit, "predict": _predict, "pca": _pca}[args.action](args)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [item.strip() for item in text.split(",") if item.strip()]


def _fit(args) -> int:
    from ..prognosis import fit_prognosis, load_cohort, write_fit

    cohort = load_cohort(
        args.features,
        args.clinical,
        args.id_column,
        args.time,
        args.event,
        covariates=_split(args.covariates),
        categorical=_split(args.categorical),
    )
    with progress_from_args(args) as progress:
        model, report, table = fit_prognosis(
            cohort,
            args.selection,
            args.criterion,
            args.p_enter,
            args.p_remove,
            args.penalizer,
            args.event_favourable,
            id_column=args.id_column,
            time_column=args.time,
            event_column=args.event,
            progress=progress,
        )
        files = write_fit(model, report, table, cohort, args.out)
        progress.event(
            "result",
            features=model.features,
            concordance=round(report["concordance"], 4),
            logrank_p=report["logrank"]["p"],
            out=str(files["model"].parent),
        )
    if not args.progress_json:
        print(
            f"selected {', '.join(model.features)}; concordance {report['concordance']:.3f}; "
            f"log-rank p {report['logrank']['p']:.3g} (training); model: {files['model']}"
        )
    return 0


def _predict(args) -> int:
    from ..prognosis import CoxModel, load_cohort, predict_prognosis, write_prediction

    model = CoxModel.load(args.model)
    needed = model.source_columns()
    cohort = load_cohort(
        args.features,
        args.clinical,
        args.id_column or model.id_column,
        args.time,
        args.event,
        categorical=[c for c in model.encoder.categorical if c in needed],
        needed=needed,
    )
    with progress_from_args(args) as progress:
        table, report = predict_prognosis(model, cohort)
        files = write_prediction(model, table, report, cohort, args.out)
        fields = (
            {}
            if report is None
            else {"concordance": round(report["concordance"], 4), "logrank_p": report["logrank"]["p"]}
        )
        progress.event("result", cases=len(table), out=str(files["table"].parent), **fields)
    if not args.progress_json:
        groups = table["risk_group"].value_counts().to_dict()
        extra = (
            ""
            if report is None
            else (
                f"; concordance {report['concordance']:.3f}; log-rank p {report['logrank']['p']:.3g}"
                if report["logrank"]["p"] is not None
                else f"; concordance {report['concordance']:.3f}; one risk group only"
            )
        )
        print(
            f"{len(table)} cases: {groups.get('high-risk', 0)} high-risk, {groups.get('low-risk', 0)} low-risk"
            f"{extra}; predictions: {files['table']}"
        )
    return 0


def _pca(args) -> int:
    from pathlib import Path

    from ..errors import DatasetError
    from ..prognosis.pca import plot_feature_pca
    from ..prognosis.tables import read_csv_table, read_features

    features = read_features(args.features, args.id_column)
    labels = read_csv_table(args.labels, "labels", args.id_column)
    if args.column not in labels.columns:
        raise DatasetError(
            f"The labels file {Path(args.labels).name} has no column '{args.column}' "
            f"(columns: {', '.join(labels.columns)}); pass --column with one of them."
        )
    missing = [case for case in labels.index if case not in features.index]
    if missing:
        raise DatasetError(
            f"{len(missing)} cases of the labels file have no row in the features file (first: "
            f"'{missing[0]}'); make the '{args.id_column}' values of both files match."
        )
    explained = plot_feature_pca(
        features.loc[labels.index], labels[args.column], args.out, f"Deep features by {args.column}"
    )
    print(f"PCA of {len(labels)} cases: PC1 {explained[0]:.0%}, PC2 {explained[1]:.0%} of variance; plot: {args.out}")
    return 0
