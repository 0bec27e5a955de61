"""Click-to-segment accuracy, corrections and latency, on sarcomas and off them, for every engine.

    python benchmarks/click_accuracy.py [--sets sts,synthetic,masses,big-masses,faint,soft,edge,a0001,demo,lidc]
        [--engines auto,learned,classical]
        [--clicks 5] [--cases STS_019,...] [--synthetic 24] [--lidc DIR] [--abdomen FILE] [--no-previous]
        [--draw N]

The robot user of tools/click_eval.py, in process: the first click at the deepest point of the
truth, each next one at the deepest point of the larger error (missed -> positive, spilled ->
negative). Each run gets the mask of the run before as the plugin's ``previous`` parameter, as
the window and ``medviewer segment`` give it (medviewer.segmentation.corrections: corrective
clicks change the mask only near themselves); ``--no-previous`` leaves it out, as before.
``--draw N`` (N > 0) makes a fresh draw of every made-up set (other sizes, shapes and places from
the same recipes): lesions no rule of the engines was tuned on, the way unseen cases judge them.

Sets:
  sts        the validation sarcomas (default the learned engine's 10: STS_019..025, 032, 036, 039; --cases picks others): Dice against
             the expert contour (GTV_Mass_CT) after each click, the last mask's mean and 95th
             percentile surface distance (mm);
  synthetic  off-sarcoma lesions made on the fly (medviewer.segmentation.synthetic, seeded):
             hypo- and hyperdense, rim-enhancing and necrotic, 0.5 to 40 mL, pasted into the
             lung of Lung-PET-CT-Dx A0001 (free in it, or against the pleura and mediastinum)
             and into the liver (A0001's lower slices, the compressed Siemens series): Dice
             against the pasted truth, with the medians of the chest and the abdominal lesions;
  masses     larger pasted lesions in A0001's chest (30 to 200 mL; half against the pleura, half
             free in the lung; every pattern): where region growing may close off only a part
             (a dark centre, a mass pressed against the chest wall), as lung masses do;
  big-masses lung masses of 100 to 400 mL (20; the size of an NSCLC tumour) pasted into A0001's
             chest and, where --lidc holds them, the LIDC scans' chests in turn (half against the
             pleura, half free in the lung; every pattern): the learned engine had outlined under
             half of the largest;
  faint      faint lesions (medviewer.segmentation.synthetic's "faint"): in the liver 15 to 35 HU
             darker or brighter than it, near the noise (8: A0001, the compressed series), and
             ground-glass nodules in A0001's lung (4, -700 to -350 HU), 1 to 30 mL; Dice against
             the pasted truth, the medians of the liver and the lung lesions;
  soft       soft-edged liver lesions (medviewer.segmentation.synthetic's "soft", 10: A0001, the
             compressed series): 20 to 60 HU from the liver, the edge a ramp 4 to 8 mm wide (the
             truth is half-way up it), uneven inside; as metastases often are;
  edge       lesions at the liver's edge, bulging out of it (synthetic's "abdomen-edge"), 3 to 150 mL
             (20: every pattern and "soft" in turn), in a whole liver: the abdominal CT of --abdomen
             FILE (default $MEDVIEWER_ABDOMEN, else ../abdomen/example_ct.nii.gz; below). The
             other sets' livers are A0001's dome and 20 slices of the compressed series, too small
             for a lesion of 50 mL or more;
  a0001      the lung tumour of Lung-PET-CT-Dx A0001, one click at the centre of its middle box:
             the mask's volume, its share on the annotated slices and inside the boxes there,
             the slices it covers;
  demo       the generated demo phantom's three lesions;
  lidc       the LIDC-IDRI lung nodules (3 mm and more) of --lidc DIR (default $MEDVIEWER_LIDC, else
             ../lidc): benchmarks/lidc.py rasterises each reader's XML outlines and groups them into
             physical nodules. The robot clicks against the consensus: the voxels marked by at least
             half of the readers who outlined the nodule (with two readers, by either). Per nodule:
             the consensus volume, the readers, the Dice against the consensus after each click, the
             last mask's Dice against each reader (median [min-max]) beside the readers' pairwise Dice
             with one another (median [min-max]: the human ceiling); then the medians over nodules.

LIDC data (lidc set): LIDC-IDRI-0001..0003 (full chest CTs, the XML of 4 readers each; 6 nodules of
3 mm and more) lie in github.com/drivendataorg/concept-to-clinic at commit 17f399f (at HEAD they are
Git LFS pointers), as tests/assets/LIDC-IDRI-000N/<study UID>/<series UID>/ with the .dcm slices and
the NNN.xml together. Put each LIDC-IDRI-000N folder, as it is, into the --lidc folder (outside the
repository: never commit data):

    git clone https://github.com/drivendataorg/concept-to-clinic c2c
    git -C c2c archive 17f399f tests/assets | tar -x -C /tmp && mv /tmp/tests/assets/LIDC-IDRI-000? ../lidc/

Case folders downloaded from TCIA (a CT series and its XML, nested or not) go there the same way.
Licence CC BY 3.0: Armato SG III et al., Data From LIDC-IDRI, The Cancer Imaging Archive,
DOI 10.7937/K9/TCIA.2015.LO9QL9SX (and Med Phys 38:915-931, 2011).

Abdominal CT (edge set): tests/reference_files/example_ct.nii.gz of github.com/wasserth/TotalSegmentator
(Apache-2.0; abdomen and pelvis resampled to 3 mm, the scan that compressed-ct/example_ct_dicom
holds 20 slices of). Put it outside the repository:

    git clone --depth 1 https://github.com/wasserth/TotalSegmentator ts
    mkdir -p ../abdomen && cp ts/tests/reference_files/example_ct.nii.gz ../abdomen/

For each engine, the robot's correction statistics over all the cases it ran: how many corrective
clicks lowered the Dice, by how much at most, and the clicks left on the wrong side of the mask
after a run ("ignored"). Latency: the median per click through the plugin with the engine loaded,
as in the window (the learned engine's first call, which loads the network, is reported apart),
and the median CPU time per click of all the process's threads (on a shared, loaded machine the
wall time says more about the neighbours than about the engine; on 2 idle cores a click takes at
most its CPU time).

It measures the checkout it lies in: it puts the folder above it first on ``sys.path``, ahead of
PYTHONPATH and the installed package. To compare with another commit, run that commit's own copy
(``git worktree add ../base <commit>``, then ``python ../base/benchmarks/click_accuracy.py ...``);
``PYTHONPATH=../base python benchmarks/click_accuracy.py`` measures this checkout twice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# The validation split of the learned engine v0.5.0 (training/train_click_model.py, model card):
# never trained on.
VAL_CASES = [f"STS_{n:03d}" for n in (19, 20, 21, 22, 23, 24, 25, 32, 36, 39)]
DATA = os.environ.get("MEDVIEWER_DATA", "../shared/data")
A0001 = "lung-pet-ct-dx/A0001/series-2-5mm-L"
COMPRESSED = "compressed-ct/example_ct_dicom"


DRAW = 0  # --draw: 0 is the benchmark's own lesions; another number draws a fresh set of them


def _rng(base: int) -> np.random.Generator:
    """The sizes' generator of a set: its own seed, or that seed and the --draw number."""
    return np.random.default_rng(base if DRAW == 0 else (base, DRAW))


