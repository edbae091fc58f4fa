"""CovidCTDetect: COVID-19 detection on chest CT (DeCoVNet, COVID-19Net) with heat maps.

This folder also holds the core library ``covidct`` and the Slicer bridge ``CovidCTDetectLib``
shared by the three modules of the extension. The detection panel is filled by a later version;
the self-test checks the bridge inside the Slicer application.
"""

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from covidct.geometry import ijk_to_ras_matrix
from CovidCTDetectLib import about, testdata
from CovidCTDetectLib.heatmaps import HEAT_COLOR_NODE_IDS, heat_map_volume, show_heat_map
from CovidCTDetectLib.volumes import image_from_volume, volume_from_image


class CovidCTDetect(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CovidCT Detect"
        self.parent.categories = [about.CATEGORY]
        self.parent.dependencies = []
        self.parent.contributors = list(about.CONTRIBUTORS)
        self.parent.helpText = about.help_text(
            "COVID-19 detection on chest CT: probability of COVID-19 from DeCoVNet or COVID-19Net, heat maps of "
            "suspicious lung areas over the CT, batch runs and Cox-model prognosis.")
        self.parent.acknowledgementText = about.ACKNOWLEDGEMENT


class CovidCTDetectWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CovidCTDetect.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CovidCTDetectLogic()

    def cleanup(self):
        self.removeObservers()


class CovidCTDetectLogic(ScriptedLoadableModuleLogic):
    """Detection logic; the detection workflow is added with the detection panel."""


class CovidCTDetectTest(ScriptedLoadableModuleTest):
    """The bridge inside the Slicer application: Slicer's own NRRD reader and SimpleITK must agree."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_slicer_reader_and_simpleitk_agree()
        self.setUp()
        self.test_heat_map_over_the_ct()

    def test_slicer_reader_and_simpleitk_agree(self):
        self.delayDisplay("Volume node <-> SimpleITK on a CT read by Slicer")
        path = testdata.ct_path()
        volumeNode = slicer.util.loadVolume(str(path))
        fromSlicer = image_from_volume(volumeNode)
        fromFile = sitk.ReadImage(str(path))
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(fromSlicer), sitk.GetArrayViewFromImage(fromFile))
        np.testing.assert_allclose(fromSlicer.GetOrigin(), fromFile.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(fromSlicer.GetSpacing(), fromFile.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(fromSlicer.GetDirection(), fromFile.GetDirection(), atol=1e-6)
        copyNode = volume_from_image(fromFile, name="SimpleITK copy")
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        np.testing.assert_allclose(ijk_to_ras_matrix(fromFile), slicer.util.arrayFromVTKMatrix(matrix), atol=1e-4)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(copyNode), slicer.util.arrayFromVolume(volumeNode))
        self.delayDisplay("Bridge test passed")

    def test_heat_map_over_the_ct(self):
        self.delayDisplay("Heat map volume shown over the CT")
        ctNode = slicer.util.loadVolume(str(testdata.ct_path()))
        ct = image_from_volume(ctNode)
        values = sitk.GetArrayFromImage(ct).astype(np.float32)
        heat = sitk.GetImageFromArray((values - values.min()) / (values.max() - values.min()))
        heat.CopyInformation(ct)
        heatNode = heat_map_volume(heat, name="heat map")
        self.assertEqual(heatNode.GetDisplayNode().GetColorNodeID(), HEAT_COLOR_NODE_IDS[0])
        show_heat_map(ctNode, heatNode, opacity=0.4)
        compositeNodes = slicer.util.getNodesByClass("vtkMRMLSliceCompositeNode")  # none without slice views
        for compositeNode in compositeNodes:
            self.assertEqual(compositeNode.GetBackgroundVolumeID(), ctNode.GetID())
            self.assertEqual(compositeNode.GetForegroundVolumeID(), heatNode.GetID())
            self.assertAlmostEqual(compositeNode.GetForegroundOpacity(), 0.4)
        self.delayDisplay(f"Heat map test passed ({len(compositeNodes)} slice views checked)")
