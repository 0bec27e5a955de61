"""Which click-to-segment engine outlines a lesion, when the user leaves it to medviewer ("auto").

The learned engine was trained on soft-tissue sarcomas: tumours in muscle of nearly the same
density, where region growing leaks (Dice 0.10-0.69 on all 24 sts cases, against 0.53-0.92).
Lesions that differ sharply from everything around them (a nodule in the lung, a hypodense lesion
in the liver) are the classical engine's: on the demo phantom's three lesions it gives Dice
0.86 / 0.79 / 0.98 where the learned engine gives 0.81 / 0.22 / 0.11 (it spills 245 mL out of a
14 mL liver lesion).

The test that tells them apart is the classical engine's own first step: grow from the click
within the intensity window of its surroundings, on the crop of ``start_radius_mm`` around it.
If that region closes inside the crop, the lesion is bounded on every side by tissue of another
density, and region growing outlines it. If it reaches the crop's border, it runs on into
tissue like it (a sarcoma's muscle, the lung tumour's mediastinum), and the learned engine
outlines it. The first click of a lesion decides, so corrective clicks never switch engines
under the user.

On the sts cases no click closes: not the deepest point of any of the 24 tumours, nor any of
480 random points at least 3 mm inside them (20 a case). The demo lesions all close. This test
costs about 30 ms.

A small lesion in an organ of nearly its density (a liver metastasis) does not close in one
window: it leaks into the organ, and the learned engine, which never saw a liver, spilled into
it too (537-904 mL from a click in a 2.5-10 mL tumour). Such a lesion has a core
(``classical.lesion_core``: the region holds still over a few ever wider windows, then jumps)
and goes to the classical engine, which outlines that core. Of the 44 sts tumours' deepest
points two have one (STS_002 and STS_003, Dice 0.88 and 0.86 against the expert's contour, both
training cases of the learned engine); the others stay with the learned engine.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medviewer.core.volume import Volume
from medviewer.segmentation.classical import ClassicalParams, lesion_core, region_closes_near
from medviewer.segmentation.guidance import too_thin_for_learned

ENGINES = ("auto", "learned", "classical")
DEFAULT_ENGINE = "auto"


def choose_engine(volume: Volume, positives_mm: Sequence[Sequence[float]],
                  params: ClassicalParams = ClassicalParams()) -> tuple[str, str]:
    """("learned" or "classical", why) for the lesion whose first positive click is
    ``positives_mm[0]``; ``why`` is empty for the learned engine, the usual case."""
    thin = too_thin_for_learned(volume)
    if thin:
        return "classical", thin
    if len(positives_mm) and region_closes_near(volume, np.asarray(positives_mm[0], float), params):
        return "classical", f"a sharply bounded lesion, closed off within {params.start_radius_mm:g} mm of the click"
    if len(positives_mm) and lesion_core(volume, np.asarray(positives_mm[0], float), params) is not None:
        return "classical", "a compact lesion that region growing closes off before it leaks into the tissue around it"
    return "learned", ""
