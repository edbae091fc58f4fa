"""Training the lung UNet on the real CIP CT: threshold pseudo-labels, pleural lesion augmentation
that keeps the clean lung mask as the target, validation Dice against the real lung mask."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import shared_file
from scipy import ndimage as ndi

from covidct.data.cache import TensorCache
from covidct.data.manifest import read_manifest
from covidct.errors import UsageError
from covidct.preprocess.window import HU_WINDOW
from covidct.progress import Progress
from covidct.train import TrainConfig, train
from covidct.train.unet_task import SegmentationTask

CIP = "cip-copdgene-10002K-ct64/"


#: one PyTorch thread for every test here (see conftest.one_torch_thread)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """Train on the real normal001 CT with threshold pseudo-labels (made and cached by training);
    validate on another scanner's CT, CIP ct-64, against its real lung mask."""
    path = tmp_path_factory.mktemp("unet") / "lungs.csv"
    normal = shared_file("covid-ct-md-sample/normal001.nii.gz")
    cip, cip_lungs = shared_file(CIP + "ct-64.nrrd"), shared_file(CIP + "wholeLung-64.nrrd")
    path.write_text(f"ct,lungs,split\n{normal},,train\n{cip},{cip_lungs},val\n")
    return path


def test_lesion_augmentation_keeps_the_clean_target(manifest, tmp_path):
    config = TrainConfig(model="unet", manifest=manifest, out=tmp_path, input_size=(64, 64), device="cpu")
    task = SegmentationTask(config, torch.device("cpu"))
    case = read_manifest(manifest, require_label=False)[1]
    items = task.prepare(case, TensorCache(tmp_path / "cache"), train=False)
    assert len(items) == 2 * 79 and sum(item["lesions"] for item in items) == 79  # each slice clean + lesions
    z = 40
    clean = task.load(items[z], z, 0, train=False)["x"].numpy()
    with_lesions = task.load(items[79 + z], 79 + z, 0, train=False)["x"].numpy()
    assert set(np.unique(clean[1])) == {0, 1, 3}  # 3: organ (dense background near the lung)
    lung = (clean[1] == 1) | (clean[1] == 2)
    assert np.array_equal(lung, (with_lesions[1] == 1) | (with_lesions[1] == 2))  # target: the clean lung mask
    low, high = HU_WINDOW
    organ = clean[1] == 3
    assert (clean[0][organ] * (high - low) + low > -300).all() and not (organ & lung).any()
    near = ndi.distance_transform_edt(~lung, sampling=items[z]["spacing"]) <= 15.0
    assert organ.any() and not (organ & ~near).any()  # dense tissue within 15 mm of the lung only
    changed = clean[0] != with_lesions[0]
    assert changed.any() and not changed[~lung].any()  # lesions only inside the lungs
    marked = with_lesions[1] == 2  # the lesion pixels, weighted in the loss
    assert marked.any() and (changed | ~marked).all()
    hu = with_lesions[0] * (high - low) + low
    assert np.median(hu[changed]) > -650  # dense: consolidation or ground glass
    # lesions touch the pleura: some changed pixel borders the outside of the lungs
    assert (changed & ~ndi.binary_erosion(lung)).any()
    again = task.load(items[79 + z], 79 + z, 0, train=False)["x"].numpy()
    assert np.array_equal(again, with_lesions)  # validation lesions are fixed


def test_lesion_mediastinal_reaches_the_lesion_painter(manifest, tmp_path):
    """``lesion_mediastinal`` changes where the validation lesions go (the same seeds); outside [0, 1] it is
    refused with one sentence."""
    lesions = {}
    case = read_manifest(manifest, require_label=False)[1]
    for share in (0.0, 1.0):
        config = TrainConfig(
            model="unet", manifest=manifest, out=tmp_path, input_size=(64, 64), device="cpu", lesion_mediastinal=share
        )
        task = SegmentationTask(config, torch.device("cpu"))
        items = task.prepare(case, TensorCache(tmp_path / "cache"), train=False)
        targets = [task.load(items[79 + z], 79 + z, 0, train=False)["x"].numpy()[1] for z in range(79)]
        lesions[share] = np.stack(targets) == 2
    assert lesions[0.0].any() and lesions[1.0].any() and not np.array_equal(lesions[0.0], lesions[1.0])
    with pytest.raises(UsageError, match="--lesion-mediastinal must lie in"):
        TrainConfig(model="unet", manifest=manifest, out=tmp_path, lesion_mediastinal=1.5).validate()


