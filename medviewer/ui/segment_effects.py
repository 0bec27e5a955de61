"""The segment editor's effects on the current segment: Scissors, Remove islands, Margin,
Smoothing and Fill between slices (the numpy work is in :mod:`medviewer.core.label_edit`).

A mixin of :class:`~medviewer.ui.segment_editor.SegmentEditor`: it uses the editor's segments,
label layer, undo stack (``_commit``) and status line (``_say``). Each effect is one undoable
edit and never touches another segment.
"""

from __future__ import annotations

import numpy as np

from medviewer.core.label_edit import (
    SCISSORS_MODES, fill_between_slices, margin, margin_radius, remove_islands, scissors,
    smooth, smoothing_radius,
)


class SegmentEffects:
    """The effects (their options panels are in :mod:`medviewer.ui.segment_tools`)."""

    def _apply(self, old: np.ndarray, new: np.ndarray, label: int, description: str) -> int:
        """An effect's result as one undoable edit; returns how many voxels it changed."""
        change = self._commit(old, new, label, description)
        return change.voxels_changed if change else 0

    def cut(self, view_name: str, outline_mm, mode: str | None = None, extent: str | None = None,
            label: int | None = None) -> None:
        """Scissors: cut the segment with a closed outline drawn in a 2D view (LPS mm points on its
        slice), as one undoable edit: erase inside or outside it, or fill inside it, through every
        slice or on the view's slice only (the row's choices by default; see
        :func:`medviewer.core.label_edit.scissors`)."""
        mode = mode or self.scissors_mode.currentText()
        extent = extent or self.scissors_extent.currentText()
        if len(outline_mm) < 3:
            self._say("scissors: drag around the part to cut (a click draws no outline)")
            return
        if mode == "fill inside" and label is None and self.current is None:
            label = self._current_or_new()
        label = self._edited_label(label, "cut")
        if label is None:
            return
        view = self.window.grid.views[view_name]
        volume = self.layer.volume
        axis = view.slice_axis
        k = None
        if extent == "this slice":
            k = int(round(volume.patient_to_index(view.plane_origin())[axis]))
        old = volume.array
        new = scissors(old, label, volume, outline_mm, axis, SCISSORS_MODES[mode], k)
        n = self._apply(old, new, label, f"scissors: {mode}")
        self._say(f"scissors ({mode}, {extent}): {n:,} voxels of {self.segments[label].name} changed")

    def _edited_label(self, label: int | None, action: str) -> int | None:
        """The segment an effect acts on: ``label``, else the current one; None (and a message
        saying so) when there is none."""
        label = self.current if label is None else label
        if label is None or self.layer is None or label not in self.segments:
            self._say(f"no segment to {action}: click on a lesion or paint one first")
            return None
        self.set_segment_visible(label, True)   # an edit shows what it edits
        return label

    def remove_islands(self, label: int | None = None, min_ml: float | None = None) -> None:
        """Keep the largest piece of the segment (``min_ml`` 0 or None, the spin box's default),
        or drop the pieces smaller than ``min_ml``."""
        label = self._edited_label(label, "remove islands from")
        if label is None:
            return
        if min_ml is None:
            min_ml = self.island_ml.value()
        old = self.layer.volume.array
        new = remove_islands(old, label, self.layer.volume.spacing, min_ml or None)
        self._say(f"removed {self._apply(old, new, label, 'remove islands')} voxels")

    def apply_margin(self, mm: float | None = None, label: int | None = None) -> None:
        """Grow (``mm`` > 0) or shrink the segment by ``mm`` (the spin box's value by default), as
        one undoable edit; growing never covers another segment."""
        label = self._edited_label(label, "grow or shrink")
        if label is None:
            return
        mm = self.margin_mm.value() if mm is None else mm
        spacing = self.layer.volume.spacing
        if not any(margin_radius(spacing, mm)):
            self._say(f"a margin of {mm:g} mm is under half a voxel ({min(spacing):.2f} mm): nothing to do")
            return
        old = self.layer.volume.array
        n = self._apply(old, margin(old, label, spacing, mm), label, f"margin {mm:+g} mm")
        self._say(f"{'grew' if mm > 0 else 'shrank'} {self.segments[label].name} by {abs(mm):g} mm "
                  f"({n:,} voxels, {n * self.layer.volume.voxel_volume_ml:.1f} mL)")

    def apply_smoothing(self, mm: float | None = None, method: str | None = None, label: int | None = None) -> None:
        """Smooth the segment (the row's kernel and method by default; see
        :func:`medviewer.core.label_edit.smooth`), as one undoable edit."""
        label = self._edited_label(label, "smooth")
        if label is None:
            return
        mm = self.smooth_mm.value() if mm is None else mm
        method = self.smooth_method.currentData() if method is None else method
        spacing = self.layer.volume.spacing
        if not any(smoothing_radius(spacing, mm)):
            self._say(f"a {mm:g} mm kernel is under two voxels ({min(spacing):.2f} mm): nothing to smooth")
            return
        old = self.layer.volume.array
        n = self._apply(old, smooth(old, label, spacing, mm, method), label, f"{method} {mm:g} mm")
        self._say(f"smoothed {self.segments[label].name} ({method}, {mm:g} mm): {n:,} voxels changed")

    def fill_between_slices(self, label: int | None = None, axis: int | None = None) -> None:
        """Fill the segment's empty slices between the slices drawn (see
        :func:`medviewer.core.label_edit.fill_between_slices`), as one undoable edit."""
        label = self._edited_label(label, "fill")
        if label is None:
            return
        old = self.layer.volume.array
        new, axis = fill_between_slices(old, label, self.layer.volume.spacing, axis)
        name = self.segments[label].name
        if axis is None:
            self._say(f"{name} has no empty slices between drawn ones: draw it on every few slices first")
            return
        n = self._apply(old, new, label, "fill between slices")
        plane = self.layer.volume.slice_plane(2 - axis)   # array axis (z, y, x) -> index axis
        self._say(f"filled {name} between its {plane} slices ({n:,} voxels, "
                  f"{n * self.layer.volume.voxel_volume_ml:.1f} mL)")
