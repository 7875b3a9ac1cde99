#!/usr/bin/env bash
# Regenerate every table and figure from an outputs folder, without retraining:
# one report per sweep (OUTPUTS/sweeps/<name> -> OUTPUTS/reports/<name>) and one over the
# single runs (OUTPUTS/runs -> OUTPUTS/reports/runs).
#   scripts/report_all.sh [OUTPUTS]        (default: outputs)
# A folder that cannot be reported (no runs in it) is named and skipped; the exit status is then 2.
set -uo pipefail
OUTPUTS=${1:-outputs}
status=0
found=0
for dir in "$OUTPUTS"/sweeps/*/ "$OUTPUTS"/runs/; do
  [ -d "$dir" ] || continue
  found=1
  rlopt report "$dir" out="$OUTPUTS/reports/$(basename "$dir")" || status=2
done
if [ "$found" = 0 ]; then
  echo "report_all: nothing under $OUTPUTS/sweeps or $OUTPUTS/runs" >&2
  exit 2
fi
exit "$status"
