"""CovidCTTrain: train the lung UNet, DeCoVNet and COVID-19Net on the user's own labelled CTs.

Training runs as a background ``covidct train`` process (:mod:`CovidCTDetectLib.process`). The
training panel is filled by a later version; the self-test checks that Slicer can run ``covidct``
commands in the background (PythonSlicer found, the package importable in the child).
"""

import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from CovidCTDetectLib import about, testdata
from CovidCTDetectLib.process import start_covidct


class CovidCTTrain(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CovidCT Train"
        self.parent.categories = [about.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = list(about.CONTRIBUTORS)
        self.parent.helpText = about.help_text(
            "Training of the lung UNet, DeCoVNet and COVID-19Net on your own labelled chest CTs (one GPU or the CPU), "
            "with progress, cancel and evaluation (ROC/PR curves, threshold table).")
        self.parent.acknowledgementText = about.ACKNOWLEDGEMENT


class CovidCTTrainWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CovidCTTrain.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CovidCTTrainLogic()

    def cleanup(self):
        self.removeObservers()


class CovidCTTrainLogic(ScriptedLoadableModuleLogic):
    """Training logic; the training workflow is added with the training panel."""


class CovidCTTrainTest(ScriptedLoadableModuleTest):
    """Slicer runs a ``covidct`` command in the background and reads its output and exit status."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_background_covidct_command()

    def test_background_covidct_command(self):
        self.delayDisplay("Running 'covidct info' in a background PythonSlicer process")
        output = []
        process = start_covidct(["info", testdata.ct_path()], progress_json=False)
        self.assertEqual(process.wait(output.append), 0, process.stderr_tail)
        lines = [event.get("text", "") for event in output]
        self.assertTrue(any(line.startswith("slices") for line in lines), lines)
        self.delayDisplay("Background command test passed")
