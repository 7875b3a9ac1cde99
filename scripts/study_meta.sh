#!/usr/bin/env bash
# The meta-learning study of RESULTS.md ("Meta-learning over task families"): a learning-rate controller
# learned over many training runs drawn from the train part of an instance set, then frozen and judged on the
# held-out test instances against the fixed baselines' single best (SBS) and virtual best (VBS) solvers, a
# OneCycle Adam and Adam tuned per test instance (docs/guide/instances.md: the scorecard and amortised compute).
#   scripts/study_meta.sh [stage...]      # stages: splits baselines learn evaluate tune report
# With no stage named, all run in that order. Every stage writes its own folder under $OUT (default
# outputs/studies/meta/$FAMILY). Size: the environment variables below; the defaults are the size that ran on
# 2 shared CPU cores for RESULTS.md (poly_family: baselines 216 runs ~7 min, learning 1,024 runs ~15 min,
# evaluation 20 runs <1 min, tuning 4 x 6,000 grad evals ~5 min, report ~1 min). Full size (issue 28), on a machine that affords it:
#   FAMILY=poly_family   EPISODES=2000 SEEDS=0,1,2,3,4 TUNE_BUDGET=12000 scripts/study_meta.sh
#   FAMILY=mnist_mlp_family EPISODES=2000 SEEDS=0,1,2,3,4 TUNE_BUDGET=12000 RLOPT_DATA=... scripts/study_meta.sh
# An agent learning across an instance set learns in n_envs worker processes (controller.vectorize=processes):
# population mode trains one Task for all its members, so it cannot draw each run's instance and is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILY=${FAMILY:-poly_family}
OUT=${OUT:-outputs/studies/meta/$FAMILY}
EPISODES=${EPISODES:-1024}         # learning runs of the agent (each a train instance drawn from its run seed)
N_ENVS=${N_ENVS:-2}                # learning runs at once (one process each)
SEEDS=${SEEDS:-0,1,2}              # seeds of every baseline on every instance
RUNS=${RUNS:-5}                    # seeds of the frozen agent on every test instance
TUNE_BUDGET=${TUNE_BUDGET:-6000}   # gradient evaluations of Adam's lr tuning per test instance (10 poly_family runs of 600)
TUNE_ON=${TUNE_ON:-}               # test instances tuned per instance (default: every test instance of the set)
export OMP_NUM_THREADS=1           # one thread per run: two runs share two cores without thrashing
QUIET=(trainer.threads=1 trainer.progress=false trainer.plots=false trainer.tensorboard=false)
PAR=(hydra/launcher=joblib hydra.launcher.n_jobs=2)
# the agent's state, reward and decision interval: the learning-rate presets' (conf/experiment/lr_mnist.yaml)
CONTROLLERS=${CONTROLLERS:-ppo_lr}   # the agents meta-trained, space-separated (ppo_lr dqn_lr)
AGENT=(reward=best_loss 'env.features=[val_loss,d_loss,log10_lr,epoch_frac]' env.steps_per_action=30)
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(splits baselines learn evaluate tune report)
status=0

test_ids() {  # the ids of the set's test part (from the splits stage's file), space-separated
  [ -f "$OUT/splits.csv" ] || { echo "study_meta.sh: run the splits stage first ($OUT/splits.csv)" >&2; exit 2; }
  awk -F, '$2 == "test" {print $1}' "$OUT/splits.csv" | tr '\n' ' '
}

for stage in "${stages[@]}"; do
  case "$stage" in
    splits)     # the set's train and test parts, written beside the runs
      mkdir -p "$OUT"
      python - "$FAMILY" > "$OUT/splits.csv" <<'EOF'
import sys
from hydra import compose, initialize_config_dir
from rlopt.instances import load_set
from rlopt.paths import conf_dir
with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
    cfg = compose(config_name="train", overrides=[f"instances={sys.argv[1]}"])
import csv
writer = csv.writer(sys.stdout)
writer.writerow(["id", "part", "task"])
for inst in load_set(cfg).train + load_set(cfg).test:
    writer.writerow([inst.id, inst.part, inst.task])
EOF
      cat "$OUT/splits.csv" ;;
    baselines)  # the portfolio on every instance (train and test): Adam at the instance's own lr, OneCycle Adam
                # (peak 1e-2), schedule-free AdamW and Prodigy at their defaults, and random (the low reference)
      rlopt train -m instances="$FAMILY" instance=all "${QUIET[@]}" "${PAR[@]}" \
        controller=adam,schedulefree_adamw,prodigy,random seed="$SEEDS" hydra.sweep.dir="$OUT/baselines" || status=$?
      rlopt train -m instances="$FAMILY" instance=all "${QUIET[@]}" "${PAR[@]}" controller=schedule \
        controller.schedule=onecycle controller.lr=0.01 seed="$SEEDS" hydra.sweep.dir="$OUT/onecycle" || status=$? ;;
    learn)      # ppo_lr over $EPISODES learning runs, each on the train instance its run seed draws
      for c in $CONTROLLERS; do
        rlopt train instances="$FAMILY" controller="$c" "${AGENT[@]}" "${QUIET[@]}" controller.episodes="$EPISODES" \
          controller.n_envs="$N_ENVS" seed=1000 hydra.run.dir="$OUT/agent_$c" || status=$?
      done ;;
    evaluate)   # the frozen policy on every test instance x $RUNS seeds
      for c in $CONTROLLERS; do
        rlopt evaluate instances="$FAMILY" policy="$OUT/agent_$c/policy.zip" runs="$RUNS" "${QUIET[@]}" \
          hydra.run.dir="$OUT/evaluate_$c" || status=$?
      done ;;
    tune)       # Adam's constant lr (controller=schedule, tune's default) tuned per test instance at $TUNE_BUDGET gradient evaluations, then on $SEEDS
      for id in ${TUNE_ON:-$(test_ids)}; do
        rlopt tune instances="$FAMILY" instance="$id" "${QUIET[@]}" \
          tune.budget_grad_evals="$TUNE_BUDGET" tune.n_trials=100 final=true label=adam_tuned \
          "tune.final_seeds=[${SEEDS}]" hydra.run.dir="$OUT/tune/$id" || status=$?
      done ;;
    report)
      learned=()
      for d in "$OUT"/agent_* "$OUT"/evaluate_* "$OUT"/tune/*/final; do [ -d "$d" ] && learned+=("$d"); done
      rlopt report "$OUT/baselines" "$OUT/onecycle" "${learned[@]}" \
        report.low=worst_run out="$OUT/report" || status=$? ;;   # low reference: the instance's worst run (RESULTS.md: why)
    *) echo "study_meta.sh: unknown stage '$stage' (allowed: splits baselines learn evaluate tune report)" >&2; exit 2 ;;
  esac
done
exit "$status"
