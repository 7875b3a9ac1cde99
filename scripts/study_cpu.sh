#!/usr/bin/env bash
# The study of scripts/study_gpu.sh at CPU size: the same six controllers (SGD, SAM, Adam, DQN and
# PPO over {SGD, SAM}, PPO over {SGD, SAM, Adam}) on scikit-learn's bundled digits (no download),
# 5 seeds (the report's intervals need 5 runs), 10 epochs, Adam declared as the reference before the runs; two runs at a time through joblib, then the
# tables and figures. fp32 (trainer.amp=false), as the table in docs/study_cpu was made.
#   scripts/study_cpu.sh [extra rlopt train overrides...]
# The sweep exits 1 when a job failed; the report is written anyway and flags it, and this
# script then exits 1 too.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=${SWEEP:-outputs/sweeps/study_cpu_$(date +%Y-%m-%d_%H-%M-%S)}
REPORT=${REPORT:-outputs/reports/$(basename "$SWEEP")}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # one thread per run: two runs share two cores without thrashing

status=0
rlopt train -m hydra/launcher=joblib hydra.launcher.n_jobs=2 \
  controller=sgd,sam,adam,dqn_2opt,ppo_2opt,ppo_3opt dataset=digits seed=0,1,2,3,4 \
  trainer.epochs=10 trainer.device=cpu trainer.amp=false reference=adam \
  hydra.sweep.dir="$SWEEP" "$@" || status=$?
rlopt report "$SWEEP" out="$REPORT"
exit "$status"
