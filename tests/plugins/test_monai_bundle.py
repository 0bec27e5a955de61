"""MONAI bundles (Model Zoo layout, built in tmp dirs) run through the plugin, runner and CLI on a
crop of a real series: geometry, labels and boxes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from medviewer.core.volume import Volume
from medviewer.io import read_image
from medviewer.plugins import trust
from medviewer.plugins.api import BoxesResult, CancelToken, LabelMapResult, PluginError, Request
from medviewer.plugins.registry import get_manifest, load_plugin
from medviewer.plugins.runner import Runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = {"threads": "1"}  # tiny convolutions on a shared 2-core machine: one thread is fastest


def run_in_process(volume, **params):
    m = get_manifest("monai-bundle")
    plugin = load_plugin(m)
    plugin.prepare("cpu")
    return plugin.run(Request(volume, params=m.resolve_params({**FAST, **params})), lambda *a: None, CancelToken())


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_segmentation_bundle_through_the_runner(seg_bundle, lung_crop):
    trust.set_trusted(seg_bundle)
    stages = []
    job = Runner().submit(get_manifest("monai-bundle"),
                          Request(lung_crop, params={"bundle": str(seg_bundle), **FAST}),
                          on_event=lambda e: stages.append(e.stage) if e.kind == "progress" else None)
    assert job.wait(180) == "returned", job.error
    res = job.result
    assert isinstance(res, LabelMapResult)
    assert res.label_map.same_grid(lung_crop)
    assert res.label_map.source_sop_instance_uids == lung_crop.source_sop_instance_uids
    assert set(np.unique(res.label_map.array)) <= {0, 1}
    assert [(l.value, l.name) for l in res.labels] == [(1, "body tissue")]  # from metadata.json
    truth = lung_crop.array > -300
    d = dice(res.label_map.array == 1, truth)
    print(f"\nDice of the briefly fitted bundle against its target: {d:.3f}")
    assert d > 0.6
    assert {"reading the bundle", "loading the model", "preprocessing", "inference"} <= set(stages)


def test_output_matches_monai_own_file_pipeline(seg_bundle, lung_crop, lung_crop_file):
    """The in-memory hand-over (MetaTensor, RAS affine) gives what MONAI's own loader gives."""
    import torch
    from monai.bundle import ConfigParser

    trust.set_trusted(seg_bundle)
    ours = run_in_process(lung_crop, bundle=str(seg_bundle), crop_body="false").label_map.array

    parser = ConfigParser()
    parser.read_config(str(seg_bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(seg_bundle)
    parser["device"] = torch.device("cpu")
    parser["postprocessing#transforms#3#_disabled_"] = True  # SaveImaged
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(seg_bundle / "models" / "model.pt", weights_only=True))
    net.eval()
    data = parser.get_parsed_content("preprocessing")({"image": str(lung_crop_file)})
    with torch.no_grad():
        data["pred"] = parser.get_parsed_content("inferer")(data["image"][None], net)[0]
    pred = parser.get_parsed_content("postprocessing")(data)["pred"]
    theirs = np.transpose(np.asarray(pred[0]), (2, 1, 0))
    assert theirs.shape == ours.shape
    agree = (theirs == ours).mean()
    print(f"\nagreement with MONAI's own file pipeline: {agree:.5f}")
    assert agree > 0.999


def test_crop_to_body_gives_the_same_mask(seg_bundle, lung_crop):
    trust.set_trusted(seg_bundle)
    full = run_in_process(lung_crop, bundle=str(seg_bundle), crop_body="false").label_map.array
    # Call the region above -900 HU "body" so the crop really drops rows of air.
    cropped = run_in_process(lung_crop, bundle=str(seg_bundle), crop_body="true", body_hu="-900").label_map
    assert cropped.same_grid(lung_crop)
    assert (full == cropped.array).mean() > 0.99


def test_an_untrusted_bundle_is_refused_with_how_to_trust(seg_bundle, lung_crop):
    with pytest.raises(PluginError) as err:
        run_in_process(lung_crop, bundle=str(seg_bundle))
    msg = str(err.value)
    assert "not trusted" in msg and "--trust" in msg and str(seg_bundle) in msg


def test_a_folder_that_is_not_a_bundle_is_refused(tmp_path, lung_crop):
    with pytest.raises(PluginError, match="not a MONAI bundle: no configs/inference.json"):
        run_in_process(lung_crop, bundle=str(tmp_path))


def test_a_zoo_bundle_without_its_weights_says_what_is_missing(tmp_path, lung_crop):
    """A Model Zoo bundle cloned without its large files has configs and a large_files.yml but no
    weights: the message says the weights are missing and how to get them, not that the folder is
    no bundle."""
    import shutil

    from plugin_bundles import model_zoo_dir

    source = os.path.join(model_zoo_dir(), "spleen_ct_segmentation")
    if not os.path.isdir(source):
        pytest.skip(f"no Model Zoo configs at {model_zoo_dir()}")
    bundle = tmp_path / "spleen_ct_segmentation"
    shutil.copytree(source, bundle, ignore=shutil.ignore_patterns("models"))
    assert (bundle / "large_files.yml").is_file()
    trust.set_trusted(bundle)
    with pytest.raises(PluginError) as err:
        run_in_process(lung_crop, bundle=str(bundle))
    text = str(err.value)
    assert "the bundle's weights are missing: models/ holds no .pt or .ts file" in text
    assert "large_files.yml" in text and "medviewer models get spleen_ct_segmentation" in text
    assert "not a MONAI bundle" not in text


def test_a_bundle_medviewer_cannot_run_is_refused_before_its_missing_weights(tmp_path, lung_crop):
    """A generative bundle without its weights (maisi_ct_generative as cloned): the user hears that
    medviewer cannot run it, not that its weights are missing (and fetches hundreds of MB for a
    refusal)."""
    bundle = tmp_path / "a_generative_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "inference.json").write_text(json.dumps({"network_def": {"_target_": "UNet"}}))
    (bundle / "configs" / "metadata.json").write_text(json.dumps({
        "task": "CT synthesis",
        "network_data_format": {"inputs": {"latent": {"type": "noise", "format": "image", "num_channels": 4}},
                                "outputs": {"pred": {"type": "image", "format": "hounsfield"}}}}))
    (bundle / "large_files.yml").write_text("large_files: []\n")
    trust.set_trusted(bundle)
    with pytest.raises(PluginError) as err:
        run_in_process(lung_crop, bundle=str(bundle))
    assert "cannot run in medviewer: it makes images from noise" in str(err.value)
    assert "weights are missing" not in str(err.value)


def test_detection_bundle_gives_boxes_in_patient_mm(det_bundle, lung_crop):
    trust.set_trusted(det_bundle)
    job = Runner().submit(get_manifest("monai-bundle"),
                          Request(lung_crop, params={"bundle": str(det_bundle), **FAST}))
    assert job.wait(180) == "returned", job.error
    res = job.result
    assert isinstance(res, BoxesResult)
    assert 1 <= len(res.boxes) <= 5  # detections_per_img in the bundle's detector_ops
    assert [(l.value, l.name) for l in res.labels] == [(0, "nodule")]
    corners = lung_crop.voxel_to_patient(np.array([[-0.5] * 3, np.asarray(lung_crop.shape) - 0.5]))
    lo, hi = corners.min(axis=0) - 1e-3, corners.max(axis=0) + 1e-3
    scores = [b.score for b in res.boxes]
    assert scores == sorted(scores, reverse=True)
    for b in res.boxes:
        assert b.name == "nodule" and b.label == 0
        assert np.all(np.asarray(b.lower_mm) >= lo) and np.all(np.asarray(b.upper_mm) <= hi), (b, lo, hi)
        assert np.all(np.asarray(b.size_mm) > 0)


def test_voxel_boxes_map_to_lps_millimetres():
    from medviewer_plugins.monai_bundle.impl import LPS_TO_RAS, voxel_boxes_to_patient

    v = Volume(np.zeros((10, 20, 30)), spacing=(0.5, 0.8, 2.0), origin=(12.0, -40.0, 100.0),
               direction=np.diag([1.0, -1.0, 1.0]))
    ras = LPS_TO_RAS @ v.affine
    box = np.array([[2, 3, 4, 6, 9, 5]])  # x0 y0 z0 x1 y1 z1 in index units
    lower, upper = voxel_boxes_to_patient(box, ras)[0]
    a, b = v.index_to_patient([2, 3, 4]), v.index_to_patient([6, 9, 5])
    assert np.allclose(lower, np.minimum(a, b)) and np.allclose(upper, np.maximum(a, b))
    assert np.allclose(lower, [13.0, -47.2, 108.0]) and np.allclose(upper, [15.0, -42.4, 110.0])


def cli(*args, check=True):
    out = subprocess.run([sys.executable, "-m", "medviewer", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=os.environ.copy())
    if check:
        assert out.returncode == 0, out.stderr
    return out


def test_cli_run_writes_a_mask_on_the_source_grid_and_boxes_json(seg_bundle, det_bundle, lung_crop_file, tmp_path):
    seg = tmp_path / "seg.nii.gz"
    refused = cli("run", "monai-bundle", str(lung_crop_file), "--param", f"bundle={seg_bundle}",
                  "--out", str(seg), check=False)
    assert refused.returncode == 1 and "not trusted" in refused.stderr and "--trust" in refused.stderr
    assert not seg.exists()

    out = cli("run", "monai-bundle", str(lung_crop_file), "--param", f"bundle={seg_bundle}", "--param",
              "threads=1", "--out", str(seg), "--trust", "--device", "cpu")
    assert "body tissue" in out.stdout
    mask, source = read_image(seg), read_image(lung_crop_file)
    assert mask.same_grid(source) and set(np.unique(mask.array)) <= {0, 1} and mask.array.any()

    boxes = tmp_path / "boxes.json"
    cli("run", "monai-bundle", str(lung_crop_file), "--param", f"bundle={det_bundle}", "--param",
        "threads=1", "--out", str(boxes), "--trust", "--quiet")
    data = json.loads(boxes.read_text())
    assert data["coordinates"].startswith("DICOM patient LPS millimetres")
    assert data["boxes"] and all(b["name"] == "nodule" for b in data["boxes"])
    b = data["boxes"][0]
    assert np.allclose(np.add(b["lower_mm"], b["upper_mm"]) / 2, b["center_mm"], atol=1e-2)
    assert source.contains_point(b["center_mm"])


def test_box_conversion_agrees_with_monai_affine_box_to_world(lung_crop):
    """Our voxel -> LPS mm box conversion gives what the detection bundles' own
    AffineBoxToWorldCoordinated(affine_lps_to_ras=True) gives, after a RAS reorientation and a
    resampling."""
    import torch
    from monai.apps.detection.transforms.dictionary import AffineBoxToWorldCoordinated
    from monai.transforms import Compose, EnsureChannelFirstd, Orientationd, Spacingd

    from medviewer_plugins.monai_bundle.impl import volume_to_metatensor, voxel_boxes_to_patient

    pre = Compose([EnsureChannelFirstd("image"), Orientationd("image", axcodes="RAS"),
                   Spacingd("image", pixdim=[1.2, 1.2, 2.5])])
    image = pre({"image": volume_to_metatensor(lung_crop, False)})["image"]
    boxes = torch.tensor([[2.0, 3.0, 1.0, 10.0, 12.0, 6.0], [0.0, 0.0, 0.0, 40.0, 30.0, 15.0]])
    data = {"image": image, "box": boxes.clone(), "label": torch.tensor([0, 0])}
    world = AffineBoxToWorldCoordinated(box_keys="box", box_ref_image_keys="image", affine_lps_to_ras=True)(data)["box"]
    ours = voxel_boxes_to_patient(boxes.numpy(), np.asarray(image.affine))
    assert np.allclose(ours[:, 0], np.asarray(world)[:, :3], atol=1e-3)
    assert np.allclose(ours[:, 1], np.asarray(world)[:, 3:], atol=1e-3)


def test_a_bundle_that_downloads_is_stopped(tmp_path, lung_crop):
    from plugin_bundles import write_segmentation_bundle

    folder = write_segmentation_bundle(tmp_path / "greedy", channels=(2, 4))
    config_path = os.path.join(folder, "configs", "inference.json")
    with open(config_path) as fh:
        config = json.load(fh)
    config["network"] = ("$monai.apps.utils.download_url('https://example.invalid/w.pt', "
                         "@bundle_root + '/w.pt') or @network_def.to(@device)")
    with open(config_path, "w") as fh:
        json.dump(config, fh)
    trust.set_trusted(folder)
    with pytest.raises(PluginError, match="downloads are disabled"):
        run_in_process(lung_crop, bundle=folder)
    assert not os.path.exists(os.path.join(folder, "w.pt"))


def test_a_torchscript_model_gives_the_same_labels(tmp_path, lung_crop):
    import shutil

    from plugin_bundles import write_segmentation_bundle

    pt = write_segmentation_bundle(tmp_path / "pt", channels=(2, 4), seed=3, torchscript=True)
    ts = str(tmp_path / "ts")
    shutil.copytree(pt, ts)
    os.remove(os.path.join(ts, "models", "model.pt"))  # only models/model.ts is left
    trust.set_trusted(pt)
    trust.set_trusted(ts)
    a = run_in_process(lung_crop, bundle=pt, crop_body="false").label_map
    b = run_in_process(lung_crop, bundle=ts, crop_body="false").label_map
    assert b.same_grid(lung_crop)
    assert np.array_equal(a.array, b.array)


def test_the_weights_its_handlers_name_are_the_ones_loaded(seg_bundle, lung_crop, tmp_path):
    """pediatric_abdominal_ct_segmentation's CheckpointLoader stands in ``handlers`` and loads
    models/dynunet_FT.pt. Here: the fitted weights under such a name, random ones as model.pt beside
    them; the fitted ones must run (before, the plugin looked only at ``checkpointloader`` and fell
    back to model.pt)."""
    import shutil

    import torch

    folder = tmp_path / "handlers_bundle"
    shutil.copytree(seg_bundle, folder)
    os.rename(folder / "models" / "model.pt", folder / "models" / "net_FT.pt")
    state = torch.load(folder / "models" / "net_FT.pt", weights_only=True)
    torch.manual_seed(7)
    torch.save({k: torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()},
               folder / "models" / "model.pt")
    cfg = folder / "configs" / "inference.json"
    data = json.loads(cfg.read_text())
    del data["checkpointloader"]
    data["initialize"] = ["$monai.utils.set_determinism(seed=123)"]
    data["handlers"] = [{"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/net_FT.pt'",
                         "load_dict": {"model": "@network"}}]
    cfg.write_text(json.dumps(data))
    trust.set_trusted(folder)
    res = run_in_process(lung_crop, bundle=str(folder))
    assert dice(res.label_map.array == 1, lung_crop.array > -300) > 0.6
    os.remove(folder / "models" / "net_FT.pt")
    with pytest.raises(PluginError, match=r"its config loads models/net_FT.pt, which is missing \(models/ has model.pt"):
        run_in_process(lung_crop, bundle=str(folder))


def test_class_names_come_from_label_def_too():
    """pediatric_abdominal_ct_segmentation names its classes in ``label_def``, not ``channel_def``."""
    from medviewer_plugins.monai_bundle.impl import channel_names

    pred = {"type": "image", "format": "segmentation", "num_channels": 4,
            "label_def": {"0": "background", "1": "liver", "2": "spleen", "3": "pancreas"}}
    assert channel_names({"network_data_format": {"outputs": {"pred": pred}}}) == {
        0: "background", 1: "liver", 2: "spleen", 3: "pancreas"}
    pred["channel_def"] = {"0": "background", "1": "organ"}  # both: channel_def, as before
    assert channel_names({"network_data_format": {"outputs": {"pred": pred}}})[1] == "organ"
