"""`python scripts/bench.py --case population`: K runs as one vectorised model vs one run per process.

For each task (polynomial/maclaurin, digits/mlp, MNIST/mlp on a 10k-image subset, digits/small_cnn without
dropout) it measures member optimizer steps per second (Adam, fp32):
  - `n_envs=1`: one run, the single-run engine (`rlopt.engine.Trainer`), in one child process;
  - `n_envs=2 (processes)`: two such runs at once, one child process each, each on cores / 2 threads;
  - `population K`: `rlopt.population.PopulationTrainer` with K members (K=1 is listed for reference only:
    `controller.n_envs=1` never builds a population; it keeps the single-run engine);
with the memory per member (CUDA: peak allocated / K; CPU: weights and optimizer state / K). Rounds are
interleaved; the ratio to n_envs=1 is taken within each round and reported as the median with each round.

With `--learning`, it also measures learning runs per hour on the polynomial task, the agent included
(`rlopt train controller=ppo_lr`, decisions every 10 optimizer steps, PPO's minibatch = the whole rollout),
n_envs=1 and n_envs=2 processes against population K, through `bench.measure_n_envs`, in `--rounds` interleaved
rounds (ratios paired within each); `--instances poly_family` measures only that, across the instance set (each
run training the instance it draws).

With `--seeds`, runs per hour of a fixed baseline's seeds end to end (`rlopt train controller=adam runs=K`:
data, run folders, test, summaries; no plots or TensorBoard), polynomial/maclaurin: K runs one after another in
one process (runs=1 each, the single-run engine), `runs=K` as K processes (K <= 8: each process's start-up is
most of a run here), and `runs=K controller.vectorize=population` (K=1 keeps the single-run engine).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

TASKS = {
    "polynomial/maclaurin": ["dataset=polynomial", "model=maclaurin", "trainer.batch_size=32"],
    "digits/mlp": ["dataset=digits", "model=mlp", "model.hidden=[128]", "trainer.batch_size=64"],
    "mnist/mlp 10k": ["dataset=mnist", "model=mlp", "model.hidden=[128]", "trainer.batch_size=64",
                      "dataset.train_subset=10000", "dataset.download=false"],
    "digits/small_cnn": ["dataset=digits", "model=small_cnn", "model.dropout=false", "trainer.batch_size=64"],
}


def _task(overrides, device_name, data_root):
    from hydra import compose, initialize_config_dir

    from rlopt.paths import conf_dir
    from rlopt.task import make_task

    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, "trainer.amp=false", f"trainer.device={device_name}",
                                                      f"dataset.root={data_root}"])
    return make_task(cfg)


def _mib(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor)) / 2**20


def _memory(device: torch.device, state) -> float:
    """CUDA: the peak allocated; CPU (where a process's peak RSS is mostly its imports): the weights and
    optimizer state held, `state` (a model and optimizer, or a population)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if isinstance(state, tuple):
        model, optimizer = state
        return _mib(model.parameters()) + _mib(v for s in optimizer.state.values() for v in s.values())
    return _mib([state.flat, *(t for opt in state.optimizers for t in vars(opt).values())])


def measure(task_name, device_name, k, steps, threads, data_root, queue):
    """Child process: member optimizer steps per second of one run (k=0: the single-run engine) or a population
    of k, after a warm-up of a tenth of the steps; peak memory per member."""
    torch.set_num_threads(threads)
    task = _task(TASKS[task_name], device_name, data_root)
    if task.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(task.device)
    if k == 0:
        from rlopt.optim import OptimizerBank

        model = task.build_model(0)
        trainer = task.trainer(model, OptimizerBank(model.parameters, ["adam"], task.optim), 0)
        state = (model, trainer.bank.current)

        def run(n):
            trainer.train(n)
    else:
        from rlopt.population import PopulationTrainer

        trainer = state = PopulationTrainer(task, ["adam"], k)
        for member in range(k):
            trainer.init_member(member, member)

        def run(n):
            trainer.train([n] * k)
    run(max(steps // 10, 1))
    if task.device.type == "cuda":
        torch.cuda.synchronize(task.device)
    started, cpu_started = time.perf_counter(), time.process_time()
    run(steps)
    if task.device.type == "cuda":
        torch.cuda.synchronize(task.device)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    queue.put({"steps_per_s": max(k, 1) * steps / seconds, "steps_per_cpu_s": max(k, 1) * steps / cpu_seconds,
               "mib_per_member": _memory(task.device, state) / max(k, 1)})


def _two_processes(in_child_pair, task_name, device_name, steps, threads, data_root) -> dict:
    results = in_child_pair(measure, (task_name, device_name, 0, steps, threads, data_root))
    return {"steps_per_s": sum(r["steps_per_s"] for r in results),
            "mib_per_member": statistics.mean(r["mib_per_member"] for r in results)}


def _in_this_process(fn, *args):
    """`fn(*args)` here (`--one-process`): no child start-ups, which a loaded machine makes slow."""
    import queue

    results = queue.Queue()
    fn(*args, results)
    return results.get()


def bench_population(args, in_child, in_child_pair, machine, measure_n_envs) -> str:
    """The `--case population` section (see the module docstring)."""
    if args.one_process:
        return one_process_section(args, machine)
    ks = [int(k) for k in args.population.split(",")]
    if args.instances:
        return "\n".join([f"## Population mode across instances={args.instances} on {args.device} ({date.today()})", "",
                          f"Machine: {machine()}; load average (1/5/15 min) at the start: "
                          f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())} (a shared machine).  ",
                          f"Command: `{' '.join(['python scripts/bench.py', *sys.argv[1:]])}`", "",
                          learning_section(args, ks, in_child, measure_n_envs), ""])
    cores = os.cpu_count() or 1
    threads = args.threads or cores
    root = args.data_root
    # --tasks none: only the --learning and --seeds sections
    tasks = [] if args.tasks == "none" else [t for t in (args.tasks.split(",") if args.tasks else TASKS)
                                             if t != "mnist/mlp 10k" or (root / "MNIST").is_dir()]
    lines = [f"## Population mode on {args.device} ({date.today()})", "",
             f"Machine: {machine()}; load average (1/5/15 min) at the start: "
             f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())} (a shared machine: other work ran alongside).  ",
             f"Command: `{' '.join(['python scripts/bench.py', *sys.argv[1:]])}`; {args.rounds} interleaved rounds, "
             f"{args.steps} timed steps each, Adam, fp32, {threads} thread(s) (n_envs=2: {max(cores // 2, 1)} each).", ""]
    if tasks:
        lines += ["Member optimizer steps per second (median of rounds) and the ratio to n_envs=1 (paired within each "
                  "round: median; each round); peak memory per member.", "",
                  "| task | setup | member steps/s | / n_envs=1 (median; each round) | MiB / member (CPU: weights + "
                  "optimizer state; CUDA: peak allocated) |",
                  "|---|---|---|---|---|"]
    for task_name in tasks:
        rounds = []
        for _ in range(args.rounds):
            r = {"n_envs=1": in_child(measure, task_name, args.device, 0, args.steps, threads, root),
                 "n_envs=2 (processes)": _two_processes(in_child_pair, task_name, args.device, args.steps,
                                                        max(cores // 2, 1), root)}
            for k in ks:
                r[f"population K={k}"] = in_child(measure, task_name, args.device, k, args.steps, threads, root)
            rounds.append(r)
        for setup in rounds[0]:
            rates = [r[setup]["steps_per_s"] for r in rounds]
            ratios = [r[setup]["steps_per_s"] / r["n_envs=1"]["steps_per_s"] for r in rounds]
            mem = statistics.median(r[setup]["mib_per_member"] for r in rounds)
            lines.append(f"| {task_name} | {setup} | {statistics.median(rates):,.0f} | {statistics.median(ratios):.2f}; "
                         f"{', '.join(f'{x:.2f}' for x in ratios)} | {mem:,.2f} |")
    if args.learning:
        lines += ["", learning_section(args, ks, in_child, measure_n_envs)]
    if args.seeds:
        lines += ["", seeds_section(args, ks, in_child)]
    return "\n".join([*lines, ""])


def measure_seeds(device_name, k, how, epochs, queue):
    """Child process: seconds to train `k` seeds of `controller=adam` on polynomial, `how` = `one at a time`,
    `processes` or `population`."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from rlopt.paths import conf_dir
    from rlopt.train import train

    def cfg(*extra):
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            return compose(config_name="train", overrides=[
                "controller=adam", "dataset=polynomial", f"trainer.epochs={epochs}", f"trainer.device={device_name}",
                "trainer.progress=false", "trainer.plots=false", "trainer.tensorboard=false", *extra])

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if how == "one at a time":
            for seed in range(k):
                train(cfg(f"seed={seed}"), Path(tmp) / f"s{seed}")
        else:
            summaries = train(cfg(f"runs={k}", f"controller.vectorize={how}"), Path(tmp))
            assert k == 1 or len(summaries) == k
        seconds = time.perf_counter() - started
    queue.put({"seconds": seconds, "runs_per_hour": k * 3600 / seconds})


def seeds_section(args, ks, in_child) -> str:
    """Runs per hour of a baseline's K seeds: one at a time, K processes, one population (see the module docstring)."""
    lines = [f"Runs per hour of a fixed baseline's seeds, `rlopt train controller=adam dataset=polynomial runs=K`, "
             f"{args.run_epochs} epochs per run, end to end in a child process per measurement; {args.rounds} "
             "interleaved rounds, ratio to one at a time paired within each round:", "",
             "| K | setup | runs / hour (median) | / one at a time (median; each round) |", "|---|---|---|---|"]
    for k in ks:
        setups = ["one at a time", *(["processes"] if k <= 8 else []), "population"]
        rounds = [{how: in_child(measure_seeds, args.device, k, how, args.run_epochs) for how in setups}
                  for _ in range(args.rounds)]
        for how in setups:
            rates = [r[how]["runs_per_hour"] for r in rounds]
            ratios = [r[how]["runs_per_hour"] / r["one at a time"]["runs_per_hour"] for r in rounds]
            label = {"one at a time": "runs=1, K times", "processes": f"runs={k} (processes)",
                     "population": f"runs={k} controller.vectorize=population"}[how]
            lines.append(f"| {k} | {label} | {statistics.median(rates):,.0f} | {statistics.median(ratios):.2f}; "
                         f"{', '.join(f'{x:.2f}' for x in ratios)} |")
    return "\n".join(lines)


def learning_section(args, ks, in_child, measure_n_envs) -> str:
    """Learning runs per hour on polynomial, or across the instance set `--instances` (each run its drawn
    instance's budget), the agent (ppo_lr) included, decisions every 10 steps; `--rounds` interleaved rounds of
    every setup, each ratio paired within its round (the machine's speed drifts by more than some effects)."""
    task = (f"across `instances={args.instances}` (each run the budget of the instance it draws)" if args.instances
            else f"polynomial/maclaurin, {args.run_epochs} epochs per run")
    runs = args.episodes or 2 * max(ks)
    lines = [f"Learning runs per hour, {task}, `controller=ppo_lr`, a decision every 10 optimizer steps, PPO minibatch "
             f"= the whole rollout (8 x K), {runs} runs in every setup ({'--episodes' if args.episodes else '2 x the largest K'}"
             ", n_envs=1 too, so start-up weighs alike); steady state: from the first batched step's rows to the last, "
             f"without start-up; {args.rounds} interleaved round(s), rates the median of rounds, ratios to n_envs=1 paired "
             "within each round (median; each round):",
             "",
             "| setup | runs / hour | / n_envs=1 | steady runs / hour | / n_envs=1 |", "|---|---|---|---|---|"]
    setups = [("n_envs=1", 1, []), ("n_envs=2 (processes)", 2, [])]
    setups += [(f"population K={k}", k, ["controller.vectorize=population"]) for k in ks if k > 1]
    common = ["env.steps_per_action=10", "dataset.train_subset=null",
              *([f"instances={args.instances}"] if args.instances else [])]
    rounds = [{label: in_child(measure_n_envs, args.device, k, runs, args.run_epochs, None, "polynomial", "ppo_lr",
                               [*common, f"controller.hyperparams.batch_size={8 * k}", *extra])
               for label, k, extra in setups} for _ in range(args.rounds)]

    def cells(label, key):
        rates = [r[label][key] for r in rounds]
        ratios = [r[label][key] / r["n_envs=1"][key] for r in rounds]
        each = f" ({', '.join(f'{x:.2f}' for x in ratios)})" if len(rounds) > 1 else ""
        return f"{statistics.median(rates):,.0f} | {statistics.median(ratios):.2f}{each}"

    for label, _, _ in setups:
        lines.append(f"| {label} | {cells(label, 'runs_per_hour')} | {cells(label, 'steady_per_hour')} |")
    return "\n".join(lines)


def one_process_section(args, machine) -> str:
    """`--one-process`: every measurement in this process on one thread, timed in this process's CPU time,
    which the other processes of a loaded, shared machine barely move (wall time there measures the load).
    n_envs=2 is not measured this way: two processes on two free cores do at most 2x n_envs=1."""
    ks = [int(k) for k in args.population.split(",")]
    root = args.data_root
    tasks = [t for t in (args.tasks.split(",") if args.tasks else TASKS) if t != "mnist/mlp 10k" or (root / "MNIST").is_dir()]
    lines = [f"## Population mode on {args.device}, one process, CPU time ({date.today()})", "",
             f"Machine: {machine()}; load average (1/5/15 min) at the start: "
             f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())}: a shared machine, other helpers' work ran alongside, "
             "so the times are this process's CPU time on one thread, not wall time.  ",
             f"Command: `{' '.join(['python scripts/bench.py', *sys.argv[1:]])}`; {args.rounds} interleaved rounds, "
             f"{args.steps} timed steps each (after a tenth as warm-up), Adam, fp32.", "",
             "| task | setup | member steps / CPU-s (median) | / n_envs=1 (paired; each round) | wall steps/s "
             "(loaded machine) | MiB / member (weights + optimizer state) |", "|---|---|---|---|---|---|"]
    for task_name in tasks:
        rounds = []
        for _ in range(args.rounds):
            r = {"n_envs=1 (single-run engine)": _in_this_process(measure, task_name, args.device, 0, args.steps, 1, root)}
            for k in ks:
                r[f"population K={k}"] = _in_this_process(measure, task_name, args.device, k, args.steps, 1, root)
            rounds.append(r)
        for setup in rounds[0]:
            rates = [r[setup]["steps_per_cpu_s"] for r in rounds]
            ratios = [r[setup]["steps_per_cpu_s"] / r["n_envs=1 (single-run engine)"]["steps_per_cpu_s"] for r in rounds]
            lines.append(f"| {task_name} | {setup} | {statistics.median(rates):,.0f} | {statistics.median(ratios):.2f}; "
                         f"{', '.join(f'{x:.2f}' for x in ratios)} | "
                         f"{statistics.median(r[setup]['steps_per_s'] for r in rounds):,.0f} | "
                         f"{statistics.median(r[setup]['mib_per_member'] for r in rounds):.3f} |")
    return "\n".join([*lines, ""])
