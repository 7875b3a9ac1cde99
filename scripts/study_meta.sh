#!/usr/bin/env bash
# The meta-learning study of RESULTS.md ("Meta-learning over task families", issue 28): learning-rate and optimizer
# controllers learned over thousands of training runs drawn from the train part of an instance set (population
# mode: the runs of one architecture trained as one vectorised model), then frozen and judged on the held-out test
# instances against the fixed baselines' single best (SBS) and virtual best (VBS) solvers, OneCycle Adam and Adam
# tuned per test instance (docs/guide/instances.md: the scorecard and amortised compute).
#   scripts/study_meta.sh [stage...]      # stages: splits baselines learn evaluate tune report s2 transfer
# With no stage named, the first six run in that order; s2 (poly_family's dqn_lr frozen on S2's own task at 10,000
# steps, against Adam 1e-3 and tuned Adam) and transfer (a family's ppo_lr frozen on real MNIST small_cnn at the
# MNIST learning-rate study's size) are asked for by name. Every stage writes its own folder under $OUT (default
# outputs/studies/meta/$FAMILY). The defaults are the size that ran for RESULTS.md on 2 shared CPU cores
# (40 instances, 20 held out; the learning sizes below); RESULTS.md gives each stage's time.
#   FAMILY=mnist_mlp_family COUNT=30 TRAIN_SEEDS=0,1 BASELINES=adam,schedulefree_adamw,prodigy TUNE_BUDGET=2000 \
#     CONTROLLERS=ppo_lr_delta RLOPT_DATA=../shared/data scripts/study_meta.sh splits baselines learn evaluate tune \
#     report transfer                                                            # the MNIST family, as RESULTS.md ran it
#   DEVICE=cuda K=512 EPISODES=8192 scripts/study_meta.sh learn evaluate report # 4x the population, on a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILY=${FAMILY:-poly_family}
OUT=${OUT:-outputs/studies/meta/$FAMILY}
COUNT=${COUNT:-40}                 # instances generated from the family's space
HOLDOUT=${HOLDOUT:-20}             # of them held out as test instances (the rest: train instances)
EPISODES=${EPISODES:-2048}         # learning runs of each population-mode agent (each on the train instance its run seed draws)
PORTFOLIO_EPISODES=${PORTFOLIO_EPISODES:-1024}  # learning runs of ppo_portfolio (worker processes: population mode does not batch prodigy or schedule-free)
K=${K:-128}                        # population size: learning runs trained at once as one model
N_ENVS=${N_ENVS:-2}                # ppo_portfolio's worker processes
TRAIN_SEEDS=${TRAIN_SEEDS:-0,1,2}  # seeds of every baseline on every train instance (they pick the SBS)
SEEDS=${SEEDS:-0,1,2,3,4}          # seeds of every baseline, tuned Adam and frozen agent on every test instance
JOBS=${JOBS:-2}                    # baseline runs and tunings at once
TUNE_BUDGET=${TUNE_BUDGET:-6000}   # gradient evaluations of Adam's lr tuning per test instance
TUNE_ON=${TUNE_ON:-}               # test instances tuned per instance, comma-separated (default: every test instance)
DEVICE=${DEVICE:-cpu}
REPORT=${REPORT:-report}           # the report stage's folder under $OUT
CONTROLLERS=${CONTROLLERS:-ppo_lr ppo_lr_delta dqn_lr ppo_portfolio}   # the agents meta-trained, space-separated
BASELINES=${BASELINES:-adam,schedulefree_adamw,prodigy,random}         # fixed controllers run on every instance (and OneCycle Adam)
S2_SEEDS=${S2_SEEDS:-0,1,2,3,4,5,6,7,8,9}  # the s2 stage's seeds (S2 at 10,000 steps: docs/study_s2_10k has the same 10)
S2_TUNE_BUDGET=${S2_TUNE_BUDGET:-50000}    # gradient evaluations of Adam's lr tuning on S2's task (5 runs of 10,000)
TRANSFER=${TRANSFER:-ppo_lr_delta}        # the agents the transfer stage deploys on MNIST small_cnn
S2_WITH=${S2_WITH:-}                      # more run folders to report beside s2's (the online dqn_lr of study_s2_10k)
TRANSFER_WITH=${TRANSFER_WITH:-}          # run folders to report beside the transfer runs (the MNIST study's Adam 1e-3)
export OMP_NUM_THREADS=1           # one thread per run: two runs share two cores without thrashing
SET=(instances="$FAMILY" instances.generate.count="$COUNT" instances.holdout.test="$HOLDOUT")
QUIET=(trainer.threads=1 trainer.progress=false trainer.plots=false trainer.tensorboard=false trainer.device="$DEVICE")
PAR=(hydra/launcher=joblib hydra.launcher.n_jobs="$JOBS")
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(splits baselines learn evaluate tune report)
status=0

