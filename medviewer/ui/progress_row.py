"""A progress bar with a word-wrapped status line under it, for a dock's background work
(the PACS dock, the plugin panel)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget


class ProgressRow(QWidget):
    """``bar`` (0..100) above ``label`` (the status text); no margins, so it sits in a panel's
    layout like the two widgets it holds."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        layout.addWidget(self.bar)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        layout.addWidget(self.label)

    def set_fraction(self, fraction: float | None) -> None:
        """Show ``fraction`` (0..1) done; None: busy, no known fraction (a moving bar)."""
        if fraction is None:
            self.bar.setRange(0, 0)
        else:
            self.bar.setRange(0, 100)
            self.bar.setValue(int(round(100 * fraction)))

    def reset(self, value: int = 0) -> None:
        """An idle bar at ``value`` percent (0 after a cancel or an error, 100 after a result)."""
        self.bar.setRange(0, 100)
        self.bar.setValue(value)

    def say(self, text: str) -> None:
        self.label.setText(text)
