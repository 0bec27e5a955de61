"""Smoothing's options: the kernel's size and the method."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox

from medviewer.core.label_edit import SMOOTHING_METHODS
from medviewer.ui.segment_tools import OptionsPanel


class SmoothingOptions(OptionsPanel):
    def __init__(self, editor) -> None:
        super().__init__(editor)
        editor.smooth_mm = self.spin("Size", (0.5, 50.0), 3.0, " mm", "the smoothing kernel's size")
        method = editor.smooth_method = QComboBox()
        for name, what in SMOOTHING_METHODS.items():
            method.addItem(name, name)
            method.setItemData(method.count() - 1, what, Qt.ToolTipRole)
        self.form.addRow("Method", method)
        self.apply_button("Smooth", editor.apply_smoothing)
