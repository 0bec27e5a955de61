"""benchmarks/lidc.py: the LIDC readers' XML outlines rasterised on a volume's grid and grouped
into physical nodules (the lidc set of benchmarks/click_accuracy.py)."""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

from medviewer.core.volume import Volume
from tests.conftest import ROOT


def _lidc():
    """benchmarks/lidc.py (benchmarks/ is no package), registered first: its dataclasses look it up."""
    if "benchmark_lidc" not in sys.modules:
        spec = importlib.util.spec_from_file_location("benchmark_lidc", ROOT / "benchmarks" / "lidc.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["benchmark_lidc"] = module
        spec.loader.exec_module(module)
    return sys.modules["benchmark_lidc"]


def _roi(z: float, uid: str, corners, inclusion: bool = True) -> str:
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in corners)
    return (f"<roi><imageZposition>{z}</imageZposition><imageSOP_UID>{uid}</imageSOP_UID>"
            f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>{edges}</roi>")


def _square(lo: int, hi: int):
    return [(lo, lo), (hi, lo), (hi, hi), (lo, hi)]


def _nodule(nodule_id: str, *rois: str, characteristics: bool = True) -> str:
    c = "<characteristics><malignancy>3</malignancy></characteristics>" if characteristics else ""
    return f"<unblindedReadNodule><noduleID>{nodule_id}</noduleID>{c}{''.join(rois)}</unblindedReadNodule>"


READER_A = (
    _nodule("Nodule 001",
            _roi(2.0, "1.2.3.1", _square(5, 10)),
            # slice 2 found by its z alone (the UID names no slice), with a hole cut in it
            _roi(4.0, "9.9.9", _square(5, 10)), _roi(4.0, "9.9.9", _square(6, 9), inclusion=False))
    + _nodule("tiny", _roi(6.0, "1.2.3.3", [(15, 15)]), characteristics=False)  # under 3 mm: a point
    + "<nonNodule><nonNoduleID>n</nonNoduleID><imageZposition>6.0</imageZposition>"
      "<imageSOP_UID>1.2.3.3</imageSOP_UID><locus><xCoord>2</xCoord><yCoord>2</yCoord></locus></nonNodule>")
READER_B = _nodule("7", _roi(2.0, "1.2.3.1", _square(6, 11))) + _nodule("8", _roi(6.0, "1.2.3.3", _square(15, 17)))
XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<LidcReadMessage xmlns="http://www.nih.gov">
<ResponseHeader><SeriesInstanceUid>1.2.3</SeriesInstanceUid></ResponseHeader>
<readingSession><servicingRadiologistID>A</servicingRadiologistID>{READER_A}</readingSession>
<readingSession><servicingRadiologistID>B</servicingRadiologistID>{READER_B}</readingSession>
</LidcReadMessage>
"""


def test_outlines_are_filled_with_their_holes_and_grouped_into_physical_nodules(tmp_path):
    lidc = _lidc()
    (tmp_path / "069.xml").write_text(XML)
    volume = Volume(np.zeros((4, 20, 20), np.int16), spacing=(0.5, 0.5, 2.0), origin=(0.0, 0.0, 0.0),
                    modality="CT", source_sop_instance_uids=tuple(f"1.2.3.{k}" for k in range(4)))

    series_uid, nodules = lidc.parse_xml(tmp_path / "069.xml")
    assert series_uid == "1.2.3"
    assert [n.nodule_id for n in nodules] == ["Nodule 001", "7", "8"]  # the one-point nodule is left out
    for n in nodules:
        lidc.rasterize(n, volume)
        assert n.unplaced == 0
    a, b, far = nodules
    z, y, x = np.unravel_index(a.voxels, volume.shape)
    # 6 x 6 on slice 1 (the outline's pixels count in); on slice 2 less the hole's 2 x 2 inside
    assert np.bincount(z, minlength=4).tolist() == [0, 36, 32, 0]
    hole = (z == 2) & (y >= 7) & (y <= 8) & (x >= 7) & (x <= 8)
    assert not hole.any()
    assert ((z == 2) & (y == 6) & (x == 6)).any()  # the hole's own outline stays in the nodule
    assert len(b.voxels) == 36 and len(far.voxels) == 9

    physical = lidc.group(nodules, volume)
    assert len(physical) == 2
    both, alone = physical
    assert sorted(both.readers) == ["069.xml#1", "069.xml#2"] and sorted(alone.readers) == ["069.xml#2"]
    # two readers: the consensus (at least half of them) is either's outline
    assert len(both.consensus()) == 36 + 36 - 25 + 32
    assert both.mask(volume.shape).sum() == len(both.consensus())
    assert lidc.pairwise_dice(both.readers) == [pytest.approx(2 * 25 / (68 + 36))]


@pytest.mark.data
def test_lidc_idri_0001_has_one_nodule_outlined_by_its_four_readers():
    folder = os.path.join(os.environ.get("MEDVIEWER_LIDC", str(ROOT.parent / "lidc")), "LIDC-IDRI-0001")
    if not os.path.isdir(folder):
        # not in ../shared/data (MEDVIEWER_REQUIRE_DATA is about that folder): fetched by hand
        pytest.skip(f"LIDC data {folder} is missing (set MEDVIEWER_LIDC; benchmarks/click_accuracy.py says how)")
    volume, nodules, notes = _lidc().load_case(folder)
    assert notes == [] and volume.shape == (133, 512, 512)
    assert len(nodules) == 1 and len(nodules[0].readers) == 4
    assert 5 < len(nodules[0].consensus()) * volume.voxel_volume_ml < 10
    assert min(_lidc().pairwise_dice(nodules[0].readers)) > 0.8
