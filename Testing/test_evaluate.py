"""Evaluation: reproduce the DeCoVNet paper's figures from the authors' released test predictions.

The reference files live in ``../shared/reference`` (see its README): 131 test CTs, 75 positive.
Paper (abstract, results, Table 2): ROC AUC 0.959, PR AUC 0.975/0.976, Table 2 accuracies, an
operating point with sensitivity 0.907 and specificity 0.911, sensitivity ≈ 0.95 → specificity 0.786,
specificity ≈ 0.95 → sensitivity 0.880; at 0.5 sensitivity 0.840, specificity 0.982 (printed as
"PPV"/"NPV"), PPV 0.984, NPV 0.821.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import REPO
from sklearn.metrics import roc_auc_score

from covidct.cli import main
from covidct.errors import DatasetError
from covidct.evaluate import evaluate_predictions, make_predictions, read_predictions, write_report
from covidct.evaluate.bootstrap import bootstrap_roc_auc, weighted_roc_auc
from covidct.evaluate.metrics import balanced_point, operating_point, youden_point

REFERENCE = REPO.parent / "shared" / "reference"
PAPER_ACCURACY = (0.893, 0.908, 0.908, 0.901, 0.901, 0.878, 0.870, 0.855, 0.847)
PAPER_TABLE2_PPV_COLUMN = (0.933, 0.880, 0.867, 0.840, 0.840, 0.800, 0.787, 0.760, 0.733)  # = sensitivity
PAPER_TABLE2_NPV_COLUMN = (0.839, 0.946, 0.964, 0.982, 0.982, 0.982, 0.982, 0.982, 1.000)  # = specificity


def reference(name: str = "decovnet-released-test-predictions.csv"):
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"reference predictions not found at {path}")
    return path


@pytest.fixture(scope="module")
def released():
    return read_predictions(reference())


@pytest.fixture(scope="module")
def report(released):
    return evaluate_predictions(released)


def test_reads_both_reference_formats_identically(released):
    txt = read_predictions(reference("decovnet-released-test-predictions.txt"))
    assert len(released) == len(txt) == 131
    assert int(released.labels.sum()) == 75
    np.testing.assert_array_equal(released.case_ids, txt.case_ids)
    np.testing.assert_array_equal(released.labels, txt.labels)
    np.testing.assert_allclose(released.probabilities, txt.probabilities, rtol=0, atol=1e-15)


def test_reproduces_paper_auc_and_table2(report):
    assert round(report["roc_auc"], 3) == 0.959
    # both PR AUC estimators give 0.9757/0.9756 -> 0.976 (abstract); the results section's 0.975 is a truncation
    assert round(report["pr_auc"]["average_precision"], 3) == 0.976
    assert round(report["pr_auc"]["trapezoidal"], 3) == 0.976
    assert 0.975 <= report["pr_auc"]["trapezoidal"] < report["pr_auc"]["average_precision"] < 0.976
    table = report["threshold_table"]
    assert [row["threshold"] for row in table] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert [round(row["accuracy"], 3) for row in table] == list(PAPER_ACCURACY)
    # the paper's "PPV" and "NPV" columns are the sensitivity and the specificity
    assert [round(row["sensitivity"], 3) for row in table] == list(PAPER_TABLE2_PPV_COLUMN)
    assert [round(row["specificity"], 3) for row in table] == list(PAPER_TABLE2_NPV_COLUMN)
    at_half = table[4]
    assert (round(at_half["sensitivity"], 3), round(at_half["specificity"], 3)) == (0.840, 0.982)
    assert (round(at_half["ppv"], 3), round(at_half["npv"], 3)) == (0.984, 0.821)
    assert (at_half["tp"], at_half["fp"], at_half["tn"], at_half["fn"]) == (
        63,
        1,
        55,
        12,
    )  # "12 false negatives, 1 false positive"


def test_operating_points_match_the_paper(released):
    y, p = released.labels, released.probabilities
    balanced = balanced_point(y, p)
    assert (round(balanced.sensitivity, 3), round(balanced.specificity, 3)) == (0.907, 0.911)
    # "nearest" (the paper's reading of "approximately 0.95") reproduces both figures
    high_sens = operating_point(y, p, "sensitivity", 0.95, "nearest")
    assert (round(high_sens.sensitivity, 3), round(high_sens.specificity, 3)) == (0.947, 0.786)
    high_spec = operating_point(y, p, "specificity", 0.95, "nearest")
    assert (round(high_spec.sensitivity, 3), round(high_spec.specificity, 3)) == (0.880, 0.946)
    # "at_least" guarantees the target: sensitivity >= 0.95 costs specificity (0.554, not 0.786)
    sens_floor = operating_point(y, p, "sensitivity", 0.95, "at_least")
    assert sens_floor.sensitivity >= 0.95 and (round(sens_floor.sensitivity, 3), round(sens_floor.specificity, 3)) == (
        0.960,
        0.554,
    )
    spec_floor = operating_point(y, p, "specificity", 0.95, "at_least")
    assert (round(spec_floor.sensitivity, 3), round(spec_floor.specificity, 3)) == (0.880, 0.964)
    youden = youden_point(y, p)
    assert (round(youden.sensitivity, 3), round(youden.specificity, 3)) == (0.880, 0.964)
    # thresholds are ROC vertices restated for the report's one rule: p > threshold reproduces the point
    for point in (balanced, high_sens, high_spec, sens_floor, youden):
        called = p > point.threshold
        assert called[y == 1].mean() == pytest.approx(point.sensitivity)
        assert (~called[y == 0]).mean() == pytest.approx(point.specificity)


def test_bootstrap_ci_is_fast_seeded_and_contains_the_auc(released, report):
    y, p = released.labels, released.probabilities
    start = time.perf_counter()
    samples = bootstrap_roc_auc(y, p, 2000, seed=0)
    assert time.perf_counter() - start < 1.0
    np.testing.assert_array_equal(samples, bootstrap_roc_auc(y, p, 2000, seed=0))
    assert not np.array_equal(samples, bootstrap_roc_auc(y, p, 2000, seed=1))
    ci = report["roc_auc_ci"]
    assert ci["low"] < report["roc_auc"] < ci["high"] <= 1.0
    assert 0.90 < ci["low"] < 0.94 and 0.97 < ci["high"] < 0.995


def test_vectorised_resampled_auc_equals_sklearn(released):
    y, p = released.labels, np.round(released.probabilities, 2)  # rounding creates ties
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rng = np.random.default_rng(7)
    draws = [(rng.choice(len(pos), len(pos)), rng.choice(len(neg), len(neg))) for _ in range(5)]
    w_pos = np.array([np.bincount(a, minlength=len(pos)) for a, _ in draws])
    w_neg = np.array([np.bincount(b, minlength=len(neg)) for _, b in draws])
    expected = [roc_auc_score(y[np.r_[pos[a], neg[b]]], p[np.r_[pos[a], neg[b]]]) for a, b in draws]
    np.testing.assert_allclose(weighted_roc_auc(y, p, w_pos, w_neg), expected, rtol=0, atol=1e-12)


def test_cli_writes_report_files(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--predictions", str(reference()), "--out", str(out), "--quiet"]) == 0
    assert "ROC AUC 0.959" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["pr.png", "report.json", "report.md", "roc.png"]
    for png in ("roc.png", "pr.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / png).stat().st_size > 10_000
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert round(data["roc_auc"], 3) == 0.959 and len(data["threshold_table"]) == 9
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| 0.5 | 0.901 | 0.840 | 0.982 | 0.984 | 0.821 |" in markdown
    assert "are the sensitivity and the specificity" in markdown


def test_cli_reads_renamed_columns(tmp_path):
    source = reference().read_text(encoding="utf-8").replace("case_id,label,probability", "id,truth,p_covid")
    (tmp_path / "renamed.csv").write_text(source)
    assert (
        main(
            [
                "evaluate",
                "--predictions",
                str(tmp_path / "renamed.csv"),
                "--out",
                str(tmp_path / "o"),
                "--quiet",
                "--label-column",
                "truth",
                "--probability-column",
                "p_covid",
                "--id-column",
                "id",
            ]
        )
        == 0
    )
    assert round(json.loads((tmp_path / "o" / "report.json").read_text(encoding="utf-8"))["roc_auc"], 3) == 0.959


def test_zero_denominators_are_null_not_nan(tmp_path):
    predictions = make_predictions([0, 0, 1, 1], [0.05, 0.2, 0.3, 0.95])
    report = evaluate_predictions(predictions, n_resamples=200)
    at_09 = report["threshold_table"][-1]  # only one case called positive
    assert at_09["ppv"] == 1.0 and at_09["sensitivity"] == 0.5
    only_low = evaluate_predictions(make_predictions([0, 1, 0, 1], [0.0, 0.05, 0.02, 0.08]), n_resamples=200)
    assert np.isnan(only_low["threshold_table"][0]["ppv"])  # nothing > 0.1: PPV undefined
    write_report(only_low, make_predictions([0, 1, 0, 1], [0.0, 0.05, 0.02, 0.08]), tmp_path)
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["threshold_table"][0]["ppv"] is None


def test_unattainable_target_gives_the_nothing_positive_vertex(tmp_path):
    tied = make_predictions([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3])  # uninformative scores
    report = evaluate_predictions(tied, n_resamples=200)
    spec = [p for p in report["operating_points"] if p["name"] == "spec~0.95"]
    assert all(p["threshold"] == np.inf and p["sensitivity"] == 0 and p["specificity"] == 1 for p in spec)
    write_report(report, tied, tmp_path)
    saved = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["operating_points"]
    assert [p["threshold"] for p in saved if p["name"] == "spec~0.95"] == [None, None]
    assert "∞ (no case positive)" in (tmp_path / "report.md").read_text(encoding="utf-8")


BAD_CSVS = {
    "missing column": ("case_id,label,prob\na,1,0.9\nb,0,0.1\n", "has no column 'probability'"),
    "non-numeric": (
        "case_id,label,probability\na,1,high\nb,0,0.1\n",
        "the probability 'high' of data row 1 is not a number",
    ),
    "empty probability": ("case_id,label,probability\na,1,\nb,0,0.1\n", "of data row 1 is not a number"),
    "outside 0..1": (
        "case_id,label,probability\na,1,97\nb,0,0.1\n",
        "the probability 97 of data row 1 is outside 0..1",
    ),
    "labels not binary": ("case_id,label,probability\na,2,0.9\nb,0,0.1\n", "the label 2 of data row 1 is not binary"),
    "one class only": ("case_id,label,probability\na,1,0.9\nb,1,0.1\n", "all cases are positive"),
    "no rows": ("case_id,label,probability\n", "there are no cases"),
}


@pytest.mark.parametrize("name", sorted(BAD_CSVS))
def test_bad_predictions_give_one_sentence(tmp_path, capsys, name):
    text, expected = BAD_CSVS[name]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_predictions(path)
    assert main(["evaluate", "--predictions", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("covidct evaluate: error: ") and expected in err
    assert err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_bad_txt_line_after_data_is_reported(tmp_path):
    lines = reference("decovnet-released-test-predictions.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "bad.txt").write_text("\n".join(lines[:10] + ["garbage line"] + lines[10:]) + "\n")
    with pytest.raises(DatasetError, match="Line 11 of bad.txt is not"):
        read_predictions(tmp_path / "bad.txt")
