"""Stable-Baselines3 agents (PPO, DQN) as controllers, and loading a saved one.

Online mode (`controller.episodes=0`, the report's setting): the agent learns while it controls
this one training run, which is recorded in `metrics.csv`. With `episodes=N` it learns over N
training runs (seeds seed..seed+N-1, recorded in `learning_metrics.csv`), then controls a final
run deterministically (seed+N) recorded in `metrics.csv`. The agent is saved as `policy.zip` with
`policy.json` beside it (algorithm, action space, observation features) so `rlopt evaluate` can
rebuild a matching environment. A layer-wise run is handed to SB3 as one sub-environment per layer
(`rlopt.controllers.sb3_env.agent_env`), so one shared policy acts for every layer.

The agent learns inside SB3's `learn()`, stepping the runner's recording wrapper of the
environment, so every step is recorded as in any other run; the runner also runs the final
episode and writes the checkpoints, which SB3 offers at the start of each rollout.

`controller.n_envs=K` > 1 learns from K training runs at once, each in its own worker process
(`sb3_env.ParallelRuns`), or with `controller.vectorize=population` as one vectorised model in this
process (`population_vec_env.PopulationRuns`): `episodes` (a multiple of K) counts finished runs across all of them,
the run seeds are seed..seed+N-1 as with K=1 (run i in sub-environment i mod K), and the rows
come back to the main process, which records them and writes every checkpoint, with each
worker's environment and RNG states in it. K=1 is the plain in-process path, unchanged.
SB3's own learning logs (losses, entropy, explained variance, exploration rate) go to the run's
`tb/agent_1/` unless `trainer.tensorboard=false`.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from rlopt.controllers.exploration import configure_exploration
from rlopt.controllers.hyperparams import check_hyperparams
from rlopt.controllers.sb3_env import ParallelRuns, agent_env, start_worker_server
from rlopt.errors import UserError
from rlopt.files import atomic_path, write_json
from rlopt.instances.sampling import InstanceSampler, learns_across
from rlopt.run.protocol import Controller, RunContext

ALGOS = {"ppo": PPO, "dqn": DQN}
# The agent's Adam settings SB3 picks when given none (ActorCriticPolicy: eps 1e-5; DQN: torch's), kept
# when rlopt adds fused=True: torch's fused CPU Adam updates a small policy's tensors in one kernel,
# ~20% off each agent update, which is most of the controller's time (BENCHMARKS.md).
SB3_ADAM_DEFAULTS = {"ppo": {"eps": 1e-5}, "dqn": {}}
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


class StopAfterEpisodes(BaseCallback):
    """Ends `learn()` as soon as the given number of episodes (training runs) has finished.

    Every `per_run` consecutive sub-environments are one run (one env, or the layers of one layer-wise
    run) and end together, so each `per_run` done flags of a step are one finished run."""

    def __init__(self, episodes: int, already: int = 0, per_run: int = 1):
        super().__init__()
        self.episodes, self.per_run = episodes, per_run
        self.finished = already

    def _on_step(self) -> bool:
        self.finished += int(np.sum(self.locals["dones"])) // self.per_run
        return self.finished < self.episodes


def _hyperparams(cfg) -> dict:
    params = OmegaConf.to_container(cfg.hyperparams, resolve=True)
    kwargs = params.get("policy_kwargs") or {}
    act = kwargs.get("activation_fn")
    if isinstance(act, str):
        if act not in ACTIVATIONS:
            raise UserError(f"controller.hyperparams.policy_kwargs.activation_fn={act} is unknown; "
                            f"available: {', '.join(ACTIVATIONS)}")
        kwargs["activation_fn"] = ACTIVATIONS[act]
    optimizer_kwargs = kwargs.get("optimizer_kwargs") or dict(SB3_ADAM_DEFAULTS.get(cfg.algo, {}))
    kwargs["optimizer_kwargs"] = {"fused": True, **optimizer_kwargs}
    params["policy_kwargs"] = kwargs
    return params


class CheckpointOnRollout(BaseCallback):
    """Checkpoints where SB3's state is consistent: at the start of each rollout, after the
    previous rollout's training (every step for DQN, every n_steps for PPO)."""

    def __init__(self, save):
        super().__init__()
        self.save = save

    def _on_rollout_start(self) -> None:
        self.save()

    def _on_step(self) -> bool:
        return True


