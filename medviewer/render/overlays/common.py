"""VTK actors the overlays share: lines in the slice plane, text in the view."""

from __future__ import annotations

from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTextActor
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text)


def line_actor(renderer, data: vtkPolyData, color, z: float, width: float) -> vtkActor:
    """Lines of ``data`` (plane mm) in ``color``, unlit, at height ``z`` over the slice."""
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(data)
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*color)
    actor.GetProperty().SetLineWidth(width)
    actor.GetProperty().LightingOff()
    actor.SetPosition(0, 0, z)
    actor.PickableOff()
    renderer.AddActor(actor)
    return actor


def text_actor(renderer, pos, justification, size: int, color) -> vtkTextActor:
    """Text at ``pos`` (normalized viewport), ``justification`` (horizontal, vertical: 0 left/
    bottom, 1 centre, 2 right/top), with a shadow so it reads on any image."""
    t = vtkTextActor()
    t.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    t.SetPosition(*pos)
    prop = t.GetTextProperty()
    prop.SetFontSize(size)
    prop.SetColor(*color)
    prop.SetJustification(justification[0])
    prop.SetVerticalJustification(justification[1])
    prop.ShadowOn()
    renderer.AddViewProp(t)
    return t
