"""Slicer's own slice and 3D views, rendered headlessly with ``slicer-core`` (no Qt, no Slicer application).

What stands in for Slicer's view widgets: a real MRML scene (``slicer.mrmlScene``) with Slicer's
application and colour logics (the colour logic also loads Slicer's colour *files*, e.g. Inferno,
from :data:`COLOR_SHARE`), the module logics the displays need, and per view Slicer's logic plus its
displayable managers drawing into an offscreen VTK window. Used by the rendered-view tests and by
``Testing/slicer_screenshots.py``; see ``../shared/notes/headless-slicer-rendering.md`` for why each
step is there.

Images are ``(rows, columns, 3)`` uint8 RGB arrays, row 0 at the top of the screen.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

#: a share folder holding ``ColorFiles/`` (Slicer's Inferno colour table, vendored with its licence)
COLOR_SHARE = Path(__file__).resolve().parent / "Data" / "slicer-share"
#: slice view name -> orientation
SLICE_VIEWS = {"Red": "Axial", "Yellow": "Sagittal", "Green": "Coronal"}


class HeadlessSlicer:
    """A scene set as ``slicer.mrmlScene`` with Slicer's logics, three slice views and a 3D view.

    ``size``: pixels of each view (width, height). Call :meth:`close` (or use as a context manager)
    to restore the previous ``slicer.mrmlScene``.
    """

    def __init__(self, size: tuple[int, int] = (512, 512)):
        import slicer
        import vtk

        self.slicer, self.vtk, self.size = slicer, vtk, size
        self.scene = slicer.vtkMRMLScene()
        self.previous = getattr(slicer, "mrmlScene", None)
        slicer.mrmlScene = self.scene
        self.app_logic = slicer.vtkSlicerApplicationLogic()
        self.app_logic.SetMRMLScene(self.scene)
        self.color_logic = slicer.vtkSlicerColorLogic()
        self.color_logic.SetMRMLApplicationLogic(self.app_logic)
        self.app_logic.SetModuleLogic("Colors", self.color_logic)
        self._share_color_files()
        self.color_logic.SetMRMLScene(self.scene)
        for name, cls in (
            ("Volumes", slicer.vtkSlicerVolumesLogic),
            ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
            ("SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic),
        ):
            logic = cls()
            logic.SetMRMLApplicationLogic(self.app_logic)
            logic.SetMRMLScene(self.scene)
            self.app_logic.SetModuleLogic(name, logic)
        self.slice_views = {name: self._slice_view(name, orientation) for name, orientation in SLICE_VIEWS.items()}
        self.view_3d = self._view_3d()

    def __enter__(self) -> HeadlessSlicer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.slicer.mrmlScene = self.previous
        self.scene.Clear(True)

    def _share_color_files(self) -> None:
        """Point the application logic at :data:`COLOR_SHARE`, where Slicer's colour logic looks for its
        colour files (``<home>/<share>/ColorFiles``), before the scene gets its default colour nodes."""
        self.app_logic.SetHomeDirectory(str(COLOR_SHARE.parent))
        self.app_logic.SetShareDirectory(COLOR_SHARE.name)

    # ---- views ----------------------------------------------------------------------------------
    def _window(self):
        window = self.vtk.vtkRenderWindow()
        window.SetOffScreenRendering(True)
        window.SetSize(*self.size)
        window.SetMultiSamples(0)
        return window

    def _slice_view(self, name: str, orientation: str) -> dict:
        slicer, vtk = self.slicer, self.vtk
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLApplicationLogic(self.app_logic)
        logic.SetMRMLScene(self.scene)
        node = logic.AddSliceNode(name)
        node.SetOrientation(orientation)
        node.SetDimensions(self.size[0], self.size[1], 1)
        logic.GetSliceCompositeNode()
        window = self._window()
        renderer = vtk.vtkRenderer()
        window.AddRenderer(renderer)
        image_mapper = vtk.vtkImageMapper()
        image_mapper.SetColorWindow(255)
        image_mapper.SetColorLevel(127.5)
        actor = vtk.vtkActor2D()
        actor.SetMapper(image_mapper)
        renderer.AddViewProp(actor)
        interactor = vtk.vtkRenderWindowInteractor()
        interactor.SetRenderWindow(window)
        group = slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance()
        group.SetMRMLApplicationLogic(self.app_logic)
        for manager in ("vtkMRMLSegmentationsDisplayableManager2D", "vtkMRMLColorLegendDisplayableManager"):
            if not group.IsDisplayableManagerRegistered(manager):
                group.RegisterDisplayableManager(manager)
        managers = group.InstantiateDisplayableManagers(renderer)
        managers.SetMRMLDisplayableNode(node)
        return {
            "logic": logic,
            "node": node,
            "window": window,
            "renderer": renderer,
            "mapper": image_mapper,
            "managers": managers,
        }

    def _view_3d(self) -> dict:
        slicer, vtk = self.slicer, self.vtk
        logic = slicer.vtkMRMLViewLogic()
        logic.SetMRMLApplicationLogic(self.app_logic)
        logic.SetMRMLScene(self.scene)
        node = logic.AddViewNode("1")
        window = self._window()
        renderer = vtk.vtkRenderer()
        window.AddRenderer(renderer)
        interactor = vtk.vtkRenderWindowInteractor()
        interactor.SetRenderWindow(window)
        factory = slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance()
        factory.SetMRMLApplicationLogic(self.app_logic)
        for manager in (
            "vtkMRMLCameraDisplayableManager",
            "vtkMRMLViewDisplayableManager",
            "vtkMRMLModelDisplayableManager",
            "vtkMRMLSegmentationsDisplayableManager3D",
        ):
            if not factory.IsDisplayableManagerRegistered(manager):
                factory.RegisterDisplayableManager(manager)
        managers = factory.InstantiateDisplayableManagers(renderer)
        managers.SetMRMLDisplayableNode(node)
        return {"logic": logic, "node": node, "window": window, "renderer": renderer, "managers": managers}

    # ---- rendering ------------------------------------------------------------------------------
    def fit(self) -> None:
        """Fit every slice view to its background volume and centre it (Slicer's "reset field of view")."""
        for view in self.slice_views.values():
            view["logic"].FitSliceToAll()

    def slice_offset(self, name: str, offset_mm: float) -> None:
        """Move slice view ``name`` to ``offset_mm`` along its normal (RAS millimetres)."""
        self.slice_views[name]["logic"].SetSliceOffset(offset_mm)

    def render_slice(self, name: str) -> np.ndarray:
        """The slice view ``name`` as Slicer draws it: the blended layers plus displayable managers."""
        view = self.slice_views[name]
        view["logic"].UpdatePipeline() if hasattr(view["logic"], "UpdatePipeline") else None
        view["mapper"].SetInputConnection(view["logic"].GetImageDataConnection())
        view["managers"].RequestRender()
        view["window"].Render()
        return self._pixels(view["window"])

    def render_3d(self) -> np.ndarray:
        """The 3D view (closed surfaces of segmentations, models) after Slicer's "reset focal point"
        (``qMRMLThreeDView::resetFocalPoint``, what the module calls after showing results): the camera
        fitted to what is shown, with the box and axis labels hidden meanwhile, then the box and labels
        moved around the data."""
        view = self.view_3d
        node = view["node"]
        box, labels = node.GetBoxVisible(), node.GetAxisLabelsVisible()
        node.SetBoxVisible(0)
        node.SetAxisLabelsVisible(0)
        view["window"].Render()
        view["renderer"].ResetCamera()
        node.SetBoxVisible(box)
        node.SetAxisLabelsVisible(labels)
        node.InvokeEvent(self.slicer.vtkMRMLViewNode.ResetFocalPointRequestedEvent)
        view["renderer"].ResetCameraClippingRange()
        view["window"].Render()
        return self._pixels(view["window"])

    def _pixels(self, window) -> np.ndarray:
        from vtk.util.numpy_support import vtk_to_numpy

        grab = self.vtk.vtkWindowToImageFilter()
        grab.SetInput(window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        width, height, _ = image.GetDimensions()
        pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, 3)
        return np.ascontiguousarray(pixels[::-1])


def save_png(pixels: np.ndarray, path: str | Path) -> Path:
    """Write an RGB array as PNG (VTK's writer, no matplotlib)."""
    import vtk
    from vtk.util.numpy_support import numpy_to_vtk

    height, width, _ = pixels.shape
    image = vtk.vtkImageData()
    image.SetDimensions(width, height, 1)
    image.GetPointData().SetScalars(numpy_to_vtk(np.ascontiguousarray(pixels[::-1]).reshape(-1, 3), deep=True))
    writer = vtk.vtkPNGWriter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return path
