"""Prognosis: stepwise Cox model on deep + clinical features, risk groups, Kaplan-Meier, log-rank.

Synthetic cohorts with known effects: survival times drawn from a Cox model (exponential baseline,
log-hazard = 0.9·f0 − 0.8·f1 + 0.7·f2 + 0.03·(age − 60)), many pure-noise deep features, sex without
effect, uniform censoring. The fit must find the informative covariates with the right hazard-ratio
signs, and its risk groups must separate a held-out cohort; on noise-only cohorts it must not.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from covidct.cli import main
from covidct.errors import DatasetError
from covidct.prognosis import CoxModel, fit_prognosis, load_cohort, predict_prognosis
from covidct.prognosis.cox import fit_cox
from covidct.prognosis.encoding import Encoder, design_matrix
from covidct.prognosis.selection import stepwise

INFORMATIVE = {"f0": 0.9, "f1": -0.8, "f2": 0.7}


def make_cohort(
    seed: int, n: int, effects=INFORMATIVE, noise: int = 30, age_effect: float = 0.03, prefix: str = "P"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, clinical) DataFrames; features f0… (informative first, then noise), clinical id/days/event/age/sex."""
    rng = np.random.default_rng(seed)
    k = len(effects) + noise
    features = rng.normal(size=(n, k))
    age = rng.normal(60, 12, n).round()
    sex = rng.choice(["F", "M"], n)
    log_hazard = features[:, : len(effects)] @ np.array(list(effects.values())) + age_effect * (age - 60)
    event_time = rng.exponential(10.0 * np.exp(-log_hazard))
    censor_time = rng.uniform(5, 40, n)
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    feature_table = pd.DataFrame(features, columns=[f"f{i}" for i in range(k)]).round(6)
    feature_table.insert(0, "id", ids)
    clinical = pd.DataFrame(
        {
            "id": ids,
            "hospital_days": np.ceil(np.minimum(event_time, censor_time)),  # whole days
            "discharged": (event_time <= censor_time).astype(int),
            "age": age,
            "sex": sex,
        }
    )
    return feature_table, clinical


def write_cohort(folder, name, tables):
    features, clinical = tables
    features.to_csv(folder / f"{name}_features.csv", index=False)
    clinical.to_csv(folder / f"{name}_clinical.csv", index=False)
    return folder / f"{name}_features.csv", folder / f"{name}_clinical.csv"


