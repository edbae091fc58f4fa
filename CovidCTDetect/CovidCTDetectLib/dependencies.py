"""The Python packages ``covidct`` needs inside Slicer, installed only after the user agrees.

Slicer's Python has numpy and SimpleITK but not the rest of ``covidct``'s dependencies. PyTorch is
installed through the PyTorch extension (``PyTorchUtils``, a dependency of this extension), which
picks the build that fits the computer's GPU; the others with ``slicer.util.pip_install``. Only
packages that cannot be imported are installed (versions of present packages are not checked).
"""

from __future__ import annotations

import importlib.util

#: import name -> pip requirement: the ``dependencies`` of pyproject.toml (a test keeps them equal).
REQUIREMENTS = {
    "torch": "torch>=2.1",
    "SimpleITK": "SimpleITK>=2.3",
    "numpy": "numpy>=1.24",
    "scipy": "scipy>=1.10",
    "sklearn": "scikit-learn>=1.3",
    "lifelines": "lifelines>=0.27",
    "pandas": "pandas>=2.0",
    "matplotlib": "matplotlib>=3.7",
    "tqdm": "tqdm>=4.60",
}


def missing_requirements() -> list[str]:
    """pip requirements of :data:`REQUIREMENTS` whose package cannot be imported here."""
    return [requirement for name, requirement in REQUIREMENTS.items() if importlib.util.find_spec(name) is None]


def ensure_requirements() -> bool:
    """Install the missing requirements after asking the user; True when none is missing afterwards.

    Returns False when the user declines. Must run in the Slicer application (it shows dialogs).
    """
    missing = missing_requirements()
    if not missing:
        return True
    import slicer

    if not slicer.util.confirmOkCancelDisplay(
        "CovidCTDetect needs these Python packages, which are not installed yet:\n\n"
        + "\n".join(missing)
        + "\n\nInstall them now? This needs a network connection and may take several minutes.",
        windowTitle="Install Python packages",
    ):
        return False
    torch = REQUIREMENTS["torch"]
    if torch in missing:
        import PyTorchUtils  # from the PyTorch extension

        PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=False, torchVersionRequirement=torch.removeprefix("torch")
        )
    others = [requirement for requirement in missing if requirement != torch]
    if others:
        slicer.util.pip_install(others)
    importlib.invalidate_caches()
    return not missing_requirements()
