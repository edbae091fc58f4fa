"""The settings of one training run, saved as ``config.json`` in the run folder.

Defaults are the DeCoVNet paper's ("trained for 100 epochs using Adam optimizer with a constant
learning rate of 1e-5 ... the batch size was set to 1 ... 15 % were randomly selected for
hyperparameter tuning"). The same loop trains COVID-19Net and the lung UNet.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..lungs import METHODS as LUNGS_METHODS
from ..outputs import write_json

ARCHS = ("decovnet", "covid19net", "unet")
#: Batch size used when ``batch_size`` is None: DeCoVNet 1 volume (the paper's; volumes differ in length),
#: COVID-19Net 8 (fixed-size inputs; with one case per step its last batch norm, in training mode,
#: normalises each feature map over its own positions, so the global average after it is almost the same
#: for every case and the network cannot learn: ``Testing/test_train.py``), the UNet 16 slices.
DEFAULT_BATCH = {"decovnet": 1, "covid19net": 8, "unet": 16}
#: Fields that must match when a run is resumed (the others, e.g. ``epochs`` or ``device``, may change).
FIXED_ON_RESUME = (
    "model",
    "manifest",
    "lr",
    "batch_size",
    "val_fraction",
    "seed",
    "augment",
    "input_size",
    "input_crop",
    "input_slice_mm",
    "input_antialias",
    "input_hu_stats",
    "init_from",
    "pretrain_manifest",
    "lungs_method",
    "lesion_augment",
    "lesion_weight",
    "organ_weight",
    "organ_gas",
    "lesion_mediastinal",
    "mask_edge_shift",
    "arch_options",
)


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    Attributes
    ----------
    model : str
        ``"decovnet"``, ``"covid19net"`` or ``"unet"``.
    manifest : str
        Dataset CSV (:mod:`covidct.data.manifest`).
    out : str
        Run folder: checkpoints, logs, and the final model in ``out/model``.
    epochs : int
        Passes over the training cases.
    lr : float
        Learning rate (Adam).
    batch_size : int or None
        Cases (slices for the UNet) per step; None = :data:`DEFAULT_BATCH`.
    val_fraction : float
        Fraction of the cases held out for validation (split by patient, seeded).
    seed : int
        Seed of the split, the initial weights and the augmentation.
    augment : bool
        The paper's online augmentation of the training inputs (:mod:`covidct.data.augment`: affine
        transform and colour jitter, one draw per case).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    amp : bool or None
        bfloat16 autocast; None = on CUDA only.
    num_workers : int
        Data-loader worker processes (0 = in the training process).
    init_from : str or None
        A checkpoint (``.pt``) or model folder to start from.
    pretrain_manifest : str or None
        COVID-19Net's first step: an auxiliary binary task trained in ``out/pretrain`` before fine-tuning
        on ``manifest``.
    pretrain_epochs : int or None
        Epochs of that step; None = ``epochs``.
    input_size : tuple of int or None
        In-plane ``(H, W)`` override of DeCoVNet's input (its adaptive pooling takes any size; for small
        GPUs and tests), or ``(D, H, W)`` for COVID-19Net; None = the paper's.
    input_crop : str or None
        DeCoVNet only: ``"lung_box"`` crops every slice to the lungs' in-plane box
        (:func:`covidct.preprocess.decovnet.decovnet_input`); None = the whole field of view.
    input_slice_mm : float or None
        DeCoVNet only: resize along z to slices of this thickness (mm); None keeps every slice.
    input_antialias : bool
        DeCoVNet only: area-average instead of sampling when resizing.
    input_hu_stats : (float, float) or None
        COVID-19Net only: z-score its input with this fixed ``(mean, sd)`` in HU instead of each ROI's
        own (card ``input.hu_mean_std``; :func:`covidct.preprocess.covid19net.covid19net_input`).
    lungs_method : str or None
        Lung segmentation for manifest rows without a ``lungs`` mask (cached); None = ``"threshold"``
        pseudo-labels when training the UNet itself, else :func:`covidct.models.default_lungs_method`
        (the UNet when installed).
    cache_dir : str or None
        Preprocessed-input cache; None = ``out/cache``.
    checkpoint_every : int
        Steps between mid-epoch checkpoints (0 = only at epoch ends).
    lesion_augment : float
        UNet only: probability that a training slice gets synthetic pleural lesions.
    lesion_weight : float
        UNet only: cross-entropy weight of those lesions' pixels relative to the others.
    organ_weight : float
        UNet only: cross-entropy weight of the background's dense pixels near the lung (organs touching
        it: heart, liver, spleen, stomach, chest wall), which the mask must leave out.
    organ_gas : float
        UNet only: probability that a training slice gets a patch of gas-mottled stomach or bowel contents
        painted into organ tissue beside the lung, labelled organ (:mod:`covidct.data.organ_gas`).
    lesion_mediastinal : float
        UNet only: share of those lesions placed on the lung's whole surface, its mediastinal side
        included, instead of its outer surface (:class:`covidct.data.synth.LesionOptions`).
    mask_edge_shift : float
        DeCoVNet only: each training volume's lung-mask channel has its edge moved in-plane by a uniform
        draw in ``[-mask_edge_shift, mask_edge_shift]`` input cells (0…1;
        :func:`covidct.data.augment.random_mask_edge_shift`); 0 = off.
    name : str or None
        The trained model's catalogue name; None = ``<model>-<name of the out folder>``.
    deterministic : bool
        Deterministic algorithms (always on the CPU; on CUDA when True).
    resume : bool
        Continue the run in ``out`` from its last checkpoint (the fields in :data:`FIXED_ON_RESUME`
        must be unchanged).
    arch_options : dict
        Constructor arguments of the architecture (e.g. ``{"base": 8}`` for a narrower UNet,
        ``{"dropout": 0.2}`` for DeCoVNet); they go into the model card's ``config``, so the model is
        rebuilt the same way.
    """

    model: str
    manifest: str
    out: str
    epochs: int = 100
    lr: float = 1e-5
    batch_size: int | None = None
    val_fraction: float = 0.15
    seed: int = 0
    augment: bool = True
    device: str = "auto"
    amp: bool | None = None
    num_workers: int = 0
    init_from: str | None = None
    pretrain_manifest: str | None = None
    pretrain_epochs: int | None = None
    input_size: tuple[int, ...] | None = None
    input_crop: str | None = None
    input_slice_mm: float | None = None
    input_antialias: bool = False
    input_hu_stats: tuple[float, float] | None = None
    lungs_method: str | None = None
    cache_dir: str | None = None
    checkpoint_every: int = 50
    lesion_augment: float = 0.5
    lesion_weight: float = 10.0
    organ_weight: float = 1.0
    organ_gas: float = 0.0
    lesion_mediastinal: float = 0.0
    mask_edge_shift: float = 0.0
    name: str | None = None
    deterministic: bool = False
    resume: bool = False
    arch_options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.input_size is not None:
            self.input_size = tuple(int(v) for v in self.input_size)
        if self.input_hu_stats is not None:
            self.input_hu_stats = tuple(float(v) for v in self.input_hu_stats)
        # absolute paths, so that a resumed run from another working folder compares equal
        for key in ("manifest", "out", "init_from", "pretrain_manifest", "cache_dir"):
            value = getattr(self, key)
            if value is not None and (key != "init_from" or Path(value).exists()):
                setattr(self, key, str(Path(value).expanduser().resolve()))
        self.validate()
        if self.lungs_method is None:  # fixed now, so that a resumed run keeps the masks it started with
            from ..models import default_lungs_method

            self.lungs_method = "threshold" if self.model == "unet" else default_lungs_method()

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size or DEFAULT_BATCH[self.model]

    @property
    def cache_folder(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.out) / "cache"

    def validate(self) -> None:
        """Raise :class:`UsageError` with one sentence for the first bad value."""
        if self.model not in ARCHS:
            raise UsageError(f"Unknown model '{self.model}'; choose decovnet, covid19net or unet.")
        checks = [
            (self.epochs >= 1, f"--epochs must be at least 1 (got {self.epochs})."),
            (self.lr > 0, f"--lr must be positive (got {self.lr})."),
            (
                self.batch_size is None or self.batch_size >= 1,
                f"--batch-size must be at least 1 (got {self.batch_size}).",
            ),
            (0.0 <= self.val_fraction < 1.0, f"--val-fraction must lie in [0, 1) (got {self.val_fraction})."),
            (self.num_workers >= 0, f"--num-workers must be 0 or more (got {self.num_workers})."),
            (self.checkpoint_every >= 0, f"--checkpoint-every must be 0 or more (got {self.checkpoint_every})."),
            (0.0 <= self.lesion_augment <= 1.0, f"--lesion-augment must lie in [0, 1] (got {self.lesion_augment})."),
            (self.lesion_weight >= 1.0, f"--lesion-weight must be at least 1 (got {self.lesion_weight})."),
            (self.organ_weight >= 1.0, f"--organ-weight must be at least 1 (got {self.organ_weight})."),
            (0.0 <= self.organ_gas <= 1.0, f"--organ-gas must lie in [0, 1] (got {self.organ_gas})."),
            (
                0.0 <= self.lesion_mediastinal <= 1.0,
                f"--lesion-mediastinal must lie in [0, 1] (got {self.lesion_mediastinal}).",
            ),
            (
                0.0 <= self.mask_edge_shift <= 1.0,
                f"--mask-edge-shift must lie in [0, 1] input cells (got {self.mask_edge_shift}).",
            ),
            (
                self.mask_edge_shift == 0.0 or self.model == "decovnet",
                "--mask-edge-shift is a DeCoVNet option (its input has a lung-mask channel).",
            ),
            (
                self.input_crop is None or (self.model == "decovnet" and self.input_crop == "lung_box"),
                f"--input-crop {self.input_crop} is not valid for {self.model}; "
                "only DeCoVNet takes --input-crop lung_box "
                "(COVID-19Net always crops to its lung-ROI).",
            ),
            (
                self.model == "decovnet" or (self.input_slice_mm is None and not self.input_antialias),
                "--input-slice-mm and --input-antialias are DeCoVNet options (COVID-19Net resizes to its own shape).",
            ),
            (
                self.input_hu_stats is None or self.model == "covid19net",
                "--input-hu-stats is a COVID-19Net option (DeCoVNet windows its HU, the UNet takes slices).",
            ),
            (
                self.input_hu_stats is None or (len(self.input_hu_stats) == 2 and self.input_hu_stats[1] > 0),
                f"--input-hu-stats must be MEAN,SD in HU with SD > 0 (got {self.input_hu_stats}).",
            ),
            (
                self.input_slice_mm is None or 0.5 <= self.input_slice_mm <= 20.0,
                f"--input-slice-mm must lie between 0.5 and 20 mm (got {self.input_slice_mm}).",
            ),
            (
                self.lungs_method is None or self.lungs_method in LUNGS_METHODS,
                f"--lungs-method must be {' or '.join(LUNGS_METHODS)} (got {self.lungs_method}).",
            ),
            (
                self.pretrain_epochs is None or self.pretrain_epochs >= 1,
                f"--pretrain-epochs must be at least 1 (got {self.pretrain_epochs}).",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if self.arch_options:
            from ..errors import ModelError
            from ..models import build_model

            try:
                build_model(self.model, **self.arch_options)
            except (ModelError, ValueError) as exc:
                raise UsageError(f"--arch-option {self.arch_options} does not fit {self.model}: {exc}") from None
        if self.input_size is not None:
            allowed = (2, 3) if self.model == "covid19net" else (2,)
            if len(self.input_size) not in allowed or min(self.input_size) < 16:
                shape = "HxW or DxHxW" if self.model == "covid19net" else "HxW"
                raise UsageError(
                    f"--input-size {'x'.join(map(str, self.input_size))} is not valid for {self.model}; "
                    f"give {shape} with every size at least 16, e.g. 112x168."
                )

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if data["input_size"] is not None:
            data["input_size"] = list(data["input_size"])
        return data

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config as JSON (atomically)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a config written by :meth:`save`; unknown keys are ignored."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the :data:`FIXED_ON_RESUME` fields whose values differ from ``other``'s."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [key for key in FIXED_ON_RESUME if mine[key] != theirs[key]]


def parse_arch_options(items: list[str] | None) -> dict:
    """``["base=8", "running_stats=false"]`` → ``{"base": 8, "running_stats": False}``: values are read
    as JSON (numbers, ``true``/``false``), anything else stays a string; raises :class:`UsageError`
    for an item without ``=``."""
    options = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--arch-option '{item}' is not NAME=VALUE; write e.g. --arch-option base=8.")
        try:
            options[name.strip()] = json.loads(value)
        except ValueError:
            options[name.strip()] = value
    return options


def parse_hu_stats(text: str | None) -> tuple[float, float] | None:
    """``"-800,350"`` → ``(-800.0, 350.0)``; ``None``/empty → None; raises :class:`UsageError` when malformed."""
    if not text:
        return None
    try:
        mean, sd = (float(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--input-hu-stats '{text}' is not MEAN,SD; write e.g. -800,350 (HU).") from None
    return mean, sd


def parse_input_size(text: str | None) -> tuple[int, ...] | None:
    """``"64x96"`` → ``(64, 96)``; ``None``/empty → None; raises :class:`UsageError` when malformed."""
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise UsageError(f"--input-size '{text}' is not a size; write HxW, e.g. 112x168.") from None
