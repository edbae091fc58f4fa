"""What differs between the models the one training loop trains.

A task turns manifest cases into cached training items, loads an item (CPU, in a DataLoader
worker), augments a batch on the training device, computes the loss, and scores validation:

* :class:`ClassifierTask` (DeCoVNet, COVID-19Net): one item per CT volume, the paper's model input
  (:func:`covidct.preprocess.model_input`, as in detection, at the run's input size), cached; the
  paper's augmentation (:mod:`covidct.data.augment`); the model's own cross-entropy; validation
  ROC AUC (scikit-learn).
* :class:`~.unet_task.SegmentationTask` (lung UNet): one item per CT slice.

Lung masks: the manifest's ``lungs`` file, else ``segment_lungs(method=config.lungs_method)``,
computed once and cached as a pseudo-label (:func:`lungs_for`).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from ..data.augment import random_augmentation, random_mask_edge_shift
from ..data.cache import TensorCache, code_version, file_identity, file_sha256
from ..data.manifest import Case
from ..errors import UsageError
from ..geometry import image_from_array


def sample_seed(*numbers: int) -> int:
    """A 63-bit seed derived from integers (run seed, epoch, index, ...); equal inputs, equal seed."""
    return int(np.random.SeedSequence([int(n) for n in numbers]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def lungs_key(case: Case, method: str) -> str:
    """Names the content of the case's lung mask: the manifest file's sha256, or the cache key of the
    segmentation (CT identity, method, version of the lung code)."""
    if case.lungs is not None:
        return "file:" + file_sha256(case.lungs)
    return "segmented:" + TensorCache.key(_lungs_parts(case, method))


def lungs_for(case: Case, ct: sitk.Image, cache: TensorCache, method: str, device) -> sitk.Image:
    """The case's lung mask on the CT grid: the manifest's mask when given, else
    ``segment_lungs(ct, method)``, computed once and cached on disk (a pseudo-label)."""
    from ..io import read_image

    if case.lungs is not None:
        return read_image(case.lungs)
    from ..lungs import segment_lungs

    def compute():
        mask = segment_lungs(ct, method=method, device=device)
        return sitk.GetArrayFromImage(mask).astype(np.uint8), {}

    path = cache.get(_lungs_parts(case, method), compute)
    return image_from_array(np.array(TensorCache.load(path)), ct)


def _lungs_parts(case: Case, method: str) -> dict:
    from .. import lungs as lungs_package

    return {"kind": "lungs", "ct": file_identity(case.ct), "method": method, "code": code_version(lungs_package)}


def collate(batch: list[dict]) -> dict:
    """Stack items' ``x`` and ``y`` tensors into a batch (other fields become lists); items of
    different shapes (CTs of different lengths) cannot share one."""
    shapes = {tuple(item["x"].shape) for item in batch}
    if len(shapes) > 1:
        raise UsageError(
            f"Volumes of different sizes {sorted(shapes)} cannot share a batch; use --batch-size 1 "
            "(the paper's setting) or volumes with the same number of slices."
        )
    return {
        key: torch.stack([item[key] for item in batch]) if key in ("x", "y") else [item[key] for item in batch]
        for key in batch[0]
    }


class ClassifierTask:
    """DeCoVNet and COVID-19Net: volumes in, P(COVID-19) out; validation ROC AUC."""

    metric = "val_auc"
    needs_labels = True
    #: validation volumes one at a time (their lengths differ)
    val_batch = 1

    def __init__(self, config, device):
        self.config = config
        self.device = device
        if config.model == "decovnet":
            self.augment_args = {"image_channels": (0,), "mask_channels": (1,), "clamp": (0.0, 1.0)}
        else:
            self.augment_args = {"image_channels": (0,), "mask_channels": (), "clamp": None}

    @property
    def size(self) -> tuple[int, ...] | None:
        """The input-size override for :func:`covidct.preprocess.model_input` (COVID-19Net: an ``H × W``
        override keeps the paper's 48 slices)."""
        size = self.config.input_size
        if size is not None and self.config.model == "covid19net" and len(size) == 2:
            from ..preprocess.covid19net import INPUT_SHAPE

            size = (INPUT_SHAPE[0], *size)
        return size

    # ---- items --------------------------------------------------------------------------------
    def prepare(self, case: Case, cache: TensorCache, train: bool) -> list[dict]:
        """Cache the model input of ``case``; returns its one item (the same for training and validation)."""
        from .. import geometry, preprocess
        from ..io import load_ct
        from ..lungs.postprocess import holes_filled
        from ..preprocess import model_input

        parts = {
            "kind": "input",
            "arch": self.config.model,
            "ct": file_identity(case.ct),
            "lungs": lungs_key(case, self.config.lungs_method),
            "input_size": self.size,
            "input_crop": self.config.input_crop,
            "input_slice_mm": self.config.input_slice_mm,
            "input_antialias": self.config.input_antialias,
            **({"input_hu_stats": list(self.config.input_hu_stats)} if self.config.input_hu_stats else {}),
            "code": code_version(preprocess, geometry, holes_filled),  # the inputs' lung mask is hole-filled
        }

        def compute():
            ct = load_ct(case.ct)
            lungs = lungs_for(case, ct, cache, self.config.lungs_method, self.device)
            array, _ = model_input(
                self.config.model,
                ct,
                lungs,
                self.size,
                self.config.input_crop,
                self.config.input_slice_mm,
                self.config.input_antialias,
                hu_stats=self.config.input_hu_stats,
            )
            return array, {"case": case.id}

        path = cache.get(parts, compute)
        return [{"path": str(path), "label": int(case.label), "case": case.id}]

    def load(self, item: dict, index: int, seed: int, train: bool) -> dict:
        """One item as tensors (CPU; float16 as cached)."""
        x = torch.from_numpy(np.array(TensorCache.load(item["path"])))
        return {"x": x, "y": torch.tensor(item["label"]), "seed": seed, "index": index}

    # ---- device side --------------------------------------------------------------------------
    def inputs(self, batch: dict, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` on the device, float32, augmented per sample (its own seed) when training."""
        x = batch["x"].to(self.device, non_blocking=True).float()
        if train and (self.config.augment or self.config.mask_edge_shift > 0):
            x = torch.stack([self._augmented(sample, seed) for sample, seed in zip(x, batch["seed"], strict=True)])
        return x, batch["y"].to(self.device)

    def _augmented(self, sample: torch.Tensor, seed: int) -> torch.Tensor:
        """One ``(C, T, H, W)`` training sample with the paper's augmentation and/or the mask-edge shift,
        drawn in that order from one generator seeded with ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        if self.config.augment:
            sample = random_augmentation(sample, generator, **self.augment_args)
        if self.config.mask_edge_shift > 0:
            (channel,) = self.augment_args["mask_channels"]  # DeCoVNet's lung mask (config allows no other model)
            sample = random_mask_edge_shift(sample, generator, channel, max_cells=self.config.mask_edge_shift)
        return sample

    def loss(self, model, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The model's own loss (cross-entropy, as in both papers)."""
        return model.loss(logits, y)

    def outputs(self, model, logits: torch.Tensor, y: torch.Tensor, batch: dict) -> dict:
        """Per-sample validation records: probability, label and loss."""
        probability = model.probability(logits).float().cpu()
        return {
            "probability": probability.tolist(),
            "label": y.cpu().tolist(),
            "loss": [float(model.loss(logits[i : i + 1], y[i : i + 1])) for i in range(len(y))],
        }

    def score(self, records: dict) -> dict:
        """Validation metrics from all ranks' records: ROC AUC (scikit-learn) and mean loss."""
        from sklearn.metrics import roc_auc_score

        probability = np.asarray(records["probability"], dtype=float)
        labels = np.asarray(records["label"], dtype=int)
        if not np.all(np.isfinite(probability)):
            from ..errors import ModelError

            raise ModelError("Training diverged (the model outputs NaN); lower --lr or disable --amp.")
        return {
            "val_auc": float(roc_auc_score(labels, probability)),
            "val_loss": float(np.mean(records["loss"])),
            "val_cases": int(len(labels)),
        }