class KeepLearningClock(BaseCallback):
    """Puts back SB3's fps bookkeeping after a resume: `learn()` restarts it (`start_time` now, `_num_timesteps_at_start`
    the steps done so far), so a resumed agent's policy.zip would differ from an uninterrupted run's in those two
    values. With the run's own (from the checkpointed agent) it does not, and the fps SB3 logs after a resume
    counts from the run's start, the pause included."""

    def __init__(self, start_time: int, steps_at_start: int):
        super().__init__()
        self.start_time, self.steps_at_start = start_time, steps_at_start

    def _on_training_start(self) -> None:
        self.model.start_time, self.model._num_timesteps_at_start = self.start_time, self.steps_at_start

    def _on_step(self) -> bool:
        return True


class SB3Controller(Controller):
    def __init__(self, cfg, seed: int):
        if cfg.algo not in ALGOS:
            raise UserError(f"controller.algo={cfg.algo} is unknown; available: {', '.join(ALGOS)}")
        check_hyperparams(ALGOS[cfg.algo], cfg.algo, cfg.hyperparams)  # before any data is read
        self.cfg, self.seed = cfg, seed
        self.episodes = int(cfg.episodes)
        if self.episodes < 0:
            raise UserError(f"controller.episodes={self.episodes} is not allowed: use 0 (online) or a positive count")
        choices = cfg.actions.choices if cfg.actions.kind == "optimizer" else None
        if choices is not None and len(choices) < 2:
            raise UserError(f"controller.actions.choices={list(choices)} is not allowed for an agent: "
                            "list at least two optimizers")
        self.n_envs = cfg.n_envs
        if isinstance(self.n_envs, bool) or not isinstance(self.n_envs, int) or self.n_envs < 1:
            raise UserError(f"controller.n_envs={self.n_envs} is not allowed: use a positive integer")
        if self.n_envs > 1 and (self.episodes == 0 or self.episodes % self.n_envs):
            raise UserError(f"controller.n_envs={self.n_envs} needs controller.episodes to be a positive multiple of it "
                            f"(got {self.episodes}): K runs learn at once, online mode (0) controls one run")
        self.vectorize = str(cfg.vectorize)
        if self.n_envs > 1 and self.vectorize == "processes":
            start_worker_server()  # it imports what the workers need while this process reads the data
        self.model = None
        self.runs: ParallelRuns | None = None  # the worker processes (or the population) while K > 1 runs learn
        self.learning = {"n_envs": self.n_envs, "vectorize": self.vectorize, "learning_gpu_peak_memory_mb": None,
                         "learning_wait_share": None}
        self.tb_dir: Path | None = None
        self.phase, self.finished = "learn", 0
        self.stop: StopAfterEpisodes | None = None
        self.resumed = False  # set up from a checkpoint: SB3 continues the restored episode instead of resetting
        self.clock: KeepLearningClock | None = None  # a resumed agent's learning clock, put back when it learns on
        self.sampler: InstanceSampler | None = None  # with an instance set: the env wrapper drawing each run's task

    @property
    def learned(self) -> bool:
        return self.phase == "final"

    def setup(self, env, state: dict | None, context: RunContext) -> None:
        """`env`: the runner's recording env. With n_envs > 1 the agent learns in worker processes built from
        `context.config` (their states restored from `state` on resume), whose rows go to `context.record_rows`,
        and acts in `env` only for the final run. With an instance set and no `instance` named, every run trains
        the train instance its run seed draws (`rlopt.instances.sampling`)."""
        self.tb_dir = context.tb_dir
        if learns_across(context.config):
            self.sampler = InstanceSampler(env, context.config)
        if self.n_envs == 1:
            vec_env = agent_env(self.sampler or env)
        elif state is None or state["phase"] == "learn":
            if state is None:  # the main env waits for the final run; reset, it has a state for the checkpoints
                env.unwrapped.reset(options=self.episode_options())  # on that run's instance, as a restore has it
            self.runs = self._runs(env, context)
            if state is not None:
                self.runs.load_state(state["workers"])
            vec_env = self.runs.agent
        else:
            vec_env = None  # resumed in the final run: the agent only acts, in the main process
        self.model = self._build(vec_env, state)
        if self.cfg.algo == "dqn":  # the only algorithm that explores with epsilon (and has the key)
            configure_exploration(self.model, self.cfg.exploration)
        self.resumed = state is not None
        if state is not None:
            self.clock = KeepLearningClock(self.model.start_time, self.model._num_timesteps_at_start)
            if vec_env is not None:
                # the environment's own space, as in a run never stopped (the loaded copy equals it, but pickles with
                # another layout, so policy.zip's bytes would differ); its random state is restored next
                self.model.action_space = vec_env.action_space
            self.phase, self.finished = state["phase"], state["finished"]
            restore_agent_random_state(self.model, state["random"])
            self.learning = state.get("learning", self.learning)

    def _runs(self, env, context: RunContext):
        """The K learning runs: worker processes, or one population (imported only then: it builds the engine)."""
        if self.vectorize == "population":
            from rlopt.controllers.population_vec_env import PopulationRuns

            return PopulationRuns(env, context.config, context.record_rows, self.n_envs, self.sampler)
        return ParallelRuns(env, context.config, context.record_rows, self.n_envs)

    def learn(self, env, save) -> None:
        """Learn over `max(episodes, 1)` runs, in which the model built by `setup` acts (`agent_env(env)`,
        or the K worker processes)."""
        learn_episodes = max(self.episodes, 1)
        per_run = self.model.n_envs // self.n_envs  # sub-environments per training run: 1, or the layers
        self.stop = StopAfterEpisodes(learn_episodes, already=self.finished, per_run=per_run)
        # SB3 counts one timestep per sub-environment; K runs advance together
        if self.sampler is None:
            agent_steps = env.unwrapped.decisions_per_episode * per_run * learn_episodes
        else:  # each run's budget is its instance's (a population's member draws among its group: `pools`)
            pools = getattr(self.runs, "pools", None)  # ParallelRuns' workers draw among the whole train part
            agent_steps = self.sampler.learning_steps(self.seed, learn_episodes, self.n_envs, pools) * per_run
        started = time.perf_counter()
        # SB3 logs to tensorboard_log while it learns; set only then, so no saved policy names this run's folder
        self.model.tensorboard_log = str(self.tb_dir) if self.tb_dir is not None else None
        try:
            self.model.learn(total_timesteps=agent_steps - self.model.num_timesteps,
                             callback=[self.stop, CheckpointOnRollout(save), *([self.clock] if self.clock else [])],
                             reset_num_timesteps=not self.resumed,
                             tb_log_name="agent", log_interval=1)  # DQN logs every log_interval runs (default 4)
            self.model.logger.dump(self.model.num_timesteps)  # what the last run logged: SB3 stops before it dumps
            if self.runs is not None:
                self.learning.update(learning_gpu_peak_memory_mb=self.runs.peak_gpu_memory_mb(),
                                     learning_wait_share=self.runs.recorded.waited / (time.perf_counter() - started))
                env.unwrapped.episodes_started = self.episodes  # the final run is run N, as with K=1
        finally:
            self.model.tensorboard_log = None
            if self.runs is not None:
                self.runs.close()
                self.runs = None
        self.phase, self.finished = "final", self.episodes

    def act(self, obs):
        return self.model.predict(obs, deterministic=True)[0]

    def episode_options(self) -> dict:
        run_seed = self.seed + self.episodes
        return {"run_seed": run_seed, **({"task": self.sampler.task_for(run_seed)} if self.sampler else {})}

    def state_dict(self) -> dict:
        state = self._state(self.phase, self.stop.finished if self.phase == "learn" else self.finished)
        if self.n_envs > 1:
            state.update(workers=self.runs.state() if self.runs is not None else None, learning=self.learning)
        return state

    def summary(self) -> dict:
        """For summary.json: n_envs, and with K > 1 each worker's peak GPU memory (null off CUDA) and the share
        of the learning time the agent spent waiting for the slowest sub-environment of each step."""
        return dict(self.learning)

    def finish(self, env, run_dir) -> None:
        if self.cfg.save_policy:
            save_policy(self.model, self.cfg, env, run_dir)

    def _build(self, vec_env, state: dict | None):
        """A fresh agent, or the one saved in the checkpointed controller `state`."""
        algo = ALGOS[self.cfg.algo]
        if state is not None:  # tensorboard_log: see `learn`
            model = algo.load(io.BytesIO(state["model"]), env=vec_env, device="cpu", force_reset=False,
                              tensorboard_log=None)
            if state.get("replay_buffer") is not None:
                model.load_replay_buffer(io.BytesIO(state["replay_buffer"]))
            return model
        try:
            return algo("MlpPolicy", vec_env, seed=self.seed, device="cpu", verbose=0, **_hyperparams(self.cfg))
        except (TypeError, ValueError, AssertionError) as err:
            raise UserError(f"controller.hyperparams are not valid for {self.cfg.algo}: {err}") from None

    def _state(self, phase: str, finished: int) -> dict:
        """The agent as bytes (SB3's own format keeps counters, last observation, optimizer state)."""
        model_bytes = io.BytesIO()
        self.model.save(model_bytes)
        buffer = None
        if hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
            buffer_bytes = io.BytesIO()
            self.model.save_replay_buffer(buffer_bytes)
            buffer = buffer_bytes.getvalue()
        return {"phase": phase, "finished": finished, "model": model_bytes.getvalue(), "replay_buffer": buffer,
                "random": agent_random_state(self.model)}


