"""DeCoVNet (Table 1 sizes), COVID-19Net (shapes, 64-d features, gradients), the model catalogue."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from covidct.errors import ModelError
from covidct.models import (
    COVID19Net,
    DeCoVNet,
    ModelCard,
    build_model,
    find_model,
    list_models,
    load_model,
    save_model,
)
from covidct.models.catalogue import file_sha256


def _stage_shapes(model, names, x):
    """Output shape (without batch) of each named sub-module during one forward pass of ``x``."""
    shapes, handles = {}, []
    for name in names:
        module = model.get_submodule(name)
        handles.append(
            module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:])))
        )
    with torch.no_grad():
        logits = model(x)
    for handle in handles:
        handle.remove()
    return shapes, logits


# Table 1 of the DeCoVNet paper, for an input 2 × T × H × W (the table's H × W is 192 × 288)
def _table1(t, h, w):
    t2 = math.ceil(t / 2)
    return {
        "stem": (16, t, h // 4, w // 4),
        "res1": (64, t, h // 4, w // 4),
        "pool_t": (64, t2, h // 4, w // 4),
        "res2": (128, t2, h // 8, w // 8),
        "classifier.0": (128, 16, 24, 36),
        "classifier.2": (64, 16, 24, 36),
        "classifier.3": (64, 4, 12, 18),
        "classifier.5": (32, 4, 12, 18),
        "classifier.6": (32, 4, 12, 18),
        "classifier.8": (32, 4, 12, 18),
        "classifier.9": (32, 1, 1, 1),
        "fc": (2,),
    }


@pytest.fixture(scope="module")
def decovnet():
    torch.manual_seed(0)
    return DeCoVNet().eval()


@pytest.mark.parametrize("hw", [(192, 288), (224, 336)], ids=["table1-192x288", "paper-224x336"])
@pytest.mark.parametrize("t", [16, 33, 64])
def test_decovnet_stage_sizes_follow_table1(decovnet, t, hw):
    expected = _table1(t, *hw)
    shapes, logits = _stage_shapes(decovnet, list(expected), torch.randn(1, 2, t, *hw))
    assert shapes == expected
    assert logits.shape == (1, 2)
    assert torch.isfinite(logits).all()


def test_decovnet_table1_literal_sizes(decovnet):
    # the table's own entries for T = 32: 16×T×48×72, 64×T/2×48×72, 128×T/2×24×36
    shapes, _ = _stage_shapes(decovnet, ["stem", "pool_t", "res2"], torch.randn(1, 2, 32, 192, 288))
    assert shapes == {"stem": (16, 32, 48, 72), "pool_t": (64, 16, 48, 72), "res2": (128, 16, 24, 36)}


def test_decovnet_single_slice_and_batch(decovnet):
    with torch.no_grad():
        logits = decovnet(torch.randn(3, 2, 1, 64, 96))
    assert logits.shape == (3, 2)
    prob = DeCoVNet.probability(logits)
    assert prob.shape == (3,)
    assert torch.allclose(prob, torch.softmax(logits, 1)[:, 1])
    assert ((prob > 0) & (prob < 1)).all()


def test_decovnet_parameter_count_and_cam_layer(decovnet):
    assert sum(p.numel() for p in decovnet.parameters()) == 345922
    assert decovnet.cam_layer is decovnet.res2
    kernels = [m.kernel_size for m in decovnet.res1.branch if isinstance(m, torch.nn.Conv3d)]
    assert kernels[:2] == [(3, 1, 1), (1, 3, 3)]
    assert decovnet.stem[0].kernel_size == (5, 7, 7)
    assert isinstance(decovnet.classifier[6], torch.nn.Dropout3d) and decovnet.classifier[6].p == 0.5


def test_decovnet_loss_and_gradients():
    torch.manual_seed(1)
    model = DeCoVNet().train()
    x = torch.randn(2, 2, 6, 64, 96)
    labels = torch.tensor([0, 1])
    logits = model(x)
    loss = DeCoVNet.loss(logits, labels)
    manual = -torch.log_softmax(logits, 1)[torch.arange(2), labels].mean()
    assert torch.allclose(loss, manual)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.stem[0].weight.grad.abs().sum() > 0
    assert model.res1.branch[0].weight.grad.abs().sum() > 0


def test_decovnet_per_volume_statistics(models_dir):
    """running_stats=False: inference normalises each volume with its own statistics, as training did."""
    torch.manual_seed(2)
    model = DeCoVNet(dropout=0.0, running_stats=False)
    assert not any("running" in key for key in model.state_dict())
    assert any("running_mean" in key for key in DeCoVNet().state_dict())
    x = torch.rand(1, 2, 8, 32, 48)
    with torch.no_grad():
        trained_view = model.train()(x)
        inference = model.eval()(x)
    assert torch.allclose(trained_view, inference, atol=1e-6)
    card = ModelCard(name="per-volume", architecture="decovnet", config={"dropout": 0.0, "running_stats": False})
    save_model(model, card, models_dir / "per-volume")
    loaded, loaded_card = load_model("per-volume", device="cpu")
    assert loaded_card.config == {"dropout": 0.0, "running_stats": False}
    with torch.no_grad():
        assert torch.equal(loaded(x), inference)


def test_covid19net_paper_input_shapes():
    torch.manual_seed(0)
    model = COVID19Net().eval()
    names = ["stem", "dense1", "trans1", "dense2", "trans2", "dense3", "trans3", "dense4", "head"]
    shapes, logits = _stage_shapes(model, names, torch.randn(1, 1, 48, 240, 360))
    assert shapes == {
        "stem": (16, 48, 60, 90),
        "dense1": (48, 48, 60, 90),
        "trans1": (24, 24, 30, 45),
        "dense2": (88, 24, 30, 45),
        "trans2": (44, 12, 15, 23),
        "dense3": (140, 12, 15, 23),
        "trans3": (70, 6, 8, 12),
        "dense4": (134, 6, 8, 12),
        "head": (64,),
    }
    assert logits.shape == (1, 1)
    assert model.cam_layer is model.dense3
    assert sum(p.numel() for p in model.parameters()) == 543213


def test_covid19net_features_loss_gradients():
    torch.manual_seed(2)
    model = COVID19Net().train()
    x = torch.randn(2, 1, 12, 48, 64)
    features = model.features(x)
    assert features.shape == (2, 64)
    assert (features >= 0).all()  # after the final BN-ReLU and average pooling
    logits = model.fc(features)
    assert logits.shape == (2, 1)
    labels = torch.tensor([1, 0])
    loss = COVID19Net.loss(logits, labels)
    prob = COVID19Net.probability(logits)
    manual = -(torch.log(prob[0]) + torch.log(1 - prob[1])) / 2
    assert torch.allclose(loss, manual, atol=1e-6)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.stem[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), model.fc(model.features(x)))


def test_covid19net_dense_connections():
    block = COVID19Net().dense2
    x = torch.randn(1, 24, 4, 6, 6)
    with torch.no_grad():
        y = block.eval()(x)
    assert y.shape[1] == 24 + 4 * 16
    assert torch.equal(y[:, :24], x)  # every layer's input travels on unchanged (concatenation)
    first = block[0].body
    assert [m.kernel_size for m in first if isinstance(m, torch.nn.Conv3d)] == [(1, 1, 1), (3, 3, 3)]


def test_build_model_names_and_errors():
    assert isinstance(build_model("decovnet"), DeCoVNet)
    small = build_model("covid19net", growth=8, block_layers=(1, 1, 1, 1))
    assert isinstance(small, COVID19Net) and small.dense4[0].body[-1].out_channels == 8
    with pytest.raises(ModelError, match="Unknown architecture 'resnet'; choose one of decovnet, covid19net, unet"):
        build_model("resnet")
    with pytest.raises(ModelError, match="does not accept the config"):
        build_model("decovnet", growth=3)


def test_build_model_unet():
    pytest.importorskip("covidct.models.unet", reason="the lung UNet (models/unet.py) is not in this checkout yet")
    model = build_model("unet").eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 2, 64, 64)


# --------------------------------------------------------------------------------------------
# catalogue
@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    root = tmp_path / "models"
    monkeypatch.setenv("COVIDCT_MODELS_DIR", str(root))
    return root


def _saved_small_decovnet(models_dir, name="tiny-decovnet"):
    torch.manual_seed(3)
    model = DeCoVNet().eval()
    card = ModelCard(
        name=name,
        architecture="decovnet",
        description="test model",
        licence="Apache-2.0",
        training_data="random weights",
        training_sources=["none"],
        threshold=0.4,
        metrics={"auc": 0.5},
    )
    return model, save_model(model, card, models_dir / name)


def test_save_and_load_round_trip(models_dir):
    model, card = _saved_small_decovnet(models_dir)
    folder = models_dir / "tiny-decovnet"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "tiny-decovnet.pt"]
    assert card.sha256 == file_sha256(folder / "tiny-decovnet.pt")
    on_disk = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert on_disk["sha256"] == card.sha256 and on_disk["input"]["shape"] == [2, "T", 224, 336]
    assert on_disk["threshold"] == 0.4 and "not clinically validated" in on_disk["not_clinically_validated"]

    assert [c.name for c in list_models() if c.path.parent == folder.resolve()] == ["tiny-decovnet"]
    for key in ("tiny-decovnet", folder, folder / "model.json"):
        loaded, loaded_card = load_model(key, device="cpu")
        assert not loaded.training
        assert loaded_card.to_dict() == card.to_dict()
    x = torch.randn(1, 2, 4, 64, 96)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_tampered_or_missing_weights_are_refused(models_dir):
    _, card = _saved_small_decovnet(models_dir)
    weights = card.weights_path
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"does not match model 'tiny-decovnet' \(sha256"):
        load_model("tiny-decovnet")
    weights.unlink()
    with pytest.raises(ModelError, match="of model 'tiny-decovnet' is missing"):
        load_model("tiny-decovnet")


def test_architecture_mismatch_is_refused(models_dir):
    _, card = _saved_small_decovnet(models_dir)
    data = json.loads(card.path.read_text(encoding="utf-8"))
    data["architecture"] = "covid19net"
    card.path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="does not fit the 'covid19net' architecture"):
        load_model("tiny-decovnet")
    with pytest.raises(ModelError, match="Cannot save a DeCoVNet under a card for architecture 'covid19net'"):
        save_model(DeCoVNet(), ModelCard(name="x", architecture="covid19net"), models_dir / "x")


def test_unknown_model_lists_available_names(models_dir):
    _saved_small_decovnet(models_dir, "alpha")
    _saved_small_decovnet(models_dir, "beta")
    with pytest.raises(ModelError, match=r"Unknown model 'gamma'; available models: .*alpha, beta"):
        find_model("gamma")


def test_bad_cards_give_one_sentence(models_dir):
    folder = models_dir / "broken"
    folder.mkdir(parents=True)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(ModelError, match="is not readable JSON"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({"name": "broken"}))
    with pytest.raises(ModelError, match="lacks the field"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({"name": "broken", "architecture": "vgg"}))
    with pytest.raises(ModelError, match="unknown architecture 'vgg'"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({"name": "broken", "architecture": "decovnet", "threshold": 5}))
    with pytest.raises(ModelError, match="must lie between 0 and 1"):
        load_model(folder)
    (folder / "model.json").unlink()
    with pytest.raises(ModelError, match="holds no model.json"):
        load_model(folder)


def test_card_defaults():
    card = ModelCard(name="c19", architecture="covid19net")
    assert card.weights == "c19.pt" and card.threshold == 0.5
    assert card.input["shape"] == [1, 48, 240, 360]
    assert card.created.endswith("+00:00")


@pytest.mark.parametrize(
    "name, architecture", [("decovnet-demo", "decovnet"), ("covid19net-demo", "covid19net"), ("unet-lungs", "unet")]
)
def test_bundled_weights_load_and_say_what_they_are(name, architecture):
    from covidct.models.catalogue import BUNDLED_DIR

    card = find_model(name)
    assert card.path.parent == BUNDLED_DIR and card.architecture == architecture
    assert file_sha256(BUNDLED_DIR / card.weights) == card.sha256
    assert f"sha256 `{card.sha256}`" in (BUNDLED_DIR / "README.md").read_text(encoding="utf-8")  # the README is current
    assert "not clinically validated" in card.not_clinically_validated
    assert card.licence and card.training_sources
    assert architecture == "unet" or "synthetic" in card.training_data.lower()
    assert "P001" in card.training_data  # says it never saw the real COVID-19 cases
    model, _ = load_model(name, "cpu")
    assert not model.training and sum(p.numel() for p in model.parameters()) > 100_000


def test_bundled_covid19net_gives_64_deep_features_on_a_real_ct():
    from conftest import shared_file

    from covidct.detection import detect
    from covidct.io import load_ct

    result = detect(
        load_ct(shared_file("cip-copdgene-10002K-ct64/ct-64.nrrd")),
        model="covid19net",
        lungs_method="threshold",
        heatmap=False,
    )
    assert result.model == "covid19net-demo" and 0.0 < result.probability < 1.0
    assert result.features.shape == (64,) and np.isfinite(result.features).all() and result.features.std() > 0
