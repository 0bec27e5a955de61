"""Label layers over a slice: each layer resliced (nearest neighbour) through the view's plane on
its own grid, drawn as a translucent fill and an opaque outline along the pixels' edges, as Slicer
draws a segment, so that the CT at the segment's edge stays visible."""

from __future__ import annotations

from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkFiltersCore import vtkSurfaceNets2D
from vtkmodules.vtkImagingCore import vtkImageReslice
from vtkmodules.vtkRenderingCore import vtkActor, vtkImageActor, vtkPolyDataMapper

from medviewer.core.document import LabelLayer
from medviewer.render.vtk_util import local_image

# Width of a segment's outline on the slices, in screen pixels.
OUTLINE_WIDTH = 2.0


def label_lookup_table(layer: LabelLayer) -> vtkLookupTable:
    """RGBA for label values 0..max (0 and hidden labels transparent), in the layer's colours."""
    top = max(1, int(layer.volume.array.max()))
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(top + 1)
    lut.SetTableRange(0, top)
    lut.SetTableValue(0, 0, 0, 0, 0)
    for v in range(1, top + 1):
        r, g, b = layer.color_of(v)
        lut.SetTableValue(v, r, g, b, 1.0 if layer.shows(v) else 0.0)
    lut.Build()
    return lut


class LabelOverlays:
    """The label layers of one :class:`~medviewer.render.slice_view.SliceView`."""

    def __init__(self, view) -> None:
        self.view = view
        #: per label layer id: the layer, its reslice, its fill
        self.layers: dict[int, tuple[LabelLayer, vtkImageReslice, vtkImageActor]] = {}
        #: per label layer id: the boundaries between its values on the slice, and their actor
        self.outlines: dict[int, tuple[vtkSurfaceNets2D, vtkActor]] = {}

    def reslices(self) -> list[vtkImageReslice]:
        return [entry[1] for entry in self.layers.values()]

    def update_axes(self) -> None:
        """Put every layer's reslice on the view's current plane (each through its own grid)."""
        for layer, r, _ in self.layers.values():
            self.view._update_axes(r, layer.volume)

    def add(self, layer: LabelLayer) -> None:
        view = self.view
        r = view._make_reslice(linear=False)
        r.SetInputData(local_image(layer.volume))
        actor = vtkImageActor()
        actor.GetMapper().SetInputConnection(r.GetOutputPort())
        actor.GetMapper().BorderOn()
        actor.GetProperty().SetInterpolationTypeToNearest()
        actor.GetProperty().UseLookupTableScalarRangeOn()
        actor.SetPosition(0, 0, 0.1 * (1 + len(self.layers)))
        view.renderer.AddViewProp(actor)
        self.layers[layer.id] = (layer, r, actor)
        # The boundaries between label values on the slice, along the pixels' edges; each line
        # carries the two labels it separates (the segment's first), and is coloured by it.
        outline = vtkSurfaceNets2D()
        outline.SetInputConnection(r.GetOutputPort())
        outline.SetBackgroundLabel(0)
        outline.SmoothingOff()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(outline.GetOutputPort())
        mapper.SetScalarModeToUseCellFieldData()
        mapper.ColorByArrayComponent("BoundaryLabels", 0)
        mapper.SetColorModeToMapScalars()
        mapper.UseLookupTableScalarRangeOn()
        line = vtkActor()
        line.SetMapper(mapper)
        line.GetProperty().SetLineWidth(OUTLINE_WIDTH)
        line.GetProperty().LightingOff()
        line.SetPosition(0, 0, 0.1 * len(self.layers) + 0.05)   # just above its fill
        line.PickableOff()
        view.renderer.AddActor(line)
        self.outlines[layer.id] = (outline, line)
        if view._volume is not None:
            view._configure_reslice(r)
            view._update_axes(r, layer.volume)
        self.apply(layer)

    def remove(self, layer) -> bool:
        """Stop drawing ``layer``; whether it was drawn here."""
        if layer.id not in self.layers:
            return False
        _, _, actor = self.layers.pop(layer.id)
        self.view.renderer.RemoveViewProp(actor)
        self.view.renderer.RemoveActor(self.outlines.pop(layer.id)[1])
        return True

    def changed(self, layer: LabelLayer, changed: set) -> None:
        if "volume" in changed:
            _, r, _ = self.layers[layer.id]
            r.SetInputData(local_image(layer.volume))
        self.apply(layer)

    def apply(self, layer: LabelLayer) -> None:
        """The layer's colours, opacity and visibility onto its fill and outline."""
        _, _, actor = self.layers[layer.id]
        lut = label_lookup_table(layer)
        actor.GetProperty().SetLookupTable(lut)
        actor.GetProperty().SetOpacity(layer.opacity)
        actor.SetVisibility(layer.visible)
        outline, line = self.outlines[layer.id]
        top = lut.GetNumberOfTableValues() - 1
        outline.GenerateLabels(top, 1, top)
        line.GetMapper().SetLookupTable(lut)
        # opaque at the default fill of 0.5; a fill made fainter fades its outline along
        line.GetProperty().SetOpacity(min(1.0, 2.0 * layer.opacity))
        line.SetVisibility(layer.visible and layer.opacity > 0)
