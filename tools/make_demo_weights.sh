#!/usr/bin/env bash
# Rebuild the bundled demonstration weights from the real non-COVID CTs in ../shared/data.
#
#   bash tools/make_demo_weights.sh [WORK_DIR] [DEVICE]     (default: ./demo-weights-work, auto)
#
# What it does, with the public command line only (so the model cards can name every step):
#   1. lung UNet   — trained on threshold pseudo-labels (the DeCoVNet paper's recipe) of normal001 and
#                    POPI, with synthetic pleural lesions inserted as augmentation. CIP is held out (its
#                    real mask is the Dice test), P001/P002 (real COVID-19) are never trained on.
#   2. DeCoVNet    — trained on synthetic COVID-19 lesions inserted into the lungs of POPI and the CIP
#                    CT (positives and negatives share backgrounds); normal001 is held out: the test set
#                    is made from it with another seed.
#   3. COVID-19Net — the same data, at the same time budget.
# The results are demonstration weights: synthetic lesions, three real backgrounds, NOT clinically
# validated. Training sizes are reduced (see the --input-size options) so that it runs on a CPU.
# Status: steps "data" and "decovnet" run, but on a 2-core CPU DeCoVNet has not learnt this data yet
# (validation ROC AUC 0.35-0.78 over 2-10 epochs at 112x168 and 64x96, lr 1e-5..1e-4, with and without
# augmentation; training loss stays above 1) although the lesions change 4-6 % of the lung voxels by
# more than 90 HU in the model input. See the issue notes (batch-1 BatchNorm + Dropout3d make train-mode
# logits reach +-15 at initialisation). So no weights are bundled yet, and the UNet and COVID-19Net
# steps are still to be written.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data=${COVIDCT_SHARED_DATA:-$repo/../shared/data}
work=${1:-demo-weights-work}
device=${2:-auto}
weights=$repo/CovidCTDetect/covidct/weights
normal=$data/covid-ct-md-sample/normal001.nii.gz
popi=$data/popi-phase00-via-itkelastix/popi_phase00_ct.nii.gz
cip=$data/cip-copdgene-10002K-ct64/ct-64.nrrd
mkdir -p "$work"

step=${STEP:-all}

if [[ $step == all || $step == data ]]; then
  # The full-size backgrounds are resampled to 256 x 256 in-plane and 4 mm slices (the CIP CT's slice
  # spacing; the DeCoVNet paper's CTs had 5 mm sections) before lesions are inserted: the demo models
  # see 112 x 168 in-plane anyway, and it makes training ~8x cheaper on a CPU. CIP is used as it is.
  mkdir -p "$work/backgrounds"
  python - "$work/backgrounds" "$popi" "$normal" <<'PY'
import sys
from pathlib import Path
import SimpleITK as sitk
from covidct.io import load_ct, save_image
out = Path(sys.argv[1])
for path in sys.argv[2:]:
    target = out / (Path(path).name.split(".")[0] + "_256x4mm.nii.gz")
    if target.exists():
        continue
    ct = load_ct(path)
    extent = [n * s for n, s in zip(ct.GetSize(), ct.GetSpacing())]
    size = [256, 256, int(round(extent[2] / 4.0))]
    spacing = [e / n for e, n in zip(extent, size)]
    origin = ct.TransformContinuousIndexToPhysicalPoint([(s / ct.GetSpacing()[i] - 1) / 2 for i, s in enumerate(spacing)])
    small = sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, origin, spacing, ct.GetDirection(), -1024, ct.GetPixelID())
    save_image(small, target)
