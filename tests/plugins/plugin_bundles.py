"""Write small MONAI bundles in the Model Zoo layout, for tests and the benchmark.

``write_segmentation_bundle`` mirrors spleen_ct_segmentation (a MONAI UNet, the same transform
chain, Invertd back to the source grid) and ``write_detection_bundle`` mirrors
lung_nodule_ct_detection (a RetinaNet on a ResNet + FPN, RetinaNetDetector with detector_ops).
Both are tiny so that they run in seconds on a CPU; the weights are random (seeded) unless
``fit_to`` gives a volume to fit the segmentation briefly to a density threshold.
"""

from __future__ import annotations

import json
import os

SEG_CHANNELS = {"0": "background", "1": "body tissue"}


def _write_json(path, data) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=4)


def _metadata(task: str, outputs: dict) -> dict:
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.1.0",
        "monai_version": "1.6.1",
        "pytorch_version": "2.14.1",
        "name": f"medviewer test {task}",
        "task": task,
        "description": "A tiny bundle written by medviewer's tests (not a real model).",
        "authors": "medviewer tests",
        "license": "Apache-2.0",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT",
                                 "num_channels": 1, "spatial_shape": [32, 32, 32], "dtype": "float32"}},
            "outputs": {"pred": outputs},
        },
    }


