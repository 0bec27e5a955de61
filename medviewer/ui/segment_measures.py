"""The segment editor's measures: volume, HU, RECIST axes and bounding box of each segment,
computed in the background right after each edit (only the segments whose voxels changed), shown
in a table, with each segment's longest axial diameter drawn as a ruler. A mixin of the editor.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from medviewer.core.document import Ruler, RulerLayer
from medviewer.ui.tasks import Task

#: the table's columns: what a reader looks at first (size) before the HU figures; short
#: headers (units in their tips), so that the first five fit the dock's default width
MEASURE_COLUMNS = ("Segment", "mL", "Long", "Short", "HU", "Min", "Max", "Box mm (x y z)")
MEASURE_TIPS = ("", "volume in millilitres", "longest axial diameter (RECIST), on its slice, in mm",
                "longest extent perpendicular to it, same slice, in mm", "mean HU in the segment",
                "lowest HU", "highest HU", "bounding box size (LPS x, y, z)")
#: rows the table shows without scrolling
VISIBLE_ROWS = 3


def _measure_changes(image, labels, before: np.ndarray | None):
    """(measures of the segments whose voxels differ from ``before``, the labels no longer
    there, the voxels measured): in a worker thread; one segment edited is one measured."""
    from medviewer.core.measures import measure_segments

    new = labels.array
    if before is None or before.shape != new.shape:
        changed = np.unique(new)
    else:
        differs = before != new
        changed = np.union1d(np.unique(before[differs]), np.unique(new[differs]))
    changed = [int(v) for v in changed if v]
    present = [v for v in changed if (new == v).any()]
    gone = sorted(set(changed) - set(present))
    measured = measure_segments(image, labels, present)
    for m in measured:
        object.__setattr__(m, "short_axis_endpoints_mm", short_axis_ends(image, new == m.label, m))
    return measured, gone, new


def short_axis_ends(image, mask: np.ndarray, m) -> tuple[tuple, tuple] | None:
    """Where to draw the short axis beside the long one (RECIST's bidirectional): on the long
    axis' slice, perpendicular to it, through its middle, as long as the measured short axis
    (the segment's extent across the long axis) and centred on that extent."""
    if m.short_axis_mm <= 0 or m.long_axis_mm <= 0:
        return None
    axis = 2 - int(np.argmax(np.abs(np.asarray(image.direction)[2])))   # as measure_segments slices
    index = [slice(None)] * 3
    index[axis] = m.long_axis_slice
    voxels = np.argwhere(mask[tuple(index)])
    if not len(voxels):
        return None
    zyx = np.insert(voxels.astype(float), axis, m.long_axis_slice, axis=1)
    points = image.voxel_to_patient(zyx)
    start, end = (np.asarray(e, dtype=float) for e in m.long_axis_endpoints_mm)
    middle, u = (start + end) / 2, (end - start) / np.linalg.norm(end - start)
    across = points - middle
    across -= np.outer(across @ u, u)            # what lies across the long axis, in the slice
    if not np.abs(across).max() > 0:
        return None
    perp = np.linalg.svd(across, full_matrices=False)[2][0]
    proj = across @ perp
    centre = middle + perp * (proj.max() + proj.min()) / 2
    half = perp * m.short_axis_mm / 2
    return tuple(float(v) for v in centre - half), tuple(float(v) for v in centre + half)


class SegmentMeasures:
    """The measures table and its background work."""

    def _build_table(self) -> QTableWidget:
        table = QTableWidget(0, len(MEASURE_COLUMNS))
        table.setHorizontalHeaderLabels(MEASURE_COLUMNS)
        for c, tip in enumerate(MEASURE_TIPS):
            table.horizontalHeaderItem(c).setToolTip(tip)
        table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        table.verticalHeader().hide()
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        table.setToolTip("double-click a lesion to go to its longest axial diameter")
        # readable at the default size: the header and a few rows, whatever the dock's height
        row = table.verticalHeader().defaultSectionSize()
        table.setMinimumHeight(table.horizontalHeader().sizeHint().height() + VISIBLE_ROWS * row + 2 * table.frameWidth()
                               + table.horizontalScrollBar().sizeHint().height())
        return table

    def _start_measures(self) -> None:
        if self._measure_task is not None and self._measure_task.running:
            self._measure_again = True
            return
        image = self.document.image
        if image is None or self.layer is None:
            return
        volume = image.volume
        labels = self.layer.volume.with_array(self.layer.volume.array.copy())
        before = self._measured_array
        task = Task(lambda progress, cancelled: _measure_changes(volume, labels, before), "measures", self)
        task.finished.connect(self._measures_done)
        task.failed.connect(self._say)
        task.ended.connect(self._measures_ended)
        self._measure_task = task.start()

    def _measures_ended(self) -> None:
        if self._measure_again:
            self._measure_again = False
            self._start_measures()

    def _measures_done(self, outcome) -> None:
        measured, gone, array = outcome
        for label in gone:
            self._measured.pop(label, None)
        self._measured.update((m.label, m) for m in measured)
        self._measured_array = array
        if self._measure_again:
            return  # stale: another edit came meanwhile
        self.measures = [self._measured[k] for k in sorted(self._measured)]
        self._fill_table()
        self.measures_updated.emit(self.measures)
        if self._jump_after is not None and self.measures_current():
            self.jump_to_segment(self._jump_after)

    def measures_current(self) -> bool:
        """Whether the measures are those of the segments' voxels now (no click, no edit and no
        measuring under way)."""
        task = self._measure_task
        return not (self.busy() or self.pending is not None or self._measure_timer.isActive()
                    or self._measure_again or (task is not None and task.running))

    def _show_rulers(self, rows) -> None:
        """Each segment's longest axial diameter (RECIST) as a ruler on its slice, and its short
        axis across it, in a layer of their own ("RECIST axes"), there while there are any."""
        rulers = []
        for m in rows:
            if m.long_axis_mm <= 0:
                continue
            # one caption for both (RECIST's "long x short"): two, centred on the same middle, overlap
            short = getattr(m, "short_axis_endpoints_mm", None)
            size = f"{m.long_axis_mm:.1f} x {m.short_axis_mm:.1f} mm" if short else f"{m.long_axis_mm:.1f} mm"
            rulers.append(Ruler(m.long_axis_endpoints_mm[0], m.long_axis_endpoints_mm[1],
                                f"{self.segments[m.label].name}: {size}"))
            if short is not None:
                rulers.append(Ruler(short[0], short[1]))
        layer = self.rulers_layer if self.rulers_layer in self.document.layers else None
        if layer is None:
            if rulers and self.document.image is not None:
                self.rulers_layer = self.document.add_layer(RulerLayer(name="RECIST axes", rulers=rulers))
        elif rulers:
            self.document.update_layer(layer, rulers=rulers)
        else:
            self.document.remove_layer(layer)
            self.rulers_layer = None

    def _fill_table(self) -> None:
        rows = [m for m in self.measures if m.label in self.segments]
        self._table_labels = [m.label for m in rows]
        self._show_rulers(rows)
        self.table.setRowCount(len(rows))
        for r, m in enumerate(rows):
            size = np.asarray(m.bbox_max_mm) - np.asarray(m.bbox_min_mm)
            volume = f"{m.volume_ml:.1f}" if m.volume_ml >= 100 else f"{m.volume_ml:.2f}"
            cells = (self.segments[m.label].name, volume, f"{m.long_axis_mm:.1f}",
                     f"{m.short_axis_mm:.1f}", f"{m.mean:.0f}", f"{m.minimum:.0f}", f"{m.maximum:.0f}",
                     " x ".join(f"{s:.0f}" for s in size))
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 0:
                    pix = QPixmap(10, 10)
                    pix.fill(QColor(*self.segments[m.label].color))
                    item.setIcon(QIcon(pix))
                if c == 7:
                    item.setToolTip("LPS mm: " + ", ".join(f"{a:.1f}..{b:.1f}" for a, b in
                                                           zip(m.bbox_min_mm, m.bbox_max_mm)))
                else:   # every figure of the row, wherever the pointer rests (the dock may hide some columns)
                    item.setToolTip(f"{cells[0]}: {m.volume_ml:.2f} mL, long {m.long_axis_mm:.1f} mm, "
                                    f"short {m.short_axis_mm:.1f} mm, HU mean {m.mean:.0f} "
                                    f"(min {m.minimum:.0f}, max {m.maximum:.0f}), box {cells[7]} mm")
                self.table.setItem(r, c, item)
        self.totals.setText(
            f"{len(rows)} lesions: sum of the longest axial diameters {sum(m.long_axis_mm for m in rows):.1f} mm, "
            f"total volume {sum(m.volume_ml for m in rows):.2f} mL" if len(rows) > 1 else "")