# -- the agent's own random state (resume) ---------------------------------------------------------------------------
def agent_random_state(model) -> dict:
    """What SB3 draws from besides the global RNGs (which the checkpoint keeps): the action space's generator, from
    which DQN takes its epsilon-random and warm-up actions."""
    return {"action_space": model.action_space.np_random.bit_generator.state}


def restore_agent_random_state(model, state: dict) -> None:
    """Undo what SB3's `load` did to a checkpointed agent's randomness: it calls `set_random_seed(seed)`, which
    reseeds the action space (a resumed DQN would replay its random actions from the first) and arms the env's
    next reset with the run seed (a resumed `episodes>0` run would train its next episode on the first's seed)."""
    model.action_space.seed(model.seed)  # a generator made as SB3 made it (policy.zip pickles its seed sequence too)
    model.action_space.np_random.bit_generator.state = state["action_space"]
    env = model.get_env()  # None for an n_envs > 1 agent resumed in its final run (it acts without its workers)
    while env is not None:  # the VecEnv and those it wraps (n_envs > 1: the workers' SubprocVecEnv)
        env._reset_seeds()
        env = getattr(env, "venv", None)


def save_policy(model, cfg, env, run_dir: Path) -> None:
    """policy.zip (SB3's format) plus policy.json: what `rlopt evaluate` needs to rebuild the env."""
    run_dir = Path(run_dir)
    with atomic_path(run_dir / "policy.zip") as tmp, open(tmp, "wb") as f:
        model.save(f)
    write_json(run_dir / "policy.json", {
        "algo": cfg.algo,
        "controller": cfg.name,
        "actions": OmegaConf.to_container(cfg.actions, resolve=True),
        "features": list(env.features.names),
        "observation_dim": int(model.observation_space.shape[0]),
        "steps_per_action": env.steps_per_action,
    })


