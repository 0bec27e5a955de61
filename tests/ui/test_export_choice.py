"""File > Export segmentation chooses explicitly (issue 24): with an expert's RTSTRUCT loaded to
compare with, the export writes the user's own segments (read back with highdicom), its dialog
lists the imported layer by name and source after them, and opens in the study's folder with a
name made of the patient, series and segment names; the close prompt then knows they were exported."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from medviewer.core.document import LabelLayer
from medviewer.ui.annotations_ui import ExportDialog

pytestmark = [pytest.mark.gui, pytest.mark.timeout(180)]


@pytest.fixture
def study_with_rtstruct(demo_series, demo_volume, tmp_path_factory):
    """The demo CT in study/CT and an expert's RTSTRUCT (one red ROI on the third lesion) in study/
    (one per test: an export goes into the study's folder)."""
    from medviewer.core.segments import Segment
    from medviewer.export.rtstruct import write_rtstruct
    from medviewer.io import read_image

    study = tmp_path_factory.mktemp("export") / "study"
    shutil.copytree(demo_series, study / "CT")
    lesions = read_image(demo_series / "lesions.nii.gz").array.astype(np.uint8)
    expert = demo_volume.with_array((lesions == 3).astype(np.uint8))
    write_rtstruct(demo_volume, expert, [Segment(1, "GTV expert", (255, 0, 0))], study / "RS.dcm")
    return study


def _open_with_expert(window, qtbot, study) -> LabelLayer:
    with qtbot.waitSignal(window.volume_loaded, timeout=60000):
        window.open_path(str(study))
    bar = window.annotations
    qtbot.waitUntil(lambda: bool(bar.refs), timeout=20000)
    (rtstruct,) = [i for i, ref in enumerate(bar.refs) if ref.kind == "RTSTRUCT"]
    bar.combo.setCurrentIndex(rtstruct)
    with qtbot.waitSignal(bar.loaded, timeout=60000) as blocker:
        bar.load_button.click()
    return blocker.args[0]


def _paint_ours(window, demo_series) -> np.ndarray:
    """One segment of the user's own, brushed on the first demo lesion (not the expert's)."""
    editor = window.segment_editor
    centre = json.loads((demo_series / "lesions.json").read_text())["lesions"][0]["center_mm"]
    editor.radius.setValue(6.0)
    editor.paint_disc("axial", np.asarray(centre), tool="brush")
    assert editor.has_unexported_edits()
    return editor.layer.volume.array.copy()


def _run_dialog(window, on_dialog):
    """File > Export segmentation..., as the menu runs it; ``on_dialog(dialog)`` looks at the
    dialog and answers it (accept or reject)."""
    seen, failed = [], []

    def answer():
        dialog = QApplication.activeModalWidget()
        if dialog is None:          # not up yet
            QTimer.singleShot(20, answer)
            return
        seen.append(dialog)
        if not isinstance(dialog, ExportDialog):   # a message instead: fail, without hanging on it
            dialog.close()
            return
        try:
            on_dialog(dialog)
        except BaseException as exc:   # a failed look: close the dialog (else exec waits for ever), fail after
            failed.append(exc)
            dialog.reject()
    QTimer.singleShot(0, answer)
    action = next(a for a in window.menuBar().actions()[0].menu().actions() if a.text() == "&Export segmentation...")
    action.trigger()
    if failed:
        raise failed[0]
    assert seen and isinstance(seen[0], ExportDialog), f"no export dialog: {seen and seen[0].text()}"
    return seen[0]


def test_export_with_an_rtstruct_loaded_writes_the_users_segments(window, qtbot, study_with_rtstruct, demo_series,
                                                                 demo_volume, monkeypatch):
    import highdicom as hd

    from medviewer.io.annotations import read_annotation

    expert = _open_with_expert(window, qtbot, study_with_rtstruct)
    assert expert.volume.meta["annotation_kind"] == "RTSTRUCT" and expert.volume.array.any()
    ours = _paint_ours(window, demo_series)
    window.layers.tree.setCurrentItem(window.layers.tree.topLevelItem(0))  # the old default's pick
    assert not np.array_equal(ours > 0, expert.volume.array > 0)

    shown = {}

    def look_and_accept(dialog):
        shown["items"] = [dialog.list.item(i).text() for i in range(dialog.list.count())]
        shown["row"] = dialog.list.currentRow()
        shown["path"] = dialog.path.text()
        shown["format"] = dialog.fmt()
        dialog.accept()
    _run_dialog(window, look_and_accept)

    assert shown["row"] == 0 and shown["format"] == "seg"
    assert shown["items"][0] == "Your segments (being edited): lesion 1"
    assert len(shown["items"]) == 2 and "RTSTRUCT RS.dcm" in shown["items"][1]
    meta = window.document.image.volume.meta
    folder, name = os.path.split(shown["path"])
    assert folder == str(study_with_rtstruct)                 # the study's folder, not the process's
    patient = (meta.get("patient_name") or meta["patient_id"]).replace("^", "_").replace(" ", "_")
    assert name.startswith(patient + "_") and name.endswith("_lesion_1.dcm")
    assert all(c.isalnum() or c in "._-" for c in name)
    out = shown["path"]
    assert os.path.isfile(out) and "Exported your segments" in window.status_label.text()

    seg = hd.seg.segread(out)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["lesion 1"]
    back = read_annotation(out, demo_volume)                   # highdicom reads it onto the grid
    assert np.array_equal(back.labels.array > 0, ours > 0)     # the user's voxels, not the expert's
    assert not window.segment_editor.has_unexported_edits()
    monkeypatch.setattr(window, "quiet", False)                # a user's window would ask, if it had to
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Cancel)
    assert window.confirm_discard_segments("closing") and not asked


