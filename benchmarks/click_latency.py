"""The learned click engine, torch against ONNX Runtime in the same run: what a click costs, how
long the engine takes to be ready after the tool is picked, a cold `medviewer segment`, the
masks' agreement, and the installed size of the light and the full environments.

    python benchmarks/click_latency.py [--repeat 3] [--case STS_024] [--agreement]
                                       [--light-env DIR] [--full-env DIR]

Figures (medians of --repeat runs; the machine's other load shows in them, so say what it was):

* engine ready: a fresh process with medviewer and its plugins imported (as a running viewer
  has them) asks ``Runner.warm`` for the click plugin's learned engine, as picking the tool in the
  window does; the clock covers importing torch and MONAI or ONNX Runtime and loading the network.
* per click: ``segment_learned`` on the case (its tumour's deepest point, the robot user's first
  click), the network loaded; a warm-up run first.
* cold segment: ``python -m medviewer segment CASE --point ... --engine learned --out x.nii.gz``
  end to end, a new process each time (interpreter start, imports, reading the DICOM series,
  the network, writing).
* ``--agreement``: on each validation case of the model card's split (STS_019-024), the Dice of
  ONNX Runtime's mask against torch's, after the first click and after a negative click in the
  middle of what it spilled (must be >= 0.999).
* sizes: ``du`` of the environments' folders (the full one: this interpreter's, default).

The backend is chosen with MEDVIEWER_CLICK_BACKEND (medviewer_plugins/click_segment/learned.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

BACKENDS = ("onnx", "torch")
VALIDATION = [f"STS_{n:03d}" for n in range(19, 25)]
AGREEMENT_MIN = 0.999
WARM = """
import sys, time
from medviewer.plugins.registry import get_manifest
from medviewer.plugins.runner import Runner
import medviewer_plugins.click_segment.impl
start = time.perf_counter()
Runner().warm(get_manifest("click-segment"), {"engine": "learned"}).result()
print(time.perf_counter() - start)
"""


def data_root() -> str:
    return os.environ.get("MEDVIEWER_DATA") or os.path.join(ROOT, "..", "shared", "data")


def case_and_click(name: str):
    """The case's volume, its expert mask and the robot user's first click (LPS mm)."""
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.segmentation.guidance import deepest_point

    case = os.path.join(data_root(), "sts", name)
    volume = load_volume(os.path.join(case, "image"))
    truth = read_rtstruct(os.path.join(case, "RS.dcm"), volume, roi_names="GTV_Mass_CT").array > 0
    return volume, truth, tuple(float(v) for v in volume.voxel_to_patient(deepest_point(truth, volume.spacing[::-1])[0]))


def _env(backend: str) -> dict:
    return dict(os.environ, MEDVIEWER_CLICK_BACKEND=backend,
                PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))


def engine_ready(backend: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", WARM], env=_env(backend), cwd=ROOT, check=True,
                              capture_output=True, text=True)
        times.append(float(done.stdout.split()[-1]))
    return statistics.median(times)


def per_click(volume, click, backend: str, repeat: int) -> float:
    from medviewer_plugins.click_segment.learned import segment_learned

    segment_learned(volume, [click], backend=backend)  # loads the network, warms the caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        segment_learned(volume, [click], backend=backend)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_segment(case: str, click, backend: str, repeat: int) -> float:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "medviewer", "segment", os.path.join(data_root(), "sts", case, "image"),
                   "--point=" + ",".join(f"{v:.2f}" for v in click), "--engine", "learned",
                   "--out", os.path.join(tmp, "mask.nii.gz")]
        for _ in range(repeat):
            start = time.perf_counter()
            subprocess.run(command, env=_env(backend), cwd=ROOT, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def agreement() -> bool:
    import numpy as np

    from medviewer.segmentation.guidance import dice
    from medviewer_plugins.click_segment.learned import segment_learned

    print(f"\n{'case':8} {'Dice 1 click':>13} {'+1 negative':>12} {'lesion Dice':>12}")
    ok = True
    for name in VALIDATION:
        volume, truth, click = case_and_click(name)
        masks = [segment_learned(volume, [click], backend=b) for b in BACKENDS]
        spill = np.argwhere(masks[0] & ~truth)
        negative = [volume.voxel_to_patient(spill[len(spill) // 2].astype(float))] if len(spill) else []
        again = [segment_learned(volume, [click], negative, backend=b) for b in BACKENDS] if negative else masks
        first, second = dice(*masks), dice(*again)
        ok &= min(first, second) >= AGREEMENT_MIN
        print(f"{name:8} {first:13.5f} {second:12.5f} {dice(masks[0], truth):12.3f}")
    return ok


def size_mb(folder: str) -> float:
    out = subprocess.run(["du", "-sk", folder], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--case", default="STS_024", help="the sarcoma timed (default STS_024, validation split)")
    ap.add_argument("--agreement", action="store_true", help="ONNX against torch on all validation cases")
    ap.add_argument("--light-env", help="a light install's environment folder (pip install medviewer)")
    ap.add_argument("--full-env", default=sys.prefix, help="the full install's (default: this interpreter's)")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; medians of {args.repeat} runs; "
          f"case {args.case}")
    volume, _, click = case_and_click(args.case)
    print(f"\n{'backend':8} {'engine ready':>13} {'per click':>10} {'cold segment':>13}")
    for backend in BACKENDS:
        ready = engine_ready(backend, args.repeat)
        click_s = per_click(volume, click, backend, args.repeat)
        cold = cold_segment(args.case, click, backend, args.repeat)
        print(f"{backend:8} {ready:12.2f}s {click_s:9.2f}s {cold:12.2f}s")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    ok = agreement() if args.agreement else True
    envs = [("full", args.full_env)] + ([("light", args.light_env)] if args.light_env else [])
    for name, folder in envs:
        print(f"installed size, {name}: {size_mb(folder):.0f} MB ({folder})")
    if not ok:
        print(f"error: ONNX and torch masks differ (Dice below {AGREEMENT_MIN})", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
