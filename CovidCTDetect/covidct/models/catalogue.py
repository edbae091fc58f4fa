"""The model catalogue: model cards (JSON) next to weights files, found, verified and loaded.

A model is a weights file (a PyTorch ``state_dict`` saved with ``torch.save``) and a
:class:`ModelCard` JSON file that says what it is: architecture and its constructor ``config``,
input specification, sha256 of the weights, operating threshold, licence and training data.
Cards are looked for in two places (``list_models``):

* bundled with the package: ``covidct/weights/<name>.json`` beside ``<name>.pt``;
* the user's models: ``<root>/<name>/model.json`` beside its weights, where ``<root>`` is the folder
  named by the ``COVIDCT_MODELS_DIR`` environment variable, else ``~/.covidct/models``. A user card
  that is broken, or that takes a bundled model's name, is skipped with a warning (:func:`list_models`).

:func:`load_model` also takes a folder holding ``model.json`` or the path of a card file.
Weights are loaded only after their sha256 matches the card, and always with
``torch.load(..., weights_only=True)`` (no code runs from a weights file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ModelError
from ..outputs import write_bytes, write_json

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"
USER_CARD = "model.json"
MODELS_DIR_ENV = "COVIDCT_MODELS_DIR"
NOT_VALIDATED = (
    "Research software: these weights are not clinically validated and must not be used "
    "for diagnosis or any other clinical decision."
)
ARCHITECTURES = ("decovnet", "covid19net", "unet")
#: the architectures that classify a CT as COVID-19 or not
CLASSIFIERS = ("decovnet", "covid19net")
#: the classifier used when none is named (command line, Python API, Slicer): the installed DeCoVNet
DEFAULT_CLASSIFIER = "decovnet"


def model_class(arch: str):
    """The ``nn.Module`` class of an architecture name (``decovnet``, ``covid19net``, ``unet``)."""
    if arch == "decovnet":
        from .decovnet import DeCoVNet

        return DeCoVNet
    if arch == "covid19net":
        from .covid19net import COVID19Net

        return COVID19Net
    if arch == "unet":
        try:
            from .unet import UNet2D
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.unet":
                raise
            raise ModelError(
                "The 'unet' architecture is not available in this installation "
                "(covidct.models.unet is missing); reinstall covidct."
            ) from exc
        return UNet2D
    raise ModelError(f"Unknown architecture '{arch}'; choose one of {', '.join(ARCHITECTURES)}.")


def build_model(arch: str, **config):
    """A freshly initialised model of architecture ``arch`` built with constructor arguments ``config``."""
    cls = model_class(arch)
    try:
        return cls(**config)
    except TypeError as exc:
        raise ModelError(
            f"Architecture '{arch}' does not accept the config {config} ({exc}); fix the model card's config."
        ) from exc


def default_lungs_method() -> str:
    """The lung segmentation method to use when the user names none: ``"unet"`` when a lung UNet is
    installed (bundled or in the user models folder), else ``"threshold"``, which needs no weights."""
    return "unet" if any(card.architecture == "unet" for card in list_models()) else "threshold"


def default_input(arch: str) -> dict:
    """The input specification a card gets when it names none (the papers' preprocessing)."""
    if arch == "decovnet":
        from ..preprocess.decovnet import INPUT_SPEC
    elif arch == "covid19net":
        from ..preprocess.covid19net import INPUT_SPEC
    elif arch == "unet":
        # DeCoVNet paper, "Preprocessing of 2D UNet": HU window -1200...600, slices resized to 368 x 368
        INPUT_SPEC = {"shape": [1, 368, 368], "hu_window": [-1200, 600], "per_slice": True}
    else:
        raise ModelError(f"Unknown architecture '{arch}'; choose one of {', '.join(ARCHITECTURES)}.")
    return json.loads(json.dumps(INPUT_SPEC))  # a deep copy the card may change


@dataclass
class ModelCard:
    """What a weights file is. Serialised as JSON (every field except ``path``).

    ``input`` describes the tensor the model expects, e.g. ``{"shape": [2, "T", 224, 336],
    "hu_window": [-1200, 600]}``; ``weights`` is the weights file name, relative to the card's folder;
    ``threshold`` is the operating threshold on P(COVID-19) that turns a probability into a label (for a
    lung UNet: on P(lung) per pixel, :func:`covidct.lungs.unet_infer.margin_cut`);
    ``training_data`` says in words what the model was trained on and ``training_sources`` lists the
    datasets or cases; ``metrics`` holds evaluation figures (name → value); ``config`` holds the
    architecture's constructor arguments. ``created`` is an ISO-8601 UTC time.

    ``validated`` states the CTs the model was validated on: ``slice_mm`` and ``pixel_mm``, each
    ``[min, max]`` in mm, and ``contrast``: ``false`` when it was validated on CTs without intravenous
    contrast only. Detection refuses slices thicker than ``slice_mm``'s maximum and warns for anything
    else outside these ranges, and for a CT that looks contrast-enhanced where ``contrast`` is
    ``false`` (:mod:`covidct.contrast`); empty: no range stated, no check. ``heatmap_scale`` is the
    HiResCAM value (log-odds units per cell of ``cam_layer``) shown as 1.0 on the heat map, the same
    for every CT; ``None`` scales each CT's heat map to its own maximum (relative, labelled so).
    ``source`` records where imported weights came from (file name, sha256, repository, paper).
    """

    name: str
    architecture: str
    description: str = ""
    input: dict = field(default_factory=dict)
    weights: str = ""
    sha256: str = ""
    threshold: float = 0.5
    licence: str = ""
    training_data: str = ""
    training_sources: list = field(default_factory=list)
    not_clinically_validated: str = NOT_VALIDATED
    created: str = ""
    metrics: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    validated: dict = field(default_factory=dict)
    heatmap_scale: float | None = None
    source: dict = field(default_factory=dict)
    #: the card file this card was read from (not serialised)
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ModelError(
                f"Model card '{self.name}' names the unknown architecture '{self.architecture}'; "
                f"use one of {', '.join(ARCHITECTURES)}."
            )
        if not isinstance(self.threshold, (int, float)) or not 0.0 <= self.threshold <= 1.0:
            raise ModelError(
                f"Model card '{self.name}' has the threshold {self.threshold}; "
                "an operating threshold on a probability must lie between 0 and 1."
            )
        if not self.input:
            self.input = default_input(self.architecture)
        if not self.weights:
            self.weights = f"{self.name}.pt"
        if not self.created:
            self.created = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def to_dict(self) -> dict:
        """The card as a JSON-able dict (without ``path``)."""
        data = dataclasses.asdict(self)
        data.pop("path")
        return data

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> ModelCard:
        """A card from a parsed JSON object; unknown keys are ignored (newer cards stay readable)."""
        where = f"Model card {path}" if path else "The model card"
        missing = [key for key in ("name", "architecture") if key not in data]
        if missing:
            raise ModelError(f"{where} lacks the field(s) {', '.join(missing)}; add them or re-save the model.")
        known = {f.name for f in dataclasses.fields(cls)} - {"path"}
        return cls(**{k: v for k, v in data.items() if k in known}, path=path)

    @property
    def weights_path(self) -> Path:
        """Absolute path of the weights file (next to the card)."""
        if self.path is None:
            raise ModelError(
                f"Model card '{self.name}' was not read from a file, so its weights cannot be found; "
                "save it with save_model first."
            )
        return self.path.parent / self.weights


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read one card file; raises :class:`ModelError` with one sentence when it is unreadable."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"Model card {path} does not exist; check the path or the model name.") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"Model card {path} is not readable JSON ({exc}); fix or re-save it.") from exc
    if not isinstance(data, dict):
        raise ModelError(f"Model card {path} holds no JSON object; fix or re-save it.")
    return ModelCard.from_dict(data, path=path.resolve())


def user_models_dir() -> Path:
    """The user's model folder: ``$COVIDCT_MODELS_DIR`` or ``~/.covidct/models``."""
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".covidct" / "models"


def list_models() -> list[ModelCard]:
    """Every model card found: the bundled ones (``covidct/weights``), then the user's
    (``$COVIDCT_MODELS_DIR/*/model.json``), each group sorted by file name.

    Returns
    -------
    list of ModelCard
        One card per model name.

    Notes
    -----
    One bad user card never hides the others: a user card that cannot be read, that has the name of a
    bundled model (the bundled one is used) or of another user model (the first folder in name order is
    used) is skipped with a warning naming its file.
    """
    cards: dict[str, ModelCard] = {}
    for path in sorted(BUNDLED_DIR.glob("*.json")) if BUNDLED_DIR.is_dir() else []:
        card = read_card(path)
        cards[card.name] = card
    bundled = set(cards)
    root = user_models_dir()
    for path in sorted(root.glob(f"*/{USER_CARD}")) if root.is_dir() else []:
        try:
            card = read_card(path)
        except ModelError as error:
            _warn_once(path, f"skipping the model card {path}: {error}")
            continue
        if card.name in cards:
            winner = "the bundled model" if card.name in bundled else f"the one in {cards[card.name].path.parent}"
            _warn_once(
                path,
                f"skipping the user model '{card.name}' in {path.parent}: {winner} has that name and is used; "
                "rename the user model (its card's name) to use it",
            )
            continue
        cards[card.name] = card
    return list(cards.values())


_WARNED: set = set()


def _warn_once(path: Path, message: str) -> None:
    """Log a skipped card once per process (the catalogue is listed many times per run)."""
    if path not in _WARNED:
        _WARNED.add(path)
        log.warning("%s", message)


def find_model(name_or_path: str | os.PathLike) -> ModelCard:
    """The card of a catalogue model name, of a folder holding ``model.json``, or of a card file."""
    path = Path(name_or_path).expanduser()
    if (path / USER_CARD).is_file():
        return read_card(path / USER_CARD)
    if path.suffix == ".json" and path.is_file():
        return read_card(path)
    models = list_models()
    for card in models:
        if card.name == str(name_or_path):
            return card
    available = ", ".join(card.name for card in models) or "none installed"
    if path.is_dir():
        raise ModelError(
            f"Folder {path} holds no {USER_CARD}; give a model folder, a card file or one of the "
            f"model names ({available})."
        )
    raise ModelError(
        f"Unknown model '{name_or_path}'; available models: {available} (or give a folder holding {USER_CARD})."
    )


def find_classifier(model) -> ModelCard:
    """The :class:`ModelCard` of a COVID-19 classifier (:data:`CLASSIFIERS`).

    ``model``: a catalogue name; an architecture name, ``"decovnet"`` or ``"covid19net"``, which stands
    for the installed model of that architecture when no model has that exact name (a bundled one
    first, e.g. ``decovnet-demo``); a folder holding ``model.json``; or a card file. Raises
    :class:`ModelError` when none is found and :class:`~covidct.errors.UsageError` for a model that
    is not a classifier (the lung UNet).
    """
    from ..errors import UsageError

    name = str(model)
    if name in CLASSIFIERS and not Path(name).exists():
        cards = list_models()
        if name not in {card.name for card in cards}:
            matching = sorted(
                (card.path.parent != BUNDLED_DIR, card.name) for card in cards if card.architecture == name
            )
            name = matching[0][1] if matching else name
    card = find_model(name)
    if card.architecture not in CLASSIFIERS:
        raise UsageError(
            f"Model '{card.name}' is a {card.architecture} model, not a COVID-19 classifier; "
            "choose a decovnet or covid19net model."
        )
    return card


def torch_bytes(obj) -> bytes:
    """``torch.save(obj)`` as bytes, written to memory: saved to a file path, PyTorch would put the (random,
    temporary) file name inside the archive, and identical weights would not give identical files."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(name_or_path: str | os.PathLike, device="cpu"):
    """Load a catalogue model.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A model name from :func:`list_models`, a folder holding ``model.json``, or a card file.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    (torch.nn.Module, ModelCard)
        The model in eval mode on ``device``, and its card (architecture, input, threshold, licence).

    Raises
    ------
    ModelError
        Unknown name, missing weights, or a weights file whose sha256 does not match the card;
        weights load with ``weights_only=True``.
    """
    import torch

    from ..device import resolve_device

    card = find_model(name_or_path)
    weights = card.weights_path
    if not weights.is_file():
        raise ModelError(
            f"Weights file {weights} of model '{card.name}' is missing; "
            "reinstall the package or copy the weights next to the model card."
        )
    actual = file_sha256(weights)
    if actual != card.sha256:
        raise ModelError(
            f"Weights file {weights} does not match model '{card.name}' (sha256 {actual[:12]}… "
            f"instead of {card.sha256[:12] or 'none'}…); the file is damaged or replaced, "
            "so reinstall or re-save the model."
        )
    device = device if isinstance(device, torch.device) else resolve_device(device)
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
    except Exception as exc:  # pickle/zip errors of a damaged or foreign file
        raise ModelError(
            f"Weights file {weights} of model '{card.name}' cannot be read as PyTorch weights "
            f"({type(exc).__name__}); re-save the model."
        ) from exc
    model = build_model(card.architecture, **card.config)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ModelError(
            f"Weights file {weights} does not fit the '{card.architecture}' architecture with "
            f"config {card.config}; the card names the wrong architecture or config."
        ) from exc
    return model.to(device).eval(), card


def save_model(model, card: ModelCard, folder: str | os.PathLike, card_file: str = USER_CARD) -> ModelCard:
    """Save a model's weights and its card into a folder of the catalogue's layout.

    Parameters
    ----------
    model : torch.nn.Module
        A model of ``card.architecture``; one wrapped by DistributedDataParallel or ``torch.compile``
        is unwrapped first.
    card : ModelCard
        Its card (name, architecture, input, threshold, licence, ...); ``card.weights`` names the file.
    folder : str or os.PathLike
        Destination (created); a user model goes to ``$COVIDCT_MODELS_DIR/<name>``.
    card_file : str
        ``model.json`` for a user model, ``<name>.json`` for a bundled one.

    Returns
    -------
    ModelCard
        The card as written, with the weights' sha256 and its path.

    Raises
    ------
    ModelError
        The model is not of the card's architecture.
    OSError
        A file could not be written whole (each is written atomically; nothing half-written is left).
    """

    model = _unwrap(model)
    if not isinstance(model, model_class(card.architecture)):
        raise ModelError(
            f"Cannot save a {type(model).__name__} under a card for architecture "
            f"'{card.architecture}'; fix the card's architecture."
        )
    folder = Path(folder)
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    data = torch_bytes(state)
    write_bytes(folder / card.weights, data)
    saved = dataclasses.replace(card, sha256=hashlib.sha256(data).hexdigest(), path=(folder / card_file).resolve())
    write_json(saved.path, saved.to_dict())
    return saved


def _unwrap(model):
    """The plain module inside DistributedDataParallel/DataParallel (``.module``) or torch.compile
    (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if inner is None:
            inner = getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner
