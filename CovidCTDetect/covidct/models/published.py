"""The papers' own released weights, imported into this package's architectural twins.

* DeCoVNet (Zheng et al. 2020; repository ``sydney0zq/covid-19-detection``, now
  ``theodoruszq/covid-19-detection``; CC BY-NC-SA 4.0): the classifier checkpoint
  ``ncov-Epoch_00140-auc95p9.pth`` and the lung UNet ``unet-Epoch_00110-valid98.pth``, both
  ``torch.save(state_dict)`` of ``torch.nn.DataParallel`` models (every key starts with ``module.``).
  The classifier goes into :class:`~covidct.models.decovnet.DeCoVNet` with ``head="released"``
  (its unused ``s4``/``s5`` stages are ignored), the UNet into
  :class:`~covidct.models.unet.UNet2D` ``(base=16, levels=5, bilinear=True, bias=True)``.
* COVID-19Net (Wang et al. 2020; repository ``wangshuocas/COVID-19``; no licence stated): the Keras
  full-model HDF5 files ``myDenseNetv2_COVID-19.h5`` (and ``myDenseNetv2_EGFR_pretrain.h5``, the
  auxiliary pre-training), read with h5py (no TensorFlow), Keras 2 (``<weight>:0``) or Keras 3
  layout, into :class:`~covidct.models.covid19net.COVID19Net` ``(layout="released")``.

Each reader returns a ``state_dict`` for the twin, or raises :class:`~covidct.errors.ModelError`
with one sentence naming the first key or shape that does not match. :func:`import_decovnet` and
:func:`import_covid19net` write catalogue models (weights + card) into the user's models folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ModelError

DECOVNET_LICENCE = (
    "CC BY-NC-SA 4.0 (the authors' repository sydney0zq/covid-19-detection): non-commercial use only, "
    "attribution, share-alike; whoever imports these weights accepts it."
)
COVID19NET_LICENCE = (
    "None stated: the authors' repository wangshuocas/COVID-19 has no licence file, so no right to use or "
    "redistribute the weights is granted; ask the authors before any use beyond private research."
)
DECOVNET_PAPER = (
    "Zheng C, Deng X, Fu Q, Zhou Q, et al. Deep Learning-based Detection for COVID-19 from Chest CT using "
    "Weak Label. medRxiv 2020."
)
COVID19NET_PAPER = (
    "Wang S, Zha Y, Li W, et al. A Fully Automatic Deep Learning System for COVID-19 Diagnostic and "
    "Prognostic Analysis. medRxiv 2020."
)
#: configs of the twins
DECOVNET_CONFIG = {"head": "released", "dropout": 0.0}
UNET_CONFIG = {"base": 16, "levels": 5, "bilinear": True, "bias": True}
COVID19NET_CONFIG = {"layout": "released"}


# ---------------------------------------------------------------------------------------------
# DeCoVNet and its lung UNet: renaming the DataParallel state dicts
def _decovnet_key(key: str) -> str | None:
    """Our key for a released DeCoVNet key (without ``module.``), or None for the unused stages."""
    if key.startswith(("s4.", "s5.")):
        return None
    rules = [
        (r"^s1\.pathway0_stem\.conv\.", "stem.0."),
        (r"^s1\.pathway0_stem\.bn\.", "stem.1."),
        (r"^s(2|3)\.pathway0_res0\.branch1\.", lambda m: f"res{int(m[1]) - 1}.shortcut.0."),
        (r"^s(2|3)\.pathway0_res0\.branch1_bn\.", lambda m: f"res{int(m[1]) - 1}.shortcut.1."),
    ]
    for letter, (conv, bn) in zip("abc", ((0, 1), (3, 4), (6, 7)), strict=True):
        rules.append(
            (rf"^s(2|3)\.pathway0_res0\.branch2\.{letter}\.", lambda m, c=conv: f"res{int(m[1]) - 1}.branch.{c}.")
        )
        rules.append(
            (rf"^s(2|3)\.pathway0_res0\.branch2\.{letter}_bn\.", lambda m, b=bn: f"res{int(m[1]) - 1}.branch.{b}.")
        )
    rules += [(r"^head\.", "classifier."), (r"^classifier\.", "fc.")]
    for pattern, replacement in rules:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    return key


def _unet_key(key: str) -> str:
    """Our key for a released lung-UNet key (without ``module.``)."""
    rules = [
        (r"^inc\.double_conv\.", "down.0."),
        (r"^down(\d)\.maxpool_conv\.1\.double_conv\.", lambda m: f"down.{m[1]}."),
        (r"^up(\d)\.conv\.double_conv\.", lambda m: f"merge.{int(m[1]) - 1}."),
        (r"^outc\.conv\.", "head."),
    ]
    for pattern, replacement in rules:
        new, count = re.subn(pattern, replacement, key)
        if count:
            return new
    return key


def released_state(state: dict, model, rename, source: str) -> dict:
    """``state`` (a DataParallel state dict) renamed by ``rename`` (None drops a key) and checked
    against ``model``'s own state dict: every key present, every shape equal."""
    if not isinstance(state, dict) or not state:
        raise ModelError(f"'{source}' holds no state dict; give the authors' .pth file.")
    ours = model.state_dict()
    renamed = {}
    for key, value in state.items():
        if not key.startswith("module."):
            raise ModelError(
                f"'{source}' is not the authors' checkpoint: its key '{key}' lacks the 'module.' prefix of "
                "their DataParallel models."
            )
        new = rename(key[len("module.") :])
        if new is None:
            continue
        if new not in ours:
            raise ModelError(f"'{source}' does not match the released architecture: unexpected key '{key}'.")
        if tuple(value.shape) != tuple(ours[new].shape):
            raise ModelError(
                f"'{source}' does not match the released architecture: '{key}' has shape {tuple(value.shape)}, "
                f"expected {tuple(ours[new].shape)}."
            )
        renamed[new] = value
    missing = [key for key in ours if key not in renamed]
    if missing:
        raise ModelError(f"'{source}' does not match the released architecture: it lacks '{missing[0]}'.")
    return renamed


