"""The window says which files a partial load left out, on its status line (as the CLI prints)."""

import os

import pytest

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


def test_status_line_names_the_files_left_out(window, qtbot, tmp_path, demo_volume):
    from medviewer.io.demo_study import write_ct_series

    folder = tmp_path / "series"
    folder.mkdir()
    write_ct_series(demo_volume.crop((0, 0, 0), (6, 32, 32)), str(folder))
    os.mkfifo(folder / "IM_FIFO.dcm")
    (folder / "short.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\2\0")
    with qtbot.waitSignal(window.volume_loaded, timeout=60000):
        window.open_path(str(folder))
    text = window.status_label.text()
    assert "left out 2 file(s)" in text and "IM_FIFO.dcm: a named pipe" in text and "short.dcm" in text
