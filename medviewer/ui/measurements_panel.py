"""The Measurements dock, as OHIF's measurement panel: every length, bidirectional and ellipse of
the measure tool in one table (number, label or kind, value, the slice it lies on). Double-clicking
a row (or Go to) moves the crosshair to it, so the views show its slice, and selects it, so that
Delete removes it; Label... names it; Export and Load are the Measure menu's."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView, QDockWidget, QGridLayout, QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)

from medviewer.ui.measure_tool import FIELDS, NAMES

COLUMNS = ("#", "Measurement", "Value", "Slice")   # a measurement: its label, else its kind


class MeasurementsPanel(QWidget):
    def __init__(self, tool, parent=None) -> None:
        super().__init__(parent)
        self.tool = tool
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("measurements-table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.Stretch)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.go_to(row))
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.empty = QLabel("No measurements. Measure > Length, Bidirectional or Ellipse ROI, then drag "
                            "in a 2D view.")
        self.empty.setWordWrap(True)
        buttons = QGridLayout()   # two a row: the dock stays as narrow as the plugins' beside it
        for n, (text, slot) in enumerate((("Go to", lambda: self.go_to(self.table.currentRow())),
                                          ("Delete", self.delete_current), ("Label...", self.choose_label),
                                          ("Export...", tool.choose_export), ("Load...", tool.choose_load))):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, f=slot: f())
            buttons.addWidget(button, n // 2, n % 2)
        box = QVBoxLayout(self)
        box.addWidget(self.empty)
        box.addWidget(self.table)
        box.addLayout(buttons)
        self._rows: list[tuple[str, int]] = []   # (kind, index in the tool's list) of each row
        tool.on_change(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """One row per measurement, numbered as the export numbers them."""
        from medviewer.export.measurements import placement

        image = self.tool.document.image
        self._rows = [(kind, i) for kind in FIELDS for i in range(len(self.tool.items(kind)))]
        self.table.setRowCount(len(self._rows))
        for row, (kind, i) in enumerate(self._rows):
            item = self.tool.items(kind)[i]
            points = [item.start, item.end] if kind == "length" else item.ends
            where = ""
            if image is not None:
                axis, index, plane, _ = placement(image.volume, points)
                where = plane if index is None else f"{plane} {index + 1}/{image.volume.size_xyz[axis]}"
            cells = (str(row + 1), item.label or NAMES[kind], item.caption.replace("\n", "; "), where)
            for col, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(f"{NAMES[kind]}: {item.label}" if col == 1 and item.label else text)
                self.table.setItem(row, col, cell)
        self.empty.setVisible(not self._rows)
        self.table.setVisible(bool(self._rows))
        selected = self.tool.selected
        if selected in self._rows:   # the one drawn, moved or gone to last: Delete removes it
            self.table.selectRow(self._rows.index(selected))
        else:
            self.table.clearSelection()

    def _selection_changed(self) -> None:
        """A row picked here is the selected measurement (the Delete key in a view removes it)."""
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        if len(rows) == 1 and (row := rows.pop()) < len(self._rows):
            self.tool.selected = self._rows[row]

    def go_to(self, row: int) -> None:
        if 0 <= row < len(self._rows):
            self.tool.go_to(*self._rows[row])

    def choose_label(self) -> None:
        """Ask a label for the measurement picked in the list (Label...)."""
        from PySide6.QtWidgets import QInputDialog

        row = self.table.currentRow()
        if not 0 <= row < len(self._rows):
            return
        kind, index = self._rows[row]
        text, ok = QInputDialog.getText(self, "Label the measurement",
                                        f"Label of {NAMES[kind].lower()} {row + 1}:",
                                        text=self.tool.items(kind)[index].label)
        if ok:
            self.tool.set_label(kind, index, text)

    def delete_current(self) -> None:
        row = self.table.currentRow()
        if 0 <= row < len(self._rows):
            self.tool.selected = self._rows[row]
            self.tool.delete_selected()


def add_measurements_dock(window) -> tuple[MeasurementsPanel, QDockWidget]:
    """A "Measurements" dock on the right, tabbed behind the plugins dock; it comes to the front
    when a measuring tool is turned on."""
    panel = MeasurementsPanel(window.measure_tool)
    dock = window.add_right_dock("Measurements", "measurements-dock", panel)
    for action in window.measure_tool.actions.values():
        action.toggled.connect(lambda on: on and (dock.show(), dock.raise_()))
    return panel, dock

