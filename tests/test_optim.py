"""rlopt.optim: SAM against a plain reference, BatchNorm in SAM's second pass, the optimizer bank."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import make_cfg
from rlopt.config import check_optim
from rlopt.data import DataBundle, Split
from rlopt.data.transforms import DeviceTransform
from rlopt.engine import Trainer
from rlopt.errors import UserError
from rlopt.optim import SAM, OptimizerBank, build_optimizer

CPU = torch.device("cpu")


def optim_cfg(*overrides: str):
    """The `optim` block of the default config (SGD lr 0.05, momentum 0.9, wd 5e-4; SAM rho 0.05)."""
    return make_cfg(*overrides, tiny=False).optim


def tiny_regression(seed: int = 0):
    """A two-layer net and a fixed batch for it."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    return net, x, y


def reference_sam_sgd(params, loss_of, steps: int, lr: float, momentum: float, weight_decay: float, rho: float):
    """SAM written out plainly: ascend to w + rho g/||g||, take the gradient there, SGD-step from w.

    SGD as torch defines it (dampening 0, no Nesterov): d = g' + wd w; buf = d, then buf = m buf + d; w -= lr buf.
    """
    w = [p.detach().clone() for p in params]
    bufs = None
    for _ in range(steps):
        g = torch.autograd.grad(loss_of([t.requires_grad_() for t in w]), w)
        w = [t.detach() for t in w]
        norm = torch.sqrt(sum((gi ** 2).sum() for gi in g))
        ascended = [(t + rho * gi / norm).requires_grad_() for t, gi in zip(w, g)]
        g_sharp = torch.autograd.grad(loss_of(ascended), ascended)
        d = [gs + weight_decay * t for gs, t in zip(g_sharp, w)]
        bufs = d if bufs is None else [momentum * b + di for b, di in zip(bufs, d)]
        w = [t - lr * b for t, b in zip(w, bufs)]
    return w


def test_sam_matches_a_plain_reference_implementation():
    net, x, y = tiny_regression()
    cfg = optim_cfg()

    def loss_of(ws):
        return F.mse_loss(torch.func.functional_call(net, dict(zip(names, ws)), (x,)), y)

    names = [n for n, _ in net.named_parameters()]
    expected = reference_sam_sgd(list(net.parameters()), loss_of, steps=5, lr=cfg.sgd.lr, momentum=cfg.sgd.momentum,
                                 weight_decay=cfg.sgd.weight_decay, rho=cfg.sam.rho)
    start = [p.detach().clone() for p in net.parameters()]

    opt = build_optimizer("sam", net.parameters(), cfg)
    assert isinstance(opt, SAM) and opt.grad_evals_next(1) == 2
    for _ in range(5):
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()

        def closure():
            loss = F.mse_loss(net(x), y)
            loss.backward()
            return loss
        opt.step(closure)
    for got, want, before in zip(net.parameters(), expected, start):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got.detach(), before)  # it really moved


def test_sam_differs_from_sgd_on_the_same_problem():
    """The reference comparison above is meaningful: plain SGD from the same start ends elsewhere."""
    net, x, y = tiny_regression()
    sgd_net = copy.deepcopy(net)
    cfg = optim_cfg()
    sam, sgd = build_optimizer("sam", net.parameters(), cfg), build_optimizer("sgd", sgd_net.parameters(), cfg)
    for _ in range(3):
        for model, opt in ((net, sam), (sgd_net, sgd)):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step((lambda m=model: F.mse_loss(m(x), y).backward()) if opt is sam else None)
    assert not torch.allclose(net[0].weight, sgd_net[0].weight)


@pytest.mark.parametrize("rho", [0.0, -0.05])
def test_non_positive_rho_is_rejected(rho):
    net, _, _ = tiny_regression()
    with pytest.raises(ValueError, match="rho"):
        SAM(net.parameters(), torch.optim.SGD, rho=rho, lr=0.1)
    with pytest.raises(UserError, match=r"optim\.sam\.rho"):  # the user's value is checked once, up front
        check_optim(optim_cfg(f"optim.sam.rho={rho}"))


