"""The click-to-segment plugin: runs the chosen engine on the request's clicks."""

from __future__ import annotations

import numpy as np

from medviewer.plugins.api import LabelMapResult, Plugin, PluginError


class ClickSegment(Plugin):
    def run(self, request, progress, cancel):
        if not request.prompts.positive:
            raise PluginError("click inside the lesion first (a positive point)")
        engine = request.params["engine"]
        note = ""
        report = lambda stage, f: progress(stage, f)  # noqa: E731
        if engine == "learned":
            from plugins.click_segment.learned import DEFAULT_BUNDLE, segment_learned

            bundle = request.params.get("bundle") or DEFAULT_BUNDLE
            mask = segment_learned(request.volume, request.prompts.positive, request.prompts.negative,
                                   bundle=bundle, device=self.resolve_device(request.device),
                                   progress=report, cancelled=cancel.is_set)
        elif engine == "classical":
            from medviewer.segmentation.classical import ClassicalParams, reached_reach, segment_classical

            mask = segment_classical(request.volume, request.prompts.positive, request.prompts.negative,
                                     progress=report, cancelled=cancel.is_set)
            if reached_reach(request.volume, mask, request.prompts.positive, request.prompts.negative):
                note = (f"the mask grew as far as the classical engine looks ({ClassicalParams.max_radius_mm:g} mm "
                        "around the clicks): it has probably leaked beyond the lesion; add a negative click "
                        "where it spills, or try the learned engine")
        else:
            raise PluginError(f"unknown engine {engine!r} (classical or learned)")
        cancel.check()
        labels = request.volume.with_array(mask.astype(np.uint8), modality="SEG")
        return LabelMapResult(labels, self.manifest.labels, note=note)