def load_pth(path: str | Path) -> dict:
    """A ``.pth`` state dict read safely (``weights_only=True``), or one-sentence :class:`ModelError`."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelError(f"'{path}' does not exist; give the path of the downloaded .pth file.") from exc
    except Exception as exc:  # pickle, zip or torch format errors all mean the same to the user
        raise ModelError(f"'{Path(path).name}' is not a PyTorch weights file ({type(exc).__name__}).") from exc


def decovnet_state(path: str | Path) -> dict:
    """The DeCoVNet twin's state dict from the authors' classifier checkpoint."""
    from .decovnet import DeCoVNet

    return released_state(load_pth(path), DeCoVNet(**DECOVNET_CONFIG), _decovnet_key, Path(path).name)


def unet_state(path: str | Path) -> dict:
    """The lung-UNet twin's state dict from the authors' UNet checkpoint."""
    from .unet import UNet2D

    return released_state(load_pth(path), UNet2D(**UNET_CONFIG), _unet_key, Path(path).name)


# ---------------------------------------------------------------------------------------------
# COVID-19Net: a Keras HDF5 model read with h5py
def keras_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``{layer name: {weight name: array}}`` of a Keras full-model (or weights-only) HDF5 file;
    weight names lose their ``:0`` suffix (Keras 2) so both layouts read alike."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except FileNotFoundError as exc:
        raise ModelError(f"'{path}' does not exist; give the path of the downloaded .h5 file.") from exc
    except OSError as exc:
        raise ModelError(f"'{Path(path).name}' is not an HDF5 file; give the authors' Keras .h5 model.") from exc
    with handle:
        group = handle.get("model_weights", handle)
        names = [_text(name) for name in group.attrs.get("layer_names", [])]
        if not names:
            raise ModelError(f"'{Path(path).name}' holds no Keras layers; give the authors' Keras .h5 model.")
        layers = {}
        for name in names:
            layer = group[name]
            weights = {}
            for weight in [_text(w) for w in layer.attrs.get("weight_names", [])]:
                short = weight.split("/")[-1].split(":")[0]
                weights[short] = np.array(layer[weight])
            layers[name] = weights
    return layers


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def covid19net_state(path: str | Path) -> dict:
    """The COVID-19Net twin's state dict from a myDenseNetv2 Keras file.

    Conv3D kernels ``(kd, kh, kw, in, out)`` become ``(out, in, kd, kh, kw)``; BatchNormalization's
    gamma, beta, moving_mean, moving_variance become weight, bias, running_mean, running_var; the
    Dense layer's ``(in, out)`` kernel is transposed.
    """
    import torch

    from .covid19net import COVID19Net

    source = Path(path).name
    layers = keras_weights(path)
    model = COVID19Net(**COVID19NET_CONFIG)
    ours = model.state_dict()
    state: dict = {}
    for module_name, module in model.named_modules():
        keras_name = _keras_layer_name(module_name)
        if keras_name is None:
            continue
        if keras_name not in layers:
            raise ModelError(f"'{source}' is not myDenseNetv2: it has no layer '{keras_name}'.")
        weights = layers[keras_name]
        if isinstance(module, torch.nn.Conv3d):
            pairs = {"weight": ("kernel", (4, 3, 0, 1, 2))}
        elif isinstance(module, torch.nn.BatchNorm3d):
            pairs = {
                "weight": ("gamma", None),
                "bias": ("beta", None),
                "running_mean": ("moving_mean", None),
                "running_var": ("moving_variance", None),
            }
        else:  # the Dense output
            pairs = {"weight": ("kernel", (1, 0)), "bias": ("bias", None)}
        for ours_name, (keras_weight, axes) in pairs.items():
            if keras_weight not in weights:
                raise ModelError(f"'{source}' is not myDenseNetv2: layer '{keras_name}' has no '{keras_weight}'.")
            value = weights[keras_weight] if axes is None else np.transpose(weights[keras_weight], axes)
            key = f"{module_name}.{ours_name}"
            if tuple(value.shape) != tuple(ours[key].shape):
                raise ModelError(
                    f"'{source}' is not myDenseNetv2: '{keras_name}/{keras_weight}' has shape "
                    f"{tuple(weights[keras_weight].shape)}, not the released architecture's."
                )
            state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    for key, value in ours.items():
        state.setdefault(key, value)  # num_batches_tracked counters
    return state


def _keras_layer_name(module_name: str) -> str | None:
    """The Keras layer a COVID19Net(layout="released") submodule holds weights of, or None."""
    if module_name == "fc":
        return "EGFR_global_pred"
    parts = module_name.split(".")
    if parts[0] != "released" or len(parts) < 2:
        return None
    block = parts[1]
    if block == "block0_conv1" and parts[2:] == ["1"]:
        return "block0_conv1"
    if block in ("block0_bn1", "block0_conv2", "block_final_bn") and len(parts) == 2:
        return block
    if block in ("block13", "block23", "EGFR_block_12") and len(parts) == 3:
        return {"0": f"{block}_trans_bn", "2": f"{block}_trans_conv"}.get(parts[2])
    if block in ("block_11", "block_21", "block_31", "EGFR_block_11") and len(parts) == 4:
        suffix = {"bn0": "0_bn", "conv1": "1_conv", "bn1": "1_bn", "conv2": "2_conv"}[parts[3]]
        return f"{block}_{parts[2]}_{suffix}"
    return None


# ---------------------------------------------------------------------------------------------
# into the catalogue
def _source(path: Path, repository: str, paper: str) -> dict:
    from .catalogue import file_sha256

    return {"file": path.name, "sha256": file_sha256(path), "repository": repository, "paper": paper}


def save_twin(architecture: str, config: dict, state: dict, card_fields: dict, root: Path) -> Path:
    """Build the twin ``architecture(**config)``, load ``state`` strictly, save it with a card made of
    ``card_fields`` under ``root/<name>``; returns the folder."""
    from .catalogue import ModelCard, build_model, save_model

    model = build_model(architecture, **config)
    model.load_state_dict(state, strict=True)
    card = ModelCard(architecture=architecture, config=config, **card_fields)
    folder = root / card.name
    save_model(model, card, folder)
    return folder


def _target_root(name: str, names: tuple[str, ...], force: bool) -> Path:
    """The user models folder, refusing names that are taken (unless ``force``) or bundled."""
    from .catalogue import BUNDLED_DIR, user_models_dir

    root = user_models_dir()
    for candidate in names:
        if (BUNDLED_DIR / f"{candidate}.json").exists():
            raise ModelError(f"'{candidate}' is the name of a bundled model; choose another --name.")
        if (root / candidate).exists() and not force:
            raise ModelError(
                f"A model named '{candidate}' is already installed in {root}; choose another --name or pass --force."
            )
    return root


def import_decovnet(classifier: str | Path, lungs: str | Path, name: str = "decovnet-zheng2020", force: bool = False):
    """Import the DeCoVNet authors' classifier and lung UNet checkpoints as the catalogue models ``name``
    and ``name-lungs`` in the user models folder; returns the two model folders.

    The classifier's card names ``name-lungs`` as its lung method and ``"zheng2020"`` as its
    preprocessing (:mod:`covidct.preprocess.zheng2020`), so detection with ``name`` runs the authors'
    whole pipeline. Both files are checked (keys, shapes) before anything is written.
    """
    from ..preprocess.zheng2020 import CLASSIFIER_INPUT, UNET_INPUT

    classifier, lungs = Path(classifier), Path(lungs)
    classifier_state, unet = decovnet_state(classifier), unet_state(lungs)
    lungs_name = f"{name}-lungs"
    root = _target_root(name, (name, lungs_name), force)
    repository = "https://github.com/theodoruszq/covid-19-detection (formerly sydney0zq/covid-19-detection)"
    common = {
        "licence": DECOVNET_LICENCE,
        "training_data": (
            "The authors' training set: chest CTs of 499 patients (Union Hospital, Wuhan; COVID-19 positive and "
            "negative), per the paper; not available here. Imported weights, not retrained."
        ),
        "training_sources": [DECOVNET_PAPER],
    }
    unet_folder = save_twin(
        "unet",
        UNET_CONFIG,
        unet,
        {
            **common,
            "name": lungs_name,
            "description": (
                "The DeCoVNet authors' released 2D lung UNet (16 base channels, bilinear upsampling), run on "
                "368 x 368 slices of the CT resampled to 1 mm slices, as their scripts do."
            ),
            "input": dict(UNET_INPUT),
            "source": _source(lungs, repository, DECOVNET_PAPER),
        },
        root,
    )
    classifier_folder = save_twin(
        "decovnet",
        DECOVNET_CONFIG,
        classifier_state,
        {
            **common,
            "name": name,
            "description": (
                "The DeCoVNet authors' released classifier (Zheng et al. 2020; checkpoint ncov-Epoch_00140-auc95p9), "
                "with their preprocessing and lung UNet. Threshold 0.5 as in the paper's Table 2."
            ),
            "input": {**CLASSIFIER_INPUT, "lungs_method": lungs_name},
            "threshold": 0.5,
            "source": _source(classifier, repository, DECOVNET_PAPER),
        },
        root,
    )
    return classifier_folder, unet_folder


def import_covid19net(
    classifier: str | Path, name: str = "covid19net-wang2020", force: bool = False, pretraining: bool = False
) -> Path:
    """Import a myDenseNetv2 Keras file of the COVID-19Net authors as the catalogue model ``name`` in the
    user models folder (``pretraining``: their EGFR auxiliary model, a starting point for
    ``covidct train --init-from``); returns the model folder. Its card names the authors'
    preprocessing (:mod:`covidct.preprocess.wang2020`) and their test script's threshold, 0.8."""
    from ..preprocess.wang2020 import INPUT

    classifier = Path(classifier)
    state = covid19net_state(classifier)
    root = _target_root(name, (name,), force)
    what = "EGFR auxiliary pre-training model (myDenseNetv2_EGFR_pretrain)" if pretraining else "COVID-19 classifier"
    return save_twin(
        "covid19net",
        COVID19NET_CONFIG,
        state,
        {
            "name": name,
            "description": (
                f"The COVID-19Net authors' released {what} (Wang et al. 2020, Keras myDenseNetv2), with their "
                "lung-area extraction and z-score; this package's lung mask stands in for their FPN lung model. "
                "Threshold 0.8 as in their test script."
            ),
            "input": dict(INPUT),
            "threshold": 0.8,
            "licence": COVID19NET_LICENCE,
            "training_data": (
                "The authors' cohorts (per the paper: 4106 CTs with EGFR labels for pre-training, then 1266 patients "
                "from seven cities for COVID-19); not available here. Imported weights, not retrained."
            ),
            "training_sources": [COVID19NET_PAPER],
            "source": _source(classifier, "https://github.com/wangshuocas/COVID-19", COVID19NET_PAPER),
        },
        root,
    )
