"""The DeCoVNet authors' released files, written from this package's twins with random weights (no download
is possible here): ``torch.save`` of DataParallel ``state_dict``s with the key names listed in
``../shared/notes/published-models.md`` (and an unused ``s4`` stage). Shared by the import tests and the
Slicer bridge's test."""

from __future__ import annotations

from pathlib import Path

import torch

from covidct.models.decovnet import DeCoVNet
from covidct.models.published import DECOVNET_CONFIG, UNET_CONFIG
from covidct.models.unet import UNet2D


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``model`` with random weights and random batch-norm statistics (so that none is an identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point:
                values = torch.randn(tensor.shape, generator=generator) * 0.1
                tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)
    return model.eval()


def authors_decovnet_keys(ours: dict) -> dict:
    """Our DeCoVNet twin's state dict under the authors' key names (DataParallel ``module.`` prefix),
    written from the published key list, plus an unused ``s4`` stage."""
    table = {"stem.0.": "s1.pathway0_stem.conv.", "stem.1.": "s1.pathway0_stem.bn."}
    for ours_stage, theirs_stage in (("res1", "s2"), ("res2", "s3")):
        prefix = f"{theirs_stage}.pathway0_res0."
        table[f"{ours_stage}.shortcut.0."] = prefix + "branch1."
        table[f"{ours_stage}.shortcut.1."] = prefix + "branch1_bn."
        for index, name in ((0, "a"), (1, "a_bn"), (3, "b"), (4, "b_bn"), (6, "c"), (7, "c_bn")):
            table[f"{ours_stage}.branch.{index}."] = prefix + f"branch2.{name}."
    table.update({"classifier.": "head.", "fc.": "classifier."})
    out = {}
    for key, value in ours.items():
        prefix = next(p for p in table if key.startswith(p))
        out["module." + table[prefix] + key[len(prefix) :]] = value.clone()
    out["module.s4.pathway0_res0.branch1.weight"] = torch.zeros(256, 128, 1, 1, 1)
    return out


def authors_unet_keys(ours: dict) -> dict:
    """Our UNet twin's state dict under the authors' ("Pytorch-UNet") key names."""
    out = {}
    for key, value in ours.items():
        parts = key.split(".")
        if parts[0] == "down":
            level = int(parts[1])
            stem = "inc.double_conv." if level == 0 else f"down{level}.maxpool_conv.1.double_conv."
            new = stem + ".".join(parts[2:])
        elif parts[0] == "merge":
            new = f"up{int(parts[1]) + 1}.conv.double_conv." + ".".join(parts[2:])
        else:
            new = "outc.conv." + ".".join(parts[1:])
        out["module." + new] = value.clone()
    return out


def write_decovnet_files(folder: Path) -> tuple[Path, Path, torch.nn.Module, torch.nn.Module]:
    """``(classifier .pth, UNet .pth, twin DeCoVNet, twin UNet)``: random twins saved in the authors' layout."""
    decovnet = randomised(DeCoVNet(**DECOVNET_CONFIG), 1)
    unet = randomised(UNet2D(**UNET_CONFIG), 2)
    classifier, lungs = folder / "ncov-Epoch_00140-auc95p9.pth", folder / "unet-Epoch_00110-valid98.pth"
    torch.save(authors_decovnet_keys(decovnet.state_dict()), classifier)
    torch.save(authors_unet_keys(unet.state_dict()), lungs)
    return classifier, lungs, decovnet, unet
