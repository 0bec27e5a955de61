"""DICOM SEG / RTSTRUCT in the window: offer the ones that reference the open series (a bar above
the views: "2 segmentations reference this series [choice] Load"), load them as label layers with
their segment names and colours, and File > Export segmentation (SEG, RTSTRUCT, NIfTI, NRRD,
report CSV/JSON) through :func:`medviewer.export.dispatch.write_export`.

Export chooses explicitly: its dialog lists what can be exported, the segments being edited (the
user's own) first and chosen by default, then each loaded label layer by name and source (an
imported RTSTRUCT, a plugin's result); it opens in the study's folder with a name made of the
patient, series and segment names. Taking "the current layer" instead wrote an expert's RTSTRUCT,
just loaded to compare with, as the user's SEG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
    QListWidget, QListWidgetItem, QMessageBox, QPushButton, QToolBar, QVBoxLayout,
)

from medviewer.core.document import LabelLayer
from medviewer.core.errors import MedviewerError
from medviewer.ui.tasks import Task

#: (file dialog filter, export format, suffix)
EXPORT_FILTERS = (
    ("DICOM SEG (*.dcm)", "seg", ".dcm"),
    ("DICOM RTSTRUCT (*.dcm)", "rtstruct", ".dcm"),
    ("DICOM SR of the lesion measures, with its SEG (*.dcm)", "sr", ".dcm"),
    ("NIfTI label map (*.nii.gz)", "nifti", ".nii.gz"),
    ("NRRD label map (*.nrrd)", "nrrd", ".nrrd"),
    ("Lesion report CSV (*.csv)", "csv", ".csv"),
    ("Lesion report JSON (*.json)", "json", ".json"),
)


def _rgb01(color) -> tuple[float, float, float]:
    return tuple(float(c) / 255.0 for c in color)  # type: ignore[return-value]


def label_layer_of(labels, segments, name: str) -> LabelLayer:
    """A Document LabelLayer of a label Volume whose segments give its names and colours."""
    layer = LabelLayer(name=name, volume=labels,
                       label_names={s.label: s.name for s in segments},
                       label_colors={s.label: _rgb01(s.color) for s in segments})
    if segments:
        layer.color = _rgb01(segments[0].color)
    return layer


def label_layer_from_annotation(read, name: str | None = None) -> LabelLayer:
    """A Document LabelLayer from :func:`medviewer.io.annotations.read_annotation`'s answer."""
    return label_layer_of(read.labels, read.segments, name or os.path.basename(read.source).rsplit(".", 1)[0])


def segments_of(layer: LabelLayer):
    """Segments (label, name, colour) for the values present in ``layer``."""
    from medviewer.core.segments import Segment

    values = layer.values()

    def name(v):
        if v in layer.label_names:
            return layer.label_names[v]
        return layer.name if len(values) == 1 else f"{layer.name} {v}"
    return [Segment(v, name(v), tuple(int(round(255 * c)) for c in layer.color_of(v))) for v in values]


