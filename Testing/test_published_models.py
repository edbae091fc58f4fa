"""The papers' own released models: files in the authors' formats import into exact twins.

No download is possible here, so the files are written in the authors' layouts from twins with random
weights: DeCoVNet and its lung UNet as ``torch.save`` of a DataParallel ``state_dict`` (keys as
listed in ``../shared/notes/published-models.md``, with the unused ``s4``/``s5`` stages), and
COVID-19Net as a Keras model built with ``keras`` (PyTorch backend) from the published architecture
and saved as HDF5, in the Keras 3 layout and in the Keras 2 one (``:0`` weight names). Imported,
each must give the reference's outputs to 1e-4; a wrong file is refused with one sentence.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import TEST_DATA
from published_files import write_decovnet_files

from covidct.errors import ModelError
from covidct.models import load_model
from covidct.models.covid19net import COVID19Net
from covidct.models.published import (
    COVID19NET_CONFIG,
    covid19net_state,
    decovnet_state,
)

#: keras (PyTorch backend) converts tensors the NumPy-1 way; not this package's concern
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

CIP_CT = TEST_DATA / "cip-ct64" / "ct-64.nrrd"
CIP_LUNGS = TEST_DATA / "cip-ct64" / "wholeLung-64.nrrd"


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    monkeypatch.setenv("COVIDCT_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture(scope="module")
def decovnet_files(tmp_path_factory):
    """``(classifier .pth, UNet .pth, twin DeCoVNet, twin UNet)`` in the authors' layout."""
    return write_decovnet_files(tmp_path_factory.mktemp("zheng2020"))


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "covidct", *args], capture_output=True, text=True, timeout=600, env=env
    )


