"""Train DeCoVNet, COVID-19Net or the lung UNet on a dataset manifest (paper defaults).

Defaults follow the DeCoVNet paper: Adam, learning rate 1e-5, batch size 1 (COVID-19Net 8), 100 epochs, 15 % of the
cases held out for validation (ROC AUC each epoch; Dice for the UNet), online augmentation. The run
folder gets checkpoints (last.pt every epoch and every --checkpoint-every steps, best.pt), history.json
and the final model in RUN/model (load it with --model RUN/model in 'covidct detect'). A killed run
continues exactly where it stopped with --resume. Several GPUs or machines: start it with
'torchrun --nproc_per_node N -m covidct train ...'.

examples:
  covidct train --model decovnet --manifest synth/manifest.csv --out runs/decovnet
  covidct train --model covid19net --manifest covid.csv --pretrain-manifest egfr.csv --out runs/c19
  covidct train --model unet --manifest lungs.csv --out runs/unet --batch-size 16 --lr 1e-4
"""

from __future__ import annotations

import argparse

from ..lungs import METHODS
from ..progress import Progress
from ._options import add_device_option, add_progress_options, progress_from_args


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, choices=("decovnet", "covid19net", "unet"), help="architecture")
    parser.add_argument("--manifest", required=True, help="dataset CSV: ct,label[,lungs,split,id]")
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder (checkpoints, final model)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    parser.add_argument("--lr", type=float, default=1e-5, help="Adam learning rate (default 1e-5)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="volumes (UNet: slices) per step per process (default 1; COVID-19Net 8; UNet 16)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="fraction of cases held out for validation when the manifest has no split=val rows (default 0.15)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-augment", dest="augment", action="store_false", help="turn the augmentation off")
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 mixed precision (default: on for CUDA, off otherwise)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--init-from", metavar="WEIGHTS", help="start from a checkpoint (.pt) or a model folder/name")
    parser.add_argument(
        "--pretrain-manifest",
        metavar="CSV",
        help="COVID-19Net two-step transfer learning: first train on this auxiliary binary task",
    )
    parser.add_argument("--pretrain-epochs", type=int, help="epochs of the pre-training step (default: --epochs)")
    parser.add_argument(
        "--input-size",
        metavar="HxW",
        help="model input size override, e.g. 112x168 (DeCoVNet in-plane; COVID-19Net HxW or DxHxW)",
    )
    parser.add_argument(
        "--input-crop",
        choices=("lung_box",),
        default=None,
        help="DeCoVNet: crop every slice to the lungs' in-plane box, as the authors' released "
        "scripts did (default: the whole field of view, as the paper's text)",
    )
    parser.add_argument(
        "--input-slice-mm",
        type=float,
        metavar="MM",
        help="DeCoVNet: resize along z to slices of MM mm (default: every slice kept, as the paper)",
    )
    parser.add_argument(
        "--input-antialias",
        action="store_true",
        help="DeCoVNet: average the voxels each input cell covers instead of sampling them (the same "
        "texture on every scanner)",
    )
    parser.add_argument(
        "--input-hu-stats",
        metavar="MEAN,SD",
        help="COVID-19Net: z-score the input with this fixed mean and SD in HU instead of each lung-ROI's own, "
        "whose statistics move with the lung mask and field of view (write --input-hu-stats=-800,350: a "
        "value that starts with '-' needs the '=')",
    )
    parser.add_argument(
        "--arch-option",
        action="append",
        metavar="NAME=VALUE",
        help="architecture constructor argument, repeatable: UNet base=8 levels=4, DeCoVNet "
        "dropout=0.5 running_stats=false (kept in the model card)",
    )
    parser.add_argument(
        "--lungs-method",
        choices=METHODS,
        default=None,
        help="lung segmentation for manifest rows without a lungs mask (default: unet when its "
        "weights are installed, else threshold; threshold pseudo-labels when training the UNet)",
    )
    parser.add_argument("--cache-dir", help="folder for preprocessed inputs (default RUN/cache)")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loading processes (default 0)")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=50,
        metavar="STEPS",
        help="also checkpoint every STEPS steps within an epoch (default 50, 0 = off)",
    )
    parser.add_argument(
        "--lesion-augment",
        type=float,
        default=0.5,
        help="UNet: probability of inserting synthetic pleural lesions into a slice (default 0.5)",
    )
    parser.add_argument(
        "--lesion-weight",
        type=float,
        default=10.0,
        help="UNet: loss weight of the inserted lesions' pixels, relative to the others (default 10)",
    )
    parser.add_argument(
        "--organ-weight",
        type=float,
        default=1.0,
        help="UNet: loss weight of dense background pixels near the lung (organs touching it), relative to the "
        "others (default 1)",
    )
    parser.add_argument(
        "--organ-gas",
        type=float,
        default=0.0,
        help="UNet: probability of painting gas-mottled stomach or bowel contents into organ tissue beside the "
        "lung of a slice, as background (hard negatives; default 0)",
    )
    parser.add_argument(
        "--lesion-mediastinal",
        type=float,
        default=0.0,
        help="UNet: share of the inserted lesions placed on the lung's whole surface, mediastinal side "
        "included, instead of its outer (costal and diaphragmatic) surface (default 0)",
    )
    parser.add_argument(
        "--mask-edge-shift",
        type=float,
        default=0.0,
        metavar="CELLS",
        help="DeCoVNet: move each training volume's lung-mask edge in or out by up to CELLS input cells "
        "(0-1; default 0), so that another lung method's edge is not read as a finding",
    )
    parser.add_argument("--name", help="name of the final model (default MODEL-RUNFOLDER)")
    parser.add_argument(
        "--deterministic", action="store_true", help="deterministic algorithms on GPU too (slower; always on for CPU)"
    )
    add_device_option(parser)
    add_progress_options(parser)


