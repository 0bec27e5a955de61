#!/usr/bin/env bash
# Install everything (as scripts/install.sh does: the monai extra; plus the test extra) and run
# the whole test suite exactly as CI does. GUI tests start their own Xvfb (tests/conftest.py) when
# there is no display.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MEDVIEWER_VENV:-.venv}
bash scripts/install.sh --no-demo
bash scripts/apt-missing.sh scripts/test-system-packages.txt
if command -v systemctl >/dev/null && systemctl is-active --quiet orthanc 2>/dev/null; then
  systemctl disable --now orthanc >/dev/null 2>&1 || true  # the PACS tests start their own Orthanc
fi
bash scripts/pip-install.sh "$VENV" -e ".[monai,test]"
# OHIF's own SEG and SR readers and writers (@cornerstonejs/adapters, pinned by its
# package-lock.json) for tests/interop, in Node.js: Debian's nodejs and npm where npm is missing
command -v npm >/dev/null || bash scripts/apt-missing.sh <(printf 'nodejs\nnpm\n')
echo "== OHIF's SEG and SR code (npm ci in tests/interop/ohif)"
(cd tests/interop/ohif && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
  echo "error: npm ci in tests/interop/ohif failed (above)" >&2; exit 1; }
echo "== import contracts"
"$VENV/bin/lint-imports"
echo "== tests"
set +e
"$VENV/bin/python" -m pytest -ra "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: that is a broken suite, not a pass" >&2
  exit 1
fi
exit "$rc"
