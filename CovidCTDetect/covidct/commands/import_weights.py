"""Import the papers' own released weights (files you downloaded) as catalogue models.

  covidct import decovnet --classifier ncov-Epoch_00140-auc95p9.pth --lungs unet-Epoch_00110-valid98.pth
  covidct import covid19net --classifier myDenseNetv2_COVID-19.h5
  covidct import covid19net --classifier myDenseNetv2_EGFR_pretrain.h5 --pretraining --name covid19net-egfr

DeCoVNet (Zheng et al. 2020; CC BY-NC-SA 4.0, non-commercial) becomes two models, NAME (default
decovnet-zheng2020) and NAME-lungs, run with the authors' preprocessing: 'covidct detect CT --model
NAME'. COVID-19Net (Wang et al. 2020; the repository states no licence) becomes NAME (default
covid19net-wang2020), threshold 0.8 as in the authors' test script. The models go into
$COVIDCT_MODELS_DIR (default ~/.covidct/models). A file that is not the expected one is refused with
the first key or shape that does not match. Nothing is downloaded.
"""

from __future__ import annotations

COMMAND = "import"


def add_arguments(parser) -> None:
    parser.add_argument("paper", choices=("decovnet", "covid19net"), help="whose weights: decovnet or covid19net")
    parser.add_argument("--classifier", required=True, metavar="FILE", help="the classifier's weights file")
    parser.add_argument("--lungs", metavar="FILE", help="DeCoVNet: the lung UNet's weights file (required)")
    parser.add_argument("--name", help="catalogue name (default decovnet-zheng2020 / covid19net-wang2020)")
    parser.add_argument(
        "--pretraining", action="store_true", help="COVID-19Net: the file is the EGFR pre-training model"
    )
    parser.add_argument("--force", action="store_true", help="replace an installed model of that name")


def run(args) -> int:
    from ..errors import UsageError
    from ..models.published import COVID19NET_LICENCE, DECOVNET_LICENCE, import_covid19net, import_decovnet

    if args.paper == "decovnet":
        if not args.lungs:
            raise UsageError("DeCoVNet needs both files: give the lung UNet's weights with --lungs FILE.")
        if args.pretraining:
            raise UsageError("--pretraining applies to COVID-19Net only.")
        folders = import_decovnet(args.classifier, args.lungs, name=args.name or "decovnet-zheng2020", force=args.force)
        licence = DECOVNET_LICENCE
    else:
        if args.lungs:
            raise UsageError("COVID-19Net's import takes no --lungs (this package's lung mask stands in for theirs).")
        folders = (
            import_covid19net(
                args.classifier, name=args.name or "covid19net-wang2020", force=args.force, pretraining=args.pretraining
            ),
        )
        licence = COVID19NET_LICENCE
    for folder in folders:
        print(f"installed {folder.name} in {folder.parent}")
    print(f"licence: {licence}")
    return 0
