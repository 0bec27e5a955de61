"""The plugin panel in the window (Xvfb): runs in the background, results become overlays
(read back from the VTK render windows), scores a table, errors messages; cancel; bundle trust."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest
from PySide6.QtCore import QTimer

from medviewer.core.document import BoxLayer, ImageLayer, LabelLayer
from medviewer.render.vtk_util import capture
from tests.ui.pixels import patch, screen_rc

HERE = pathlib.Path(__file__).resolve().parent
pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


def _helpers():
    spec = importlib.util.spec_from_file_location("ui_test_plugins", HERE / "ui_test_plugins.py")
    if "ui_test_plugins" not in sys.modules:
        module = importlib.util.module_from_spec(spec)
        sys.modules["ui_test_plugins"] = module
        spec.loader.exec_module(module)
    return sys.modules["ui_test_plugins"]


@pytest.fixture(autouse=True)
def private_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_CONFIG", str(tmp_path / "cfg" / "settings.json"))
    monkeypatch.setenv("MEDVIEWER_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("MEDVIEWER_PLUGIN_PATH", str(tmp_path / "no-user-plugins"))


@pytest.fixture
def panel(window, demo_volume, qtbot):
    window.resize(1100, 700)
    window.plugins_dock.show()
    window.set_volume(demo_volume)
    qtbot.wait(50)
    return window.plugins


def select_fake_lesions(panel, seconds=None):
    """The test plugin "fake-lesions" added and selected, the crosshair as its point; the
    test plugins' module."""
    fake = _helpers()
    panel.add_manifest(fake.manifest())
    panel.select("fake-lesions")
    panel.use_cursor.setChecked(True)
    if seconds is not None:
        panel.set_param("seconds", seconds)
    return fake


def run_and_wait(panel, qtbot, timeout=60000):
    with qtbot.waitSignal(panel.run_ended, timeout=timeout) as blocker:
        panel.run_button.click()
    return blocker.args[0]


def test_fake_plugin_mask_and_boxes_become_overlays_while_the_ui_ticks(window, panel, qtbot):
    fake = select_fake_lesions(panel, seconds=1.0)
    doc = window.document
    cursor = doc.cursor
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    progress_seen = []
    panel.progress.valueChanged.connect(progress_seen.append)
    assert run_and_wait(panel, qtbot) == "returned"
    timer.stop()
    assert len(ticks) >= 20, "the event loop must keep running while the plugin works"
    assert any(0 < v < 100 for v in progress_seen)
    layer = doc.layers_of(LabelLayer)[-1]
    assert layer.label_names == {1: "left blob", 2: "right blob"}
    assert layer.label_colors[2] == (1.0, 0.0, 1.0)
    qtbot.wait(50)
    centres = fake.blob_centres(doc.image.volume, cursor)
    for name in ("axial", "coronal"):
        r, g, b = patch(window, name, centres[1])
        assert g > r + 60 and g > b + 60, (name, "label 1 must be green", r, g, b)
        r, g, b = patch(window, name, centres[2])
        assert r > g + 60 and b > g + 60, (name, "label 2 must be magenta", r, g, b)
    # the left blob is drawn on the screen's right in the axial view (radiological convention)
    assert screen_rc(window, "axial", centres[1])[1] > screen_rc(window, "axial", centres[2])[1]
    # outside the blobs: grey
    r, g, b = patch(window, "axial", np.asarray(cursor) + (12.0, 25.0, 0))   # off the crosshair
    assert abs(r - g) < 15 and abs(b - g) < 15

    # the same plugin asked for boxes: a BoxLayer in the label's colour (cyan)
    panel.set_param("output", "boxes")
    panel.set_param("seconds", 0.2)
    assert run_and_wait(panel, qtbot) == "returned"
    boxes = doc.layers_of(BoxLayer)[-1]
    assert len(boxes.boxes) == 1 and boxes.boxes[0].label == "nodule"
    assert boxes.boxes[0].score == pytest.approx(0.93)
    qtbot.wait(50)
    edge = np.asarray(cursor) + (8.0, 0, 0)       # the box's wall, in the slice through its centre
    image = capture(window.grid.views["axial"].render_window)
    r, c = screen_rc(window, "axial", edge)
    px = image[r - 2:r + 3, c - 2:c + 3].reshape(-1, 3).astype(int)
    assert any(p[1] > 200 and p[2] > 200 and p[0] < 80 for p in px), "cyan box edge"
    assert "box" in panel.status.text()


