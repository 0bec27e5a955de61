"""A user-folder segmentation plugin for the batch tests: voxels above ``hu`` are label 1;
``sleep_s`` keeps it busy that long after its first stage (a study still running when the test
kills the Dask scheduler)."""

import time

import numpy as np

from medviewer.plugins.api import LabelMapResult, Plugin


class Threshold(Plugin):
    def run(self, request, progress, cancel):
        progress("thresholding", 0.5)
        time.sleep(float(request.params.get("sleep_s") or 0))
        volume = request.volume
        mask = (np.asarray(volume.array) > float(request.params["hu"])).astype(np.uint8)
        return LabelMapResult(volume.with_array(mask), self.manifest.labels)
