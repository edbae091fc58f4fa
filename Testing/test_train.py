"""Training on a small synthetic set made from the real CIP CT: learning, exact resume after kill -9,
two-process DistributedDataParallel (gloo), clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import REPO, cip_slab, shared_file
from sklearn.metrics import roc_auc_score

from covidct.data.manifest import read_manifest, write_manifest
from covidct.data.synth import LesionOptions, make_synth_dataset
from covidct.errors import DatasetError, ModelError, UsageError
from covidct.progress import Progress
from covidct.train import TrainConfig, parse_arch_options, train

#: DeCoVNet on 16 slices of 32 x 48: small enough for a CPU test, big enough to see the lesions.
FAST = dict(model="decovnet", input_size=(32, 48), device="cpu", lr=1e-4)
#: Strong lesions (the paper's data had 499 cases and 100 epochs; here the signal must be learnt in a few)
LESIONS = LesionOptions(kinds=("ggo", "consolidation"), n_lesions=(4, 8), size_mm=(30, 60))


#: one PyTorch thread for every test here (see conftest.one_torch_thread)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backgrounds(tmp_path_factory):
    """16 central slices of the real CIP ct-64 and of its real lung mask."""
    return cip_slab(tmp_path_factory.mktemp("background"))


@pytest.fixture(scope="module")
def synth(backgrounds, tmp_path_factory):
    """40 synthetic volumes (20 with lesions) and a 6-case subset, sharing one preprocessing cache."""
    root = tmp_path_factory.mktemp("synth")
    ct, lungs = backgrounds
    manifest = make_synth_dataset([ct], root / "data", n_pos=20, n_neg=20, seed=1, lungs=[lungs], options=LESIONS)
    cases = read_manifest(manifest)
    small = write_manifest(
        root / "data" / "small.csv", [c for c in cases if c.label == 1][:3] + [c for c in cases if c.label == 0][:3]
    )
    return {"manifest": manifest, "small": small, "cache": root / "cache", "root": root}


class Recorder(Progress):
    def __init__(self):
        self.events = []

    def event(self, event, **fields):
        self.events.append({"event": event, **fields})


#: the command-line runs use one thread too (see ``one_thread``)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "covidct", "train", *map(str, args)], capture_output=True, text=True, cwd=REPO, env=ENV
    )


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_decovnet_learns_the_synthetic_lesions(synth, backgrounds, tmp_path):
    progress = Recorder()
    out = tmp_path / "run"
    config = TrainConfig(
        manifest=synth["manifest"],
        out=out,
        epochs=4,
        val_fraction=0.25,
        augment=False,
        cache_dir=synth["cache"],
        **FAST,
    )
    model_dir = train(config, progress)
    epochs = [e for e in progress.events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4] and all(e["val_cases"] == 10 for e in epochs)
    best = max(e["val_auc"] for e in epochs)
    print("validation AUC per epoch:", [round(e["val_auc"], 3) for e in epochs])
    assert best >= 0.9
    card = json.loads((model_dir / "model.json").read_text())
    assert card["architecture"] == "decovnet" and card["metrics"]["val_auc"] == best
    assert card["input"]["shape"] == [2, "T", 32, 48] and "40 cases" in card["training_data"]
    assert "not clinically validated" in card["not_clinically_validated"]
    assert (out / "best.pt").exists() and (out / "last.pt").exists()
    assert len(json.loads((out / "history.json").read_text())) == 4

    # the final (best-validation) model also separates fresh volumes it has never seen (new lesions, new
    # noise): an estimate free of the selection of the best epoch on the 10 validation cases
    from covidct.models import load_model
    from covidct.train.tasks import ClassifierTask

    fresh = read_manifest(
        make_synth_dataset(
            [backgrounds[0]], tmp_path / "fresh", n_pos=6, n_neg=6, seed=99, lungs=[backgrounds[1]], options=LESIONS
        )
    )
    model, _ = load_model(model_dir)
    task = ClassifierTask(config, torch.device("cpu"))
    from covidct.data.cache import TensorCache

    cache = TensorCache(tmp_path / "fresh-cache")
    with torch.no_grad():
        scores = [
            float(model.probability(model(task.load(task.prepare(c, cache, False)[0], 0, 0, False)["x"][None].float())))
            for c in fresh
        ]
    auc = roc_auc_score([c.label for c in fresh], scores)
    print("AUC on 12 fresh synthetic volumes:", auc)
    assert auc >= 0.75


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_same_weights(synth, tmp_path):
    args = [
        "--model",
        "decovnet",
        "--manifest",
        synth["small"],
        "--input-size",
        "32x48",
        "--device",
        "cpu",
        "--lr",
        "1e-4",
        "--epochs",
        "2",
        "--val-fraction",
        "0.34",
        "--checkpoint-every",
        "2",
        "--cache-dir",
        synth["cache"],
        "--progress-json",
    ]
    straight = _cli(*args, "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr

    # the same run, killed with SIGKILL in the middle of epoch 2, after its step-2 checkpoint
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "covidct", "train", *map(str, args), "--out", str(killed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=ENV,
    )
    steps_per_epoch = None
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == "step":
            steps_per_epoch = event["steps"]
            if event["epoch"] == 2 and event["step"] == 4:
                os.kill(process.pid, signal.SIGKILL)
                break
    process.wait()
    assert process.returncode == -signal.SIGKILL and steps_per_epoch == 4  # 4 training cases, 2 validation
    assert not (killed / "model").exists()

    resumed = _cli(*args, "--out", killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    resume_event = next(json.loads(line) for line in resumed.stdout.splitlines() if '"resume"' in line)
    assert resume_event["epoch"] == 2 and resume_event["step"] in (2, 3)  # continued mid-epoch

    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(killed / "last.pt")
    assert a["global_step"] == b["global_step"] == 8
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(
        torch.equal(x, y)
        for x, y in zip(
            _weights(tmp_path / "straight" / "model" / "decovnet-straight.pt").values(),
            _weights(killed / "model" / "decovnet-killed.pt").values(),
            strict=True,
        )
    )
    history_a = json.loads((tmp_path / "straight" / "history.json").read_text())
    history_b = json.loads((killed / "history.json").read_text())
    assert history_a == history_b


@pytest.mark.slow
def test_two_process_torchrun_on_cpu(synth, tmp_path):
    out = tmp_path / "ddp"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "covidct",
            "train",
            "--model",
            "decovnet",
            "--manifest",
            str(synth["small"]),
            "--input-size",
            "32x48",
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--val-fraction",
            "0.34",
            "--cache-dir",
            str(synth["cache"]),
            "--out",
            str(out),
            "--progress-json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    done = [e for e in events if e["event"] == "done"]
    assert len(done) == 1  # only rank 0 reports and writes
    steps = [e for e in events if e["event"] == "step"]
    assert steps[-1]["steps"] == 2  # 4 training cases shared by 2 processes, batch 1
    epoch = next(e for e in events if e["event"] == "epoch")
    assert epoch["val_cases"] == 2  # validation gathered from both ranks
    assert (out / "model" / "model.json").exists()
    assert _weights(out / "last.pt")["world_size"] == 2


def test_covid19net_default_batch_keeps_the_cases_features_apart():
    """COVID-19Net's head ends in batch norm, ReLU and a global average. Trained one case per step, that
    batch norm normalises each feature map over the case's own positions, so the average after it is
    nearly the same for every case and the network cannot learn; with the default batch the eight real
    inputs (the CIP CT's lung ROI, shifted and mirrored) keep features several times further apart."""
    from covidct.models.covid19net import COVID19Net
    from covidct.preprocess.covid19net import covid19net_input
    from covidct.train.config import DEFAULT_BATCH

    cip = "cip-copdgene-10002K-ct64/"
    ct, lungs = (sitk.ReadImage(str(shared_file(cip + name))) for name in ("ct-64.nrrd", "wholeLung-64.nrrd"))
    roi, _ = covid19net_input(ct, lungs, shape=(16, 48, 72))
    cases = torch.from_numpy(
        np.stack(
            [np.roll(roi, shift, axis=(1, 3)) for shift in range(4)]
            + [np.roll(roi[..., ::-1], shift, axis=(1, 2)) for shift in range(4)]
        )
    )
    torch.manual_seed(0)
    net = COVID19Net().train()
    batch = DEFAULT_BATCH["covid19net"]
    assert batch == len(cases)
    with torch.no_grad():
        one_by_one = torch.cat([net.features(case[None]) for case in cases])
        together = net.features(cases)
    spread_one, spread_together = one_by_one.std(0).mean().item(), together.std(0).mean().item()
    print(f"features' spread across cases: batch 1 {spread_one:.3f}, batch {batch} {spread_together:.3f}")
    assert spread_together > 3 * spread_one


def test_covid19net_fixed_hu_statistics_reach_the_cache_and_the_card(synth, tmp_path):
    """``input_hu_stats`` z-scores COVID-19Net's training inputs with fixed statistics (the suppressed fill,
    -1024 HU, becomes (-1024 + 800) / 350 in every cached input) and the card names them, so that detection
    makes the same input; other architectures refuse the option."""
    from covidct.models import load_model
    from covidct.preprocess import input_options

    out = tmp_path / "c19"
    config = TrainConfig(
        model="covid19net",
        manifest=synth["small"],
        out=out,
        input_size=(16, 32, 48),
        input_hu_stats=(-800.0, 350.0),
        device="cpu",
        lr=1e-4,
        epochs=1,
        val_fraction=0.34,
        cache_dir=tmp_path / "cache",
    )
    _, card = load_model(train(config))
    assert card.input["hu_mean_std"] == [-800.0, 350.0] and "fixed statistics" in card.input["normalisation"]
    assert input_options("covid19net", card.input)["hu_stats"] == (-800.0, 350.0)
    minima = [float(np.load(path).min()) for path in (tmp_path / "cache").rglob("*.npy")]
    assert len(minima) == 6 and minima == pytest.approx([(-1024 + 800) / 350] * 6, abs=1e-3)  # float16 cache
    assert TrainConfig.load(out / "config.json").input_hu_stats == (-800.0, 350.0)
    with pytest.raises(UsageError, match="--input-hu-stats is a COVID-19Net option"):
        TrainConfig(model="decovnet", manifest="m", out="o", input_hu_stats=(-800.0, 350.0))
    with pytest.raises(UsageError, match="SD > 0"):
        TrainConfig(model="covid19net", manifest="m", out="o", input_hu_stats=(-800.0, 0.0))
    result = _cli(
        "--model", "covid19net", "--manifest", synth["small"], "--out", tmp_path / "x", "--input-hu-stats", "a"
    )
    assert result.returncode == 2 and "is not MEAN,SD" in result.stderr


def test_mask_edge_shift_moves_the_training_inputs_mask_only(tmp_path):
    """``mask_edge_shift`` moves the lung-fraction channel of DeCoVNet's real input (the CIP CT, lung box,
    5 mm slabs, area-averaged) in training, never the CT channel, and leaves validation inputs as cached."""
    from covidct.preprocess import model_input
    from covidct.train.tasks import ClassifierTask

    cip = "cip-copdgene-10002K-ct64/"
    ct, lungs = (sitk.ReadImage(str(shared_file(cip + name))) for name in ("ct-64.nrrd", "wholeLung-64.nrrd"))
    array, _ = model_input("decovnet", ct, lungs, (32, 48), "lung_box", 5.0, True)
    x = torch.from_numpy(array)
    config = TrainConfig(model="decovnet", manifest="m", out=tmp_path, augment=False, mask_edge_shift=1.0)
    task = ClassifierTask(config, torch.device("cpu"))
    batch = {"x": torch.stack([x, x]), "y": torch.tensor([1, 0]), "seed": [3, 4]}
    trained, _ = task.inputs(batch, train=True)
    validated, _ = task.inputs(batch, train=False)
    assert torch.equal(validated, batch["x"]) and torch.equal(trained[:, 0], batch["x"][:, 0])
    moved = (trained[:, 1] - x[1]).abs().sum(dim=(1, 2, 3))
    assert (moved > 1.0).all() and not torch.equal(trained[0, 1], trained[1, 1])  # each sample its own draw


@pytest.mark.slow
def test_covid19net_two_step_transfer_learning(synth, tmp_path):
    """Pre-training on an auxiliary binary task, then fine-tuning from its weights (COVID-19Net paper)."""
    from covidct.models import load_model

    progress = Recorder()
    out = tmp_path / "c19"
    common = dict(
        model="covid19net",
        manifest=synth["small"],
        input_size=(16, 32, 48),
        device="cpu",
        lr=1e-4,
        val_fraction=0.34,
        cache_dir=synth["cache"],
    )
    model_dir = train(
        TrainConfig(out=out, pretrain_manifest=synth["small"], pretrain_epochs=2, epochs=1, **common), progress
    )
    phases = [e for e in progress.events if e["event"] == "phase"]
    assert [p["phase"] for p in phases] == ["pretrain", "finetune"]
    assert phases[1]["init_from"] == str(out / "pretrain" / "model")
    final, card = load_model(model_dir)
    assert "pre-training on manifest small.csv" in card.training_data and card.input["shape"] == [1, 16, 32, 48]
    # the fine-tuning step is exactly a run started with --init-from the pre-trained model ...
    same, _ = load_model(
        train(TrainConfig(out=tmp_path / "same", init_from=str(out / "pretrain" / "model"), epochs=1, **common))
    )
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(), same.state_dict().values(), strict=True))
    # ... and not a run from scratch
    scratch, _ = load_model(train(TrainConfig(out=tmp_path / "scratch", epochs=1, **common)))
    assert not all(
        torch.equal(a, b) for a, b in zip(final.state_dict().values(), scratch.state_dict().values(), strict=True)
    )
    with pytest.raises(ModelError, match="holds a covid19net model, not decovnet"):
        train(TrainConfig(manifest=synth["small"], out=tmp_path / "d", init_from=str(model_dir), **FAST))