def test_the_imported_layer_is_exported_only_when_chosen_and_the_close_prompt_knows(
        window, qtbot, study_with_rtstruct, demo_series, demo_volume, monkeypatch, tmp_path):
    from medviewer.io.annotations import read_annotation

    expert = _open_with_expert(window, qtbot, study_with_rtstruct)
    _paint_ours(window, demo_series)
    out = tmp_path / "Expert copy"                               # no suffix: the format's is added

    def choose_expert_as_nifti(dialog):
        dialog.list.setCurrentRow(1)
        assert dialog.path.text().endswith("_GTV_expert.dcm")   # the name follows the choice
        dialog.format.setCurrentIndex(dialog.format.findData("nifti"))
        assert dialog.path.text().endswith("_GTV_expert.nii.gz")
        dialog.path.setText(str(out))
        dialog.accept()
    _run_dialog(window, choose_expert_as_nifti)
    from medviewer.io import read_image
    written = read_image(str(out) + ".nii.gz").array
    assert np.array_equal(written > 0, expert.volume.array > 0)
    assert window.segment_editor.has_unexported_edits()          # the user's segments are not exported
    monkeypatch.setattr(window, "quiet", False)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.Cancel)
    assert not window.confirm_discard_segments("closing") and len(asked) == 1

    # cancelled: nothing written, nothing said exported
    _run_dialog(window, lambda dialog: dialog.reject())
    assert window.segment_editor.has_unexported_edits()
    seg_back = read_annotation(str(study_with_rtstruct / "RS.dcm"), demo_volume)
    assert seg_back.segments[0].color == (255, 0, 0)


def test_with_no_segments_of_ones_own_the_loaded_layer_is_offered(window, qtbot, study_with_rtstruct):
    _open_with_expert(window, qtbot, study_with_rtstruct)
    items = []

    def look(dialog):
        items.extend(dialog.list.item(i).text() for i in range(dialog.list.count()))
        assert dialog.list.currentRow() == 0
        dialog.reject()
    _run_dialog(window, look)
    assert len(items) == 1 and "RTSTRUCT RS.dcm" in items[0] and not items[0].startswith("Your")
    assert not window.errors                                    # cancelled: nothing written, nothing to say
