#!/usr/bin/env bash
# The runs behind RESULTS.md, section "Layer-wise learning rates" (digits, CPU only).
# Run from the repository root with rlopt installed; about an hour on a 2-core CPU.
set -euo pipefail
export OMP_NUM_THREADS=1   # the recorded runs used one thread per process
S=outputs/sweeps
E=outputs/evaluate
R=outputs/reports

# 1. ppo_layerwise (learns over 8 runs, then controls a 9th, which is measured) vs constant-lr Adam, 5 seeds.
#    Sweep order puts ppo_layerwise seed s in job folder s_digits_ppo_layerwise_s<s>.
rlopt train -m experiment=layerwise_digits controller=ppo_layerwise,adam seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits

# 2. Baselines and controls: cosine-annealed Adam from 1e-3; the same PPO agent setting one global lr
#    (per_layer=false: same features, moves, bounds and 8 learning runs); constant Adam at 2e-3 and 1e-2
#    (where the learned policies put the lrs); 30 learning runs instead of 8; the difference reward.
rlopt train -m experiment=layerwise_digits controller=schedule controller.schedule=cosine seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_cosine
rlopt train -m experiment=layerwise_digits controller=ppo_layerwise controller.per_layer=false controller.hyperparams.batch_size=4 seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_global
rlopt train -m experiment=layerwise_digits controller=adam optim.adam.lr=0.002 seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_adam_2e-3
rlopt train -m experiment=layerwise_digits controller=adam optim.adam.lr=0.01 seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_adam_1e-2
rlopt train -m experiment=layerwise_digits controller=ppo_layerwise controller.episodes=30 seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_30runs
rlopt train -m experiment=layerwise_digits controller=ppo_layerwise controller.difference_reward=true seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_difference

# 3. Transfer: each seed's policy from 1 (trained on digits_cnn, 4 layers), frozen, on mlp (3 layers, 5 seeds)
#    and resnet18 (CIFAR layout on 8x8 digits, 21 layers, 5 seeds: ~5 min a run on CPU), against Adam there.
for s in 0 1 2 3 4; do
  rlopt evaluate policy=$S/layerwise_digits/${s}_digits_ppo_layerwise_s$s/policy.zip experiment=layerwise_digits model=mlp seed=$s hydra.run.dir=$E/layerwise_digits_mlp/s$s
done
rlopt train -m experiment=layerwise_digits controller=adam model=mlp seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_adam_mlp
for s in 0 1 2 3 4; do
  rlopt evaluate policy=$S/layerwise_digits/${s}_digits_ppo_layerwise_s$s/policy.zip experiment=layerwise_digits model=resnet18 seed=$s hydra.run.dir=$E/layerwise_digits_resnet18/s$s
done
rlopt train -m experiment=layerwise_digits controller=adam model=resnet18 seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_adam_resnet18
rlopt train -m experiment=layerwise_digits controller=adam optim.adam.lr=0.01 model=resnet18 seed=0,1,2,3,4 hydra.sweep.dir=$S/layerwise_digits_adam_1e-2_resnet18

# 4. Tables (table.md in each report folder).
for name in layerwise_digits layerwise_digits_cosine layerwise_digits_global layerwise_digits_adam_2e-3 layerwise_digits_adam_1e-2 layerwise_digits_30runs \
            layerwise_digits_difference layerwise_digits_adam_1e-2_resnet18; do
  rlopt report $S/$name out=$R/$name
done
for model in mlp resnet18; do
  rlopt report $E/layerwise_digits_$model $S/layerwise_digits_adam_$model out=$R/layerwise_digits_$model
done
