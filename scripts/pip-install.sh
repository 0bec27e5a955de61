#!/usr/bin/env bash
# pip install into the virtual environment, quietly, but stop with pip's own words when it fails.
#   bash scripts/pip-install.sh VENV ARGS...
# This machine's pip configuration names an extra index folder that may be absent; pip's warning
# about it is noise and is left out. Anything else pip prints is shown.
set -uo pipefail
venv=$1; shift
log=$(mktemp)
"$venv/bin/python" -m pip install -q "$@" >"$log" 2>&1
rc=$?
grep -v -E "^WARNING: Location .* is ignored" "$log" >&2
rm -f "$log"
if [ "$rc" != 0 ]; then
  echo "error: 'pip install $*' into $venv failed (exit $rc, pip's message above)" >&2
  exit "$rc"
fi
