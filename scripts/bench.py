"""Benchmarks of rlopt's training engine, measured side by side in one process tree.

    python scripts/bench.py                       # CPU: small_cnn on MNIST (real data if found, else MNIST-shaped)
    python scripts/bench.py --case resnet18_cifar # GPU: ResNet-18 on CIFAR-shaped random data
    python scripts/bench.py --write BENCHMARKS.md # also append the results as a section there
    python scripts/bench.py --case n_envs         # training runs learned per hour with controller.n_envs=1,2 (CPU)
    python scripts/bench.py --case n_envs --n-envs 1,2,4,8 --device cuda   # the same, K runs sharing one GPU
    python scripts/bench.py --optimizers          # every optimizer of the bank: epoch time and gradient evaluations / SGD's
    python scripts/bench.py --case population     # K runs as one vectorised model vs processes (scripts/bench_population.py)

Each case measures, with the same model, batch size and optimizer:
  1. rlopt's training epoch vs. a plain-PyTorch reference (torchvision Dataset + DataLoader +
     transforms, the usual tutorial loop, fp32) -> speed ratio and images/s, for rlopt as a user
     gets it (`trainer.amp=auto`: bf16 autocast on CUDA and on CPUs with native bf16) and in fp32
     (`trainer.amp=false`), and on CPU also in fp32 with glibc's malloc defaults (the data path
     alone, without `rlopt.cpu_memory`), which separates the gains; and rlopt's validation pass,
     to show what evaluation adds;
  2. SAM epoch / SGD epoch in rlopt's engine;
  3. controller overhead: `rlopt train` on the embedded default (digits), `ppo_3opt` vs the fixed
     `sgd` controller (share of wall time spent in predict + learn, and the wall-time ratio),
     one pair of runs per round, the median round reported;
  4. peak memory of each (CUDA: max allocated; CPU: the child process's peak RSS).
With `--optimizers` it measures instead, for each optimizer of the bank on the same model and batch, the
training epoch time relative to SGD's (paired within a round), the gradient evaluations per optimizer step
(the SAM family: 2, LookSAM and sam_every_k fewer), and the optimizer's state in bytes per parameter
(everything it keeps in `optimizer.state`: moments, z, Prodigy's p0 and s, LookSAM's direction, ...).
Every measurement runs in a fresh child process (spawn) so peak memory is per measurement.

`--case n_envs` instead measures an agent learning from K training runs at once (`controller.n_envs`):
`rlopt train controller=ppo_2opt controller.episodes=E controller.n_envs=K` for each K of `--n-envs`
(`--controller` another agent, `--set KEY=VALUE ...` further overrides, e.g. a dataset subset),
interleaved over `--rounds`, reporting training runs learned per hour (E / the learning phase's
wall time, worker start-up included), the speed-up over K=1 (paired within each round), the share
of the learning time the agent waited in the workers' step, the share the sub-environments idled
waiting for the slowest of each batched step, and (CUDA) each worker's peak GPU memory.
Epoch times are medians over `--repeats` epochs after one warm-up epoch, best of `--rounds`
interleaved rounds. Ratios are taken within each round, where both sides ran minutes apart, and
reported as their median with every round's value beside it; CUDA times use CUDA events.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CASES = {
    # name: dataset, model, batch size, training images, default device
    "small_cnn_mnist": {"dataset": "mnist", "model": "small_cnn", "batch": 128, "n": 20000, "shape": (1, 28, 28)},
    "resnet18_cifar": {"dataset": "cifar10", "model": "resnet18", "batch": 512, "n": 50000, "shape": (3, 32, 32)},
}
MEAN_STD = {"mnist": ((0.1307,), (0.3081,)), "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}


class Timer:
    """Wall time of a block; on CUDA measured with events around the work."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds = time.perf_counter() - self.t0


class CpuTimer:
    """This process's CPU time over a block (user + system): on a shared CPU, what the work itself costs."""

    def __enter__(self):
        self.t0 = time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.process_time() - self.t0


