"""A plugin for the batch tests that kills its own process (SIGKILL, as the OOM killer would)
on the series of patient ``patient``, and scores every other series. With ``once`` (a file
path) it kills only its first attempt (it makes the file), and a retry scores the series."""

import os
import signal

from medviewer.plugins.api import Plugin, ScoresResult


class Crash(Plugin):
    def run(self, request, progress, cancel):
        once = request.params.get("once") or ""
        if request.volume.meta.get("patient_id") == request.params["patient"]:
            if not once or not os.path.exists(once):
                if once:
                    open(once, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
        return ScoresResult({"ok": 1.0})