def test_cancel_ends_a_run_and_adds_nothing(window, panel, qtbot):
    select_fake_lesions(panel, seconds=60.0)
    before = len(window.document.layers)
    job = panel.run()
    assert job is not None and panel.cancel_button.isEnabled() and not panel.run_button.isEnabled()
    qtbot.waitUntil(lambda: "thinking" in panel.status.text(), timeout=20000)
    with qtbot.waitSignal(panel.run_ended, timeout=5000) as blocker:
        panel.cancel_button.click()
    assert blocker.args == ["aborted"]
    assert len(window.document.layers) == before
    assert "cancelled" in panel.status.text()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_a_plugin_that_raises_gives_a_message_and_the_window_lives_on(window, panel, qtbot):
    fake = _helpers()
    panel.add_manifest(fake.manifest("fake-raises", entry="Raises"))
    panel.select("fake-raises")
    assert run_and_wait(panel, qtbot) == "errored"
    assert any("the model file is corrupt" in e for e in window.errors)
    assert "corrupt" in window.status_label.text()
    assert window.isVisible()
    # and the next run works
    select_fake_lesions(panel)
    assert run_and_wait(panel, qtbot) == "returned"
    # no image: a message, no run
    window.document.clear()
    assert panel.run() is None and "open an image" in window.errors[-1]


def test_builtins_denoise_adds_an_image_layer_and_lesion_density_shows_scores(window, panel, qtbot, demo_volume):
    assert {"denoise", "lesion-density"} <= set(panel.manifests)
    panel.select("denoise")
    panel.set_param("method", "gaussian")
    axial = window.grid.views["axial"]
    assert run_and_wait(panel, qtbot) == "returned"
    images = window.document.layers_of(ImageLayer)
    assert len(images) == 2 and images[1].volume.same_grid(demo_volume)
    assert images[1].volume.array.std() < demo_volume.array.std()
    # the denoised image is the one drawn now; unticking it shows the original again
    assert axial.displayed_layer is images[1] and "shown" in panel.status.text()
    qtbot.wait(50)
    denoised = capture(axial.render_window).astype(int)
    window.document.update_layer(images[1], visible=False)
    assert axial.displayed_layer is images[0]
    assert np.abs(capture(axial.render_window).astype(int) - denoised).mean() > 0.3
    window.document.update_layer(images[1], visible=True)
    assert np.abs(capture(axial.render_window).astype(int) - denoised).mean() < 0.05
    # a plugin runs on the image drawn: denoising again smooths the denoised image further
    with qtbot.waitSignal(panel.run_ended, timeout=60000) as blocker:
        panel.run()
        started = panel.status.text()
    assert blocker.args[0] == "returned" and repr(images[1].name) in started
    again = window.document.layers_of(ImageLayer)[2]
    assert again.volume.array.std() < images[1].volume.array.std()
    window.document.remove_layer(again)
    panel.select("lesion-density")
    assert panel.use_cursor.isChecked()                 # classification: the crosshair is the point
    assert run_and_wait(panel, qtbot) == "returned"
    assert not panel.table.isHidden() and panel.table.rowCount() == 5
    scores = [float(panel.table.item(r, 1).text()) for r in range(5)]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=0.01)
    assert "highest score" in panel.status.text()


def test_untrusted_bundle_is_refused_until_the_user_confirms(window, panel, qtbot, tmp_path):
    from medviewer.plugins import trust

    panel.auto_warm = False          # no torch child for this test
    panel.select("monai-bundle")
    folder = tmp_path / "some-bundle"
    folder.mkdir()
    panel.set_param("bundle", str(folder))
    assert not panel.trust_label.isHidden() and not panel.trust_button.isHidden()
    assert "runs the code" in panel.trust_label.text()
    assert not panel.run_button.isEnabled()
    assert panel.run() is None and "not trusted" in window.errors[-1]
    asked = []
    panel.confirm = lambda parent, f: asked.append(f) or False
    assert not panel.trust_folder() and not trust.is_trusted(folder)
    panel.confirm = lambda parent, f: asked.append(f) or True
    assert panel.trust_folder() and trust.is_trusted(folder)
    assert asked == [str(folder)] * 2
    assert panel.trust_label.isHidden() and panel.run_button.isEnabled()


def test_process_plugin_is_warmed_when_selected_and_runs(window, panel, qtbot):
    fake = _helpers()
    panel.add_manifest(fake.manifest("fake-proc", isolation="process"))
    panel.select("fake-proc")
    worker = panel.runner._idle.get("fake-proc")
    assert worker is not None and worker.proc.is_alive()
    panel.use_cursor.setChecked(True)
    assert run_and_wait(panel, qtbot) == "returned"
    assert window.document.layers_of(LabelLayer)
    panel.shutdown()
    # The worker that ran is the run thread's to reap (it lets the child exit, then stops it):
    # poll, as joining it here too would race that thread (the loser sees the child alive).
    qtbot.waitUntil(lambda: not worker.proc.is_alive(), timeout=10000)
    assert not panel.runner._idle  # and no new warm worker was left behind