def _raw_images(case: dict, data_root: Path | None):
    """uint8 images and labels: real MNIST when available, else random data of the right shape."""
    if case["dataset"] == "mnist" and data_root is not None and (data_root / "MNIST" / "raw").is_dir():
        import torchvision

        ds = torchvision.datasets.MNIST(str(data_root), train=True, download=False)
        return ds.data[: case["n"]].unsqueeze(1).contiguous(), ds.targets[: case["n"]].clone(), "real MNIST"
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (case["n"], *case["shape"]), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 10, (case["n"],), generator=gen)
    return x, y, f"random {case['dataset']}-shaped data"


def _peak_memory(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux


def _bundle(case, x, y, device):
    from rlopt.data import DataBundle, Split
    from rlopt.data.transforms import DeviceTransform

    mean, std = MEAN_STD[case["dataset"]]
    n_val = len(y) // 10
    transform = DeviceTransform(mean, std, 255.0, augment=case["dataset"] != "mnist", device=device)
    if device.type == "cuda" and case["model"] == "resnet18":
        transform.memory_format = torch.channels_last
    return DataBundle(case["dataset"], "classification", Split(x[n_val:].to(device), y[n_val:].to(device)),
                      Split(x[:n_val].to(device), y[:n_val].to(device)), Split(x[:1].to(device), y[:1].to(device)),
                      10, tuple(x.shape[1:]), transform)


def _model(case, device, compile_: bool):
    from omegaconf import OmegaConf

    from rlopt.models import build_model

    torch.manual_seed(0)
    model = build_model(OmegaConf.create({"name": case["model"]}), case["dataset"], case["shape"], 10).to(device)
    if device.type == "cuda" and case["model"] == "resnet18":
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile_ else model


def measure_rlopt(case, device_name, optimizer, repeats, data_root, compile_, amp, malloc_defaults, queue):
    """Child process: rlopt's engine, one optimizer and precision (`trainer.amp`), train epochs and validation
    passes. On CPU the process keeps freed memory as `rlopt train` does, unless `malloc_defaults`."""

    from rlopt.cpu_memory import keep_freed_memory
    from rlopt.engine import Trainer
    from rlopt.optim import OptimizerBank

    device = torch.device(device_name)
    if device.type == "cpu" and not malloc_defaults:
        keep_freed_memory()
    x, y, source = _raw_images(case, data_root)
    data = _bundle(case, x, y, device)
    model = _model(case, device, compile_)
    bank = OptimizerBank(model.parameters, [optimizer], bank_config())
    trainer = Trainer(model, data, bank, device, case["batch"], 1024, amp=amp, seed=0)
    timer = Timer(device)
    train_times, eval_times = [], []
    for i in range(repeats + 1):
        with timer:
            trainer.train(trainer.batches_per_epoch)
        train_t = timer.seconds
        with timer:
            trainer.evaluate(data.val)
        if i:  # the first epoch warms up kernels, caches and compilation
            train_times.append(train_t)
            eval_times.append(timer.seconds)
    queue.put({"train_s": statistics.median(train_times), "eval_s": statistics.median(eval_times),
               "images": len(data.train), "peak_mib": _peak_memory(device), "source": source,
               "precision": "bf16 autocast" if trainer.bf16 else "fp32"})


def bank_config():
    """The optimizer bank's nodes (`optim`) as `rlopt train` composes them: conf/optim/, listed in train.yaml."""
    from hydra import compose, initialize_config_dir

    from rlopt.schema import register

    register()  # the schemas train.yaml's groups name
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train").optim


def _state_bytes(opt: torch.optim.Optimizer) -> float:
    """Bytes the optimizer keeps per trainable parameter between steps: its per-parameter state tensors and,
    for the SAM family, its base optimizer's (LookSAM also keeps its sharpness direction)."""
    n = sum(p.numel() for group in opt.param_groups for p in group["params"])
    base = getattr(opt, "base", None) or getattr(opt, "base_optimizer", None)
    states = [opt.state] + ([base.state] if base is not None and base.state is not opt.state else [])
    kept = sum(v.numel() * v.element_size() for st in states for state in st.values() for v in state.values()
               if torch.is_tensor(v))
    return kept / n


class ImageDataset(torch.utils.data.Dataset):
    """uint8 images decoded to PIL per item, as torchvision.datasets.MNIST/CIFAR10 do, then transformed."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        img = self.x[i]
        pil = Image.fromarray(img[0].numpy(), mode="L") if img.shape[0] == 1 else Image.fromarray(img.permute(1, 2, 0).numpy())
        return self.transform(pil), int(self.y[i])


def measure_reference(case, device_name, repeats, data_root, queue):
    """Child process: the plain-PyTorch loop of the tutorials (torchvision Dataset + DataLoader + transforms)."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    device = torch.device(device_name)
    x, y, source = _raw_images(case, data_root)
    mean, std = MEAN_STD[case["dataset"]]
    steps = [T.RandomCrop(case["shape"][1], padding=4), T.RandomHorizontalFlip()] if case["dataset"] != "mnist" else []
    transform = T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])
    n_val = len(y) // 10

    loader = DataLoader(ImageDataset(x[n_val:], y[n_val:], transform), batch_size=case["batch"], shuffle=True, num_workers=2,
                        pin_memory=device.type == "cuda", persistent_workers=True)
    model = _model(case, device, False)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    timer = Timer(device)
    times = []
    for i in range(repeats + 1):
        model.train()
        with timer:
            for xb, yb in loader:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
        if i:
            times.append(timer.seconds)
    queue.put({"train_s": statistics.median(times), "images": len(y) - n_val, "peak_mib": _peak_memory(device),
               "source": source})


