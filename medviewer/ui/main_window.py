"""The main window: view grid, study browser and layers docks, menus, background loading."""

from __future__ import annotations

import os
import time

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QImage, QKeySequence
from PySide6.QtWidgets import (
    QComboBox, QDockWidget, QFileDialog, QInputDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
    QPushButton, QToolBar,
)

from medviewer.core.document import Document, ImageLayer, LabelLayer
from medviewer.core.errors import MedviewerError
from medviewer.core.label_edit import central_voxel
from medviewer.core.presets import (
    DEFAULT_VOLUME_PRESET, DEFAULT_WINDOW_PRESET, VOLUME_PRESETS, WINDOW_PRESETS,
)
from medviewer.core.volume import Volume
from medviewer.render.vtk_util import save_png
from medviewer.ui.app import keep_triton_out
from medviewer.ui.docks import LayersPanel, StudyBrowser
from medviewer.ui.tasks import Task
from medviewer.ui.views import VIEW_NAMES, ViewGrid

MAX_RECENT = 10
SCREENSHOT_FILTERS = "PNG (*.png);;DICOM key image, in the study (*.dcm)"
#: the toolbar's slab choices: (mode, thickness mm) for SliceView.set_slab, None: the slice alone
SLAB_CHOICES = {"slice": None, "MIP 5 mm": ("max", 5.0), "MIP 10 mm": ("max", 10.0),
                "MIP 20 mm": ("max", 20.0), "MinIP 10 mm": ("min", 10.0), "Mean 5 mm": ("mean", 5.0)}
#: the left (studies, layers, segment editor) and right (plugins, PACS, measurements) docks' first widths
DOCK_WIDTHS = (280, 250)
#: while a series is read, the views redraw the slices come in at most this often (seconds)
PARTIAL_REDRAW_S = 0.3
IMAGE_FILTER = "Images (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd);;All files (*)"


def pick_series(index):
    """The image series to open by default: the one with the most slices."""
    candidates = index.image_series()
    return max(candidates, key=lambda s: s.slice_count) if candidates else None


