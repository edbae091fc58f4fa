"""The CovidCTDetect module's prognosis logic on real MRML (slicer-core).

A prognosis model is fitted with ``covidct.prognosis`` on a synthetic cohort with known effects (one
informative deep feature, age, and a categorical 'smoker'). The logic must give, for one patient's
clinical values and deep feature, exactly the hazard, risk group and median time of
``covidct.prognosis.predict_prognosis`` on the same values read from CSV files; its form must list the
model's clinical covariates; the cohort view must hold one Kaplan-Meier step curve per risk group
(lifelines' estimate) and the report's hazard ratios. The deep feature of the real CIP CT comes from a
background ``covidct detect`` with a catalogue COVID-19Net (random weights).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import TEST_DATA

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML without the Slicer application) is not installed")

from covidct.detection import detect  # noqa: E402
from covidct.errors import DatasetError, ModelError, UsageError  # noqa: E402
from covidct.prognosis import CoxModel, fit_prognosis, load_cohort, predict_prognosis, write_fit  # noqa: E402
from CovidCTDetectLib.prognosis_logic import (
    PrognosisLogic,
    clinical_fields,
    deep_feature_columns,  # noqa: E402
    step_points,
)
from CovidCTDetectLib.segmentations import SegmentSpec, segmentation_from_labelmap  # noqa: E402
from CovidCTDetectLib.volumes import volume_from_image  # noqa: E402

CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
MASK = TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"
FEATURES = 64  # of COVID-19Net
COHORT_FEATURES = 8  # f0…f7 in the synthetic cohort (fewer candidates: a fast stepwise fit)


def make_cohort(seed: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features f0…f7, clinical id/days/event/age/smoker): log-hazard = 1.0·f0 + 0.05·(age − 60) + 0.9·[smoker]."""
    rng = np.random.default_rng(seed)
    deep = rng.normal(size=(n, COHORT_FEATURES))
    age = rng.normal(60, 12, n).round()
    smoker = rng.choice(["no", "yes"], n)
    log_hazard = 1.0 * deep[:, 0] + 0.05 * (age - 60) + 0.9 * (smoker == "yes")
    event_time = rng.exponential(10.0 * np.exp(-log_hazard))
    censor_time = rng.uniform(5, 40, n)
    ids = [f"P{i:03d}" for i in range(n)]
    features = pd.DataFrame(deep, columns=[f"f{i}" for i in range(COHORT_FEATURES)]).round(6)
    features.insert(0, "id", ids)
    clinical = pd.DataFrame(
        {
            "id": ids,
            "days": np.ceil(np.minimum(event_time, censor_time)),
            "death": (event_time <= censor_time).astype(int),
            "age": age,
            "smoker": smoker,
        }
    )
    return features, clinical


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A model fitted (forward p-value selection) on 150 synthetic cases and written by ``write_fit``."""
    folder = tmp_path_factory.mktemp("prognosis")
    features, clinical = make_cohort(3, 150)
    features.to_csv(folder / "features.csv", index=False)
    clinical.to_csv(folder / "clinical.csv", index=False)
    cohort = load_cohort(folder / "features.csv", folder / "clinical.csv", time_column="days", event_column="death")
    model, report, table = fit_prognosis(cohort, direction="forward", time_column="days", event_column="death")
    write_fit(model, report, table, cohort, folder / "model")
    return folder / "model"


def test_form_fields_are_the_models_clinical_covariates(model_folder):
    model = CoxModel.load(model_folder)
    assert {"f0", "age", "smoker=yes"} <= set(model.features)
    assert deep_feature_columns(model)[0] == "f0"
    fields = {field.name: field for field in clinical_fields(model)}
    assert set(fields) == {"age", "smoker"}
    assert fields["age"].kind == "numeric" and fields["age"].default == pytest.approx(
        model.encoder.numeric["age"]["mean"]
    )
    assert fields["smoker"].kind == "categorical" and fields["smoker"].levels == ("no", "yes")
    assert fields["smoker"].default == model.encoder.categorical["smoker"]["reference"]


@pytest.mark.parametrize("age, smoker, f0", [(45.0, "no", -1.2), (72.0, "yes", 0.8), (60.0, "yes", 0.0)])
def test_hazard_and_risk_group_equal_covidct_prognosis_prediction(model_folder, tmp_path, age, smoker, f0):
    features = np.random.default_rng(7).normal(size=FEATURES).round(6)
    features[0] = f0
    result = PrognosisLogic().predict(model_folder, {"age": age, "smoker": smoker}, features)
    # the library's prediction from CSV files holding the same values
    pd.DataFrame([["X", *features]], columns=["id"] + [f"f{i}" for i in range(FEATURES)]).to_csv(
        tmp_path / "f.csv", index=False
    )
    pd.DataFrame({"id": ["X"], "age": [age], "smoker": [smoker]}).to_csv(tmp_path / "c.csv", index=False)
    model = CoxModel.load(model_folder)
    cohort = load_cohort(tmp_path / "f.csv", tmp_path / "c.csv", categorical=["smoker"], needed=model.source_columns())
    table, report = predict_prognosis(model, cohort)
    assert report is None
    assert result.hazard == pytest.approx(float(table["hazard"].iloc[0]), rel=1e-12)
    assert result.riskGroup == table["risk_group"].iloc[0]
    assert result.medianTime == table["median_time"].iloc[0]
    assert result.highHazard == (result.hazard > model.cutoff) and result.cutoff == model.cutoff
    assert result.riskGroup == ("high-risk" if result.highHazard else "low-risk")  # death: an adverse event
    assert (result.timeColumn, result.eventColumn, result.eventIsFavourable) == ("days", "death", False)


def test_the_effects_move_the_hazard_the_right_way(model_folder):
    logic, features = PrognosisLogic(), np.zeros(FEATURES)
    base = logic.predict(model_folder, {"age": 60, "smoker": "no"}, features).hazard
    assert logic.predict(model_folder, {"age": 75, "smoker": "no"}, features).hazard > base
    assert logic.predict(model_folder, {"age": 60, "smoker": "yes"}, features).hazard > base
    features[0] = 1.5
    assert logic.predict(model_folder, {"age": 60, "smoker": "no"}, features).hazard > base


def test_bad_values_and_folders_give_one_sentence(model_folder, tmp_path):
    logic, features = PrognosisLogic(), np.zeros(FEATURES)
    with pytest.raises(DatasetError, match="'age' is missing"):
        logic.predict(model_folder, {"smoker": "no"}, features)
    with pytest.raises(DatasetError, match="'age' is 'old', not a number"):
        logic.predict(model_folder, {"age": "old", "smoker": "no"}, features)
    with pytest.raises(DatasetError, match="level the model has not seen"):
        logic.predict(model_folder, {"age": 50, "smoker": "sometimes"}, features)
    with pytest.raises(DatasetError, match="only 0 feature values"):
        logic.predict(model_folder, {"age": 50, "smoker": "no"}, None)
    with pytest.raises(ModelError, match="No prognosis model"):
        logic.predict(tmp_path, {"age": 50, "smoker": "no"}, features)
    with pytest.raises(UsageError, match="Choose the folder"):
        logic.predict("", {}, features)


def test_cohort_view_kaplan_meier_chart_and_hazard_ratio_table(mrml_scene, model_folder):
    from lifelines import KaplanMeierFitter

    view = PrognosisLogic().showCohort(model_folder)
    report = json.loads((model_folder / "report.json").read_text(encoding="utf-8"))
    chart = view.chartNode
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    assert view.concordance == report["concordance"] and view.logrankP == report["logrank"]["p"]
    table = pd.read_csv(model_folder / "training_predictions.csv")
    for n, group in enumerate(("high-risk", "low-risk")):
        series = chart.GetNthPlotSeriesNode(n)
        member = table["risk_group"] == group
        assert series.GetName().endswith(f"{group} (n={member.sum()})")
        data = series.GetTableNode()
        x = slicer.util.arrayFromTableColumn(data, series.GetXColumnName())
        y = slicer.util.arrayFromTableColumn(data, series.GetYColumnName())
        estimate = KaplanMeierFitter().fit(table.loc[member, "days"], table.loc[member, "death"]).survival_function_
        expected_x, expected_y = step_points(estimate.index, estimate.iloc[:, 0])
        np.testing.assert_allclose(x, expected_x)
        np.testing.assert_allclose(y, expected_y)
        assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) <= 0) and y[0] == 1.0  # a falling step curve
    hazard_ratios = view.hazardRatioTableNode.GetTable()
    assert hazard_ratios.GetNumberOfRows() == len(report["features"])
    for row, feature in enumerate(report["features"]):
        assert hazard_ratios.GetColumnByName("Covariate").GetValue(row) == feature["feature"]
        assert hazard_ratios.GetColumnByName("Hazard ratio").GetValue(row) == pytest.approx(feature["hazard_ratio"])
        assert (
            hazard_ratios.GetColumnByName("95% CI low").GetValue(row)
            < feature["hazard_ratio"]
            < hazard_ratios.GetColumnByName("95% CI high").GetValue(row)
        )


def test_cohort_view_needs_the_whole_fit_folder(mrml_scene, model_folder, tmp_path):
    (tmp_path / "model.json").write_text((model_folder / "model.json").read_text(encoding="utf-8"))
    with pytest.raises(ModelError, match="has no report.json"):
        PrognosisLogic().showCohort(tmp_path)
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode") == 0


def test_prognosis_of_the_real_ct_from_its_deep_feature(mrml_scene, models_dir, model_folder):
    volume = volume_from_image(sitk.ReadImage(str(CT)), name="CIP CT")
    lungs = segmentation_from_labelmap(
        sitk.ReadImage(str(MASK)), (SegmentSpec(1, "lungs", "Lungs", (1, 0, 0), ""),), "lungs", mrml_scene
    )
    logic = PrognosisLogic()
    cancelled = logic.startFeatures(volume, "tiny-covid19net", lungs, device="cpu")
    cancelled.cancel()
    assert cancelled.temporary and not any(folder.exists() for folder in cancelled.temporary)
    before = set(Path(tempfile.gettempdir()).glob("covidct-features-*"))
    features = logic.computeFeatures(volume, "tiny-covid19net", lungs, device="cpu")
    assert (
        set(Path(tempfile.gettempdir()).glob("covidct-features-*")) <= before
    )  # its outputs deleted (inputs: cancel test above)
    expected = detect(str(CT), model="tiny-covid19net", lungs=str(MASK), device="cpu", heatmap=False).features
    np.testing.assert_allclose(features, expected, atol=1e-4)
    assert mrml_scene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 0  # a feature run adds no results row
    result = logic.predict(model_folder, {"age": 66, "smoker": "yes"}, features)
    model = CoxModel.load(model_folder)
    covariates = pd.DataFrame([{**{f"f{i}": v for i, v in enumerate(features)}, "age": 66.0, "smoker": "yes"}])
    assert result.hazard == pytest.approx(float(model.hazard(covariates).iloc[0]), rel=1e-12)
    with pytest.raises(UsageError, match="deep features for prognosis come from a covid19net model"):
        logic.startFeatures(volume, "random-decovnet", lungs)
