"""Training the 2D lung UNet: CT slices in, lung masks out, with synthetic pleural lesions.

DeCoVNet paper: "we trained a simple 2D UNet using the CT images in our training set. To obtain the
ground-truth lung masks, we segmented the lung regions using an unsupervised learning method" — the
masks are the manifest's ``lungs`` files where a dataset has real ones, else pseudo-labels from
``segment_lungs(method="threshold")`` (cached). Slices are the paper's: HU window −1200…600 → 0…1,
each slice resized to the UNet's input size (:mod:`covidct.preprocess.unet`; 368 × 368 in the
paper, ``--input-size`` to train at another), masks nearest-neighbour on the same grid; the target is
lung (1) vs background (0), left/right being assigned afterwards.

Lesion augmentation: lung masks from thresholds, like many lung tools, leave out dense consolidation
along the pleura. Here lesions are inserted into the *clean* slice while the target stays the clean
lung mask, so the network learns that consolidation and ground-glass opacity touching the pleura
are lung: with probability ``config.lesion_augment`` a training slice gets 1–3 lesions
(consolidation −100…+50 HU or GGO, 10–40 mm, every one touching the pleura: the outer, costal and
diaphragmatic, surface, or for a share ``config.lesion_mediastinal`` of them anywhere on the lung's
surface, against the heart and mediastinum too) from :func:`covidct.data.synth.paint_lesions`. Lesion
pixels are few, so a network may leave them out at little cost (trained without weights: 10–26 % of
pleural consolidation inside the mask); their cross-entropy weighs ``config.lesion_weight`` times a
plain pixel's. The target marks them 2 (lung and lesion), 1 (other lung), 0 (background).
Hard negatives: with probability ``config.organ_gas`` a training slice also gets a patch of gas-mottled
stomach or bowel contents painted into organ tissue beside the lung
(:func:`covidct.data.organ_gas.paint_organ_gas`), labelled organ, so that the lesion augmentation does
not teach the network that everything dense at the lung base is lung.
Validation scores every validation slice twice, clean and with lesions (fixed seeds): ``val_dice`` is
the Dice of the lung class over both, ``val_dice_clean``/``val_dice_lesions`` the two parts, and
``val_lesion_coverage`` the share of lesion pixels predicted lung. Then a random affine acts on image
and mask alike (:data:`UNET_RANGES`).

Field of view: slices narrower than 450 mm are padded with air before the resize
(:func:`covidct.preprocess.unet.fov_padding`, the same in training and in use); on top of that,
:data:`UNET_RANGES` draws scales of 0.6–1.4 (the paper's ±20 % is narrower), so that the lungs'
size in the input varies as it does between patients and reconstruction diameters.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from ..data.augment import AugmentRanges, random_augmentation
from ..data.cache import TensorCache, code_version, file_identity
from ..data.manifest import Case
from ..data.organ_gas import paint_organ_gas
from ..data.synth import LesionOptions, paint_lesions
from ..preprocess.window import HU_WINDOW, hu_window
from .tasks import lungs_for, lungs_key

#: The UNet's augmentation: the paper's rotation, translation and shear, scale 0.6–1.4 (see the module
#: docstring), and mild brightness/contrast jitter (±10 %: the HU window is what separates lung from
#: wall, so the paper's ±50 % would blur that line).
UNET_RANGES = AugmentRanges(scale=0.4, brightness=0.1, contrast=0.1)

#: background pixels denser than this (HU) within ORGAN_MM of the lung are organ touching it (target 3)
ORGAN_HU = -300.0
ORGAN_MM = 15.0

#: Lesions inserted into training slices: dense or ground-glass, every one touching the pleura.
PLEURAL_LESIONS = LesionOptions(kinds=("consolidation", "ggo"), n_lesions=(1, 3), size_mm=(10.0, 40.0), subpleural=1.0)


def unet_slices(ct: sitk.Image, lungs: sitk.Image, size: tuple[int, int]) -> tuple[np.ndarray, list[float]]:
    """``(float32 (Z, 2, H, W), [row, column] spacing in mm)``: the UNet's input slices
    (:func:`covidct.preprocess.unet.unet_input`, canonical, windowed to 0…1, resized to ``size``) with
    the lung mask (0/1, nearest neighbour on the same grid) as the second channel."""
    from ..preprocess.canonical import canonical_ct_and_lungs
    from ..preprocess.unet import unet_input

    canonical, _, lung_array = canonical_ct_and_lungs(ct, lungs)
    image, grid = unet_input(canonical, size)
    mask = grid.to_model(lung_array.astype(np.uint8), order=0).astype(np.float32)
    spacing_x, spacing_y, _ = canonical.GetSpacing()
    rows, columns = grid.padded_shape[1:]
    return np.concatenate([image, mask[:, None]], axis=1), [spacing_y * rows / size[0], spacing_x * columns / size[1]]


class SegmentationTask:
    """The lung UNet: one item per axial slice; loss cross-entropy + soft Dice; validation Dice."""

    metric = "val_dice"
    needs_labels = False

    def __init__(self, config, device):
        from ..preprocess.unet import unet_size

        self.config = config
        self.device = device
        self.size = tuple(config.input_size or unet_size(None))
        self.val_batch = config.effective_batch_size
        #: the inserted lesions (:data:`PLEURAL_LESIONS` with the run's mediastinal share)
        self.lesions = replace(PLEURAL_LESIONS, mediastinal=config.lesion_mediastinal)

    def prepare(self, case: Case, cache: TensorCache, train: bool) -> list[dict]:
        """Cache the case's slices and masks; one item per slice (validation: each slice clean and with lesions)."""
        from .. import geometry, preprocess
        from ..io import load_ct

        method = self.config.lungs_method
        parts = {
            "kind": "unet-slices",
            "ct": file_identity(case.ct),
            "lungs": lungs_key(case, method),
            "size": self.size,
            "code": code_version(unet_slices, preprocess, geometry),
        }

        def compute():
            ct = load_ct(case.ct)
            array, spacing = unet_slices(ct, lungs_for(case, ct, cache, method, self.device), self.size)
            return array, {"case": case.id, "spacing": spacing}

        path = cache.get(parts, compute)
        depth = TensorCache.load(path).shape[0]
        spacing = TensorCache.meta(path)["spacing"]
        variants = (False,) if train else (False, True)
        return [
            {"path": str(path), "slice": z, "spacing": spacing, "lesions": lesions, "case": case.id}
            for lesions in variants
            for z in range(depth)
        ]

    def load(self, item: dict, index: int, seed: int, train: bool) -> dict:
        """One slice as ``(2, H, W)`` float32 (image, target: 0 background, 1 lung, 2 lung with an
        inserted lesion, 3 organ: background denser than :data:`ORGAN_HU` within :data:`ORGAN_MM` of
        the lung, and any gas-mottled organ contents painted in), lesions and contents inserted per the
        module docstring."""
        stack = np.array(TensorCache.load(item["path"])[item["slice"]], dtype=np.float32)
        rng = np.random.default_rng(seed if train else index)
        lesions = item["lesions"] or (train and rng.random() < self.config.lesion_augment)
        low, high = HU_WINDOW
        lung = stack[1] > 0
        if lesions and lung.any():
            hu, painted = paint_lesions(stack[0] * (high - low) + low, lung, item["spacing"], rng, self.lesions)
            stack[0] = hu_window(hu)
            stack[1][painted > 0] = 2.0
        if lung.any():
            hu = stack[0] * (high - low) + low
            tissue = ~lung & (hu > ORGAN_HU)
            organ = tissue & (ndi.distance_transform_edt(~lung, sampling=item["spacing"]) <= ORGAN_MM)
            if train and self.config.organ_gas > 0 and rng.random() < self.config.organ_gas:
                organ |= paint_organ_gas(hu, lung, tissue, organ, item["spacing"], rng)
                stack[0] = hu_window(hu)
            stack[1][organ] = 3.0
        return {
            "x": torch.from_numpy(stack),
            "y": torch.zeros(()),
            "seed": seed,
            "index": index,
            "lesions": bool(item["lesions"]),
        }

    def inputs(self, batch: dict, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x (N, 1, H, W), target (N, H, W) long, 0/1/2)`` on the device; :data:`UNET_RANGES` augmentation
        when training."""
        stack = batch["x"].to(self.device, non_blocking=True).float()
        if train and self.config.augment:
            stack = torch.stack(
                [
                    random_augmentation(
                        s[:, None],
                        torch.Generator().manual_seed(seed),
                        UNET_RANGES,
                        image_channels=(0,),
                        mask_channels=(1,),
                        clamp=(0.0, 1.0),
                    )[:, 0]
                    for s, seed in zip(stack, batch["seed"], strict=True)
                ]
            )
        return stack[:, :1], stack[:, 1].round().long()

    def loss(self, model, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (lesion pixels weighted ``config.lesion_weight``, organ pixels
        ``config.organ_weight``) plus soft Dice of the lung class (Dice keeps thin lung edges from being
        ignored); ``target`` 0/1/2/3 as :meth:`load` makes it."""
        logits = logits.float()
        truth = lung_target(target)
        weight = (
            1.0
            + (self.config.lesion_weight - 1.0) * (target == 2).float()
            + (self.config.organ_weight - 1.0) * (target == 3).float()
        )
        cross_entropy = (F.cross_entropy(logits, truth.long(), reduction="none") * weight).sum() / weight.sum()
        lung = torch.softmax(logits, dim=1)[:, 1]
        dice = (2 * (lung * truth).sum() + 1.0) / (lung.sum() + truth.sum() + 1.0)
        return cross_entropy + (1.0 - dice)

    def outputs(self, model, logits: torch.Tensor, target: torch.Tensor, batch: dict) -> dict:
        """Per-slice overlap counts of the predicted and true lung, lesion pixels and those predicted
        lung, organ pixels and those predicted lung, and the loss."""
        predicted = logits.argmax(dim=1) == 1
        truth = lung_target(target)
        lesion = target == 2
        organ = target == 3
        return {
            "overlap": (predicted & truth).sum(dim=(1, 2)).tolist(),
            "predicted": predicted.sum(dim=(1, 2)).tolist(),
            "true": truth.sum(dim=(1, 2)).tolist(),
            "lesion": lesion.sum(dim=(1, 2)).tolist(),
            "lesion_found": (predicted & lesion).sum(dim=(1, 2)).tolist(),
            "organ": organ.sum(dim=(1, 2)).tolist(),
            "organ_as_lung": (predicted & organ).sum(dim=(1, 2)).tolist(),
            "lesions": batch["lesions"],
            "loss": [float(self.loss(model, logits[i : i + 1], target[i : i + 1])) for i in range(len(target))],
        }

    def score(self, records: dict) -> dict:
        """Dice of the lung class over all validation slices, clean and with lesions, the share of lesion
        pixels and of organ pixels predicted lung, and the mean loss."""
        overlap, predicted, true = (np.asarray(records[k], dtype=float) for k in ("overlap", "predicted", "true"))
        lesions = np.asarray(records["lesions"], dtype=bool)

        def dice(select):
            denominator = predicted[select].sum() + true[select].sum()
            return float(2 * overlap[select].sum() / denominator) if denominator else 1.0

        lesion_pixels = float(np.sum(records["lesion"]))
        return {
            "val_dice": dice(np.ones_like(lesions)),
            "val_dice_clean": dice(~lesions),
            "val_dice_lesions": dice(lesions),
            "val_lesion_coverage": float(np.sum(records["lesion_found"]) / lesion_pixels) if lesion_pixels else 1.0,
            "val_organ_as_lung": float(np.sum(records["organ_as_lung"]) / max(float(np.sum(records["organ"])), 1.0)),
            "val_loss": float(np.mean(records["loss"])),
            "val_slices": int(len(lesions)),
        }


def lung_target(target: torch.Tensor) -> torch.Tensor:
    """The lung class (bool) of a 0/1/2/3 target: lung (1) and lung with an inserted lesion (2)."""
    return (target == 1) | (target == 2)
