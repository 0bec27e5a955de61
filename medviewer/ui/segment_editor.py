"""The Segment Editor dock: lesions as segments of one label layer, click-to-segment, brush, eraser,
threshold brush, scissors, remove islands, margin, smoothing, fill between slices, undo/redo, and a
table of lesion measures.

Segments live in a :class:`~medviewer.core.document.LabelLayer` named "segments" on the open image
(label value = segment; names and colours from :class:`~medviewer.core.segments.Segment`). The
tools take the left button of the 2D views (``SliceView.tool``) while they are selected:

* click segment: left click = a positive point, shift+left click = a negative one; each click
  reruns the ``click-segment`` plugin on all the segment's clicks (in the background, through
  :class:`~medviewer.plugins.runner.Runner`); its mask replaces the segment's voxels.
* brush / eraser / threshold brush: a disc of the brush radius in the slice, dragged.
* scissors: drag an outline around a part (a spill, say); on release it is erased (or what lies
  outside it, or it is filled) through every slice along the view's axis, or on that slice only.

Each tool and effect has its options panel in :mod:`medviewer.ui.segment_tools` (one module each;
the editor shows the panel of the one in use only), where the click tool's and the brushes' work
lives too; the effects' work is in :mod:`medviewer.ui.segment_effects`, the measures table in
:mod:`medviewer.ui.segment_measures`, the recovery copies in :mod:`medviewer.ui.segment_recovery`:
all mixins of the editor.

Edits never overwrite another segment. Ctrl+Z undoes, Ctrl+Shift+Z (or Ctrl+Y) redoes; an undone
click also takes its marker back. The measures (volume, HU, RECIST axes, bounding box) are
recomputed in the background after each edit.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QColorDialog, QComboBox, QDockWidget, QFormLayout, QGridLayout, QHBoxLayout, QInputDialog, QLabel, QListWidget,
    QListWidgetItem, QProgressBar, QPushButton, QScrollArea, QStackedWidget, QVBoxLayout, QWidget,
)

from medviewer.core.document import ImageLayer, LabelLayer, RulerLayer
from medviewer.core.label_edit import Clicks, EditStack, central_voxel, diff
from medviewer.core.segments import Segment, segment_color
from medviewer.ui.segment_effects import SegmentEffects
from medviewer.ui.segment_measures import SegmentMeasures
from medviewer.ui.segment_recovery import SegmentRecovery
from medviewer.ui.segment_tools import EFFECTS, TOOLS, options_panels
from medviewer.ui.segment_tools.brush import BrushPainting
from medviewer.ui.segment_tools.click import ClickSegmenting
from medviewer.ui.tasks import JobPoller, Task

LAYER_NAME = "segments"
#: keys that pick a tool, as Slicer's segment editor numbers its effects (Escape: back to navigating)
TOOL_SHORTCUTS = {"navigate": "Esc", "click": "1", "brush": "2", "eraser": "3", "threshold": "4", "scissors": "5"}
POLL_MS = 25


def _rgb255(color) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in color)  # type: ignore[return-value]


class SegmentEditor(ClickSegmenting, BrushPainting, SegmentMeasures, SegmentEffects, SegmentRecovery, QWidget):
    """The editor's widget; ``window`` is the MainWindow (its document, view grid and status bar)."""

    edited = Signal()                 # the segments' voxels changed (an edit, an undo, a result)
    click_result = Signal(object)     # a click-to-segment run ended: the Change, or None
    click_failed = Signal(str)
    measures_updated = Signal(object)  # list of LesionMeasures
    engine_ready = Signal(str, object)  # an engine loaded ahead of the first click: seconds, or the error
    tool_changed = Signal(str)        # a tool was chosen (also Navigate)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.rulers_layer: RulerLayer | None = None
        self.document = window.document
        self.layer: LabelLayer | None = None
        self.segments: dict[int, Segment] = {}
        self.current: int | None = None
        self.clicks: dict[int, Clicks] = {}
        self.hidden: set[int] = set()   # segments not drawn (see set_segment_visible)
        self._deleted: dict[int, tuple[Segment, Clicks]] = {}  # for undoing a delete
        self._next_label = 1  # label values are never reused while the layer lives
        self.stack = EditStack()
        self.tool = "navigate"
        self.runner = None
        self.job = None
        self.pending: tuple[int, Clicks, Clicks] | None = None   # label, clicks before, after
        self.measures: list = []
        self._measured: dict[int, object] = {}   # label -> its LesionMeasures
        self._measured_array: np.ndarray | None = None   # the voxels those measures are of
        self._measure_task: Task | None = None
        self._measure_again = False
        self._jump_after: int | None = None   # Go to segment asked while measures were pending
        self._busy_cursor = False
        self._stroke: tuple | None = None
        self._outline: tuple | None = None   # scissors: (view, [LPS mm points]) while dragging
        self._markers: dict = {}
        self._unexported = False   # edits since the last export (see has_unexported_edits)
        self._build()

        self._poller = JobPoller(self._on_job_event, self, POLL_MS)
        self._measure_timer = QTimer(self)
        self._measure_timer.setSingleShot(True)
        self._measure_timer.setInterval(100)
        self._measure_timer.timeout.connect(self._start_measures)
        self._init_recovery()

        self.document.events.connect("layer_removed", self._on_layer_removed)
        self.document.events.connect("layer_added", self._on_layer_added)

        self.dock = QDockWidget("Segment editor", window)
        self.dock.setObjectName("segment-editor-dock")
        # in a scroll area: the editor's rows need more height than a small window's dock has, and
        # a dock's minimum height would otherwise make the whole window taller than the screen
        scroll = QScrollArea()
        scroll.setWidget(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        # it scrolls up and down only: as wide as its rows need, beside a vertical scroll bar
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        self.dock.setWidget(scroll)

    # ---- widgets ----------------------------------------------------------------------------
    def _build(self) -> None:
        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        self.segment_list = QListWidget()
        self.segment_list.setMaximumHeight(110)
        self.segment_list.currentItemChanged.connect(self._on_current_item)
        self.segment_list.itemChanged.connect(self._on_item_checked)
        self.segment_list.setToolTip("tick: shown in the views (an unticked segment is kept and exported, "
                                     "only not drawn); double-click: rename")
        self.segment_list.itemDoubleClicked.connect(lambda _item: self.rename_dialog())
        box.addWidget(QLabel("Segments"))
        box.addWidget(self.segment_list)
        row = QGridLayout()   # two by two: the dock stays narrow
        for n, (text, slot) in enumerate((("Add", lambda: self.add_segment()), ("Rename", self.rename_dialog),
                                          ("Colour", self.recolour_dialog), ("Delete", lambda: self.delete_segment()))):
            b = QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b, n // 2, n % 2)
        box.addLayout(row)

        form = QFormLayout()
        self.tool_combo = QComboBox()
        for key, text in {**TOOLS, **EFFECTS}.items():
            self.tool_combo.addItem(text, key)
        self.tool_combo.insertSeparator(len(TOOLS))
        self.tool_combo.currentIndexChanged.connect(lambda _i: self.set_tool(self.tool_combo.currentData()))
        form.addRow("Tool", self.tool_combo)
        box.addLayout(form)
        # the options of the tool in use only (as Slicer's Segment Editor shows its effect's)
        self.options = QStackedWidget()
        self.option_panels = options_panels(self)
        for panel in dict.fromkeys(self.option_panels.values()):
            self.options.addWidget(panel)
        self.options.setCurrentWidget(self.option_panels[self.tool])
        self.engine_ready.connect(self._engine_ready)
        box.addWidget(self.options)

        row = QHBoxLayout()
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo)
        self.redo_button = QPushButton("Redo")
        self.redo_button.clicked.connect(self.redo)
        row.addWidget(self.undo_button)
        row.addWidget(self.redo_button)
        box.addLayout(row)
        # Ctrl+Z and Ctrl+Shift+Z belong to the window's Edit menu, which sends them here unless
        # the measure tool has a change to undo
        self.undo_action = QAction("&Undo segment edit", self)
        self.undo_action.triggered.connect(self.undo)
        self.redo_action = QAction("&Redo segment edit", self)
        self.redo_action.triggered.connect(self.redo)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        box.addWidget(self.status)
        # while a click runs: its stages' progress (a moving bar when a stage gives no fraction)
        self.click_progress = QProgressBar()
        self.click_progress.setMaximumHeight(12)
        self.click_progress.setTextVisible(False)
        self.click_progress.hide()
        box.addWidget(self.click_progress)
        box.addWidget(QLabel("Measures"))
        self.table = self._build_table()
        self.table.cellDoubleClicked.connect(lambda row, _col: self.jump_to_segment(self._table_labels[row]))
        self._table_labels: list[int] = []
        # what a follow-up read adds up: the lesions' longest axial diameters (RECIST's sum, before
        # its choice of target lesions and its short axis for lymph nodes) and their volume; above
        # the table, where a short dock still shows it
        self.totals = QLabel("")
        self.totals.setWordWrap(True)
        box.addWidget(self.totals)
        box.addWidget(self.table, 1)
        self._update_buttons()

    def install(self, window) -> None:
        """Put the dock and a Segment menu (its tools on the keys of TOOL_SHORTCUTS) into ``window``."""
        layers = getattr(window, "layers_dock", None)
        if layers is not None:  # a tab beside the layers: the views keep their width
            window.addDockWidget(Qt.LeftDockWidgetArea, self.dock)
            window.tabify_docks(getattr(window, "browser_dock", layers), self.dock)
        else:
            window.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        menu = window.menuBar().addMenu("&Segment")
        menu.addAction(self.undo_action)
        menu.addAction(self.redo_action)
        menu.addSeparator()
        for key, text in TOOLS.items():
            a = menu.addAction(text)
            a.setShortcut(QKeySequence(TOOL_SHORTCUTS[key]))
            a.triggered.connect(lambda _=False, k=key: self.set_tool(k))
        menu.addSeparator()
        self.recover_action = menu.addAction("Recover kept segments", lambda: self.recover())
        self.recover_action.setEnabled(False)
        add = menu.addAction("Add segment (the next lesion)", lambda: self.add_segment())
        add.setShortcut(QKeySequence("Ctrl+N"))
        menu.addAction("Import a loaded segmentation", lambda: self.import_layer())
        menu.addAction("Compare with a loaded segmentation", lambda: self.compare_with_reference())
        menu.addAction("Remove islands", lambda: self.remove_islands())
        menu.addAction("Fill between slices", lambda: self.fill_between_slices())
        menu.addAction("Smooth", lambda: self.apply_smoothing())
        go = menu.addAction("Go to segment")
        go.setShortcut(QKeySequence("Ctrl+J"))
        go.triggered.connect(lambda _=False: self.jump_to_segment())
        menu.addSeparator()
        menu.addAction(self.dock.toggleViewAction())

    def shutdown(self) -> None:
        if self.job is not None:
            self.job.cancel()
        if self.runner is not None:
            self.runner.shutdown()
        for markers in self._markers.values():
            markers.close()
        self._markers.clear()

    # ---- segments ---------------------------------------------------------------------------
    def ensure_layer(self) -> LabelLayer | None:
        if self.layer is not None:
            return self.layer
        image = self.document.image
        if image is None:
            self._say("open an image first")
            return None
        labels = image.volume.with_array(np.zeros(image.volume.shape, np.uint8), modality="SEG")
        self.layer = self.document.add_layer(LabelLayer(name=LAYER_NAME, volume=labels, opacity=0.5,
                                                        color=tuple(c / 255 for c in segment_color(1))))
        return self.layer

    def add_segment(self, name: str | None = None, color: tuple[int, int, int] | None = None) -> Segment | None:
        if self.ensure_layer() is None:
            return None
        label = self._next_label
        if label > 255:
            self._say("at most 255 segments")
            return None
        color = color or segment_color(label)
        segment = Segment(label, name or f"lesion {label}", color)
        self._next_label = label + 1
        self.segments[label] = segment
        self.clicks[label] = Clicks()
        self._sync_layer()
        self._fill_list()
        self.select_segment(label)
        return segment

    def segments_for_export(self):
        """(label map Volume, [Segment]) of the segments that have voxels, or None: what the
        exporters (DICOM SEG, RTSTRUCT, NIfTI, report) take."""
        if self.layer is None:
            return None
        present = set(np.unique(self.layer.volume.array).tolist()) - {0}
        segments = [s for label, s in self.segments.items() if label in present]
        return (self.layer.volume, segments) if segments else None

    def select_segment(self, label: int) -> None:
        self.current = label
        for i in range(self.segment_list.count()):
            item = self.segment_list.item(i)
            if item.data(Qt.UserRole) == label:
                self.segment_list.setCurrentItem(item)
        self._update_markers()

    def jump_to_segment(self, label: int | None = None) -> None:
        """Select segment ``label`` (the current one by default) and move the crosshair onto it: to
        the middle of its longest axial diameter, on the slice where it is longest (RECIST's),
        else to its voxel nearest its centre (measures not in yet)."""
        label = self.current if label is None else label
        if label is None or self.layer is None or label not in self.segments:
            return
        self.select_segment(label)
        if not self.measures_current():
            self._jump_after = label   # the mask or its measures are on their way: go there then
            self._say(f"going to {self.segments[label].name} once its measures are in...")
            return
        self._jump_after = None
        measured = self._measured.get(label)
        if measured is not None and measured.long_axis_mm > 0:
            point = np.mean(np.asarray(measured.long_axis_endpoints_mm), axis=0)
        else:
            nearest = central_voxel(self.layer.volume.array == label)
            if nearest is None:
                self._say(f"{self.segments[label].name} is empty")
                return
            point = self.layer.volume.voxel_to_patient(nearest.astype(float))
        self.window.document.set_cursor(point)

    def rename_segment(self, label: int, name: str) -> None:
        from dataclasses import replace

        self.segments[label] = replace(self.segments[label], name=name)
        self._sync_layer()
        self._fill_list()
        self._fill_table()

    def recolour_segment(self, label: int, color: tuple[int, int, int]) -> None:
        from dataclasses import replace

        self.segments[label] = replace(self.segments[label], color=tuple(int(c) for c in color))
        self._sync_layer()
        self._fill_list()

    def delete_segment(self, label: int | None = None) -> None:
        """Remove a segment and its voxels (undoable as to voxels; the segment entry goes)."""
        label = self.current if label is None else label
        if label is None or label not in self.segments or self.layer is None:
            return
        self._cancel_job()
        old = self.layer.volume.array
        new = old.copy()
        new[new == label] = 0
        change = diff(old, new, label, "delete segment", clicks_before=self.clicks.get(label, Clicks()),
                      clicks_after=Clicks())
        if change is not None:
            self.stack.push(change)
        self._deleted[label] = (self.segments.pop(label), self.clicks.pop(label, Clicks()))
        self.current = next(iter(self.segments), None)
        self._set_labels(new)
        self._fill_list()
        if self.current is not None:
            self.select_segment(self.current)
        self._update_markers()

    def import_layer(self, layer: LabelLayer | None = None) -> list[Segment]:
        """Take a label layer's segments into the editor (a loaded SEG or RTSTRUCT, a plugin's
        result), to correct them with clicks, the brush and the other tools, and export them.

        ``layer``: default, the Layers panel's current label layer, else the topmost one that is
        not the editor's. Each of its values becomes a new segment with its name and colour, on
        voxels no segment holds yet; each import is undoable (undo takes the segment back out).
        The source layer is left as it was, and hidden."""
        if layer is None:
            layer = self._importable_layer()
        if layer is None:
            self._say("no segmentation to import: load one (File > Load segmentation) or run a plugin")
            return []
        image = self.document.image
        if image is None or not layer.volume.same_grid(image.volume):
            self._say(f"{layer.name} is not on the open image's grid: it cannot be edited here")
            return []
        from medviewer.ui.annotations_ui import segments_of

        incoming = segments_of(layer)
        if not incoming:
            self._say(f"{layer.name} is empty")
            return []
        if self.ensure_layer() is None:
            return []
        self._cancel_job()
        source = layer.volume.array
        added = []
        for seg in incoming:
            new_segment = self.add_segment(seg.name, seg.color)
            if new_segment is None:
                break
            old = self.layer.volume.array
            new = old.copy()
            new[(source == seg.label) & (old == 0)] = new_segment.label
            change = diff(old, new, new_segment.label, "import segment")
            if change is not None:
                self.stack.push(change)
            self._set_labels(new)
            added.append(new_segment)
        self.document.update_layer(layer, visible=False)
        self._update_markers()
        names = ", ".join(s.name for s in added)
        self._say(f"imported {len(added)} segment(s) from {layer.name} ({names}); that layer is hidden")
        return added

    def _importable_layer(self) -> LabelLayer | None:
        current = getattr(getattr(self.window, "layers", None), "current_layer", lambda: None)()
        if isinstance(current, LabelLayer) and current is not self.layer:
            return current
        others = [l for l in self.document.layers_of(LabelLayer) if l is not self.layer]
        return others[-1] if others else None

    def compare_with_reference(self, layer: LabelLayer | None = None, label: int | None = None):
        """The current segment against a loaded segmentation (an expert's RTSTRUCT, say: the
        Layers panel's current label layer, else the topmost one not the editor's; its segment
        that overlaps this one most, else all of them): Dice, volumes and surface distances,
        shown in the status line.
        Returns the :class:`~medviewer.core.compare.Agreement`, or None."""
        from medviewer.core.compare import compare_masks

        label = self._edited_label(label, "compare")
        if label is None:
            return None
        reference = layer if layer is not None else self._importable_layer()
        if reference is None:
            self._say("no reference to compare with: load one (File > Load segmentation)")
            return None
        if not reference.volume.same_grid(self.layer.volume):
            self._say(f"{reference.name} is not on the open image's grid")
            return None
        mask, ref = self.layer.volume.array == label, reference.volume.array
        # the reference's segment this one overlaps most (the same lesion), else all of them
        overlap = np.bincount(ref[mask].ravel().astype(np.int64)) if mask.any() else np.zeros(1, np.int64)
        overlap[0] = 0
        target = ref == int(np.argmax(overlap)) if overlap.any() else ref > 0
        result = compare_masks(mask, target, self.layer.volume.spacing)
        surface = ("" if np.isnan(result.hd95_mm) else
                   f", surfaces {result.mean_surface_mm:.1f} mm apart on average (HD95 {result.hd95_mm:.1f} mm)")
        self._say(f"{self.segments[label].name} against {reference.name}: Dice {result.dice:.3f}, "
                  f"{result.volume_ml:.1f} mL against {result.reference_volume_ml:.1f} mL{surface}")
        return result

    def rename_dialog(self) -> None:
        if self.current is None:
            return
        name, ok = QInputDialog.getText(self, "Rename segment", "Name:", text=self.segments[self.current].name)
        if ok and name.strip():
            self.rename_segment(self.current, name.strip())

    def recolour_dialog(self) -> None:
        if self.current is None:
            return
        color = QColorDialog.getColor(QColor(*self.segments[self.current].color), self, "Segment colour")
        if color.isValid():
            self.recolour_segment(self.current, (color.red(), color.green(), color.blue()))

    def _sync_layer(self) -> None:
        if self.layer is None:
            return
        self.document.update_layer(
            self.layer, label_names={k: s.name for k, s in self.segments.items()},
            label_colors={k: tuple(c / 255.0 for c in s.color) for k, s in self.segments.items()},
            hidden_labels=frozenset(self.hidden & set(self.segments)))

    def _fill_list(self) -> None:
        self.segment_list.blockSignals(True)
        self.segment_list.clear()
        for label, segment in self.segments.items():
            pix = QPixmap(12, 12)
            pix.fill(QColor(*segment.color))
            item = QListWidgetItem(QIcon(pix), segment.name)
            item.setData(Qt.UserRole, label)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked if label in self.hidden else Qt.Checked)
            self.segment_list.addItem(item)
            if label == self.current:
                self.segment_list.setCurrentItem(item)
        self.segment_list.blockSignals(False)

    def set_segment_visible(self, label: int, visible: bool) -> None:
        """Show or hide a segment in the views (it stays in the layer, its measures and exports)."""
        if label not in self.segments or (label not in self.hidden) == visible:
            return
        (self.hidden.discard if visible else self.hidden.add)(label)
        self._sync_layer()
        self._fill_list()

    def _on_item_checked(self, item) -> None:
        label = item.data(Qt.UserRole)
        if label is not None:
            self.set_segment_visible(int(label), item.checkState() == Qt.Checked)

    def _on_current_item(self, item, _previous) -> None:
        if item is not None:
            self.current = item.data(Qt.UserRole)
            self._update_markers()

    def _current_or_new(self) -> int | None:
        if self.current is None or self.current not in self.segments:
            segment = self.add_segment()
            return None if segment is None else segment.label
        self.set_segment_visible(self.current, True)   # an edit shows what it edits
        return self.current

    # ---- document ---------------------------------------------------------------------------
    def _on_layer_removed(self, layer) -> None:
        if layer is self.layer:
            self._cancel_job()
            self._unexported = False
            self.layer = None
            self.segments.clear()
            self.clicks.clear()
            self.hidden.clear()
            self._deleted.clear()
            self._next_label = 1
            self.current = None
            self.stack.clear()
            self.measures = []
            self._measured.clear()
            self._measured_array = None
            self._jump_after = None
            self._fill_list()
            self._fill_table()
            self._update_markers()
            self._update_buttons()

    def _on_layer_added(self, layer) -> None:
        if isinstance(layer, ImageLayer) and layer is self.document.image:
            self._apply_tool()
            QTimer.singleShot(0, self.offer_recovery)   # once the image shows

    def has_unexported_edits(self) -> bool:
        """Whether the segments hold voxels changed since they were last exported (or ever)."""
        return self._unexported and self.layer is not None and bool(self.layer.volume.array.any())

    def mark_exported(self) -> None:
        self._unexported = False
        self.forget_recovery_copy()

    def _set_labels(self, array: np.ndarray) -> None:
        """Show ``array`` as the segments' voxels (a new Volume: every view updates)."""
        self._unexported = True
        self.document.update_layer(self.layer, volume=self.layer.volume.with_array(array))
        self._update_buttons()
        self._measure_timer.start()
        self._recovery_timer.start()
        self.edited.emit()

    def _commit(self, old: np.ndarray, new: np.ndarray, label: int, description: str,
                within=None, **clicks) -> object:
        change = diff(old, new, label, description, within=within, **clicks)
        if change is not None:
            self.stack.push(change)
        self._set_labels(new)
        return change

    # ---- tools ------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        """Pick a tool (it takes the views' left button) or an effect (the mouse navigates); the
        editor shows its options only."""
        if tool not in TOOLS and tool not in EFFECTS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        index = self.tool_combo.findData(tool)
        if self.tool_combo.currentIndex() != index:
            self.tool_combo.setCurrentIndex(index)
        self.options.setCurrentWidget(self.option_panels[tool])
        self._apply_tool()
        self.tool_changed.emit(tool)

    def _apply_tool(self) -> None:
        for view in self._slice_views():
            if self.tool in TOOLS and self.tool != "navigate":
                view.tool = self
            elif view.tool is self:   # another tool (the measure tool) may hold the button
                view.tool = None
        if self.tool == "click":
            self.warm_engine()

    def _runner(self):
        from medviewer.plugins.runner import Runner

        if self.runner is None:
            self.runner = getattr(self.window, "runner", None) or Runner()
        return self.runner

    def _slice_views(self):
        return [v for n, v in self.window.grid.views.items() if n != "3d"]

    # SliceView calls these (display pixels, y from the bottom)
    def press(self, view, x, y, shift: bool = False) -> bool:
        point = view.display_to_patient(x, y)
        image = self.document.image
        if image is None or not image.volume.contains_point(point):
            return True  # swallowed: no crosshair jump while a tool is on
        if getattr(self.window, "loading", None) is not None:
            # the slices still being read are blank: an edit or a click would work on them
            self._say("the series is still loading: edit it once all its slices are in")
            return True
        if self.tool == "click":
            self.add_click(point, positive=not shift)
            return True
        if self.tool == "scissors":
            self._outline = (view, [point])
            view.set_sketch([point])
            return True
        label = self._current_or_new()
        if label is None:
            return True
        self._stroke = (view, self.layer.volume.array.copy(), label)
        self._dab(view, point)
        return True

    def drag(self, view, x, y) -> None:
        if self._outline is not None and view is self._outline[0]:
            points = self._outline[1]
            point = view.display_to_patient(x, y)
            if np.linalg.norm(point - points[-1]) >= 0.5 * min(self.document.image.volume.spacing):
                points.append(point)
                view.set_sketch(points)
        elif self._stroke is not None and view is self._stroke[0]:
            self._dab(view, view.display_to_patient(x, y))

    def release(self, view, x, y) -> None:
        if self._outline is not None:
            self.drag(view, x, y)
            view, points = self._outline
            self._outline = None
            view.set_sketch(None)
            self.cut(view.orientation, points)
            return
        if self._stroke is None:
            return
        _, before, label = self._stroke
        self._stroke = None
        self._commit(before, self.layer.volume.array, label, TOOLS[self.tool])

    # ---- undo -------------------------------------------------------------------------------
    def undo(self) -> None:
        self._step(self.stack.undo, "clicks_before")

    def redo(self) -> None:
        self._step(self.stack.redo, "clicks_after")

    def _step(self, move, clicks_field: str) -> None:
        if self.layer is None:
            return
        self._cancel_job()
        array = self.layer.volume.array.copy()
        change = move(array)
        if change is None:
            return
        # A deleted or imported segment's entry comes and goes with its voxels.
        if change.description in ("delete segment", "import segment"):
            restores = (move == self.stack.undo) == (change.description == "delete segment")
            if restores:
                segment, _ = self._deleted.pop(change.label)
                self.segments[change.label] = segment
                self.segments = dict(sorted(self.segments.items()))
            else:
                self._deleted[change.label] = (self.segments.pop(change.label), Clicks())
                self.clicks.pop(change.label, None)
                if self.current == change.label:
                    self.current = next(iter(self.segments), None)
            self._sync_layer()
            self._fill_list()
        clicks = getattr(change, clicks_field)
        if clicks is not None and change.label in self.segments:
            self.clicks[change.label] = clicks
        self._set_labels(array)
        self._update_markers()
        self._say(f"{'undid' if move == self.stack.undo else 'redid'} {change.description}")

    def _update_buttons(self) -> None:
        self.undo_button.setEnabled(self.stack.can_undo())
        self.redo_button.setEnabled(self.stack.can_redo())
        self.undo_action.setEnabled(self.stack.can_undo())
        self.redo_action.setEnabled(self.stack.can_redo())

    def _say(self, text: str) -> None:
        self.status.setText(text)
        label = getattr(self.window, "status_label", None)
        if label is not None:
            label.setText(text)
