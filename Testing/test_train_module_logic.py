"""The CovidCTTrain module's logic on real MRML (slicer-core) with real background ``covidct`` processes.

A tiny synthetic dataset is made from the real CIP CT and its real whole-lung mask (16 slices, 2 volumes
with synthetic lesions, 2 without); a DeCoVNet run (input 32 x 48, CPU, 2 epochs of 2 steps) is started
from the logic, its epoch events grow the curves' tables, it is cancelled in the middle of epoch 2 (the
process tree ends, the checkpoint stays), resumed to the end, evaluated on the manifest, and saved with
a chosen threshold into a temporary user model folder, where the catalogue lists it and detection
runs it. The released DeCoVNet predictions are displayed with the paper's AUC and Table 2 accuracies.
"""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO, cip_slab, shared_file

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML without the Slicer application) is not installed")

from covidct.data.manifest import read_manifest, write_manifest  # noqa: E402
from covidct.data.synth import make_synth_dataset  # noqa: E402
from covidct.errors import DatasetError, UsageError  # noqa: E402
from CovidCTDetectLib.process import CommandCancelled, CommandFailed  # noqa: E402
from CovidCTDetectLib.train_dataset import dataset_manifest  # noqa: E402
from CovidCTDetectLib.train_logic import (
    TrainLogic,
    device_label,
    format_duration,
    train_arguments,  # noqa: E402
    training_failure,
)

