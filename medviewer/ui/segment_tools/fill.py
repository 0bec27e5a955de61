"""Fill between slices: no options, an Apply button and what it does."""

from __future__ import annotations

from medviewer.ui.segment_tools import OptionsPanel


class FillOptions(OptionsPanel):
    def __init__(self, editor) -> None:
        super().__init__(editor, "draw the segment on every few slices (brush, clicks), then fill the "
                                 "slices between: the outline changes smoothly from one drawn slice to the next")
        self.apply_button("Fill between slices", editor.fill_between_slices)
