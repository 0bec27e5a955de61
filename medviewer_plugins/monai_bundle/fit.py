"""Whether a bundle can take what medviewer hands it: one 3D series, to segment or to find boxes in.

Read from the bundle's ``configs/metadata.json`` (``network_data_format``) and its raw config
before anything is built, so that a bundle made for something else is refused in a second with
a sentence saying why, not after minutes with a tensor-shape error from deep inside its network.
The Model Zoo holds many such bundles: classifiers (breast_density_classification), generative
models (mednist_gan, maisi_ct_generative), 2D networks for video frames or pathology tiles
(endoscopic_tool_segmentation), multi-channel MR (brats_mri_segmentation: T1c, T1, T2, FLAIR) and
multi-phase CT (renalStructures_CECT_segmentation: arterial, venous, excretory). What the metadata
does not declare is not held against a bundle: only what it says it needs is checked.

A bundle made for another modality (an MR bundle on a CT series) runs, with a warning.
"""

from __future__ import annotations

from medviewer.plugins.api import PluginError

# Output formats of bundles that segment (a label or probability map) and types of those that
# detect (a dict of boxes): what medviewer shows and exports.
SEGMENTATION_FORMATS = ("segmentation", "labels", "label")
DETECTION_TYPES = ("object",)
# What other outputs are, in words.
OTHER_OUTPUTS = {"classes": "class probabilities", "classification": "class probabilities",
                 "regression": "regressed values", "points": "points (landmarks)",
                 "magnitude": "an image", "feature": "an image (a generative model's output)"}
GENERATIVE_INPUTS = ("noise", "latent", "tuples", "timesteps")
LOADER_NAMES = ("LoadImage", "LoadImaged", "LoadImageD", "LoadImageDict")
LABEL_KEYS = ("label", "labels", "seg", "mask", "gt")
SLICE_INFERERS = ("SliceInferer",)


def _first(mapping) -> tuple[str, dict]:
    for key, value in (mapping or {}).items():
        if isinstance(value, dict):
            return str(key), value
    return "", {}


def target_name(node) -> str:
    """The class name a config item builds (its ``_target_`` less the module path), else ""."""
    target = node.get("_target_") if isinstance(node, dict) else None
    return target.rsplit(".", 1)[-1] if isinstance(target, str) else ""


def _loaded_keys(config: dict) -> list[str]:
    """The data keys the bundle's preprocessing reads from files (its LoadImaged ``keys``)."""
    pre = config.get("preprocessing")
    transforms = pre.get("transforms") if isinstance(pre, dict) else None
    for t in transforms if isinstance(transforms, list) else ():
        if target_name(t) in LOADER_NAMES:
            keys = t.get("keys")
            keys = [keys] if isinstance(keys, str) else keys
            if isinstance(keys, list) and all(isinstance(k, str) and not k.startswith(("@", "$")) for k in keys):
                return keys
    return []


def _shape(value) -> str:
    return " x ".join(str(v) for v in value)


def _modality(text) -> str:
    text = str(text or "").strip().upper()
    return {"MRI": "MR", "CT": "CT", "MR": "MR", "PET": "PT", "PT": "PT"}.get(text, "")


def check_fit(name: str, metadata: dict, config: dict, modality: str = "") -> list[str]:
    """Raise PluginError where bundle ``name`` cannot take one 3D series to segment or detect in;
    otherwise return warnings for the user (a modality other than the series')."""
    # (a generative bundle may describe its generator alone: maisi_ct_generative's metadata has
    # autoencoder_data_format and generator_data_format, no network_data_format)
    fmt = next((metadata.get(k) for k in ("network_data_format", "generator_data_format")
                if isinstance(metadata.get(k), dict)), None) if isinstance(metadata, dict) else None
    fmt = fmt if isinstance(fmt, dict) else {}
    in_key, inp = _first(fmt.get("inputs"))
    out_key, out = _first(fmt.get("outputs"))
    task = str(metadata.get("task") or "").strip().rstrip(".") if isinstance(metadata, dict) else ""
    about = f" ({task})" if task else ""
    head = f"bundle {name}{about} cannot run in medviewer: "
    tail = "; medviewer runs bundles that segment or detect in one 3D series"
    if str(inp.get("type") or "").lower() in GENERATIVE_INPUTS or in_key.lower() in GENERATIVE_INPUTS:
        raise PluginError(head + f"it makes images from noise (its input '{in_key}' is "
                          f"{inp.get('type') or in_key}), it does not read one" + tail)
    out_format = str(out.get("format") or "").lower()
    out_type = str(out.get("type") or "").lower()
    if out and out_format not in SEGMENTATION_FORMATS and out_type not in DETECTION_TYPES \
            and out_format in OTHER_OUTPUTS:
        raise PluginError(head + f"it gives {OTHER_OUTPUTS[out_format]} (its metadata's output "
                          f"'{out_key}': {out_type or '?'}, {out_format}), not a segmentation or boxes" + tail)
    shape = inp.get("spatial_shape")
    if isinstance(shape, list) and len(shape) == 2 and target_name(config.get("inferer")) not in SLICE_INFERERS:
        raise PluginError(head + f"it works on 2D images (its input is {_shape(shape)}) and its config has "
                          "no SliceInferer to run it slice by slice" + tail)
    channels = inp.get("num_channels")
    defs = inp.get("channel_def") if isinstance(inp.get("channel_def"), dict) else {}
    if isinstance(channels, int) and channels > 1 and len(defs) > 1:
        names = ", ".join(str(v) for _, v in sorted(defs.items(), key=lambda kv: str(kv[0])))
        raise PluginError(head + f"it takes {channels} images as the channels of its input ({names}), "
                          "and medviewer hands a bundle one series" + tail)
    images = [k for k in _loaded_keys(config) if k.lower() not in LABEL_KEYS]
    if len(images) > 1:
        raise PluginError(head + f"it reads {len(images)} images ({', '.join(images)}: one series each, "
                          "combined by its preprocessing), and medviewer hands a bundle one series" + tail)
    notes = []
    wanted, have = _modality(inp.get("modality")), _modality(modality)
    if wanted and have and wanted != have:
        notes.append(f"the bundle was made for {wanted} images and this series is {have}: "
                     "its result is unlikely to mean anything")
    return notes
