"""Is one click's mask a plausible lesion? A line for the user when it is not.

From one click inside a 2.5-10 mL hypodense liver tumour, both engines returned the whole liver
(540-1,900 mL), and a warning about the image's edge was the only sign. A user needs to be told
in one line that the mask ran beyond the lesion, and what to do: add a negative click where it
spills. The check compares the mask with the compact lesion that region growing finds at the
click (``classical.lesion_core``): a mask several times larger than that core has leaked into the
tissue around it (an organ of the lesion's density). The other signs (the mask reaches the image's
edge, or the furthest the classical engine looks) are said by the click-segment plugin itself.
"""

from __future__ import annotations

import numpy as np

from medviewer.core.volume import Volume
from medviewer.segmentation.classical import ClassicalParams, lesion_core

# A mask this many times the core's volume, and larger by at least MIN_EXCESS_ML, has leaked.
MAX_CORE_RATIO = 3.0
MIN_EXCESS_ML = 5.0


def implausible(volume: Volume, mask: np.ndarray, click_mm, params: ClassicalParams = ClassicalParams()) -> str:
    """Why ``mask``, the result of one positive click at ``click_mm``, is implausible as the
    lesion under it ("" when it is plausible, or when there is nothing to compare it with)."""
    n = int(np.count_nonzero(mask))
    if n == 0:
        return ""
    core = lesion_core(volume, click_mm, params)
    if core is None:
        return ""
    m = int(np.count_nonzero(core))
    ml = volume.voxel_volume_ml
    if n <= MAX_CORE_RATIO * m or (n - m) * ml < MIN_EXCESS_ML:
        return ""
    return (f"the mask ({n * ml:.0f} mL) is {n / max(m, 1):.0f} times the compact lesion at the click "
            f"(about {m * ml:.1f} mL): it has probably leaked into the organ around it; add a negative click "
            "where it spills, or try the classical engine")