class MainWindow(QMainWindow):
    """One study at a time in a Document, shown in four linked views."""

    volume_loaded = Signal(object)   # the Volume now shown
    load_failed = Signal(str)

    def __init__(self, settings: QSettings | None = None, document: Document | None = None,
                 quiet: bool = False) -> None:
        """``quiet``: report errors in the status bar only (no message boxes; for automation)."""
        keep_triton_out()  # before any VTK view makes a GL context (see there)
        super().__init__()
        self.quiet = quiet
        self._tab_groups: list[tuple[QDockWidget, QDockWidget]] = []  # tabified when first shown
        self._tab_firsts: set[QDockWidget] = set()   # the docks in front of a tab group made
        self._shown_once = False
        self.setWindowTitle("medviewer")
        self.settings = settings if settings is not None else QSettings("medviewer", "medviewer")
        self.document = document or Document()
        self.task: Task | None = None
        self.loading = None   # the ProgressiveSeries shown while its slices are read, if any
        self.preview = None   # the one-slice Volume shown while a big folder is indexed, if any
        self.errors: list[str] = []
        self.setAcceptDrops(True)

        self.status_label = QLabel("")
        self.readout_label = QLabel("")
        self.grid = ViewGrid(self.document, self, on_hover=self._show_readout)
        # the readout follows the crosshair too (moved by keys, by Go to segment), not only the mouse
        self.document.events.connect("cursor_changed", self._cursor_moved)
        self.setCentralWidget(self.grid)

        self.browser = StudyBrowser()
        self.browser.series_activated.connect(self.load_series)
        dock = QDockWidget("Studies", self)
        dock.setObjectName("studies-dock")
        dock.setWidget(self.browser)
        self.addDockWidget(Qt.LeftDockWidgetArea, dock)
        self.browser_dock = dock

        self.layers = LayersPanel(self.document)
        dock = QDockWidget("Layers", self)
        dock.setObjectName("layers-dock")
        dock.setWidget(self.layers)
        self.addDockWidget(Qt.LeftDockWidgetArea, dock)
        self.layers_dock = dock
        # tabs, not a column of docks: the views get the window's height and most of its width
        self.tabify_docks(self.browser_dock, dock)

        from medviewer.ui.segment_editor import SegmentEditor
        self.segment_editor = SegmentEditor(self)
        self.segment_dock = self.segment_editor.dock
        self.document.events.connect("layer_changed", self._layer_recoloured)
        from medviewer.ui.plugin_panel import add_plugin_dock
        self.plugins, self.plugins_dock = add_plugin_dock(self)
        from medviewer.ui.pacs_dock import add_pacs_dock
        self.pacs, self.pacs_dock = add_pacs_dock(self)

        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(200)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_load)
        sb = self.statusBar()
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.readout_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        self.progress.hide()
        self.cancel_button.hide()

        self._build_menus()
        self.segment_editor.install(self)
        from medviewer.ui.measure_tool import MeasureTool
        self.measure_tool = MeasureTool(self)
        self.measure_tool.install(self)
        from medviewer.ui.measurements_panel import add_measurements_dock
        self.measurements, self.measurements_dock = add_measurements_dock(self)
        self._view_menu.addAction(self.measurements_dock.toggleViewAction())
        self.index = None   # the DicomIndex of the folder open, if any
        from medviewer.ui.annotations_ui import add_annotations_bar
        self.annotations = add_annotations_bar(self)
        from medviewer.ui import help_menu, models_menu
        models_menu.install(self)  # Models: get a Model Zoo bundle (issue 20)
        help_menu.install(self)

    # ---- menus --------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        mb = self.menuBar()
        file = mb.addMenu("&File")
        self._action(file, "Open &folder...", self.choose_folder, QKeySequence.Open)
        self._action(file, "Open image &file...", self.choose_file)
        self.recent_menu = file.addMenu("&Recent studies")
        self._fill_recent()
        file.addSeparator()
        self._action(file, "Load &segmentation...", self.choose_segmentation)
        from medviewer.ui.annotations_ui import choose_export
        self._action(file, "&Export segmentation...", lambda _=False: choose_export(self))
        file.addSeparator()
        shots = file.addMenu("Save &screenshot of")
        for name in VIEW_NAMES:
            self._action(shots, f"the {name if name != '3d' else '3D'} view...",
                         lambda _=False, n=name: self.choose_view_screenshot(n))
        self._action(shots, "the views as laid out...", lambda _=False: self.choose_view_screenshot(None))
        self._action(file, "Save &window screenshot...", self.choose_window_screenshot)
        file.addSeparator()
        self._action(file, "&Quit", self.close, QKeySequence.Quit)

        edit = mb.addMenu("&Edit")
        # Ctrl+Z / Ctrl+Shift+Z: the measurements' changes while the measure tool is on and has one to
        # undo, else the segments' edits (see undo, redo)
        self.undo_action = self._action(edit, "&Undo", self.undo, QKeySequence("Ctrl+Z"))
        self.redo_action = self._action(edit, "&Redo", self.redo, None)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])

        view = mb.addMenu("&View")
        group = QActionGroup(self)
        self.layout_actions = {}
        for mode in ("2x2", "1x1"):
            a = self._action(view, f"Layout {mode}", lambda _=False, m=mode: self.set_layout(m))
            a.setCheckable(True)
            a.setChecked(mode == "2x2")
            group.addAction(a)
            self.layout_actions[mode] = a
        single = view.addMenu("Single view")
        for name in VIEW_NAMES:
            self._action(single, name.capitalize() if name != "3d" else "3D",
                         lambda _=False, n=name: self.set_layout("1x1", n))
        self._action(view, "&Reset views", self.grid.reset_cameras, "Ctrl+R")
        self.overlay_actions = {}
        # identity off: the views carry no name, ID, birth date, sex or study date (screenshots to share)
        for key, text, shortcut in (("crosshair", "&Crosshair", "Ctrl+Shift+X"),
                                    ("annotations", "&Annotations (corner texts, letters, scale)", "Ctrl+Shift+A"),
                                    ("identity", "Patient &identity in the views", "Ctrl+Shift+I")):
            a = self._action(view, text, lambda on, k=key: self.set_overlays(**{k: on}), shortcut)
            a.setCheckable(True)
            a.setChecked(True)
            self.overlay_actions[key] = a
        # all the docks at once, for the views' sake on a small screen (as OHIF folds its side panels)
        self.side_panels_action = self._action(view, "Side &panels", self.set_side_panels, "Ctrl+Shift+P")
        self.side_panels_action.setCheckable(True)
        self.side_panels_action.setChecked(True)
        self._folded_docks: list[tuple[QDockWidget, bool]] = []   # (dock, was in front) while folded
        view.addSeparator()
        view.addAction(self.browser_dock.toggleViewAction())
        view.addAction(self.layers_dock.toggleViewAction())
        view.addAction(self.plugins_dock.toggleViewAction())
        view.addAction(self.pacs_dock.toggleViewAction())
        self._view_menu = view

        wl = mb.addMenu("&Window/level")
        for name in WINDOW_PRESETS:
            self._action(wl, name.capitalize(), lambda _=False, n=name: self.apply_window_preset(n))
        vr = mb.addMenu("&3D")
        # off at first, as in 3D Slicer: on software OpenGL a frame of a CT's volume takes
        # seconds on the GUI thread (see medviewer.render.volume_view); a preset turns it on
        self.volume_rendering_action = self._action(vr, "&Volume rendering", self.set_volume_rendering)
        self.volume_rendering_action.setCheckable(True)
        vr.addSeparator()
        for name in VOLUME_PRESETS:
            self._action(vr, name, lambda _=False, n=name: self.apply_volume_preset(n))

        tb = QToolBar("View")
        tb.setObjectName("view-toolbar")
        self.addToolBar(tb)
        self.view_toolbar = tb
        tb.addAction("2x2", lambda: self.set_layout("2x2"))
        tb.addAction("1x1", lambda: self.set_layout("1x1"))
        tb.addAction("Reset", self.grid.reset_cameras)
        tb.addSeparator()
        tb.addWidget(QLabel(" W/L "))
        self.wl_combo = QComboBox()
        self.wl_combo.addItems(list(WINDOW_PRESETS))
        self.wl_combo.setCurrentText(DEFAULT_WINDOW_PRESET)
        self.wl_combo.textActivated.connect(self.apply_window_preset)
        tb.addWidget(self.wl_combo)
        tb.addWidget(QLabel(" 3D "))
        self.vr_combo = QComboBox()
        self.vr_combo.addItems(list(VOLUME_PRESETS))
        self.vr_combo.setCurrentText(DEFAULT_VOLUME_PRESET)
        self.vr_combo.textActivated.connect(self.apply_volume_preset)
        tb.addWidget(self.vr_combo)
        tb.addWidget(QLabel(" Slab "))
        self.slab_combo = QComboBox()
        self.slab_combo.setToolTip("draw the 2D views' image as the maximum (MIP), minimum or mean of a "
                                   "slab centred on the slice")
        for text, slab in SLAB_CHOICES.items():
            self.slab_combo.addItem(text, slab)
        self.slab_combo.currentIndexChanged.connect(lambda _i: self.set_slab(*(self.slab_combo.currentData() or (None,))))
        tb.addWidget(self.slab_combo)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(shortcut)
        a.triggered.connect(slot)
        menu.addAction(a)
        return a

    # ---- recent studies ---------------------------------------------------------------------
    def recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: str) -> None:
        items = [p for p in self.recent() if p != path]
        self.settings.setValue("recent", [path] + items[:MAX_RECENT - 1])
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent():
            self._action(self.recent_menu, path, lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent()))

    # ---- opening ----------------------------------------------------------------------------
    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of DICOM files")
        if path:
            self.open_path(path)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image or DICOM file", "",
                                              IMAGE_FILTER.replace("Images (", "Images (*.dcm "))
        if path:
            self.open_path(path)

    def open_path(self, path: str, series: str | None = None) -> None:
        """Open a DICOM folder/file or an image file; indexing and loading run in the background."""
        from medviewer.io import image_suffix, load_volume

        path = os.path.abspath(os.fspath(path))
        if not os.path.exists(path):
            self._fail(f"{path}: no such file or folder")
            return
        if not self.confirm_discard("opening another study"):
            return
        self._remember(path)
        self.index = None
        if image_suffix(path) is not None:
            self._start(Task(lambda progress, cancelled: load_volume(path), "image"),
                        f"Loading {os.path.basename(path)}", self._show_volume)
            return

        from medviewer.ui.series_loading import IndexWithPreview

        indexer = IndexWithPreview(path)

        def indexed(idx):
            self.index = idx
            self.browser.set_index(idx)
            if series is not None:
                from medviewer.io import _pick
                chosen = _pick(idx.image_series(), series, path)
            elif len(idx.image_series()) > 1 and not self.quiet:
                chosen = self.choose_series(idx.image_series(), path)
                if chosen is None:
                    self._drop_preview()
                    self.status_label.setText(f"{path}: no series opened (double-click one in Studies)")
                    return
            else:   # one series; or automation, which opens the largest
                chosen = pick_series(idx)
            if chosen is None:
                from medviewer.io import nothing_found_message
                self._drop_preview()
                self._fail(f"{path}: {nothing_found_message(idx)}")
                return
            self.load_series(chosen, idx.study_of(chosen), ask=False)
        task = Task(indexer.read, "index")
        task.progress.connect(lambda _f: self._show_preview(task, indexer))
        task.failed.connect(lambda _m: self._drop_preview())
        task.was_cancelled.connect(self._drop_preview)
        self._start(task, f"Indexing {path}", indexed)

    def _show_preview(self, task: Task, indexer) -> None:
        """While a big folder is indexed, its middle file's slice (see series_loading.IndexWithPreview)."""
        volume = indexer.preview
        if volume is None or self.task is not task or self.preview is volume:
            return
        if self.document.image is not None:
            # A study is open: it stays until the new series shows (a cancelled series question
            # or a failed index must leave it as it was).
            return
        self.preview = volume
        self.set_volume(volume, complete=False)
        self.status_label.setText(f"Indexing {os.path.basename(indexer.path)} (showing one slice)...")

    def _drop_preview(self) -> None:
        """The preview is taken back when no series of its folder opens."""
        image = self.document.image
        if self.preview is not None and image is not None and image.volume is self.preview:
            self.document.clear()
            self.setWindowTitle("medviewer")
        self.preview = None

    def choose_series(self, candidates, path: str):
        """Ask which of several image series to open (as ``medviewer open`` asks for --series);
        the largest is offered first. None: the user cancelled."""
        from medviewer.io import _where, describe_series

        ordered = sorted(candidates, key=lambda s: -s.slice_count)
        items = [describe_series(s) + _where(s, path) for s in ordered]
        item, ok = QInputDialog.getItem(self, "Open which series?",
                                        f"{os.path.basename(path)} holds {len(items)} image series:", items, 0, False)
        return ordered[items.index(item)] if ok and item in items else None

    def load_series(self, entry, study=None, ask: bool = True) -> Task | None:
        """Read a series in the background (progress bar, cancel), progressively: the middle
        slice (where the views open) shows as soon as it is read, the other slices appear as they
        come (see :mod:`medviewer.ui.series_loading`); ``volume_loaded`` when all are in. A
        cancelled or failed load shows nothing. With ``ask``, unexported segments are offered for
        export first (None: the user cancelled)."""
        from medviewer.ui.series_loading import ProgressiveSeries

        if ask and not self.confirm_discard("opening another series"):
            return None
        loader = ProgressiveSeries(entry, study)
        task = Task(loader.read, "series")
        task.progress.connect(lambda _f: self._show_partial(task, loader))
        task.failed.connect(lambda _m: self._drop_partial(loader))
        task.was_cancelled.connect(lambda: self._drop_partial(loader))
        label = entry.series_description or entry.series_instance_uid
        return self._start(task, f"Loading {label} ({entry.slice_count} images)",
                           lambda volume: self._series_read(loader, volume))

    def _show_partial(self, task: Task, loader) -> None:
        """Show the series being read (its first slice in), then redraw as its slices come in."""
        volume = loader.partial
        if volume is None or self.task is not task:
            return
        if self.loading is not loader:
            self.loading = loader
            self._redrawn_at = time.monotonic()
            self.set_volume(volume, complete=False)
        elif time.monotonic() - self._redrawn_at >= PARTIAL_REDRAW_S:
            self._redrawn_at = time.monotonic()
            self._voxels_changed(volume)

    def _voxels_changed(self, volume: Volume) -> None:
        from medviewer.render.vtk_util import local_image

        local_image(volume).Modified()
        for name, view in self.grid.views.items():
            if name != "3d":
                view.request_render()

    def _series_read(self, loader, volume: Volume) -> None:
        if self.loading is not loader or volume is not loader.partial:
            self.set_volume(volume)   # read whole (multi-frame, short series): shown now
            return
        self.loading = None
        self._voxels_changed(volume)
        self._volume_complete(volume)

    def _drop_partial(self, loader) -> None:
        """A load that ends without its volume takes back what it showed."""
        if self.loading is loader:
            self.loading = None
            image = self.document.image
            if image is not None and image.volume is loader.partial:
                self.document.clear()
                self.setWindowTitle("medviewer")

    def _start(self, task: Task, message: str, on_done) -> Task:
        if self.task is not None and self.task.running:
            self.task.cancel()
        self.task = task
        task.setParent(self)
        self.status_label.setText(message + "...")
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        task.progress.connect(lambda f: self.progress.setValue(int(round(100 * f))))

        def done(result):
            if self.task is task:
                self._end_progress()
            try:
                on_done(result)
            except MedviewerError as exc:
                self._fail(str(exc))

        def failed(message):
            if self.task is task:
                self._end_progress()
            self._fail(message)

        def cancelled():
            if self.task is task:
                self._end_progress()
                self.status_label.setText("Loading cancelled")
        task.finished.connect(done)
        task.failed.connect(failed)
        task.was_cancelled.connect(cancelled)
        return task.start()

    def _end_progress(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()

    def cancel_load(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _fail(self, message: str) -> None:
        self.errors.append(message)
        self.status_label.setText(message)
        self.load_failed.emit(message)
        if not self.quiet:
            QMessageBox.warning(self, "medviewer", message)

    def _show_volume(self, volume: Volume) -> None:
        self.set_volume(volume)

    def set_volume(self, volume: Volume, name: str | None = None, complete: bool = True) -> ImageLayer:
        """Show ``volume`` as the new reference image (removing the previous layers). Not
        ``complete``: its slices are still being read (see load_series); the 3D view waits."""
        if volume is not self.preview:
            self.preview = None
        self.document.clear()
        preset = WINDOW_PRESETS[self.wl_combo.currentText()]
        name = name or volume.meta.get("series_description") or "image"
        layer = self.document.add_layer(ImageLayer(name=name, volume=volume, window=preset.window,
                                                   level=preset.level))
        patient = volume.meta.get("patient_id")
        self.setWindowTitle(f"medviewer - {name}" + (f" ({patient})" if patient else ""))
        self.grid.views["3d"].set_loading(not complete)
        self.grid.reset_cameras()
        if complete:
            self._volume_complete(volume)
        else:
            self.status_label.setText(f"Loading {name} ({volume.shape[0]} images)...")
        return layer

    def _volume_complete(self, volume: Volume) -> None:
        """All of the image's voxels are in: the 3D view, the offer of its annotations, and
        ``volume_loaded``."""
        from medviewer.io import dropped_note

        self.grid.views["3d"].set_loading(False)
        dropped = dropped_note(volume)  # a partial load says what it left out, as the CLI does
        self.status_label.setText(f"{self.document.image.name}: {volume.shape[2]} x {volume.shape[1]} x "
                                  f"{volume.shape[0]}, {' x '.join(f'{s:.2f}' for s in volume.spacing)} mm"
                                  + (f"; {dropped}" if dropped else ""))
        self.annotations.offer(self.index, volume)
        self.volume_loaded.emit(volume)

    # ---- segmentation -----------------------------------------------------------------------
    def choose_segmentation(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a segmentation (label map, DICOM SEG or RTSTRUCT)",
                                              "", IMAGE_FILTER.replace("Images (", "Segmentations (*.dcm "))
        if path:
            try:
                self.load_segmentation(path)
            except MedviewerError as exc:
                self._fail(str(exc))

    def load_segmentation(self, path: str, name: str | None = None) -> LabelLayer:
        """Read a NIfTI/NRRD/MHA label map (resampled by patient space) or a DICOM SEG/RTSTRUCT
        onto the open image."""
        from medviewer.io import image_suffix
        from medviewer.ui.annotations_ui import label_layer_from_annotation, label_layer_of

        image = self.document.image
        if image is None:
            raise MedviewerError("open an image before loading a segmentation", path)
        if image_suffix(path) is None:
            from medviewer.io.annotations import read_annotation
            read = read_annotation(path, image.volume)
            layer = self.document.add_layer(label_layer_from_annotation(read, name))
            kind, warnings = read.kind, read.warnings
        else:   # names and colours from its label table or 3D Slicer's segment fields, if any
            from medviewer.export.labelmap import read_labelmap
            labels, segments, warnings = read_labelmap(path, image.volume, defaults=False)
            name = name or os.path.basename(path).split(".")[0]
            layer = self.document.add_layer(label_layer_of(labels, segments, name))
            kind = "label map"
        self.bring_into_view(layer)
        # what the reader had to say (segments overlapping, frames read frame by frame) is shown
        note = f" ({'; '.join(warnings)})" if warnings else ""
        self.status_label.setText(f"Loaded {kind} {layer.name}{note}")
        return layer

    def _layer_recoloured(self, layer, changed: set) -> None:
        """The Layers panel's colour given to the segments being edited recolours the editor's
        current segment: the editor keeps each segment's colour (its list, its exports), and a
        colour for the whole layer would be undone by its next edit."""
        editor = self.segment_editor
        if "color" in changed and layer is editor.layer and editor.current in editor.segments:
            editor.recolour_segment(editor.current, tuple(int(round(255 * c)) for c in layer.color))

    def bring_into_view(self, layer: LabelLayer) -> None:
        """Move the crosshair into ``layer``'s largest segment (its voxel nearest the segment's
        centre), unless it is in a segment of the layer already: a segmentation just loaded shows
        in all three slices."""
        array = layer.volume.array
        volume = layer.volume
        z, y, x = np.clip(np.round(volume.patient_to_voxel(self.document.cursor)).astype(int), 0,
                          np.asarray(array.shape) - 1)
        if array[z, y, x]:
            return
        values, counts = np.unique(array[array > 0], return_counts=True)
        if not len(values):
            return
        nearest = central_voxel(array == values[np.argmax(counts)])
        self.document.set_cursor(volume.voxel_to_patient(nearest.astype(float)))

    # ---- presets ----------------------------------------------------------------------------
    def apply_window_preset(self, name: str) -> None:
        preset = WINDOW_PRESETS[name]
        self.wl_combo.setCurrentText(name)
        image = self.document.displayed_image   # the image the views draw
        if image is not None:
            self.document.update_layer(image, window=preset.window, level=preset.level)

    def apply_volume_preset(self, name: str) -> None:
        """Render the image's volume in the 3D view with preset ``name`` (turning it on)."""
        self.vr_combo.setCurrentText(name)
        self.grid.views["3d"].set_preset(name)
        self.set_volume_rendering(True)

    def set_volume_rendering(self, on: bool) -> None:
        """Show the image's volume rendering in the 3D view, or only its surfaces, boxes and
        measurements (the default: see medviewer.render.volume_view)."""
        self.grid.views["3d"].set_volume_rendering(on)
        if self.volume_rendering_action.isChecked() != bool(on):
            self.volume_rendering_action.setChecked(bool(on))

    def undo(self) -> None:
        tool = self.measure_tool
        (tool.undo if tool.active and tool.can_undo() else self.segment_editor.undo)()

    def redo(self) -> None:
        tool = self.measure_tool
        (tool.redo if tool.active and tool.can_redo() else self.segment_editor.redo)()

    def set_slab(self, mode: str | None, thickness_mm: float = 10.0) -> None:
        """Draw the 2D views' image as a slab (see SliceView.set_slab); None: the slice alone."""
        for name, view in self.grid.views.items():
            if name != "3d":
                view.set_slab(mode, thickness_mm)
        choice = next((i for i in range(self.slab_combo.count())
                       if self.slab_combo.itemData(i) == ((mode, float(thickness_mm)) if mode else None)), None)
        if choice is not None and choice != self.slab_combo.currentIndex():
            self.slab_combo.setCurrentIndex(choice)

    def set_overlays(self, crosshair: bool | None = None, annotations: bool | None = None,
                     identity: bool | None = None) -> None:
        """Show or hide the 2D views' crosshair lines, annotations and the patient's identity in
        them (see SliceView.set_overlays)."""
        for name, view in self.grid.views.items():
            if name != "3d":
                view.set_overlays(crosshair, annotations, identity)
        for key, on in (("crosshair", crosshair), ("annotations", annotations), ("identity", identity)):
            if on is not None and self.overlay_actions[key].isChecked() != on:
                self.overlay_actions[key].setChecked(on)

    def set_layout(self, mode: str, active: str | None = None) -> None:
        self.grid.set_layout(mode, active)
        self.layout_actions[mode].setChecked(True)

    def _cursor_moved(self, point) -> None:
        value = self.document.value_at(point, self.document.displayed_image)
        self._show_readout(None if value is None else point, value)

    def _show_readout(self, point, value) -> None:
        if point is None:
            self.readout_label.setText("")
        else:
            self.readout_label.setText(f"{value:.0f} HU at ({point[0]:.1f}, {point[1]:.1f}, "
                                       f"{point[2]:.1f}) mm LPS")

    # ---- screenshots ------------------------------------------------------------------------
    def choose_view_screenshot(self, name: str | None = None) -> None:
        """Ask where, then save one view (``name``) or the visible views (None) to a PNG."""
        what = f"the {name} view" if name else "the views"
        path, chosen = QFileDialog.getSaveFileName(self, f"Save a screenshot of {what}",
                                                   f"{name or 'views'}.png", SCREENSHOT_FILTERS)
        if not path:
            return
        if not os.path.splitext(path)[1]:
            path += ".dcm" if "DICOM" in chosen else ".png"
        try:
            if name:
                self.save_view_screenshot(name, path)
            else:
                self.save_views_screenshot(path)
        except MedviewerError as exc:
            self._fail(str(exc))

    def choose_window_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save a screenshot of the window", "window.png",
                                              "PNG (*.png)")
        if path:
            try:
                self.save_window_screenshot(path)
            except MedviewerError as exc:
                self._fail(str(exc))

    def save_view_screenshot(self, name: str, path: str) -> str:
        """One view (axial, coronal, sagittal or 3d) to a PNG, or (``.dcm``) a DICOM key image."""
        return self._save_picture(self.grid.capture_view(name), path, name)

    def save_views_screenshot(self, path: str) -> str:
        """The visible views, as laid out, to a PNG or (``.dcm``) a DICOM key image."""
        views = self.grid.visible_views()
        return self._save_picture(self.grid.capture_grid(), path, views[0] if len(views) == 1 else None)

    def _save_picture(self, pixels, path: str, view: str | None = None) -> str:
        """A PNG, or for ``.dcm`` a DICOM Secondary Capture in the open study (see
        :mod:`medviewer.export.key_image`; replaces the file: the dialogs ask first)."""
        if not os.fspath(path).lower().endswith(".dcm"):
            return save_png(pixels, path)
        from medviewer.export.key_image import write_key_image

        image = self.document.image
        if image is None:
            raise MedviewerError("no image open", path)
        return write_key_image(pixels, image.volume, path, view=view, force=True)

    def save_window_screenshot(self, path: str) -> str:
        """The whole window (menus, docks and views) to a PNG."""
        image = self.grab().toImage().convertToFormat(QImage.Format_RGB888)
        w, h = image.width(), image.height()
        buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
        canvas = buf.reshape(h, image.bytesPerLine())[:, :w * 3].reshape(h, w, 3).copy()
        return save_png(self.grid.paste_views(canvas, self), path)

    # ---- drag and drop ----------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

    # ---- docks -------------------------------------------------------------------------------
    def set_side_panels(self, on: bool) -> None:
        """Close every open dock, giving the views the whole window, or (``on``) open again the
        ones so closed, each tab in front that was. Opening a dock by itself meanwhile ends the
        folding (the menu's tick follows)."""
        if not on:
            # a tab behind another is "visible" to Qt, only moved out of sight: nothing of it shows
            self._folded_docks = [(d, not d.visibleRegion().isEmpty()) for d in self.findChildren(QDockWidget)
                                  if d.toggleViewAction().isChecked()]
            for dock, _ in self._folded_docks:
                dock.visibilityChanged.connect(self._dock_opened_while_folded)
                dock.close()
        else:
            folded, self._folded_docks = self._folded_docks, []
            for dock, _ in folded:
                dock.visibilityChanged.disconnect(self._dock_opened_while_folded)
                dock.show()
            for dock, front in folded:
                if front:
                    dock.raise_()
        self.side_panels_action.setChecked(on)

    def _dock_opened_while_folded(self, visible: bool) -> None:
        if not visible or not self._folded_docks:
            return
        for dock, _ in self._folded_docks:
            dock.visibilityChanged.disconnect(self._dock_opened_while_folded)
        self._folded_docks = []
        self.side_panels_action.setChecked(True)

    def add_right_dock(self, title: str, name: str, widget) -> QDockWidget:
        """A dock on the right holding ``widget``, as a tab behind the plugins dock when there is one."""
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(Qt.RightDockWidgetArea, dock)
        other = getattr(self, "plugins_dock", None)
        if other is not None:
            self.tabify_docks(other, dock)
        return dock

    def tabify_docks(self, first: QDockWidget, second: QDockWidget) -> None:
        """Put ``second`` as a tab behind ``first`` (``first`` stays in front).

        Qt 6.11 gives a tab group made before the window is shown, when another group exists
        already, two tab bars: a stray one stays drawn across the views or the docks. So the first
        group is made at once, any other one in the first turn of the event loop after the show
        (each pair in order: a group made later goes on waiting behind its first pairs)."""
        made = self._tab_firsts
        if self._tab_groups or (made and first not in made and not self.isVisible()):
            self._tab_groups.append((first, second))
            return
        self.tabifyDockWidget(first, second)
        first.raise_()
        made.add(first)

    def _tabify_waiting(self) -> None:
        groups, self._tab_groups = self._tab_groups, []
        for first, second in groups:
            self.tabifyDockWidget(first, second)
            first.raise_()
            self._tab_firsts.add(first)

    def showEvent(self, event) -> None:
        if not self._shown_once:
            self._shown_once = True
            if self._tab_groups:
                QTimer.singleShot(0, self._tabify_waiting)
            # narrow side panels: at 1280 x 900 each view of the 2 x 2 grid is about 380 pixels wide
            self.resizeDocks([self.browser_dock, self.plugins_dock], list(DOCK_WIDTHS), Qt.Horizontal)
        super().showEvent(event)

    def confirm_discard_segments(self, action: str) -> bool:
        """Whether to go on with ``action``, which replaces the image and with it the segment
        editor's segments: yes when nothing of them is unexported, else as the user answers
        (Export first, Discard, or Cancel). Quiet windows (automation) do not ask."""
        editor = self.segment_editor
        if self.quiet or not editor.has_unexported_edits():
            return True
        answer = QMessageBox.question(
            self, "medviewer", f"The segments have changes that are not exported. Export them before {action}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if answer == QMessageBox.Cancel:
            return False
        if answer == QMessageBox.Save:
            from medviewer.ui.annotations_ui import choose_export

            choose_export(self, editor.layer)
            return not editor.has_unexported_edits()   # the export dialog cancelled or failed: stay
        editor.forget_recovery_copy()   # discarded on purpose: nothing to offer back later
        return True

    def confirm_discard(self, action: str) -> bool:
        """Whether to go on with ``action``, which replaces the image and with it the segments and
        the measurements: each is offered for export first if it has unexported changes."""
        return self.confirm_discard_segments(action) and self.measure_tool.confirm_discard(action)

    def closeEvent(self, event) -> None:
        if not self.confirm_discard("closing"):
            event.ignore()
            return
        if self.task is not None and self.task.running:
            self.task.cancel()
            self.task.wait(5)
        self.segment_editor.shutdown()
        self.plugins.shutdown()
        self.pacs.cancel()
        self.grid.close_views()
        super().closeEvent(event)
