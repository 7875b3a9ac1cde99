"""The Stable-Baselines3 adapters: what an SB3 agent acts in (`agent_env`, `ParallelRuns`).

`LayerVecEnv`: one layer-wise training run seen by Stable-Baselines3 as one sub-environment per layer.
SB3 batches a VecEnv's sub-environments through one policy, so with a layer per sub-environment
every layer is an agent with the same (shared) policy parameters, and the policy's input is one
layer's observation row: it applies to networks of any depth. The sub-environments are not
independent: they are the layers of ONE run, stepped together with the batch of actions, paid
the same reward and done together. Following SB3's convention the run is reset automatically
when it ends; the last observation is in each info's `terminal_observation`.

`ParallelRuns`: K training runs at once (`controller.n_envs=K`), each in its own worker process
(SB3's `SubprocVecEnv`, forked from a preloaded fork server, so CUDA works in every one and they share the GPU).
Run seeds: the j-th run of sub-environment k is global run i = k + K*j and trains with run seed
`seed + i` (its `episode` column is i), so with `controller.episodes` a multiple of K the learning
runs are exactly seeds seed..seed+N-1, as with K=1, only K at a time (`RunSlot`). The workers write
nothing: their rows come back in the step infos and the main process records them
(`RecordedVecEnv`), so the run folder has one writer, which alone holds its files (and any lock on
it). A layer-wise run adds `LayerRunsVecEnv`: K runs x L layers sub-environments, one shared policy.

All take the environment as the runner presents it (wrapped, so that every step is recorded)
or bare; attributes are read from the bare one (`env.unwrapped`).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper

from rlopt.env.layerwise_env import LayerwiseTrainingEnv
from rlopt.resources import cpu_count, peak_gpu_memory_mb
from rlopt.run.checkpoint import restore_rng, rng_states


def agent_env(env: gym.Env) -> VecEnv:
    """What an SB3 agent acts in: one sub-environment per layer for a layer-wise run, else the env in a
    DummyVecEnv (built here rather than by SB3, so no Monitor wrapper stands between a resumed agent and
    the restored environment)."""
    return LayerVecEnv(env) if isinstance(env.unwrapped, LayerwiseTrainingEnv) else DummyVecEnv([lambda: env])


class InProcessVecEnv(VecEnv):
    """A VecEnv whose sub-environments are stepped together in this process: `step_async` keeps the actions
    for `step_wait`; `_reset_done` records a reset's infos and clears the seeds and options it used."""

    _actions: np.ndarray | None = None

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def _reset_done(self, infos: list[dict]) -> None:
        self.reset_infos = infos
        self._reset_seeds()
        self._reset_options()


