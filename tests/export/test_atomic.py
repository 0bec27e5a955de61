"""No partial files: existing targets need force; disk-full and permission errors leave nothing."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from medviewer.core.errors import MedviewerError
from medviewer.core import atomic
from medviewer.export.labelmap import write_labelmap
from medviewer.export.seg import write_seg

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_existing_file_needs_force(demo_volume, demo_labels, tmp_path):
    out = tmp_path / "seg.dcm"
    out.write_bytes(b"keep me")
    with pytest.raises(MedviewerError, match="already exists"):
        write_seg(demo_volume, demo_labels, None, out)
    assert out.read_bytes() == b"keep me"
    write_seg(demo_volume, demo_labels, None, out, force=True)
    assert out.read_bytes()[128:132] == b"DICM"


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk is full"), (errno.EACCES, "permission denied"),
                                         (errno.EROFS, "read-only")])
def test_failing_rename_leaves_nothing(demo_volume, demo_labels, tmp_path, monkeypatch, code, words):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(MedviewerError, match=words) as info:
        write_seg(demo_volume, demo_labels, None, tmp_path / "seg.dcm")
    assert "nothing was written" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_disk_full_while_writing_leaves_nothing(demo_volume, demo_labels, tmp_path, monkeypatch):
    import pydicom

    def full(self, filename, *args, **kwargs):
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 1000)  # a partial file, then the disk fills
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pydicom.Dataset, "save_as", full)
    with pytest.raises(MedviewerError, match="disk is full"):
        write_seg(demo_volume, demo_labels, None, tmp_path / "seg.dcm")
    assert os.listdir(tmp_path) == []


def test_label_map_write_failure_leaves_nothing(demo_labels, tmp_path, monkeypatch):
    import SimpleITK as sitk

    def broken(*args, **kwargs):
        raise RuntimeError("ITK ERROR: could not write: No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(MedviewerError, match="No space left"):
        write_labelmap(demo_labels, None, tmp_path / "m.nii.gz")
    assert os.listdir(tmp_path) == []


def test_path_under_a_file_fails_clearly(demo_volume, demo_labels, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(MedviewerError, match="folder does not exist"):
        write_seg(demo_volume, demo_labels, None, blocker / "seg.dcm")
    assert os.listdir(tmp_path) == ["a-file"]


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _importable_copy(base: str) -> str:
    """A world-readable copy of the medviewer package under ``base``, for a child run as user
    nobody: the clone itself may lie under a folder only root can read (a home or /root)."""
    code = os.path.join(base, "code")
    shutil.copytree(os.path.join(ROOT, "medviewer"), os.path.join(code, "medviewer"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return code


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the CLI as another user")
def test_read_only_folder_for_a_real_user(demo_labels):
    """Must-show 4, for real: the CLI as user nobody into a root-owned folder it cannot write.
    The child imports medviewer from a world-readable copy, wherever this clone lives."""
    base = tempfile.mkdtemp(prefix="medviewer-ro-")
    try:
        os.chmod(base, 0o755)
        series = os.path.join(base, "series")
        readonly = os.path.join(base, "readonly")
        os.mkdir(readonly, 0o755)
        from medviewer.io.demo_study import write_demo_study

        series = write_demo_study(series)
        code = _importable_copy(base)
        for dirpath, dirnames, filenames in os.walk(base):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        mask = os.path.join(series, "lesions.nii.gz")
        env = dict(os.environ, HOME=base, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=code)
        probe = subprocess.run(NOBODY + [sys.executable, "-c", "import medviewer; print(medviewer.__file__)"],
                               capture_output=True, text=True, cwd=base, env=env, timeout=120)
        if probe.returncode != 0:  # the interpreter or its packages are not readable by nobody
            pytest.skip("user nobody cannot run this Python with its packages: "
                        + (probe.stderr.strip().splitlines() or ["no message"])[-1])
        assert probe.stdout.strip().startswith(code + os.sep)
        for fmt, name in (("seg", "seg.dcm"), ("nifti", "m.nii.gz"), ("json", "r.json")):
            run = subprocess.run(
                NOBODY + [sys.executable, "-m", "medviewer", "export", series, "--seg", mask, "--format", fmt,
                          "--out", os.path.join(readonly, name)],
                capture_output=True, text=True, cwd=base, env=env, timeout=300)
            assert run.returncode == 1, run.stderr
            assert "permission denied" in run.stderr and "Traceback" not in run.stderr
            assert len(run.stderr.strip().splitlines()) == 1
            assert os.listdir(readonly) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_written_files_get_the_umask_mode_not_0600(tmp_path):
    import os

    from medviewer.core.atomic import current_umask, write_text

    path = write_text(tmp_path / "report.json", "{}")
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()
