"""The eight real MONAI Model Zoo bundles (configs and scripts from the shared model-zoo folder)
with stand-in weights (each bundle's own ``network_def``, randomly initialised, saved as its
``models/model.pt``), run through the monai-bundle plugin on a small crop of a real CT: each runs
or refuses with a specific one-line message; results lie on the source grid and carry the
bundle's names; for the spleen, wholeBody (low-res) and lung nodule detector bundles the result
is MONAI's own ``monai.bundle run`` (ConfigWorkflow) result on the same input and weights.

Random weights test the plumbing (geometry, names, errors, which weights run), not accuracy.
The bundles whose networks take minutes per window on a shared CPU (SwinUNETR, DiNTS, UNesT, DeepEdit
at 128^3) run only with MEDVIEWER_SLOW_TESTS=1; their configuration fixes are tested without
inference here.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from medviewer.io import read_image, write_image
from medviewer.plugins import trust
from medviewer.plugins.api import BoxesResult, CancelToken, LabelMapResult, PluginError, Request
from medviewer.plugins.registry import get_manifest, load_plugin

pytestmark = pytest.mark.data

slow = pytest.mark.skipif(os.environ.get("MEDVIEWER_SLOW_TESTS") != "1",
                          reason="a heavy network on the CPU (minutes): set MEDVIEWER_SLOW_TESTS=1")
LUNA16_SPACING = (0.703125, 0.703125, 1.25)


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """``zoo(name)``: the real bundle with stand-in weights, built once per session."""
    from plugin_bundles import model_zoo_dir, standin_bundle

    if not os.path.isdir(model_zoo_dir()):
        pytest.skip(f"no Model Zoo configs at {model_zoo_dir()}")
    cache = tmp_path_factory.getbasetemp() / "model-zoo-standins"
    return lambda name: standin_bundle(name, cache)


def run_bundle(volume, bundle, **params):
    """The plugin in this process on ``volume`` (the bundle trusted first)."""
    trust.set_trusted(bundle)
    m = get_manifest("monai-bundle")
    plugin = load_plugin(m)
    plugin.prepare("cpu")
    request = Request(volume, params=m.resolve_params({"bundle": bundle, "threads": "2", **params}))
    return plugin.run(request, lambda *a: None, CancelToken())


def pipeline(bundle, **params):
    import torch

    from medviewer_plugins.monai_bundle.impl import BundleFolder, Pipeline

    return Pipeline(BundleFolder(bundle), torch.device("cpu"), params)


def monai_run(bundle, out_dir, **overrides):
    """MONAI's own run of the bundle's inference config (what `python -m monai.bundle run`
    does), on the CPU, with the given config overrides. Its evaluators need pytorch-ignite."""
    pytest.importorskip("ignite", reason="MONAI's own bundle run needs pytorch-ignite")
    from monai.bundle import ConfigWorkflow

    configs = os.path.join(bundle, "configs")
    os.makedirs(out_dir, exist_ok=True)
    workflow = ConfigWorkflow(config_file=os.path.join(configs, "inference.json"),
                              meta_file=os.path.join(configs, "metadata.json"), workflow_type="infer",
                              bundle_root=bundle, output_dir=str(out_dir),
                              **{"dataloader#num_workers": 0, "device": "$torch.device('cpu')", **overrides})
    workflow.initialize()
    workflow.run()
    workflow.finalize()


def channel_defs(bundle) -> dict[int, str]:
    with open(os.path.join(bundle, "configs", "metadata.json")) as fh:
        pred = json.load(fh)["network_data_format"]["outputs"]["pred"]
    return {int(k): v for k, v in pred["channel_def"].items()}


def images_ts(folder, volume):
    """``folder/imagesTs/ct.nii.gz``: the layout the segmentation bundles' datalists glob."""
    path = folder / "imagesTs" / "ct.nii.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(volume, path, force=True)
    return path


