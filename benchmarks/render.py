"""Rendering speed on this machine's OpenGL (llvmpipe under Xvfb): 2D slice scrolling and 3D.

Run under a display, e.g.:  xvfb-run -a -s "-screen 0 1600x1200x24" python benchmarks/render.py

Figures (median of several runs, each run many frames), each against a named baseline measured
in the same run on the same series:

* 2D scrolling, frames per second in an axial view of a 512 x 512 series:
  - baseline "bare reslice": vtkImageReslice + vtkImageActor in one render window, moving the
    reslice plane one slice per frame (the least a VTK viewer has to do);
  - "medviewer axial view": SliceView alone (reslice, W/L, crosshair, text, scale bar) driven by
    Document cursor events;
  - "medviewer linked views": axial, coronal and sagittal SliceViews (each in its own window)
    following the same cursor: one scroll re-renders all three;
  - "medviewer main window": the Qt window, scrolling the axial view by key presses, renders
    coalesced by the event loop.
* 3D: first-render time and interactive frame time (camera rotating 5 degrees a frame, window's
  desired update rate 15 as during interaction):
  - baseline "vtkSmartVolumeMapper" (VTK's default choice: GPU ray casting, here in software);
  - "medviewer 3D view" (vtkFixedPointVolumeRayCastMapper, multi-threaded CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def data_root() -> str:
    return os.environ.get("MEDVIEWER_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data")


def load(path):
    from medviewer.io import load_volume

    return load_volume(path)


def new_window(size):
    from vtkmodules.vtkRenderingCore import vtkRenderWindow

    w = vtkRenderWindow()
    w.SetSize(*size)
    w.SetMultiSamples(0)  # as the medviewer views set it (VTK's default is 8x)
    return w


def fps_of(step, frames: int) -> float:
    step(0)  # warm up
    t = time.perf_counter()
    for i in range(frames):
        step(i)
    return frames / (time.perf_counter() - t)


def bare_reslice(volume, size, frames):
    from vtkmodules.vtkImagingCore import vtkImageReslice
    from vtkmodules.vtkRenderingCore import vtkImageActor, vtkRenderer
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401

    from medviewer.render.vtk_util import local_image

    w = new_window(size)
    ren = vtkRenderer()
    w.AddRenderer(ren)
    reslice = vtkImageReslice()
    reslice.SetInputData(local_image(volume))
    reslice.SetOutputDimensionality(2)
    reslice.SetInterpolationModeToLinear()
    actor = vtkImageActor()
    actor.GetMapper().SetInputConnection(reslice.GetOutputPort())
    actor.GetProperty().SetColorWindow(400)
    actor.GetProperty().SetColorLevel(40)
    ren.AddViewProp(actor)
    nz = volume.shape[0]
    sz = volume.spacing[2]

    def step(i):
        k = (i % (nz - 1)) + 1 if (i // (nz - 1)) % 2 == 0 else nz - 1 - (i % (nz - 1))
        reslice.SetResliceAxesDirectionCosines(1, 0, 0, 0, 1, 0, 0, 0, 1)
        reslice.SetResliceAxesOrigin(0, 0, k * sz)
        w.Render()
    ren.ResetCamera()
    w.Render()
    result = fps_of(step, frames)
    w.Finalize()
    return result


def ping_pong(view, frames, move=None):
    """Frames per second scrolling ``view`` one slice a frame, back and forth between its ends;
    ``move(direction)`` (+1/-1) does the scroll (default ``view.scroll``)."""
    move = move or view.scroll
    n = view.slice_index()[1]
    state = {"dir": 1}

    def step(_i):
        k, _ = view.slice_index()
        if k >= n:
            state["dir"] = -1
        elif k <= 1:
            state["dir"] = 1
        move(state["dir"])
    return fps_of(step, frames)


def medviewer_views(volume, size, frames, linked: bool):
    from medviewer.core.document import Document, ImageLayer
    from medviewer.render.slice_view import SliceView

    doc = Document()
    names = ("axial", "coronal", "sagittal") if linked else ("axial",)
    windows = [new_window(size) for _ in names]
    views = [SliceView(doc, n, w) for n, w in zip(names, windows)]
    doc.add_layer(ImageLayer(name="ct", volume=volume))
    for w in windows:
        w.Render()
    result = ping_pong(views[0], frames)
    for v in views:
        v.close()
    for w in windows:
        w.Finalize()
    return result


def main_window_scroll(path, frames):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from medviewer.ui.app import application
    from medviewer.ui.main_window import MainWindow

    app = application()
    window = MainWindow(quiet=True)
    window.resize(1200, 900)
    window.show()
    loaded = []
    window.volume_loaded.connect(loaded.append)
    window.open_path(path)
    t0 = time.time()
    while not loaded and time.time() - t0 < 60:
        app.processEvents()
    axial = window.grid.widgets["axial"]
    axial.setFocus()
    for _ in range(5):
        app.processEvents()

    def key(direction):
        QTest.keyClick(axial, Qt.Key_PageUp if direction > 0 else Qt.Key_PageDown)
        app.processEvents()  # the coalesced renders of the three 2D views run here
    result = ping_pong(window.grid.views["axial"], frames, key)
    window.close()
    app.processEvents()
    return result


def smart_mapper_3d(volume, size, frames):
    from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
    from vtkmodules.vtkRenderingCore import (vtkColorTransferFunction, vtkRenderer, vtkVolume,
                                             vtkVolumeProperty)
    from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

    from medviewer.core.presets import DEFAULT_VOLUME_PRESET, VOLUME_PRESETS
    from medviewer.render.vtk_util import local_image

    preset = VOLUME_PRESETS[DEFAULT_VOLUME_PRESET]
    w = new_window(size)
    ren = vtkRenderer()
    w.AddRenderer(ren)
    mapper = vtkSmartVolumeMapper()
    mapper.SetInputData(local_image(volume))
    color, opacity = vtkColorTransferFunction(), vtkPiecewiseFunction()
    for hu, r, g, b in preset["color"]:
        color.AddRGBPoint(hu, r, g, b)
    for hu, a in preset["opacity"]:
        opacity.AddPoint(hu, a)
    prop = vtkVolumeProperty()
    prop.SetColor(color)
    prop.SetScalarOpacity(opacity)
    prop.SetInterpolationTypeToLinear()
    prop.ShadeOn()
    actor = vtkVolume()
    actor.SetMapper(mapper)
    actor.SetProperty(prop)
    ren.AddVolume(actor)
    ren.ResetCamera()
    return _time_3d(w, ren, frames)


def medviewer_3d(volume, size, frames):
    from medviewer.core.document import Document, ImageLayer
    from medviewer.render.volume_view import VolumeView

    doc = Document()
    w = new_window(size)
    view = VolumeView(doc, w)
    doc.add_layer(ImageLayer(name="ct", volume=volume))
    result = _time_3d(w, view.renderer, frames)
    view.close()
    return result


def _time_3d(w, ren, frames):
    t = time.perf_counter()
    w.Render()
    first = time.perf_counter() - t
    w.SetDesiredUpdateRate(15.0)
    cam = ren.GetActiveCamera()
    times = []
    for _ in range(frames):
        cam.Azimuth(5)
        t = time.perf_counter()
        w.Render()
        times.append(time.perf_counter() - t)
    w.SetDesiredUpdateRate(0.0001)
    w.Finalize()
    return first, statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", default=os.path.join(data_root(), "lung-pet-ct-dx", "A0001", "series-2-5mm-L"))
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    parser.add_argument("--frames", type=int, default=60, help="frames per 2D run")
    parser.add_argument("--size", default="600x600", help="2D/3D window size")
    parser.add_argument("--skip-window", action="store_true", help="skip the Qt main-window figure")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    volume = load(args.series)
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL render window)
    from vtkmodules.vtkRenderingCore import vtkRenderWindow
    probe = vtkRenderWindow()
    probe.SetSize(10, 10)
    probe.Render()
    renderer_info = (probe.ReportCapabilities() or "").splitlines()
    gl = next((l.split(":", 1)[1].strip() for l in renderer_info if "OpenGL renderer string" in l), "?")
    probe.Finalize()
    print(f"series {args.series}: {volume.shape[2]} x {volume.shape[1]} x {volume.shape[0]}")
    print(f"OpenGL renderer: {gl}; window {size[0]} x {size[1]}; {args.runs} runs, median; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    def median_of(fn):
        return statistics.median(fn() for _ in range(args.runs))
    rows = [
        ("2D scroll, baseline bare vtkImageReslice+vtkImageActor",
         median_of(lambda: bare_reslice(volume, size, args.frames))),
        ("2D scroll, medviewer axial view",
         median_of(lambda: medviewer_views(volume, size, args.frames, linked=False))),
        ("2D scroll, medviewer linked axial+coronal+sagittal",
         median_of(lambda: medviewer_views(volume, size, args.frames, linked=True))),
    ]
    if not args.skip_window:
        rows.append(("2D scroll, medviewer main window 1200x900 (keys)",
                     median_of(lambda: main_window_scroll(args.series, args.frames))))
    for name, fps in rows:
        print(f"{name:58s} {fps:7.1f} frames/s")
    results = {}
    for name, fn in (("3D baseline vtkSmartVolumeMapper", smart_mapper_3d),
                     ("3D medviewer view (fixed-point CPU ray cast)", medviewer_3d)):
        runs = [fn(volume, size, 10) for _ in range(max(3, args.runs // 2))]
        first = statistics.median(r[0] for r in runs)
        frame = statistics.median(r[1] for r in runs)
        results[name] = (first, frame)
        print(f"{name:58s} first render {first * 1000:7.0f} ms, interactive frame {frame * 1000:6.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