def run(args) -> int:
    from ..progress import JsonLinesProgress
    from ..train import TrainConfig, parse_arch_options, parse_hu_stats, parse_input_size, train

    config = TrainConfig(
        model=args.model,
        manifest=args.manifest,
        out=args.out,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        val_fraction=args.val_fraction,
        seed=args.seed,
        augment=args.augment,
        device=args.device,
        amp=args.amp,
        num_workers=args.num_workers,
        init_from=args.init_from,
        pretrain_manifest=args.pretrain_manifest,
        pretrain_epochs=args.pretrain_epochs,
        input_size=parse_input_size(args.input_size),
        input_crop=args.input_crop,
        input_slice_mm=args.input_slice_mm,
        input_antialias=args.input_antialias,
        input_hu_stats=parse_hu_stats(args.input_hu_stats),
        lungs_method=args.lungs_method,
        cache_dir=args.cache_dir,
        checkpoint_every=args.checkpoint_every,
        lesion_augment=args.lesion_augment,
        lesion_weight=args.lesion_weight,
        organ_weight=args.organ_weight,
        organ_gas=args.organ_gas,
        lesion_mediastinal=args.lesion_mediastinal,
        mask_edge_shift=args.mask_edge_shift,
        name=args.name,
        deterministic=args.deterministic,
        resume=args.resume,
        arch_options=parse_arch_options(args.arch_option),
    )
    with progress_from_args(args) as progress:
        # the bar shows every step; one line per step would flood a terminal, so only JSON keeps them
        reporter = progress if isinstance(progress, JsonLinesProgress) else _WithoutSteps(progress)
        train(config, reporter)
    return 0


class _WithoutSteps(Progress):
    """Passes everything to ``progress`` except the per-step events."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def stage(self, *args, **kwargs):
        self.progress.stage(*args, **kwargs)

    def event(self, event, **fields):
        if event != "step":
            self.progress.event(event, **fields)

    def close(self):
        self.progress.close()
