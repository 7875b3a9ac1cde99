"""`PopulationTrainer`: K training runs of one architecture as one vectorised model (torch.func).

Member k's weights are row k of one (K, P) tensor; the model runs through `functional_call` on views of
it, gradients come from `vmap(grad_and_value(loss))`, and the batched optimizers of
`rlopt.population.optimizers` update every row at once. Each member keeps what a single run
(`rlopt.engine.Trainer`) has: its own initial weights (built from its run seed, as the single run
builds them), its own batch order (a generator seeded with the run seed, drawing the same
permutations), its own optimizer choice, learning rates, optimizer states and counters. Members may
be at different points of their runs (one that diverged starts again while the others go on): a round
of `train` takes each member's own number of steps, and a member whose steps are done stays untouched.

What it refuses, in one line: models with buffers (BatchNorm's running statistics) or random layers
(dropout draws from the global random stream, which K members cannot share with K single runs), and
optimizers it does not batch (see `rlopt.population.optimizers.BATCHED`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from rlopt.data import MemberSplits, Split
from rlopt.engine import use_bf16
from rlopt.errors import UserError
from rlopt.models import model_name
from rlopt.population.optimizers import BatchedSAM, build_batched
from rlopt.population.scores import macro_scores
from rlopt.task import Task


def check_batchable(model: nn.Module, model_name: str) -> None:
    """Refuse, in one line, a model whose members could not each equal a single run."""
    if next(model.buffers(), None) is not None:
        raise UserError(f"model={model_name} is not allowed in population mode (controller.vectorize=population): it "
                        "has buffers (BatchNorm statistics); population mode batches MLPs (maclaurin, mlp) and "
                        "BatchNorm-free CNNs (digits_cnn, small_cnn with model.dropout=false)")
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        raise UserError(f"model={model_name} is not allowed in population mode (controller.vectorize=population): its "
                        "dropout draws from the one global random stream; use model.dropout=false")


@dataclass
class PopulationStats:
    """Per member, as `engine.TrainStats`: mean training loss of its steps this round, its last step's gradient
    norm (float64) and the learning rate that step used."""

    train_loss: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray


class PopulationTrainer:
    """K runs of `task`, each stepped by its active optimizer among `optimizers` (names of the bank)."""

    def __init__(self, task: Task, optimizers, size: int):
        data = task.data
        self.task, self.data, self.device, self.size = task, data, task.device, int(size)
        self.template = task.new_model().to(self.device)
        check_batchable(self.template, model_name(task.model.name, data.name))
        self.batch_size, self.eval_batch_size = task.batch_size, task.eval_batch_size
        self.layout = [(name, p.shape, p.numel()) for name, p in self.template.named_parameters()]
        self.n_params = sum(n for _, _, n in self.layout)
        self.flat = torch.zeros(self.size, self.n_params, device=self.device)
        self.loss_fn = task.loss_fn
        self.bf16 = use_bf16(task.amp, self.device, data.is_classification)
        self.names = list(optimizers)
        self.optimizers = [build_batched(n, task.optim, self.size, self.n_params, self.device) for n in self.names]
        self.active = np.zeros(self.size, dtype=np.int64)  # index into self.names
        n_train = len(data.train)
        self.batches_per_epoch = task.batches_per_epoch
        self._finite: np.ndarray | None = None  # weights_finite(), computed once per change of the weights
        self.generators = [torch.Generator(device=self.device) for _ in range(self.size)]
        self.perms = torch.zeros(self.size, n_train, dtype=torch.long, device=self.device)
        self.has_perm = np.zeros(self.size, dtype=bool)
        self.batch_in_epoch = np.zeros(self.size, dtype=np.int64)
        self.opt_steps = np.zeros(self.size, dtype=np.int64)
        self.grad_evals = np.zeros(self.size, dtype=np.int64)
        self.grad_norm = np.zeros(self.size)  # each member's last step's gradient norm (a round of 0 steps keeps it)
        self._grads = vmap(grad_and_value(self._member_loss))
        self._forward = vmap(self._member_forward, in_dims=(0, None))
        self._forward_each = vmap(self._member_forward)  # each member its own inputs (`MemberSplits`)

    # -- members ------------------------------------------------------------------------------------
    def init_member(self, k: int, run_seed: int) -> None:
        """Start member k's run as the single run with `run_seed` starts: its initial weights (drawn as
        `Task.build_model` draws them, on the CPU), fresh optimizer states, the first optimizer selected, its
        batch order. The global random state is left as it was, as a worker process of
        `vectorize=processes` leaves the agent's."""
        with torch.random.fork_rng(devices=[]):  # this process's random stream is the agent's: left as it was
            torch.manual_seed(int(run_seed))
            self.load_member(k, self.task.new_model().state_dict())
        for opt in self.optimizers:
            opt.reset_member(k)
        self.active[k] = 0
        self.generators[k].manual_seed(int(run_seed))
        self.has_perm[k] = False
        self.batch_in_epoch[k] = self.opt_steps[k] = self.grad_evals[k] = self.grad_norm[k] = 0

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights as the single-run model's state_dict (copies)."""
        return {name: w[k].clone() for name, w in self.weights().items()}

    def load_member(self, k: int, state: dict) -> None:
        self._finite = None
        self.flat[k] = torch.cat([state[name].detach().reshape(-1).to(self.flat) for name, _, _ in self.layout])

    def weights(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Views of the stacked weights, one (K, *shape) tensor per parameter of the template."""
        flat = self.flat if flat is None else flat
        views, start = {}, 0
        for name, shape, n in self.layout:
            views[name] = flat[:, start:start + n].view(len(flat), *shape)
            start += n
        return views

    def select(self, k: int, name: str) -> None:
        self.active[k] = self.names.index(name)

    def lr(self, k: int, name: str | None = None) -> float:
        """Member k's learning rate in optimizer `name` (default: its active one)."""
        index = self.active[k] if name is None else self.names.index(name)
        return float(self.optimizers[index].lr[k, 0])

    def set_lr(self, k: int, lr: float) -> None:
        self.optimizers[self.active[k]].lr[k, 0] = float(lr)

    def grad_evals_per_step(self, k: int) -> int:
        return self.optimizers[self.active[k]].grad_evals_per_step

    def steps_left_in_epoch(self) -> np.ndarray:
        left = self.batches_per_epoch - self.batch_in_epoch
        return np.where(left > 0, left, self.batches_per_epoch)

    @property
    def epochs_done(self) -> np.ndarray:
        return self.opt_steps / self.batches_per_epoch

    def weights_finite(self) -> np.ndarray:
        """Per member: whether every weight is finite."""
        if self._finite is None:
            self._finite = torch.isfinite(self.flat).all(1).cpu().numpy()
        return self._finite

    # -- the loss of one member (vmapped) ----------------------------------------------------------------
    def _member_forward(self, weights, x):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return functional_call(self.template, weights, (x,)).float()

    def _member_loss(self, weights, x, y, w):
        """Mean loss over the member's real batch rows (`w` = 1; rows past a shorter batch's end are 0)."""
        per_row = self.loss_fn(self._member_forward(weights, x), y, reduction="none").reshape(len(w), -1)
        return (per_row.sum(1) * w).sum() / (w.sum().clamp(min=1) * per_row.shape[1])

    def _gradients(self, x, y, w) -> tuple[torch.Tensor, torch.Tensor]:
        grads, loss = self._grads(self.weights(), x, y, w)
        return torch.cat([grads[name].reshape(self.size, -1) for name, _, _ in self.layout], 1), loss

    # -- batches -----------------------------------------------------------------------------------------
    def _batch(self, rows: np.ndarray):
        """Each stepping member's next batch, as the single-run `Trainer._next_batch` cuts it, padded to the
        longest (an epoch's last batch may be longer or shorter) with weight 0 on the padding."""
        n_train = len(self.data.train)
        for k in np.flatnonzero(rows & (~self.has_perm | (self.batch_in_epoch >= self.batches_per_epoch))):
            self.perms[k] = torch.randperm(n_train, device=self.device, generator=self.generators[k])
            self.batch_in_epoch[k], self.has_perm[k] = 0, True
        starts = self.batch_in_epoch * self.batch_size
        ends = np.where(self.batch_in_epoch == self.batches_per_epoch - 1, n_train, starts + self.batch_size)
        sizes = np.where(rows, ends - starts, 0)
        width = int(sizes.max())
        offsets = np.arange(width)
        valid = offsets[None, :] < sizes[:, None]
        positions = np.minimum(starts[:, None] + offsets[None, :], n_train - 1)
        idx = self.perms.gather(1, torch.from_numpy(positions).to(self.device))
        self.batch_in_epoch += rows
        train, transform = self.data.train, self.data.transform
        raw, targets = train.take(idx)
        if transform.augment and raw.dim() == 5:  # random crops and flips: each from its member's generator
            x = torch.zeros(raw.shape, dtype=torch.float32, device=self.device)
            for k in np.flatnonzero(rows):
                x[k, :sizes[k]] = transform(raw[k, :sizes[k]], train=True, generator=self.generators[k])
        else:
            x = transform(raw.flatten(0, 1), train=True).unflatten(0, (self.size, width))
        return x, targets, torch.from_numpy(valid).to(self.device, torch.float32)

    # -- training ----------------------------------------------------------------------------------------
    def train(self, n_steps) -> PopulationStats:
        """Member k takes `n_steps[k]` optimizer steps with its active optimizer (all members step together
        while they have steps left)."""
        n_steps = np.asarray(n_steps, dtype=np.int64)
        self._finite = None
        total = torch.zeros(self.size, device=self.device)
        grad_norm = torch.from_numpy(self.grad_norm).to(self.device)
        lrs = np.array([self.lr(k) for k in range(self.size)])
        active = torch.from_numpy(self.active).to(self.device)
        for i in range(int(n_steps.max(initial=0))):
            rows_np = n_steps > i
            rows = torch.from_numpy(rows_np).to(self.device)
            x, y, w = self._batch(rows_np)
            grads, loss = self._gradients(x, y, w)
            for index, opt in enumerate(self.optimizers):
                if isinstance(opt, BatchedSAM) and (mine := rows & (active == index)).any():
                    ascent = opt.ascent(grads, mine)
                    self.flat.add_(ascent)
                    sharp, _ = self._gradients(x, y, w)
                    self.flat.sub_(ascent)
                    grads = torch.where(mine[:, None], sharp, grads)
            for index, opt in enumerate(self.optimizers):
                mine_np = rows_np & (self.active == index)
                if mine_np.any():
                    opt.step(self.flat, grads, torch.from_numpy(mine_np).to(self.device), every=bool(mine_np.all()))
            total += torch.where(rows, loss.detach(), 0.0)
            ending = torch.from_numpy(n_steps == i + 1).to(self.device)
            if bool(ending.any()):
                grad_norm = torch.where(ending, torch.linalg.vector_norm(grads.double(), dim=1), grad_norm)
        evals = np.array([self.grad_evals_per_step(k) for k in range(self.size)])
        self.opt_steps += n_steps
        self.grad_evals += n_steps * evals
        mean = (total.double() / torch.from_numpy(np.maximum(n_steps, 1)).to(self.device)).cpu().numpy()
        self.grad_norm = grad_norm.cpu().numpy()
        return PopulationStats(mean, self.grad_norm.copy(), lrs)

    # -- evaluation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: Split, members=None) -> list[dict]:
        """Per member in `members` (default all): loss, and for classification accuracy and macro precision,
        recall and F1, as `Trainer.evaluate` computes them for one run. `split` is one split for all, or
        `MemberSplits`: each member's own (K run seeds carve their own validation split)."""
        members = np.arange(self.size) if members is None else np.asarray(members)
        chosen = torch.from_numpy(members).to(self.device)
        flat = self.flat if len(members) == self.size else self.flat[chosen]
        weights = self.weights(flat)
        own = isinstance(split, MemberSplits)
        loss_sum = torch.zeros(len(members), device=self.device)
        preds = []
        for start in range(0, len(split), self.eval_batch_size):
            stop = start + self.eval_batch_size
            if own:
                x, y = split.rows(chosen, start, stop)
                out = self._forward_each(weights, self.data.transform(x.flatten(0, 1), train=False).unflatten(0, x.shape[:2]))
            else:
                x, y = split.x[start:stop], split.y[start:stop]
                out = self._forward(weights, self.data.transform(x, train=False))
                y = y.expand(len(members), *y.shape)
            loss_sum += self.loss_fn(out.flatten(0, 1), y.flatten(0, 1), reduction="none").reshape(len(members), -1).sum(1)
            if self.data.is_classification:
                preds.append(out.argmax(-1))
        n = len(split) if self.data.is_classification else len(split) * self.data.num_outputs
        columns = {"loss": loss_sum.double() / n}
        if self.data.is_classification:
            columns.update(macro_scores(torch.cat(preds, 1), split.targets(chosen) if own else split.y,
                                        self.data.num_outputs))
        values = {name: column.cpu().numpy() for name, column in columns.items()}
        return [{name: float(column[i]) for name, column in values.items()} for i in range(len(members))]

    # -- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"flat": self.flat.clone(), "optimizers": [opt.state_dict() for opt in self.optimizers],
                "active": self.active.copy(), "generators": [g.get_state() for g in self.generators],
                "perms": self.perms.clone(), "has_perm": self.has_perm.copy(),
                "batch_in_epoch": self.batch_in_epoch.copy(), "opt_steps": self.opt_steps.copy(),
                "grad_evals": self.grad_evals.copy(), "grad_norm": self.grad_norm.copy()}

    def load_state_dict(self, state: dict) -> None:
        self._finite = None
        self.flat.copy_(state["flat"])
        self.perms.copy_(state["perms"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        for generator, generator_state in zip(self.generators, state["generators"]):
            generator.set_state(generator_state)
        for name in ("active", "has_perm", "batch_in_epoch", "opt_steps", "grad_evals", "grad_norm"):
            getattr(self, name)[:] = state[name]