CIP = "cip-copdgene-10002K-ct64/"
RELEASED = REPO.parent / "shared" / "reference" / "decovnet-released-test-predictions.csv"
#: DeCoVNet paper, Table 2: accuracy at the thresholds 0.1 ... 0.9 on its test set.
PAPER_ACCURACY = [0.893, 0.908, 0.908, 0.901, 0.901, 0.878, 0.870, 0.855, 0.847]
TINY_RUN = dict(epochs=2, device="cpu", input_size="32x48", lr=1e-4, val_fraction=0.5, checkpoint_every=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """4 synthetic volumes (2 with lesions) from 16 slices of the real CIP CT, its real lung mask as ``lungs``."""
    root = tmp_path_factory.mktemp("synth")
    ct, lungs = cip_slab(root)
    return make_synth_dataset([ct], root / "data", n_pos=2, n_neg=2, seed=3, lungs=[lungs])


def poll_until(job, condition, timeout=300.0):
    """Poll ``job`` (as the widget's timer does) until ``condition()`` or the job ends; returns the events."""
    events, deadline = [], time.monotonic() + timeout
    while not condition() and not job.done and time.monotonic() < deadline:
        events += job.poll()
        time.sleep(0.05)
    return events + job.poll()


def column(table_node, name):
    return [table_node.GetCellText(row, table_node.GetColumnIndex(name)) for row in range(table_node.GetNumberOfRows())]


@pytest.mark.slow  # training runs in background processes
@pytest.mark.slow  # about 35 s of CPU: three background runs of covidct (train, resume, evaluate)
def test_train_cancel_resume_evaluate_and_save(mrml_scene, dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("COVIDCT_MODELS_DIR", str(tmp_path / "models"))
    logic = TrainLogic()
    out = tmp_path / "run"
    table, summary = logic.previewDataset(dataset, valFraction=TINY_RUN["val_fraction"])
    assert (summary.cases, summary.positives, summary.train, summary.val, summary.missing) == (4, 2, 2, 2, 0)

    started = time.perf_counter()
    job = logic.startTraining(dataset, out, "decovnet", **TINY_RUN)
    # epoch 1 arrives and grows the curves; stop at the mid-epoch checkpoint of epoch 2
    events = poll_until(
        job,
        lambda: (
            job.last_checkpoint is not None and job.last_checkpoint["epoch"] == 2 and job.last_checkpoint["step"] == 1
        ),
    )
    assert not job.done, job.process.stderr_tail
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1]
    # the poll that brought the checkpoint may also bring the next step's line on a loaded machine
    assert job.history_table.GetNumberOfRows() == 1 and job.steps_table.GetNumberOfRows() in (3, 4)
    assert 0 < job.progress < 1 and job.metric is not None and job.eta_s is not None
    assert re.match(r"Epoch 2/2, step [12]/2: loss ", job.status())
    series = [job.chart_node.GetNthPlotSeriesNode(i) for i in range(job.chart_node.GetNumberOfPlotSeriesNodes())]
    assert [s.GetName() for s in series] == [
        "training loss (steps)",
        "training loss",
        "validation loss",
        "validation AUC",
    ]
    assert series[3].GetTableNode() is job.history_table and series[0].GetTableNode() is job.steps_table

    job.cancel()
    assert job.done and job.error is None
    with pytest.raises(ProcessLookupError):  # the whole process group is gone
        os.killpg(job.process.pid, 0)
    with pytest.raises(CommandCancelled, match=r"the checkpoint at epoch 2, step 1 stays in .*press Resume"):
        job.finish()
    assert (out / "last.pt").is_file() and not (out / "model").exists()

    resumed = logic.resumeTraining(out, job.chart_node, job.history_table, job.steps_table)
    assert resumed.history_table.GetNumberOfRows() == 1  # epoch 1 from history.json
    resumed.wait()
    model_dir = resumed.finish()
    assert resumed.resumed_from["epoch"] == 2 and resumed.resumed_from["step"] == 1
    assert column(resumed.history_table, "epoch") == ["1", "2"]
    assert column(resumed.steps_table, "global step") == ["1", "2", "3", "4"]  # step 4 only trained after resume
    assert resumed.progress == 1.0 and resumed.status().startswith("Finished")
    card = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    assert card["architecture"] == "decovnet" and card["input"]["shape"] == [2, "T", 32, 48]
    print(f"tiny run with cancel and resume: {time.perf_counter() - started:.1f} s")

    # a second run into the same folder is refused with the command's one sentence
    with pytest.raises(CommandFailed, match="already holds a training run") as failure:
        logic.train(dataset, out, "decovnet", **TINY_RUN)
    assert failure.value.returncode == 2 and "\n" not in str(failure.value)

    result, nodes = logic.evaluate(
        dataset, tmp_path / "evaluation", weights=model_dir, device="cpu", lungsMethod="threshold", bootstrap=200
    )
    assert result.report["n_cases"] == 4 and 0.0 <= result.report["roc_auc"] <= 1.0
    assert result.name == "run on manifest"
    roc = [
        nodes.roc_chart.GetNthPlotSeriesNode(i).GetName() for i in range(nodes.roc_chart.GetNumberOfPlotSeriesNodes())
    ]
    assert roc[0].startswith("ROC (AUC") and "operating points" in roc and "chosen threshold" in roc
    assert nodes.pr_chart.GetNthPlotSeriesNode(0).GetName().startswith("PR (AP")
    assert nodes.threshold_table.GetNumberOfRows() == 9
    assert nodes.roc_table.GetNumberOfRows() >= 3
    at = logic.setOperatingThreshold(nodes, result, 0.35)
    assert nodes.chosen_table.GetNumberOfRows() == 1
    assert float(nodes.chosen_table.GetCellText(0, nodes.chosen_table.GetColumnIndex("sensitivity"))) == pytest.approx(
        at["sensitivity"]
    )

    saved = logic.saveModel(model_dir, "decovnet-tiny", 0.35, evaluation=result)
    from covidct.models import list_models, load_model
    from covidct.models.catalogue import file_sha256

    listed = {card.name: card for card in list_models()}
    assert "decovnet-tiny" in listed and listed["decovnet-tiny"].threshold == 0.35
    assert listed["decovnet-tiny"].sha256 == file_sha256(tmp_path / "models" / "decovnet-tiny" / "decovnet-tiny.pt")
    assert saved.metrics["test_cases"] == 4 and saved.metrics["test_sensitivity"] == at["sensitivity"]
    assert "Operating threshold 0.35" in saved.description
    model, card = load_model("decovnet-tiny")
    assert card.threshold == 0.35 and not model.training
    with pytest.raises(UsageError, match="already exists"):
        logic.saveModel(model_dir, "decovnet-tiny", 0.5)
    assert logic.installedModels("decovnet")[-1] == "decovnet-tiny" and "decovnet-tiny" not in logic.installedModels(
        "unet"
    )

    # the CovidCTDetect module's logic lists the saved model and runs it with its threshold
    from CovidCTDetectLib.detect_logic import DetectionLogic, classifier_models
    from CovidCTDetectLib.segmentations import segmentation_from_labelmap
    from CovidCTDetectLib.volumes import volume_from_image

    assert "decovnet-tiny" in [card.name for card in classifier_models()]
    case = read_manifest(dataset)[0]
    volume = volume_from_image(sitk.ReadImage(str(case.ct)), name="synthetic case")
    lungs = segmentation_from_labelmap(sitk.ReadImage(str(case.lungs)) > 0, name="CIP lungs")  # the real CIP mask
    detection = DetectionLogic().detect(
        volume,
        model="decovnet-tiny",
        lungSegmentationNode=lungs,
        device="cpu",
        heatmap=False,
        outputFolder=tmp_path / "detect",
        show=False,
    )
    assert detection.model == "decovnet-tiny" and detection.threshold == 0.35
    assert detection.label == ("positive" if detection.probability > 0.35 else "negative")


@pytest.mark.skipif(not RELEASED.is_file(), reason="the released DeCoVNet predictions (../shared/reference) are absent")
def test_released_decovnet_predictions_show_the_papers_auc_and_table_2(mrml_scene, tmp_path):
    result, nodes = TrainLogic().evaluate(RELEASED, tmp_path / "released")
    assert result.summary().startswith("ROC AUC 0.959 ")
    assert nodes.roc_chart.GetNthPlotSeriesNode(0).GetName() == "ROC (AUC 0.959)"
    accuracy = slicer.util.arrayFromTableColumn(nodes.threshold_table, "accuracy")
    assert np.round(accuracy, 3).tolist() == PAPER_ACCURACY
    assert slicer.util.arrayFromTableColumn(nodes.threshold_table, "threshold").round(1).tolist() == [
        0.1,
        0.2,
        0.3,
        0.4,
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
    ]
    # the ROC curve's points give the report's AUC (trapezoids over every vertex)
    x = slicer.util.arrayFromTableColumn(nodes.roc_table, "1 - specificity")
    y = slicer.util.arrayFromTableColumn(nodes.roc_table, "sensitivity")
    assert np.trapezoid(y, x) == pytest.approx(result.report["roc_auc"], abs=1e-9)
    assert column(nodes.points_table, "point")[-1] == "balanced"
    at = TrainLogic().setOperatingThreshold(nodes, result, 0.5)
    assert round(at["accuracy"], 3) == 0.901 and round(at["sensitivity"], 3) == 0.840


def test_datasets_from_class_folders_and_path_label_csv(mrml_scene, dataset, tmp_path):
    cases = read_manifest(dataset)
    layout = tmp_path / "layout"
    for case in cases:
        folder = layout / ("COVID" if case.label else "non-covid")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / case.ct.name).symlink_to(case.ct)
    manifest = dataset_manifest(layout)
    assert manifest == layout / "covidct-manifest.csv"
    built = read_manifest(manifest)
    assert sorted((c.id, c.label) for c in built) == sorted((c.id, c.label) for c in cases)

    (layout / "maybe").mkdir()
    with pytest.raises(DatasetError, match=r"sub-folder name\(s\) 'maybe' .* name no class; rename them") as error:
        dataset_manifest(layout)
    assert "\n" not in str(error.value)

    listing = tmp_path / "cases.csv"
    listing.write_text(
        "file,diagnosis\n"
        + "".join(f"{c.ct},{'positive' if c.label else 'negative'}\n" for c in cases)
        + "missing.nii.gz,0\n"
    )
    table, summary = TrainLogic().previewDataset(dataset_manifest(listing), valFraction=0.5)
    assert (summary.cases, summary.positives, summary.negatives, summary.missing) == (5, 2, 3, 1)
    assert column(table, "files").count("missing ct") == 1 and column(table, "case")[-1] == "missing"
    assert sorted(column(table, "split")) == [
        "train",
        "train",
        "val",
        "val",
        "val",
    ]  # 1 of 2 positives, 2 of 3 negatives
    assert "1 missing file(s)" in summary.text()
    listing.write_text(f"{cases[0].ct},maybe\n")
    with pytest.raises(DatasetError, match="line 1: 'maybe' is not a label"):
        dataset_manifest(listing)
    # a manifest is used as it is
    assert dataset_manifest(dataset) == dataset
    # too few cases for a split: the preview says why instead of failing
    small = write_manifest(tmp_path / "small.csv", cases[:2])
    _, summary = TrainLogic().previewDataset(small)
    assert summary.split_error and summary.split_error.rstrip(".") in summary.text()


