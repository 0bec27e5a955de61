"""Run a MONAI Model Zoo bundle from a local folder. Static manifest only; see impl.py."""

from medviewer.plugins.api import Manifest, Param

MANIFEST = Manifest(
    id="monai-bundle",
    title="MONAI bundle (segmentation or detection)",
    kind="segmentation",
    also_kinds=("detection",),
    entry="medviewer_plugins.monai_bundle.impl:MonaiBundle",
    description=(
        "Runs a MONAI Model Zoo bundle from a local folder (configs/inference.json or .yaml, "
        "models/model.pt or model.ts, configs/metadata.json) as `python -m monai.bundle run` runs it "
        "(its own preprocessing, network and weights, inferer and postprocessing; see "
        "docs/model-zoo-bundles.md): "
        "segmentation bundles (spleen_ct_segmentation layout) give a label map on the source grid, "
        "detection bundles (lung_nodule_ct_detection layout, RetinaNet) give boxes in patient mm. "
        "Label names come from the bundle's metadata. A bundle runs the code in its configs: only "
        "folders you have trusted are run. Nothing is downloaded."),
    version="1",
    params=(
        Param("bundle", "path", None, "the bundle folder", required=True),
        Param("config", "str", "", "config file inside configs/ (default: inference.json or .yaml)"),
        Param("sw_batch_size", "int", 0, "sliding-window batch size (0: automatic)"),
        Param("overlap", "float", -1.0, "sliding-window overlap (-1: the bundle's)"),
        Param("amp", "bool", True, "mixed precision on CUDA"),
        Param("crop_body", "bool", True, "run only on the box around the body (voxels above body_hu)"),
        Param("body_hu", "float", -500.0, "threshold that finds the body for crop_body"),
        Param("score_threshold", "float", 0.0, "drop detection boxes scoring below this"),
        Param("threads", "int", 0, "CPU threads for torch (0: the cores not already busy)"),
        Param("classes", "str", "", "class prompts for a VISTA3D bundle: names or numbers, comma-separated "
              "(empty: all the classes it segments automatically)"),
        Param("highres", "str", "", "true/false: the bundle's highres switch (wholeBody: model.pt at 1.5 mm "
              "or model_lowres.pt at 3 mm); empty: the bundle's own default"),
    ),
    needs_gpu=False,
    requires=("torch", "monai"),
    isolation="process",
    executes_untrusted_code=True,
)
