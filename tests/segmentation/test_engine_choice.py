"""The "auto" click-segment engine: the classical engine for a lesion that region growing closes
off near its first click, the learned one for a lesion that runs on into tissue like it."""

import numpy as np
import pytest

from medviewer.io.demo_study import LESIONS
from medviewer.segmentation.engine_choice import choose_engine
from medviewer.segmentation.guidance import dice


def test_the_demo_lesions_go_to_the_classical_engine_and_its_body_to_the_learned(demo_volume):
    for lesion in LESIONS:  # spheres in lung and liver, bounded on every side
        engine, why = choose_engine(demo_volume, [lesion.center_mm])
        assert engine == "classical" and "sharply bounded" in why, lesion.name
        # anywhere inside the lesion, not just at its centre
        off = np.asarray(lesion.center_mm) + np.array([0.5, -0.5, 0.0]) * lesion.radius_mm
        assert choose_engine(demo_volume, [off])[0] == "classical", lesion.name
    # the phantom's body: soft tissue that goes on far beyond 50 mm
    centre = demo_volume.voxel_to_patient(np.array(demo_volume.shape) // 2)
    assert choose_engine(demo_volume, [centre]) == ("learned", "")
    # only the first click decides: a second one elsewhere does not switch the lesion's engine
    assert choose_engine(demo_volume, [centre, LESIONS[2].center_mm])[0] == "learned"
    assert choose_engine(demo_volume, [LESIONS[2].center_mm, centre])[0] == "classical"


def test_a_thin_slab_goes_to_the_classical_engine_saying_why(demo_volume):
    slab = demo_volume.crop((40, 0, 0), (42, demo_volume.shape[1], demo_volume.shape[2]))
    engine, why = choose_engine(slab, [slab.voxel_to_patient((0, slab.shape[1] // 2, slab.shape[2] // 2))])
    assert engine == "classical" and "16 mm" in why


# The sarcomas whose deepest point has a compact core (classical.lesion_core): region growing
# holds still over a few windows there and closes them off (Dice 0.88 and 0.86 against the
# expert), and STS_041, whose dark centre (70 HU below the muscle around it) the finer ladder for
# faint lesions finds (0.71; through auto the learned engine outlines it after all, test below).
CORE_SARCOMAS = {"STS_002": 0.8, "STS_003": 0.8, "STS_041": 0.65}


@pytest.mark.data
def test_the_sarcomas_and_the_lung_tumour_go_to_the_learned_engine(sts_cases):
    """The learned engine's ground: of the 44 sts tumours, none closes from its deepest point
    (nor, as measured once for the module's note, from 480 random points inside the first 24), and
    only three have a compact core, which the classical engine outlines well or nearly; nor does the lung
    tumour of A0001 from its box centre (test_classical.py checks the classical engine there). No
    sarcoma is taken for a lung mass (lung_mass_closes) either."""
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.segmentation.classical import segment_classical
    from medviewer.segmentation.engine_choice import LUNG_EDGE_SHARE, _edge_air_share, first_click_classical
    from medviewer.segmentation.guidance import deepest_point, dice

    assert len(sts_cases) == 44
    for case in sts_cases:
        volume = load_volume(case / "image")
        truth = read_rtstruct(case / "RS.dcm", volume, roi_names="GTV_Mass_CT").array > 0
        point, _depth = deepest_point(truth, np.asarray(volume.spacing)[::-1])
        click = volume.voxel_to_patient(point)
        engine, why = choose_engine(volume, [click])
        if case.name in CORE_SARCOMAS:
            kind = "faint lesion" if case.name == "STS_041" else "compact lesion"  # (its dark centre: see above)
            assert engine == "classical" and kind in why, case.name
            assert dice(segment_classical(volume, [click]), truth) > CORE_SARCOMAS[case.name], case.name
        else:
            assert (engine, why) == ("learned", ""), case.name
            # ... and the plugin keeps it there: region growing's outline has next to no lung along
            # its edge, so it is no lung mass the learned engine outlined a part of (lung_mass_closes)
            assert _edge_air_share(volume, first_click_classical(volume, click)) < LUNG_EDGE_SHARE, case.name


@pytest.mark.data
def test_a_sarcomas_faint_core_goes_to_the_learned_engine_that_outlines_the_whole(sts_cases, tmp_path):
    """STS_041's dark centre is a faint core (above): auto asks the learned engine too, whose mask
    holds it and is 1.5 times as large (no spill into an organ: 5.5 to 66 times on faint liver
    lesions), and the learned engine outlines the sarcoma better than the core does (Dice 0.75,
    0.77 before its first look took a coarser grid too; the core 0.71). Through `medviewer
    segment`, which decides before it loads the network."""
    import subprocess
    import sys

    from medviewer.io import load_volume, read_image
    from medviewer.io.annotations import read_rtstruct
    from medviewer.segmentation.classical import core_is_faint
    from medviewer.segmentation.guidance import deepest_point, dice
    from tests.conftest import ROOT

    case = next(c for c in sts_cases if c.name == "STS_041")
    volume = load_volume(case / "image")
    truth = read_rtstruct(case / "RS.dcm", volume, roi_names="GTV_Mass_CT").array > 0
    click = volume.voxel_to_patient(deepest_point(truth, np.asarray(volume.spacing)[::-1])[0])
    assert core_is_faint(volume, click)
    out = tmp_path / "mask.nii.gz"
    r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(case / "image"),
                        "--point=" + ",".join(f"{v:.2f}" for v in click), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "by the learned engine (auto)" in r.stdout and "faint core region growing found is part" in r.stdout
    assert dice(read_image(out).array > 0, truth) > 0.72


@pytest.mark.data
def test_the_lung_tumour_goes_to_the_learned_engine(lung_series):
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_voc_boxes
    from medviewer.segmentation.engine_choice import LUNG_EDGE_SHARE, _edge_air_share, first_click_classical

    volume = load_volume(lung_series)
    boxes = sorted(read_voc_boxes(lung_series.parent / "boxes", volume), key=lambda b: b.slice_index)
    middle = boxes[len(boxes) // 2]
    centre = volume.voxel_to_patient((middle.slice_index, (middle.ymin + middle.ymax) / 2,
                                      (middle.xmin + middle.xmax) / 2))
    assert choose_engine(volume, [centre]) == ("learned", "")
    # ... and the plugin keeps it there (lung_mass_closes): region growing's outline from the same
    # click has lung along 2% of its edge (the tumour lies against the mediastinum)
    assert _edge_air_share(volume, first_click_classical(volume, centre)) < LUNG_EDGE_SHARE


def test_the_plugin_by_default_says_when_the_classical_engine_outlined_a_lesion(demo_volume, demo_series):
    """Through the click-segment plugin (as the window runs it), with its default parameters."""
    from medviewer.io import read_image
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner
    from medviewer.segmentation.guidance import dice

    manifest = get_manifest("click-segment")
    assert manifest.param("engine").default == "auto"
    truth = read_image(demo_series / "lesions.nii.gz").array
    for label, lesion in enumerate(LESIONS, start=1):
        result = Runner().run(manifest, Request(demo_volume, Prompts((lesion.center_mm,), ()), {}))
        assert result.note == ("the classical engine outlined it: a sharply bounded lesion, closed off "
                               "within 50 mm of the click"), lesion.name
        assert dice(result.label_map.array > 0, truth == label) > 0.75, lesion.name


def test_auto_without_the_learned_engines_bundle_falls_back_to_the_classical_one(demo_volume, tmp_path):
    """A lesion "auto" gives the network, on an install whose bundle is missing: the classical
    engine outlines it and says why, where "learned" stops with an error naming the bundle;
    warming "auto" loads nothing and fails nothing."""
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner

    manifest = get_manifest("click-segment")
    centre = demo_volume.voxel_to_patient(np.array(demo_volume.shape) // 2)  # the body: the network's
    missing = str(tmp_path / "no-bundle")
    runner = Runner()
    assert runner.warm(manifest, {"engine": "auto", "bundle": missing}).result(timeout=60) >= 0
    result = runner.run(manifest, Request(demo_volume, Prompts((tuple(centre),), ()), {"bundle": missing}))
    assert result.note.startswith(f"the classical engine outlined it: the learned engine's bundle is missing ({missing})")
    assert "try the learned engine" not in result.note and (result.label_map.array > 0).any()
    with pytest.raises(Exception, match="bundle is missing"):
        runner.run(manifest, Request(demo_volume, Prompts((tuple(centre),), ()), {"engine": "learned", "bundle": missing}))


@pytest.mark.parametrize("level, engine", [(-600, "classical"), (-900, "learned"), (40, "learned")])
def test_a_click_on_ground_glass_goes_to_the_classical_engine(level, engine):
    """The learned engine reads the CT clipped to -250..350 HU: ground glass (-800..-250 HU) is air
    to it (LIDC-IDRI-0003's 0.6 mL nodule: Dice 0.32, the classical engine 0.83). A field of one
    density that runs on past the crop (no region closes, no core) goes to the learned engine,
    unless it is ground glass; aerated lung and soft tissue stay with it."""
    from medviewer.core.volume import Volume

    rng = np.random.default_rng(0)
    volume = Volume((level + rng.normal(0, 20, (40, 128, 128))).astype(np.int16), spacing=(1.0, 1.0, 2.5))
    engine_chosen, why = choose_engine(volume, [volume.voxel_to_patient((20, 64, 64))])
    assert engine_chosen == engine
    assert ("ground-glass" in why and "-250 to 350 HU" in why) == (engine == "classical")


def _lung_mass(mass_mm: float, centre_mm: float = 8.0):
    """A soft-tissue mass (40 HU) of radius ``mass_mm`` with a dark centre (-40 HU) of
    ``centre_mm`` in lung (-850 HU), 1 mm voxels; and the distance (mm) to its middle."""
    from medviewer.core.volume import Volume

    n = 90
    zz, yy, xx = np.ogrid[:n, :n, :n]
    r = np.sqrt((zz - 45.0) ** 2 + (yy - 45.0) ** 2 + (xx - 45.0) ** 2)
    array = np.where(r <= centre_mm, -40.0, np.where(r <= mass_mm, 40.0, -850.0))
    array = array + np.random.default_rng(0).normal(0, 10, (n, n, n))
    return Volume(array.astype(np.int16), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)), r


@pytest.mark.parametrize("mass_mm, kind", [(20, "enclosed"), (27, "deep"), (34, "")])
def test_a_dark_centre_deep_in_a_lung_mass_may_be_part_of_it(mass_mm, kind):
    """Region growing closes off a lung mass's dark centre. Deep in a large mass the shell 3 to
    20 mm around that outline is mostly mass: lung in 12% of it in a pasted 147 mL rim-enhancing
    mass and a 202 mL necrotic one, under the 20% the check asked for, so the learned engine was
    not asked and the 3-18 mL centre stood (Dice 0.05 and 0.17; the learned engine 0.61 and 0.66).
    Such an outline is "deep" now. Phantom: a centre of 8 mm in masses of 20, 27 and 34 mm (lung
    in most of the shell around the outline, in 18% of it, and in none)."""
    from medviewer.segmentation.engine_choice import choose_engine, first_click_classical, may_be_part_of_a_mass

    volume, r = _lung_mass(mass_mm)
    click = volume.voxel_to_patient((45, 45, 45))
    assert choose_engine(volume, [click])[0] == "classical"
    assert dice(first_click_classical(volume, click), r <= 8) > 0.8
    assert may_be_part_of_a_mass(volume, click) == kind


def test_a_learned_outline_of_a_mass_lies_in_the_lung_one_under_the_diaphragm_does_not():
    """For a "deep" outline, the learned engine's mask must lie in the lung itself (lung in 40%
    of the shell 3-20 mm around it): a mass's outline does; a spill into the liver under the
    diaphragm (lung above it only) does not."""
    from medviewer.core.volume import Volume
    from medviewer.segmentation.engine_choice import lies_in_the_lung

    volume, r = _lung_mass(27)
    assert lies_in_the_lung(volume, r <= 27)
    n = 90
    zz, yy, xx = np.ogrid[:n, :n, :n]
    array = np.where(zz < 30, -850.0, 60.0) + np.zeros((n, n, n))  # lung above, liver below
    liver = Volume(array.astype(np.int16), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    spill = np.sqrt((zz - 50.0) ** 2 + (yy - 45.0) ** 2 + (xx - 45.0) ** 2) <= 15  # 5 mm under it
    assert not lies_in_the_lung(liver, spill)


@pytest.mark.parametrize("radius, gap, lesion_hu", [(10, 5, 10.0), (10, 8, 120.0), (15, 3, 10.0), (6, 5, 120.0)])
def test_a_liver_lesion_under_the_diaphragm_gets_no_wall(radius, gap, lesion_hu):
    """A liver lesion 3-8 mm under a domed diaphragm, lung above it only: region growing outlines
    it whole, and its outline is "enclosed" or "deep" (lung in 10-30% of the shell 3-20 mm
    around it), as a lung mass's centre is. Auto adds a wall to such an outline without asking
    the learned engine's opinion now: the wall's own test must refuse the liver between the
    lesion and the lung (lung beyond it in under 30% of the shell past it)."""
    from medviewer.core.volume import Volume
    from medviewer.segmentation.engine_choice import (first_click_classical, may_be_part_of_a_mass,
                                                      wall_towards_the_lung)

    n = 96
    zz, yy, xx = np.ogrid[:n, :n, :n]
    centre = 30 + gap + radius
    r = np.sqrt((zz - centre) ** 2 + (yy - 48.0) ** 2 + (xx - 48.0) ** 2)
    dome = zz < 30 + 0.004 * ((yy - 48.0) ** 2 + (xx - 48.0) ** 2)
    array = np.where(dome, -850.0, 60.0) * np.ones((n, n, n))
    array[r <= radius] = lesion_hu
    array += np.random.default_rng(0).normal(0, 10, array.shape)
    volume = Volume(array.astype(np.int16), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    click = volume.voxel_to_patient((centre, 48, 48))
    part = first_click_classical(volume, click)
    assert dice(part, r <= radius) > 0.8
    assert may_be_part_of_a_mass(volume, click) in ("enclosed", "deep")
    assert wall_towards_the_lung(volume, part, click) is None


def test_a_faint_core_inside_a_lung_mass_is_the_masss_an_organs_is_not():
    """A "faint core" that the finer ladder or the rays find in a large mass's own noise (a pasted
    251 mL mass against LIDC-IDRI-0001's pleura: 4.8 mL, Dice 0.04) lies inside a mass in the lung
    where the learned engine's mask holds it, is twice its size or more and has lung around it; in
    an organ the learned engine's spill has none, and a mask no larger than the core is no mass."""
    from medviewer.core.volume import Volume
    from medviewer.segmentation.engine_choice import inside_a_lung_mass

    volume, r = _lung_mass(27)
    core = r <= 6
    assert inside_a_lung_mass(volume, r <= 26, core)
    assert not inside_a_lung_mass(volume, r <= 6.5, core)
    assert not inside_a_lung_mass(volume, (r <= 26) & ~(r <= 4), core)  # (it must hold the core)
    organ = Volume(np.full(volume.shape, 55, np.int16), spacing=volume.spacing, origin=volume.origin)
    assert not inside_a_lung_mass(organ, r <= 26, core)


def test_a_lung_mass_larger_than_the_first_window_is_outlined_whole_by_region_growing():
    """A lung mass of 150-400 mL runs past the first window, so auto gives it to the learned
    engine, which outlines 50-70% of it. Where the classical outline from the same click holds the
    learned mask, is 1 to 2 times as large, stops short of the classical engine's reach and has lung
    along its edge, it is taken (engine_choice.lung_mass_closes). Phantom: a solid mass of 34 mm
    in lung, the learned engine's part of it the two thirds on one side, or a ball of 28 mm."""
    from medviewer.core.volume import Volume
    from medviewer.segmentation.engine_choice import lung_mass_closes, lung_near

    volume, r = _lung_mass(34, centre_mm=0)
    n = 90
    zz, yy, xx = np.ogrid[:n, :n, :n]
    part = (r <= 34) & (xx < 57)
    click = volume.voxel_to_patient((45, 45, 45))
    assert lung_near(volume, click)
    outline = lung_mass_closes(volume, part, click)
    assert outline is not None and dice(outline, r <= 34) > 0.9
    assert lung_mass_closes(volume, (r <= 34) & (xx < 38), click) is None  # a third of it: maybe not the same lesion
    assert lung_mass_closes(volume, r <= 40, click) is None  # the learned mask is the larger
    inner = lung_mass_closes(volume, r <= 28, click)  # a learned mask inside the mass, lung only beyond
    assert inner is not None and dice(inner, r <= 34) > 0.9
    # soft tissue all round (a sarcoma in muscle): no lung near the learned mask
    muscle = np.where(r <= 34, 40.0, 55.0) + np.random.default_rng(1).normal(0, 10, (n, n, n))
    tissue = Volume(muscle.astype(np.int16), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))
    assert not lung_near(tissue, click) and lung_mass_closes(tissue, part, click) is None


@pytest.mark.data
def test_a_large_mass_against_the_pleura_is_outlined_whole(lung_series):
    """A 272 mL mass pasted against A0001's pleura runs past the first window and goes to the
    learned engine, which outlines about half of it (Dice 0.73); region growing closes it whole
    (0.89), and auto takes that outline, for the first click and the corrective ones, and says so.
    Through the click-segment plugin, as the window runs it."""
    from medviewer.io import load_volume
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner
    from medviewer.segmentation.guidance import corrective_click, deepest_point
    from medviewer.segmentation.synthetic import make_case

    case = make_case(load_volume(lung_series), "chest-pleura", "hypodense", 310, 9113)
    volume, truth = case.image, case.truth
    click = volume.voxel_to_patient(deepest_point(truth, np.asarray(volume.spacing)[::-1])[0])
    assert choose_engine(volume, [click]) == ("learned", "")
    manifest = get_manifest("click-segment")
    learned = Runner().run(manifest, Request(volume, Prompts((tuple(click),), ()), {"engine": "learned"}))
    auto = Runner().run(manifest, Request(volume, Prompts((tuple(click),), ()), {}))
    assert "mass in the lung larger than the learned engine's window" in auto.note
    assert dice(learned.label_map.array > 0, truth) < 0.8 < 0.85 < dice(auto.label_map.array > 0, truth)
    # a corrective click stays with the classical engine (the first click decides)
    mask = auto.label_map.array > 0
    point, positive = corrective_click(mask, truth, np.asarray(volume.spacing)[::-1])
    prompts = Prompts((tuple(click),) + ((tuple(volume.voxel_to_patient(point)),) if positive else ()),
                      () if positive else (tuple(volume.voxel_to_patient(point)),))
    second = Runner().run(manifest, Request(volume, prompts, {"previous": mask}))
    assert "classical engine outlined it" in second.note and dice(second.label_map.array > 0, truth) >= dice(mask, truth)


@pytest.mark.data
def test_segment_on_the_command_line_lets_the_plugin_outline_a_large_lung_mass_whole(lung_series, tmp_path):
    """`medviewer segment` decides the engine before it loads the network; near lung it leaves a
    lesion the first window gives the learned engine to the plugin, which may take region
    growing's outline of a lung mass (as above)."""
    from medviewer.io import load_volume
    from medviewer.segmentation.synthetic import make_case
    from tests.conftest import segment_pasted_case

    case = make_case(load_volume(lung_series), "chest-pleura", "hypodense", 310, 9113)
    r, mask = segment_pasted_case(case, tmp_path)
    assert "by the classical engine (auto)" in r.stdout and "mass in the lung larger" in r.stdout
    assert dice(mask, case.truth) > 0.85
