"""Display presets, in one place: window/level for 2D views and transfer functions for 3D.

Pure data (no Qt, no VTK): the UI lists them, the render layer applies them.
"""

from __future__ import annotations

from typing import NamedTuple


class WindowPreset(NamedTuple):
    window: float
    level: float


#: CT window/level presets in HU (window width, window centre).
WINDOW_PRESETS: dict[str, WindowPreset] = {
    "soft tissue": WindowPreset(400.0, 40.0),
    "lung": WindowPreset(1500.0, -600.0),
    "bone": WindowPreset(1800.0, 400.0),
    "brain": WindowPreset(80.0, 40.0),
    "abdomen": WindowPreset(350.0, 50.0),
    "liver": WindowPreset(150.0, 30.0),
}

DEFAULT_WINDOW_PRESET = "soft tissue"

#: CT volume-rendering presets: colour points (HU, r, g, b) and scalar opacity points (HU, alpha).
VOLUME_PRESETS: dict[str, dict] = {
    "CT soft tissue": {
        "color": [(-1024, 0.0, 0.0, 0.0), (-500, 0.55, 0.25, 0.15), (-100, 0.85, 0.6, 0.45),
                  (40, 0.9, 0.45, 0.35), (150, 1.0, 0.9, 0.75), (1000, 1.0, 1.0, 0.95)],
        "opacity": [(-1024, 0.0), (-300, 0.0), (-100, 0.04), (40, 0.12), (150, 0.3), (1000, 0.7)],
        "shade": True,
    },
    "CT bone": {
        "color": [(-1024, 0.0, 0.0, 0.0), (100, 0.7, 0.35, 0.2), (250, 0.95, 0.85, 0.65),
                  (1000, 1.0, 1.0, 0.95), (3000, 1.0, 1.0, 1.0)],
        "opacity": [(-1024, 0.0), (180, 0.0), (320, 0.4), (1000, 0.9), (3000, 0.95)],
        "shade": True,
    },
    "CT lung": {
        "color": [(-1024, 0.0, 0.0, 0.0), (-950, 0.3, 0.5, 0.9), (-600, 0.7, 0.8, 1.0),
                  (-400, 0.9, 0.9, 1.0), (0, 0.9, 0.6, 0.5), (300, 1.0, 1.0, 0.9)],
        "opacity": [(-1024, 0.0), (-950, 0.0), (-850, 0.02), (-600, 0.08), (-450, 0.0),
                    (100, 0.0), (300, 0.3), (1500, 0.6)],
        "shade": False,
    },
    "CT MIP": {
        "color": [(-1024, 0.0, 0.0, 0.0), (1500, 1.0, 1.0, 1.0)],
        "opacity": [(-1024, 0.0), (1500, 1.0)],
        "shade": False,
        "blend": "mip",
    },
}

DEFAULT_VOLUME_PRESET = "CT bone"