def monai_segmentation(bundle, volume, tmp_path, **overrides):
    images_ts(tmp_path / "data", volume)
    monai_run(bundle, tmp_path / "out", dataset_dir=str(tmp_path / "data"), **overrides)
    saved = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "out") for f in fs if f.endswith(".nii.gz")]
    assert len(saved) == 1, saved
    return read_image(saved[0])


# ---- the detector ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def luna16_ct(lung_crop, tmp_path_factory):
    """The CT crop resampled as the detector expects (0.703125 x 0.703125 x 1.25 mm, MONAI's
    Spacingd), written where the bundle's own loader reads it."""
    from monai.transforms import Compose, EnsureChannelFirstd, Spacingd

    from medviewer_plugins.monai_bundle.impl import metatensor_grid_volume, volume_to_metatensor

    pre = Compose([EnsureChannelFirstd("image"), Spacingd("image", pixdim=list(LUNA16_SPACING))])
    image = pre({"image": volume_to_metatensor(lung_crop, False)})["image"]
    resampled = metatensor_grid_volume(np.asarray(image[0], dtype=np.float32), np.asarray(image.affine), lung_crop)
    path = tmp_path_factory.mktemp("luna16") / "ct.nii.gz"
    write_image(resampled, path)
    return path


def test_detector_gives_monai_own_boxes_and_scores(zoo, luna16_ct, tmp_path):
    import torch
    from monai.data.box_utils import convert_box_mode

    bundle = zoo("lung_nodule_ct_detection")
    ours = run_bundle(read_image(luna16_ct), bundle)
    assert isinstance(ours, BoxesResult) and len(ours.boxes) > 10

    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"validation": [{"image": str(luna16_ct)}]}))
    monai_run(bundle, tmp_path / "out", data_list_file_path=str(datalist), dataset_dir=str(tmp_path))
    theirs = json.loads((tmp_path / "out" / "result_luna16_fold0.json").read_text())[0]
    scores = np.asarray(theirs["label_scores"])
    order = np.argsort(-scores, kind="stable")
    boxes = convert_box_mode(torch.as_tensor(theirs["box"]), src_mode="cccwhd", dst_mode="xyzxyz").numpy()[order]
    print(f"\n{len(ours.boxes)} boxes from ours, {len(scores)} from MONAI's own run")
    assert len(ours.boxes) == len(scores)
    assert np.allclose([b.score for b in ours.boxes], scores[order], atol=1e-5)
    assert np.allclose([[*b.lower_mm, *b.upper_mm] for b in ours.boxes], boxes, atol=1e-3)
    assert [b.label for b in ours.boxes] == list(np.asarray(theirs["label"])[order])


def test_detector_runs_model_pt_and_resamples_to_its_spacing(zoo, lung_crop):
    import torch

    from medviewer_plugins.monai_bundle.impl import volume_to_metatensor

    bundle = zoo("lung_nodule_ct_detection")
    pipe = pipeline(bundle)
    saved = torch.load(os.path.join(bundle, "models", "model.pt"), weights_only=True)
    held = pipe.detector.network.state_dict()
    assert pipe.detector.network is pipe.network
    assert set(held) == set(saved) and all(torch.equal(held[k], saved[k]) for k in saved)
    # A raw CT goes through the bundle's own Spacingd (whether_raw_luna16 set).
    image = pipe.preprocessing({"image": volume_to_metatensor(lung_crop, False)})["image"]
    assert np.allclose(image.pixdim, LUNA16_SPACING)

    res = run_bundle(lung_crop, bundle)
    assert res.boxes and {b.name for b in res.boxes} == {"lung nodule"}
    assert [(l.value, l.name) for l in res.labels] == [(0, "lung nodule")]
    scores = [b.score for b in res.boxes]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.02  # the bundle's score_thresh


