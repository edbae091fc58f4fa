"""Typed errors of the covidct library.

Every error carries exactly one actionable sentence (what is wrong, what to do). The command line
prints that sentence and exits with status 2; the Slicer modules show it in a message box. Code
that catches a lower-level exception (SimpleITK, torch, pandas) re-raises one of these with
``raise ... from exc`` so the cause stays available for debugging without reaching the user.
"""


class CovidCTError(Exception):
    """Base class: a problem the user can fix. ``str(error)`` is the sentence to show; the command line
    exits with :attr:`exit_status`."""

    exit_status = 2


class CTInputError(CovidCTError):
    """The input is not a readable 3D CT in Hounsfield units (bad file, wrong modality, 2D, ...)."""


class UsageError(CovidCTError):
    """An option has a bad value (unknown model name, threshold outside 0..1, missing device, ...)."""


class ModelError(CovidCTError):
    """A model or its weights cannot be used (missing file, sha256 mismatch, wrong architecture)."""


class DatasetError(CovidCTError):
    """A manifest, predictions file or clinical table is malformed (missing column, bad value, ...)."""


class OutputError(CovidCTError):
    """An output could not be written completely (full disk, removed folder, I/O error); nothing was left
    under its final name. The command line exits with status 1: the input was fine, the run failed."""

    exit_status = 1