def test_organ_gas_paints_gas_mottled_contents_as_organ(manifest, tmp_path):
    """``organ_gas``: a training slice through the lung bases gets gas-mottled contents in the tissue under
    the diaphragm, labelled organ (3), never touching the lung; the lung target is the clean one; with
    ``organ_gas`` 0 the slice is as before (the random stream of earlier recipes unchanged)."""
    case = read_manifest(manifest, require_label=False)[1]
    loaded = {}
    for share in (0.0, 1.0):
        config = TrainConfig(
            model="unet",
            manifest=manifest,
            out=tmp_path,
            input_size=(96, 96),
            device="cpu",
            lesion_augment=0.0,
            organ_gas=share,
        )
        task = SegmentationTask(config, torch.device("cpu"))
        items = task.prepare(case, TensorCache(tmp_path / "cache"), train=True)
        loaded[share] = [task.load(items[z], z, 100 + z, train=True)["x"].numpy() for z in (12, 16, 20, 24)]
    low, high = HU_WINDOW
    contents = []
    for clean, painted in zip(loaded[0.0], loaded[1.0], strict=True):
        lung = clean[1] == 1
        assert np.array_equal(lung, painted[1] == 1)
        changed = clean[0] != painted[0]
        assert changed.any() and (painted[1][changed] == 3).all()  # every painted pixel is organ in the target
        assert not (changed & ndi.binary_dilation(lung)).any()  # at least a pixel of wall between it and the lung
        contents.append(painted[0][changed] * (high - low) + low)
    contents = np.concatenate(contents)
    assert (contents < -500).sum() >= 3 and np.median(contents) > -300  # gas bubbles in dense contents
    with pytest.raises(UsageError, match="--organ-gas must lie in"):
        TrainConfig(model="unet", manifest=manifest, out=tmp_path, organ_gas=2.0).validate()


@pytest.mark.slow
def test_unet_learns_lungs_from_threshold_pseudo_labels(manifest, tmp_path):
    events = []

    class Recorder(Progress):
        def event(self, event, **fields):
            events.append({"event": event, **fields})

    out = tmp_path / "run"
    model_dir = train(
        TrainConfig(
            model="unet", manifest=manifest, out=out, epochs=3, lr=1e-3, batch_size=8, input_size=(64, 64), device="cpu"
        ),
        Recorder(),
    )
    epochs = [e for e in events if e["event"] == "epoch"]
    print(
        "validation Dice per epoch (clean, with lesions):",
        [(round(e["val_dice_clean"], 3), round(e["val_dice_lesions"], 3)) for e in epochs],
    )
    assert epochs[0]["val_slices"] == 2 * 79 and epochs[-1]["epoch"] == 3
    best = max(epochs, key=lambda e: e["val_dice"])
    assert best["val_dice_clean"] >= 0.9 and best["val_dice_lesions"] >= 0.9  # against the REAL mask
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    card = json.loads((model_dir / "model.json").read_text())
    assert card["architecture"] == "unet" and card["input"]["shape"] == [1, 64, 64]
    assert "2 cases" in card["training_data"] and card["metrics"]["val_dice"] == best["val_dice"]
    # the training case's pseudo-labels were made once by the threshold method and cached
    lungs = [p for p in (out / "cache").rglob("*.json") if json.loads(p.read_text())["parts"]["kind"] == "lungs"]
    assert len(lungs) == 1 and json.loads(lungs[0].read_text())["parts"]["method"] == "threshold"
