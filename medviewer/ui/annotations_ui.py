"""DICOM SEG / RTSTRUCT in the window: offer the ones that reference the open series (a bar above
the views: "2 segmentations reference this series [choice] Load"), load them as label layers with
their segment names and colours, and File > Export segmentation (SEG, RTSTRUCT, NIfTI, NRRD,
report CSV/JSON) through :func:`medviewer.commands.export.write_export`.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QLabel, QPushButton, QToolBar

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
    from medviewer.commands.export import write_export
    from medviewer.core.atomic import check_target

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


def choose_export(window, layer: LabelLayer | None = None) -> None:
    """File > Export segmentation...: ``layer``, else the current (else the top) label layer, to a
    chosen file."""
    layers = window.document.layers_of(LabelLayer)
    if not layers:
        window._fail("there is no segmentation (label layer) to export")
        return
    if layer is None:
        current = window.layers.current_layer()
        layer = current if isinstance(current, LabelLayer) else layers[-1]
    filters = ";;".join(f for f, _, _ in EXPORT_FILTERS)
    path, chosen = QFileDialog.getSaveFileName(window, f"Export {layer.name}", layer.name + ".dcm", filters)
    if not path:
        return
    fmt, suffix = next(((f, s) for flt, f, s in EXPORT_FILTERS if flt == chosen), ("seg", ".dcm"))
    if not path.lower().endswith(suffix):
        path += suffix
        if os.path.exists(path):   # the dialog asked about the name without the suffix
            from PySide6.QtWidgets import QMessageBox

            if QMessageBox.question(window, "Replace?", f"{path} exists. Replace it?") != QMessageBox.Yes:
                return
    try:
        lines = export_layer(window, layer, path, fmt, force=os.path.exists(path))   # the dialog asked
    except MedviewerError as exc:
        window._fail(str(exc))
        return
    window.status_label.setText(f"Exported {layer.name} to {path}" + (f" ({lines[0].strip()})" if lines else ""))


def add_annotations_bar(window) -> AnnotationsBar:
    bar = AnnotationsBar(window)
    window.addToolBarBreak(Qt.TopToolBarArea)
    window.addToolBar(Qt.TopToolBarArea, bar)
    bar.hide()
    return bar
