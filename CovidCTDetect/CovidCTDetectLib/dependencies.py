"""The Python packages ``covidct`` needs inside Slicer, installed only after the user agrees.

Slicer's Python has numpy and SimpleITK but not the rest of ``covidct``'s dependencies. PyTorch is
installed through the PyTorch extension (``PyTorchUtils``, a dependency of this extension), which
picks the build that fits the computer's GPU; the others with ``slicer.util.pip_install``. A package
counts as missing when it cannot be imported or its installed version is older than the requirement
(then it is upgraded, and Slicer may need a restart to use the new version).

Every failure is said in one dialog: the PyTorch extension missing (checked before the user is asked to
install anything), or an install that failed (offline, proxy, full disk), with pip's output in the
dialog's details.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import traceback

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
    "PIL": "pillow>=9.1",
    "tqdm": "tqdm>=4.60",
    "h5py": "h5py>=3.8",
}
#: the sentence shown when PyTorch is missing and the PyTorch extension is not installed
NO_PYTORCH_EXTENSION = (
    "CovidCTDetect needs PyTorch, which is installed through the PyTorch extension: install 'PyTorch' from the "
    "Extensions Manager, restart Slicer, and try again."
)


def missing_requirements() -> list[str]:
    """pip requirements of :data:`REQUIREMENTS` whose package cannot be imported here, or whose installed
    version does not satisfy the requirement."""
    return [requirement for name, requirement in REQUIREMENTS.items() if not _satisfied(name, requirement)]


def _satisfied(name: str, requirement: str) -> bool:
    if importlib.util.find_spec(name) is None:
        return False
    try:
        from packaging.requirements import Requirement
    except ImportError:  # no packaging: importable is all that can be checked
        return True
    parsed = Requirement(requirement)
    try:
        installed = importlib.metadata.version(parsed.name)
    except importlib.metadata.PackageNotFoundError:  # importable but not installed by pip (e.g. Slicer's own)
        return True
    return parsed.specifier.contains(installed.split("+")[0], prereleases=True)


def ensure_requirements() -> bool:
    """Install the missing requirements after asking the user; True when none is missing afterwards.

    Returns False, having said why in a dialog, when the PyTorch extension is missing, the user declines
    or an install fails. Must run in the Slicer application (it shows dialogs).
    """
    missing = missing_requirements()
    if not missing:
        return True
    import slicer

    if slicer.app.testingEnabled():  # ctest / --testing: a confirm dialog says yes by itself; never download there
        slicer.util.errorDisplay(f"Missing Python packages (not installed in testing mode): {', '.join(missing)}.")
        return False
    torch = REQUIREMENTS["torch"]
    if torch in missing and importlib.util.find_spec("PyTorchUtils") is None:
        slicer.util.errorDisplay(NO_PYTORCH_EXTENSION, windowTitle="PyTorch extension needed")
        return False
    if not slicer.util.confirmOkCancelDisplay(
        "CovidCTDetect needs these Python packages, which are not installed yet (or are too old):\n\n"
        + "\n".join(missing)
        + "\n\nInstall them now? This needs a network connection and may take several minutes.",
        windowTitle="Install Python packages",
    ):
        return False
    try:
        with slicer.util.WaitCursor():
            if torch in missing:
                import PyTorchUtils  # from the PyTorch extension

                PyTorchUtils.PyTorchUtilsLogic().installTorch(
                    askConfirmation=False, torchVersionRequirement=torch.removeprefix("torch")
                )
            others = [requirement for requirement in missing if requirement != torch]
            if others:
                slicer.util.pip_install(others)
    except Exception as error:  # offline, proxy, disk full: pip's own exception types vary
        slicer.util.errorDisplay(
            f"Installing the Python packages failed ({type(error).__name__}); check the network connection and "
            "the free disk space, then try again.",
            windowTitle="Install Python packages",
            detailedText=traceback.format_exc(),
        )
        return False
    importlib.invalidate_caches()
    still = missing_requirements()
    if still:
        slicer.util.errorDisplay(
            f"These packages are still missing or too old: {', '.join(still)}. Restart Slicer and try again.",
            windowTitle="Install Python packages",
        )
    return not still


def skip_test_without_requirements(test_case) -> None:
    """In Slicer's testing mode (ctest on a build machine whose Slicer has no PyTorch), skip ``test_case``
    (a ``unittest.TestCase``, from its ``setUp``) with the missing packages named, instead of failing or
    installing them."""
    import slicer

    missing = missing_requirements()
    if missing and slicer.app.testingEnabled():
        test_case.skipTest(f"missing Python packages: {', '.join(missing)}")
