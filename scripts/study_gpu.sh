#!/usr/bin/env bash
# The report's study: SGD, SAM, Adam, DQN over {SGD, SAM}, PPO over {SGD, SAM}, PPO over
# {SGD, SAM, Adam} on CIFAR-10 (ResNet-18) and Fashion-MNIST (small CNN), 3 seeds each:
# 36 runs, one GPU each on Slurm (hydra/launcher=slurm_gpu), then the tables and figures.
#   scripts/study_gpu.sh hydra.launcher.partition=gpu [more overrides...]
# Site settings (partition, account, qos, time) go in as overrides; EPOCHS sets the budget.
# The launcher waits for every job, so the report runs when the sweep is over.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=${SWEEP:-outputs/sweeps/study_gpu_$(date +%Y-%m-%d_%H-%M-%S)}
REPORT=${REPORT:-outputs/reports/$(basename "$SWEEP")}
EPOCHS=${EPOCHS:-50}
export RLOPT_DATA=${RLOPT_DATA:-$PWD/data}

# Download both datasets once, here: 36 jobs must not download into one folder at the same time.
python - <<'PY'
import os
import torchvision

for dataset in (torchvision.datasets.CIFAR10, torchvision.datasets.FashionMNIST):
    for train in (True, False):
        dataset(os.environ["RLOPT_DATA"], train=train, download=True)
PY

status=0
rlopt train -m hydra/launcher=slurm_gpu \
  controller=sgd,sam,adam,dqn_2opt,ppo_2opt,ppo_3opt dataset=cifar10,fashion_mnist seed=0,1,2 \
  trainer.epochs="$EPOCHS" trainer.device=cuda dataset.download=false \
  hydra.sweep.dir="$SWEEP" "$@" || status=$?
rlopt report "$SWEEP" out="$REPORT"
exit "$status"
