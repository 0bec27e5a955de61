"""Recovery copies of the segment editor's segments (see :mod:`medviewer.io.recovery`): saved a
moment after each edit in a background thread, offered back when the same image opens again,
removed once exported or discarded.

A mixin of :class:`~medviewer.ui.segment_editor.SegmentEditor` (its segments, label layer, undo
stack and status line).
"""

from __future__ import annotations

import sys
import threading

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from medviewer.core.errors import MedviewerError
from medviewer.core.label_edit import Clicks
from medviewer.core.segments import Segment

RECOVERY_DELAY_MS = 1500


class SegmentRecovery:
    """Keeps, offers back and forgets the recovery copy of the open image's segments."""

    def _init_recovery(self) -> None:
        # a recovery copy on disk a moment after the last edit (medviewer.io.recovery)
        self._recovery_timer = QTimer(self)
        self._recovery_timer.setSingleShot(True)
        self._recovery_timer.setInterval(RECOVERY_DELAY_MS)
        self._recovery_timer.timeout.connect(self._keep_recovery_copy)
        self._recovery_lock = threading.Lock()
        # the folder of the last recovery copy; a plain dict, as the saving thread writes it and
        # must not touch the widget (which may be gone by then)
        self._recovery_state: dict = {"saved": None, "generation": 0}

    def _keep_recovery_copy(self) -> None:
        """Save the segments for recovery after a crash, in a background thread."""
        from medviewer.io.recovery import save_recovery

        image = self.document.image
        if self.layer is None or image is None or not self._unexported:
            return
        # the array itself, not a copy (copying a 512 x 512 x 300 map stalls the window 0.2 s):
        # edits replace it, but for a brush stroke painting it meanwhile, which the next copy shows
        volume, labels, segments = image.volume, self.layer.volume.array, list(self.segments.values())
        lock, state = self._recovery_lock, self._recovery_state
        generation = state["generation"]

        def save():
            with lock:
                if state["generation"] != generation:
                    return   # exported or discarded meanwhile: this copy is not wanted
                try:
                    state["saved"] = save_recovery(volume, labels, segments)
                except Exception as exc:   # a full disk must not stop the editing
                    state["saved"] = None
                    print(f"medviewer: no recovery copy of the segments ({exc})", file=sys.stderr)
        threading.Thread(target=save, name="medviewer-recovery", daemon=True).start()

    def forget_recovery_copy(self) -> None:
        """The segments are exported, or the user let them go: no recovery copy any more."""
        from medviewer.io.recovery import discard_recovery

        self._recovery_timer.stop()
        image = self.document.image
        if image is not None:
            with self._recovery_lock:
                self._recovery_state["generation"] += 1
                discard_recovery(image.volume)
                self._recovery_state["saved"] = None

    def offer_recovery(self) -> None:
        """On opening an image: if segments of it were kept and never exported (the window closed
        without saving), offer them back (quiet windows: say so in the status)."""
        from medviewer.io.recovery import find_recovery

        image = self.document.image
        found = find_recovery(image.volume) if image is not None else None
        self.recover_action.setEnabled(found is not None)
        if found is None or self.segments:
            return
        text = (f"{len(found.segments)} segment(s) of this image from {found.age_text} were kept but never "
                "exported (the window closed without saving).")
        if self.window.quiet:
            self._say(text + " Segment > Recover kept segments brings them back.")
            return
        box = recovery_question(self.window, text)
        box.exec()
        answer = box.clickedButton()
        if answer is box.recover_button:
            self.recover()
        elif answer is box.discard_button:
            self.forget_recovery_copy()
            self.recover_action.setEnabled(False)
        # Decide later (or the box closed): the copy stays, Segment > Recover kept segments has it

    def recover(self) -> list[Segment]:
        """Bring back the kept segments of the open image (as one undoable edit)."""
        from medviewer.io.recovery import find_recovery, load_recovery

        image = self.document.image
        found = find_recovery(image.volume) if image is not None else None
        if found is None:
            self._say("no kept segments of this image")
            return []
        try:
            array = load_recovery(found, image.volume)
        except MedviewerError as exc:
            self._say(str(exc))
            return []
        if self.segments:
            self._say("recovering needs an empty segment list: delete or export the segments first")
            return []
        if self.ensure_layer() is None:
            return []
        self._cancel_job()
        kept = [s for s in found.segments if np.any(array == s.label)]
        for segment in kept:
            self.segments[segment.label] = segment
            self.clicks[segment.label] = Clicks()
        self._next_label = max([self._next_label] + [s.label + 1 for s in kept])
        old = self.layer.volume.array
        new = np.where(np.isin(array, [s.label for s in kept]), array, 0).astype(old.dtype)
        self.current = kept[0].label if kept else None
        self._commit(old, new, self.current or 1, "recover kept segments")
        self._sync_layer()
        self._fill_list()
        self.recover_action.setEnabled(False)
        self._say(f"recovered {len(kept)} segment(s) kept on {found.age_text}")
        return kept


def recovery_question(parent, text: str) -> QMessageBox:
    """"Recover them?" with buttons that say what each does: Recover (the default), Discard (the
    copy is deleted) and Decide later (it is kept; the Segment menu offers it again)."""
    box = QMessageBox(QMessageBox.Question, "medviewer", text + " Recover them?", QMessageBox.NoButton, parent)
    box.recover_button = box.addButton("Recover", QMessageBox.AcceptRole)
    box.discard_button = box.addButton("Discard", QMessageBox.DestructiveRole)
    box.later_button = box.addButton("Decide later", QMessageBox.RejectRole)
    box.recover_button.setToolTip("bring the kept segments back into the editor")
    box.discard_button.setToolTip("delete the kept copy: it cannot be recovered afterwards")
    box.later_button.setToolTip("keep the copy; Segment > Recover kept segments brings it back")
    box.setDefaultButton(box.recover_button)
    box.setEscapeButton(box.later_button)
    return box
