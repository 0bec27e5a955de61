"""Classical CT denoising (image-to-image). Static manifest only; see impl.py."""

from medviewer.plugins.api import Manifest, Param

MANIFEST = Manifest(
    id="denoise",
    title="Denoise (classical filter, not a neural network)",
    kind="image-to-image",
    entry="medviewer_plugins.denoise.impl:Denoise",
    description=(
        "Edge-preserving noise reduction with SimpleITK: curvature flow (default), bilateral or "
        "Gaussian smoothing. A classical filter standing in for a learned denoiser (no trained "
        "autoencoder ships with medviewer); it smooths noise in flat regions and keeps edges, and "
        "can blur fine detail. Not for diagnosis."),
    version="1",
    params=(
        Param("method", "choice", "curvature-flow", "filter to use",
              choices=("curvature-flow", "bilateral", "gaussian")),
        Param("iterations", "int", 5, "curvature-flow iterations"),
        Param("time_step", "float", 0.0625, "curvature-flow time step (stable below 0.0625 in 3D)"),
        Param("sigma_mm", "float", 1.0, "spatial sigma in mm (bilateral, gaussian)"),
        Param("range_sigma_hu", "float", 50.0, "intensity sigma in HU (bilateral)"),
    ),
    requires=("SimpleITK",),
    isolation="thread",
)
