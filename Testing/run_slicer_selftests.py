"""Run the self-tests of the extension's three modules inside the 3D Slicer application.

    Slicer --no-main-window --python-script Testing/run_slicer_selftests.py

(on a Linux machine without a display, prefix ``QT_QPA_PLATFORM=offscreen`` or run under ``xvfb-run``).

The modules are registered from this checkout (no build or install needed) unless Slicer has
already loaded them (installed extension, or the folders in Application Settings → Modules), in
which case those are tested. Each module's ``<Module>Test`` runs on the small real CIP CT in
``Testing/Data``; the script exits with status 0 when every test passes, 1 otherwise.
"""

import os
import sys
import time
import traceback

import qt
import slicer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CovidCTDetect first: its folder holds the libraries (covidct, CovidCTDetectLib) the others import.
MODULES = ("CovidCTDetect", "CovidCTLungSegmentation", "CovidCTTrain")


def register_modules() -> None:
    factory = slicer.app.moduleManager().factoryManager()
    for name in MODULES:
        folder = os.path.join(REPO, name)
        if folder not in sys.path:
            sys.path.append(folder)
        if not hasattr(slicer.modules, name.lower()):
            factory.registerModule(qt.QFileInfo(os.path.join(folder, f"{name}.py")))
    factory.loadModules(list(MODULES))
    missing = [name for name in MODULES if not hasattr(slicer.modules, name.lower())]
    if missing:
        raise RuntimeError(f"Slicer could not load the module(s) {', '.join(missing)}; see the messages above")


def main() -> int:
    register_modules()
    from CovidCTDetectLib.dependencies import missing_requirements

    missing = missing_requirements()
    if missing:  # installing needs the user's consent in a dialog, which a script run cannot give
        print(f"Missing Python packages: {', '.join(missing)}; open CovidCT Detect once to install them.", flush=True)
        return 1
    failed = []
    for name in MODULES:
        started = time.time()
        try:
            slicer.selfTests[name](msec=0)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"{'FAIL' if name in failed else 'PASS'} {name} ({time.time() - started:.1f} s)", flush=True)
    print(f"{len(MODULES) - len(failed)} of {len(MODULES)} module self-tests passed", flush=True)
    return 1 if failed else 0


try:
    exitStatus = main()
except Exception:
    traceback.print_exc()
    exitStatus = 1
slicer.util.exit(exitStatus)
