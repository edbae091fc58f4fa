"""Run lung segmentation and COVID-19 detection on the bundled sample CT with the bundled weights."""

from __future__ import annotations

from ..errors import UsageError


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="covidct-demo", help="output folder (default: ./covidct-demo)")


def run(args) -> int:
    raise UsageError("'covidct demo' is not available yet: detection lands with issue 5; "
                     "use 'covidct info CT' meanwhile.")
