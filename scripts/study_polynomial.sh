#!/usr/bin/env bash
# RESULTS.md's "Learning-rate control: polynomial" (S2 at 3,000 steps): dqn_lr moving Adam's lr on the 12-point log
# grid against Adam at a constant 1e-3 (the reference, declared here before the runs), deciding every step (the
# preset) and every 10 steps, and Adam's lr tuned by Optuna at the agent's budget (3,000 gradient evaluations) and at
# 10x it; seeds 0-4, CPU, one thread per run, two runs at a time. About 10 minutes on 2 idle cores.
#   scripts/study_polynomial.sh [stage...]      # stages: base n10 tune tune_x10 report (default: all, in that order)
# Every stage writes its own folder under $OUT (default outputs/studies/polynomial); `report` writes $OUT/report
# (tables, figures and runs.csv: docs/study_lr_polynomial).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/studies/polynomial}
export OMP_NUM_THREADS=1
REF=reference=constant_adam_lr0.001
PAR=(hydra/launcher=joblib hydra.launcher.n_jobs=2)
SEEDS=0,1,2,3,4
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(base n10 tune tune_x10 report)
status=0

for stage in "${stages[@]}"; do
  case "$stage" in
    base)      # Adam 1e-3 constant and dqn_lr deciding every optimizer step (the preset's own sweep, on 5 seeds)
      rlopt train -m experiment=lr_polynomial "${PAR[@]}" $REF seed=$SEEDS hydra.sweep.dir="$OUT/base" || status=$? ;;
    n10)       # dqn_lr deciding every 10 steps (Adam's run is the same at any steps_per_action)
      rlopt train -m experiment=lr_polynomial "${PAR[@]}" $REF controller=dqn_lr env.steps_per_action=10 seed=$SEEDS \
        hydra.sweep.dir="$OUT/n10" || status=$? ;;
    tune)      # at the agent's budget: 3,000 gradient evaluations buy one completed trial
      rlopt tune experiment=lr_polynomial $REF tune.budget_grad_evals=3000 tune.n_trials=100 final=true \
        'tune.final_seeds=[0,1,2,3,4]' label=adam_tuned tune.dir="$OUT/tune" hydra.run.dir="$OUT/tune" || status=$? ;;
    tune_x10)  # context: 10x the agent's budget
      rlopt tune experiment=lr_polynomial $REF tune.budget_grad_evals=30000 tune.n_trials=100 final=true \
        'tune.final_seeds=[0,1,2,3,4]' label=adam_tuned_x10 tune.dir="$OUT/tune_x10" hydra.run.dir="$OUT/tune_x10" \
        || status=$? ;;
    report)
      rlopt report "$OUT/base" "$OUT/n10" "$OUT/tune/final" "$OUT/tune_x10/final" out="$OUT/report" || status=$? ;;
    *) echo "study_polynomial.sh: unknown stage '$stage' (allowed: base n10 tune tune_x10 report)" >&2; exit 2 ;;
  esac
done
exit "$status"
