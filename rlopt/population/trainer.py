"""`PopulationTrainer`: K training runs of one architecture as one vectorised model (torch.func).

Member k's weights are row k of one (K, P) tensor; the model runs through `functional_call` on views of
it, vmapped over the members (`vmap(functional_call)`), gradients come from one backward of the members' summed
loss (each member's loss depends on its own row only), and the batched optimizers of
`rlopt.population.optimizers` update every row at once. Each member keeps what a single run
(`rlopt.engine.Trainer`) has: its own initial weights (built from its run seed, as the single run
builds them), its own batch order (a generator seeded with the run seed, drawing the same
permutations), its own optimizer choice, learning rates, optimizer states and counters. Members may
be at different points of their runs (one that diverged starts again while the others go on): a round
of `train` takes each member's own number of steps, and a member whose steps are done stays untouched.

Members may also train different Tasks of one architecture (`init_member(k, seed, task)`: an instance
set's instances): each its own data (read from `StackedData`, all members' examples in one tensor), batch
size, budget, optimizer hyperparameters and validation split. Batches of different sizes are padded to
the largest with weight-0 rows, and each member's loss is the mean over its own rows: one batched
gradient computation for all, exact up to float32 rounding (the single run's mean sums its rows in another
order), at the price of computing the padding (a member with batch 16 beside one with 64 pays for 64).

What it refuses, in one line: models with buffers (BatchNorm's running statistics) or random layers
(dropout draws from the global random stream, which K members cannot share with K single runs), and
optimizers it does not batch (see `rlopt.population.optimizers.BATCHED`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from rlopt.data import Split
from rlopt.engine import use_bf16
from rlopt.errors import UserError
from rlopt.models import model_name
from rlopt.population.optimizers import BatchedSAM, build_batched, settings
from rlopt.population.scores import macro_scores
from rlopt.population.stacked_data import StackedData
from rlopt.population.stacked_mlp import stacked_mlp
from rlopt.task import Task


def check_batchable(model: nn.Module, model_name: str) -> None:
    """Refuse, in one line, a model whose members could not each equal a single run."""
    if next(model.buffers(), None) is not None:
        raise UserError(f"model={model_name} is not allowed in population mode (controller.vectorize=population): it "
                        "has buffers (BatchNorm statistics); population mode batches MLPs (maclaurin, mlp) and "
                        "BatchNorm-free CNNs (digits_cnn, small_cnn with model.dropout=false)")
    if sum(1 for _ in model.named_parameters(remove_duplicate=False)) != sum(1 for _ in model.parameters()):
        raise UserError(f"model={model_name} is not allowed in population mode (controller.vectorize=population): "
                        "layers share (tie) weights, which the vectorised model does not")
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        raise UserError(f"model={model_name} is not allowed in population mode (controller.vectorize=population): its "
                        "dropout draws from the one global random stream; use model.dropout=false")


def _reset_parameters(module: nn.Module) -> None:
    """Draw every layer's initial weights again, layer by layer in registration order (the order a Sequential's
    construction draws them in)."""
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()


@dataclass
class PopulationStats:
    """Per member, as `engine.TrainStats`: mean training loss of its steps this round, its last step's gradient
    norm (float64) and the learning rate that step used."""

    train_loss: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray


class PopulationTrainer:
    """K runs stepped by their active optimizers among `optimizers` (names of the bank); every member starts
    on `task`, and `init_member` may give one another Task of the same architecture for its next run."""

    def __init__(self, task: Task, optimizers, size: int):
        data = task.data
        self.task, self.data, self.device, self.size = task, data, task.device, int(size)
        self.template = task.new_model().to(self.device)
        check_batchable(self.template, model_name(task.model.name, data.name))
        self.eval_batch_size = task.eval_batch_size  # a trainer setting, not an instance's: one for all members
        self.layout = [(name, p.shape, p.numel()) for name, p in self.template.named_parameters()]
        self.n_params = sum(n for _, _, n in self.layout)
        self.flat = torch.zeros(self.size, self.n_params, device=self.device)
        self.best = torch.zeros_like(self.flat)  # each member's best weights so far (`keep_best`), as its run keeps them
        self._grads = torch.empty_like(self.flat)  # each step's gradients (`_gradients`)
        self.loss_fn = task.loss_fn
        self.bf16 = use_bf16(task.amp, self.device, data.is_classification)
        self.names = list(optimizers)
        self.optimizers = [build_batched(n, task.optim, self.size, self.n_params, self.device) for n in self.names]
        self.active = np.zeros(self.size, dtype=np.int64)  # index into self.names
        self._finite: np.ndarray | None = None  # weights_finite(), computed once per change of the weights
        self.generators = [torch.Generator(device=self.device) for _ in range(self.size)]
        # each member's Task and what the batches read of it: its data among the stacked bundles, sizes, budget
        self.stacked = StackedData()
        self.tasks: list[Task] = [task] * self.size
        self._settings: dict[int, tuple[Task, list[dict]]] = {}  # id(task) -> (task, each optimizer's settings)
        self._reinit: dict[int, tuple[Task, nn.Module | bool]] = {}  # id(task) -> (task, its kept module, or False)
        self.bundle = np.zeros(self.size, dtype=np.int64)
        self.n_train, self.n_val = (np.zeros(self.size, dtype=np.int64) for _ in range(2))
        self.batch_size, self.batches_per_epoch = (np.zeros(self.size, dtype=np.int64) for _ in range(2))
        self.perms = torch.zeros(self.size, len(data.train), dtype=torch.long, device=self.device)
        for k in range(self.size):
            self.assign(k, task)
        self.has_perm = np.zeros(self.size, dtype=bool)
        self.batch_in_epoch = np.zeros(self.size, dtype=np.int64)
        self.opt_steps = np.zeros(self.size, dtype=np.int64)
        self.grad_evals = np.zeros(self.size, dtype=np.int64)
        self.grad_norm = np.zeros(self.size)  # each member's last step's gradient norm (a round of 0 steps keeps it)
        self._mlp = stacked_mlp(self.template)  # an MLP runs as batched matmuls; other models vmapped
        self._vmapped = vmap(self._member_forward)

    # -- members ------------------------------------------------------------------------------------
    def assign(self, k: int, task: Task) -> None:
        """Member k trains `task`: its data, batch size, budget and optimizer hyperparameters (`optim.<name>`,
        the learning rates included). Refused unless `task` has the population's architecture."""
        if task is not self.task and (task.model != self.task.model or task.data.name != self.data.name
                                      or task.data.input_shape != self.data.input_shape
                                      or task.data.num_outputs != self.data.num_outputs):
            raise UserError(f"task {task.name} is not allowed in this population: its model or data shapes differ from "
                            f"{self.task.name}'s (one population trains one architecture; see InstanceSet.groups)")
        self.tasks[k] = task
        self.bundle[k] = self.stacked.add(task.data)
        self.n_train[k], self.n_val[k] = len(task.data.train), len(task.data.val)
        self.batch_size[k], self.batches_per_epoch[k] = task.batch_size, task.batches_per_epoch
        if self.n_train[k] > self.perms.shape[1]:  # a larger training set than any before: room for its order
            self.perms = torch.nn.functional.pad(self.perms, (0, int(self.n_train[k]) - self.perms.shape[1]))
        if id(task) not in self._settings:  # read from the config once per Task (OmegaConf reads take ~0.1 ms each)
            self._settings[id(task)] = task, [settings(name, task.optim) for name in self.names]
        for opt, values in zip(self.optimizers, self._settings[id(task)][1]):
            opt.configure(k, **values)

    def init_member(self, k: int, run_seed: int, task: Task | None = None) -> None:
        """Start member k's run as the single run of `task` (default: the member's current one) with `run_seed`
        starts: its initial weights (drawn as `Task.build_model` draws them, on the CPU), fresh optimizer states
        with the Task's hyperparameters, the first optimizer selected, its batch order. The global random state
        is left as it was, as a worker process of `vectorize=processes` leaves the agent's."""
        self.assign(k, self.tasks[k] if task is None else task)
        agents_stream = torch.get_rng_state()  # this process's random stream is the agent's: left as it was
        try:  # the CPU generator alone draws the initial weights (torch.manual_seed also seeds every device: ms)
            torch.default_generator.manual_seed(int(run_seed))
            self.load_member(k, self._initial_weights(self.tasks[k]))
        finally:
            torch.set_rng_state(agents_stream)
        for opt in self.optimizers:
            opt.reset_member(k)
        self.active[k] = 0
        self.generators[k].manual_seed(int(run_seed))
        self.has_perm[k] = False
        self.batch_in_epoch[k] = self.opt_steps[k] = self.grad_evals[k] = self.grad_norm[k] = 0

    def _initial_weights(self, task: Task) -> dict[str, torch.Tensor]:
        """The weights `task.new_model()` draws from the CPU generator's current state. Re-initialising one kept
        module per Task (each layer's `reset_parameters`, in registration order) draws the same numbers without
        building a module (0.08 ms against 0.56 ms for the polynomial MLP: a member starts a run every few ms);
        the first time for each Task both ways are compared (weights and the generator's state after), and a
        model whose construction draws otherwise keeps being built for every run."""
        kept = self._reinit.get(id(task))
        if kept is None:
            before = torch.default_generator.get_state()
            module = task.new_model()  # the one to keep: its weights are drawn again below
            torch.default_generator.set_state(before)
            built = task.new_model().state_dict()
            after = torch.default_generator.get_state()
            torch.default_generator.set_state(before)
            _reset_parameters(module)
            same = torch.equal(torch.default_generator.get_state(), after) and all(
                torch.equal(value, built[name]) for name, value in module.state_dict().items())
            self._reinit[id(task)] = (task, module if same else False)  # the Task is held: its id stays its own
            torch.default_generator.set_state(after)
            return built
        if kept[1] is False:
            return task.new_model().state_dict()
        _reset_parameters(kept[1])
        return kept[1].state_dict()

    def member_state(self, k: int, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Member k's weights (row k of `flat`, default the current weights) as the single-run model's state_dict
        (copies)."""
        flat = self.flat if flat is None else flat
        return {name: w[0].clone() for name, w in self.weights(flat[k:k + 1]).items()}

    def keep_best(self, k: int) -> None:
        """Keep member k's current weights as its best."""
        self.best[k] = self.flat[k]

    def best_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's best weights (`keep_best`) as a state_dict (copies)."""
        return self.member_state(k, self.best)

    def load_member(self, k: int, state: dict) -> None:
        self._finite = None
        self.flat[k] = torch.cat([state[name].detach().reshape(-1).to(self.flat) for name, _, _ in self.layout])

    def weights(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Views of the stacked weights, one (K, *shape) tensor per parameter of the template."""
        flat = self.flat if flat is None else flat
        parts = flat.split([n for _, _, n in self.layout], dim=1)
        return {name: part.view(len(flat), *shape) for (name, shape, _), part in zip(self.layout, parts)}

    def select(self, k: int, name: str) -> None:
        self.active[k] = self.names.index(name)

    def lr(self, k: int, name: str | None = None) -> float:
        """Member k's learning rate in optimizer `name` (default: its active one)."""
        index = self.active[k] if name is None else self.names.index(name)
        return float(self.optimizers[index].lr[k, 0])

    def set_lr(self, k: int, lr: float) -> None:
        self.optimizers[self.active[k]].lr[k, 0] = float(lr)

    def weights_finite(self) -> np.ndarray:
        """Per member: whether every weight is finite."""
        if self._finite is None:
            self._finite = torch.isfinite(self.flat).all(1).cpu().numpy()
        return self._finite

    # -- the model of one member (vmapped) and the members' losses ---------------------------------------
    def _member_forward(self, weights, x):
        # no tied weights (check_batchable): functional_call need not look for them on every call
        return functional_call(self.template, weights, (x,), tie_weights=False)

    def _forward_each(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Each member's outputs (M, B, outputs) on its own inputs `x` (M, B, *input shape)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return (self._vmapped if self._mlp is None else self._mlp)(weights, x).float()

    def _forward(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Every member's outputs on the same inputs `x` (B, *input shape)."""
        return self._forward_each(weights, x.expand(len(next(iter(weights.values()))), *x.shape))

    def _losses(self, weights, x, y, w) -> torch.Tensor:
        """Each member's mean loss over its real batch rows (`w` = 1; rows past a shorter batch's end are 0), (K,).
        Only the model is vmapped: the loss is per row, so it runs on all members' rows at once as plain ops."""
        out = self._forward_each(weights, x)
        per_row = self.loss_fn(out.flatten(0, 1), y.flatten(0, 1), reduction="none").reshape(*w.shape, -1)
        return (per_row.sum(2) * w).sum(1) / (w.sum(1).clamp(min=1) * per_row.shape[2])

    def _gradients(self, x, y, w, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's gradient, (K, P), and loss, (K,). Member k's loss depends on row k of the weights alone,
        so the gradient of the members' summed loss is each member's own gradient (the sum passes each an exact
        1.0): one plain backward through the batched forward, without torch.func's per-call gradient transform.
        The parameters' gradients are gathered into `out` when given (a buffer kept across steps: a fresh (K, P)
        tensor per step costs the allocator's page faults)."""
        with torch.enable_grad():
            weights = {name: part.detach().requires_grad_() for name, part in self.weights().items()}
            loss = self._losses(weights, x, y, w)
            parts = torch.autograd.grad(loss.sum(), list(weights.values()))
        return torch.cat([g.flatten(1) for g in parts], dim=1, out=out), loss.detach()

    # -- batches -----------------------------------------------------------------------------------------
    def _batch(self, rows: np.ndarray):
        """Each stepping member's next batch, as the single-run `Trainer._next_batch` cuts it from its own
        training set and batch size, padded to the longest (members' batch sizes differ, and an epoch's last
        batch may be longer or shorter) with weight 0 on the padding."""
        due = np.flatnonzero(rows & (~self.has_perm | (self.batch_in_epoch >= self.batches_per_epoch)))
        for n in np.unique(self.n_train[due]).tolist():  # each member's epoch order from its own generator
            ks = due[self.n_train[due] == n]
            self.perms[torch.from_numpy(ks).to(self.device), :n] = torch.stack(
                [torch.randperm(n, device=self.device, generator=self.generators[k]) for k in ks.tolist()])
        self.batch_in_epoch[due], self.has_perm[due] = 0, True
        starts = self.batch_in_epoch * self.batch_size
        ends = np.where(self.batch_in_epoch == self.batches_per_epoch - 1, self.n_train, starts + self.batch_size)
        sizes = np.where(rows, ends - starts, 0)
        width = int(sizes.max())
        offsets = np.arange(width)
        valid = offsets[None, :] < sizes[:, None]
        positions = np.minimum(starts[:, None] + offsets[None, :], self.n_train[:, None] - 1)
        first = np.asarray(self.stacked.train_start)[self.bundle][:, None]  # each member's rows in the stack
        idx = self.perms.gather(1, torch.from_numpy(positions).to(self.device)) + torch.from_numpy(first).to(self.device)
        self.batch_in_epoch += rows
        train = self.stacked.train
        raw = train.x[idx]
        stepping = np.flatnonzero(rows)
        if raw.dim() == 5 and any(self.tasks[k].data.transform.augment for k in stepping):
            # random crops and flips: each member's from its own generator, as its single run draws them
            x = torch.zeros(raw.shape, dtype=torch.float32, device=self.device)
            for k in stepping:
                x[k, :sizes[k]] = self.tasks[k].data.transform(raw[k, :sizes[k]], train=True,
                                                               generator=self.generators[k])
        else:  # no augmentation: every member's data is normalised alike (StackedData checks it)
            x = self.data.transform(raw.flatten(0, 1), train=False).unflatten(0, (self.size, width))
        return x, train.y[idx], torch.from_numpy(valid).to(self.device, torch.float32)

    # -- training ----------------------------------------------------------------------------------------
    def train(self, n_steps) -> PopulationStats:
        """Member k takes `n_steps[k]` optimizer steps with its active optimizer (all members step together
        while they have steps left)."""
        n_steps = np.asarray(n_steps, dtype=np.int64)
        self._finite = None
        total = torch.zeros(self.size, device=self.device)
        grad_norm = torch.from_numpy(self.grad_norm).to(self.device)
        uses = [self.active == index for index in range(len(self.optimizers))]  # fixed for the round
        lrs = np.select(uses, [opt.lr[:, 0] for opt in self.optimizers])
        for i in range(int(n_steps.max(initial=0))):
            rows_np = n_steps > i
            every = bool(rows_np.all())
            rows = torch.from_numpy(rows_np).to(self.device)
            x, y, w = self._batch(rows_np)
            grads, loss = self._gradients(x, y, w, out=self._grads)
            for opt, use in zip(self.optimizers, uses):
                if isinstance(opt, BatchedSAM) and (rows_np & use).any():
                    mine = torch.from_numpy(rows_np & use).to(self.device)
                    ascent = opt.ascent(grads, mine)
                    self.flat.add_(ascent)
                    sharp, _ = self._gradients(x, y, w)
                    self.flat.sub_(ascent)
                    grads = torch.where(mine[:, None], sharp, grads)
            for opt, use in zip(self.optimizers, uses):
                mine_np = rows_np & use
                if mine_np.all():
                    opt.step(self.flat, grads, rows, every=True)
                elif mine_np.any():
                    opt.step(self.flat, grads, torch.from_numpy(mine_np).to(self.device))
            total += loss if every else torch.where(rows, loss, 0.0)
            ending = n_steps == i + 1
            if ending.any():
                grad_norm = torch.where(torch.from_numpy(ending).to(self.device),
                                        torch.linalg.vector_norm(grads.double(), dim=1), grad_norm)
        evals = np.select(uses, [opt.grad_evals_per_step for opt in self.optimizers])
        self.opt_steps += n_steps
        self.grad_evals += n_steps * evals
        mean = (total.double() / torch.from_numpy(np.maximum(n_steps, 1)).to(self.device)).cpu().numpy()
        self.grad_norm = grad_norm.cpu().numpy()
        return PopulationStats(mean, self.grad_norm.copy(), lrs)

    # -- evaluation --------------------------------------------------------------------------------------
    def _eval_chunks(self, split: Split | None, members: np.ndarray):
        """(inputs, targets, valid) per chunk of `eval_batch_size` examples: of `split` for every member (shared,
        `valid` None), else of each member's own validation split, padded to the longest (`valid` (M, n))."""
        if split is not None:
            for start in range(0, len(split), self.eval_batch_size):
                x = self.data.transform(split.x[start:start + self.eval_batch_size], train=False)
                yield x, split.y[start:start + self.eval_batch_size], None
            return
        n_val = self.n_val[members]
        first = np.asarray(self.stacked.val_start)[self.bundle[members]]
        val = self.stacked.val
        for start in range(0, int(n_val.max()), self.eval_batch_size):
            positions = start + np.arange(min(self.eval_batch_size, int(n_val.max()) - start))
            valid = positions[None, :] < n_val[:, None]
            idx = torch.from_numpy(np.minimum(positions[None, :], n_val[:, None] - 1) + first[:, None]).to(self.device)
            x = self.data.transform(val.x[idx].flatten(0, 1), train=False).unflatten(0, idx.shape)
            yield x, val.y[idx], torch.from_numpy(valid).to(self.device)

    @torch.no_grad()
    def evaluate(self, split: Split | None = None, members=None) -> list[dict]:
        """Per member in `members` (default all): loss, and for classification accuracy and macro precision,
        recall and F1, as `Trainer.evaluate` computes them for one run, on `split` (default: each member's own
        validation split; each member's chunks of `eval_batch_size` examples are the single run's)."""
        members = np.arange(self.size) if members is None else np.asarray(members)
        if split is None and len(set(self.bundle[members].tolist())) == 1:  # one dataset: its split, shared
            split = self.tasks[members[0]].data.val
        flat = self.flat if len(members) == self.size else self.flat[torch.from_numpy(members).to(self.device)]
        weights = self.weights(flat)
        m = len(members)
        loss_sum = torch.zeros(m, device=self.device)
        preds, trues, valids = [], [], []
        for x, y, valid in self._eval_chunks(split, members):
            if valid is None:
                out, y = self._forward(weights, x), y.expand(m, *y.shape)
            else:
                out = self._forward_each(weights, x)
            rows = self.loss_fn(out.flatten(0, 1), y.flatten(0, 1), reduction="none").reshape(m, y.shape[1], -1)
            if valid is not None:
                rows = torch.where(valid[:, :, None], rows, 0.0)
            loss_sum += rows.sum((1, 2))
            if self.data.is_classification:
                preds.append(out.argmax(-1))
                trues.append(y)
                valids.append(valid if valid is not None else torch.ones(y.shape, dtype=torch.bool, device=self.device))
        if split is not None:
            n = np.full(m, len(split) if self.data.is_classification else split.y.numel())
        else:
            n = self.n_val[members] * (1 if self.data.is_classification else self.data.num_outputs)
        columns = {"loss": loss_sum.double() / torch.from_numpy(n).to(self.device)}
        if self.data.is_classification:
            columns.update(macro_scores(torch.cat(preds, 1), torch.cat(trues, 1), self.data.num_outputs,
                                        torch.cat(valids, 1)))
        values = {name: column.cpu().numpy() for name, column in columns.items()}
        return [{name: float(column[i]) for name, column in values.items()} for i in range(m)]

    # -- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"flat": self.flat.clone(), "best": self.best.clone(), "optimizers": [opt.state_dict() for opt in self.optimizers],
                "active": self.active.copy(), "generators": [g.get_state() for g in self.generators],
                "perms": self.perms.clone(), "has_perm": self.has_perm.copy(),
                "batch_in_epoch": self.batch_in_epoch.copy(), "opt_steps": self.opt_steps.copy(),
                "grad_evals": self.grad_evals.copy(), "grad_norm": self.grad_norm.copy()}

    def load_state_dict(self, state: dict) -> None:
        self._finite = None
        self.flat.copy_(state["flat"])
        self.best.copy_(state["best"])
        self.perms = state["perms"].clone()  # as wide as the largest training set its members had then
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        for generator, generator_state in zip(self.generators, state["generators"]):
            generator.set_state(generator_state)
        for name in ("active", "has_perm", "batch_in_epoch", "opt_steps", "grad_evals", "grad_norm"):
            getattr(self, name)[:] = state[name]