def _seed(seed: int) -> int:
    """A lesion's seed for synthetic.make_case: its own, or moved by the --draw number."""
    return seed + 100_000 * DRAW


def sts_cases(names):
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct

    for name in names:
        volume = load_volume(os.path.join(DATA, "sts", name, "image"))
        truth = read_rtstruct(os.path.join(DATA, "sts", name, "RS.dcm"), volume, roi_names="GTV_Mass_CT").array > 0
        yield name, "sts", volume, truth


def synthetic_specs(n: int):
    """``n`` lesions (site, background, pattern, mL, seed), a quarter on each of the four
    places, the patterns in turn, sizes log-uniform over each place's range (the compressed
    series is 40 mm thick: its lesions stay small)."""
    from medviewer.segmentation.synthetic import PATTERNS

    places = [("chest-lung", A0001, (0.5, 40)), ("chest-pleura", A0001, (1, 25)),
              ("abdomen", A0001, (2, 30)), ("abdomen", COMPRESSED, (1, 10))]
    rng = _rng(2026)
    for k in range(n):
        site, background, (lo, hi) = places[k % 4]
        ml = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        yield site, background, PATTERNS[(k // 4) % len(PATTERNS)], round(ml, 1), _seed(1000 + k)


def synthetic_cases(n: int):
    from medviewer.io import load_volume
    from medviewer.segmentation.synthetic import make_case

    backgrounds = {}
    for site, background, pattern, ml, seed in synthetic_specs(n):
        if background not in backgrounds:
            backgrounds[background] = load_volume(os.path.join(DATA, background))
        case = make_case(backgrounds[background], site, pattern, ml, seed)
        if case is None:
            print(f"  (no room for {site} {pattern} {ml} mL in {background})")
            continue
        tag = "cct" if background == COMPRESSED else "a1"
        yield f"{case.name}-{tag}", "chest" if site.startswith("chest") else "abdomen", case.image, case.truth


def faint_cases():
    """12 faint lesions, seeded: 4 in each of the two livers, 15-35 HU from it, and 4 ground-glass
    nodules in A0001's lung; sizes log-uniform over 1-30 mL (the compressed series: 1-10 mL)."""
    from medviewer.io import load_volume
    from medviewer.segmentation.synthetic import FAINT, make_case

    backgrounds = {name: load_volume(os.path.join(DATA, name)) for name in (A0001, COMPRESSED)}
    places = [("abdomen", A0001, (2, 30)), ("abdomen", COMPRESSED, (1, 10)), ("chest-lung", A0001, (1, 30))]
    rng = _rng(2028)
    for k in range(12):
        site, background, (lo, hi) = places[k % 3]
        ml = round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 1)
        case = make_case(backgrounds[background], site, FAINT, ml, _seed(3000 + k))
        if case is None:
            print(f"  (no room for a faint {site} lesion of {ml} mL in {background})")
            continue
        tag = "cct" if background == COMPRESSED else "a1"
        yield f"{case.name}-{tag}", "faint-lung" if site.startswith("chest") else "faint-liver", case.image, case.truth


def soft_cases(n: int = 10):
    """``n`` soft-edged lesions in the two livers in turn (medviewer.segmentation.synthetic's
    "soft": 20-60 HU from the liver, an edge ramp 4-8 mm wide, uneven inside), seeded; sizes
    log-uniform over 2-40 mL (the compressed series, 20 slices of 2 mm: 1-12 mL)."""
    from medviewer.io import load_volume
    from medviewer.segmentation.synthetic import SOFT, make_case

    backgrounds = {name: load_volume(os.path.join(DATA, name)) for name in (A0001, COMPRESSED)}
    places = [(A0001, (2, 40)), (COMPRESSED, (1, 12))]
    rng = _rng(2030)
    for k in range(n):
        background, (lo, hi) = places[k % 2]
        ml = round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 1)
        case = make_case(backgrounds[background], "abdomen", SOFT, ml, _seed(3100 + k))
        if case is None:
            print(f"  (no room for a soft lesion of {ml} mL in {background})")
            continue
        yield f"{case.name}-{'cct' if background == COMPRESSED else 'a1'}", "soft-liver", case.image, case.truth


