"""The classification (lesion density) and image-to-image (denoise) built-ins on real data."""

from __future__ import annotations

import json

import numpy as np

from medviewer.plugins.api import ImageResult, Prompts, Request, ScoresResult
from medviewer.plugins.registry import get_manifest
from medviewer.plugins.runner import Runner


def test_denoise_reduces_noise_on_the_source_grid(lung_crop):
    runner = Runner()
    job = runner.submit(get_manifest("denoise"), Request(lung_crop, params={"iterations": 3}))
    assert job.wait(120) == "returned", job.error
    out = job.result
    assert isinstance(out, ImageResult) and out.image.same_grid(lung_crop)
    assert out.image.array.dtype == lung_crop.array.dtype
    # Noise: the high-frequency part (voxel minus its in-plane neighbours' mean) shrinks.
    def roughness(a):
        a = a.astype(float)
        return np.std(a[:, 1:-1, 1:-1] - (a[:, :-2, 1:-1] + a[:, 2:, 1:-1] + a[:, 1:-1, :-2] + a[:, 1:-1, 2:]) / 4)
    assert roughness(out.image.array) < 0.8 * roughness(lung_crop.array)
    # ... while the image stays the same image (mean HU within a few HU).
    assert abs(out.image.array.mean() - lung_crop.array.mean()) < 5
    assert "classical" in out.description


def test_denoise_bilateral_and_cancel(lung_crop):
    runner = Runner()
    job = runner.submit(get_manifest("denoise"), Request(lung_crop, params={"method": "bilateral"}))
    job.cancel()
    assert job.wait(5) == "aborted"


def test_lesion_density_classifies_the_demo_lesions(demo_volume, demo_series):
    lesions = {l["name"]: l for l in json.loads((demo_series / "lesions.json").read_text())["lesions"]}
    runner = Runner()
    m = get_manifest("lesion-density")

    def top(point):
        res = runner.run(m, Request(demo_volume, Prompts(positive=[point]), {"radius_mm": 5}))
        assert isinstance(res, ScoresResult)
        assert abs(sum(res.scores.values()) - 1) < 1e-6
        return max(res.scores, key=res.scores.get), res

    name, res = top(lesions["lesion 1"]["center_mm"])  # 35 HU in the lung
    assert name == "soft tissue"
    assert "heuristic" in res.note and res.region is not None
    assert np.allclose(res.region.center_mm, lesions["lesion 1"]["center_mm"])
    assert top(lesions["lesion 3"]["center_mm"])[0] == "fluid"  # 15 HU in the liver
    c = np.asarray(lesions["lesion 1"]["center_mm"]) + [0, 0, 25]  # lung above the lesion
    assert top(c)[0] == "air or lung"
