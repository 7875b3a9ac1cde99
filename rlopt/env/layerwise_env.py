"""`LayerwiseTrainingEnv`: one training run in which every layer's learning rate is set by its own agent.

It is a `TrainingEnv` (same run, budget, reward, divergence handling, metrics rows and best
checkpoint) that changes three things: the optimizer gets one param group per layer
(`optim.layers`), the action is one choice per layer (`layer_actions`), and the observation has
one row per layer (`layer_features`). As a gymnasium env its action is MultiDiscrete and its
observation a (layers, features) array; `LayerVecEnv` presents it to Stable-Baselines3 as one
sub-environment per layer, so one shared policy acts for every layer of any network.

All layers are paid the same global reward (`reward=...`). Each step returns one row per layer
in `info["layer_rows"]` (its action, lr, weight and gradient norms, and the reward the agents
were paid), which the runner appends to `layer_lrs.csv`; metrics.csv's `lr` is the median layer
lr and its `action` the mean choice index.

Decisions come every `env.steps_per_action` optimizer steps, as in `TrainingEnv` (the agent's own
value, 100, is set in conf/env/per_controller/ppo_layerwise.yaml). `controller.per_layer=false`
treats the whole network as one layer: the same policy, observation, moves and bounds setting one
global lr, the ablation that shows what per-layer control adds.

Difference reward (`controller.difference_reward=true`): before each step the env also trains
the step with every layer keeping its lr, on the same batches and random streams, measures that
reward, and rolls everything back (weights, optimizer states, batch order, random streams, the
env's bookkeeping). The agents are paid reward - that counterfactual reward, so the drift that
training brings anyway is taken out and what is left is the effect of the lr moves. It is one
counterfactual for all layers (a baseline, not per-layer credit assignment, which would need one
extra pass per layer). Cost: twice the gradient evaluations and training time per step; the
extra gradient evaluations are counted in `grad_evals`, the extra time is returned in
`info["extra_time_s"]` (the runner charges it to `controller_time_s`), and metrics.csv's `reward`
stays the plain global reward so runs compare.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from rlopt.env.layer_actions import LayerLrActions
from rlopt.env.layer_features import LayerFeatureSet, LayerState
from rlopt.env.training_env import TrainingEnv
from rlopt.errors import UserError
from rlopt.optim.layers import layer_groups, layer_param_groups

LAYER_COLUMNS = ["episode", "step", "opt_steps", "layer", "name", "depth", "action", "lr", "weight_norm", "grad_norm",
                 "agent_reward"]


def model_layer_names(task, per_layer: bool) -> list[str]:
    """The layers (parameter groups) of `task`'s model that get their own learning rate: built once to count them."""
    return [layer.name for layer in layer_groups(task.new_model(), per_layer)]


@torch.no_grad()
def group_norms(groups: list[list[torch.Tensor]]) -> list[float]:
    """The L2 norm of each group of tensors (0 for an empty group), read back in one transfer."""
    flat = [t for group in groups for t in group]
    if not flat:
        return [0.0] * len(groups)
    squares = torch.stack(torch._foreach_norm(flat)).float() ** 2
    owner = torch.repeat_interleave(torch.arange(len(groups)), torch.tensor([len(g) for g in groups])).to(squares.device)
    sums = torch.zeros(len(groups), device=squares.device).index_add_(0, owner, squares)
    return sums.sqrt().tolist()


class LayerwiseTrainingEnv(TrainingEnv):
    def __init__(self, task, actions: LayerLrActions, features: LayerFeatureSet, reward, *, layer_names: list[str],
                 per_layer: bool, difference_reward: bool, steps_per_action: int, divergence_penalty: float):
        """`layer_names`: the layers of `task`'s model, as `layer_groups(model, per_layer)` finds them (the
        spaces are sized for them); see `rlopt.env.make_env`."""
        super().__init__(task, actions, features, reward, steps_per_action=steps_per_action,
                         divergence_penalty=divergence_penalty)
        self.layer_names, self.per_layer = list(layer_names), per_layer
        self.difference_reward = difference_reward
        if self.difference_reward and self.actions.keep is None:
            raise UserError(f"controller.difference_reward=true needs a keep action: controller.actions.factors="
                            f"{self.actions.factors} must hold 1.0")
        self.layer_states: list[LayerState] = []

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    def _switch_task(self, task) -> None:
        names = model_layer_names(task, self.per_layer)
        if names != self.layer_names:
            raise ValueError(f"task {task.name} has layers {names}, not this env's {self.layer_names}: the layer-wise "
                             "env's spaces are sized for one architecture")
        super()._switch_task(task)

    def _param_groups(self, model):
        return layer_param_groups(model, self.per_layer)

    def _observe(self, val: dict, prev: dict | None = None) -> np.ndarray:
        self.layer_states = self._measure_layers()
        return self.features(self._training_state(val, prev), self.layer_states)

    def _measure_layers(self) -> list[LayerState]:
        groups = [group["params"] for group in self.bank.current.param_groups]
        weights = group_norms(groups)
        grads = group_norms([[p.grad for p in group if p.grad is not None] for group in groups])
        last = max(len(groups) - 1, 1)
        return [LayerState(w, g, lr, i / last) for i, (w, g, lr) in enumerate(zip(weights, grads, self.bank.lrs))]

    def step(self, action):
        action = np.asarray(action).reshape(-1)
        default, extra_time = None, 0.0
        if self.difference_reward:
            started = time.perf_counter()
            default = self._default_action_reward()
            extra_time = time.perf_counter() - started
        obs, reward, terminated, truncated, info = super().step(action)
        paid = reward if default is None else reward - default
        info.update(agent_reward=paid, default_reward=default, extra_time_s=extra_time,
                    layer_rows=self._layer_rows(action, paid))
        return obs, paid, terminated, truncated, info

    def _default_action_reward(self) -> float:
        """The reward of this step had every layer kept its lr: trained and validated for real, then rolled back."""
        trainer_state = self.trainer.snapshot()
        env_state = dict(self.__dict__)
        rng_state = self.np_random.bit_generator.state
        try:
            _, reward, *_ = super().step(np.full(self.n_layers, self.actions.keep))
            extra_evals = self.trainer.grad_evals - trainer_state["grad_evals"]
        finally:
            self.trainer.restore(trainer_state)
            self.__dict__.clear()
            self.__dict__.update(env_state)
            self.np_random.bit_generator.state = rng_state
        self.trainer.grad_evals += extra_evals
        return reward

    def _layer_rows(self, action, paid: float) -> list[dict]:
        common = {"episode": self.episode, "step": self.decision, "opt_steps": self.trainer.opt_steps,
                  "agent_reward": paid}
        return [
            {**common, "layer": i, "name": name, "depth": s.depth, "action": int(a), "lr": s.lr,
             "weight_norm": s.weight_norm, "grad_norm": s.grad_norm}
            for i, (name, s, a) in enumerate(zip(self.layer_names, self.layer_states, action))
        ]
