"""SimpleITK denoising filters, with progress and cancel through ITK's progress events."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from medviewer.plugins.api import Cancelled, ImageResult, Plugin, PluginError


class Denoise(Plugin):
    def run(self, request, progress, cancel):
        p = request.params
        volume = request.volume
        method = p["method"]
        image = sitk.Cast(volume.to_sitk(), sitk.sitkFloat32)
        if method == "curvature-flow":
            if p["iterations"] < 1 or not 0 < p["time_step"] <= 0.125:
                raise PluginError("curvature flow needs iterations >= 1 and 0 < time_step <= 0.125")
            f = sitk.CurvatureFlowImageFilter()
            f.SetNumberOfIterations(int(p["iterations"]))
            f.SetTimeStep(float(p["time_step"]))
        elif method == "bilateral":
            f = sitk.BilateralImageFilter()
            f.SetDomainSigma(float(p["sigma_mm"]))
            f.SetRangeSigma(float(p["range_sigma_hu"]))
        else:
            f = sitk.SmoothingRecursiveGaussianImageFilter()
            f.SetSigma(float(p["sigma_mm"]))

        stage = f"denoising ({method})"

        def on_progress():
            if cancel.is_set():
                f.Abort()
            progress(stage, f.GetProgress())

        f.AddCommand(sitk.sitkProgressEvent, on_progress)
        progress(stage, 0.0)
        try:
            out = f.Execute(image)
        except RuntimeError as exc:
            if cancel.is_set() or "abort" in str(exc).lower():
                raise Cancelled() from None
            raise
        cancel.check()
        array = sitk.GetArrayFromImage(out)
        # Keep the source's integer type where it had one (CT in HU), rounding the filter output.
        if np.issubdtype(volume.array.dtype, np.integer):
            info = np.iinfo(volume.array.dtype)
            array = np.clip(np.rint(array), info.min, info.max).astype(volume.array.dtype)
        progress(stage, 1.0)
        desc = f"denoised ({method}; classical SimpleITK filter)"
        return ImageResult(volume.with_array(array, meta={**volume.meta, "derived": desc}), desc)
