"""Click segment: its options (the engine) and its work, a mixin of the segment editor.

Left click = a positive point, shift+left click = a negative one; each click reruns the
``click-segment`` plugin on all the segment's clicks in the background (through
:class:`~medviewer.plugins.runner.Runner`), under a busy cursor and a progress bar; its mask
replaces the segment's voxels. The engine loads in a worker when the tool is picked.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QComboBox

from medviewer import __version__
from medviewer.core.label_edit import Clicks, bounding_box, replace_segment, union_box
from medviewer.core.segments import NEGATIVE_CLICK_RGB, POSITIVE_CLICK_RGB, AlgorithmInfo, Segment
from medviewer.ui.segment_tools import OptionsPanel

_EMPTY_BOX = (slice(0, 0),) * 3   # neither the segment nor the result holds a voxel


def click_engines() -> tuple[list[str], str]:
    """The click-segment plugin's engines (its ``engine`` parameter's choices) and its default."""
    try:
        from medviewer.plugins.model_store import click_engine_folders
        from medviewer.plugins.registry import get_manifest

        param = get_manifest("click-segment").param("engine")  # then DeepEdit/VISTA3D bundles (issue 20)
        return (list(param.choices) or [str(param.default)]) + click_engine_folders(), str(param.default)
    except Exception:  # no plugin: the click tool reports it when used
        return ["classical"], "classical"


def add_engine_item(combo: QComboBox, engine: str) -> None:
    """Add ``engine`` (a name, or a bundle's folder) to the engine box, its text as its tooltip."""
    from PySide6.QtCore import Qt

    combo.addItem(engine)
    combo.setItemData(combo.count() - 1, engine, Qt.ItemDataRole.ToolTipRole)


class ClickOptions(OptionsPanel):
    def __init__(self, editor) -> None:
        super().__init__(editor, "left click inside the lesion; shift+left click outside it to correct")
        combo = editor.engine_combo = QComboBox()
        # A DeepEdit or VISTA3D bundle is offered by its folder, a path as long as it is: sized to
        # its contents, the box widened the whole dock group and took the views' room (a bundle
        # under /tmp/pytest-of-root/...: the views 313 pixels wide for 380). The list that opens
        # shows the whole path, and each item's tooltip too.
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(12)
        engines, default = click_engines()
        for engine in engines:
            add_engine_item(combo, engine)
        combo.setCurrentText(default)
        combo.setToolTip(
            "click-segment engine; auto: classical for a lesion that region growing closes off near the "
            "first click (lung nodule, liver lesion), learned otherwise (trained on soft-tissue sarcomas)")
        combo.currentTextChanged.connect(lambda _t: editor.tool == "click" and editor.warm_engine())
        self.form.addRow("Engine", combo)


class ClickSegmenting:
    """The click tool's work: clicks, the plugin job, the engine's warm-up and the markers."""

    def warm_engine(self) -> None:
        """Load the chosen click-segment engine in the background now (the learned one needs
        seconds to import torch and MONAI and read its network), so that the first click is as
        quick as the next. A click made meanwhile waits for it."""
        from medviewer.plugins.model_store import click_params
        from medviewer.plugins.registry import get_manifest

        engine = self.engine_combo.currentText() or "classical"
        name = "learned" if engine == "auto" else engine  # what there is to load
        try:
            future = self._runner().warm(get_manifest("click-segment"), click_params(engine))
        except Exception as exc:  # no plugin, a bad parameter: the click reports it again
            self._say(f"could not load the {name} engine: {exc}")
            return
        if future is None or future.done():
            return
        self._say(f"loading the {name} engine...")
        future.add_done_callback(lambda f: self._emit_ready(name, f))

    def _emit_ready(self, engine: str, future) -> None:
        try:  # from the loading thread; the signal reaches the GUI thread queued
            self.engine_ready.emit(engine, future.exception() or future.result())
        except RuntimeError:  # the window closed meanwhile
            pass

    def _engine_ready(self, engine: str, outcome) -> None:
        if self.busy() or self.pending is not None:
            return  # a click is under way and says what it does
        if isinstance(outcome, BaseException):
            self._say(f"could not load the {engine} engine: {outcome}")
        else:
            self._say(f"the {engine} engine is ready (loaded in {outcome:.1f} s): left click inside a lesion")

    def add_click(self, point, positive: bool = True) -> None:
        """Add a click to the current segment (a new one if none) and rerun the segmentation."""
        label = self._current_or_new()
        if label is None:
            return
        if self.pending is not None and self.pending[0] == label:
            before, shown = self.pending[1], self.pending[2]
        else:
            self._cancel_job()
            before = shown = self.clicks.get(label, Clicks())
        after = shown.add(point, positive)
        self._cancel_job(keep_pending=True)
        self.pending = (label, before, after)
        self._update_markers()
        if not after.positive:
            self._finish_click(None)  # nothing to segment yet; the click is kept (undoable)
            self._say("click inside the lesion first (left click, no shift)")
            return
        self._submit(label, after)

    def add_bundle_engine(self, folder: str) -> None:
        """Offer a DeepEdit or VISTA3D bundle folder as the click engine, and pick it."""
        if self.engine_combo.findText(folder) < 0:
            add_engine_item(self.engine_combo, folder)
        self.engine_combo.setCurrentText(folder)

    def _submit(self, label: int, clicks: Clicks) -> None:
        from medviewer.plugins.api import Prompts, Request
        from medviewer.plugins.model_store import click_params
        from medviewer.plugins.registry import get_manifest

        try:
            # Found once: reading the installed packages' entry points took 20 ms of each click.
            manifest = getattr(self, "_click_manifest", None) or get_manifest("click-segment")
            self._click_manifest = manifest
            params = click_params(self.engine_combo.currentText() or "classical")
            if self.layer is not None:  # the segment as it stands: the new clicks correct it near themselves
                params["previous"] = self.layer.volume.array == label
            request = Request(self.document.image.volume, Prompts(clicks.positive, clicks.negative), params,
                              device="auto")  # CUDA when there is a GPU, as the plugin panel does
            self.job = self._runner().submit(manifest, request)
        except Exception as exc:  # MedviewerError/PluginError: a line for the user
            self._click_failed(str(exc))
            return
        self._say("segmenting...")
        self._set_busy(True)
        self._poller.watch(self.job)

    def _set_busy(self, on: bool) -> None:
        """A busy cursor and the progress bar while a click runs (see _submit, _on_job_event)."""
        if on:
            self.click_progress.setRange(0, 0)
            self.click_progress.show()
        else:
            self.click_progress.hide()
        if on != self._busy_cursor:
            self._busy_cursor = on
            if on:
                QApplication.setOverrideCursor(Qt.BusyCursor)
            else:
                QApplication.restoreOverrideCursor()

    def _on_job_event(self, event) -> None:
        """One of the running job's events, on the GUI thread (the poller stops by itself
        before the last one)."""
        if event.kind == "progress" and event.stage:
            self._say(f"segmenting: {event.stage}")
            if event.fraction is not None:
                self.click_progress.setRange(0, 100)
                self.click_progress.setValue(int(round(100 * event.fraction)))
        elif event.kind == "returned":
            self.job = None
            self._set_busy(False)
            self._finish_click(event.result.label_map.array, event.result.note, event.result.algorithm)
            self._measure_timer.stop()
            self._start_measures()   # at once: the measures follow the mask, not 100 ms later
        elif event.kind in ("errored", "aborted"):
            self.job = None
            self._set_busy(False)
            if event.kind == "errored":
                self._click_failed(event.message)

    def _finish_click(self, mask, note: str = "", algorithm: str = "") -> None:
        label, before, after = self.pending
        self.pending = None
        if label not in self.segments or self.layer is None:
            return
        if mask is not None and mask.shape != self.layer.volume.shape:
            self._click_failed("the segmentation came back on another grid; ignored")
            return
        old = self.layer.volume.array
        # Only the box holding the segment before and after is rewritten and compared (on the
        # GUI thread: whole-grid passes over a 512 x 512 x 300 label map froze it for 75 ms).
        box = None if mask is None else union_box(bounding_box(old == label), bounding_box(mask))
        new = old if mask is None else replace_segment(old, label, mask, within=box or _EMPTY_BOX)
        self.clicks[label] = after
        change = self._commit(old, new, label, "click", within=box or (None if mask is None else _EMPTY_BOX),
                              clicks_before=before, clicks_after=after)
        self._update_markers()
        if mask is not None:
            self.segments[label] = Segment(
                label, self.segments[label].name, self.segments[label].color,
                algorithm=AlgorithmInfo("SEMIAUTOMATIC", algorithm or "medviewer click-to-segment", __version__))
            voxels = 0 if box is None else int(np.count_nonzero(new[box] == label))
            self._say(f"{self.segments[label].name}: {voxels * self.layer.volume.voxel_volume_ml:.1f} mL "
                      f"({voxels:,} voxels)"
                      + (f"; {note}" if note else ""))
        self.click_result.emit(change)

    def _click_failed(self, message: str) -> None:
        self.pending = None
        self._update_markers()
        self._say(message)
        self.click_failed.emit(message)

    def _cancel_job(self, keep_pending: bool = False) -> None:
        if self.job is not None:
            self.job.cancel()
            self.job = None
            self._poller.stop()
            self._set_busy(False)
        if not keep_pending and self.pending is not None:
            self.pending = None
            self._update_markers()

    def busy(self) -> bool:
        return self.job is not None

    def shown_clicks(self) -> Clicks:
        if self.current is None:
            return Clicks()
        if self.pending is not None and self.pending[0] == self.current:
            return self.pending[2]
        return self.clicks.get(self.current, Clicks())

    def _update_markers(self) -> None:
        from medviewer.render.markers import PointMarkers

        clicks = self.shown_clicks()
        points = list(clicks.positive) + list(clicks.negative)
        colors = [POSITIVE_CLICK_RGB] * len(clicks.positive) + [NEGATIVE_CLICK_RGB] * len(clicks.negative)
        for view in self._slice_views():
            markers = self._markers.get(view.orientation)
            if markers is None:
                if not points:
                    continue
                markers = self._markers[view.orientation] = PointMarkers(view)
            markers.set_points(points, colors)