PY
  # training set: lesions in POPI and CIP; held-out test set: lesions in normal001 (other seed)
  [[ -f $work/synth-train/manifest.csv ]] || covidct synth "$work/backgrounds/popi_phase00_ct_256x4mm.nii.gz" "$cip" \
      --out "$work/synth-train" --positives 48 --negatives 48 --seed 1 --lungs-method threshold --quiet \
      --lesions 3-8 --size-mm 20-60
  [[ -f $work/synth-test/manifest.csv ]] || covidct synth "$work/backgrounds/normal001_256x4mm.nii.gz" \
      --out "$work/synth-test" --positives 20 --negatives 20 --seed 2 --lungs-method threshold --quiet \
      --lesions 3-8 --size-mm 20-60
fi

if [[ $step == all || $step == decovnet ]]; then
  covidct train --model decovnet --manifest "$work/synth-train/manifest.csv" --out "$work/decovnet" \
      --input-size 112x168 --epochs "${DECOVNET_EPOCHS:-6}" --lr 3e-5 --no-augment --seed 0 --device "$device" \
      --lungs-method threshold --name decovnet-demo $( [[ -d $work/decovnet ]] && echo --resume )
  covidct evaluate --manifest "$work/synth-test/manifest.csv" --weights "$work/decovnet/model" \
      --out "$work/decovnet-eval" --device "$device" --lungs-method threshold
fi

if [[ $step == all || $step == bundle-decovnet ]]; then
  # Copy the trained model into the package as decovnet-demo, with a card that says exactly what it is.
  python - "$work" "$weights" <<'PY'
import json, sys
from pathlib import Path
from covidct.models import load_model, save_model
work, weights = Path(sys.argv[1]), Path(sys.argv[2])
model, card = load_model(work / "decovnet" / "model", device="cpu")
test = json.loads((work / "decovnet-eval" / "report.json").read_text(encoding="utf-8"))
history = json.loads((work / "decovnet" / "history.json").read_text(encoding="utf-8"))
card.name = "decovnet-demo"
card.weights = "decovnet-demo.pt"
card.description = ("DeCoVNet (Zheng et al. 2020, Table 1) demonstration weights, trained on a CPU at half the paper's "
                    "in-plane size (112 x 168 instead of 224 x 336; every slice kept) to show the pipeline working. "
                    "It has only ever seen synthetic lesions.")
card.training_data = ("Synthetic COVID-19-like lesions (ground-glass opacity, consolidation, crazy paving; covidct synth, "
                      "seed 1, 3-8 lesions of 20-60 mm per positive) inserted into the lungs of two real non-COVID chest CTs: "
                      "the POPI 4D-CT phase 00 thorax CT (resampled to 256 x 256 in-plane and 4 mm slices) and the CIP "
                      "COPDGene 10002K CT down-sampled to 64 x 64 x 79; 48 volumes with lesions and 48 without, positives and negatives sharing backgrounds; lung masks "
                      "from covidct's threshold method; 15 % held out for validation. Never trained on real COVID-19 "
                      "(COVID-CT-MD P001/P002) nor on normal001, which is the background of the synthetic test set.")
card.training_sources = ["POPI-model 4D-CT phase 00 (via ITKElastix history; free for research, cite the POPI model)",
                         "CIP COPDGene 10002K ct-64 (Chest Imaging Platform, CIP licence, research use only)"]
card.licence = ("Apache-2.0 for the weights; the training CTs' own terms apply to their use (POPI: cite; CIP: research "
                "purposes only, CIP licence).")
card.threshold = 0.5
card.metrics = {
    "synthetic_test_roc_auc": round(test["roc_auc"], 4),
    "synthetic_test_pr_auc": round(test["pr_auc"]["average_precision"], 4),
    "synthetic_test_set": "20 + 20 volumes with/without synthetic lesions in normal001 (resampled to 256 x 256 x 4 mm), seed 2, 3-8 lesions of 20-60 mm",
    "best_validation_roc_auc": round(max(h["val_auc"] for h in history), 4),
    "epochs": len(history),
}
save_model(model, card, weights, card_file="decovnet-demo.json")
print(json.dumps({k: v for k, v in card.__dict__.items() if k != "path"}, indent=1, default=str))
PY
fi
