#!/usr/bin/env bash
# The runs behind RESULTS.md, section "Learning-rate-free alternatives (digits)": twelve methods x seeds
# 0-4 at one 10-epoch optimizer-step budget (experiment=alternatives_digits), then the report.
# Run from the repository root with rlopt installed; about 3-5 minutes on a 2-core CPU.
#   scripts/alternatives_digits.sh [extra rlopt train overrides...]
# The same on MNIST (a local copy under dataset.root or $RLOPT_DATA): PRESET=alternatives_mnist.
set -euo pipefail
PRESET=${PRESET:-alternatives_digits}
SWEEP=${SWEEP:-outputs/sweeps/$PRESET}
status=0
rlopt train -m experiment="$PRESET" trainer.plots=false hydra.sweep.dir="$SWEEP" "$@" || status=$?
rlopt report "$SWEEP" out="outputs/reports/$PRESET"
exit "$status"