# ---- segmentation bundles -----------------------------------------------------------------------
def test_spleen_matches_monai_own_run(zoo, lung_crop, tmp_path):
    bundle = zoo("spleen_ct_segmentation")
    ours = run_bundle(lung_crop, bundle, crop_body="false")
    theirs = monai_segmentation(bundle, lung_crop, tmp_path)
    assert theirs.same_grid(lung_crop) and ours.label_map.same_grid(lung_crop)
    agree = (np.asarray(theirs.array) == ours.label_map.array).mean()
    print(f"\nspleen: voxel agreement with MONAI's own run {agree:.5f}")
    assert agree > 0.999
    assert [(l.value, l.name) for l in ours.labels] == [(1, "spleen")]


@pytest.fixture(scope="module")
def wholebody_result(zoo, lung_crop):
    """wholeBody (low-res) on the whole crop: many of its 104 names present at once."""
    return run_bundle(lung_crop, zoo("wholeBody_ct_segmentation"), crop_body="false", highres="false")


def test_wholebody_lowres_matches_monai_own_run(zoo, wholebody_result, lung_crop, tmp_path):
    bundle = zoo("wholeBody_ct_segmentation")
    ours = wholebody_result
    theirs = monai_segmentation(bundle, lung_crop, tmp_path, **{"displayable_configs#highres": False})
    assert theirs.same_grid(lung_crop) and ours.label_map.same_grid(lung_crop)
    agree = (np.asarray(theirs.array) == ours.label_map.array).mean()
    print(f"\nwholeBody low-res: voxel agreement with MONAI's own run {agree:.5f}")
    assert agree > 0.999
    names = channel_defs(bundle)
    assert len(ours.labels) == 104 and all(l.name == names[l.value] for l in ours.labels)


def test_wholebody_highres_picks_the_weights_and_spacing(zoo):
    bundle = zoo("wholeBody_ct_segmentation")
    high, low = pipeline(bundle), pipeline(bundle, highres="false")
    assert os.path.basename(high.weights) == "model.pt"
    assert os.path.basename(low.weights) == "model_lowres.pt"
    spacing = {t.spacing_transform.pixdim.tolist()[0] for t in low.preprocessing.transforms
               if type(t).__name__ == "Spacingd"}
    assert spacing == {3.0}
    a = next(iter(high.network.state_dict().values()))
    b = next(iter(low.network.state_dict().values()))
    assert not np.allclose(a.numpy(), b.numpy())  # two stand-ins with different seeds


def test_a_missing_weights_file_is_named_with_what_the_folder_has(zoo, lung_crop, tmp_path):
    bundle = str(tmp_path / "wholeBody_ct_segmentation")
    shutil.copytree(zoo("wholeBody_ct_segmentation"), bundle)
    os.remove(os.path.join(bundle, "models", "model_lowres.pt"))
    with pytest.raises(PluginError) as err:
        run_bundle(lung_crop, bundle, highres="false")
    assert err.value.message == ("bundle wholeBody_ct_segmentation: its config loads models/model_lowres.pt, "
                                 "which is missing (models/ has model.pt; see the highres parameter)")


def test_deepedit_prepares_its_automatic_mode(zoo, lung_crop):
    """No clicks: an empty click list per label, and the bundle's own transforms add one guidance
    channel per label to the image (what its DynUNet takes)."""
    from medviewer_plugins.monai_bundle.impl import deepedit_guidance, volume_to_metatensor

    pipe = pipeline(zoo("spleen_deepedit_annotation"))
    data = {"image": volume_to_metatensor(lung_crop, False), **deepedit_guidance(pipe.parser)}
    image = pipe.preprocessing(data)["image"]
    assert tuple(image.shape) == (3, 128, 128, 128)  # CT + spleen + background guidance
    assert float(image[1:].abs().max()) == 0.0


@slow
def test_deepedit_runs_in_its_automatic_mode(zoo, lung_crop):
    bundle = zoo("spleen_deepedit_annotation")
    res = run_bundle(lung_crop, bundle)
    assert isinstance(res, LabelMapResult) and res.label_map.same_grid(lung_crop)
    assert set(np.unique(res.label_map.array)) <= {0, 1}
    assert [(l.value, l.name) for l in res.labels] == [(1, "spleen")]