def segmentation_config(roi=(32, 32, 32), pixdim=(1.5, 1.5, 3.0), channels=(4, 8, 16),
                        a_min=-1000.0, a_max=400.0) -> dict:
    """An inference.json in the spleen_ct_segmentation layout (tiny UNet)."""
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "/workspace/data/none",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/imagesTs/*.nii.gz')))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": {
            "_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
            "channels": list(channels), "strides": [2] * (len(channels) - 1),
            "num_res_units": 1, "norm": "batch",
        },
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "image", "pixdim": list(pixdim), "mode": "bilinear"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": a_min, "a_max": a_max,
             "b_min": 0, "b_max": 1, "clip": True},
            {"_target_": "EnsureTyped", "keys": "image"},
        ]},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]",
                    "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1,
                       "shuffle": False, "num_workers": 0},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": list(roi), "sw_batch_size": 4,
                    "overlap": 0.25},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir",
             "output_ext": ".nii.gz", "output_postfix": "seg", "separate_folder": True},
        ]},
        "handlers": [{"_target_": "StatsHandler", "iteration_log": False}],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device",
                      "val_data_loader": "@dataloader", "network": "@network", "inferer": "@inferer",
                      "postprocessing": "@postprocessing", "val_handlers": "@handlers", "amp": True},
        "checkpointloader": {"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                             "load_dict": {"model": "@network"}},
        "initialize": ["$monai.utils.set_determinism(seed=123)", "$@checkpointloader(@evaluator)"],
        "run": ["$@evaluator.run()"],
    }


def write_segmentation_bundle(folder, *, seed: int = 0, fit_to=None, fit_threshold: float = -300.0,
                              fit_steps: int = 40, fit_batch: int = 2, torchscript: bool = False,
                              **config_kwargs) -> str:
    """Write the bundle into ``folder`` and return it. ``fit_to``: a Volume to fit on briefly
    (label: voxels above ``fit_threshold`` HU), else random weights."""
    import torch
    from monai.bundle import ConfigParser

    folder = os.fspath(folder)
    config = segmentation_config(**config_kwargs)
    _write_json(os.path.join(folder, "configs", "inference.json"), config)
    _write_json(os.path.join(folder, "configs", "metadata.json"), _metadata(
        "segmentation", {"type": "image", "format": "segmentation", "num_channels": 2,
                         "spatial_shape": [32, 32, 32], "dtype": "float32", "value_range": [0, 1],
                         "is_patch_data": False, "channel_def": SEG_CHANNELS}))
    torch.manual_seed(seed)
    parser = ConfigParser(config)
    net = parser.get_parsed_content("network_def")
    if fit_to is not None:
        _fit(net, fit_to, fit_threshold, fit_steps, fit_batch, config)
    os.makedirs(os.path.join(folder, "models"), exist_ok=True)
    net.eval()
    torch.save(net.state_dict(), os.path.join(folder, "models", "model.pt"))
    if torchscript:
        torch.jit.script(net).save(os.path.join(folder, "models", "model.ts"))
    return folder


def _fit(net, volume, threshold: float, steps: int, batch_size: int, config: dict) -> None:
    """A few Adam steps on random patches: learn 'above ``threshold`` HU' (a stand-in task)."""
    import numpy as np
    import torch

    t = config["preprocessing"]["transforms"][4]
    a_min, a_max = t["a_min"], t["a_max"]
    rng = np.random.default_rng(0)
    arr = volume.array.astype(np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is fastest, and immune to a busy machine
    size = 32
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    net.train()
    for _ in range(steps):
        batch, target = [], []
        for _ in range(batch_size):
            z, y, x = (int(rng.integers(0, max(s - size, 0) + 1)) for s in arr.shape)
            patch = arr[z:z + size, y:y + size, x:x + size]
            patch = np.pad(patch, [(0, size - s) for s in patch.shape], constant_values=-1000)
            batch.append(np.clip((patch - a_min) / (a_max - a_min), 0, 1))
            target.append(patch > threshold)
        xb = torch.from_numpy(np.stack(batch)[:, None])
        yb = torch.from_numpy(np.stack(target).astype(np.int64))
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)


def detection_config(patch=(64, 64, 32), score_thresh: float = 0.0, detections: int = 5) -> dict:
    """An inference.json in the lung_nodule_ct_detection layout (tiny ResNet + FPN RetinaNet)."""
    return {
        "whether_raw_luna16": True,
        "whether_resampled_luna16": "$(not @whether_raw_luna16)",
        "imports": ["$import glob", "$import os"],
        "bundle_root": "./",
        "ckpt_dir": "$@bundle_root + '/models'",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "amp": True,
        "infer_patch_size": list(patch),
        "anchor_generator": {
            "_target_": "monai.apps.detection.utils.anchor_utils.AnchorGeneratorWithAnchorShape",
            "feature_map_scales": [1, 2, 4],
            "base_anchor_shapes": [[6, 8, 4], [8, 6, 5], [10, 10, 6]],
        },
        "backbone": "$monai.networks.nets.resnet.ResNet(block='basic', layers=[1, 1, 1, 1], "
                    "block_inplanes=[8, 16, 32, 64], spatial_dims=3, n_input_channels=1, "
                    "conv1_t_stride=[2, 2, 1], conv1_t_size=[7, 7, 7])",
        "feature_extractor": "$monai.networks.blocks.backbone_fpn_utils.BackboneWithFPN(@backbone, "
                             "{'layer1': '0', 'layer2': '1'}, [8, 16], 16, spatial_dims=3)",
        "network_def": {"_target_": "RetinaNet", "spatial_dims": 3, "num_classes": 1, "num_anchors": 3,
                        "feature_extractor": "@feature_extractor", "size_divisible": [16, 16, 8]},
        "network": "$@network_def.to(@device)",
        "detector": {"_target_": "RetinaNetDetector", "network": "@network",
                     "anchor_generator": "@anchor_generator", "debug": False},
        "detector_ops": [
            "$@detector.set_target_keys(box_key='box', label_key='label')",
            f"$@detector.set_box_selector_parameters(score_thresh={score_thresh},topk_candidates_per_level=100,"
            f"nms_thresh=0.22,detections_per_img={detections})",
            "$@detector.set_sliding_window_inferer(roi_size=@infer_patch_size,overlap=0.25,sw_batch_size=1,"
            "mode='constant',device='cpu')",
        ],
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image", "meta_key_postfix": "meta_dict",
             "_disabled_": "@whether_raw_luna16"},
            {"_target_": "LoadImaged", "keys": "image", "meta_key_postfix": "meta_dict", "reader": "itkreader",
             "affine_lps_to_ras": True, "_disabled_": "@whether_resampled_luna16"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "image", "pixdim": [1.2, 1.2, 2.5],
             "_disabled_": "@whether_resampled_luna16"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -1024.0, "a_max": 300.0,
             "b_min": 0.0, "b_max": 1.0, "clip": True},
            {"_target_": "EnsureTyped", "keys": "image"},
        ]},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "ClipBoxToImaged", "box_keys": "box", "label_keys": "label",
             "box_ref_image_keys": "image", "remove_empty": True},
            {"_target_": "AffineBoxToWorldCoordinated", "box_keys": "box", "box_ref_image_keys": "image",
             "image_meta_key_postfix": "meta_dict", "affine_lps_to_ras": True},
            {"_target_": "ConvertBoxModed", "box_keys": "box", "src_mode": "xyzxyz", "dst_mode": "cccwhd"},
            {"_target_": "DeleteItemsd", "keys": ["image"]},
        ]},
    }


def write_detection_bundle(folder, *, seed: int = 0, **config_kwargs) -> str:
    """Write a detection bundle (random, seeded RetinaNet weights) into ``folder``."""
    import torch
    from monai.bundle import ConfigParser

    folder = os.fspath(folder)
    config = detection_config(**config_kwargs)
    _write_json(os.path.join(folder, "configs", "inference.json"), config)
    _write_json(os.path.join(folder, "configs", "metadata.json"), _metadata(
        "detection", {"type": "object", "format": "xyzxyz boxes in world mm", "num_channels": 1,
                      "channel_def": {"0": "nodule"}}))
    torch.manual_seed(seed)
    parser = ConfigParser(config)
    net = parser.get_parsed_content("network_def")
    os.makedirs(os.path.join(folder, "models"), exist_ok=True)
    torch.save(net.state_dict(), os.path.join(folder, "models", "model.pt"))
    return folder


# ---- the real Model Zoo bundles with stand-in weights --------------------------------------------
ZOO_BUNDLES = ("spleen_ct_segmentation", "wholeBody_ct_segmentation", "swin_unetr_btcv_segmentation",
               "pancreas_ct_dints_segmentation", "renalStructures_UNEST_segmentation",
               "lung_nodule_ct_detection", "spleen_deepedit_annotation", "vista3d")
# Weight files a bundle's config can name besides models/model.pt (wholeBody with highres false).
EXTRA_WEIGHTS = {"wholeBody_ct_segmentation": ("model_lowres.pt",)}


def model_zoo_dir() -> str:
    return os.path.join(os.environ.get("MEDVIEWER_DATA", "/work/shared/data"), "model-zoo")


def _zoo_parser(folder: str):
    """The bundle's inference config, prepared as the plugin prepares it (on the CPU)."""
    import sys

    import torch
    from monai.bundle import ConfigParser

    from medviewer_plugins.monai_bundle.impl import prepare_config, use_bundle_scripts

    configs = os.path.join(folder, "configs")
    name = next(n for n in ("inference.json", "inference.yaml") if os.path.isfile(os.path.join(configs, n)))
    use_bundle_scripts(os.path.realpath(folder))  # its own scripts/, not an earlier bundle's
    parser = ConfigParser()
    parser.read_config(os.path.join(configs, name))
    parser.read_meta(os.path.join(configs, "metadata.json"))
    prepare_config(parser, folder, torch.device("cpu"))
    return parser


def _zoo_config(folder: str) -> dict:
    """The bundle's inference config as read (nothing evaluated)."""
    from monai.bundle import ConfigParser

    configs = os.path.join(folder, "configs")
    parser = ConfigParser()
    parser.read_config(next(os.path.join(configs, n) for n in ("inference.json", "inference.yaml")
                            if os.path.isfile(os.path.join(configs, n))))
    return parser.config


def _dints_architecture(folder: str) -> None:
    """A stand-in for DiNTS's searched architecture file (models/search_code_18590.pt), stored as
    the bundle's search script stores it (numpy arrays, which ``weights_only`` loading refuses
    unless allowed). A small valid topology (decoding one from TopologySearch takes minutes):
    cells on the two finest depths (the first three edges of each block: stay at depth 0, go
    between depths 0 and 1), seeded random cell operations."""
    import numpy as np
    import torch

    blocks, depths = 12, 4
    edges = 3 * depths - 2  # down, same and up from each depth, less the two off the ends
    ops = 5  # a 3D cell's operations: skip, 3x3x3 and three pseudo-3D convolutions
    code_a = np.zeros((blocks, edges), dtype=np.int64)
    code_a[:, :3] = 1
    node_a = np.zeros((blocks + 1, depths), dtype=np.int64)
    node_a[:, 0] = 1
    node_a[1:, 1] = 1
    code_c = np.random.default_rng(0).integers(0, ops, size=(blocks, edges)).astype(np.int64)
    torch.save({"node_a": node_a, "arch_code_a": code_a, "arch_code_a_max": code_a, "arch_code_c": code_c,
                "iter_num": 0, "epochs": 0, "best_dsc": 0.0, "best_path": 0},
               os.path.join(folder, "models", "search_code_18590.pt"))


def standin_bundle(name: str, cache_dir, *, seed: int = 0) -> str:
    """The real Model Zoo bundle ``name`` (configs and scripts from the model-zoo folder) copied
    into ``cache_dir/name`` with stand-in weights: its own ``network_def`` built from its config
    (seeded random initialisation) and ``state_dict()`` saved as models/model.pt (and the other
    files its config can name). An existing complete copy is reused. Random weights test the
    plumbing, geometry, names and errors, not accuracy."""
    import shutil

    import torch

    from medviewer_plugins.monai_bundle.impl import checkpoint_ids, safe_torch_load

    folder = os.path.join(os.fspath(cache_dir), name)
    done = os.path.join(folder, ".standin-complete")
    if os.path.isfile(done):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(os.path.join(model_zoo_dir(), name), folder, ignore=shutil.ignore_patterns("docs"))
    os.makedirs(os.path.join(folder, "models"), exist_ok=True)
    if "arch_ckpt_path" in _zoo_config(folder):
        _dints_architecture(folder)  # a DiNTS bundle (pancreas, multi_organ): its searched architecture
    for n, weights in enumerate(("",) + EXTRA_WEIGHTS.get(name, ())):
        torch.manual_seed(seed + n)
        parser = _zoo_parser(folder)
        if not weights:  # the file its own CheckpointLoader loads (pediatric: dynunet_FT.pt), else model.pt
            ids = checkpoint_ids(parser.config)
            weights = os.path.basename(str(parser.get_parsed_content(ids[0]))) if ids else "model.pt"
        with safe_torch_load(torch.device("cpu")):
            net = parser.get_parsed_content("network_def")
        torch.save(net.state_dict(), os.path.join(folder, "models", weights))
        del net
    open(done, "w").close()
    return folder
