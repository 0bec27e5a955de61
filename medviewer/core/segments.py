"""What a segment is, apart from its voxels: name, colour, label value, codes and provenance.

Small and typed on purpose: the click-to-segment engine, the plugins and the exporters share it.
Codes default to SNOMED CT "Morphologically altered structure" / "Lesion", as DICOM SEG (CID 7150,
CID 7151) and the lesion report expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

AlgorithmType = Literal["MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"]


@dataclass(frozen=True)
class Code:
    """A coded concept (value, coding scheme designator, meaning), as DICOM writes it."""

    value: str
    scheme: str
    meaning: str


# SNOMED CT codes for lesion segments (DICOM CID 7150 category, CID 7151 / 7159 types).
MORPHOLOGICALLY_ALTERED_STRUCTURE = Code("49755003", "SCT", "Morphologically Altered Structure")
TISSUE = Code("85756007", "SCT", "Tissue")
LESION = Code("52988006", "SCT", "Lesion")
NEOPLASM = Code("108369006", "SCT", "Neoplasm")  # tumour
MASS = Code("4147007", "SCT", "Mass")


@dataclass(frozen=True)
class AlgorithmInfo:
    """Who made a segment: a person (MANUAL), a person helped by a tool, or a tool alone.

    ``name`` and ``version`` name the plugin (or tool) for SEMIAUTOMATIC and AUTOMATIC segments;
    DICOM SEG requires them there.
    """

    type: AlgorithmType = "MANUAL"
    name: str | None = None
    version: str | None = None
    family: Code = Code("123109", "DCM", "Manual Processing")

    def __post_init__(self) -> None:
        if self.type not in ("MANUAL", "SEMIAUTOMATIC", "AUTOMATIC"):
            raise ValueError(f"algorithm type must be MANUAL, SEMIAUTOMATIC or AUTOMATIC, not {self.type!r}")
        if self.type != "MANUAL" and not (self.name and self.version):
            raise ValueError(f"a {self.type} segment needs the algorithm's name and version")


ARTIFICIAL_INTELLIGENCE = Code("123110", "DCM", "Artificial Intelligence")
DEEP_LEARNING = Code("113259", "DCM", "Deep Learning")


# A colour cycle for segments that come without one (Slicer's generic anatomy colours, roughly).
DEFAULT_COLORS: tuple[tuple[int, int, int], ...] = (
    (241, 214, 145), (177, 122, 101), (111, 184, 210), (216, 101, 79), (221, 130, 101),
    (144, 238, 144), (192, 104, 88), (220, 245, 20), (78, 63, 0), (255, 250, 220),
)


# The segment editor's colours: the user's own segments. Hues that no imported layer takes by
# default (neither LABEL_PALETTE's, for label values without a colour, nor DEFAULT_COLORS', nor the
# pure primaries that RTSTRUCTs and SEGs usually carry: an expert's contour is mostly (255, 0, 0)),
# each at least 69 RGB units from all of those and 113 from one another, so that one's lesion and
# a reference loaded to compare with are told apart at a glance. The first is far from red.
SEGMENT_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 200, 150), (170, 0, 255), (0, 120, 230), (220, 0, 150), (150, 190, 0), (90, 40, 160),
)

# Click-to-segment prompts: white (positive) and black (negative) squares, each ringed in the
# other (see medviewer.render.markers), read on any segment colour and on the CT (green and red
# markers vanished on green and red segments; the negative one matched an RTSTRUCT's red).
POSITIVE_CLICK_RGB: tuple[int, int, int] = (255, 255, 255)
NEGATIVE_CLICK_RGB: tuple[int, int, int] = (0, 0, 0)


def segment_color(label: int) -> tuple[int, int, int]:
    """The colour the segment editor gives its segment ``label`` (1, 2, ...): SEGMENT_PALETTE, cycled."""
    return SEGMENT_PALETTE[(int(label) - 1) % len(SEGMENT_PALETTE)]


@dataclass(frozen=True)
class Segment:
    """One segment of a label map: voxels equal to ``label`` belong to it."""

    label: int
    name: str
    color: tuple[int, int, int] = (255, 0, 0)
    category: Code = MORPHOLOGICALLY_ALTERED_STRUCTURE
    type: Code = LESION
    algorithm: AlgorithmInfo = field(default_factory=AlgorithmInfo)
    description: str = ""

    def __post_init__(self) -> None:
        if not 1 <= int(self.label) <= 65535:
            raise ValueError(f"segment label must be 1 to 65535, got {self.label}")
        if len(self.color) != 3 or not all(0 <= int(c) <= 255 for c in self.color):
            raise ValueError(f"segment colour must be three values 0-255, got {self.color}")
        object.__setattr__(self, "label", int(self.label))
        object.__setattr__(self, "color", tuple(int(c) for c in self.color))

    def with_label(self, label: int) -> "Segment":
        return replace(self, label=label)

    def to_dict(self) -> dict:
        return {
            "label": self.label, "name": self.name, "color": list(self.color),
            "category": vars(self.category).copy(), "type": vars(self.type).copy(),
            "algorithm": {"type": self.algorithm.type, "name": self.algorithm.name,
                          "version": self.algorithm.version, "family": vars(self.algorithm.family).copy()},
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Segment":
        alg = d.get("algorithm") or {}
        family = alg.get("family")
        return cls(
            label=int(d["label"]), name=str(d.get("name") or f"segment {d['label']}"),
            color=tuple(d.get("color") or DEFAULT_COLORS[(int(d["label"]) - 1) % len(DEFAULT_COLORS)]),
            category=Code(**d["category"]) if d.get("category") else MORPHOLOGICALLY_ALTERED_STRUCTURE,
            type=Code(**d["type"]) if d.get("type") else LESION,
            algorithm=AlgorithmInfo(alg.get("type", "MANUAL"), alg.get("name"), alg.get("version"),
                                    Code(**family) if family else AlgorithmInfo().family),
            description=str(d.get("description") or ""),
        )


def default_segments(labels, algorithm: AlgorithmInfo | None = None, prefix: str = "lesion") -> list[Segment]:
    """One lesion segment per label value (``lesion 1``, ``lesion 2``, ...), colours cycled."""
    algorithm = algorithm or AlgorithmInfo()
    return [Segment(int(v), f"{prefix} {int(v)}", DEFAULT_COLORS[(int(v) - 1) % len(DEFAULT_COLORS)],
                    algorithm=algorithm) for v in labels]


@dataclass(frozen=True)
class DetectionBox:
    """A detector's (or reader's) box on one slice: pixel corners, inclusive, of slice ``k``.

    ``x`` runs along columns and ``y`` along rows, as in Pascal VOC and DICOM graphic data.
    """

    slice_index: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: str = "lesion"
    score: float | None = None
    sop_instance_uid: str | None = None
    finding: Code = LESION

    def to_dict(self) -> dict:
        return {"slice_index": self.slice_index, "sop_instance_uid": self.sop_instance_uid,
                "xmin": self.xmin, "ymin": self.ymin, "xmax": self.xmax, "ymax": self.ymax,
                "label": self.label, "score": self.score, "finding": vars(self.finding).copy()}
