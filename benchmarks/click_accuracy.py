"""Click-to-segment accuracy and latency on the validation sts cases, for both engines.

    python benchmarks/click_accuracy.py [--engines auto,learned,classical] [--clicks 3] [--cases STS_019,...] [--demo]

The robot user of tools/click_eval.py, in process: the first click at the deepest point of the
expert contour (GTV_Mass_CT), each next one at the deepest point of the larger error (missed ->
positive, spilled -> negative). Dice against the contour on the source grid after each click,
the mean and 95th-percentile distance (mm) between the last mask's surface and the contour's
(medviewer.core.compare), and the latency of each click through the click-segment plugin (model already loaded, as in the
window; the first call of the learned engine, which loads the network, is reported apart).
Two figures of how corrections behave, as a user feels them: "worse", the corrective clicks
after which the Dice went down, and "ignored", the clicks whose own voxel came out on the wrong
side (a positive click outside the mask, a negative one inside), counted after every run.
Validation cases: STS_019..STS_024 (the learned engine trained on STS_001..STS_018). With
``--demo``, the generated demo phantom's three lesions too (lung, lung, liver: sharply bounded
spheres, the lesions "auto" gives the classical engine), each its own case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

VAL_CASES = [f"STS_{n:03d}" for n in range(19, 25)]


def main() -> None:
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.plugins.api import CancelToken, Prompts, Request
    from medviewer.plugins.registry import get_manifest, load_plugin
    from medviewer.core.compare import compare_masks
    from medviewer.segmentation.guidance import corrective_click, deepest_point, dice

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="auto,learned,classical")
    ap.add_argument("--clicks", type=int, default=3)
    ap.add_argument("--cases", default=",".join(VAL_CASES))
    ap.add_argument("--demo", action="store_true", help="add the demo phantom's three lesions as cases")
    ap.add_argument("--bundle", default="", help="the learned engine's bundle (default: the shipped one)")
    a = ap.parse_args()
    data = os.environ.get("MEDVIEWER_DATA", "../shared/data")
    manifest = get_manifest("click-segment")
    plugin = load_plugin(manifest)
    cases = []
    for name in a.cases.split(","):
        volume = load_volume(os.path.join(data, "sts", name, "image"))
        truth = read_rtstruct(os.path.join(data, "sts", name, "RS.dcm"), volume, roi_names="GTV_Mass_CT").array > 0
        cases.append((name, volume, truth))
    if a.demo:
        import tempfile

        from medviewer.io import read_image
        from medviewer.io.demo_study import write_demo_study

        with tempfile.TemporaryDirectory() as tmp:
            series = write_demo_study(tmp)
            volume = load_volume(series)
            labels = read_image(os.path.join(series, "lesions.nii.gz")).array
        cases += [(f"demo-{n}", volume, labels == n) for n in range(1, int(labels.max()) + 1)]
    spacing_zyx = None
    summary = {}
    for engine in a.engines.split(","):
        params = manifest.resolve_params({"engine": engine, "bundle": a.bundle})
        print(f"\nengine {engine}")
        print(f"{'case':9s} {'mL':>7s}  " + "  ".join(f"dice@{k + 1}" for k in range(a.clicks)) +
              f"  msd@{a.clicks}  hd95@{a.clicks}  s/click  worse  ignored")
        rows, case_times, first_call, surfaces = [], [], None, []
        worse = ignored = corrections = judged = 0
        for name, volume, truth in cases:
            spacing_zyx = volume.spacing[::-1]
            positives = [volume.voxel_to_patient(deepest_point(truth, spacing_zyx)[0])]
            negatives = []
            scores, times = [], []
            case_worse = case_ignored = 0
            for _ in range(a.clicks):
                request = Request(volume, Prompts(tuple(map(tuple, positives)), tuple(map(tuple, negatives))),
                                  params, device="cpu")
                t = time.perf_counter()
                result = plugin.run(request, lambda *args: None, CancelToken())
                elapsed = time.perf_counter() - t
                if first_call is None:
                    first_call = elapsed
                else:
                    times.append(elapsed)
                pred = result.label_map.array > 0
                scores.append(dice(pred, truth))
                if len(scores) > 1:
                    corrections += 1
                    case_worse += scores[-1] < scores[-2]
                for points, inside in ((positives, True), (negatives, False)):
                    for p in points:
                        judged += 1
                        case_ignored += bool(pred[tuple(np.rint(volume.patient_to_voxel(p)).astype(int))]) != inside
                nxt = corrective_click(pred, truth, spacing_zyx)
                if nxt is None:
                    break
                (positives if nxt[1] else negatives).append(volume.voxel_to_patient(nxt[0]))
            scores += [scores[-1]] * (a.clicks - len(scores))
            case_times.append(times)
            rows.append(scores)
            last = compare_masks(pred, truth, volume.spacing)   # the final mask's surface against the expert's
            surfaces.append((last.mean_surface_mm, last.hd95_mm))
            ml = truth.sum() * volume.voxel_volume_ml
            print(f"{name:9s} {ml:7.1f}  " + "  ".join(f"{s:6.3f}" for s in scores) +
                  f"  {last.mean_surface_mm:5.1f}mm {last.hd95_mm:6.1f}mm"
                  f"  {statistics.median(times) if times else first_call:.2f}  {case_worse:5d}  {case_ignored:7d}",
                  flush=True)
            worse, ignored = worse + case_worse, ignored + case_ignored
        # the sarcomas' median is the goal's figure: the demo's lesions get one of their own
        sts = [k for k, (name, _v, _t) in enumerate(cases) if not name.startswith("demo-")]
        groups = [("median", sts)] + ([("demo", [k for k in range(len(cases)) if k not in sts])]
                                      if len(sts) < len(cases) else [])
        for title, keep in groups:
            med = np.median(np.array(rows)[keep], axis=0)
            msd, hd95 = np.median(np.array(surfaces)[keep], axis=0)
            if title == "median":
                latencies = [t for k in keep for t in case_times[k]]
                summary[engine] = (med, statistics.median(latencies) if latencies else float("nan"), first_call)
            print(f"{title:9s} {'':7s}  " + "  ".join(f"{s:6.3f}" for s in med) + f"  {msd:5.1f}mm {hd95:6.1f}mm"
                  + (f"  {summary[engine][1]:.2f}  (first call {first_call:.2f} s)" if title == "median" else ""))
        print(f"corrective clicks that lowered the Dice: {worse} of {corrections}; clicks on the wrong side "
              f"of the mask after a run: {ignored} of {judged}")
    print("\nsummary (median over the sts cases; latency: median per click, warm; the first engine that "
          "needs the network pays for loading it in its first call)")
    for engine, (med, lat, first) in summary.items():
        print(f"  {engine:9s} dice@1 {med[0]:.3f}  dice@{a.clicks} {med[-1]:.3f}  latency {lat:.2f} s"
              f"  first call {first:.2f} s")


if __name__ == "__main__":
    main()
