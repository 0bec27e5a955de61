"""DeepEdit and VISTA3D Model Zoo bundles as click engines (issue 20), with stand-in weights.

The bundles are the real published configs (MEDVIEWER_DATA/model-zoo), copied to a temporary
folder with weights built from each bundle's own ``network_def`` (random: these tests check the
plumbing and the geometry, not accuracy). To keep the tests light the copies run smaller
windows than published: VISTA3D's ``patch_size`` 32 (the smallest its network accepts; 16 fails
in its encoder) and DeepEdit's ``spatial_size`` 64 x 64 x 32 (its DynUNet needs multiples of
32, 32, 16). The engines read these from the config, as they read the published 128s.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from medviewer.plugins import trust
from tests.conftest import require_data

pytestmark = [pytest.mark.data, pytest.mark.timeout(900)]


def stand_in_bundle(name: str, folder, overrides: dict) -> str:
    """The published bundle ``name`` copied to ``folder``, ``overrides`` set in its inference
    config, and models/model.pt from its own network_def (MONAI's ConfigParser, seed 0)."""
    import torch
    from monai.bundle import ConfigParser

    root = folder / name
    shutil.copytree(require_data(f"model-zoo/{name}"), root)
    config = root / "configs" / "inference.json"
    data = json.loads(config.read_text())
    data.update(overrides)
    config.write_text(json.dumps(data, indent=1))
    parser = ConfigParser()
    parser.read_config(str(config))
    parser["bundle_root"] = str(root)
    sys.path.insert(0, str(root))
    try:
        torch.manual_seed(0)
        net = parser.get_parsed_content("network_def")
    finally:
        sys.path.remove(str(root))
        for m in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
            del sys.modules[m]
    (root / "models").mkdir()
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return str(root)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("zoo")
    return {"vista3d": stand_in_bundle("vista3d", folder, {"patch_size": [32, 32, 32]}),
            "deepedit": stand_in_bundle("spleen_deepedit_annotation", folder, {"spatial_size": [64, 64, 32]})}


def click_points(volume):
    """A positive click at the crop's centre and a negative one 15 mm to the patient's left."""
    centre = volume.voxel_to_patient((np.asarray(volume.shape) - 1) / 2.0)
    return centre, centre + np.array([15.0, 0.0, 0.0])


def segment_cli(crop_file, bundle, out, positive, negative, *extra) -> int:
    from medviewer.cli import main

    fmt = lambda p: ",".join(f"{v:.2f}" for v in p)  # noqa: E731
    return main(["segment", str(crop_file), "--engine", bundle, "--point", fmt(positive),
                 "--negative", fmt(negative), "--out", str(out), *extra])


def test_the_bundle_kinds_are_told_apart_without_running_them(bundles):
    from medviewer.core.resources import resource_path
    from medviewer.plugins.model_store import bundle_kind

    assert bundle_kind(bundles["vista3d"]) == "vista3d"
    assert bundle_kind(bundles["deepedit"]) == "deepedit"
    assert bundle_kind(require_data("model-zoo/spleen_ct_segmentation")) == "segmentation"
    assert bundle_kind(require_data("model-zoo/lung_nodule_ct_detection")) == "detection"
    assert bundle_kind(resource_path("click_segment_bundle")) == "click"


def test_an_untrusted_bundle_is_refused_in_one_line(bundles, lung_crop_file, lung_crop, tmp_path, capsys):
    positive, negative = click_points(lung_crop)
    assert segment_cli(lung_crop_file, bundles["vista3d"], tmp_path / "m.nii.gz", positive, negative) == 1
    err = capsys.readouterr().err.strip()
    assert "is not trusted" in err and "--trust" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m.nii.gz").exists()


def test_a_segmentation_bundle_is_not_a_click_engine(lung_crop_file, lung_crop, tmp_path, capsys):
    positive, negative = click_points(lung_crop)
    folder = str(require_data("model-zoo/spleen_ct_segmentation"))
    assert segment_cli(lung_crop_file, folder, tmp_path / "m.nii.gz", positive, negative) == 1
    assert "not a click engine: a segmentation" in capsys.readouterr().err


def check_mask(out, crop, positive, reach_mm=None):
    """The mask lies on the crop's grid; it is not empty, it holds the click's neighbourhood
    (within 2 voxels), and (``reach_mm``) nothing beyond that distance from the click."""
    from medviewer.io import load_volume

    mask = load_volume(str(out))
    assert mask.shape == crop.shape and mask.same_grid(crop)
    voxels = np.argwhere(mask.array > 0)
    assert len(voxels), "empty mask"
    mm = crop.voxel_to_patient(voxels.astype(float))
    distance = np.linalg.norm(mm - positive, axis=1)
    assert distance.min() <= 2 * max(crop.spacing)
    if reach_mm is not None:
        assert distance.max() <= reach_mm
    return mask.array > 0


def test_segment_with_the_vista3d_bundle_gives_a_mask_around_the_click(bundles, lung_crop_file, lung_crop,
                                                                         tmp_path, capsys):
    positive, negative = click_points(lung_crop)
    out = tmp_path / "vista.nii.gz"
    assert segment_cli(lung_crop_file, bundles["vista3d"], out, positive, negative, "--trust",
                       "--device", "cpu") == 0
    said = capsys.readouterr().out
    assert "by the vista3d bundle engine" in said and trust.is_trusted(bundles["vista3d"])
    # the network sees one 32-voxel window at 1.5 mm around the click: nothing lies farther than
    # its half-diagonal (and VISTA3D keeps only the parts holding a positive click)
    check_mask(out, lung_crop, positive, reach_mm=np.sqrt(3) * 16 * 1.5 + 2)


def test_segment_with_the_deepedit_bundle_gives_its_networks_mask_on_the_source_grid(
        bundles, lung_crop_file, lung_crop, tmp_path, capsys):
    positive, negative = click_points(lung_crop)
    out = tmp_path / "deepedit.nii.gz"
    assert segment_cli(lung_crop_file, bundles["deepedit"], out, positive, negative, "--trust",
                       "--device", "cpu") == 0
    assert "by the spleen_deepedit_annotation bundle engine" in capsys.readouterr().out
    mask = check_mask(out, lung_crop, positive)
    # the clicks reach the network as its guidance channels: moving them changes the mask
    other = tmp_path / "moved.nii.gz"
    assert segment_cli(lung_crop_file, bundles["deepedit"], other, negative, positive, "--device", "cpu") == 0
    from medviewer.io import load_volume

    assert (load_volume(str(other)).array > 0).tolist() != mask.tolist()


def test_the_deepedit_engine_agrees_with_the_bundles_own_file_pipeline(bundles, lung_crop_file, lung_crop):
    """Our in-memory handover against the config's own loader reading the same image from a file
    (its LoadImaged, with nibabel in place of ITK, which is not installed): the same network
    input and, from the same prediction, the same mask on the source grid."""
    import torch
    from monai.bundle import ConfigParser

    from medviewer_plugins.click_segment import bundle_engines

    root = bundles["deepedit"]
    trust.set_trusted(root)
    positive, negative = click_points(lung_crop)
    ours = bundle_engines.segment_bundle(root, lung_crop, [positive], [negative])

    parser = ConfigParser()
    parser.read_config(f"{root}/configs/inference.json")
    parser["bundle_root"] = root
    parser["preprocessing_transforms"][0]["reader"] = "NibabelReader"
    parser["postprocessing"]["transforms"] = parser["postprocessing"]["transforms"][:-1]  # no SaveImaged
    sys.path.insert(0, root)
    try:
        pre, post, net = (parser.get_parsed_content(k) for k in ("preprocessing", "postprocessing", "network_def"))
    finally:
        sys.path.remove(root)
    net.load_state_dict(torch.load(f"{root}/models/model.pt", weights_only=True))
    index = lambda p: np.rint(lung_crop.patient_to_index(p)).astype(int).tolist()  # noqa: E731
    clicks = {"spleen": [index(positive)], "background": [index(negative)]}
    theirs = pre({"image": str(lung_crop_file), **clicks})
    mine = bundle_engines.load_engine(root).preprocessing({"image": bundle_engines._as_metatensor(lung_crop), **clicks})
    # the image channel is the same; the clicks land within a voxel of each other (the bundle's own
    # scripts/transforms.py truncates a float product: 30.99999 or 31.00001 gives 30 or 31)
    assert torch.equal(mine["image"][0], theirs["image"][0])
    for name in clicks:
        assert np.abs(np.subtract(mine["guidance"][name], theirs["guidance"][name])).max() <= 1
    with torch.no_grad():
        pred = net.eval()(mine["image"][None])[0]
    item = {"image": mine["image"], "pred": bundle_engines._prediction_like(pred, mine["image"])}
    again = bundle_engines._postprocess(bundle_engines.load_engine(root), item)
    from_file = post({"image": theirs["image"], "pred": pred})["pred"][0].numpy().transpose(2, 1, 0)
    assert np.array_equal(again == 1, from_file == 1)
    assert ours.shape == lung_crop.shape


def test_the_windows_click_tool_runs_a_bundle_picked_by_its_folder(bundles, lung_crop, qtbot, tmp_path,
                                                                   monkeypatch):
    from PySide6.QtCore import QSettings

    from medviewer.ui.main_window import MainWindow

    # a bundle in the user's model folder is offered in the engine choice
    models = tmp_path / "models"
    models.mkdir()
    (models / "vista3d").symlink_to(bundles["vista3d"], target_is_directory=True)
    monkeypatch.setenv("MEDVIEWER_MODELS_DIR", str(models))
    trust.set_trusted(bundles["vista3d"])
    window = MainWindow(settings=QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat), quiet=True)
    qtbot.addWidget(window)
    window.show()
    window.set_volume(lung_crop)
    editor = window.segment_editor
    choices = [editor.engine_combo.itemText(k) for k in range(editor.engine_combo.count())]
    assert bundles["vista3d"] in choices and "auto" in choices
    editor.engine_combo.setCurrentText(bundles["vista3d"])
    editor.set_tool("click")
    positive, _ = click_points(lung_crop)
    with qtbot.waitSignal(editor.click_result, timeout=600000):
        editor.add_click(positive)
    assert 1 in editor.segments and (editor.layer.volume.array == 1).any(), editor.status.text()
    assert editor.layer.volume.same_grid(lung_crop)
    assert "vista3d bundle" in editor.segments[1].algorithm.name
    # and the DeepEdit bundle, added by folder
    trust.set_trusted(bundles["deepedit"])
    editor.add_bundle_engine(bundles["deepedit"])
    editor.add_segment()
    with qtbot.waitSignal(editor.click_result, timeout=600000):
        editor.add_click(positive)
    assert (editor.layer.volume.array == 2).any(), editor.status.text()


def test_vista3d_class_prompts_give_an_automatic_label_map_on_the_source_grid(bundles, lung_crop):
    """VISTA3D's class head (no clicks): the prompted classes' numbers on the crop's grid."""
    from medviewer_plugins.click_segment import bundle_engines

    trust.set_trusted(bundles["vista3d"])
    engine = bundle_engines.load_engine(bundles["vista3d"])
    names = bundle_engines.channel_names(bundles["vista3d"])
    assert names[3] == "spleen"
    labels = bundle_engines.segment_classes(engine, lung_crop, [3, 1])
    assert labels.shape == lung_crop.shape
    assert set(np.unique(labels)) <= {0, 1, 3} and labels.any()
