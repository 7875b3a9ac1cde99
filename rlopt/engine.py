"""The training engine: optimizer steps and evaluation on device-resident tensors.

Batches are index slices of a per-epoch permutation of the training tensor, transformed on
the device (see `data.transforms`). Losses are summed on the device and read back once per
decision step, so the GPU never waits on Python between batches. On CUDA the model runs in
channels_last with bf16 autocast and fused optimizer steps; on CPUs with native bf16 instructions
classification also runs under bf16 autocast (about 1.3x faster convolutions on AVX512-BF16).
"""

from __future__ import annotations

import copy
import functools
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from tqdm.auto import tqdm

from rlopt.data import DataBundle, Split
from rlopt.errors import UserError
from rlopt.optim import OptimizerBank


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available; asking for CUDA without it is the user's mistake.

    `name` is one of the schema's `Device` values (auto | cpu | cuda), checked at composition.
    """
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device=cuda is not allowed here: no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def use_bf16(amp, device: torch.device, classification: bool) -> bool:
    """Whether training and evaluation run under bf16 autocast (`trainer.amp`).

    `auto` turns it on where bf16 is native and the task tolerates it: CUDA GPUs with bf16, and
    CPUs with AVX512-BF16 or AMX (without them oneDNN emulates bf16, slower than fp32), for
    classification only, since regression targets such as the polynomial task's coefficients are
    fitted to errors below bf16's resolution. `true` forces it on any device; `false` turns it off.
    """
    if amp == "auto":
        if not classification:
            return False
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return bool(amp)


def _fp32_forward(forward, x):
    with torch.autocast("cpu", enabled=False):
        return forward(x.float())


@torch.no_grad()
def _strided_1x1_convs_in_fp32(model: nn.Module, data: DataBundle) -> None:
    """Run in float32 every strided convolution that sees a 1x1 feature map (found by one probe forward).

    CPU bf16 convolution's weight gradient is wrong there (oneDNN; cf. pytorch/pytorch#169688): the
    taps that only see padding get whatever memory held, run to run (up to 1e35, or inf), although
    they must be 0. Those taps never touch the output, so the losses stay finite, but the garbage
    reaches the weights, the gradient norm, SAM's ascent step and momentum. resnet18_imagenet on
    8x8 digits has such convolutions in layer3 and layer4 (its stem leaves 1x1 maps by layer2).
    """
    found, hooks = [], []
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and max(module.stride) > 1:
            hooks.append(module.register_forward_hook(
                lambda m, inputs, _: found.append(m) if all(s == 1 for s in inputs[0].shape[2:]) else None))
    was_training = model.training
    model.eval()
    try:
        model(data.transform(data.val.x[:1], train=False))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    for module in found:
        module.forward = functools.partial(_fp32_forward, module.forward)


@dataclass
class TrainStats:
    train_loss: float
    grad_norm: float  # the last step's gradient norm (float64: finite exactly when every gradient is)
    lr: float  # learning rate of the last optimizer step (median over param groups): what the step used


class Trainer:
    """Runs optimizer steps for one model with the bank's current optimizer."""

    def __init__(self, model: nn.Module, data: DataBundle, bank: OptimizerBank, device: torch.device,
                 batch_size: int, eval_batch_size: int, amp: bool | str, seed: int):
        self.model, self.data, self.bank, self.device = model, data, bank, device
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.loss_fn = F.cross_entropy if data.is_classification else F.mse_loss
        self.bf16 = use_bf16(amp, device, data.is_classification)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)
        if self.bf16 and device.type == "cpu":
            _strided_1x1_convs_in_fp32(model, data)
        self.generator = torch.Generator(device=device).manual_seed(int(seed))
        self.batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.batches_per_epoch = self.epoch_length(len(data.train), self.batch_size)
        self.perm: torch.Tensor | None = None
        self.batch_in_epoch = 0
        self.opt_steps = 0
        self.grad_evals = 0
        self.lr_scheduler: LRScheduler | None = None
        self.lr_scheduler_interval = "step"
        self.bn_stale = False  # BatchNorm statistics gathered at a schedule-free optimizer's y, not at x

    def set_lr_scheduler(self, scheduler: LRScheduler, interval: str) -> None:
        """Step `scheduler` after every optimizer step (`step`) or at the end of every epoch (`epoch`),
        as Lightning's `interval` does, whatever the decision granularity of the controller."""
        if interval not in ("step", "epoch"):
            raise ValueError(f"interval must be 'step' or 'epoch', not {interval!r}")
        self.lr_scheduler, self.lr_scheduler_interval = scheduler, interval

    @staticmethod
    def epoch_length(n: int, batch_size: int) -> int:
        """Batches per epoch; a trailing batch of one sample (fatal to BatchNorm) joins the last batch."""
        batches = -(-n // batch_size)
        return batches - 1 if n % batch_size == 1 and batches > 1 else batches

    def state_dict(self) -> dict:
        """Batch order and counters (the model and optimizers are saved by their owners)."""
        return {"generator": self.generator.get_state(), "perm": self.perm, "batch_in_epoch": self.batch_in_epoch,
                "opt_steps": self.opt_steps, "grad_evals": self.grad_evals,
                "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None}

    def load_state_dict(self, state: dict) -> None:
        """Restores everything but the lr scheduler, which the controller re-attaches (see TrainingEnv)."""
        self.generator.set_state(state["generator"])
        self.perm = state["perm"]
        self.batch_in_epoch, self.opt_steps, self.grad_evals = state["batch_in_epoch"], state["opt_steps"], state["grad_evals"]

    @property
    def epochs_done(self) -> float:
        return self.opt_steps / self.batches_per_epoch

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.perm is None or self.batch_in_epoch >= self.batches_per_epoch:
            self.perm = torch.randperm(len(self.data.train), device=self.device, generator=self.generator)
            self.batch_in_epoch = 0
        start = self.batch_in_epoch * self.batch_size
        last = self.batch_in_epoch == self.batches_per_epoch - 1
        idx = self.perm[start:] if last else self.perm[start:start + self.batch_size]
        self.batch_in_epoch += 1
        x = self.data.transform(self.data.train.x[idx], train=True, generator=self.generator)
        return x, self.data.train.y[idx]

    def _second_pass(self, x, y):
        """The SAM family's closure: the loss and gradients at the perturbed weights, BatchNorm buffers untouched."""
        with self._frozen_batchnorm():
            loss = self._loss(x, y)
            loss.backward()
        return loss

    @contextmanager
    def _frozen_batchnorm(self):
        """Leave BatchNorm buffers alone in SAM's second pass: it normalises with the batch's own
        statistics but neither updates the running averages nor counts the batch (momentum 0 would
        still bump `num_batches_tracked`, which drives BatchNorm's cumulative average)."""
        saved = [m.track_running_stats for m in self.batchnorms]
        for m in self.batchnorms:
            m.track_running_stats = False
        try:
            yield
        finally:
            for m, tracked in zip(self.batchnorms, saved):
                m.track_running_stats = tracked

    def _loss(self, x, y) -> torch.Tensor:
        with self.autocast:
            out = self.model(x)
        return self.loss_fn(out.float(), y)

    def steps_left_in_epoch(self) -> int:
        left = self.batches_per_epoch - self.batch_in_epoch
        return left if left > 0 else self.batches_per_epoch

    def train(self, n_steps: int) -> TrainStats:
        """Run `n_steps` optimizer steps; returns the mean training loss over them."""
        self.model.train()
        total = torch.zeros((), device=self.device)
        opt = self.bank.current
        evals = self.bank.grad_evals(n_steps)  # LookSAM's depends on which of its steps recompute
        two_pass = self.bank.takes_closure
        next_lr = self.bank.lr  # read again only when a scheduler moves it: no per-step Python work otherwise
        lr = next_lr
        with self.bank.training():  # a schedule-free optimizer steps at y and leaves the weights at x
            for _ in range(n_steps):
                x, y = self._next_batch()
                lr = next_lr  # what this step uses
                opt.zero_grad(set_to_none=True)
                loss = self._loss(x, y)
                loss.backward()
                if two_pass:
                    opt.step(functools.partial(self._second_pass, x, y))
                else:
                    opt.step()
                total += loss.detach()
                if self.lr_scheduler is not None and (
                        self.lr_scheduler_interval == "step" or self.batch_in_epoch == self.batches_per_epoch):
                    self.lr_scheduler.step()
                    next_lr = self.bank.lr
        self.bn_stale = self.bn_stale or (n_steps > 0 and self.bank.bn_recompute_batches > 0 and bool(self.batchnorms))
        mean_loss, grad_norm_v = torch.stack([(total / max(n_steps, 1)).double(), self._grad_norm()]).tolist()
        self.opt_steps += n_steps
        self.grad_evals += evals
        return TrainStats(mean_loss, grad_norm_v, float(lr))

    @torch.no_grad()
    def recompute_batchnorm(self, n_batches: int) -> None:
        """BatchNorm running statistics recomputed at the current weights, as the schedulefree package's
        README asks before evaluating its x: the running averages were gathered at y during training.
        A cumulative average (momentum None) over the first `n_batches` training batches in stored order,
        untransformed: no random stream is drawn, so runs stay reproducible. Only BatchNorm layers run in
        train mode (dropout stays off); this is forward passes only, not gradient evaluations."""
        self.model.eval()
        momenta = [m.momentum for m in self.batchnorms]
        for m in self.batchnorms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        train = self.data.train
        for start in range(0, min(n_batches, self.batches_per_epoch) * self.batch_size, self.batch_size):
            with self.autocast:
                self.model(self.data.transform(train.x[start:start + self.batch_size], train=False))
        for m, momentum in zip(self.batchnorms, momenta):
            m.momentum = momentum
        self.model.eval()
        self.bn_stale = False

    def snapshot(self) -> dict:
        """Everything `train` changes (weights, BatchNorm statistics, optimizer states, the batch order and
        the random streams), so a counterfactual step can be rolled back and replayed on the same batches."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "bank": copy.deepcopy(self.bank.state_dict()),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "perm": self.perm,
            "batch_in_epoch": self.batch_in_epoch,
            "opt_steps": self.opt_steps,
            "grad_evals": self.grad_evals,
        }

    def restore(self, snap: dict) -> None:
        """Return to a `snapshot()`; the snapshot stays valid for another restore."""
        self.model.load_state_dict(snap["model"])
        self.bank.load_state_dict(copy.deepcopy(snap["bank"]))
        self.generator.set_state(snap["generator"])
        torch.set_rng_state(snap["torch_rng"])
        if snap["cuda_rng"] is not None:
            torch.cuda.set_rng_state(snap["cuda_rng"], self.device)
        self.perm, self.batch_in_epoch = snap["perm"], snap["batch_in_epoch"]
        self.opt_steps, self.grad_evals = snap["opt_steps"], snap["grad_evals"]

    def _grad_norm(self) -> torch.Tensor:
        """The last step's gradient L2 norm, in float64: squares of float32 gradients cannot overflow there, so
        it is finite exactly when every gradient is (a float32 norm is inf from |g| ~ 1e19 on)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return torch.zeros((), dtype=torch.float64, device=self.device)
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2, dtype=torch.float64)))

    def weights_finite(self) -> bool:
        """Whether every weight is finite. Each tensor's largest |w| is finite exactly when all its elements are
        (NaN propagates through the max); an L2 norm in float32 is not: it overflows to inf on finite weights
        from ~1e19 on, which flagged resnet18_imagenet on digits (weights up to 7e23 after one bf16 epoch) diverged."""
        return bool(torch.stack(torch._foreach_norm(self.params, float("inf"))).isfinite().all())

    @torch.no_grad()
    def evaluate(self, split: Split, progress: str | None = None) -> dict:
        """Loss (and for classification: accuracy, macro precision/recall/F1) on a split, at the weights the
        bank evaluates (a schedule-free optimizer's x, with BatchNorm statistics recomputed there).
        `progress`: a bar over the batches with that title (the final test pass, minutes on a large split on CPU)."""
        if self.bn_stale:
            self.recompute_batchnorm(self.bank.bn_recompute_batches)
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        preds = []
        starts = range(0, len(split), self.eval_batch_size)
        for start in tqdm(starts, desc=progress, unit="batch", leave=False) if progress else starts:
            x = self.data.transform(split.x[start:start + self.eval_batch_size], train=False)
            y = split.y[start:start + self.eval_batch_size]
            with self.autocast:
                out = self.model(x).float()
            loss_sum += self.loss_fn(out, y, reduction="sum")
            if self.data.is_classification:
                preds.append(out.argmax(1))
        n = len(split) if self.data.is_classification else split.y.numel()
        result = {"loss": loss_sum.item() / n}
        if self.data.is_classification:
            pred = torch.cat(preds)
            p, r, f1 = macro_precision_recall_f1(pred, split.y)
            result.update(acc=(pred == split.y).double().mean().item(), precision=p, recall=r, f1=f1)
        return result


def macro_precision_recall_f1(pred: torch.Tensor, true: torch.Tensor) -> tuple[float, float, float]:
    """Macro precision, recall and F1 over the labels in `true` or `pred`, a label nobody predicted (or none is)
    scoring 0: scikit-learn's `precision_recall_fscore_support(true, pred, average="macro", zero_division=0)`,
    equal to the last bit (counts on the device, the per-label ratios in float64 as sklearn forms them, and
    numpy's mean over labels, which sklearn takes). Counting here spares every run sklearn's ~1.5 s import."""
    k = int(torch.maximum(pred.max(), true.max())) + 1
    tp = torch.bincount(true[pred == true], minlength=k)
    predicted, actual = torch.bincount(pred, minlength=k), torch.bincount(true, minlength=k)
    present = (predicted + actual) > 0
    tp, predicted, actual = (c[present].double().cpu().numpy() for c in (tp, predicted, actual))

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    return (float(ratio(tp, predicted).mean()), float(ratio(tp, actual).mean()),
            float(ratio(2.0 * tp, actual + predicted).mean()))
