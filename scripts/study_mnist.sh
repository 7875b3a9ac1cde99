#!/usr/bin/env bash
# The MNIST studies of RESULTS.md ("MNIST: learning-rate control" and "MNIST: optimizer selection"), at
# the size a 2-core CPU affords: small_cnn on 10,000 training images (a seeded subset of the 58,000 left
# after carving 2,000 validation images from the 60,000), the full 10,000-image test set, 2 epochs = 314
# optimizer steps of batch 64 for every run, fp32, one thread per run. Reads a local MNIST copy under $RLOPT_DATA (no download).
#   RLOPT_DATA=/path/to/data scripts/study_mnist.sh [stage...]     # stages: grid schedules lrfree agent tune select
#                                                                 #   select_learned select_sam report
# With no stage named, all run in that order (about 85 minutes on 2 idle cores before schedules and select_sam
# were added: grid 28, lrfree 6, agent 14, tune 11, select 19, select_learned 16; schedules 35 runs,
# select_sam 30 runs). Every stage writes its own folder under $OUT (default
# outputs/studies/mnist). Rerunning a stage into it continues the runs a kill interrupted (their checkpoints)
# and trains the others again; remove the folder to start the stage afresh. The paper-sized budget (55k images, 10 epochs, steps_per_action 100) is the presets'
# own default: drop the SIZE overrides below (on a GPU: scripts/study_gpu.sh shows the launcher settings).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/studies/mnist}
export OMP_NUM_THREADS=1      # one thread per run: two runs share two cores without thrashing
SIZE=(dataset.download=false dataset.train_subset=10000 dataset.val_size=2000 trainer.epochs=2
      trainer.threads=1 trainer.amp=false trainer.device=cpu trainer.progress=false)
PAR=(hydra/launcher=joblib hydra.launcher.n_jobs=2)
SEEDS=0,1,2,3,4
LR_REF=reference=constant_adam_lr0.001   # the learning-rate study's reference: Adam 1e-3, the untrained ppo_lr's lr
SELECT_REF=reference=adam                # the selection study's: Adam, the default a user runs
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(grid schedules lrfree agent tune select select_learned select_sam report)
status=0