@slow
@pytest.mark.parametrize("name", ["swin_unetr_btcv_segmentation", "pancreas_ct_dints_segmentation",
                                  "renalStructures_UNEST_segmentation"])
def test_heavy_bundle_runs_with_its_names(zoo, lung_crop, name):
    bundle = zoo(name)
    res = run_bundle(lung_crop, bundle)
    assert isinstance(res, LabelMapResult) and res.label_map.same_grid(lung_crop)
    names = channel_defs(bundle)
    assert {l.value: l.name for l in res.labels} == {k: v for k, v in names.items() if k}
    assert set(np.unique(res.label_map.array)) <= set(names)


def test_swin_unetr_img_size_is_left_out_for_this_monai(zoo):
    """SwinUNETR's config passes img_size, which MONAI 1.5 dropped: the network builds."""
    import monai

    bundle = zoo("swin_unetr_btcv_segmentation")
    pipe = pipeline(bundle)
    assert type(pipe.network).__name__ == "SwinUNETR"
    if tuple(int(v) for v in monai.__version__.split(".")[:2]) >= (1, 5):
        assert any("img_size" in n for n in pipe.notes)


def test_dints_builds_on_the_cpu_with_its_numpy_architecture_file(zoo):
    """DiNTS's config torch.loads its architecture file onto CUDA, and the file holds numpy
    arrays, which plain weights_only loading refuses; the plugin allows numpy arrays only."""
    import pickle

    import torch

    bundle = zoo("pancreas_ct_dints_segmentation")
    arch = os.path.join(bundle, "models", "search_code_18590.pt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(arch, map_location="cpu", weights_only=True)
    pipe = pipeline(bundle)
    assert type(pipe.network).__name__ == "DiNTS"
    assert next(pipe.network.parameters()).device.type == "cpu"


def test_vista3d_refuses_a_class_it_does_not_have(zoo, lung_crop):
    with pytest.raises(PluginError) as err:
        run_bundle(lung_crop, zoo("vista3d"), classes="liver,unicorn")
    msg = str(err.value)
    assert msg.startswith("bundle vista3d has no class unicorn") and "\n" not in msg


@slow
def test_vista3d_segments_from_class_prompts(zoo, lung_crop):
    """VISTA3D's plain run: its class prompts through its own inferer and postprocessing."""
    res = run_bundle(lung_crop, zoo("vista3d"), classes="liver,spleen")
    assert isinstance(res, LabelMapResult) and res.label_map.same_grid(lung_crop)
    assert [(l.value, l.name) for l in res.labels] == [(1, "liver"), (3, "spleen")]
    assert set(np.unique(res.label_map.array)) <= {0, 1, 3}


def test_a_broken_bundle_says_why_in_one_line(zoo, lung_crop, tmp_path):
    """A network_def the installed MONAI rejects: one line naming the bundle, the step, the
    innermost exception and the MONAI version the bundle was made for."""
    import monai

    broken = str(tmp_path / "spleen_broken")
    shutil.copytree(zoo("spleen_ct_segmentation"), broken)
    config_path = os.path.join(broken, "configs", "inference.json")
    with open(config_path) as fh:
        config = json.load(fh)
    config["network_def"]["bogus_option"] = 3
    with open(config_path, "w") as fh:
        json.dump(config, fh)
    with pytest.raises(PluginError) as err:
        run_bundle(lung_crop, broken)
    msg = str(err.value)
    print("\n" + msg)
    assert "\n" not in msg
    assert msg.startswith("bundle spleen_broken cannot run: building its network failed: TypeError:")
    assert "bogus_option" in msg and "Failed to instantiate" not in msg
    assert f"made for MONAI 1.4.0; this is MONAI {monai.__version__.split('+')[0]}" in msg


# ---- names carried into the files ---------------------------------------------------------------
def test_label_maps_are_written_with_the_bundle_names(wholebody_result, lung_crop, tmp_path):
    import SimpleITK as sitk

    from medviewer.export.labelmap import read_labelmap
    from medviewer.plugins.headless import write_result

    manifest = get_manifest("monai-bundle")
    present = {int(v) for v in np.unique(wholebody_result.label_map.array) if v}
    names = {l.value: l.name for l in wholebody_result.labels}
    assert present
    for out in (tmp_path / "nifti" / "wb.nii.gz", tmp_path / "nrrd" / "wb.seg.nrrd"):
        out.parent.mkdir()
        write_result(wholebody_result, manifest, lung_crop, "ct", str(out), False)
        labels, segments, _ = read_labelmap(out, lung_crop)  # our loader, through the .labels.json
        assert {s.label: s.name for s in segments} == {v: names[v] for v in present}
        assert np.array_equal(labels.array, wholebody_result.label_map.array)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(tmp_path / "nrrd" / "wb.seg.nrrd"))
    reader.ReadImageInformation()
    slicer = {int(reader.GetMetaData(f"Segment{n}_LabelValue")): reader.GetMetaData(f"Segment{n}_Name")
              for n in range(len(present))}
    assert slicer == {v: names[v] for v in present}


