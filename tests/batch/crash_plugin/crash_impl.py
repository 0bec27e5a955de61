"""A plugin for the batch tests that kills its own process (SIGKILL, as the OOM killer would)
on the series of patient ``patient``, and scores every other series."""

import os
import signal

from medviewer.plugins.api import Plugin, ScoresResult


class Crash(Plugin):
    def run(self, request, progress, cancel):
        if request.volume.meta.get("patient_id") == request.params["patient"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return ScoresResult({"ok": 1.0})