class AnnotationsBar(QToolBar):
    """Offers the SEG/RTSTRUCT objects that reference the open series; Load reads one."""

    loaded = Signal(object)     # the LabelLayer added
    offered = Signal(list)      # the AnnotationRefs found (possibly empty)

    def __init__(self, window) -> None:
        super().__init__("Segmentations found", window)
        self.window = window
        self.setObjectName("annotations-bar")
        self.setMovable(False)
        self.refs: list = []
        self.label = QLabel("")
        self.combo = QComboBox()
        self.load_button = QPushButton("Load")
        self.dismiss_button = QPushButton("Dismiss")
        self.addWidget(self.label)
        self.addWidget(self.combo)
        self.addWidget(self.load_button)
        self.addWidget(self.dismiss_button)
        self.load_button.clicked.connect(lambda: self.load(self.combo.currentIndex()))
        self.dismiss_button.clicked.connect(self.hide)
        self._task: Task | None = None
        self.hide()

    def offer(self, index, volume) -> Task | None:
        """Look (in the background) for SEG/RTSTRUCT in ``index`` referencing ``volume``."""
        self.hide()
        self.refs = []
        if index is None or not volume.meta.get("series_instance_uid"):
            return None
        from medviewer.io.annotations import find_annotations

        task = Task(lambda progress, cancelled: find_annotations(index, volume), "annotations", self)
        task.finished.connect(lambda refs, v=volume: self._found(refs, v))
        task.failed.connect(lambda message: self.window.status_label.setText(message))
        self._task = task
        return task.start()

    def _found(self, refs, volume) -> None:
        image = self.window.document.image
        if image is None or image.volume is not volume:
            return   # another image was opened meanwhile
        self.refs = list(refs)
        self.combo.clear()
        for ref in self.refs:
            text = f"{ref.kind}: {ref.series_description or os.path.basename(ref.path)}"
            if ref.matched_by == "frame of reference":
                text += " (same frame of reference)"
            self.combo.addItem(text)
        n = len(self.refs)
        if n:
            self.label.setText(f" {n} segmentation{'s reference' if n != 1 else ' references'} this series: ")
            self.show()
        self.offered.emit(self.refs)

    def load(self, i: int = 0) -> Task | None:
        """Read ``refs[i]`` onto the open image in the background; adds its label layer."""
        if not 0 <= i < len(self.refs):
            return None
        ref = self.refs[i]
        image = self.window.document.image
        if image is None:
            self.window._fail("open an image before loading a segmentation")
            return None
        volume = image.volume
        from medviewer.io.annotations import read_annotation

        task = Task(lambda progress, cancelled: read_annotation(ref.path, volume), "annotation", self)

        def done(read):
            if self.window.document.image is not image:
                return
            try:
                layer = self.window.document.add_layer(
                    label_layer_from_annotation(read, ref.series_description or None))
            except MedviewerError as exc:
                self.window._fail(str(exc))
                return
            self.window.bring_into_view(layer)
            note = f" ({'; '.join(read.warnings)})" if read.warnings else ""
            self.window.status_label.setText(f"Loaded {ref.kind} {layer.name}{note}")
            self.hide()
            self.loaded.emit(layer)
        task.finished.connect(done)
        task.failed.connect(self.window._fail)
        self._task = task
        return task.start()


def export_layer(window, layer: LabelLayer, path: str, fmt: str, *, force: bool = False) -> list[str]:
    """Write ``layer`` on the open image as ``fmt``; refuses to replace ``path`` unless ``force``."""
    from medviewer.core.atomic import check_target
    from medviewer.export.dispatch import write_export

    image = window.document.image
    if image is None:
        raise MedviewerError("open an image first")
    check_target(path, force)
    editor = getattr(window, "segment_editor", None)
    ours = editor is not None and layer is editor.layer
    # The editor's own segments carry how each was made (clicks: semi-automatic; brush: manual).
    segments = (editor.segments_for_export() or (None, []))[1] if ours else segments_of(layer)
    if not segments:
        raise MedviewerError(f"the layer {layer.name!r} is empty")
    lines = write_export(fmt, image.volume, layer.volume, segments, path, force=force,
                         provenance={"segmentation_file": layer.name, "notes": []})
    if ours:
        editor.mark_exported()
    return lines


@dataclass(frozen=True)
class ExportChoice:
    """One thing File > Export segmentation can write: a label layer, how the dialog names it,
    its segments' names (for the file name), and whether it is the segment editor's own."""

    layer: LabelLayer
    text: str
    segment_names: tuple[str, ...]
    ours: bool


def layer_source(layer: LabelLayer) -> str:
    """Where a label layer came from, in words: "RTSTRUCT RS.dcm", "label map x.nii.gz", "made here"."""
    meta = layer.volume.meta
    source = os.path.basename(str(meta.get("source_file") or ""))
    kind = meta.get("annotation_kind") or ("label map" if source else "")
    return f"{kind} {source}".strip() if source else "made in this session"


def export_choices(window) -> list[ExportChoice]:
    """What can be exported: the segments being edited first (when they hold voxels), then every
    other label layer, newest first."""
    choices = []
    editor = getattr(window, "segment_editor", None)
    mine = editor.segments_for_export() if editor is not None else None
    if mine is not None:
        names = tuple(s.name for s in mine[1])
        choices.append(ExportChoice(editor.layer, f"Your segments (being edited): {', '.join(names)}", names, True))
    for layer in reversed(window.document.layers_of(LabelLayer)):
        if editor is not None and layer is editor.layer:
            continue
        names = tuple(s.name for s in segments_of(layer))
        choices.append(ExportChoice(layer, f"{layer.name} ({layer_source(layer)})", names, False))
    return choices


def study_folder(window) -> str:
    """The open image's study folder: the folder holding all of its study's series (the image's
    and its SEG/RTSTRUCT) in the index of what was opened, else the image's own folder."""
    from medviewer.export.dispatch import default_export_folder

    image = window.document.image
    meta = image.volume.meta if image is not None else {}
    index = getattr(window, "index", None)
    uid = meta.get("study_instance_uid")
    if index is not None and uid:
        folders = [s.folder for p in index.patients for st in p.studies if st.study_instance_uid == uid
                   for s in st.series]
        if folders:
            return default_export_folder(meta, os.path.commonpath(folders))
    return default_export_folder(meta)


