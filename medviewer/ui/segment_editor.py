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

The effects on the current segment (scissors, islands, margin, smoothing, fill between slices)
live in :mod:`medviewer.ui.segment_effects`, the recovery copies in
:mod:`medviewer.ui.segment_recovery`; both are mixins of the editor.

Edits never overwrite another segment. Ctrl+Z undoes, Ctrl+Shift+Z (or Ctrl+Y) redoes; an undone
click also takes its marker back. The measures (volume, HU, RECIST axes, bounding box) are
recomputed in the background after each edit.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QColorDialog, QComboBox, QDockWidget, QDoubleSpinBox, QFormLayout,
    QHBoxLayout, QHeaderView, QInputDialog, QLabel, QListWidget, QListWidgetItem, QPushButton,
    QScrollArea, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from medviewer import __version__
from medviewer.core.document import LABEL_PALETTE, ImageLayer, LabelLayer, Ruler, RulerLayer
from medviewer.core.label_edit import (
    Clicks, EditStack, central_voxel, diff, disc_region, erase, paint, replace_segment,
)
from medviewer.core.segments import AlgorithmInfo, Segment
from medviewer.ui.segment_effects import SegmentEffects
from medviewer.ui.segment_recovery import SegmentRecovery
from medviewer.ui.tasks import JobPoller, Task

LAYER_NAME = "segments"
TOOLS = {"navigate": "Navigate", "click": "Click segment", "brush": "Brush", "eraser": "Eraser",
         "threshold": "Threshold brush", "scissors": "Scissors"}
#: keys that pick a tool, as Slicer's segment editor numbers its effects (Escape: back to navigating)
TOOL_SHORTCUTS = {"navigate": "Esc", "click": "1", "brush": "2", "eraser": "3", "threshold": "4", "scissors": "5"}
POSITIVE_RGB = (40, 230, 40)
NEGATIVE_RGB = (240, 40, 40)
MEASURE_COLUMNS = ("Segment", "mL", "Mean HU", "Min", "Max", "Long mm", "Short mm", "Box mm (x y z)")
MEASURE_TIPS = ("", "volume in millilitres", "mean HU in the segment", "lowest HU", "highest HU",
                "longest axial diameter (RECIST), on its slice",
                "longest extent perpendicular to it, same slice", "bounding box size (LPS x, y, z)")
POLL_MS = 25


def _rgb255(color) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in color)  # type: ignore[return-value]


