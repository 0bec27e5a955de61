"""Docks: the study browser (patients, studies, series) and the layers panel."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog, QHBoxLayout, QLabel, QPushButton, QSlider, QTreeWidget, QTreeWidgetItem,
    QVBoxLayout, QWidget,
)

from medviewer.core.document import BoxLayer, Document, ImageLayer, LabelLayer, Layer, RulerLayer
from medviewer.io.dicom_index import DicomIndex, SeriesEntry, StudyEntry


class StudyBrowser(QTreeWidget):
    """Patients > studies > series of a DicomIndex; double-clicking a series asks to load it."""

    series_activated = Signal(object, object)  # SeriesEntry, StudyEntry

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Study / series", "Images"])
        self.setColumnWidth(0, 220)
        self._entries: dict[int, tuple[SeriesEntry, StudyEntry]] = {}
        self.itemDoubleClicked.connect(self._activated)

    def set_index(self, index: DicomIndex) -> None:
        self.clear()
        self._entries.clear()
        for patient in index.patients:
            p = QTreeWidgetItem(self, [f"{patient.patient_name or '(no name)'}  [{patient.patient_id}]", ""])
            for study in patient.studies:
                label = " ".join(x for x in (study.study_date, study.study_description) if x) or "study"
                s = QTreeWidgetItem(p, [label, ""])
                for series in study.series:
                    text = (f"{series.series_number if series.series_number is not None else '?'}: "
                            f"{series.modality} {series.series_description}".rstrip())
                    item = QTreeWidgetItem(s, [text, str(series.slice_count)])
                    item.setData(0, Qt.UserRole, id(series))
                    if not series.is_image:
                        item.setDisabled(True)
                    self._entries[id(series)] = (series, study)
            p.setExpanded(True)
        self.expandAll()

    def series_items(self) -> list[QTreeWidgetItem]:
        items = []

        def walk(item):
            if item.data(0, Qt.UserRole) is not None:
                items.append(item)
            for i in range(item.childCount()):
                walk(item.child(i))
        for i in range(self.topLevelItemCount()):
            walk(self.topLevelItem(i))
        return items

    def entry_of(self, item: QTreeWidgetItem):
        key = item.data(0, Qt.UserRole)
        return self._entries.get(key) if key is not None else None

    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        entry = self.entry_of(item)
        if entry is not None and entry[0].is_image:
            self.series_activated.emit(*entry)


def _kind(layer: Layer) -> str:
    return {ImageLayer: "image", LabelLayer: "labels", BoxLayer: "boxes", RulerLayer: "measurements"}.get(
        type(layer), "layer")


class LayersPanel(QWidget):
    """The Document's layers, top first: visibility (check box), opacity, colour, remove.

    The views draw the topmost ticked image layer (unticking or removing it shows the one below);
    the reference image (the first) cannot be removed."""

    def __init__(self, document: Document, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        layout = QVBoxLayout(self)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Layer", "Kind"])
        self.tree.setColumnWidth(0, 170)
        layout.addWidget(self.tree)
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        row.addWidget(self.opacity)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.color_button = QPushButton("Colour...")
        self.remove_button = QPushButton("Remove")
        row.addWidget(self.color_button)
        row.addWidget(self.remove_button)
        layout.addLayout(row)
        self._items: dict[int, QTreeWidgetItem] = {}
        self._updating = False
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.currentItemChanged.connect(lambda *_: self._sync_controls())
        self.opacity.valueChanged.connect(self._opacity_changed)
        self.color_button.clicked.connect(self._choose_color)
        self.remove_button.clicked.connect(self._remove)
        document.events.connect("layer_added", self._refresh)
        document.events.connect("layer_removed", self._refresh)
        document.events.connect("layer_changed", self._changed)
        self._refresh()

    def current_layer(self) -> Layer | None:
        item = self.tree.currentItem()
        if item is None:
            return None
        lid = item.data(0, Qt.UserRole)
        return next((l for l in self.document.layers if l.id == lid), None)

    def item_of(self, layer: Layer) -> QTreeWidgetItem:
        return self._items[layer.id]

    def _refresh(self, *_args) -> None:
        self._updating = True
        current = self.current_layer()
        self.tree.blockSignals(True)
        self.tree.clear()
        self._items.clear()
        for layer in reversed(self.document.layers):
            item = QTreeWidgetItem(self.tree, [layer.name, _kind(layer)])
            item.setData(0, Qt.UserRole, layer.id)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(0, Qt.Checked if layer.visible else Qt.Unchecked)
            if not isinstance(layer, ImageLayer):
                item.setBackground(1, QColor.fromRgbF(*layer.color))
            self._items[layer.id] = item
        self.tree.blockSignals(False)
        self._updating = False
        if current is not None and current.id in self._items:
            self.tree.setCurrentItem(self._items[current.id])
        elif self._items:
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self._sync_controls()

    def _changed(self, layer: Layer, changed: set) -> None:
        """Update the layer's row in place: this may run inside the row's own itemChanged
        signal (a click on its check box), so the row must not be deleted here."""
        item = self._items.get(layer.id)
        if item is None:
            return
        self.tree.blockSignals(True)
        try:
            item.setText(0, layer.name)
            item.setCheckState(0, Qt.Checked if layer.visible else Qt.Unchecked)
            if not isinstance(layer, ImageLayer):
                item.setBackground(1, QColor.fromRgbF(*layer.color))
        finally:
            self.tree.blockSignals(False)
        if layer is self.current_layer():
            self._sync_controls()

    def _sync_controls(self) -> None:
        layer = self.current_layer()
        was_updating, self._updating = self._updating, True
        self.opacity.setEnabled(layer is not None)
        self.color_button.setEnabled(layer is not None and not isinstance(layer, ImageLayer))
        self.remove_button.setEnabled(self._removable(layer))
        if layer is not None:
            self.opacity.setValue(int(round(layer.opacity * 100)))
        self._updating = was_updating

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._updating or column != 0:
            return
        lid = item.data(0, Qt.UserRole)
        layer = next((l for l in self.document.layers if l.id == lid), None)
        if layer is not None:
            self.document.update_layer(layer, visible=item.checkState(0) == Qt.Checked)

    def _opacity_changed(self, value: int) -> None:
        layer = self.current_layer()
        if layer is not None and not self._updating:
            self.document.update_layer(layer, opacity=value / 100.0)

    def _choose_color(self) -> None:
        layer = self.current_layer()
        if layer is None:
            return
        color = QColorDialog.getColor(QColor.fromRgbF(*layer.color), self, f"Colour of {layer.name}")
        if color.isValid():
            self.set_color(layer, (color.redF(), color.greenF(), color.blueF()))

    def set_color(self, layer: Layer, rgb) -> None:
        """Colour ``layer`` (RGB 0..1). A label layer takes it for all its labels: the per-label
        colours of an imported SEG/RTSTRUCT used to win over it, so the swatch changed and the views not."""
        changes = {"color": tuple(rgb)}
        if isinstance(layer, LabelLayer):
            changes["label_colors"] = {v: tuple(rgb) for v in set(layer.label_colors) | set(layer.values())}
        self.document.update_layer(layer, **changes)

    def _removable(self, layer: Layer | None) -> bool:
        """Every layer but the reference image (the grid the others live on) can be removed."""
        return layer is not None and layer is not self.document.image

    def _remove(self) -> None:
        layer = self.current_layer()
        if self._removable(layer):
            self.document.remove_layer(layer)
