"""The plugin panel: pick a plugin, fill its parameters, Run / Cancel, watch progress; results
arrive in the Document as layers (label map -> LabelLayer, boxes -> BoxLayer, image -> ImageLayer)
or in the panel's table (scores). Errors arrive as messages (``error`` signal), never as crashes.

Plugins run through :class:`medviewer.plugins.runner.Runner` (Qt-free; its events come on runner
threads). The panel never lets a runner thread touch Qt: it polls the job's event queue
(``job.events``, a ``queue.Queue``) on the GUI thread with :class:`medviewer.ui.tasks.JobPoller`.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDockWidget, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout,
    QLabel, QLineEdit, QListWidget, QListWidgetItem, QMessageBox, QPushButton,
    QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from medviewer.core.document import Box, BoxLayer, Document, ImageLayer, LabelLayer
from medviewer.core.errors import MedviewerError
from medviewer.plugins import trust
from medviewer.plugins.api import (
    BoxesResult, ImageResult, LabelMapResult, Manifest, Prompts, Request, ScoresResult,
)
from medviewer.plugins.registry import static_availability
from medviewer.ui.progress_row import ProgressRow
from medviewer.ui.tasks import JobPoller

POLL_MS = 30
#: Kinds that take the crosshair as their click point by default.
POINT_KINDS = ("interactive", "classification")


def _rgb01(color) -> tuple[float, float, float]:
    return tuple(float(c) / 255.0 for c in color)  # type: ignore[return-value]


def confirm_trust(parent, folder: str) -> bool:
    """Ask, in plain words, before trusting a bundle folder (bundles run code)."""
    answer = QMessageBox.warning(
        parent, "Trust this bundle folder?",
        f"A MONAI bundle RUNS THE PYTHON CODE written in its configuration files, with your "
        f"permissions.\n\nTrust {folder} and run its code from now on?\n\nOnly do this for "
        f"bundles from a source you trust.",
        QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes


class PluginPanel(QWidget):
    """Plugins with their availability; a form from the selected manifest's parameters;
    Run, Cancel, progress; a table for scores."""

    error = Signal(str)              # a message for the user
    layer_added = Signal(object)     # a result layer put into the Document
    scores_shown = Signal(object)    # a ScoresResult shown in the table
    run_ended = Signal(str)          # returned, errored or aborted

    def __init__(self, document: Document, runner=None, *, discover: bool = True,
                 auto_warm: bool = True, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        if runner is None:
            from medviewer.plugins.runner import Runner

            runner = Runner()
        self.runner = runner
        self.auto_warm = auto_warm
        self.confirm: Callable[[QWidget, str], bool] = confirm_trust
        self.manifests: dict[str, Manifest] = {}
        self.problems: list[str] = []
        self.job = None
        self._job_image: ImageLayer | None = None
        self._editors: dict[str, Callable[[], object]] = {}
        self.messages: list[str] = []

        layout = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setMaximumHeight(150)
        self.list.setWordWrap(True)
        self.setMinimumWidth(230)   # narrow: the views get the room (its rows wrap)
        layout.addWidget(self.list)
        self.description = QLabel("")
        self.description.setWordWrap(True)
        layout.addWidget(self.description)
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.form_host)
        self.use_cursor = QCheckBox("Use the crosshair as the click point")
        layout.addWidget(self.use_cursor)

        self.trust_label = QLabel("")
        self.trust_label.setWordWrap(True)
        self.trust_label.setStyleSheet("color: #b00000")
        self.trust_button = QPushButton("Trust this folder...")
        self.trust_button.clicked.connect(self.trust_folder)
        layout.addWidget(self.trust_label)
        layout.addWidget(self.trust_button)

        row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.progress_row = ProgressRow()
        self.progress, self.status = self.progress_row.bar, self.progress_row.label
        layout.addWidget(self.progress_row)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Class", "Score"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMaximumHeight(160)
        layout.addWidget(self.table)
        layout.addStretch(1)

        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.list.currentItemChanged.connect(lambda *_: self._selected())
        self._poller = JobPoller(self._on_event, self, POLL_MS)
        if discover:
            self.refresh()
        self._update_buttons()
        self.table.hide()
        self._update_trust()   # no plugin picked yet: no trust button

    # ---- plugins -------------------------------------------------------------------------------
    def refresh(self) -> None:
        """(Re)discover the installed plugins."""
        from medviewer.plugins.registry import discover

        found, problems = discover()
        self.problems = [f"{p.source}: {p.message}" for p in problems]
        for manifest in found.values():
            self.add_manifest(manifest)
        if self.problems:
            self.status.setText(f"{len(self.problems)} plugin(s) could not be read: " + "; ".join(self.problems))

    def add_manifest(self, manifest: Manifest) -> QListWidgetItem:
        """Offer ``manifest`` in the list (replacing one with the same id)."""
        self.manifests[manifest.id] = manifest
        avail = static_availability(manifest)
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.UserRole) == manifest.id:
                self.list.takeItem(i)
                break
        item = QListWidgetItem(f"{manifest.title}\n  {avail.describe()}")
        item.setData(Qt.UserRole, manifest.id)
        item.setToolTip(manifest.description or manifest.title)
        if not avail:
            item.setForeground(Qt.gray)
        self.list.addItem(item)
        return item

    def select(self, plugin_id: str) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.UserRole) == plugin_id:
                self.list.setCurrentRow(i)
                return
        raise KeyError(plugin_id)

    def current_manifest(self) -> Manifest | None:
        item = self.list.currentItem()
        return self.manifests.get(item.data(Qt.UserRole)) if item is not None else None

    def _selected(self) -> None:
        manifest = self.current_manifest()
        self.clear_results()   # another plugin's scores and status are not this one's
        self._build_form(manifest)
        if manifest is None:
            self.description.setText("")
            return
        avail = static_availability(manifest)
        self.description.setText(f"{manifest.description or manifest.title}\n({avail.describe()})")
        self.use_cursor.setChecked(manifest.kind in POINT_KINDS)
        self._update_trust()
        self._update_buttons()
        if self.auto_warm and avail and self._blocked_folder() is None:
            try:
                # A process plugin's child imports torch/MONAI now, not at Run; a thread plugin
                # loads its weights in the background (click-segment's learned engine).
                self.runner.warm(manifest, self.params())
            except Exception as exc:  # a warm-up failure shows again, as a message, at Run
                self.status.setText(f"could not start {manifest.id} ahead of time: {exc}")

    # ---- the parameter form --------------------------------------------------------------------
    def _build_form(self, manifest: Manifest | None) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self._editors.clear()
        if manifest is None:
            return
        for p in manifest.params:
            if p.internal:
                continue
            editor, getter = self._editor(p)
            editor.setToolTip(f"{p.help} ({p.name})" if p.help else p.name)
            label = QLabel(p.display_label + ("*" if p.required else ""))
            label.setToolTip(editor.toolTip())
            self.form.addRow(label, editor)
            self._editors[p.name] = getter

    def _editor(self, p):
        if p.type == "bool":
            w = QCheckBox()
            w.setChecked(bool(p.default))
            return w, w.isChecked
        unit = f" {p.display_unit}" if p.display_unit else ""
        if p.type == "int":
            w = QSpinBox()
            w.setRange(-1_000_000, 1_000_000)
            w.setValue(int(p.default or 0))
            w.setSuffix(unit)
            return w, w.value
        if p.type == "float":
            w = QDoubleSpinBox()
            w.setRange(-1e6, 1e6)
            w.setDecimals(p.decimals)
            w.setSingleStep(10.0 ** -(p.decimals - 1) if p.decimals > 1 else 1.0)
            w.setValue(float(p.default or 0.0))
            w.setSuffix(unit)
            return w, w.value
        if p.choices or p.type == "choice":
            w = QComboBox()
            w.addItems(list(p.choices))
            if p.default is not None:
                w.setCurrentText(str(p.default))
            return w, w.currentText
        line = QLineEdit("" if p.default is None else str(p.default))
        if p.type != "path":
            return line, line.text
        host = QWidget()
        row = QHBoxLayout(host)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(line)
        browse = QPushButton("...")
        browse.setMaximumWidth(30)
        row.addWidget(browse)

        def choose():
            folder = QFileDialog.getExistingDirectory(self, f"Choose {p.name}")
            if folder:
                line.setText(folder)
        browse.clicked.connect(choose)
        line.textChanged.connect(lambda _t: self._update_trust())
        host.line = line  # for tests and for set_param
        return host, lambda: line.text().strip()

    def set_param(self, name: str, value) -> None:
        """Set a parameter's editor (tests, scripting)."""
        index = list(self._editors).index(name)
        widget = self.form.itemAt(index, QFormLayout.FieldRole).widget()
        widget = getattr(widget, "line", widget)
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.setValue(value)
        elif isinstance(widget, QComboBox):
            widget.setCurrentText(str(value))
        else:
            widget.setText(str(value))

    def params(self) -> dict:
        values = {}
        for name, get in self._editors.items():
            value = get()
            if value == "":
                continue   # an empty text field: the manifest's default (or 'required')
            values[name] = value
        manifest = self.current_manifest()
        if manifest is not None:
            for p in manifest.params:
                if p.type == "path" and values.get(p.name):
                    values[p.name] = os.path.abspath(os.path.expanduser(values[p.name]))
        return values

    # ---- trust (bundles run code) --------------------------------------------------------------
    def _blocked_folder(self) -> str | None:
        """The untrusted code folder the selected plugin would run, or None."""
        manifest = self.current_manifest()
        if manifest is None or not manifest.executes_untrusted_code:
            return None
        folder = self.params().get("bundle")
        if folder and os.path.isdir(folder) and not trust.is_trusted(folder):
            return folder
        return None

    def _update_trust(self) -> None:
        folder = self._blocked_folder()
        self.trust_label.setVisible(folder is not None)
        self.trust_button.setVisible(folder is not None)
        if folder is not None:
            self.trust_label.setText(trust.untrusted_message(folder))
        self._update_buttons()

    def trust_folder(self) -> bool:
        folder = self._blocked_folder()
        if folder is None:
            return True
        if not self.confirm(self, folder):
            self.status.setText("Not trusted: the bundle will not be run.")
            return False
        stored = trust.set_trusted(folder, True)
        self.status.setText(f"Trusted {stored}")
        self._update_trust()
        return True

    # ---- running -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.job is not None and not self.job.done

    def _update_buttons(self) -> None:
        manifest = self.current_manifest()
        ok = manifest is not None and bool(static_availability(manifest))
        self.run_button.setEnabled(ok and not self.running and self._blocked_folder() is None)
        self.cancel_button.setEnabled(self.running)

    def run(self):
        """Start the selected plugin on the open image; returns the Job, or None (message given)."""
        manifest = self.current_manifest()
        if manifest is None:
            self._error("choose a plugin first")
            return None
        if self.running:
            self._error("a plugin is already running (cancel it first)")
            return None
        image = self.document.image
        if image is None:
            self._error("open an image before running a plugin")
            return None
        folder = self._blocked_folder()
        if folder is not None:
            self._update_trust()
            self._error(trust.untrusted_message(folder))
            return None
        prompts = Prompts()
        if self.use_cursor.isChecked():
            prompts = Prompts(positive=(tuple(self.document.cursor),))
        # The plugin sees the image the views draw (a denoised layer on top, say) where it lies
        # on the reference grid, which its label maps must share; else the reference image.
        source = self.document.displayed_image
        if source is None or not source.volume.same_grid(image.volume):
            source = image
        try:
            request = Request(source.volume, prompts, self.params(), "auto")
            self.job = self.runner.submit(manifest, request)
        except MedviewerError as exc:
            self._error(str(exc))
            return None
        self._job_image = image
        self.progress_row.reset()
        self.status.setText(f"{manifest.title}: starting on {source.name!r}...")
        self._update_buttons()
        self._poller.watch(self.job)
        return self.job

    def cancel(self) -> None:
        if self.running:
            self.job.cancel()
            self.status.setText("Cancelling...")

    def shutdown(self) -> None:
        """Cancel the run and end the warm child processes (window closing)."""
        self._poller.stop()
        self.runner.shutdown()

    def _on_event(self, event) -> None:
        title = self.manifests.get(event.plugin_id)
        title = title.title if title else event.plugin_id
        if event.kind == "progress":
            self.progress_row.set_fraction(event.fraction)   # None: busy
            self.status.setText(f"{title}: {event.stage}")
            return
        if event.kind == "started":
            self.status.setText(f"{title}: running")
            return
        self.progress_row.reset(100 if event.kind == "returned" else 0)
        if event.kind == "returned":
            try:
                summary = self._accept(event.result)
                self.status.setText(f"{title}: {summary}")
            except MedviewerError as exc:
                self._error(str(exc))
        elif event.kind == "errored":
            self.status.setText(f"{title}: failed")
            self._error(event.message or f"plugin {event.plugin_id} failed")
        else:
            self.status.setText(f"{title}: cancelled")
        self._update_buttons()
        self.run_ended.emit(event.kind)

    def _error(self, message: str) -> None:
        self.messages.append(message)
        self.status.setText(message)
        self.error.emit(message)

    # ---- results -------------------------------------------------------------------------------
    def _accept(self, result) -> str:
        manifest = self.current_manifest() if self.job is None else self.job.manifest
        name = manifest.title.split(" (")[0] if manifest else "result"
        image = self.document.image
        if isinstance(result, ScoresResult):
            self.show_scores(result)
            best = max(result.scores.items(), key=lambda kv: kv[1]) if result.scores else ("-", 0.0)
            return f"highest score: {best[0]} {best[1]:.2f}" + (f" ({result.note})" if result.note else "")
        if image is None or image is not self._job_image:
            raise MedviewerError("the image changed while the plugin ran; its result was not added")
        if isinstance(result, LabelMapResult):
            labels = result.label_map.with_array(np.array(result.label_map.array))
            layer = LabelLayer(name=name, volume=labels,
                               label_names={l.value: l.name for l in result.labels},
                               label_colors={l.value: _rgb01(l.color) for l in result.labels})
            if result.labels:
                layer.color = _rgb01(result.labels[0].color)
            self.document.add_layer(layer)
            self.layer_added.emit(layer)
            counts = {int(v): int(n) for v, n in zip(*np.unique(labels.array, return_counts=True)) if v}
            parts = [f"{layer.name_of(v)} {n * labels.voxel_volume_ml:.1f} mL" for v, n in counts.items()]
            return ("label layer added (" + ("; ".join(parts) or "empty") + ")"
                    + (f"; {result.note}" if result.note else ""))
        if isinstance(result, BoxesResult):
            names = {l.value: l.name for l in result.labels}
            colors = [l.color for l in result.labels]
            boxes = [Box(b.lower_mm, b.upper_mm, label=b.name or names.get(b.label, str(b.label)),
                         score=b.score) for b in result.boxes]
            layer = BoxLayer(name=name, boxes=boxes)
            if colors:
                layer.color = _rgb01(colors[0])
            self.document.add_layer(layer)
            self.layer_added.emit(layer)
            return f"{len(boxes)} box(es) added"
        if isinstance(result, ImageResult):
            volume = result.image.with_array(np.array(result.image.array))
            shown = self.document.displayed_image or image   # keep the window/level in use
            layer = ImageLayer(name=f"{name}: {result.description}" if result.description else name,
                               volume=volume, window=shown.window, level=shown.level)
            self.document.add_layer(layer)
            self.layer_added.emit(layer)
            return (f"image layer {layer.name!r} added and shown (untick it in Layers to see "
                    "the image below)")
        raise MedviewerError(f"cannot show a {type(result).__name__}")

    def clear_results(self) -> None:
        """Empty the scores table (hidden), the status line and the bar (not while a run goes on)."""
        self.table.setRowCount(0)
        self.table.hide()
        if not self.running:
            self.status.setText("")
            self.progress_row.reset()

    def show_scores(self, result: ScoresResult) -> None:
        rows = sorted(result.scores.items(), key=lambda kv: -kv[1])
        self.table.setRowCount(len(rows))
        for r, (cls, score) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(cls))
            self.table.setItem(r, 1, QTableWidgetItem(f"{score:.3f}"))
        self.table.show()
        self.scores_shown.emit(result)


def add_plugin_dock(window, runner=None, *, discover: bool = True) -> tuple[PluginPanel, QDockWidget]:
    """A "Plugins" dock on the right of ``window`` (a MainWindow); errors go to its _fail."""
    panel = PluginPanel(window.document, runner, discover=discover)
    panel.error.connect(window._fail)
    return panel, window.add_right_dock("Plugins", "plugins-dock", panel)