class SegmentEditor(SegmentEffects, SegmentRecovery, QWidget):
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
        self._measure_task: Task | None = None
        self._measure_again = False
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
        row = QHBoxLayout()
        for text, slot in (("Add", lambda: self.add_segment()), ("Rename", self.rename_dialog),
                           ("Colour", self.recolour_dialog), ("Delete", lambda: self.delete_segment())):
            b = QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b)
        box.addLayout(row)

        form = QFormLayout()
        self.tool_combo = QComboBox()
        for key, text in TOOLS.items():
            self.tool_combo.addItem(text, key)
        self.tool_combo.currentIndexChanged.connect(lambda _i: self.set_tool(self.tool_combo.currentData()))
        form.addRow("Tool", self.tool_combo)
        self.engine_combo = QComboBox()
        engines, default = self._engines()
        self.engine_combo.addItems(engines)
        self.engine_combo.setCurrentText(default)
        self.engine_combo.setToolTip(
            "click-segment engine (left click: inside, shift+left click: outside); auto: classical for a "
            "lesion that region growing closes off near the first click (lung nodule, liver lesion), "
            "learned otherwise (trained on soft-tissue sarcomas)")
        self.engine_combo.currentTextChanged.connect(lambda _t: self.tool == "click" and self.warm_engine())
        self.engine_ready.connect(self._engine_ready)
        form.addRow("Engine", self.engine_combo)
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.5, 100.0)
        self.radius.setValue(5.0)
        self.radius.setSuffix(" mm")
        form.addRow("Brush radius", self.radius)
        hu = QHBoxLayout()
        self.hu_min = QDoubleSpinBox()
        self.hu_max = QDoubleSpinBox()
        for spin, value in ((self.hu_min, -100.0), (self.hu_max, 200.0)):
            spin.setRange(-3000.0, 5000.0)
            spin.setValue(value)
            hu.addWidget(spin)
        form.addRow("Threshold HU", hu)
        self._build_effect_rows(form)
        box.addLayout(form)

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
        box.addWidget(QLabel("Measures"))
        self.table = QTableWidget(0, len(MEASURE_COLUMNS))
        self.table.setHorizontalHeaderLabels(MEASURE_COLUMNS)
        for c, tip in enumerate(MEASURE_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setToolTip("double-click a lesion to go to its longest axial diameter")
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

    @staticmethod
    def _engines() -> tuple[list[str], str]:
        """The click-segment plugin's engines (its ``engine`` parameter's choices) and its default."""
        try:
            from medviewer.plugins.registry import get_manifest

            param = get_manifest("click-segment").param("engine")
            return list(param.choices) or [str(param.default)], str(param.default)
        except Exception:  # no plugin: the click tool reports it when used
            return ["classical"], "classical"

    def install(self, window) -> None:
        """Put the dock and a Segment menu (its tools on the keys of TOOL_SHORTCUTS) into ``window``."""
        layers = getattr(window, "layers_dock", None)
        if layers is not None:  # a tab beside the layers: the views keep their width
            window.addDockWidget(Qt.LeftDockWidgetArea, self.dock)
            window.tabify_docks(layers, self.dock)
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
        self.layer = self.document.add_layer(LabelLayer(name=LAYER_NAME, volume=labels, opacity=0.5))
        return self.layer

    def add_segment(self, name: str | None = None, color: tuple[int, int, int] | None = None) -> Segment | None:
        if self.ensure_layer() is None:
            return None
        label = self._next_label
        if label > 255:
            self._say("at most 255 segments")
            return None
        color = color or _rgb255(LABEL_PALETTE[(label - 1) % len(LABEL_PALETTE)])
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
        measured = next((m for m in self.measures if m.label == label), None)
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

    def _commit(self, old: np.ndarray, new: np.ndarray, label: int, description: str, **clicks) -> object:
        change = diff(old, new, label, description, **clicks)
        if change is not None:
            self.stack.push(change)
        self._set_labels(new)
        return change

    # ---- tools ------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        index = list(TOOLS).index(tool)
        if self.tool_combo.currentIndex() != index:
            self.tool_combo.setCurrentIndex(index)
        self._apply_tool()
        self.tool_changed.emit(tool)

    def _apply_tool(self) -> None:
        for view in self._slice_views():
            if self.tool != "navigate":
                view.tool = self
            elif view.tool is self:   # another tool (the measure tool) may hold the button
                view.tool = None
        if self.tool == "click":
            self.warm_engine()

    def warm_engine(self) -> None:
        """Load the chosen click-segment engine in the background now (the learned one needs
        seconds to import torch and MONAI and read its network), so that the first click is as
        quick as the next. A click made meanwhile waits for it."""
        from medviewer.plugins.registry import get_manifest

        engine = self.engine_combo.currentText() or "classical"
        name = "learned" if engine == "auto" else engine  # what there is to load
        try:
            future = self._runner().warm(get_manifest("click-segment"), {"engine": engine})
        except Exception as exc:  # no plugin, a bad parameter: the click reports it again
            self._say(f"could not load the {name} engine: {exc}")
            return
        if future is None or future.done():
            return
        self._say(f"loading the {name} engine...")
        future.add_done_callback(lambda f: self._emit_ready(name, f))

    def _emit_ready(self, engine: str, future) -> None:
        try:  # from the loading thread; the signal reaches the GUI thread queued
            self.engine_ready.emit(engine, future.exception() or future.result())
        except RuntimeError:  # the window closed meanwhile
            pass

    def _engine_ready(self, engine: str, outcome) -> None:
        if self.busy() or self.pending is not None:
            return  # a click is under way and says what it does
        if isinstance(outcome, BaseException):
            self._say(f"could not load the {engine} engine: {outcome}")
        else:
            self._say(f"the {engine} engine is ready (loaded in {outcome:.1f} s): left click inside a lesion")

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

    def _dab(self, view, point) -> None:
        """One disc of the brush at ``point`` in ``view``'s slice, painted in place (the 2D views
        redraw now; the 3D surface and the measures when the stroke ends)."""
        from medviewer.render.vtk_util import local_image

        _, _, label = self._stroke
        volume = self.layer.volume
        box, mask = disc_region(volume, point, self.radius.value(), view.normal)
        if self.tool == "eraser":
            erase(volume.array, box, mask, label)
        else:
            hu = (self.hu_min.value(), self.hu_max.value()) if self.tool == "threshold" else None
            paint(volume.array, box, mask, label, self.document.image.volume.array, hu)
        local_image(volume).Modified()
        for v in self._slice_views():
            v.request_render()

    def paint_disc(self, view_name: str, point, tool: str | None = None) -> None:
        """Paint (or erase) one brush disc at ``point`` (LPS mm) in a view's slice, as one edit."""
        view = self.window.grid.views[view_name]
        if tool is not None:
            self.set_tool(tool)
        label = self._current_or_new()
        if label is None:
            return
        self._stroke = (view, self.layer.volume.array.copy(), label)
        self._dab(view, np.asarray(point, dtype=float))
        self.release(view, 0, 0)

    # ---- click to segment -------------------------------------------------------------------
    def add_click(self, point, positive: bool = True) -> None:
        """Add a click to the current segment (a new one if none) and rerun the segmentation."""
        label = self._current_or_new()
        if label is None:
            return
        if self.pending is not None and self.pending[0] == label:
            before, shown = self.pending[1], self.pending[2]
        else:
            self._cancel_job()
            before = shown = self.clicks.get(label, Clicks())
        after = shown.add(point, positive)
        self._cancel_job(keep_pending=True)
        self.pending = (label, before, after)
        self._update_markers()
        if not after.positive:
            self._finish_click(None)  # nothing to segment yet; the click is kept (undoable)
            self._say("click inside the lesion first (left click, no shift)")
            return
        self._submit(label, after)

    def _submit(self, label: int, clicks: Clicks) -> None:
        from medviewer.plugins.api import Prompts, Request
        from medviewer.plugins.registry import get_manifest

        try:
            manifest = get_manifest("click-segment")
            request = Request(self.document.image.volume, Prompts(clicks.positive, clicks.negative),
                              params={"engine": self.engine_combo.currentText() or "classical",
                                      # the segment as it stands: the new clicks correct it near themselves
                                      "previous": self.layer.volume.array == label if self.layer is not None else ""},
                              device="auto")  # CUDA when there is a GPU, as the plugin panel does
            self.job = self._runner().submit(manifest, request)
        except Exception as exc:  # MedviewerError/PluginError: a line for the user
            self._click_failed(str(exc))
            return
        self._say("segmenting...")
        self._poller.watch(self.job)

    def _on_job_event(self, event) -> None:
        """One of the running job's events, on the GUI thread (the poller stops by itself
        before the last one)."""
        if event.kind == "progress" and event.stage:
            self._say(f"segmenting: {event.stage}")
        elif event.kind == "returned":
            self.job = None
            self._finish_click(event.result.label_map.array, event.result.note, event.result.algorithm)
        elif event.kind in ("errored", "aborted"):
            self.job = None
            if event.kind == "errored":
                self._click_failed(event.message)

    def _finish_click(self, mask, note: str = "", algorithm: str = "") -> None:
        label, before, after = self.pending
        self.pending = None
        if label not in self.segments or self.layer is None:
            return
        if mask is not None and mask.shape != self.layer.volume.shape:
            self._click_failed("the segmentation came back on another grid; ignored")
            return
        old = self.layer.volume.array
        new = old if mask is None else replace_segment(old, label, mask)
        self.clicks[label] = after
        change = self._commit(old, new, label, "click", clicks_before=before, clicks_after=after)
        self._update_markers()
        if mask is not None:
            self.segments[label] = Segment(
                label, self.segments[label].name, self.segments[label].color,
                algorithm=AlgorithmInfo("SEMIAUTOMATIC", algorithm or "medviewer click-to-segment", __version__))
            voxels = int((new == label).sum())
            self._say(f"{self.segments[label].name}: {voxels * self.layer.volume.voxel_volume_ml:.1f} mL "
                      f"({voxels:,} voxels)"
                      + (f"; {note}" if note else ""))
        self.click_result.emit(change)

    def _click_failed(self, message: str) -> None:
        self.pending = None
        self._update_markers()
        self._say(message)
        self.click_failed.emit(message)

    def _cancel_job(self, keep_pending: bool = False) -> None:
        if self.job is not None:
            self.job.cancel()
            self.job = None
            self._poller.stop()
        if not keep_pending and self.pending is not None:
            self.pending = None
            self._update_markers()

    def busy(self) -> bool:
        return self.job is not None

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

    # ---- markers ----------------------------------------------------------------------------
    def shown_clicks(self) -> Clicks:
        if self.current is None:
            return Clicks()
        if self.pending is not None and self.pending[0] == self.current:
            return self.pending[2]
        return self.clicks.get(self.current, Clicks())

    def _update_markers(self) -> None:
        from medviewer.render.markers import PointMarkers

        clicks = self.shown_clicks()
        points = list(clicks.positive) + list(clicks.negative)
        colors = [POSITIVE_RGB] * len(clicks.positive) + [NEGATIVE_RGB] * len(clicks.negative)
        for view in self._slice_views():
            markers = self._markers.get(view.orientation)
            if markers is None:
                if not points:
                    continue
                markers = self._markers[view.orientation] = PointMarkers(view)
            markers.set_points(points, colors)

    # ---- measures ---------------------------------------------------------------------------
    def _start_measures(self) -> None:
        if self._measure_task is not None and self._measure_task.running:
            self._measure_again = True
            return
        image = self.document.image
        if image is None or self.layer is None:
            return
        from medviewer.core.measures import measure_segments

        volume = image.volume
        labels = self.layer.volume.with_array(self.layer.volume.array.copy())
        task = Task(lambda progress, cancelled: measure_segments(volume, labels), "measures", self)
        task.finished.connect(self._measures_done)
        task.failed.connect(self._say)
        task.ended.connect(self._measures_ended)
        self._measure_task = task.start()

    def _measures_ended(self) -> None:
        if self._measure_again:
            self._measure_again = False
            self._start_measures()

    def _measures_done(self, measures) -> None:
        if self._measure_again:
            return  # stale: another edit came meanwhile
        self.measures = list(measures)
        self._fill_table()
        self.measures_updated.emit(self.measures)

    def _show_rulers(self, rows) -> None:
        """Each segment's longest axial diameter (RECIST) as a ruler on its slice, in a layer of
        its own ("RECIST long axes": the layers panel hides it), there while there are any."""
        rulers = [Ruler(m.long_axis_endpoints_mm[0], m.long_axis_endpoints_mm[1],
                        f"{self.segments[m.label].name}: {m.long_axis_mm:.1f} mm")
                  for m in rows if m.long_axis_mm > 0]
        layer = self.rulers_layer if self.rulers_layer in self.document.layers else None
        if layer is None:
            if rulers and self.document.image is not None:
                self.rulers_layer = self.document.add_layer(RulerLayer(name="RECIST long axes", rulers=rulers))
        elif rulers:
            self.document.update_layer(layer, rulers=rulers)
        else:
            self.document.remove_layer(layer)
            self.rulers_layer = None

    def _fill_table(self) -> None:
        rows = [m for m in self.measures if m.label in self.segments]
        self._table_labels = [m.label for m in rows]
        self._show_rulers(rows)
        self.table.setRowCount(len(rows))
        for r, m in enumerate(rows):
            size = np.asarray(m.bbox_max_mm) - np.asarray(m.bbox_min_mm)
            cells = (self.segments[m.label].name, f"{m.volume_ml:.2f}", f"{m.mean:.0f}", f"{m.minimum:.0f}",
                     f"{m.maximum:.0f}", f"{m.long_axis_mm:.1f}", f"{m.short_axis_mm:.1f}",
                     " x ".join(f"{s:.0f}" for s in size))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    pix = QPixmap(10, 10)
                    pix.fill(QColor(*self.segments[m.label].color))
                    item.setIcon(QIcon(pix))
                if c == 7:
                    item.setToolTip("LPS mm: " + ", ".join(f"{a:.1f}..{b:.1f}" for a, b in
                                                           zip(m.bbox_min_mm, m.bbox_max_mm)))
                self.table.setItem(r, c, item)
        self.totals.setText(
            f"{len(rows)} lesions: sum of the longest axial diameters {sum(m.long_axis_mm for m in rows):.1f} mm, "
            f"total volume {sum(m.volume_ml for m in rows):.2f} mL" if len(rows) > 1 else "")

    def _say(self, text: str) -> None:
        self.status.setText(text)
        label = getattr(self.window, "status_label", None)
        if label is not None:
            label.setText(text)