def edge_cases(path: str, n: int = 20):
    """``n`` lesions at the liver's edge of the abdominal CT ``path`` (synthetic's "abdomen-edge":
    the centre half a radius to a radius deep, bulging out of the liver by up to half its radius),
    the four patterns and "soft" in turn, sizes log-uniform over 3-150 mL, seeded."""
    from medviewer.io import load_volume
    from medviewer.segmentation.synthetic import PATTERNS, SOFT, make_case

    if not os.path.isfile(path):
        print(f"  (no abdominal CT at {os.path.abspath(path)}: see --abdomen and the docstring)")
        return
    background = load_volume(path)
    patterns = PATTERNS + (SOFT,)
    rng = _rng(91)
    for k in range(n):
        ml = round(float(np.exp(rng.uniform(np.log(3), np.log(150)))), 1)
        case = make_case(background, "abdomen-edge", patterns[k % len(patterns)], ml, _seed(6000 + k))
        if case is None:
            print(f"  (no room for a lesion of {ml} mL at the liver's edge)")
            continue
        yield f"{case.name}-ts", "liver-edge", case.image, case.truth


def mass_cases(n: int = 8):
    """``n`` larger lesions (30-200 mL, log-uniform) pasted into A0001's chest: against the
    pleura and free in the lung in turn, the patterns in turn, seeded."""
    from medviewer.io import load_volume
    from medviewer.segmentation.synthetic import PATTERNS, make_case

    chest = load_volume(os.path.join(DATA, A0001))
    rng = _rng(2027)
    for k in range(n):
        site = ("chest-pleura", "chest-lung")[k % 2]
        ml = round(float(np.exp(rng.uniform(np.log(30), np.log(200)))), 1)
        case = make_case(chest, site, PATTERNS[(k // 2) % len(PATTERNS)], ml, _seed(2000 + k))
        if case is None:
            print(f"  (no room for {site} {ml} mL in {A0001})")
            continue
        yield f"{case.name}-a1", "mass", case.image, case.truth


def big_mass_cases(lidc_root: str, n: int = 20):
    """``n`` lung masses of 100-400 mL (log-uniform; a real lung tumour of NSCLC size), pasted into
    A0001's chest and, where --lidc holds them, the LIDC scans' chests in turn: against the
    pleura and free in the lung in turn, the patterns in turn, seeded. Where a site has no room
    for a mass, the next background is tried, then the pleura."""
    from lidc import find_cases, load_case  # benchmarks/lidc.py (benchmarks/, first on sys.path)

    from medviewer.io import load_volume
    from medviewer.segmentation.synthetic import PATTERNS, make_case

    backgrounds = [("a1", load_volume(os.path.join(DATA, A0001)))]
    for folder in find_cases(lidc_root):
        try:
            backgrounds.append((os.path.basename(folder)[-4:], load_case(folder)[0]))
        except Exception as e:  # any failure: one line naming the file, then the others
            print(f"  (LIDC background skipped: {type(e).__name__}: {e})")
    rng = _rng(2029)
    for k in range(n):
        site = ("chest-pleura", "chest-lung")[k % 2]
        ml = round(float(np.exp(rng.uniform(np.log(100), np.log(400)))), 1)
        # (free in the lung, 4 mm from its edge all round: a mass of 180 mL or more finds no room in
        # these chests, and goes against the pleura instead)
        tries = [(place, j) for place in dict.fromkeys((site, "chest-pleura")) for j in range(len(backgrounds))]
        for place, j in tries:
            tag, background = backgrounds[(k + j) % len(backgrounds)]
            case = make_case(background, place, PATTERNS[(k // 2) % len(PATTERNS)], ml, _seed(9000 + k))
            if case is not None:
                yield f"{case.name}-{tag}", "big-mass", case.image, case.truth
                break
        else:
            print(f"  (no room for a {ml} mL mass in any background)")


def demo_cases():
    import tempfile

    from medviewer.io import load_volume, read_image
    from medviewer.io.demo_study import write_demo_study

    with tempfile.TemporaryDirectory() as tmp:
        series = write_demo_study(tmp)
        volume = load_volume(series)
        labels = read_image(os.path.join(series, "lesions.nii.gz")).array
    for n in range(1, int(labels.max()) + 1):
        yield f"demo-{n}", "demo", volume, labels == n


def lidc_cases(root: str):
    """(name, volume, physical nodule) for each LIDC nodule; a case that cannot load is named and skipped."""
    from lidc import find_cases, load_case  # benchmarks/lidc.py (benchmarks/, first on sys.path)

    folders = find_cases(root)
    if not folders:
        print(f"  (no LIDC case folder under {os.path.abspath(root)}: see --lidc and the docstring)")
    for folder in folders:
        try:
            volume, nodules, notes = load_case(folder)
        except Exception as e:  # any failure: one line naming the file, then the next case
            message = str(e) if folder in str(e) else f"{folder}: {e}"
            print(f"  (LIDC case skipped: {type(e).__name__}: {message})")
            continue
        for note in notes:
            print(f"  ({note})")
        for n, nodule in enumerate(nodules, 1):
            yield f"{os.path.basename(folder)}/{n}", volume, nodule


class Robot:
    """Runs the click-segment plugin as the robot user clicks, and keeps the statistics."""

    def __init__(self, plugin, params, clicks: int, use_previous: bool):
        self.plugin, self.params, self.clicks, self.use_previous = plugin, params, clicks, use_previous
        self.first_call = None
        self.corrections = self.worse = self.judged = self.ignored = 0
        self.drops: list[float] = []
        self.cpu: list[float] = []  # CPU seconds per warm click, all threads: wall time on an idle machine is less

    def run(self, volume, truth):
        from medviewer.plugins.api import CancelToken, Prompts, Request
        from medviewer.segmentation.guidance import corrective_click, deepest_point, dice

        spacing_zyx = volume.spacing[::-1]
        positives, negatives = [volume.voxel_to_patient(deepest_point(truth, spacing_zyx)[0])], []
        scores, times, pred, ignored = [], [], None, 0
        for _ in range(self.clicks):
            params = dict(self.params)
            if self.use_previous and pred is not None:
                params["previous"] = pred
            request = Request(volume, Prompts(tuple(map(tuple, positives)), tuple(map(tuple, negatives))),
                              params, device="cpu")
            t, c = time.perf_counter(), time.process_time()
            result = self.plugin.run(request, lambda *args: None, CancelToken())
            elapsed = time.perf_counter() - t
            if self.first_call is None:
                self.first_call = elapsed
            else:
                times.append(elapsed)
                self.cpu.append(time.process_time() - c)
            pred = result.label_map.array > 0
            scores.append(dice(pred, truth))
            if len(scores) > 1:
                self.corrections += 1
                self.worse += scores[-1] < scores[-2]
                self.drops.append(scores[-2] - scores[-1])
            for points, inside in ((positives, True), (negatives, False)):
                for p in points:
                    self.judged += 1
                    ignored += bool(pred[tuple(np.rint(volume.patient_to_voxel(p)).astype(int))]) != inside
            nxt = corrective_click(pred, truth, spacing_zyx)
            if nxt is None:
                break
            (positives if nxt[1] else negatives).append(volume.voxel_to_patient(nxt[0]))
        self.ignored += ignored
        return scores + [scores[-1]] * (self.clicks - len(scores)), times, pred, ignored


def run_cases(robot: Robot, cases, clicks: int, surfaces: bool):
    """One row per case; returns [(name, group, scores, times)]."""
    from medviewer.core.compare import compare_masks

    rows = []
    print(f"{'case':40s} {'mL':>7s}  " + "  ".join(f"dice@{k + 1}" for k in range(clicks))
          + ("  msd     hd95  " if surfaces else "  ") + "s/click  worse  ignored")
    for name, group, volume, truth in cases:
        worse_before = robot.worse
        scores, times, pred, ignored = robot.run(volume, truth)
        extra = ""
        if surfaces:
            last = compare_masks(pred, truth, volume.spacing)
            extra = f"  {last.mean_surface_mm:5.1f}mm {last.hd95_mm:6.1f}mm"
        ml = truth.sum() * volume.voxel_volume_ml
        print(f"{name:40s} {ml:7.1f}  " + "  ".join(f"{s:6.3f}" for s in scores) + extra +
              f"  {statistics.median(times) if times else robot.first_call:6.2f}  {robot.worse - worse_before:5d}"
              f"  {ignored:7d}", flush=True)
        rows.append((name, group, scores, times))
    return rows


def medians(rows, clicks: int) -> None:
    for group in sorted({g for _n, g, _s, _t in rows}):
        keep = [s for _n, g, s, _t in rows if g == group]
        med = np.median(np.array(keep), axis=0)
        print(f"{'median ' + group:40s} {'':7s}  " + "  ".join(f"{s:6.3f}" for s in med) + f"  (n={len(keep)})")


def run_lidc(robot: Robot, nodules, clicks: int):
    """The LIDC nodules against their consensus, with the last mask's Dice against each reader beside
    the readers' pairwise Dice (the human ceiling); returns rows as run_cases does."""
    from lidc import pairwise_dice, sparse_dice

    def spread(values) -> str:
        return f"{statistics.median(values):.3f} [{min(values):.2f}-{max(values):.2f}]" if values else "-"

    rows, mine, ceiling = [], [], []
    print(f"{'LIDC nodule (Dice vs consensus)':32s} {'mL':>6s} rdrs  "
          + "  ".join(f"dice@{k + 1}" for k in range(clicks))
          + "  s/click  worse  ignored  vs readers          readers pairwise")
    for name, volume, nodule in nodules:
        worse_before = robot.worse
        scores, times, pred, ignored = robot.run(volume, nodule.mask(volume.shape))
        flat = np.flatnonzero(pred)
        against = [sparse_dice(flat, voxels) for voxels in nodule.readers.values()]
        pairs = pairwise_dice(nodule.readers)
        mine.append((statistics.median(against), len(pairs) > 0))
        if pairs:
            ceiling.append(statistics.median(pairs))
        ml = len(nodule.consensus()) * volume.voxel_volume_ml
        print(f"{name:32s} {ml:6.2f} {len(nodule.readers):4d}  " + "  ".join(f"{s:6.3f}" for s in scores)
              + f"  {statistics.median(times) if times else robot.first_call:7.2f}  {robot.worse - worse_before:5d}"
              f"  {ignored:7d}  {spread(against):18s}  {spread(pairs)}", flush=True)
        rows.append((name, "lidc", scores, times))
    if rows:
        med = np.median(np.array([s for _n, _g, s, _t in rows]), axis=0)
        shared = [m for m, p in mine if p] or [float("nan")]
        print(f"{'median over nodules':32s} {'':6s} {'':4s}  " + "  ".join(f"{s:6.3f}" for s in med)
              + f"  (n={len(rows)})")
        print(f"  last mask vs readers (median of the nodules' medians) {statistics.median([m for m, _p in mine]):.3f};"
              f" on the {len(ceiling)} nodules with 2+ readers {statistics.median(shared):.3f}, beside the readers'"
              f" pairwise Dice (the human ceiling) {statistics.median(ceiling or [float('nan')]):.3f}")
    return rows


def a0001(plugin, params) -> None:
    """The lung tumour of A0001: one click at the centre of the middle box."""
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_voc_boxes
    from medviewer.plugins.api import CancelToken, Prompts, Request

    volume = load_volume(os.path.join(DATA, A0001))
    boxes = sorted(read_voc_boxes(os.path.join(DATA, A0001, "..", "boxes"), volume), key=lambda b: b.slice_index)
    inside = np.zeros(volume.shape, bool)
    for b in boxes:
        inside[b.slice_index, int(b.ymin):int(b.ymax) + 1, int(b.xmin):int(b.xmax) + 1] = True
    annotated = sorted({b.slice_index for b in boxes})
    middle = boxes[len(boxes) // 2]
    centre = volume.voxel_to_patient((middle.slice_index, (middle.ymin + middle.ymax) / 2,
                                      (middle.xmin + middle.xmax) / 2))
    t = time.perf_counter()
    result = plugin.run(Request(volume, Prompts((tuple(centre),), ()), params, device="cpu"),
                        lambda *args: None, CancelToken())
    elapsed = time.perf_counter() - t
    m = result.label_map.array > 0
    n = max(1, int(m.sum()))
    covered = np.flatnonzero(m.any(axis=(1, 2)))
    on = m[annotated].sum() / n
    print(f"A0001 tumour: {m.sum() * volume.voxel_volume_ml:.1f} mL, {on:.1%} on the {len(annotated)} annotated "
          f"slices, {(m & inside).sum() / n:.1%} of the mask inside the boxes (on the annotated slices), slices "
          f"{covered.min() if len(covered) else '-'}..{covered.max() if len(covered) else '-'} "
          f"({len(covered)}; annotated {annotated[0]}..{annotated[-1]}), {elapsed:.2f} s"
          + (f"; note: {result.note}" if result.note else ""))


def main() -> None:
    from medviewer.plugins.registry import get_manifest, load_plugin

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="sts", help="comma-separated: sts, synthetic, masses, big-masses, faint, soft, "
                    "edge, a0001, demo, lidc")
    ap.add_argument("--engines", default="auto,learned,classical")
    ap.add_argument("--clicks", type=int, default=3)
    ap.add_argument("--cases", default=",".join(VAL_CASES), help="the sts cases")
    ap.add_argument("--synthetic", type=int, default=24, help="how many synthetic lesions")
    ap.add_argument("--demo", action="store_true", help="the same as adding demo to --sets")
    ap.add_argument("--no-previous", action="store_true", help="rerun each click without the previous mask")
    ap.add_argument("--bundle", default="", help="the learned engine's bundle (default: the shipped one)")
    ap.add_argument("--lidc", default=os.environ.get("MEDVIEWER_LIDC", "../lidc"), help="the LIDC case folders")
    ap.add_argument("--abdomen", default=os.environ.get("MEDVIEWER_ABDOMEN", "../abdomen/example_ct.nii.gz"),
                    help="the edge set's abdominal CT")
    ap.add_argument("--draw", type=int, default=0, help="0 (default): the benchmark's own made-up lesions; another "
                    "number: a fresh draw of them (sizes, shapes, places), for lesions no rule was tuned on")
    a = ap.parse_args()
    global DRAW
    DRAW = a.draw
    sets = a.sets.split(",") + (["demo"] if a.demo else [])
    manifest = get_manifest("click-segment")
    plugin = load_plugin(manifest)
    cases = []
    if "sts" in sets:
        cases += list(sts_cases(a.cases.split(",")))
    if "synthetic" in sets:
        cases += list(synthetic_cases(a.synthetic))
    if "masses" in sets:
        cases += list(mass_cases())
    if "faint" in sets:
        cases += list(faint_cases())
    if "soft" in sets:
        cases += list(soft_cases())
    if "edge" in sets:
        cases += list(edge_cases(a.abdomen))
    if "big-masses" in sets:
        cases += list(big_mass_cases(a.lidc))
    if "demo" in sets:
        cases += list(demo_cases())
    nodules = list(lidc_cases(a.lidc)) if "lidc" in sets else []
    summary = {}
    for engine in a.engines.split(","):
        params = manifest.resolve_params({"engine": engine, "bundle": a.bundle})
        print(f"\nengine {engine}" + (" (no previous mask)" if a.no_previous else ""))
        robot = Robot(plugin, params, a.clicks, not a.no_previous)
        rows = run_cases(robot, cases, a.clicks, surfaces="sts" in sets) if cases else []
        rows += run_lidc(robot, nodules, a.clicks) if nodules else []
        if rows:
            medians(rows, a.clicks)
            drops = [d for d in robot.drops if d > 0]
            print(f"corrective clicks that lowered the Dice: {robot.worse} of {robot.corrections}"
                  f" ({robot.worse / max(1, robot.corrections):.1%}), by at most {max(drops, default=0):.3f}"
                  f" (by more than 0.05: {sum(d > 0.05 for d in drops)}); clicks on the wrong side of the mask"
                  f" after a run: {robot.ignored} of {robot.judged}")
            latencies = [t for _n, _g, _s, ts in rows for t in ts]
            summary[engine] = (rows, statistics.median(latencies) if latencies else float("nan"), robot)
        if "a0001" in sets:
            a0001(plugin, params)
    if summary:
        print("\nsummary (median per group; latency: median per click, warm)")
        for engine, (rows, lat, robot) in summary.items():
            groups = sorted({g for _n, g, _s, _t in rows})
            text = "  ".join(f"{g} " + "/".join(f"{v:.3f}" for v in np.median([s for _n, gg, s, _t in rows if gg == g],
                                                                               axis=0)) for g in groups)
            print(f"  {engine:9s} {text}  latency {lat:.2f} s (CPU {statistics.median(robot.cpu or [0]):.2f} s)"
                  f"  first call {robot.first_call:.2f} s  worse {robot.worse}/{robot.corrections}")


if __name__ == "__main__":
    main()