def load_policy(path: str):
    """Load a saved agent and its metadata; every problem is one clear UserError."""
    zip_path = Path(path).expanduser()
    if not zip_path.is_file():
        raise UserError(f"policy={path}: no such file (give the policy.zip written by rlopt train)")
    meta_path = zip_path.with_suffix(".json")
    if not meta_path.is_file():
        raise UserError(f"policy={path}: {meta_path.name} is missing beside it, so this is not an rlopt policy")
    try:
        meta = json.loads(meta_path.read_text())
        algo = ALGOS[meta["algo"]]
    except (ValueError, KeyError) as err:
        raise UserError(f"policy={path}: {meta_path.name} is unreadable ({err})") from None
    try:
        model = algo.load(str(zip_path), device="cpu")
    except Exception as err:  # SB3 raises many kinds on a corrupt zip
        raise UserError(f"policy={path}: cannot load it as an SB3 {meta['algo']} agent ({type(err).__name__}: {err})") from None
    return model, meta


class FrozenPolicy(Controller):
    """A loaded agent acting deterministically, learning nothing: the `rlopt evaluate` controller."""

    def __init__(self, model, path: str):
        self.model, self.path = model, path

    def setup(self, env, state: dict | None, context: RunContext) -> None:
        agent = agent_env(env)  # a layer-wise policy acts per layer: batched over however many layers this model has
        if self.model.observation_space.shape != agent.observation_space.shape or self.model.action_space != agent.action_space:
            raise UserError(
                f"policy={self.path} does not fit this environment: it expects observations {self.model.observation_space.shape} "
                f"and actions {self.model.action_space}, the run has {agent.observation_space.shape} and {agent.action_space}"
            )

    def act(self, obs):
        return self.model.predict(obs, deterministic=True)[0]

    def summary(self) -> dict:
        return {"policy": self.path}