agent_args() {  # an agent's controller, state, reward and decision interval (the presets'), and how it learns
  local pop="controller.n_envs=$K controller.vectorize=population controller.episodes=$EPISODES"
  case "$1" in
    ppo_lr)        # conf/experiment/lr_mnist.yaml's agent: log10(lr) in [-6, 0], reward best_loss, every 30 steps
      echo "controller=ppo_lr reward=best_loss env.features=[val_loss,d_loss,log10_lr,epoch_frac]" \
        "env.steps_per_action=30 $pop" ;;
    ppo_lr_delta)  # the same agent with what the reduced study named: reward loss_delta, lr in [1e-4, 1e-1]
      echo "controller=ppo_lr reward=loss_delta env.features=[val_loss,d_loss,log10_lr,epoch_frac]" \
        "env.steps_per_action=30 controller.actions.log_low=-4 controller.actions.log_high=-1 $pop" ;;
    dqn_lr)        # S2's agent (conf/experiment/lr_polynomial.yaml): Adam's lr on the 12-point grid, every step
      echo "controller=dqn_lr reward=loss_delta env.features=[val_loss,d_loss] env.steps_per_action=1 $pop" ;;
    ppo_portfolio) # one of sgd, adam, prodigy, schedulefree_adamw every 30 steps
      echo "controller=ppo_portfolio reward=loss_delta env.features=[val_loss,d_loss,epoch_frac,prev_action]" \
        "env.steps_per_action=30 controller.n_envs=$N_ENVS controller.episodes=$PORTFOLIO_EPISODES" ;;
    *) echo "study_meta.sh: unknown agent '$1' (allowed: ppo_lr ppo_lr_delta dqn_lr ppo_portfolio)" >&2; exit 2 ;;
  esac
}

ids() {  # the ids of the set's $1 part (train | test) from the splits stage's file, comma-separated
  [ -f "$OUT/splits.csv" ] || { echo "study_meta.sh: run the splits stage first ($OUT/splits.csv)" >&2; exit 2; }
  awk -F, -v part="$1" '$2 == part {print $1}' "$OUT/splits.csv" | paste -sd, -
}

for stage in "${stages[@]}"; do
  case "$stage" in
    splits)     # the set's train and test parts, written beside the runs
      mkdir -p "$OUT"
      python - "${SET[@]}" > "$OUT/splits.csv" <<'PY'
import csv
import sys

from hydra import compose, initialize_config_dir

from rlopt.instances import load_set
from rlopt.paths import conf_dir

with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
    cfg = compose(config_name="train", overrides=sys.argv[1:])
instances = load_set(cfg)
writer = csv.writer(sys.stdout)
writer.writerow(["id", "part", "task"])
for inst in instances.train + instances.test:
    writer.writerow([inst.id, inst.part, inst.task])
