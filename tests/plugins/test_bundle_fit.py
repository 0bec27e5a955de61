"""Which bundles medviewer refuses before building anything, and why (medviewer_plugins/monai_bundle/fit.py).

The metadata below has the shapes the Model Zoo's own bundles declare (classifiers, generative
models, 2D networks, multi-channel MR, multi-phase CT), written here in a few lines each; the
eight real bundles of the shared model-zoo folder must all pass."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from medviewer.plugins import trust
from medviewer.plugins.api import CancelToken, PluginError, Request
from medviewer.plugins.registry import get_manifest, load_plugin
from medviewer_plugins.monai_bundle.fit import check_fit


def meta(inp=None, out=None, task="a test bundle", key="image"):
    image = {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1,
             "spatial_shape": [96, 96, 96], "channel_def": {"0": "image"}, **(inp or {})}
    pred = {"type": "image", "format": "segmentation", "num_channels": 2, **(out or {})}
    return {"task": task, "network_data_format": {"inputs": {key: image}, "outputs": {"pred": pred}}}


def config(keys="image", inferer="SlidingWindowInferer"):
    return {"preprocessing": {"_target_": "Compose", "transforms": [{"_target_": "LoadImaged", "keys": keys},
                                                                    {"_target_": "EnsureChannelFirstd", "keys": keys}]},
            "inferer": {"_target_": inferer, "roi_size": [96, 96, 96]}}


def refused(metadata, cfg=None) -> str:
    with pytest.raises(PluginError) as err:
        check_fit("the_bundle", metadata, cfg or config(), "CT")
    text = str(err.value)
    assert text.startswith("bundle the_bundle (a test bundle) cannot run in medviewer: ")
    assert "segment or detect in one 3D series" in text
    return text


def test_a_ct_segmentation_bundle_fits_without_a_word():
    assert check_fit("b", meta(), config(), "CT") == []
    assert check_fit("b", {}, {}, "CT") == []  # nothing declared: nothing held against it


def test_a_detection_bundle_fits():
    assert check_fit("b", meta(out={"type": "object", "format": "dict"}), config(), "CT") == []


def test_a_classifier_is_refused():
    text = refused(meta(out={"type": "probabilities", "format": "classes", "num_channels": 4}))
    assert "it gives class probabilities (its metadata's output 'pred': probabilities, classes)" in text


def test_a_generative_model_is_refused():
    text = refused(meta(inp={"type": "noise", "format": "image"}, key="latent",
                        out={"type": "feature", "format": "image"}))
    assert "it makes images from noise (its input 'latent' is noise)" in text


def test_a_generative_model_described_by_its_generator_alone_is_refused():
    """maisi_ct_generative's metadata has no network_data_format: its generator_data_format says
    what it reads (noise), and that is enough to refuse it."""
    metadata = {"task": "a test bundle",
                "generator_data_format": {"inputs": {"latent": {"type": "noise", "format": "image"},
                                                     "condition": {"type": "timesteps", "format": "timesteps"}},
                                          "outputs": {"pred": {"type": "feature", "format": "image"}}}}
    text = refused(metadata)
    assert "it makes images from noise (its input 'latent' is noise)" in text


def test_landmarks_are_refused():
    text = refused(meta(out={"type": "tuples", "format": "points"}))
    assert "it gives points (landmarks)" in text


def test_a_2d_network_without_a_slice_inferer_is_refused():
    text = refused(meta(inp={"spatial_shape": [736, 480]}), config(inferer="SimpleInferer"))
    assert "it works on 2D images (its input is 736 x 480) and its config has no SliceInferer" in text


def test_a_2d_network_run_slice_by_slice_fits():
    assert check_fit("b", meta(inp={"spatial_shape": [256, 256], "modality": "MR"}),
                     config(inferer="SliceInferer"), "MR") == []


def test_multichannel_mr_is_refused_with_its_channels():
    text = refused(meta(inp={"modality": "MR", "num_channels": 4,
                             "channel_def": {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}}))
    assert "it takes 4 images as the channels of its input (T1c, T1, T2, FLAIR)" in text


def test_guidance_channels_are_not_input_images():
    """DeepEdit declares 3 channels (the CT and two click maps the plugin makes) and one channel_def."""
    assert check_fit("b", meta(inp={"num_channels": 3}), config(), "CT") == []


def test_multiphase_ct_is_refused_with_its_phases():
    text = refused(meta(inp={"num_channels": 3}), config(keys=["artery", "vein", "excret", "label"]))
    assert "it reads 3 images (artery, vein, excret: one series each" in text


def test_another_modality_runs_with_a_warning():
    notes = check_fit("b", meta(inp={"modality": "MRI"}), config(), "CT")
    assert notes == ["the bundle was made for MR images and this series is CT: its result is unlikely to mean anything"]
    assert check_fit("b", meta(inp={"modality": "MRI"}), config(), "OT") == []  # a series of unknown modality


@pytest.mark.data
@pytest.mark.parametrize("name", ["spleen_ct_segmentation", "wholeBody_ct_segmentation", "swin_unetr_btcv_segmentation",
                                  "pancreas_ct_dints_segmentation", "renalStructures_UNEST_segmentation",
                                  "lung_nodule_ct_detection", "spleen_deepedit_annotation", "vista3d"])
def test_the_real_zoo_bundles_fit(name):
    from monai.bundle import ConfigParser
    from plugin_bundles import model_zoo_dir

    folder = os.path.join(model_zoo_dir(), name)
    if not os.path.isdir(folder):
        pytest.skip(f"no Model Zoo configs at {model_zoo_dir()}")
    configs = os.path.join(folder, "configs")
    parser = ConfigParser()
    parser.read_config(next(os.path.join(configs, n) for n in ("inference.json", "inference.yaml")
                            if os.path.isfile(os.path.join(configs, n))))
    with open(os.path.join(configs, "metadata.json"), encoding="utf-8") as fh:
        metadata = json.load(fh)
    assert check_fit(name, metadata, parser.config, "CT") == []


def run(bundle, volume):
    trust.set_trusted(bundle)
    m = get_manifest("monai-bundle")
    plugin = load_plugin(m)
    plugin.prepare("cpu")
    return plugin.run(Request(volume, params=m.resolve_params({"bundle": str(bundle), "threads": "1"})),
                      lambda *a: None, CancelToken())


def _edit_metadata(folder, change) -> None:
    path = os.path.join(folder, "configs", "metadata.json")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    change(data["network_data_format"])
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)


def test_the_plugin_refuses_before_building_the_network(seg_bundle, lung_crop, tmp_path):
    """A classifier whose network could not even be built: the refusal comes first, in one line."""
    folder = tmp_path / "classifier"
    shutil.copytree(seg_bundle, folder)
    _edit_metadata(folder, lambda f: f["outputs"]["pred"].update(type="probabilities", format="classes"))
    cfg = folder / "configs" / "inference.json"
    data = json.loads(cfg.read_text())
    data["network_def"]["_target_"] = "NoSuchNetwork"
    cfg.write_text(json.dumps(data))
    with pytest.raises(PluginError, match=r"^bundle classifier \(.*\) cannot run in medviewer: it gives class "
                                          r"probabilities") as err:
        run(folder, lung_crop)
    assert "\n" not in str(err.value)


def test_an_mr_bundle_on_a_ct_series_warns(seg_bundle, lung_crop, tmp_path):
    folder = tmp_path / "mr_bundle"
    shutil.copytree(seg_bundle, folder)
    _edit_metadata(folder, lambda f: f["inputs"]["image"].update(modality="MR"))
    assert lung_crop.modality == "CT"
    result = run(folder, lung_crop)
    assert "made for MR images and this series is CT" in result.note
