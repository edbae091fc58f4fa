"""Options shared by several sub-commands, so that every command spells them the same way."""

from __future__ import annotations

import argparse

from ..device import DEVICE_CHOICES
from ..lungs import METHODS
from ..progress import Progress, make_progress


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda|cuda:N|mps`` (default auto)."""
    parser.add_argument(
        "--device", default="auto", help=f"compute device: {', '.join(DEVICE_CHOICES)} or cuda:N (default: auto)"
    )


def add_lungs_method_option(parser: argparse.ArgumentParser, default: str = "card") -> None:
    """``--lungs-method METHOD``: unet, threshold or the catalogue name of an installed lung model (the
    imported published one, say). ``default`` says what None means: ``"card"`` (the method the
    model's training masks came from, as its card says) or ``"installed"`` (unet when its weights are
    installed, else threshold). ``--method`` is kept as a hidden alias (its old name in ``segment``)."""
    meaning = {
        "card": "the one the model's training masks came from, as its card says",
        "installed": "unet when its weights are installed, else threshold",
    }[default]
    parser.add_argument(
        "--lungs-method",
        metavar="METHOD",
        default=None,
        help=f"lung segmentation: {', '.join(METHODS)}, or an installed lung model's name (default: {meaning})",
    )
    parser.add_argument("--method", dest="lungs_method", help=argparse.SUPPRESS)


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """``--progress-json`` (machine-readable progress on stdout) and ``--quiet``."""
    parser.add_argument(
        "--progress-json",
        action="store_true",
        help="report progress as JSON lines on stdout (used by the Slicer modules)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def progress_from_args(args: argparse.Namespace) -> Progress:
    """The progress reporter the user asked for with :func:`add_progress_options`."""
    return make_progress(json_lines=getattr(args, "progress_json", False), quiet=getattr(args, "quiet", False))