def run_cli(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One CLI fit on a 200-case training cohort and a CLI prediction on a 200-case held-out cohort."""
    folder = tmp_path_factory.mktemp("prognosis")
    train = write_cohort(folder, "train", make_cohort(11, 200))
    held_out = write_cohort(folder, "heldout", make_cohort(12, 200, prefix="V"))
    assert (
        run_cli(
            "prognosis",
            "fit",
            "--features",
            train[0],
            "--clinical",
            train[1],
            "--time",
            "hospital_days",
            "--event",
            "discharged",
            "--out",
            folder / "model",
            "--quiet",
        )
        == 0
    )
    assert (
        run_cli(
            "prognosis",
            "predict",
            "--model",
            folder / "model",
            "--features",
            held_out[0],
            "--clinical",
            held_out[1],
            "--time",
            "hospital_days",
            "--event",
            "discharged",
            "--out",
            folder / "pred",
            "--quiet",
        )
        == 0
    )
    return {
        "folder": folder,
        "train": train,
        "held_out": held_out,
        "fit": json.loads((folder / "model" / "report.json").read_text(encoding="utf-8")),
        "validation": json.loads((folder / "pred" / "report.json").read_text(encoding="utf-8")),
    }


def test_fit_recovers_informative_features_and_signs(fitted):
    rows = {row["feature"]: row for row in fitted["fit"]["features"]}
    assert set(INFORMATIVE) | {"age"} <= set(rows)
    assert len(set(rows) - set(INFORMATIVE) - {"age"}) <= 3  # few noise features pass p < 0.05 by chance
    for name, beta in list(INFORMATIVE.items()) + [("age", 0.03 * 12)]:  # age: per SD (~12 years)
        assert (rows[name]["hazard_ratio"] > 1) == (beta > 0)
        assert abs(np.log(rows[name]["hazard_ratio"]) - beta) < 0.5 * abs(beta)  # per-SD log HR near the truth
        assert rows[name]["ci_low"] < rows[name]["hazard_ratio"] < rows[name]["ci_high"]
        assert rows[name]["p"] < 1e-3 and 0 <= rows[name]["ph_test_p"] <= 1
    assert "sex=F" not in rows and "sex=M" not in rows
    assert fitted["fit"]["concordance"] >= 0.7
    assert fitted["fit"]["logrank"]["p"] < 1e-6
    steps = fitted["fit"]["selection"]["steps"]
    assert steps[0]["action"] == "add" and steps[0]["p"] < 0.05


def test_held_out_risk_groups_separate(fitted):
    validation = fitted["validation"]
    assert validation["concordance"] >= 0.7
    assert validation["logrank"]["p"] < 0.01
    groups = validation["logrank"]["groups"]
    assert groups["high-risk"]["n"] + groups["low-risk"]["n"] == 200
    assert groups["high-risk"]["median_time"] < groups["low-risk"]["median_time"]  # adverse event: high hazard = sooner


def test_json_model_predictions_equal_lifelines(fitted):
    model = CoxModel.load(fitted["folder"] / "model")
    assert (fitted["folder"] / "model" / "model.json").read_text(encoding="utf-8").lstrip().startswith("{")
    train = load_cohort(*fitted["train"], time_column="hospital_days", event_column="discharged")
    held_out = load_cohort(*fitted["held_out"], time_column="hospital_days", event_column="discharged")
    fitter = fit_cox(design_matrix(model.encoder, train.covariates)[model.features], train.time, train.event)
    design = model.encoder.transform(held_out.covariates, model.features)
    hazard = model.hazard(held_out.covariates)
    np.testing.assert_allclose(hazard, fitter.predict_partial_hazard(design), rtol=1e-10)
    np.testing.assert_array_equal(model.median_time(hazard), fitter.predict_median(design))
    np.testing.assert_allclose(model.coefficients, fitter.params_[model.features], rtol=1e-8)
    # the cut-off is the median training hazard, and the CSV holds the JSON model's numbers
    assert model.cutoff == pytest.approx(
        np.median(fitter.predict_partial_hazard(design_matrix(model.encoder, train.covariates)[model.features])),
        rel=1e-10,
    )
    written = pd.read_csv(fitted["folder"] / "pred" / "predictions.csv", index_col="id")
    np.testing.assert_allclose(written.loc[hazard.index, "hazard"], hazard, rtol=1e-12)
    assert (written["risk_group"] == np.where(written["hazard"] > model.cutoff, "high-risk", "low-risk")).all()


def test_report_and_plot_files(fitted):
    model_dir, pred_dir = fitted["folder"] / "model", fitted["folder"] / "pred"
    for png in (
        model_dir / "km_training.png",
        model_dir / "pca_training.png",
        pred_dir / "km.png",
        pred_dir / "pca.png",
    ):
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
    markdown = (model_dir / "report.md").read_text(encoding="utf-8")
    assert "| f0 |" in markdown and "Log-rank test" in markdown and "Concordance index (training)" in markdown
    table = pd.read_csv(model_dir / "training_predictions.csv")
    assert list(table.columns) == ["id", "hospital_days", "discharged", "hazard", "risk_group", "median_time"]
    assert (table["risk_group"] == "high-risk").sum() == 100  # median split of 200 distinct hazards


def test_favourable_event_flips_risk_groups(fitted):
    model = CoxModel.load(fitted["folder"] / "model")
    held_out = load_cohort(*fitted["held_out"])
    hazard = model.hazard(held_out.covariates)
    adverse = model.risk_group(hazard)
    model.event_is_favourable = True
    favourable = model.risk_group(hazard)
    assert ((adverse == "high-risk") == (favourable == "low-risk")).all()
    assert (favourable[hazard > model.cutoff] == "low-risk").all()


def test_prediction_without_outcome_needs_only_the_models_columns(fitted, tmp_path):
    features, clinical = make_cohort(13, 30, prefix="N")
    clinical = clinical.drop(columns=["hospital_days", "discharged", "sex"]).assign(notes="free text", bmi="")
    features.to_csv(tmp_path / "f.csv", index=False)
    clinical.to_csv(tmp_path / "c.csv", index=False)
    assert (
        run_cli(
            "prognosis",
            "predict",
            "--model",
            fitted["folder"] / "model",
            "--features",
            tmp_path / "f.csv",
            "--clinical",
            tmp_path / "c.csv",
            "--out",
            tmp_path / "out",
            "--quiet",
        )
        == 0
    )
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert list(table.columns) == ["id", "hazard", "risk_group", "median_time"] and len(table) == 30
    assert not (tmp_path / "out" / "report.json").exists()


def test_noise_only_cohorts_rarely_split_held_out_cases():
    """AIC (the more permissive criterion) lets chance features in; their split must not hold on new cases."""
    splits = significant = 0
    for seed in range(10):
        train = _cohort_frames(make_cohort(100 + seed, 100, effects={}, noise=6, age_effect=0.0))
        held_out = _cohort_frames(make_cohort(200 + seed, 100, effects={}, noise=6, age_effect=0.0, prefix="V"))
        try:
            model, _, _ = fit_prognosis(train, direction="forward", criterion="aic")
        except DatasetError:
            continue  # nothing selected: no split at all
        _, report = predict_prognosis(model, held_out)
        splits += 1
        significant += report["logrank"]["p"] < 0.05
    assert splits >= 4  # the check below is not vacuous
    assert significant <= 1


def _cohort_frames(tables):
    """A Cohort built from in-memory tables through the CSV reader (as the CLI does)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        paths = write_cohort(Path(folder), "c", tables)
        return load_cohort(*paths, time_column="hospital_days", event_column="discharged")


@pytest.mark.parametrize("direction", ["forward", "backward", "both"])
def test_aic_selection_in_every_direction(direction):
    cohort = _cohort_frames(make_cohort(21, 120, noise=3, age_effect=0.0))
    encoder = Encoder.fit(cohort.covariates, cohort.categorical)
    design = design_matrix(encoder, cohort.covariates)
    selection = stepwise(design, cohort.time, cohort.event, direction=direction, criterion="aic")
    assert set(INFORMATIVE) <= set(selection.selected)
    aics = [step["aic"] for step in selection.steps]
    assert aics == sorted(aics, reverse=True)  # every move lowers the AIC
    if direction == "backward":
        assert all(step["action"] == "remove" for step in selection.steps)
        assert len(selection.selected) + len(selection.steps) == design.shape[1]


def test_encoder_reference_levels_and_unknown_level():
    covariates = pd.DataFrame(
        {"ward": ["A", "B", "B", "C", "B"], "age": [50.0, 60, 70, 80, 90], "site": ["x"] * 5},
        index=[f"c{i}" for i in range(5)],
    )
    encoder = Encoder.fit(covariates, categorical=["ward", "site"])
    assert encoder.categorical["ward"] == {"levels": ["A", "B", "C"], "reference": "B"}
    assert encoder.dropped == ["site"] and encoder.columns() == ["ward=A", "ward=C", "age"]
    design = design_matrix(Encoder.from_json(json.loads(json.dumps(encoder.to_json()))), covariates)
    np.testing.assert_allclose(design["age"], (covariates["age"] - 70) / covariates["age"].std())
    assert design["ward=A"].tolist() == [1, 0, 0, 0, 0] and design["ward=C"].tolist() == [0, 0, 0, 1, 0]
    with pytest.raises(DatasetError, match="column 'ward' of case 'c0' is 'D', a level the model has not seen"):
        encoder.transform(covariates.assign(ward=["D", "A", "B", "C", "B"]), encoder.columns())


def test_pca_command(tmp_path, capsys):
    features, clinical = make_cohort(31, 40, noise=5)
    features.to_csv(tmp_path / "f.csv", index=False)
    clinical.assign(**{"class": np.where(clinical["age"] > 60, "COVID-19", "other")}).to_csv(
        tmp_path / "l.csv", index=False
    )
    assert (
        run_cli(
            "prognosis",
            "pca",
            "--features",
            tmp_path / "f.csv",
            "--labels",
            tmp_path / "l.csv",
            "--column",
            "class",
            "--out",
            tmp_path / "pca.png",
        )
        == 0
    )
    assert (tmp_path / "pca.png").read_bytes()[:4] == b"\x89PNG"
    assert "PCA of 40 cases" in capsys.readouterr().out


def _bad(clinical: pd.DataFrame, **changes) -> pd.DataFrame:
    bad = clinical.copy().astype(object)
    for column, (row, value) in changes.items():
        bad.loc[row, column] = value
    return bad


BAD_CLINICAL = {
    "missing time column": (lambda c: c.drop(columns="hospital_days"), "there is no column 'hospital_days'"),
    "missing event column": (lambda c: c.drop(columns="discharged"), "there is no column 'discharged'"),
    "missing id column": (lambda c: c.rename(columns={"id": "patient"}), "has no 'id' column"),
    "non-numeric time": (
        lambda c: _bad(c, hospital_days=(3, "ten")),
        "column 'hospital_days' of case 'P0003' is 'ten', not a number",
    ),
    "empty time": (
        lambda c: _bad(c, hospital_days=(4, "")),
        "column 'hospital_days' of case 'P0004' is '', not a number",
    ),
    "negative time": (lambda c: _bad(c, hospital_days=(5, -2)), "of case 'P0005' is -2, a negative time"),
    "event not binary": (lambda c: _bad(c, discharged=(6, 2)), "column 'discharged' of case 'P0006' is '2'"),
    "no events": (lambda c: c.assign(discharged=0), "no case has discharged = 1"),
    "id mismatch": (lambda c: _bad(c, id=(7, "X999")), "have no row in the features file (first: 'X999')"),
    "duplicate id": (lambda c: _bad(c, id=(8, "P0001")), "lists case 'P0001' twice"),
    "non-numeric covariate": (lambda c: _bad(c, age=(9, "old")), "column 'age' of case 'P0009' is 'old', not a number"),
}


@pytest.mark.parametrize("name", sorted(BAD_CLINICAL))
def test_bad_clinical_csv_gives_one_sentence(tmp_path, capsys, name):
    change, expected = BAD_CLINICAL[name]
    features, clinical = make_cohort(41, 20, noise=2)
    features.to_csv(tmp_path / "f.csv", index=False)
    change(clinical).to_csv(tmp_path / "c.csv", index=False)
    code = run_cli(
        "prognosis",
        "fit",
        "--features",
        tmp_path / "f.csv",
        "--clinical",
        tmp_path / "c.csv",
        "--time",
        "hospital_days",
        "--event",
        "discharged",
        "--out",
        tmp_path / "m",
        "--quiet",
    )
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("covidct prognosis: error: ") and expected in err, err
    assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_bad_features_and_model_inputs(tmp_path, capsys, fitted):
    features, clinical = make_cohort(42, 20, noise=2)
    features.assign(f1=features["f1"].astype(object).where(features.index != 2, "n/a")).to_csv(
        tmp_path / "f.csv", index=False
    )
    clinical.to_csv(tmp_path / "c.csv", index=False)
    assert (
        run_cli(
            "prognosis",
            "fit",
            "--features",
            tmp_path / "f.csv",
            "--clinical",
            tmp_path / "c.csv",
            "--time",
            "hospital_days",
            "--event",
            "discharged",
            "--out",
            tmp_path / "m",
            "--quiet",
        )
        == 2
    )
    assert "column 'f1' of case 'P0002' is 'n/a', not a number" in capsys.readouterr().err
    features.to_csv(tmp_path / "f.csv", index=False)
    clinical.drop(columns="age").to_csv(tmp_path / "c.csv", index=False)
    assert (
        run_cli(
            "prognosis",
            "predict",
            "--model",
            fitted["folder"] / "model",
            "--features",
            tmp_path / "f.csv",
            "--clinical",
            tmp_path / "c.csv",
            "--out",
            tmp_path / "p",
            "--quiet",
        )
        == 2
    )
    assert "The model uses column" in capsys.readouterr().err
    assert (
        run_cli(
            "prognosis",
            "predict",
            "--model",
            tmp_path / "nowhere",
            "--features",
            tmp_path / "f.csv",
            "--clinical",
            tmp_path / "c.csv",
            "--out",
            tmp_path / "p",
            "--quiet",
        )
        == 2
    )
    assert "No prognosis model at" in capsys.readouterr().err


def test_cli_options_categorical_backward_aic_favourable(tmp_path):
    """A numeric-coded categorical column (ward 1/2/3, ward 3 doubles the hazard), backward AIC, penalizer."""
    features, clinical = make_cohort(51, 150, noise=2)
    rng = np.random.default_rng(51)
    ward = rng.choice([1, 2, 3], len(clinical), p=[0.5, 0.25, 0.25])
    # ward 3: every time halved, i.e. twice the hazard (exponential model)
    clinical["hospital_days"] = np.where(ward == 3, np.ceil(clinical["hospital_days"] * 0.5), clinical["hospital_days"])
    clinical = clinical.assign(ward=ward, unused=rng.normal(size=len(clinical)))  # left out by --covariates
    features.to_csv(tmp_path / "f.csv", index=False)
    clinical.to_csv(tmp_path / "c.csv", index=False)
    assert (
        run_cli(
            "prognosis",
            "fit",
            "--features",
            tmp_path / "f.csv",
            "--clinical",
            tmp_path / "c.csv",
            "--time",
            "hospital_days",
            "--event",
            "discharged",
            "--out",
            tmp_path / "m",
            "--quiet",
            "--selection",
            "backward",
            "--criterion",
            "aic",
            "--penalizer",
            "0.01",
            "--covariates",
            "age,sex,ward",
            "--categorical",
            "ward",
            "--event-favourable",
        )
        == 0
    )
    model = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    assert model["encoding"]["categorical"]["ward"] == {"levels": ["1", "2", "3"], "reference": "1"}
    assert "unused" not in model["encoding"]["order"] and model["event_is_favourable"] is True
    report = json.loads((tmp_path / "m" / "report.json").read_text(encoding="utf-8"))
    rows = {row["feature"]: row for row in report["features"]}
    assert rows["ward=3"]["hazard_ratio"] > 1.5 and set(INFORMATIVE) <= set(rows)
    assert all(step["action"] == "remove" for step in report["selection"]["steps"])
    table = pd.read_csv(tmp_path / "m" / "training_predictions.csv")
    favourable_high_risk = table["hazard"] <= model["cutoff"]  # favourable event: low hazard = high risk
    assert (table["risk_group"] == np.where(favourable_high_risk, "high-risk", "low-risk")).all()
    assert (
        report["logrank"]["groups"]["high-risk"]["median_time"] > report["logrank"]["groups"]["low-risk"]["median_time"]
    )
