#!/usr/bin/env bash
# The GPU measurements BENCHMARKS.md waits for, as one bounded command for a lent GPU (a session gets
# 15 minutes of device time and 10 minutes per command): each bench runs under its own time limit and
# appends its section to $OUT/gpu_benchmarks.md, so what finished comes back when a later step overruns.
#   scripts/gpu_checks.sh                      # on the GPU machine: OUT is the folder that comes back
#   DEVICE=cpu SMALL=1 scripts/gpu_checks.sh   # a dry run of every step at toy size (no numbers to quote)
# Order is by value: ResNet-18 epoch times (the report's GPU target), then the population engine up to K=1024,
# then learning runs per hour: at most 300 + 150 + 140 s, inside one command's 600 s.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu_checks}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
REPORT="$OUT/gpu_benchmarks.md"
export PYTHONUNBUFFERED=1
if [ -n "${SMALL:-}" ]; then  # toy sizes: every code path, seconds each
  RESNET=(--images 300 --repeats 1 --rounds 1) POP=(--population 1,4 --rounds 1 --steps 20)
  LEARN=(--population 4 --episodes 8 --run-epochs 4)
else
  RESNET=(--rounds 2) POP=(--population 1,32,256,1024 --rounds 2 --steps 200)
  LEARN=(--population 256 --episodes 256 --run-epochs 100)
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$OUT/gpu.txt"

status=0
step() {  # step NAME SECONDS ARGS...: one bench under its time limit, its log beside the report
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most $limit s): python scripts/bench.py $*"
  timeout "$limit" python scripts/bench.py "$@" --write "$REPORT" 2>&1 | tee "$OUT/$name.log" || {
    echo "== $name did not finish (exit ${PIPESTATUS[0]}): its log is $OUT/$name.log"
    status=1
  }
}
step resnet18 300 --case resnet18_cifar --device "$DEVICE" --compile "${RESNET[@]}"
step population 150 --case population --device "$DEVICE" --tasks 'polynomial/maclaurin,digits/mlp' "${POP[@]}"
step learning 140 --case population --device "$DEVICE" --tasks none --learning --rounds 1 "${LEARN[@]}"
exit "$status"
