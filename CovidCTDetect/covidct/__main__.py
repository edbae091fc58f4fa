"""``python -m covidct ...``: the same command line as the ``covidct`` console script (used by the Slicer modules)."""

import sys

from .cli import main

sys.exit(main())
