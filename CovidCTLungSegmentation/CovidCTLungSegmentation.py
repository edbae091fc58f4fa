"""CovidCTLungSegmentation: segment the lungs of a chest CT into "Right lung" and "Left lung".

The work runs in a background ``covidct segment`` process (Slicer stays responsive, Cancel ends it);
the logic lives in :mod:`CovidCTDetectLib.lung_segmentation_logic` so that it is testable without Qt.
"""

import logging
import time

import numpy as np
import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from covidct.errors import CovidCTError
from CovidCTDetectLib import about, dependencies, testdata
from CovidCTDetectLib.lung_segmentation_logic import DEVICES, METHODS, LungSegmentationLogic, reset_3d_views
from CovidCTDetectLib.segmentations import LUNG_SEGMENTS, labelmap_array_from_segmentation


class CovidCTLungSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CovidCT Lung Segmentation"
        self.parent.categories = [about.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = list(about.CONTRIBUTORS)
        self.parent.helpText = about.help_text(
            "Segments the lungs of a chest CT into the segments <i>Right lung</i> and <i>Left lung</i> (standard "
            "terminology codes), shown in the slice views and in 3D. Method <i>unet</i>: the 2D UNet of Zheng et al. "
            "with bundled weights; <i>threshold</i>: the unsupervised method that made the UNet's training labels. "
            "The computation runs in a background process and can be cancelled."
        )
        self.parent.acknowledgementText = about.ACKNOWLEDGEMENT


class CovidCTLungSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Panel: input CT, method, device, Apply/Cancel, progress. Polls the background job with a QTimer."""

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.job = None
        self._parameterNode = None
        self._updatingGUIFromParameterNode = False

    def onReload(self):
        about.forget_libraries()
        super().onReload()

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CovidCTLungSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CovidCTLungSegmentationLogic()

        self.ui.methodComboBox.addItems(list(METHODS))
        self.ui.deviceComboBox.addItems(list(DEVICES))
        self.ui.progressBar.hide()
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(200)
        self.pollTimer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        self.ui.methodComboBox.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.initializeParameterNode()

    def cleanup(self):
        self.cancelJob()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event):
        self.cancelJob()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # -- parameter node --------------------------------------------------------------------------
    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.GetNodeReference("InputVolume"):
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.SetNodeReferenceID("InputVolume", firstVolumeNode.GetID())

    def setParameterNode(self, inputParameterNode):
        if inputParameterNode:
            self.logic.setDefaultParameters(inputParameterNode)
        if self._parameterNode is not None:
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode is not None:
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        self._updatingGUIFromParameterNode = True
        self.ui.inputVolumeSelector.setCurrentNode(self._parameterNode.GetNodeReference("InputVolume"))
        self.ui.methodComboBox.setCurrentIndex(
            self.ui.methodComboBox.findText(self._parameterNode.GetParameter("Method"))
        )
        self.ui.deviceComboBox.setCurrentIndex(
            self.ui.deviceComboBox.findText(self._parameterNode.GetParameter("Device"))
        )
        self._updatingGUIFromParameterNode = False
        self.updateButtons()

    def updateParameterNodeFromGUI(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUIFromParameterNode:
            return
        wasModified = self._parameterNode.StartModify()
        self._parameterNode.SetNodeReferenceID("InputVolume", self.ui.inputVolumeSelector.currentNodeID)
        self._parameterNode.SetParameter("Method", self.ui.methodComboBox.currentText)
        self._parameterNode.SetParameter("Device", self.ui.deviceComboBox.currentText)
        self._parameterNode.EndModify(wasModified)

    # -- running ---------------------------------------------------------------------------------
    def updateButtons(self):
        running = self.job is not None
        hasInput = self.ui.inputVolumeSelector.currentNode() is not None
        self.ui.applyButton.enabled = hasInput and not running
        self.ui.applyButton.toolTip = (
            "Segment the lungs of the input CT in the background." if hasInput else "Select an input CT volume."
        )
        self.ui.cancelButton.enabled = running
        self.ui.inputsCollapsibleButton.enabled = not running
        self.ui.progressBar.visible = running

    def onApplyButton(self):
        volumeNode = self.ui.inputVolumeSelector.currentNode()
        if not dependencies.ensure_requirements():
            self.ui.statusLabel.text = "The required Python packages are not installed."
            return
        try:
            self.job = self.logic.startSegmentation(
                volumeNode, self.ui.methodComboBox.currentText, self.ui.deviceComboBox.currentText
            )
        except CovidCTError as error:
            self.showError(error)
            return
        self.ui.statusLabel.text = f"Segmenting the lungs of '{volumeNode.GetName()}'..."
        self.ui.progressBar.value = 0
        self.updateButtons()
        self.pollTimer.start()

    def onPoll(self):
        job = self.job
        if job is None:
            return
        job.poll()
        self.ui.progressBar.value = int(100 * job.fraction)
        self.ui.progressBar.format = f"{job.stage}: %p%"
        if not job.done:
            return
        self.pollTimer.stop()
        self.job = None
        try:
            segmentationNode = job.finish()
            reset_3d_views()
            self.ui.statusLabel.text = f"Created segmentation '{segmentationNode.GetName()}'."
        except CovidCTError as error:
            self.ui.statusLabel.text = str(error)
            self.showError(error)
        finally:
            self.updateButtons()

    def onCancelButton(self):
        self.cancelJob()
        self.ui.statusLabel.text = "Cancelled."

    def cancelJob(self):
        if self.job is None:
            return
        self.pollTimer.stop()
        self.job.cancel()
        self.job = None
        self.updateButtons()

    def showError(self, error):
        logging.error(str(error))
        slicer.util.errorDisplay(str(error), windowTitle="Lung segmentation")


class CovidCTLungSegmentationLogic(ScriptedLoadableModuleLogic, LungSegmentationLogic):
    """``segmentLungs(volumeNode, method, device)`` (blocking, for ``Slicer --python-script``) and
    ``startSegmentation(...)`` (background job) come from :class:`LungSegmentationLogic`."""

    def setDefaultParameters(self, parameterNode):
        if not parameterNode.GetParameter("Method"):
            parameterNode.SetParameter("Method", METHODS[0])
        if not parameterNode.GetParameter("Device"):
            parameterNode.SetParameter("Device", "auto")


class CovidCTLungSegmentationTest(ScriptedLoadableModuleTest):
    """Full flow on the small real CIP CT with both methods (bundled UNet, threshold) on the CPU (seconds)."""

    def setUp(self):
        dependencies.skip_test_without_requirements(self)
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (
            self.test_logic_segments_the_real_ct_unet,
            self.test_logic_segments_the_real_ct_threshold,
            self.test_widget_runs_in_background_and_cancels,
        ):
            self.setUp()
            test()

    def loadCT(self):
        return slicer.util.loadVolume(str(testdata.ct_path()))

    def test_logic_segments_the_real_ct_unet(self):
        self._segment_and_check("unet")

    def test_logic_segments_the_real_ct_threshold(self):
        self._segment_and_check("threshold")

    def _segment_and_check(self, method):
        """unittest discovery (ctest) calls every ``test*`` method without arguments: the method is chosen
        by the two wrappers above."""
        self.delayDisplay(f"Segmenting the lungs of the CIP CT ({method} method)")
        volumeNode = self.loadCT()
        segmentationNode = CovidCTLungSegmentationLogic().segmentLungs(volumeNode, method, "cpu")
        self.assertEqual(segmentationNode.GetName(), f"{volumeNode.GetName()} lungs")
        segmentation = segmentationNode.GetSegmentation()
        self.assertEqual(
            [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())],
            [spec.name for spec in LUNG_SEGMENTS],
        )
        self.assertTrue(segmentationNode.GetClosedSurfaceInternalRepresentation(LUNG_SEGMENTS[0].segment_id))
        labels = labelmap_array_from_segmentation(segmentationNode, volumeNode)
        ijkToRAS = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRAS)
        ijkToRAS = slicer.util.arrayFromVTKMatrix(ijkToRAS)
        centroidR = {}
        for spec in LUNG_SEGMENTS:
            k, j, i = np.nonzero(labels == spec.label)
            self.assertGreater(len(i), 1000, f"{spec.name} is (nearly) empty")
            centroidR[spec.name] = (ijkToRAS @ [i.mean(), j.mean(), k.mean(), 1.0])[0]
        # RAS: x grows towards the patient's right
        self.assertGreater(
            centroidR["Right lung"], centroidR["Left lung"], "the right lung is not on the patient's right"
        )
        maskPath = testdata.lung_mask_path()
        if maskPath:
            mask = slicer.util.arrayFromVolume(slicer.util.loadVolume(str(maskPath))) > 0
            dice = 2 * np.sum(mask & (labels > 0)) / (mask.sum() + (labels > 0).sum())
            self.delayDisplay(f"Dice against the CIP whole-lung mask ({method}): {dice:.3f}")
            self.assertGreater(dice, 0.95)
        self.delayDisplay("Logic test passed")

    def test_widget_runs_in_background_and_cancels(self):
        self.delayDisplay("Running the module panel: Apply, then Apply and Cancel")
        volumeNode = self.loadCT()
        widget = slicer.util.getModuleWidget("CovidCTLungSegmentation")
        widget.ui.inputVolumeSelector.setCurrentNode(volumeNode)
        widget.ui.methodComboBox.setCurrentIndex(widget.ui.methodComboBox.findText("threshold"))
        widget.ui.deviceComboBox.setCurrentIndex(widget.ui.deviceComboBox.findText("cpu"))
        widget.ui.applyButton.click()
        self.assertIsNotNone(widget.job)
        self.assertTrue(widget.ui.cancelButton.enabled)
        self.assertFalse(widget.ui.applyButton.enabled)
        deadline = time.time() + 120
        while widget.job is not None and time.time() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertIsNone(widget.job, "segmentation did not finish within 2 minutes")
        self.assertIsNotNone(slicer.mrmlScene.GetFirstNodeByName(f"{volumeNode.GetName()} lungs"))

        segmentationsBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
        widget.ui.applyButton.click()
        widget.ui.cancelButton.click()
        self.assertIsNone(widget.job)
        self.assertTrue(widget.ui.applyButton.enabled)
        self.assertEqual(widget.ui.statusLabel.text, "Cancelled.")
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), segmentationsBefore)
        self.delayDisplay("Widget test passed")
