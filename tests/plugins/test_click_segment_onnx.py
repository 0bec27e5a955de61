"""The click network on ONNX Runtime (medviewer_plugins/click_segment/onnx_backend.py): the shipped
bundle's model.onnx is the network in model.pt, the learned engine runs it by default, and its
masks are torch's on real validation sarcomas; bundles with only model.pt still run on torch."""

import json
import shutil

import numpy as np
import pytest
import torch

from medviewer_plugins.click_segment import learned
from medviewer_plugins.click_segment.learned import DEFAULT_BUNDLE


def test_the_shipped_onnx_file_is_the_network_in_model_pt():
    """The committed model.onnx gives model.pt's logits (a stale export after retraining fails),
    on a window of another size than the export's (its spatial axes are dynamic)."""
    import importlib.util

    onnx_path = DEFAULT_BUNDLE / "models" / "model.onnx"
    assert onnx_path.is_file() and 10e6 < onnx_path.stat().st_size < 40e6
    spec = importlib.util.spec_from_file_location("export_onnx", DEFAULT_BUNDLE.parents[1] / "training" / "export_onnx.py")
    export_onnx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export_onnx)
    assert export_onnx.check(DEFAULT_BUNDLE, onnx_path, shape_zyx=(32, 48, 64)) < 1e-3


def test_auto_runs_onnx_and_the_backends_give_the_same_probability(sts_cases):
    from medviewer.io import load_volume

    learned._CACHE.clear()
    assert learned.choose_backend(DEFAULT_BUNDLE) == "onnx"
    onnx = learned.load_model(DEFAULT_BUNDLE)
    assert onnx.backend == "onnx" and learned.model_loaded(DEFAULT_BUNDLE, "cpu")
    torch_model = learned.load_model(DEFAULT_BUNDLE, "cpu", "torch")
    assert torch_model.backend == "torch" and isinstance(torch_model.net, torch.nn.Module)
    assert onnx.grid == torch_model.grid
    volume = load_volume(next(c for c in sts_cases if c.name == "STS_019") / "image")
    centre = volume.voxel_to_patient((np.asarray(volume.shape) // 2).astype(float))
    runs = [learned._probability(volume, [centre], [], m, None, None, 0.0, 1.0) for m in (onnx, torch_model)]
    assert np.abs(runs[0].probability - runs[1].probability).max() < 1e-3


@pytest.mark.data
@pytest.mark.parametrize("name", ["STS_019", "STS_024"])
def test_onnx_and_torch_masks_agree_on_validation_sarcomas(sts_cases, name):
    """One click at the tumour's deepest point and a negative click in what the first mask spilled:
    the two backends' masks agree (Dice >= 0.999; benchmarks/click_latency.py --agreement runs all
    six validation cases)."""
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.segmentation.guidance import deepest_point, dice

    case = next(c for c in sts_cases if c.name == name)
    volume = load_volume(case / "image")
    truth = read_rtstruct(case / "RS.dcm", volume, roi_names="GTV_Mass_CT").array > 0
    click = [volume.voxel_to_patient(deepest_point(truth, volume.spacing[::-1])[0])]
    masks = {b: learned.segment_learned(volume, click, backend=b) for b in ("onnx", "torch")}
    assert masks["onnx"].sum() > 1000 and dice(masks["onnx"], truth) > 0.5
    assert dice(masks["onnx"], masks["torch"]) >= 0.999
    spill = np.argwhere(masks["onnx"] & ~truth)
    if len(spill):
        negative = [volume.voxel_to_patient(spill[len(spill) // 2].astype(float))]
        again = {b: learned.segment_learned(volume, click, negative, backend=b) for b in ("onnx", "torch")}
        assert dice(again["onnx"], again["torch"]) >= 0.999


def test_a_bundle_with_only_model_pt_runs_on_torch(tmp_path, monkeypatch):
    """A user's bundle without model.onnx keeps working through torch; forcing ONNX on it says
    what is missing; an unknown backend is refused by name."""
    from medviewer.core.errors import MedviewerError

    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE / "configs", bundle / "configs")
    (bundle / "models").mkdir()
    shutil.copy(DEFAULT_BUNDLE / "models" / "model.pt", bundle / "models")
    assert learned.bundle_available(bundle) and learned.choose_backend(bundle) == "torch"
    model = learned.load_model(bundle)
    assert model.backend == "torch"
    x = np.zeros((3, 16, 32, 32), np.float32)
    assert model.lesion_probability(x).shape == (16, 32, 32)
    with pytest.raises(MedviewerError, match="model.onnx"):
        learned.load_model(bundle, "cpu", "onnx")
    monkeypatch.setenv("MEDVIEWER_CLICK_BACKEND", "tensorflow")
    with pytest.raises(MedviewerError, match="unknown click network backend 'tensorflow'"):
        learned.load_model(bundle)


def test_a_bundle_with_only_model_onnx_runs_without_model_pt(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE / "configs", bundle / "configs")
    (bundle / "models").mkdir()
    shutil.copy(DEFAULT_BUNDLE / "models" / "model.onnx", bundle / "models")
    assert learned.bundle_available(bundle)
    model = learned.load_model(bundle)
    assert model.backend == "onnx" and model.device == "cpu"
    grid = json.loads((bundle / "configs" / "inference.json").read_text())["patch_size_zyx"]
    assert model.grid.patch_zyx == tuple(grid)
    # a damaged file is one line naming it, not ONNX Runtime's traceback
    (bundle / "models" / "model.onnx").write_bytes(b"not a network")
    monkeypatch.setattr(learned, "_CACHE", {})
    from medviewer.core.errors import MedviewerError

    with pytest.raises(MedviewerError, match="ONNX Runtime cannot load the network"):
        learned.load_model(bundle)
