"""What `medviewer run monai-bundle` does with each real Model Zoo bundle, on the CPU: outcome,
wall time, CPU time (user + system) and peak memory (GNU time's "Maximum resident set size") of
the whole command (start-up, loading, inference and writing).

The bundles come from $MEDVIEWER_DATA/model-zoo with stand-in weights (each bundle's own
``network_def``, randomly initialised: tests/plugins/plugin_bundles.py), cached in --cache. The
input is a crop of the Lung-PET-CT-Dx A0001 series (default 64 x 64 x 8 voxels, 54 x 54 x 40 mm),
so the figures are for one sliding window of each bundle, not for a whole CT.

    PYTHONPATH=. MEDVIEWER_DATA=/work/shared/data python benchmarks/model_zoo.py [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "plugins"))


def crop_file(folder: str, size: int) -> str:
    from medviewer.io import load_volume, write_image

    data = os.environ.get("MEDVIEWER_DATA", "/work/shared/data")
    volume = load_volume(os.path.join(data, "lung-pet-ct-dx", "A0001", "series-2-5mm-L"))
    half = size // 2
    crop = volume.crop((14, 232 - half, 172 - half), (22, 232 + half, 172 + half))
    path = os.path.join(folder, "ct-crop.nii.gz")
    write_image(crop, path, force=True)
    return path


def run_one(bundle: str, ct: str, out_dir: str, threads: int, env: dict) -> dict:
    name = os.path.basename(bundle)
    out = os.path.join(out_dir, name + (".json" if "detection" in name else ".nii.gz"))
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "medviewer", "run", "monai-bundle", ct,
           "--param", f"bundle={bundle}", "--param", f"threads={threads}", "--out", out, "--trust",
           "--device", "cpu", "--quiet", "--force"]
    if name == "wholeBody_ct_segmentation":
        cmd[cmd.index("--out"):cmd.index("--out")] = ["--param", "highres=false"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(float(v) for v in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("\t")
             and "Warning" not in ln and "warn" not in ln]
    said = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else (lines[-1] if lines else "?")
    return {"bundle": name, "rc": proc.returncode, "wall_s": wall, "cpu_s": cpu,
            "peak_mb": int(rss.group(1)) / 1024 if rss else float("nan"), "said": said}


def main() -> int:
    from plugin_bundles import ZOO_BUNDLES, standin_bundle

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "medviewer-model-zoo-standins"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=64, help="crop size in plane (voxels)")
    ap.add_argument("bundles", nargs="*", default=list(ZOO_BUNDLES))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="medviewer-zoo-bench-")
    env = {**os.environ, "MEDVIEWER_CONFIG_DIR": os.path.join(work, "settings"),
           "MEDVIEWER_CONFIG": os.path.join(work, "settings", "settings.json"), "PYTHONPATH": ROOT}
    ct = crop_file(work, args.size)
    print(f"input: {ct}; {args.threads} torch threads; load average {os.getloadavg()[0]:.1f}")
    print("| bundle | exit | wall s | CPU s | peak MB | what it said |\n|---|---|---|---|---|---|")
    for name in args.bundles:
        bundle = standin_bundle(name, args.cache)
        r = run_one(bundle, ct, work, args.threads, env)
        print(f"| {r['bundle']} | {r['rc']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_mb']:.0f} | "
              f"{r['said'][:300]} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