def test_clear_errors(synth, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"a checkpoint")  # a run that has trained (config.json alone does not block)
    with pytest.raises(UsageError, match="already holds a training run.*--resume"):
        train(TrainConfig(manifest=synth["small"], out=run, **FAST))
    with pytest.raises(UsageError, match="no training run to resume"):
        train(TrainConfig(manifest=synth["small"], out=tmp_path / "empty", resume=True, **FAST))
    positives = write_manifest(tmp_path / "pos.csv", [c for c in read_manifest(synth["small"]) if c.label == 1])
    with pytest.raises(DatasetError, match="all positive"):
        train(TrainConfig(manifest=positives, out=tmp_path / "a", **FAST))
    two = write_manifest(tmp_path / "two.csv", read_manifest(synth["small"])[:1] + read_manifest(synth["small"])[-1:])
    with pytest.raises(DatasetError, match="Too few cases for validation"):
        train(TrainConfig(manifest=two, out=tmp_path / "b", **FAST))
    bad = tmp_path / "bad.csv"
    bad.write_text("ct,label\nnowhere.nii.gz,1\n")
    result = _cli("--model", "decovnet", "--manifest", bad, "--out", tmp_path / "c")
    assert result.returncode == 2 and "line 2, column 'ct'" in result.stderr and "Traceback" not in result.stderr
    result = _cli("--model", "decovnet", "--manifest", bad, "--out", tmp_path / "c", "--input-size", "8x8")
    assert result.returncode == 2 and "--input-size 8x8" in result.stderr
    result = _cli(
        "--model", "covid19net", "--manifest", synth["small"], "--out", tmp_path / "d", "--input-crop", "lung_box"
    )
    assert result.returncode == 2 and "only DeCoVNet takes --input-crop lung_box" in result.stderr
    result = _cli(
        "--model", "decovnet", "--manifest", synth["small"], "--out", tmp_path / "e", "--mask-edge-shift", "2"
    )
    assert result.returncode == 2 and "--mask-edge-shift must lie in [0, 1]" in result.stderr
    with pytest.raises(UsageError, match="--mask-edge-shift is a DeCoVNet option"):
        TrainConfig(model="covid19net", manifest="m", out="o", mask_edge_shift=0.5)