def test_click_segment_loads_its_network_when_selected(window, panel, qtbot):
    """A thread plugin is warmed too: selecting click-segment (learned engine, the default) loads
    its network in the background, so its first run does not."""
    from medviewer_plugins.click_segment import learned

    learned._CACHE.clear()
    panel.select("click-segment")
    qtbot.waitUntil(lambda: learned.model_loaded(learned.DEFAULT_BUNDLE, "cpu"), timeout=60000)


def test_parameters_show_labels_units_and_sensible_precision(window, panel):
    """A form shows "Radius" and "mm" for radius_mm, not the raw key with four decimals; a
    manifest's own label and unit win; the raw key stays in the tip."""
    from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout

    from medviewer.plugins.api import Manifest, Param

    def row(name):
        index = list(panel._editors).index(name)
        label = panel.form.itemAt(index, QFormLayout.LabelRole).widget()
        return label.text(), panel.form.itemAt(index, QFormLayout.FieldRole).widget()

    panel.select("lesion-density")
    text, spin = row("radius_mm")
    assert text == "Radius" and isinstance(spin, QDoubleSpinBox)
    assert spin.suffix() == " mm" and spin.decimals() == 1 and spin.text() == "5.0 mm"
    assert "radius_mm" in spin.toolTip()
    panel.select("denoise")
    assert row("time_step")[0] == "Time step" and row("time_step")[1].text() == "0.0625"
    assert row("range_sigma_hu")[1].text() == "50 HU"
    panel.add_manifest(Manifest(id="labelled", title="Labelled", kind="segmentation", entry="x:Y",
                                params=(Param("w", "float", 0.5, "how much", label="Weight", unit="%"),)))
    panel.select("labelled")
    assert row("w")[0] == "Weight" and row("w")[1].text() == "0.50 %"
    assert panel.params() == {"w": 0.5}


def test_trust_button_only_for_a_bundle_plugin_and_scores_cleared_on_another_pick(window, panel, qtbot, tmp_path):
    assert panel.current_manifest() is None or not panel.current_manifest().executes_untrusted_code
    assert panel.trust_button.isHidden() and panel.trust_label.isHidden()    # nothing picked: no button
    panel.select("denoise")
    assert panel.trust_button.isHidden()                                       # not a bundle plugin
    panel.select("lesion-density")
    assert run_and_wait(panel, qtbot) == "returned"
    assert not panel.table.isHidden() and panel.table.rowCount() == 5
    panel.select("denoise")
    assert panel.table.isHidden() and panel.table.rowCount() == 0 and panel.status.text() == ""


def test_param_label_and_unit_from_the_manifest_or_the_name():
    """plugin.json may give a parameter's label and unit; without them (every manifest written
    before), the name says them: radius_mm is "Radius" in mm."""
    from medviewer.plugins.api import Manifest, Param

    manifest = Manifest.from_dict({"id": "p", "title": "P", "kind": "segmentation", "entry": "m:C", "params": [
        {"name": "radius_mm", "type": "float", "default": 5.0},
        {"name": "gain", "type": "float", "default": 0.25, "label": "Gain factor", "unit": "x"}]})
    radius, gain = manifest.params
    assert (radius.display_label, radius.display_unit, radius.decimals) == ("Radius", "mm", 1)
    assert (gain.display_label, gain.display_unit, gain.decimals) == ("Gain factor", "x", 2)
    assert Param("threshold_hu", "float", -500.0).display_unit == "HU"
    assert Param("threshold_hu", "float", -500.0).decimals == 0
    assert Param("mm", "float", 1.0).display_label == "Mm"   # a bare unit word is a name, not a suffix


def test_a_parameter_the_application_sets_is_not_in_the_form(qtbot):
    """click-segment's ``previous`` (the segment's mask, sent by the click tool) is no field a
    person fills in: the Plugins dock leaves it out; the engine and bundle stay."""
    from medviewer.core.document import Document
    from medviewer.plugins.api import Manifest
    from medviewer.ui.plugin_panel import PluginPanel

    from medviewer.plugins.registry import get_manifest

    panel = PluginPanel(Document())
    qtbot.addWidget(panel)
    panel._build_form(get_manifest("click-segment"))   # the form alone: selecting would load the engine
    assert "previous" not in panel._editors and {"engine", "bundle"} <= set(panel._editors)
    internal = Manifest.from_dict({"id": "p", "title": "P", "kind": "segmentation", "entry": "m:C", "params": [
        {"name": "state", "type": "str", "internal": True}]}).params[0]
    assert internal.internal
