"""Margin's options: grow (positive) or shrink (negative) the current segment by so many mm."""

from __future__ import annotations

from medviewer.ui.segment_tools import OptionsPanel


class MarginOptions(OptionsPanel):
    def __init__(self, editor) -> None:
        super().__init__(editor)
        editor.margin_mm = self.spin("Margin", (-50.0, 50.0), 1.0, " mm",
                                     "positive: grow the segment (into background only); negative: shrink it")
        self.apply_button("Grow / shrink", editor.apply_margin)