def test_decovnet_import_gives_the_twin_outputs(decovnet_files, user_models):
    classifier, unet_file, decovnet, unet = decovnet_files
    result = run_cli(
        "import",
        "decovnet",
        "--classifier",
        str(classifier),
        "--lungs",
        str(unet_file),
        env={**os.environ, "COVIDCT_MODELS_DIR": str(user_models)},
    )
    assert result.returncode == 0, result.stderr
    assert "CC BY-NC-SA 4.0" in result.stdout
    model, card = load_model("decovnet-zheng2020", "cpu")
    lungs_model, lungs_card = load_model("decovnet-zheng2020-lungs", "cpu")
    x = torch.rand(1, 2, 21, 224, 336, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        classifier_difference = (model(x) - decovnet(x)).abs().max().item()
        slices = torch.rand(2, 1, 368, 368, generator=torch.Generator().manual_seed(4))
        unet_difference = (lungs_model(slices) - unet(slices)).abs().max().item()
    print(f"imported DeCoVNet max |difference| {classifier_difference:.2e}, its UNet {unet_difference:.2e}")
    assert classifier_difference < 1e-4 and unet_difference < 1e-4
    assert card.input["lungs_method"] == "decovnet-zheng2020-lungs" and card.input["pipeline"] == "zheng2020"
    assert card.threshold == 0.5 and "non-commercial" in card.licence
    assert card.source["sha256"] and card.source["file"] == classifier.name
    assert lungs_card.input["pipeline"] == "zheng2020"
    refused = run_cli(
        "import",
        "decovnet",
        "--classifier",
        str(classifier),
        "--lungs",
        str(unet_file),
        env={**os.environ, "COVIDCT_MODELS_DIR": str(user_models)},
    )
    assert refused.returncode == 2 and "already installed" in refused.stderr


@pytest.mark.slow  # the authors' UNet on 368 x 368 slices
def test_the_authors_decovnet_pipeline_runs_end_to_end_on_a_real_ct(decovnet_files, user_models):
    """Detection with the imported model: the authors' lung UNet and preprocessing (the lungs here are
    the CIP CT's real mask: random UNet weights give no lungs), a heat map on the CT grid."""
    import covidct
    from covidct.lungs import segment_lungs
    from covidct.models.published import import_decovnet

    import_decovnet(decovnet_files[0], decovnet_files[1])
    ct = covidct.load_ct(CIP_CT)
    result = covidct.detect(ct, model="decovnet-zheng2020", lungs=CIP_LUNGS, device="cpu")
    assert 0.0 <= result.probability <= 1.0 and result.heatmap.GetSize() == ct.GetSize()
    assert result.report()["model_card"]["licence"].startswith("CC BY-NC-SA 4.0")
    labels = segment_lungs(ct, method="decovnet-zheng2020-lungs", device="cpu")
    assert labels.GetSize() == ct.GetSize()
    assert set(np.unique(sitk.GetArrayViewFromImage(labels)).tolist()) <= {0, 1, 2}


def test_a_wrong_file_is_refused_naming_the_first_mismatch(decovnet_files, tmp_path):
    state = torch.load(decovnet_files[0], weights_only=True)
    bad = dict(state)
    bad["module.head.1.weight"] = torch.zeros(64, 128, 1, 1, 1)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match=r"'module.head.1.weight' has shape \(64, 128, 1, 1, 1\)"):
        decovnet_state(tmp_path / "bad.pth")
    missing = {k: v for k, v in state.items() if "classifier.1" not in k}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ModelError, match="lacks 'fc.1.weight'"):
        decovnet_state(tmp_path / "missing.pth")
    torch.save({k[len("module.") :]: v for k, v in state.items()}, tmp_path / "plain.pth")
    with pytest.raises(ModelError, match="lacks the 'module.' prefix"):
        decovnet_state(tmp_path / "plain.pth")
    (tmp_path / "text.pth").write_text("not weights")
    result = run_cli(
        "import", "decovnet", "--classifier", str(tmp_path / "text.pth"), "--lungs", str(decovnet_files[1])
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


keras = None


def keras_mydensenetv2():
    """myDenseNetv2 built with Keras from the published architecture (notes and paper), random weights."""
    global keras
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras", reason="keras (test extra) builds the reference COVID-19Net")
    layers = keras.layers

    def conv_block(x, filters, name):
        y = layers.BatchNormalization(epsilon=1.001e-5, name=name + "_0_bn")(x)
        y = layers.Activation("relu", name=name + "_0_relu")(y)
        y = layers.Conv3D(filters, 3, padding="same", use_bias=False, name=name + "_1_conv")(y)
        y = layers.BatchNormalization(epsilon=1.001e-5, name=name + "_1_bn")(y)
        y = layers.Activation("relu", name=name + "_1_relu")(y)
        y = layers.Conv3D(filters, 3, padding="same", use_bias=False, name=name + "_2_conv")(y)
        return layers.Concatenate(name=name + "_concat")([x, y])

    def transition(x, filters, name):
        x = layers.BatchNormalization(epsilon=1.001e-5, name=name + "_trans_bn")(x)
        x = layers.Activation("relu", name=name + "_trans_relu")(x)
        return layers.Conv3D(filters, 1, padding="same", use_bias=False, name=name + "_trans_conv")(x)

    def block(x, filters, name):
        for index, width in enumerate(filters):
            x = conv_block(x, width, f"{name}_{index}")
        return x

    inputs = keras.Input((12, 40, 50, 1))  # small odd/even sizes exercise TensorFlow's 'same' padding
    x = layers.Conv3D(16, 3, strides=(1, 2, 2), use_bias=False, padding="same", name="block0_conv1")(inputs)
    x = layers.BatchNormalization(epsilon=1.001e-5, name="block0_bn1")(x)
    x = layers.Activation("relu", name="block0_relu1")(x)
    x = layers.Conv3D(16, 3, use_bias=False, padding="same", name="block0_conv2")(x)
    x = transition(block(x, [16, 16], "block_11"), 16, "block13")
    x = layers.MaxPooling3D(2, padding="same")(x)
    x = transition(block(x, [24] * 3, "block_21"), 24, "block23")
    x = layers.MaxPooling3D(2, padding="same")(x)
    x = layers.MaxPooling3D(2, padding="same")(block(x, [32] * 4, "block_31"))
    x = layers.Activation("relu", name="block_final_relu")(
        layers.BatchNormalization(epsilon=1.001e-5, name="block_final_bn")(x)
    )
    x = layers.MaxPooling3D((1, 2, 2), padding="same")(block(x, [32, 32], "EGFR_block_11"))
    x = layers.GlobalAveragePooling3D()(transition(x, 64, "EGFR_block_12"))
    outputs = layers.Dense(1, activation="sigmoid", name="EGFR_global_pred")(x)
    model = keras.Model(inputs, outputs, name="myDense")
    rng = np.random.default_rng(5)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            new = [rng.normal(0, 0.1, w.shape).astype(np.float32) for w in weights]
            if isinstance(layer, layers.BatchNormalization):
                new[3] = np.abs(new[3]) + 0.5
            layer.set_weights(new)
    return model


def keras2_layout(source, target) -> None:
    """A copy of a Keras 3 HDF5 model with Keras 2's weight names (``<layer>/<weight>:0``)."""
    import h5py

    shutil.copy(source, target)
    with h5py.File(target, "r+") as handle:
        group = handle.get("model_weights", handle)
        for name in group.attrs["layer_names"]:
            layer = group[name]
            renamed = []
            for weight in layer.attrs["weight_names"]:
                weight = weight.decode() if isinstance(weight, bytes) else weight
                layer.move(weight, weight + ":0")
                renamed.append((weight + ":0").encode())
            layer.attrs["weight_names"] = renamed


@pytest.mark.slow  # builds and runs a Keras model
def test_covid19net_keras_files_of_both_layouts_import_exactly(tmp_path, user_models):
    model = keras_mydensenetv2()
    keras3 = tmp_path / "myDenseNetv2_COVID-19.h5"
    model.save(keras3)
    keras2 = tmp_path / "keras2.h5"
    keras2_layout(keras3, keras2)
    x = np.random.default_rng(6).normal(size=(2, 12, 40, 50, 1)).astype(np.float32)
    reference = np.asarray(model.predict(x, verbose=0))[:, 0]
    features = keras.Model(model.inputs, model.layers[-2].output).predict(x, verbose=0)
    for path in (keras3, keras2):
        twin = COVID19Net(**COVID19NET_CONFIG).eval()
        twin.load_state_dict(covid19net_state(path), strict=True)
        with torch.no_grad():
            tensor = torch.from_numpy(x).permute(0, 4, 1, 2, 3)  # channels last -> (N, 1, D, H, W)
            probability = np.abs(twin.probability(twin(tensor)).numpy() - reference).max()
            feature = np.abs(twin.features(tensor).numpy() - features).max()
        print(f"{path.name}: COVID-19Net max |difference| probability {probability:.2e}, 64-d features {feature:.2e}")
        assert probability < 1e-4 and feature < 1e-4
    assert model.count_params() == 894_545  # the published model's parameter count (BN statistics included)
    result = run_cli(
        "import", "covid19net", "--classifier", str(keras2), env={**os.environ, "COVIDCT_MODELS_DIR": str(user_models)}
    )
    assert result.returncode == 0, result.stderr
    card = json.loads((user_models / "covid19net-wang2020" / "model.json").read_text())
    assert card["threshold"] == 0.8 and card["input"]["pipeline"] == "wang2020" and "None stated" in card["licence"]
    wrong = run_cli(
        "import", "covid19net", "--classifier", str(CIP_CT), env={**os.environ, "COVIDCT_MODELS_DIR": str(user_models)}
    )
    assert wrong.returncode == 2 and "not an HDF5 file" in wrong.stderr


def test_slicer_bridge_adds_a_published_model_listed_at_once(decovnet_files, user_models, mrml_scene):
    """The CovidCT Detect panel's "Add a published model..." path (the bridge, on real MRML): the import
    runs as a background covidct command and the model is in the classifier list without a restart."""
    from covidct.errors import CovidCTError
    from CovidCTDetectLib.detect_logic import classifier_models
    from CovidCTDetectLib.published_logic import import_published, licence

    assert "non-commercial" in licence("decovnet") and "None stated" in licence("covid19net")
    before = [card.name for card in classifier_models()]
    name = import_published("decovnet", decovnet_files[0], decovnet_files[1], name="zheng-slicer")
    assert name == "zheng-slicer" and name not in before and name in [card.name for card in classifier_models()]
    with pytest.raises(CovidCTError, match="already installed"):
        import_published("decovnet", decovnet_files[0], decovnet_files[1], name="zheng-slicer")