class LayerVecEnv(InProcessVecEnv):
    def __init__(self, env: gym.Env):
        self.env = env
        bare: LayerwiseTrainingEnv = env.unwrapped
        super().__init__(bare.n_layers, bare.features.agent_space, bare.actions.agent_space)

    def reset(self) -> np.ndarray:
        # One run for all layers: the first sub-environment's seed and options are the run's.
        obs, info = self.env.reset(seed=self._seeds[0], options=self._options[0] or None)
        self._reset_done([dict(info) for _ in range(self.num_envs)])
        return obs

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        done = terminated or truncated
        infos = [{**info, "TimeLimit.truncated": truncated and not terminated} for _ in range(self.num_envs)]
        if done:
            for layer, layer_info in enumerate(infos):
                layer_info["terminal_observation"] = obs[layer]
            obs, info = self.env.reset()
            self.reset_infos = [dict(info) for _ in range(self.num_envs)]
        return (obs, np.full(self.num_envs, reward, dtype=np.float32), np.full(self.num_envs, done, dtype=bool), infos)

    def close(self) -> None:
        self.env.close()

    # Attribute access reaches the one shared env; a method runs once and its result is repeated per layer.
    def get_attr(self, attr_name: str, indices=None) -> list:
        return [getattr(self.env.unwrapped, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        setattr(self.env.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        result = getattr(self.env.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


# -- K training runs at once, one process each ------------------------------------------------------
class RunSlot(gym.Wrapper):
    """Sub-environment `index` of `n_envs`, in its worker process: gives each run its run seed
    (`seed + index + n_envs * j` for its j-th run), numbers the run's rows with that global run index
    (`episode`) and adds `env` (the index) and `run_seed` to them, and saves and restores everything
    the worker holds (the env and the process's RNGs) for the parent's checkpoints."""

    def __init__(self, env: gym.Env, index: int, n_envs: int):
        super().__init__(env)
        self.index, self.n_envs = index, n_envs
        self.base_seed = env.unwrapped.task.seed

    def _run(self) -> int:
        """The global index of the run in progress (the env counts its own runs from 1)."""
        return self.index + self.n_envs * (self.env.unwrapped.episodes_started - 1)

    def reset(self, *, seed=None, options=None):
        run = self.index + self.n_envs * self.env.unwrapped.episodes_started
        return self.env.reset(seed=seed, options={**(options or {}), "run_seed": self.base_seed + run})

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        run, run_seed = self._run(), self.env.unwrapped.run_seed
        info["metrics"].update(episode=run, env=self.index, run_seed=run_seed, instance=self.env.unwrapped.task.name)
        for row in info.get("layer_rows", ()):
            row["episode"] = run
        return obs, reward, terminated, truncated, info

    def checkpoint_state(self) -> dict:
        return {"env": self.env.unwrapped.state_dict(), "rng": rng_states()}

    def load_checkpoint_state(self, state: dict) -> None:
        self.env.unwrapped.load_state_dict(state["env"])
        restore_rng(state["rng"])

    def peak_gpu_memory_mb(self) -> float | None:
        return peak_gpu_memory_mb(self.env.unwrapped.device)


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when its parent dies, so a run killed even by SIGKILL leaves
    no worker behind to finish its step after the run was resumed. The parent is the fork server (spawn: the
    main process), which exits as soon as the main process is gone (the end of its `alive` pipe closes)."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before the call
            os._exit(1)


# What a worker imports: torch, SB3 (through this module), gymnasium, the environment and the data loaders.
WORKER_MODULES = ["rlopt.controllers.sb3_env", "rlopt.env", "rlopt.data", "rlopt.cpu_memory"]


def worker_start_method() -> str:
    """`forkserver` where the platform has it (Linux, macOS), else `spawn`."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def start_worker_server() -> None:
    """Start the fork server that the K workers are forked from, and have it import `WORKER_MODULES`
    now, while the main process reads its data and builds its own environment. With `spawn` every worker
    started a fresh interpreter and imported torch and SB3 itself after that setup (most of a 6 s start-up on
    2 cores); forked from the server, a worker starts with them loaded. As safe for CUDA as `spawn`: the
    server only imports (importing torch does not initialise CUDA), and each forked worker initialises
    CUDA itself. The server lives as long as this process; a later K > 1 run in it reuses it."""
    if worker_start_method() == "forkserver":
        from multiprocessing import forkserver  # POSIX only

        forkserver.set_forkserver_preload(WORKER_MODULES)
        forkserver.ensure_running()


def make_worker_env(cfg, index: int, n_envs: int) -> RunSlot:
    """Build sub-environment `index` in its worker: `trainer.threads` torch threads (default: this machine's
    cores / n_envs), the dataset read and split as in the main process, the env on `trainer.device`."""
    from rlopt.cpu_memory import keep_freed_memory
    from rlopt.env import make_env
    from rlopt.instances.sampling import InstanceSampler, learns_across

    _die_with_parent()
    threads = cfg.trainer.threads if cfg.trainer.threads is not None else max(1, cpu_count() // n_envs)
    torch.set_num_threads(int(threads))
    random.seed(int(cfg.seed) + index)
    np.random.seed(int(cfg.seed) + index)
    torch.manual_seed(int(cfg.seed) + index)
    env = make_env(cfg)
    if env.device.type == "cpu":
        keep_freed_memory()
    return RunSlot(InstanceSampler(env, cfg) if learns_across(cfg) else env, index, n_envs)


class RecordedVecEnv(VecEnvWrapper):
    """The workers' rows recorded in the main process, as they come back in the step infos: `record` is the run's
    `RunContext.record_rows`, given each batch's infos and the agent's time from the moment the environments last
    returned to its next actions (shared by the K rows of one batched step)."""

    def __init__(self, venv: VecEnv, record: Callable[[Sequence[dict], float], None]):
        super().__init__(venv)
        self.record = record
        self.returned = time.perf_counter()  # when the environments last returned
        self.controller_time = 0.0
        self.waited = 0.0  # seconds spent in step_wait: the agent waiting on the slowest sub-environment

    def reset(self):
        obs = self.venv.reset()
        self.returned = time.perf_counter()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self.controller_time = time.perf_counter() - self.returned
        self.venv.step_async(actions)

    def step_wait(self):
        started = time.perf_counter()
        try:
            obs, rewards, dones, infos = self.venv.step_wait()
        except (EOFError, BrokenPipeError, ConnectionResetError) as err:
            raise RuntimeError(f"a sub-environment's process ended unexpectedly ({type(err).__name__}); "
                               "its own error, if any, is in the log above") from None
        self.waited += time.perf_counter() - started
        self.record(infos, self.controller_time)
        self.returned = time.perf_counter()
        return obs, rewards, dones, infos


class LayerRunsVecEnv(VecEnv):
    """K layer-wise runs (a VecEnv of K envs with (L, F) observations and MultiDiscrete(L) actions) as K*L
    sub-environments of one layer each, run-major: sub-environment k*L + l is layer l of run k. A run's
    layers share its reward and end together; its info is repeated per layer, with that layer's row of
    the terminal observation."""

    def __init__(self, venv: VecEnv, n_layers: int, observation_space, action_space):
        self.venv, self.n_layers = venv, n_layers
        super().__init__(venv.num_envs * n_layers, observation_space, action_space)

    def _flat(self, obs: np.ndarray) -> np.ndarray:
        return obs.reshape(self.num_envs, *obs.shape[2:])

    def _per_layer(self, infos) -> list[dict]:
        out = []
        for info in infos:
            for layer in range(self.n_layers):
                layer_info = dict(info)
                if "terminal_observation" in info:
                    layer_info["terminal_observation"] = info["terminal_observation"][layer]
                out.append(layer_info)
        return out

    def reset(self) -> np.ndarray:
        self.venv._seeds = self._seeds[:: self.n_layers]  # a run's seed and options are its first layer's
        self.venv._options = self._options[:: self.n_layers]
        obs = self.venv.reset()
        self.reset_infos = self._per_layer(self.venv.reset_infos)
        self._reset_seeds()
        self._reset_options()
        return self._flat(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(np.asarray(actions).reshape(self.venv.num_envs, self.n_layers))

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.reset_infos = self._per_layer(self.venv.reset_infos)
        return (self._flat(obs), np.repeat(rewards, self.n_layers).astype(np.float32), np.repeat(dones, self.n_layers),
                self._per_layer(infos))

    def close(self) -> None:
        self.venv.close()

    def _runs(self, indices) -> list[int]:
        return [i // self.n_layers for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices=None) -> list:
        return [self.venv.get_attr(attr_name, [run])[0] for run in self._runs(indices)]

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        self.venv.set_attr(attr_name, value, sorted(set(self._runs(indices))))

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list:
        return [self.venv.env_method(method_name, *method_args, indices=[run], **method_kwargs)[0]
                for run in self._runs(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [self.venv.env_is_wrapped(wrapper_class, [run])[0] for run in self._runs(indices)]


class ParallelRuns:
    """The K worker processes of `parallel_agent_env` and what the agent acts in: `agent` (the VecEnv the SB3
    model steps), `workers` (the SubprocVecEnv, one sub-environment per run) and `recorded` (the wrapper that
    records their rows and times the waiting)."""

    def __init__(self, env: gym.Env, config, record: Callable[[Sequence[dict], float], None], n_envs: int):
        bare = env.unwrapped
        self.n_envs = n_envs
        try:
            self.workers = SubprocVecEnv([functools.partial(make_worker_env, config, k, n_envs)
                                          for k in range(n_envs)], start_method=worker_start_method())
        except (EOFError, BrokenPipeError, ConnectionResetError) as err:
            raise RuntimeError(f"a sub-environment's process failed to start ({type(err).__name__}); "
                               "its own error is in the log above") from None
        self.recorded = RecordedVecEnv(self.workers, record)
        if isinstance(bare, LayerwiseTrainingEnv):
            self.agent = LayerRunsVecEnv(self.recorded, bare.n_layers, bare.features.agent_space,
                                         bare.actions.agent_space)
            self.per_run = bare.n_layers
        else:
            self.agent, self.per_run = self.recorded, 1

    def state(self) -> list[dict]:
        """Each worker's env and RNG states, in sub-environment order."""
        return self.workers.env_method("checkpoint_state")

    def load_state(self, states: list[dict]) -> None:
        for k, state in enumerate(states):
            self.workers.env_method("load_checkpoint_state", state, indices=[k])

    def peak_gpu_memory_mb(self) -> list[float | None]:
        return self.workers.env_method("peak_gpu_memory_mb")

    def close(self) -> None:
        self.workers.close()
