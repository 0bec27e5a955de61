"""Scissors' options: what a drawn outline does (erase inside or outside, fill inside) and
through how many slices."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox

from medviewer.core.label_edit import SCISSORS_MODES
from medviewer.ui.segment_tools import OptionsPanel

SCISSORS_EXTENTS = ("all slices", "this slice")


class ScissorsOptions(OptionsPanel):
    def __init__(self, editor) -> None:
        super().__init__(editor, "drag an outline around a part of the segment in a view")
        editor.scissors_mode = QComboBox()
        editor.scissors_mode.addItems(list(SCISSORS_MODES))
        self.form.addRow("Action", editor.scissors_mode)
        editor.scissors_extent = QComboBox()
        editor.scissors_extent.addItems(list(SCISSORS_EXTENTS))
        editor.scissors_extent.setToolTip("cut through every slice along the view's axis, or only the slice drawn on")
        self.form.addRow("Through", editor.scissors_extent)
