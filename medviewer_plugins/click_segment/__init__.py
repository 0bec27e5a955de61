"""Click-to-segment (interactive): positive/negative clicks -> a 3D lesion mask. See impl.py."""

from medviewer.plugins.api import Label, Manifest, Param

MANIFEST = Manifest(
    id="click-segment",
    title="Click to segment a lesion",
    kind="interactive",
    entry="medviewer_plugins.click_segment.impl:ClickSegment",
    description=(
        "Left click inside a lesion (positive point), optionally outside it (negative points); "
        "each new click refines the mask. Works on a crop around the clicks. Engines: 'learned' "
        "(a MONAI UNet over CT + positive + negative click maps, trained on soft-tissue sarcoma "
        "CTs; weights in resources/click_segment_bundle), 'classical' (SimpleITK region growing "
        "from intensity statistics at the clicks, no weights), and 'auto': the classical engine "
        "for a lesion that region growing closes off near the first click (a sharply bounded "
        "one: a lung nodule, a hypodense liver lesion), the learned one otherwise. A DeepEdit or "
        "VISTA3D Model Zoo bundle folder as 'bundle' runs that bundle's network instead (trusted "
        "folders only; docs/bundle-click-engines.md)."),
    version="1",
    labels=(Label(1, "lesion", (255, 80, 80), ("SCT", "52988006", "Lesion")),),
    params=(
        # The learned engine measures better on the sarcomas (benchmarks/click_accuracy.py), the
        # classical one on sharply bounded lesions; "auto" picks (medviewer.segmentation.engine_choice).
        Param("engine", "choice", "auto", "segmentation engine", choices=("auto", "learned", "classical")),
        Param("bundle", "path", "", "the learned engine's MONAI bundle folder (default: the shipped one); a "
              "DeepEdit or VISTA3D bundle folder runs that bundle as the engine"),
        # Corrective clicks change the mask only near themselves (medviewer.segmentation.corrections):
        # the window sends the segment's current mask, `segment` the mask it replaces.
        Param("previous", "path", "", "the lesion's mask before the latest click (a label image on the same "
              "grid; from the window, the segment itself): corrections then stay local", internal=True),
    ),
    requires=("numpy", "SimpleITK"),
    isolation="thread",
)

