"""Test plugins that fail in each way the runner must survive (copied into a user plugin folder)."""

import os
import signal
import time

import numpy as np

from medviewer.plugins.api import LabelMapResult, Plugin


class Raises(Plugin):
    def run(self, request, progress, cancel):
        progress("about to fail", 0.5)
        raise ValueError("the model file is corrupt")


class Hangs(Plugin):
    """Never checks cancel: only killing its process (or abandoning its thread) stops it."""

    def run(self, request, progress, cancel):
        progress("stuck", 0.1)
        end = time.monotonic() + request.params["seconds"]
        while time.monotonic() < end:
            time.sleep(0.01)
        raise RuntimeError("hang test plugin woke up")


class Polite(Plugin):
    """Checks cancel between small steps."""

    def run(self, request, progress, cancel):
        for i in range(100000):
            cancel.check()
            progress("working", (i % 100) / 100)
            time.sleep(0.01)
        raise RuntimeError("unreachable")


class Hog(Plugin):
    def run(self, request, progress, cancel):
        progress("allocating", 0.1)
        blocks = []
        for _ in range(64):
            blocks.append(np.ones(2**28, dtype=np.uint8))  # 256 MiB at a time, touched
        return None


class KillsItself(Plugin):
    def run(self, request, progress, cancel):
        progress("crashing", 0.1)
        os.kill(os.getpid(), signal.SIGKILL)


class OffGrid(Plugin):
    def run(self, request, progress, cancel):
        v = request.volume
        return LabelMapResult(v.with_array(np.zeros(v.shape, np.uint8), origin=(1.0, 2.0, 3.0)))


class Good(Plugin):
    def run(self, request, progress, cancel):
        v = request.volume
        progress("thresholding", 0.5)
        return LabelMapResult(v.with_array((v.array > 0).astype(np.uint8)))
