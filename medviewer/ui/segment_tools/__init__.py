"""The segment editor's tools and effects, each with its own options panel in a module of its
own (as 3D Slicer's Segment Editor gives each effect its class and panel): the editor shows the
panel of the one in use only.

Tools take the left button of the 2D views while picked (click segment, brush, eraser, threshold
brush, scissors); effects act on the current segment at their Apply button (islands, margin,
smoothing, fill between slices) and leave the mouse to navigating. A panel is a QWidget made from
the editor; it puts the controls the editor's code reads onto the editor (``editor.radius``,
``editor.engine_combo``, ...), where scripts and tests find them as before.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QLabel, QPushButton, QWidget

#: the tools that take the views' left button, in the editor's list (keys: set_tool)
TOOLS = {"navigate": "Navigate", "click": "Click segment", "brush": "Brush", "eraser": "Eraser",
         "threshold": "Threshold brush", "scissors": "Scissors"}
#: the effects on the current segment, after the tools in the list
EFFECTS = {"islands": "Islands", "margin": "Margin", "smoothing": "Smoothing", "fill": "Fill between slices"}


class OptionsPanel(QWidget):
    """A panel: a form without margins, and helpers for its rows."""

    def __init__(self, editor, hint: str = "") -> None:
        super().__init__()
        self.editor = editor
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        if hint:
            label = QLabel(hint)
            label.setWordWrap(True)
            self.form.addRow(label)

    def spin(self, label: str, limits, value: float, suffix: str, tip: str = "",
             decimals: int = 1) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(*limits)
        spin.setDecimals(decimals)
        spin.setValue(value)
        spin.setSuffix(suffix)
        spin.setToolTip(tip)
        self.form.addRow(label, spin)
        return spin

    def apply_button(self, text: str, slot, tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(lambda _=False: slot())
        self.form.addRow(button)
        return button


def options_panels(editor) -> dict[str, QWidget]:
    """Each tool's and effect's panel, by key (tools sharing options share a panel)."""
    from medviewer.ui.segment_tools.brush import BrushOptions
    from medviewer.ui.segment_tools.click import ClickOptions
    from medviewer.ui.segment_tools.fill import FillOptions
    from medviewer.ui.segment_tools.islands import IslandsOptions
    from medviewer.ui.segment_tools.margin import MarginOptions
    from medviewer.ui.segment_tools.scissors import ScissorsOptions
    from medviewer.ui.segment_tools.smoothing import SmoothingOptions

    brush = BrushOptions(editor)
    return {
        "navigate": OptionsPanel(editor, "left click moves the crosshair; pick a tool to edit the "
                                         "current segment (keys 1 to 5, Esc: back here)"),
        "click": ClickOptions(editor), "brush": brush, "eraser": brush, "threshold": brush,
        "scissors": ScissorsOptions(editor), "islands": IslandsOptions(editor),
        "margin": MarginOptions(editor), "smoothing": SmoothingOptions(editor), "fill": FillOptions(editor),
    }
