"""The PACS dock against the throw-away Orthanc (tests/orthanc_server.py): search, retrieve in the
background with progress (and cancel), the study opens in the browser; send; errors as messages."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.timeout(180)]


@pytest.fixture
def pacs(window, orthanc, tmp_path, monkeypatch, qtbot):
    from medviewer.core.settings import Settings, save_settings

    monkeypatch.setenv("MEDVIEWER_CONFIG", str(tmp_path / "cfg" / "settings.json"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    save_settings(Settings(servers={"test-orthanc": orthanc.dicomweb_url}))
    window.resize(1100, 700)
    window.pacs_dock.show()
    window.pacs_dock.raise_()
    panel = window.pacs
    panel.refresh_servers()
    assert panel.server.findText("test-orthanc") >= 0
    panel.server.setCurrentText("test-orthanc")
    return panel


def test_search_retrieve_opens_the_study_in_the_browser(window, pacs, sts_study, qtbot, tmp_path):
    pacs.fields["patient_id"].setText(sts_study.patient_id)
    with qtbot.waitSignal(pacs.searched, timeout=30000) as found:
        pacs.search_button.click()
    assert [s.study_instance_uid for s in found.args[0]] == [sts_study.study_uid]
    assert pacs.table.rowCount() == 1 and pacs.table.item(0, 0).text() == sts_study.patient_id
    assert pacs.retrieve_button.isEnabled()

    # cancelled at once: ends as cancelled, nothing opened
    opened = []
    window.volume_loaded.connect(opened.append)
    task = pacs.retrieve()
    assert pacs.cancel_button.isEnabled() and not pacs.search_button.isEnabled()
    with qtbot.waitSignal(task.was_cancelled, timeout=30000):
        pacs.cancel_button.click()
    assert pacs.status.text() == "Cancelled" and opened == []

    fractions = []
    with qtbot.waitSignal(window.volume_loaded, timeout=120000):
        task = pacs.retrieve()
        task.progress.connect(fractions.append)
    assert fractions and fractions[-1] == pytest.approx(1.0)
    result_folder = tmp_path / "cache"
    assert str(result_folder) in pacs.status.text() or "Retrieved" in pacs.status.text()
    assert window.document.image.volume.meta["series_instance_uid"] == sts_study.ct_series_uid
    texts = [item.text(0) for item in window.browser.series_items()]
    assert any("CT" in t for t in texts) and any("RTSTRUCT" in t for t in texts), texts
    # the study's RTSTRUCT references the CT series: offered for loading
    qtbot.waitUntil(lambda: bool(window.annotations.refs), timeout=30000)
    assert window.annotations.refs[0].kind == "RTSTRUCT"


def test_send_and_errors(window, pacs, orthanc, demo_series, demo_volume, qtbot, tmp_path):
    import numpy as np
    import pydicom

    from medviewer.export.seg import write_seg
    from medviewer.io import read_image

    labels = demo_volume.with_array(read_image(demo_series / "lesions.nii.gz").array.astype(np.uint8))
    seg = write_seg(demo_volume, labels, None, tmp_path / "demo-seg.dcm")
    with qtbot.waitSignal(pacs.sent, timeout=60000) as sent:
        pacs.send_files([str(seg)])
    assert len(sent.args[0].sent) == 1 and not sent.args[0].failed
    uid = str(pydicom.dcmread(seg, stop_before_pixels=True).SOPInstanceUID)
    assert orthanc.post("/tools/find", {"Level": "Instance", "Query": {"SOPInstanceUID": uid}})

    # an unknown server, a bad date: messages, the window lives on
    pacs.server.setCurrentText("no-such-server")
    with qtbot.waitSignal(pacs.error, timeout=30000):
        pacs.search()
    assert "no-such-server" in window.errors[-1]
    pacs.fields["study_date"].setText("yesterday")
    assert pacs.search() is None and "not a date" in window.errors[-1]
    assert window.isVisible()
