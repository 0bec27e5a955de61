#!/usr/bin/env bash
# Install medviewer on a fresh machine: missing Debian packages, a virtual environment in .venv,
# the package itself with everything (the monai extra: torch and MONAI, so that the main job and
# the tests cover all of it; docs/install.md has the light install without them); then run the
# main job on the generated demo study.
#   bash scripts/install.sh            install, then write the demo study and describe it
#   bash scripts/install.sh --no-demo  install only (scripts/test.sh uses this)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MEDVIEWER_VENV:-.venv}
run_demo=1
[ "${1:-}" = "--no-demo" ] && run_demo=0

# 1. System packages, only those missing.
bash scripts/apt-missing.sh scripts/system-packages.txt

# 2. A virtual environment with the package and its monai extra (torch is bounded in
#    pyproject.toml to the releases on this machine's disk).
PY=$(command -v python3.11 || command -v python3)
if ! "${VENV}/bin/python" -c "import torch" 2>/dev/null; then
  # PyTorch (a CUDA build that also runs on the CPU) and the rest take about 6 GB.
  mkdir -p "$VENV"
  free_kb=$(df -Pk "$VENV" | awk 'NR == 2 {print $4}')
  if [ "$free_kb" -lt $((7 * 1024 * 1024)) ]; then
    echo "error: $VENV needs about 7 GB free for PyTorch and the rest; its disk has $((free_kb / 1024)) MB free" >&2
    exit 1
  fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating the virtual environment $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
  bash scripts/pip-install.sh "$VENV" --upgrade pip
fi
echo "== installing medviewer with torch and MONAI (the monai extra) into $VENV"
bash scripts/pip-install.sh "$VENV" -e ".[monai]"
"$VENV/bin/python" -c "import medviewer" || { echo "medviewer did not install" >&2; exit 1; }

# 3. The main job on the demo study: write it, list it, segment a lesion from one click, export
#    the segmentation as a DICOM SEG and a lesion report, and render the window to a PNG.
if [ "$run_demo" = 1 ]; then
  MV="$VENV/bin/medviewer"
  echo "== the demo study"
  "$MV" demo demo-study --no-open
  "$MV" info demo-study
  # The default engine, auto, gives the phantom's sharply bounded spheres to the classical engine
  # (Dice 0.86 here) and says so; the learned one, trained on real sarcomas, would spill around
  # the small lung sphere and from the liver lesion.
  echo "== click-to-segment lesion 1 (right lung) from one point, as a DICOM SEG"
  "$MV" segment demo-study --point=-80,-5,25 --out demo-study/lesion1-seg.dcm
  "$MV" export demo-study --seg demo-study/lesion1-seg.dcm --out demo-study/lesion1-report.csv --force
  echo "== its measures as a DICOM SR (TID 1500) with the SEG it refers to"
  "$MV" export demo-study --seg demo-study/lesion1-seg.dcm --format sr --out demo-study/lesion1-measures.dcm --force
  echo "== a screenshot of the viewer window"
  if [ -n "${DISPLAY:-}" ]; then
    "$MV" open demo-study --seg demo-study/lesion1-seg.dcm --screenshot demo-study/screenshot.png
  else
    xvfb-run -a -s "-screen 0 1600x1200x24" "$MV" open demo-study --seg demo-study/lesion1-seg.dcm --screenshot demo-study/screenshot.png
  fi
  echo "== done: demo-study/ holds the series, lesion1-seg.dcm, lesion1-report.csv, lesion1-measures.dcm"
  echo "   (with lesion1-measures-seg.dcm) and screenshot.png"
  echo "   Open the window with: $VENV/bin/medviewer demo demo-study"
fi