def test_dicom_seg_carries_the_bundle_names(wholebody_result, lung_series, tmp_path):
    """The crop's labels placed in the whole series (a SEG's frames are its source images)."""
    import pydicom

    from medviewer.io import load_volume
    from medviewer.plugins.api import LabelMapResult
    from medviewer.plugins.headless import write_result

    series = load_volume(lung_series)
    full = np.zeros(series.shape, np.uint8)
    full[14:22, 200:264, 140:204] = wholebody_result.label_map.array
    result = LabelMapResult(series.with_array(full), wholebody_result.labels,
                            algorithm=wholebody_result.algorithm)
    out = tmp_path / "wb-seg.dcm"
    write_result(result, get_manifest("monai-bundle"), series, str(lung_series), str(out), False, seg=True)
    ds = pydicom.dcmread(out)
    names = {l.value: l.name for l in wholebody_result.labels}
    present = sorted(int(v) for v in np.unique(full) if v)
    assert [s.SegmentLabel for s in ds.SegmentSequence] == [names[v] for v in present]
    assert {s.SegmentAlgorithmName for s in ds.SegmentSequence} == {"MONAI bundle Whole body CT segmentation 0.2.5"}


def test_detection_sr_carries_names_and_scores(zoo, lung_crop, lung_series, tmp_path):
    """The detector's boxes (on the crop, so placed in the whole series' frame) as a DICOM SR:
    each box a planar ROI on its centre slice, with the bundle's class name and its score."""
    import pydicom

    from medviewer.io import load_volume
    from medviewer.plugins.headless import write_result

    res = run_bundle(lung_crop, zoo("lung_nodule_ct_detection"), score_threshold="0.15")
    assert res.boxes
    out = tmp_path / "nodules.dcm"
    series = load_volume(lung_series)
    summary = write_result(res, get_manifest("monai-bundle"), series, str(lung_series), str(out), False, seg=True)
    assert "DICOM SR" in summary
    ds = pydicom.dcmread(out)
    groups = [item for item in ds.ContentSequence if item.ValueType == "CONTAINER"][0].ContentSequence
    found = []
    for group in groups:
        items = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in group.ContentSequence}
        found.append((items["Tracking Identifier"].TextValue,
                      float(items["Probability"].MeasuredValueSequence[0].NumericValue)))
    assert [name.rsplit(" ", 1)[0] for name, _ in found] == ["lung nodule"] * len(res.boxes)
    assert np.allclose([score for _, score in found], [b.score for b in res.boxes], atol=1e-4)