class ExportDialog(QDialog):
    """File > Export segmentation: what (a list; the user's segments first and chosen), the
    format, and the file (in the study's folder, named after patient, series and segments)."""

    def __init__(self, window, choices: list[ExportChoice], chosen: LabelLayer | None = None) -> None:
        super().__init__(window)
        self.setWindowTitle("Export segmentation")
        self.choices = choices
        image = window.document.image
        self._meta = image.volume.meta if image is not None else {}
        self.folder = study_folder(window)
        self.list = QListWidget()
        for choice in choices:
            self.list.addItem(QListWidgetItem(choice.text))
        self.format = QComboBox()
        for text, fmt, _ in EXPORT_FILTERS:
            self.format.addItem(text, fmt)
        self.path = QLineEdit()
        self.path.setMinimumWidth(420)
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("File", row)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.button(QDialogButtonBox.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("What to export:"))
        layout.addWidget(self.list)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self._named = ""   # the name last filled in: replaced on a new choice unless the user typed another
        self.list.currentRowChanged.connect(lambda _row: self._fill_name())
        self.format.currentIndexChanged.connect(lambda _i: self._fill_name())
        row_of = next((i for i, c in enumerate(choices) if c.layer is chosen), 0)
        self.list.setCurrentRow(row_of)

    def choice(self) -> ExportChoice:
        return self.choices[max(0, self.list.currentRow())]

    def fmt(self) -> str:
        return self.format.currentData()

    def _default_path(self) -> str:
        from medviewer.export.dispatch import default_export_name

        return os.path.join(self.folder, default_export_name(self._meta, self.choice().segment_names, self.fmt()))

    def _fill_name(self) -> None:
        current = self.path.text()
        if not current or current == self._named:
            self._named = self._default_path()
            self.path.setText(self._named)
        else:   # a name of the user's own: only its suffix follows the format
            self.path.setText(_with_suffix(current, self.fmt()))

    def _browse(self) -> None:
        flt = next(f for f, fmt, _ in EXPORT_FILTERS if fmt == self.fmt())
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text() or self.folder, flt)
        if path:
            self.path.setText(_with_suffix(path, self.fmt()))

    def target(self) -> str:
        """The file to write (the format's suffix added when missing)."""
        return _with_suffix(os.path.expanduser(self.path.text().strip()), self.fmt())


def _with_suffix(path: str, fmt: str) -> str:
    """``path`` ending in ``fmt``'s suffix: a suffix of another format swapped, a missing one added."""
    from medviewer.export.dispatch import SUFFIXES, suffix_of

    if not path:
        return path
    wanted = suffix_of(fmt)
    if path.lower().endswith(wanted):
        return path
    for suffix, _ in SUFFIXES:
        if path.lower().endswith(suffix):
            return path[:-len(suffix)] + wanted
    return path + wanted


def choose_export(window, layer: LabelLayer | None = None) -> None:
    """File > Export segmentation...: the dialog, with ``layer`` chosen (default: the user's own
    segments when there are any), then the export; the status line says what was written where."""
    choices = export_choices(window)
    if not choices:
        window._fail("there is no segmentation (label layer) to export")
        return
    dialog = ExportDialog(window, choices, layer)
    try:
        if dialog.exec() != QDialog.Accepted:
            return
        choice, fmt, path = dialog.choice(), dialog.fmt(), dialog.target()
    finally:
        dialog.deleteLater()
    if not path:
        window._fail("no file name given: nothing exported")
        return
    force = False
    if os.path.exists(path):
        if window.quiet or QMessageBox.question(window, "Replace?", f"{path} exists. Replace it?") != QMessageBox.Yes:
            window._fail(f"{path}: exists; not replaced")
            return
        force = True
    try:
        lines = export_layer(window, choice.layer, path, fmt, force=force)
    except MedviewerError as exc:
        window._fail(str(exc))
        return
    what = "your segments" if choice.ours else choice.layer.name
    window.status_label.setText(f"Exported {what} to {path}" + (f" ({lines[0].strip()})" if lines else ""))


def add_annotations_bar(window) -> AnnotationsBar:
    bar = AnnotationsBar(window)
    window.addToolBarBreak(Qt.TopToolBarArea)
    window.addToolBar(Qt.TopToolBarArea, bar)
    bar.hide()
    return bar