def test_arguments_messages_and_device_probe(mrml_scene):
    args = train_arguments(
        "m.csv",
        "out",
        "covid19net",
        {"epochs": 3, "augment": False, "amp": True, "input_size": (24, 32, 48), "init_from": None, "batch_size": 2},
        resume=True,
    )
    assert args == [
        "train",
        "--model",
        "covid19net",
        "--manifest",
        "m.csv",
        "--out",
        "out",
        "--epochs",
        "3",
        "--no-augment",
        "--amp",
        "--input-size",
        "24x32x48",
        "--batch-size",
        "2",
        "--resume",
    ]
    cropped = train_arguments("m.csv", "out", "decovnet", {"input_size": "96x144", "input_crop": "lung_box"})
    assert cropped[-4:] == ["--input-size", "96x144", "--input-crop", "lung_box"]
    with pytest.raises(UsageError, match="Unknown training option"):
        train_arguments("m.csv", "out", "decovnet", {"learning_rate": 1e-4})
    with pytest.raises(UsageError, match="Unknown model 'resnet'"):
        train_arguments("m.csv", "out", "resnet", {})

    # PyTorch's own CUDA message, and the training loop's sentence, both give the fix
    for line in (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)",
        "covidct train: error: Out of GPU memory training decovnet at input size 224x336; lower --input-size or "
        "use --device cpu.",
    ):
        message = training_failure(1 if "torch" in line else 2, ["some warning", line], line)
        assert message.startswith("Training ran out of GPU memory; lower the input size")
    assert "killed by signal 9" in training_failure(-9, [], None)
    assert (
        training_failure(2, ["covidct train: error: out of memory; close other programs."], "the sentence")
        == "the sentence"
    )
    assert training_failure(0, [], None) is None
    assert format_duration(42) == "42 s" and format_duration(600) == "10 min" and format_duration(7380) == "2 h 03 min"

    probe = TrainLogic().startDeviceProbe()
    probe.wait()
    devices = probe.finish()
    assert devices[-1]["device"] == "cpu" and device_label(devices[-1]).startswith("cpu: CPU (")
    assert all(device_label(d).startswith(d["device"] + ": ") for d in devices)


def test_synthetic_dataset_from_a_volume_node(mrml_scene, tmp_path):
    from CovidCTDetectLib.volumes import volume_from_image

    ct = sitk.ReadImage(str(shared_file(CIP + "ct-64.nrrd")))
    node = volume_from_image(ct, name="CIP CT/64")
    job = TrainLogic().startSynthDataset(
        [node], tmp_path / "synth", 1, 1, seed=2, lungs=[shared_file(CIP + "wholeLung-64.nrrd")]
    )
    job.wait()
    manifest = job.finish()
    cases = read_manifest(manifest)
    assert sorted(case.label for case in cases) == [0, 1]
    background = tmp_path / "synth" / "backgrounds" / "CIP_CT_64.nrrd"  # the node, written with a file-safe name
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(background))), sitk.GetArrayFromImage(ct))
    assert job.stage != "starting"