PY
      cat "$OUT/splits.csv" ;;
    baselines)  # the portfolio on every instance: Adam at the instance's own lr, OneCycle Adam (peak 1e-2),
                # schedule-free AdamW and Prodigy at their defaults, and random (the low reference)
      for part in test train; do
        seeds=$SEEDS; [ "$part" = train ] && seeds=$TRAIN_SEEDS
        rlopt train -m "${SET[@]}" instance="$(ids $part)" "${QUIET[@]}" "${PAR[@]}" \
          controller="$BASELINES" seed="$seeds" hydra.sweep.dir="$OUT/baselines_$part" || status=$?
        rlopt train -m "${SET[@]}" instance="$(ids $part)" "${QUIET[@]}" "${PAR[@]}" controller=schedule \
          controller.schedule=onecycle controller.lr=0.01 seed="$seeds" hydra.sweep.dir="$OUT/onecycle_$part" || status=$?
      done ;;
    learn)      # each agent over its learning runs, each on the train instance its run seed draws
      for c in $CONTROLLERS; do
        read -r -a args <<< "$(agent_args "$c")"
        rlopt train "${SET[@]}" "${args[@]}" label="$c" "${QUIET[@]}" checkpoint.every=50 seed=1000 \
          hydra.run.dir="$OUT/agent_$c" || status=$?
      done ;;
    evaluate)   # each frozen policy on every test instance x $SEEDS (one run after another: instances differ)
      n=$(echo "$SEEDS" | tr ',' '\n' | wc -l)
      for c in $CONTROLLERS; do
        rlopt evaluate "${SET[@]}" policy="$OUT/agent_$c/policy.zip" runs="$n" seed="${SEEDS%%,*}" label="$c" \
          "${QUIET[@]}" hydra.run.dir="$OUT/evaluate_$c" || status=$?
      done ;;
    tune)       # Adam's constant lr (controller=schedule, tune's default) tuned per test instance at $TUNE_BUDGET
                # gradient evaluations, then run on $SEEDS; $JOBS instances at once
      export OUT FAMILY COUNT HOLDOUT TUNE_BUDGET SEEDS DEVICE
      echo "${TUNE_ON:-$(ids test)}" | tr ',' '\n' | xargs -P "$JOBS" -I{} sh -c \
        'rlopt tune instances="$FAMILY" instances.generate.count="$COUNT" instances.holdout.test="$HOLDOUT" \
           instance={} trainer.threads=1 trainer.progress=false trainer.plots=false trainer.tensorboard=false \
           trainer.device="$DEVICE" tune.budget_grad_evals="$TUNE_BUDGET" tune.n_trials=100 final=true \
           label=adam_tuned "tune.final_seeds=[$SEEDS]" hydra.run.dir="$OUT/tune/{}"' || status=$? ;;
    report)
      runs=()
      # the frozen agents' rows; each learner's cost comes from the summary beside its policy.zip (amortised.md)
      for d in "$OUT"/baselines_* "$OUT"/onecycle_* "$OUT"/evaluate_* "$OUT"/tune/*/final; do
        [ -d "$d" ] && runs+=("$d")
      done
      rlopt report "${runs[@]}" report.low=worst_run out="$OUT/$REPORT" || status=$? ;;  # low reference: RESULTS.md says why
    s2)         # S2 at its own size: dqn_lr, learned over the family's runs, frozen on S2's task for 10,000 steps
      n=$(echo "$S2_SEEDS" | tr ',' '\n' | wc -l)
      s2=(experiment=lr_polynomial trainer.max_steps=10000 reference=constant_adam_lr0.001 "${QUIET[@]}")
      rlopt train -m "${s2[@]}" controller=schedule seed="$S2_SEEDS" "${PAR[@]}" hydra.sweep.dir="$OUT/s2/adam" || status=$?
      rlopt evaluate "${s2[@]}" policy="$OUT/agent_dqn_lr/policy.zip" runs="$n" seed="${S2_SEEDS%%,*}" label=dqn_lr_meta \
        hydra.run.dir="$OUT/s2/dqn_lr_meta" || status=$?
      rlopt tune "${s2[@]}" tune.budget_grad_evals="$S2_TUNE_BUDGET" tune.n_trials=100 final=true label=adam_tuned \
        "tune.final_seeds=[$S2_SEEDS]" hydra.run.dir="$OUT/s2/tune" || status=$?
      rlopt report "$OUT/s2/adam" "$OUT/s2/dqn_lr_meta" "$OUT/s2/tune/final" ${S2_WITH:-} out="$OUT/s2/report" || status=$? ;;
    transfer)   # a family's frozen ppo_lr on MNIST small_cnn at the MNIST learning-rate study's size (study_mnist.sh),
                # and on digits (digits_cnn, its defaults) beside Adam, constant and OneCycle, at 1e-3 and 1e-2
      runs=("$OUT/transfer_digits_adam")
      for c in $TRANSFER; do
        runs+=("$OUT/transfer_$c" "$OUT/transfer_digits_$c")
        rlopt evaluate experiment=lr_mnist dataset.download=false dataset.train_subset=10000 dataset.val_size=2000 \
          trainer.epochs=2 trainer.amp=false env.steps_per_action=25 policy="$OUT/agent_$c/policy.zip" runs=5 seed=0 \
          label="${c}_${FAMILY}" reference=constant_adam_lr0.001 "${QUIET[@]}" hydra.run.dir="$OUT/transfer_$c" || status=$?
        rlopt evaluate dataset=digits env.steps_per_action=30 policy="$OUT/agent_$c/policy.zip" runs=5 seed=0 \
          label="${c}_${FAMILY}" reference=constant_adam_lr0.001 "${QUIET[@]}" hydra.run.dir="$OUT/transfer_digits_$c" \
          || status=$?
      done
      rlopt train -m dataset=digits controller=schedule controller.schedule=constant,onecycle controller.lr=0.001,0.01 \
        seed=0,1,2,3,4 reference=constant_adam_lr0.001 "${QUIET[@]}" "${PAR[@]}" hydra.sweep.dir="$OUT/transfer_digits_adam" \
        || status=$?
      rlopt report "${runs[@]}" ${TRANSFER_WITH:-} out="$OUT/transfer_report" || status=$? ;;
    *) echo "study_meta.sh: unknown stage '$stage' (allowed: splits baselines learn evaluate tune report s2 transfer)" >&2
       exit 2 ;;
  esac
done
exit "$status"