for stage in "${stages[@]}"; do
  case "$stage" in
    grid)    # {SGD, Adadelta, Adam} x {constant, OneCycle} x lr {5e-4, 1e-3, 5e-3, 1e-2}: 24 configs x 5 seeds
      rlopt train -m experiment=lr_mnist_schedules "${SIZE[@]}" "${PAR[@]}" env.steps_per_action=null $LR_REF \
        seed=$SEEDS hydra.sweep.dir="$OUT/grid" || status=$? ;;
    schedules)  # the StepLR and ExponentialLR rows S4 compares against, at each optimizer's best constant lr of the grid
                # (lowest mean final validation loss: SGD 1e-2, Adadelta 1e-2, Adam 1e-3), and Adam 1e-3 constant
                # again as the reference with its per-run data. Both step at epoch ends, so over 2 epochs each decays
                # once, after epoch 1: StepLR x0.1, ExponentialLR x0.5
      for opt_lr in sgd:0.01 adadelta:0.01 adam:0.001; do
        schedules=step,exponential; [ "${opt_lr%%:*}" = adam ] && schedules=constant,step,exponential
        rlopt train -m experiment=lr_mnist_schedules "${SIZE[@]}" "${PAR[@]}" env.steps_per_action=null \
          controller.optimizer="${opt_lr%%:*}" controller.lr="${opt_lr##*:}" controller.schedule=$schedules \
          controller.step.step_size=1 controller.exponential.gamma=0.5 $LR_REF \
          seed=$SEEDS hydra.sweep.dir="$OUT/schedules/${opt_lr%%:*}" || status=$?
      done ;;
    lrfree)  # cosine Adam and the learning-rate-free optimizers at their packages' defaults
      rlopt train -m experiment=lr_mnist "${SIZE[@]}" "${PAR[@]}" env.steps_per_action=null $LR_REF \
        controller=cosine_adam,prodigy,dadapt_adam,dadapt_sgd,schedulefree_adamw,schedulefree_sgd \
        seed=$SEEDS hydra.sweep.dir="$OUT/lrfree" || status=$? ;;
    agent)   # ppo_lr + best_loss + divergence penalty: 5 independent learners, each over 8 runs (2 at a
             # time) on seeds s..s+7, then its frozen policy controls one fresh run (seed s+8)
      rlopt train -m experiment=lr_mnist "${SIZE[@]}" env.steps_per_action=25 $LR_REF \
        controller.episodes=8 controller.n_envs=2 \
        seed=1000,2000,3000,4000,5000 hydra.sweep.dir="$OUT/agent" || status=$? ;;
    tune)    # Adam's constant lr tuned by Optuna (TPE + Hyperband) with the agent's learning budget:
             # 8 runs x 314 steps = 2512 gradient evaluations, then the best lr on seeds 0-4
      rlopt tune experiment=lr_mnist "${SIZE[@]}" env.steps_per_action=25 $LR_REF \
        tune.budget_grad_evals=2512 tune.n_trials=100 final=true label=adam_tuned 'tune.final_seeds=[0,1,2,3,4]' \
        hydra.run.dir="$OUT/tune" || status=$? ;;
    select)  # optimizer selection with the composite reward: fixed, random and the online agents,
             # deciding every 25 steps (13 decisions per run)
      rlopt train -m dataset=mnist model=small_cnn "${SIZE[@]}" "${PAR[@]}" env.steps_per_action=25 $SELECT_REF \
        controller=sgd,sam,adam,random,dqn_2opt,ppo_2opt,ppo_3opt,ppo_portfolio \
        seed=$SEEDS hydra.sweep.dir="$OUT/select" || status=$? ;;
    select_learned)  # ppo_3opt learning over 8 runs (2 at a time) before it controls a fresh run, as ppo_lr does
      rlopt train -m dataset=mnist model=small_cnn "${SIZE[@]}" env.steps_per_action=25 $SELECT_REF controller=ppo_3opt \
        controller.episodes=8 controller.n_envs=2 seed=1000,2000,3000,4000,5000 \
        hydra.sweep.dir="$OUT/select_learned" || status=$? ;;
    select_sam)  # the selection question re-asked (issue 25): sgd, sam, late_sam (SAM for the last 2 of 13 decision
                 # steps: 39 of 314 optimizer steps), looksam, asam, and ppo_sam (PPO over sgd, sam, looksam,
                 # sam_every_k), seed-major so that an interrupted stage leaves whole seeds
      rlopt train -m dataset=mnist model=small_cnn "${SIZE[@]}" "${PAR[@]}" env.steps_per_action=25 \
        seed=$SEEDS controller=sgd,sam,late_sam,looksam,asam,ppo_sam reference=late_sam \
        hydra.sweep.dir="$OUT/select_sam" || status=$? ;;
    report)  # the references are given again: the 2026-11-26 runs were made before the stages declared them
      rlopt report "$OUT/grid" "$OUT/lrfree" "$OUT/agent" "$OUT/tune/final" report.$LR_REF out="$OUT/report_lr" || status=$?
      rlopt report "$OUT/agent" "$OUT/tune/final" "$OUT"/grid/*_constant_adam_lr0.001_s* "$OUT"/grid/*_onecycle_adam_lr0.005_s* \
        "$OUT"/lrfree/*_schedulefree_adamw_s* "$OUT"/lrfree/*_cosine_adam_s* report.$LR_REF out="$OUT/report_lr_focus" || status=$?
      [ -d "$OUT/schedules" ] && { rlopt report "$OUT"/schedules/* out="$OUT/report_lr_schedules" || status=$?; }
      [ -d "$OUT/select_sam" ] && { rlopt report "$OUT/select_sam" report.reference=late_sam out="$OUT/report_select_sam" || status=$?; }
      rlopt report "$OUT/select" "$OUT"/select_learned report.$SELECT_REF out="$OUT/report_select" || status=$? ;;
    *) echo "study_mnist.sh: unknown stage '$stage' (allowed: grid schedules lrfree agent tune select select_learned select_sam report)" >&2; exit 2 ;;
  esac
done
exit "$status"
