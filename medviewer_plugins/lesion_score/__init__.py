"""Heuristic lesion tissue class from CT density (classification). Static manifest; see impl.py."""

from medviewer.plugins.api import Manifest, Param

MANIFEST = Manifest(
    id="lesion-density",
    title="Lesion density class (heuristic, not a trained model)",
    kind="classification",
    entry="medviewer_plugins.lesion_score.impl:LesionDensity",
    description=(
        "Scores the tissue class of a lesion from its CT density: the median Hounsfield value in a "
        "sphere around the clicked point (the volume centre without a click) is compared with "
        "textbook ranges for air/lung, fat, fluid, soft tissue and calcification, and turned into "
        "class scores that sum to 1. A documented heuristic standing in for a trained CNN "
        "classifier; it says nothing about malignancy. Not for diagnosis."),
    version="1",
    params=(
        Param("radius_mm", "float", 5.0, "radius of the sphere sampled around the point"),
    ),
    requires=("numpy",),
    isolation="thread",
)
