"""A MONAI segmentation bundle over a 512 x 512 x 120 CT series: medviewer's runner against MONAI's
plain ``sliding_window_inference`` with default settings, same model, same machine.

    python benchmarks/inference.py [--quick] [--repeat 3] [--series DIR]

The series: the real Lung-PET-CT-Dx A0001 series 2 ($MEDVIEWER_DATA, 512 x 512 x 64, 5 mm slices)
resampled along z to 120 slices (2.67 mm); the generated demo phantom when the data is absent.
``--quick`` takes the central 256 x 256 x 60 voxels (same spacing) and runs once.

The bundle: the spleen_ct_segmentation layout (Spacingd 1.5 x 1.5 x 2 mm, SlidingWindowInferer
roi 64^3, overlap 0.25, softmax, Invertd, argmax), a small MONAI UNet fitted for a few seconds to
"tissue above -300 HU" so that its output means something (a random net labels everything).

Baseline ("MONAI plain"): the bundle's preprocessing, then ``sliding_window_inference(image, roi,
sw_batch_size=1, predictor=net)`` with every other argument at its default under
``torch.no_grad()``, then the bundle's postprocessing; torch's default thread count.
Ours: ``Runner().run(monai-bundle)`` end to end, a child process included (its start and torch
import are timed too), with the plugin's defaults (inference mode, sw_batch_size 8 on CPU,
crop to the body) plus any --param given. Both give a label map on the source grid; agreement
(share of equal voxels, Dice of the foreground) is printed and must be within tolerance.

Each run is a fresh process; the clock starts once imports are done (the baseline imports torch
and MONAI; ours has its runner's worker process started and its imports done, as the window does
with ``Runner.warm`` when the plugin panel opens). One cold run of ours (process start and
imports included) is printed too. Peak memory: the peak RSS of the process that ran the model
(for ours, the runner's child process), torch and MONAI included in both.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "plugins"))

from bench_memory import peak_rss_mb, rss_mb  # noqa: E402  (benchmarks/, first on sys.path)

AGREEMENT_MIN = 0.999
DICE_MIN = 0.99


def make_volume(series: str | None, quick: bool):
    """The benchmark series as a Volume (512 x 512 x 120, or 256 x 256 x 60 with --quick)."""
    import numpy as np
    import SimpleITK as sitk

    from medviewer.core.volume import Volume
    from medviewer.io import load_volume

    data = os.environ.get("MEDVIEWER_DATA") or os.path.join(ROOT, "..", "shared", "data")
    series = series or os.path.join(data, "lung-pet-ct-dx", "A0001", "series-2-5mm-L")
    if os.path.isdir(series):
        source, name = load_volume(series), f"{series} resampled"
    else:
        from medviewer.io.demo_study import phantom

        source, name = phantom()[0], "demo phantom resampled"
    size = (512, 512, 120)
    img = source.to_sitk()
    extent = np.asarray(img.GetSize()) * np.asarray(img.GetSpacing())
    spacing = tuple(float(e / s) for e, s in zip(extent, size))
    # Keep the first voxel's corner where it was: origin shifts by half the change in spacing.
    origin = np.asarray(img.GetOrigin()) + np.asarray(img.GetDirection()).reshape(3, 3) @ (
        (np.asarray(spacing) - np.asarray(img.GetSpacing())) / 2)
    out = sitk.Resample(sitk.Cast(img, sitk.sitkFloat32), size, sitk.Transform(), sitk.sitkLinear,
                        tuple(origin), spacing, img.GetDirection(), -1024.0)
    out = sitk.Cast(sitk.Round(out), sitk.sitkInt16)
    volume = Volume.from_sitk(out, modality="CT", meta={"source": name})
    if quick:  # the central quarter of each slice and half the slices, at the same spacing
        volume, name = volume.crop((30, 128, 128), (90, 384, 384)), name + ", central crop"
    return volume, name


def make_bundle(folder: str, volume) -> str:
    from plugin_bundles import write_segmentation_bundle

    z, y, x = volume.shape
    crop = volume.crop((0, y // 4, x // 4), (z, 3 * y // 4, 3 * x // 4))
    return write_segmentation_bundle(folder, fit_to=crop, fit_steps=60, roi=(64, 64, 64),
                                     pixdim=(1.5, 1.5, 2.0), channels=(8, 16, 32))


# ---- the two contenders (each run in a fresh process) --------------------------------------------
def run_baseline(volume, bundle: str):
    """MONAI plain: bundle preprocessing, sliding_window_inference defaults, bundle postprocessing."""
    import numpy as np
    import torch
    from monai.bundle import ConfigParser
    from monai.data import MetaTensor
    from monai.inferers import sliding_window_inference

    from medviewer_plugins.monai_bundle.impl import volume_to_metatensor

    parser = ConfigParser()
    parser.read_config(os.path.join(bundle, "configs", "inference.json"))
    parser["bundle_root"] = bundle
    parser["device"] = torch.device("cpu")
    parser["preprocessing#transforms#0#_disabled_"] = True  # LoadImaged: the volume is in memory
    parser["postprocessing#transforms#3#_disabled_"] = True  # SaveImaged
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(os.path.join(bundle, "models", "model.pt"), weights_only=True))
    net.eval()
    roi = parser["inferer"]["roi_size"]
    data = parser.get_parsed_content("preprocessing")({"image": volume_to_metatensor(volume, False)})
    with torch.no_grad():
        pred = sliding_window_inference(data["image"][None], roi, 1, net)
    data["pred"] = MetaTensor(pred[0], affine=data["image"].affine, meta=dict(data["image"].meta))
    out = parser.get_parsed_content("postprocessing")(data)["pred"]
    return np.transpose(np.asarray(out[0]), (2, 1, 0)).astype(np.uint8)


def run_ours(runner, volume, bundle: str, params: dict):
    from medviewer.plugins.api import Request
    from medviewer.plugins.registry import get_manifest

    res = runner.run(get_manifest("monai-bundle"), Request(volume, params={"bundle": bundle, **params}))
    return res.label_map.array


def _child(kind: str, volume_path: str, bundle: str, params: dict, out_path: str, queue) -> None:
    """One timed run in a fresh process. The clock starts after the imports, as in a running
    viewer: the baseline imports torch and MONAI itself; ours has its runner's worker process
    started (``Runner.warm``, which the window calls when the plugin panel opens) and waits
    until that worker has done its imports. ``ours-cold`` starts from nothing."""
    import numpy as np

    from medviewer.io import read_image
    from medviewer.plugins.registry import get_manifest
    from medviewer.plugins.runner import Runner

    volume = read_image(volume_path)
    runner = None
    if kind == "baseline":
        import monai.bundle  # noqa: F401
        import torch  # noqa: F401

        import medviewer_plugins.monai_bundle.impl  # noqa: F401
    else:
        runner = Runner()
        if kind == "ours":
            runner.warm(get_manifest("monai-bundle"))
            _wait_for_imports(runner._idle["monai-bundle"].proc.pid)
    t0 = time.perf_counter()
    labels = run_baseline(volume, bundle) if kind == "baseline" else run_ours(runner, volume, bundle, params)
    seconds = time.perf_counter() - t0
    if runner is not None:
        runner.shutdown()
    # Peak RSS of the process that ran the model (for ours: the runner's child, waited for).
    peak = peak_rss_mb(children=True)
    np.save(out_path, labels)
    queue.put((seconds, peak))


def _wait_for_imports(pid: int, timeout: float = 120.0) -> None:
    """Until the worker process has stopped growing (its imports done)."""
    last, steady, end = -1, 0, time.monotonic() + timeout
    while time.monotonic() < end and steady < 5:
        rss = rss_mb(pid)
        steady = steady + 1 if rss == last else 0
        last = rss
        time.sleep(0.2)


def measure(kind: str, volume_path: str, bundle: str, params: dict, out_path: str):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_child, args=(kind, volume_path, bundle, params, out_path, queue))
    p.start()
    result = queue.get()
    p.join()
    if p.exitcode != 0:
        raise SystemExit(f"{kind} run failed (exit code {p.exitcode})")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the central 256 x 256 x 60 voxels, one run")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (median reported)")
    ap.add_argument("--series", help="a DICOM series folder (default: Lung-PET-CT-Dx A0001 series 2)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="extra monai-bundle parameters for our run")
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    params = dict(p.split("=", 1) for p in args.param)

    import numpy as np

    from medviewer.io import write_image
    from medviewer.plugins import trust

    with tempfile.TemporaryDirectory(prefix="mv-bench-") as tmp:
        os.environ["MEDVIEWER_CONFIG_DIR"] = os.path.join(tmp, "settings")
        volume, name = make_volume(args.series, args.quick)
        z, y, x = volume.shape
        print(f"Series: {name}, {x} x {y} x {z}, spacing {tuple(round(s, 3) for s in volume.spacing)} mm")
        t = time.perf_counter()
        bundle = make_bundle(os.path.join(tmp, "bundle"), volume)
        trust.set_trusted(bundle)
        print(f"Bundle written and fitted in {time.perf_counter() - t:.1f} s: {bundle}")
        volume_path = os.path.join(tmp, "series.nii.gz")
        write_image(volume, volume_path)
        runs = {"baseline": [], "ours": [], "ours-cold": []}
        outputs = {}
        for i in range(repeat):
            kinds = ("baseline", "ours") + (("ours-cold",) if i == 0 else ())
            for kind in kinds:  # alternate, so load changes hit both alike
                out = os.path.join(tmp, f"{kind}.npy")
                runs[kind].append(measure(kind, volume_path, bundle, params, out))
                outputs[kind] = np.load(out)
                print(f"  run {i + 1} {kind:<9} {runs[kind][-1][0]:7.2f} s  peak RSS {runs[kind][-1][1]:6.0f} MB")
        base, ours = outputs["baseline"], outputs["ours"]
        agree = float((base == ours).mean())
        fg_b, fg_o = base > 0, ours > 0
        dice = 2 * (fg_b & fg_o).sum() / max(fg_b.sum() + fg_o.sum(), 1)
        t_base = statistics.median(r[0] for r in runs["baseline"])
        t_ours = statistics.median(r[0] for r in runs["ours"])
        m_base = statistics.median(r[1] for r in runs["baseline"])
        m_ours = statistics.median(r[1] for r in runs["ours"])
        t_cold = runs["ours-cold"][0][0]
        print(f"\nMONAI plain sliding_window_inference (defaults): {t_base:7.2f} s  peak RSS {m_base:.0f} MB")
        print(f"medviewer runner (monai-bundle{', ' + ', '.join(args.param) if args.param else ''}), warm worker: "
              f"{t_ours:7.2f} s  peak RSS {m_ours:.0f} MB")
        print(f"medviewer runner, cold (child process start and torch/MONAI import included, 1 run): "
              f"{t_cold:7.2f} s  ({t_base / t_cold:.2f}x)")
        print(f"Speed-up: {t_base / t_ours:.2f}x   memory ratio ours/baseline: {m_ours / max(m_base, 1):.2f}")
        print(f"Same output: {agree * 100:.3f}% of voxels equal, foreground Dice {dice:.4f} "
              f"({'within' if agree >= AGREEMENT_MIN and dice >= DICE_MIN else 'OUTSIDE'} tolerance: "
              f">= {AGREEMENT_MIN * 100:.1f}% equal, Dice >= {DICE_MIN})")
        print(f"Machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; medians of {repeat}")
    return 0 if agree >= AGREEMENT_MIN and dice >= DICE_MIN else 1


if __name__ == "__main__":
    raise SystemExit(main())
