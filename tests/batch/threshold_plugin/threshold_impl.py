"""A user-folder segmentation plugin for the batch tests: voxels above ``hu`` are label 1."""

import numpy as np

from medviewer.plugins.api import LabelMapResult, Plugin


class Threshold(Plugin):
    def run(self, request, progress, cancel):
        progress("thresholding", 0.5)
        volume = request.volume
        mask = (np.asarray(volume.array) > float(request.params["hu"])).astype(np.uint8)
        return LabelMapResult(volume.with_array(mask), self.manifest.labels)
