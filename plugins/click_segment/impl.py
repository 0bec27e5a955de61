"""The click-to-segment plugin: runs the chosen engine on the request's clicks."""

from __future__ import annotations

import numpy as np

from medviewer.plugins.api import LabelMapResult, Plugin, PluginError


class ClickSegment(Plugin):
    def run(self, request, progress, cancel):
        if not request.prompts.positive:
            raise PluginError("click inside the lesion first (a positive point)")
        engine = request.params["engine"]
        if engine != "classical":
            raise PluginError(f"unknown engine {engine!r}")
        from medviewer.segmentation.classical import segment_classical

        progress("region growing", 0.1)
        mask = segment_classical(request.volume, request.prompts.positive, request.prompts.negative,
                                 progress=lambda stage, f: progress(stage, f), cancelled=cancel.is_set)
        cancel.check()
        labels = request.volume.with_array(mask.astype(np.uint8), modality="SEG")
        return LabelMapResult(labels, self.manifest.labels)