# ---------------------------------------------------------------- SAM inside the Trainer: BatchNorm


def bn_net(momentum) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=momentum), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3))


def tiny_image_bundle(n: int = 24) -> DataBundle:
    """24 random 6x6 one-channel images in 3 classes, all splits the same, no augmentation."""
    gen = torch.Generator().manual_seed(0)
    split = Split(torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8, generator=gen),
                  torch.randint(0, 3, (n,), generator=gen))
    return DataBundle(name="tiny", task="classification", train=split, val=split, test=split, num_outputs=3,
                      input_shape=(1, 6, 6),
                      transform=DeviceTransform(mean=(0.5,), std=(0.25,), scale=255.0, augment=False, device=CPU))


def bn_buffers(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("momentum", [0.1, None])  # None: BatchNorm's cumulative average, driven by the batch count
def test_sam_updates_batchnorm_statistics_in_the_first_pass_only(momentum):
    data = tiny_image_bundle()
    net = bn_net(momentum)
    bank = OptimizerBank(net.parameters, ["sam"], optim_cfg())
    trainer = Trainer(net, data, bank, CPU, batch_size=len(data.train), eval_batch_size=64, amp=False, seed=0)
    inputs = data.transform(data.train.x, train=False)  # the whole set: one batch per step, in some order
    for step in range(3):
        one_pass = copy.deepcopy(net).train()  # the same model with SAM's second pass skipped
        with torch.no_grad():
            one_pass(inputs)
        weights_before = net[0].weight.detach().clone()
        trainer.train(1)
        got, want = bn_buffers(net), bn_buffers(one_pass)
        assert int(got["1.num_batches_tracked"]) == step + 1
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=f"step {step}: {key}")
        assert not torch.equal(net[0].weight, weights_before)


def test_the_batchnorm_check_can_tell_two_passes_from_one():
    """Sanity for the test above: two training-mode passes do move the statistics further than one."""
    data, net = tiny_image_bundle(), bn_net(0.1).train()
    inputs = data.transform(data.train.x, train=False)
    once, twice = copy.deepcopy(net), copy.deepcopy(net)
    with torch.no_grad():
        once(inputs), twice(inputs), twice(inputs)
    assert not torch.allclose(bn_buffers(once)["1.running_mean"], bn_buffers(twice)["1.running_mean"])


def test_trainer_counts_two_gradient_evaluations_per_sam_step():
    data = tiny_image_bundle()
    net = bn_net(0.1)
    bank = OptimizerBank(net.parameters, ["sgd", "sam", "adam", "adadelta"], optim_cfg())
    assert {name: (bank.select(name), bank.grad_evals(1))[1] for name in bank.names} == \
           {"sgd": 1, "sam": 2, "adam": 1, "adadelta": 1}
    trainer = Trainer(net, data, bank, CPU, batch_size=8, eval_batch_size=64, amp=False, seed=0)
    bank.select("sam")
    trainer.train(3)
    after_sam = trainer.grad_evals
    bank.select("sgd")
    trainer.train(2)
    assert (after_sam, trainer.grad_evals, trainer.opt_steps) == (6, 8, 5)


# ---------------------------------------------------------------- the bank


def step(bank: OptimizerBank, net, x, y) -> None:
    """One step of the bank's current optimizer on the fixed batch."""
    opt = bank.current
    opt.zero_grad()
    F.mse_loss(net(x), y).backward()
    if bank.takes_closure:
        opt.step(lambda: F.mse_loss(net(x), y).backward())
    else:
        opt.step()


def state_of(opt: torch.optim.Optimizer) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in s.items()} for s in opt.state_dict()["state"].values()]


