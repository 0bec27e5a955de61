"""Islands' options: the smallest piece of the current segment kept."""

from __future__ import annotations

from medviewer.ui.segment_tools import OptionsPanel


class IslandsOptions(OptionsPanel):
    def __init__(self, editor) -> None:
        super().__init__(editor)
        editor.island_ml = self.spin("Smaller than", (0.0, 10000.0), 0.0, " mL",
                                     "0: keep only the largest piece; else remove pieces smaller than this",
                                     decimals=2)
        self.apply_button("Remove islands", editor.remove_islands)