def measure_controller(device_name, controller, epochs, queue):
    """Child process: a whole `rlopt train` run on the embedded default (digits), as a user runs it."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from rlopt.paths import conf_dir
    from rlopt.train import train

    overrides = [f"controller={controller}", f"trainer.epochs={epochs}", f"trainer.device={device_name}",
                 "trainer.progress=false", "trainer.plots=false"]
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(cfg, Path(tmp))
    queue.put({"wall_s": summary["wall_time_s"], "controller_share": summary["controller_time_share"],
               "epoch_median_s": summary["epoch_time_s"]["median"], "peak_mib": _peak_memory(torch.device(device_name))})


def measure_n_envs(device_name, n_envs, episodes, epochs, threads, dataset, controller, extra, queue):
    """Child process: `rlopt train` learning over `episodes` runs, `n_envs` at a time; the learning phase ends
    when the final run's first row comes (less that row's own step), which a row observer notes."""
    import tempfile

    import pandas as pd
    from hydra import compose, initialize_config_dir

    from rlopt.paths import conf_dir
    from rlopt.train import train

    overrides = [f"controller={controller}", f"controller.episodes={episodes}", f"controller.n_envs={n_envs}",
                 f"trainer.epochs={epochs}", f"trainer.device={device_name}", f"dataset={dataset}",
                 "trainer.progress=false", "trainer.plots=false", "trainer.tensorboard=false",
                 *([f"trainer.threads={threads}"] if threads else []), *extra]
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    import rlopt.run.recorder

    first_row, learning_rows = {}, []
    on_step = rlopt.run.recorder.RunRecorder.on_step

    def timed(recorder, row):  # when each learning row reached the main process
        on_step(recorder, row)
        if recorder.filename == "learning_metrics.csv":
            learning_rows.append(time.perf_counter())

    rlopt.run.recorder.RunRecorder.on_step = timed

    def observer(row):
        if not first_row:
            own = row["epoch_time_s"] + row["controller_time_s"] + row["checkpoint_time_s"]
            first_row.update(at=time.perf_counter(), own=own)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = train(cfg, Path(tmp), observers=[observer])
        learning = pd.read_csv(Path(tmp) / "learning_metrics.csv")
    learn_s = first_row["at"] - first_row["own"] - started
    # steady state: from the first batched step's rows to the last, scaled to all batched steps
    batched = len(learning_rows) // n_envs
    steady_s = (learning_rows[-1] - learning_rows[n_envs - 1]) * batched / (batched - 1)
    # consecutive n_envs rows are one batched step: how long each sub-environment idled for the slowest
    steps = learning["epoch_time_s"].to_numpy().reshape(-1, n_envs)
    idle = float((steps.max(axis=1, keepdims=True) - steps).sum() / (steps.max(axis=1).sum() * n_envs))
    queue.put({"learn_s": learn_s, "runs_per_hour": episodes * 3600 / learn_s, "idle_share": idle,
               "steady_per_hour": episodes * 3600 / steady_s, "startup_s": learn_s - steady_s,
               "wait_share": summary.get("learning_wait_share"), "gpu_mib": summary.get("learning_gpu_peak_memory_mb")})


def _spin(_) -> float:
    """A fixed pure-Python CPU load; its seconds."""
    started, x = time.perf_counter(), 0
    for i in range(10_000_000):
        x += i
    return time.perf_counter() - started


def machine_parallelism(k: int) -> float:
    """How much more CPU work k processes get done at once than one alone, right now: the ceiling of any
    k-way speed-up on this machine (a shared machine gives less than k; Linux's autogroup scheduling
    shares the CPU between sessions, not processes)."""
    with mp.get_context("spawn").Pool(k) as pool:
        pool.map(_spin, range(k))  # warm
        one = pool.map(_spin, [0])[0]
        started = time.perf_counter()
        pool.map(_spin, range(k))
        return k * one / (time.perf_counter() - started)


def bench_n_envs(args) -> None:
    """The `--case n_envs` table (see the module docstring)."""
    ks = [int(k) for k in args.n_envs.split(",")]
    episodes = args.episodes or max(ks) * 2
    rounds = []
    for _ in range(args.rounds):
        rounds.append({k: in_child(measure_n_envs, args.device, k, episodes, args.run_epochs, args.threads, args.dataset,
                                   args.controller, args.set)
                       for k in ks})
        rounds[-1]["ceiling"] = machine_parallelism(max(ks))
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    command = " ".join(["python scripts/bench.py", *sys.argv[1:]])
    lines = [f"## n_envs on {args.device} ({date.today()})", "", f"Machine: {machine()}; load average (1/5/15 min) "
             f"at the end: {load}.  ", f"Work: {args.controller} learning over {episodes} runs of {args.run_epochs} epochs on "
             f"{' '.join([args.dataset, *args.set])}, trainer.threads={args.threads or 'default (cores / K)'}, "
             f"{args.rounds} interleaved rounds.  ",
             f"Command: `{command}`", "",
             "| K | runs learned / hour, whole learning phase (median; each round) | speed-up over K=1 (paired; "
             "each round) | steady state, start-up excluded: speed-up (each round) | start-up s | agent waiting "
             "| sub-envs idle for the slowest | peak GPU memory per run |", "|---|---|---|---|---|---|---|---|"]

    def cells(values, fmt):
        return f"{statistics.median(values):{fmt}}; {', '.join(f'{v:{fmt}}' for v in values)}"

    for k in ks:
        rates = [r[k]["runs_per_hour"] for r in rounds]
        ups = [r[k]["runs_per_hour"] / r[ks[0]]["runs_per_hour"] for r in rounds]
        steady = [r[k]["steady_per_hour"] / r[ks[0]]["steady_per_hour"] for r in rounds]
        waits = [r[k]["wait_share"] for r in rounds if r[k]["wait_share"] is not None]
        gpu = rounds[-1][k]["gpu_mib"]
        lines.append(f"| {k} | {cells(rates, ',.0f')} | {cells(ups, '.2f')} | {cells(steady, '.2f')} "
                     f"| {statistics.median(r[k]['startup_s'] for r in rounds):.1f} "
                     f"| {f'{statistics.median(waits):.0%}' if waits else 'n/a (in-process)'} "
                     f"| {statistics.median(r[k]['idle_share'] for r in rounds):.1%} "
                     f"| {', '.join(f'{m:,.0f} MiB' for m in gpu) if gpu and gpu[0] is not None else 'n/a'} |")
    ceilings = [r["ceiling"] for r in rounds]
    lines += ["", f"Ceiling: {max(ks)} processes spinning a pure-Python loop at once got {cells(ceilings, '.2f')}x "
              "the work of one done (median; each round, measured right after that round's runs)."]
    text = "\n".join([*lines, ""])
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + text)


def in_child(fn, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=fn, args=(*args, queue))
    proc.start()
    while True:  # a child that dies (exception, OOM) must not leave the parent waiting forever
        try:
            result = queue.get(timeout=5)
            break
        except Exception:
            if not proc.is_alive():
                raise RuntimeError(f"{fn.__name__} failed in its child process (exit code {proc.exitcode})") from None
    proc.join()
    return result


def in_children(fn, args: tuple, n: int = 2) -> list:
    """`fn(*args)` in `n` child processes at once; their results in order."""
    ctx = mp.get_context("spawn")
    queues = [ctx.Queue() for _ in range(n)]
    procs = [ctx.Process(target=fn, args=(*args, q)) for q in queues]
    for proc in procs:
        proc.start()
    results = [q.get(timeout=3600) for q in queues]
    for proc in procs:
        proc.join()
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()}: {mp.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}"


def measure_optimizers(case, device_name, names, cycles, data_root, queue):
    """Child process: one model per optimizer (same initial weights), their training epochs interleaved
    (sgd, sam, ..., sgd, sam, ...) so that load drifting on a shared machine hits all alike. On CPU it
    runs on one thread and measures that process's CPU time, which other processes' load barely moves."""
    from rlopt.cpu_memory import keep_freed_memory
    from rlopt.engine import Trainer
    from rlopt.optim import OptimizerBank

    device = torch.device(device_name)
    if device.type == "cpu":
        keep_freed_memory()
        torch.set_num_threads(1)
    x, y, source = _raw_images(case, data_root)
    data = _bundle(case, x, y, device)
    optim_cfg = bank_config()
    trainers = {}
    for name in names:
        model = _model(case, device, False)
        trainers[name] = Trainer(model, data, OptimizerBank(model.parameters, [name], optim_cfg), device,
                                 case["batch"], 1024, amp="auto", seed=0)
        trainers[name].train(trainers[name].batches_per_epoch)  # warm-up epoch
    timer = Timer(device) if device.type == "cuda" else CpuTimer()
    times = {name: [] for name in names}
    for _ in range(cycles):
        for name, trainer in trainers.items():
            with timer:
                trainer.train(trainer.batches_per_epoch)
            times[name].append(timer.seconds)
    evals = {name: t.grad_evals / t.opt_steps for name, t in trainers.items()}  # per optimizer step, warm-up included
    # the SAM family's step evaluates gradients itself: not isolable from them
    step_times = {name: [] for name in names if not trainers[name].bank.takes_closure}
    for trainer in trainers.values():  # one gradient per model, kept for the isolated steps below
        trainer.bank.current.zero_grad()
        trainer._loss(*trainer._next_batch()).backward()
    for _ in range(cycles):
        for name in step_times:
            bank = trainers[name].bank
            with bank.training(), timer:
                for _ in range(20):
                    bank.current.step()
            step_times[name].append(timer.seconds / 20)
    clock = "CUDA events" if device.type == "cuda" else "CPU time, 1 thread"
    state = {n: _state_bytes(t.bank.current) for n, t in trainers.items()}
    queue.put({"times": times, "step_times": step_times, "evals": evals, "clock": clock, "state": state,
               "images": len(data.train), "source": source, "precision": "bf16 autocast" if trainers[names[0]].bf16 else "fp32"})


def optimizer_section(args, case, root) -> str:
    """Each optimizer of the bank on the same model and batch: epoch time relative to SGD's (each cycle of
    interleaved epochs gives one ratio; their median and spread), gradient evaluations per optimizer step
    (SGD's: 1), the isolated optimizer step and optimizer state bytes per parameter."""
    names = list(bank_config())
    m = in_child(measure_optimizers, case, args.device, names, args.repeats * args.rounds, root)
    sgd = m["times"]["sgd"]
    lines = ["| optimizer | epoch time (median) | epoch / SGD's: median [min, max] | gradient evaluations / step "
             "(SGD: 1) | optimizer.step() alone | step / SGD's: median [min, max] | state bytes / parameter |",
             "|---|---|---|---|---|---|---|"]

    def ratio(values, reference):
        r = [v / a for v, a in zip(values, reference)]
        return f"{statistics.median(r):.2f} [{min(r):.2f}, {max(r):.2f}]"

    for name in names:
        steps = m["step_times"].get(name)
        step_cols = (f"{statistics.median(steps) * 1e3:.2f} ms | {ratio(steps, m['step_times']['sgd'])}" if steps
                     else "n/a (its step evaluates gradients) | n/a")
        lines.append(f"| {name} | {statistics.median(m['times'][name]):.3f} s | {ratio(m['times'][name], sgd)} | "
                     f"{m['evals'][name]:.2f} | {step_cols} | {m['state'][name]:.1f} |")
    command = " ".join(["python scripts/bench.py", *sys.argv[1:]])
    return "\n".join([f"## Optimizers of the bank: {args.case} on {args.device} ({date.today()})", "",
                      f"Machine: {machine()}.  ", f"Data: {m['source']}, {m['images']} training images, batch "
                      f"{case['batch']}, {m['precision']}; {len(sgd)} interleaved cycles of one epoch per optimizer; "
                      f"{m['clock']}.  ",
                      f"Command: `{command}`", "", *lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=[*CASES, "n_envs", "population"], default="small_cnn_mnist")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per measurement (after 1 warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every measurement")
    parser.add_argument("--images", type=int, help="training images (default: the case's)")
    parser.add_argument("--controller-epochs", type=int, default=30, help="epochs of the digits runs (3.)")
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--compile", action="store_true", help="also time rlopt with torch.compile")
    parser.add_argument("--write", type=Path, help="append the results as a section of this markdown file")
    parser.add_argument("--n-envs", default="1,2", help="n_envs case: the K values, comma-separated")
    parser.add_argument("--episodes", type=int, help="n_envs case and population --learning: learning runs "
                                                      "(default 2 x the largest K)")
    parser.add_argument("--run-epochs", type=int, default=10, help="n_envs case: epochs per training run")
    parser.add_argument("--threads", type=int, help="n_envs case: trainer.threads (default: cores / K)")
    parser.add_argument("--dataset", default="digits", help="n_envs case: the dataset")
    parser.add_argument("--controller", default="ppo_2opt", help="n_envs case: the agent")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="n_envs case: more rlopt train overrides")
    parser.add_argument("--optimizers", action="store_true", help="time every optimizer of the bank against Adam instead")
    parser.add_argument("--population", default="1,8,32,128,256", help="population case: the K values")
    parser.add_argument("--steps", type=int, default=200, help="population case: timed optimizer steps")
    parser.add_argument("--learning", action="store_true", help="population case: also learning runs per hour")
    parser.add_argument("--seeds", action="store_true", help="population case: also a baseline's runs=K seeds per hour")
    parser.add_argument("--instances", help="population case: only learning runs per hour, across this instance set")
    parser.add_argument("--tasks", help="population case: some of the tasks, comma-separated (default: all)")
    parser.add_argument("--one-process", action="store_true",
                        help="population case: measure in this process, in CPU time (a loaded, shared machine)")
    args = parser.parse_args()
    if args.case == "n_envs":
        bench_n_envs(args)
        return
    if args.case == "population":
        from bench_population import bench_population

        text = bench_population(args, in_child, in_children, machine, measure_n_envs)
        print(text)
        if args.write:
            with open(args.write, "a") as f:
                f.write("\n" + text)
        return
    case = dict(CASES[args.case])
    if args.images:
        case["n"] = args.images
    root = args.data_root if args.data_root.is_dir() else None
    if args.optimizers:
        text = optimizer_section(args, case, root)
        print(text)
        if args.write:
            with open(args.write, "a") as f:
                f.write("\n" + text)
        return

    # Interleaved rounds (ref, sgd, fp32, sam, ref, ...) so drifting machine load hits all alike. Times
    # are the fastest round; each ratio is also computed within every round (paired measurements),
    # and the spread over rounds is printed beside it.
    runs = {
        "ref": lambda: in_child(measure_reference, case, args.device, args.repeats, root),
        "sgd": lambda: in_child(measure_rlopt, case, args.device, "sgd", args.repeats, root, False, "auto", False),
        "fp32": lambda: in_child(measure_rlopt, case, args.device, "sgd", args.repeats, root, False, False, False),
        "malloc": lambda: in_child(measure_rlopt, case, args.device, "sgd", args.repeats, root, False, False, True),
        "sam": lambda: in_child(measure_rlopt, case, args.device, "sam", args.repeats, root, False, "auto", False),
        "fixed": lambda: in_child(measure_controller, args.device, "sgd", args.controller_epochs),
        "ppo": lambda: in_child(measure_controller, args.device, "ppo_3opt", args.controller_epochs),
    }
    if args.device != "cpu":  # glibc's thresholds matter to CPU tensors only
        del runs["malloc"]
    rounds = [{name: run() for name, run in runs.items()} for _ in range(args.rounds)]
    epochs = [k for k in ("ref", "sgd", "fp32", "malloc", "sam") if k in runs]
    best = {k: min((r[k] for r in rounds), key=lambda m: m["train_s"]) for k in epochs}
    ref, sgd, fp32, sam = best["ref"], best["sgd"], best["fp32"], best["sam"]
    by_share = sorted(rounds, key=lambda r: r["ppo"]["controller_share"])
    median_round = by_share[(len(by_share) - 1) // 2]  # the digits runs' row: a real round, the (lower) median one
    fixed, ppo = median_round["fixed"], median_round["ppo"]
    compiled = (in_child(measure_rlopt, case, args.device, "sgd", args.repeats, root, True, "auto", False)
                if args.compile else None)

    def epoch_row(label, m):
        return (label, f"{m['train_s']:.3f} s", f"{m['images'] / m['train_s']:,.0f} img/s", f"{m['peak_mib']:,.0f} MiB")

    rows = [
        epoch_row("reference epoch (DataLoader, 2 workers, fp32)", ref),
        epoch_row(f"rlopt epoch, SGD, `trainer.amp=auto` ({sgd['precision']})", sgd),
        epoch_row("rlopt epoch, SGD, `trainer.amp=false` (fp32)", fp32),
        *([epoch_row("rlopt epoch, SGD, fp32, glibc malloc defaults", best["malloc"])] if "malloc" in best else []),
        ("rlopt validation pass", f"{sgd['eval_s']:.3f} s", f"{sgd['eval_s'] / sgd['train_s']:.1%} of an epoch", ""),
        epoch_row(f"rlopt epoch, SAM ({sam['precision']})", sam),
    ]
    if compiled:
        rows.append(epoch_row(f"rlopt epoch, SGD, torch.compile ({compiled['precision']})", compiled))
    rows += [
        (f"`rlopt train controller=sgd` (digits), {args.controller_epochs} epochs", f"{fixed['wall_s']:.2f} s",
         f"controller share {fixed['controller_share']:.2%}", f"{fixed['peak_mib']:,.0f} MiB"),
        (f"`rlopt train controller=ppo_3opt` (digits), {args.controller_epochs} epochs", f"{ppo['wall_s']:.2f} s",
         f"controller share {ppo['controller_share']:.2%}", f"{ppo['peak_mib']:,.0f} MiB"),
    ]

    def paired(label, fn, fmt):
        """A ratio taken within each round (both sides measured minutes apart): median, then every round."""
        values = [fn(r) for r in rounds]
        return label, format(statistics.median(values), fmt), ", ".join(format(v, fmt) for v in values)

    def speed_up(key):
        return lambda r: r["ref"]["train_s"] / r[key]["train_s"]

    ratios = [
        paired("speed-up over the reference epoch (amp=auto)", speed_up("sgd"), ".2f"),
        paired("speed-up over the reference epoch (fp32)", speed_up("fp32"), ".2f"),
        *([paired("speed-up over the reference epoch (fp32, malloc defaults: the data path alone)", speed_up("malloc"), ".2f")]
          if "malloc" in best else []),
        paired("SAM / SGD epoch time", lambda r: r["sam"]["train_s"] / r["sgd"]["train_s"], ".2f"),
        paired("controller overhead (ppo_3opt, predict + learn, share of wall time)",
               lambda r: r["ppo"]["controller_share"], ".2%"),
        paired("ppo_3opt / sgd wall time", lambda r: r["ppo"]["wall_s"] / r["fixed"]["wall_s"], ".2f"),
    ]
    command = " ".join(["python scripts/bench.py", *sys.argv[1:]])
    lines = [f"## {args.case} on {args.device} ({date.today()})", "", f"Machine: {machine()}.  ",
             f"Data: {sgd['source']}, {sgd['images']} training images, batch {case['batch']}.  ",
             f"Command: `{command}`", "", "| measurement | time | rate / share | peak memory |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", "| ratio (paired within a round) | median | each round |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in ratios] + [""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