def same_state(a, b) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_each_optimizer_keeps_its_state_across_switches():
    net, x, y = tiny_regression()
    cfg = optim_cfg()
    bank = OptimizerBank(net.parameters, ["sgd", "sam", "adam"], cfg)
    assert bank.active == "sgd"
    step(bank, net, x, y), step(bank, net, x, y)
    sgd_state = state_of(bank.optimizers["sgd"])
    bank.select("adam")
    step(bank, net, x, y)
    bank.select("sam")
    step(bank, net, x, y)
    adam_state, sam_state = state_of(bank.optimizers["adam"]), state_of(bank.optimizers["sam"])
    assert same_state(state_of(bank.optimizers["sgd"]), sgd_state)  # untouched while the others stepped
    assert all(float(s["step"]) == 1 for s in adam_state)

    # Back to SGD: it continues from its own momentum buffers, d = g + wd w; buf = m buf + d.
    bank.select("sgd")
    w = [p.detach().clone() for p in net.parameters()]
    grads = torch.autograd.grad(F.mse_loss(net(x), y), list(net.parameters()))
    expected = [wi - cfg.sgd.lr * (cfg.sgd.momentum * s["momentum_buffer"] + g + cfg.sgd.weight_decay * wi)
                for wi, g, s in zip(w, grads, sgd_state)]
    step(bank, net, x, y)
    for p, e in zip(net.parameters(), expected):
        torch.testing.assert_close(p.detach(), e)
    assert same_state(state_of(bank.optimizers["adam"]), adam_state)
    assert same_state(state_of(bank.optimizers["sam"]), sam_state)


def test_set_lr_changes_only_the_current_optimizers_rate():
    net, x, y = tiny_regression()
    cfg = optim_cfg()
    bank = OptimizerBank(net.parameters, ["sgd", "sam", "adam"], cfg)
    for name in bank.names:
        bank.select(name)
        step(bank, net, x, y)
    states = {name: state_of(opt) for name, opt in bank.optimizers.items()}
    bank.select("sam")
    bank.set_lr(0.125)
    assert bank.lr == 0.125
    assert bank.optimizers["sam"].base.param_groups[0]["lr"] == 0.125  # SAM's base optimizer steps with it
    assert bank.optimizers["sgd"].param_groups[0]["lr"] == cfg.sgd.lr
    assert bank.optimizers["adam"].param_groups[0]["lr"] == cfg.adam.lr
    assert all(same_state(state_of(opt), states[name]) for name, opt in bank.optimizers.items())


def test_sam_takes_its_step_with_the_new_learning_rate():
    """After set_lr (and after a state round-trip) SAM's step is the reference step at the new rate."""
    net, x, y = tiny_regression()
    cfg = optim_cfg("optim.sgd.momentum=0.0", "optim.sgd.weight_decay=0.0")
    bank = OptimizerBank(net.parameters, ["sam"], cfg)
    bank.load_state_dict(bank.state_dict())
    bank.set_lr(0.5)
    names = [n for n, _ in net.named_parameters()]

    def loss_of(ws):
        return F.mse_loss(torch.func.functional_call(net, dict(zip(names, ws)), (x,)), y)

    expected = reference_sam_sgd(list(net.parameters()), loss_of, steps=1, lr=0.5, momentum=0.0, weight_decay=0.0,
                                 rho=cfg.sam.rho)
    step(bank, net, x, y)
    for p, e in zip(net.parameters(), expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)


def test_bank_state_round_trip_restores_every_optimizer():
    net, x, y = tiny_regression()
    bank = OptimizerBank(net.parameters, ["sgd", "sam", "adam"], optim_cfg())
    for name in ("adam", "sam", "sgd"):
        bank.select(name)
        step(bank, net, x, y)
    bank.select("adam")
    saved = copy.deepcopy(bank.state_dict())
    fresh = OptimizerBank(net.parameters, ["sgd", "sam", "adam"], optim_cfg())
    fresh.load_state_dict(saved)
    assert fresh.active == "adam"
    for name in bank.names:
        assert same_state(state_of(fresh.optimizers[name]), state_of(bank.optimizers[name]))


def test_unknown_optimizer_is_a_user_error():
    net, _, _ = tiny_regression()
    with pytest.raises(UserError, match="optimizer lion is unknown; available: sgd, sam, adam, adadelta"):
        build_optimizer("lion", net.parameters(), optim_cfg())
