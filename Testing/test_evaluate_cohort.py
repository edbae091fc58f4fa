"""Running a classifier over a manifest: ``covidct evaluate --manifest`` and ``covidct features``.

Uses the real CIP CT fixture (64×64×79, with its real whole-lung mask, so no segmentation runs) and
freshly initialised models saved through the catalogue (seeded): the numbers are not meaningful
detections, but every case must go through the whole pipeline and give identical outputs for the
same CT.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TEST_DATA

from covidct.cli import main

CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
LUNGS = TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"


@pytest.fixture(scope="module")
def covid19net_dir(tmp_path_factory):
    import torch

    from covidct.models import ModelCard, build_model, save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    save_model(build_model("covid19net"), ModelCard(name="test-covid19net", architecture="covid19net"), folder)
    return folder


@pytest.fixture
def manifest(tmp_path):
    if not CT.exists():
        pytest.skip(f"CIP CT fixture missing at {CT}")
    path = tmp_path / "manifest.csv"
    path.write_text(f"id,ct,label,lungs\npos,{CT},1,{LUNGS}\nneg,{CT},0,{LUNGS}\n")
    return path


@pytest.mark.slow  # two COVID-19Net forward passes at 48×240×360 on CPU
def test_evaluate_manifest_runs_the_model_on_every_case(covid19net_dir, manifest, tmp_path):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--manifest",
                str(manifest),
                "--weights",
                str(covid19net_dir),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    predictions = pd.read_csv(out / "predictions.csv")
    assert predictions["case_id"].tolist() == ["pos", "neg"] and predictions["label"].tolist() == [1, 0]
    assert 0 < predictions["probability"][0] < 1
    assert predictions["probability"][0] == pytest.approx(predictions["probability"][1], abs=1e-6)  # same CT
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["roc_auc"] == pytest.approx(0.5) and report["n_cases"] == 2


@pytest.mark.slow  # one COVID-19Net forward pass at 48×240×360 on CPU
def test_features_command_writes_64_features_per_case(covid19net_dir, tmp_path):
    if not CT.exists():
        pytest.skip(f"CIP CT fixture missing at {CT}")
    (tmp_path / "manifest.csv").write_text(f"id,ct,lungs\ncip,{CT},{LUNGS}\n")  # no label needed
    out = tmp_path / "features.csv"
    assert (
        main(
            [
                "features",
                "--manifest",
                str(tmp_path / "manifest.csv"),
                "--weights",
                str(covid19net_dir),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert list(table.columns) == ["id"] + [f"f{i}" for i in range(64)] and table["id"].tolist() == ["cip"]
    values = table.drop(columns="id").to_numpy()
    assert np.isfinite(values).all() and values.std() > 0 and (values >= 0).all()  # after the head's ReLU


def test_failing_case_is_named(covid19net_dir, tmp_path, capsys):
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    (tmp_path / "manifest.csv").write_text("id,ct,label\ncase7,broken.nii.gz,1\n")
    assert (
        main(
            [
                "features",
                "--manifest",
                str(tmp_path / "manifest.csv"),
                "--weights",
                str(covid19net_dir),
                "--out",
                str(tmp_path / "f.csv"),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("covidct features: error: Case 'case7' (manifest line 2): ") and "\n" not in err
    assert not (tmp_path / "f.csv").exists()


def test_features_need_a_covid19net(tmp_path, manifest, capsys):
    import torch

    from covidct.models import ModelCard, build_model, save_model

    torch.manual_seed(0)
    save_model(build_model("decovnet"), ModelCard(name="test-decovnet", architecture="decovnet"), tmp_path / "dcv")
    assert (
        main(
            [
                "features",
                "--manifest",
                str(manifest),
                "--weights",
                str(tmp_path / "dcv"),
                "--out",
                str(tmp_path / "f.csv"),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 2
    )
    assert "has no deep features; use a COVID-19Net model" in capsys.readouterr().err


def test_evaluate_manifest_needs_weights(manifest, tmp_path, capsys):
    assert main(["evaluate", "--manifest", str(manifest), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "--manifest needs --weights" in capsys.readouterr().err