def test_config_round_trip_and_resume_check(tmp_path):
    config = TrainConfig(model="covid19net", manifest=tmp_path / "m.csv", out=tmp_path / "o", input_size=(24, 64, 96))
    config.save(tmp_path / "c.json")
    again = TrainConfig.load(tmp_path / "c.json")
    assert again == config and again.effective_batch_size == 8
    assert TrainConfig(model="decovnet", manifest="m", out="o").effective_batch_size == 1
    assert TrainConfig(model="unet", manifest="m", out="o").effective_batch_size == 16
    changed = TrainConfig(
        model="covid19net", manifest=tmp_path / "m.csv", out=tmp_path / "o", lr=1e-4, input_size=(24, 64, 96), epochs=7
    )
    assert changed.differences(config) == ["lr"]  # epochs may change on resume, lr may not
    cropped = TrainConfig(model="decovnet", manifest=tmp_path / "m.csv", out=tmp_path / "o", input_crop="lung_box")
    assert cropped.differences(TrainConfig(model="decovnet", manifest=tmp_path / "m.csv", out=tmp_path / "o")) == [
        "input_crop"
    ]
    narrow = TrainConfig(model="unet", manifest="m", out="o", arch_options=parse_arch_options(["base=8", "levels=3"]))
    assert narrow.arch_options == {"base": 8, "levels": 3} and TrainConfig(
        model="unet", manifest="m", out="o", arch_options={"base": 8}
    ).differences(narrow) == ["arch_options"]
    with pytest.raises(UsageError, match="does not fit unet"):
        TrainConfig(model="unet", manifest="m", out="o", arch_options={"width": 8})
    with pytest.raises(UsageError, match="is not NAME=VALUE"):
        parse_arch_options(["base"])
