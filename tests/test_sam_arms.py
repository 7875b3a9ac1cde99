"""The SAM arms from pytorch-optimizer (looksam, asam, gsam): one step each against the update its paper
defines, written out plainly on a tiny model; their gradient evaluations; their state across switches and
a save/restore."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rlopt.engine import Trainer
from rlopt.errors import UserError
from rlopt.optim import OptimizerBank, build_optimizer
from rlopt.paths import conf_dir
from test_optim import CPU, bn_net, optim_cfg, same_state, state_of, step, tiny_image_bundle, tiny_regression

LR, WD = 0.05, 5e-4  # optim.sgd's lr and weight decay (conf/optim/sgd.yaml); momentum 0 below, so SGD is w - lr (d + wd w)


def _problem():
    net, x, y = tiny_regression()
    names = [n for n, _ in net.named_parameters()]
    w0 = [p.detach().clone() for p in net.parameters()]

    def grad(ws):
        ws = [t.detach().requires_grad_() for t in ws]
        loss = F.mse_loss(torch.func.functional_call(net, dict(zip(names, ws)), (x,)), y)
        return [g.detach() for g in torch.autograd.grad(loss, ws)]
    return net, x, y, w0, grad


def _norm(ts):
    return torch.sqrt(sum((t ** 2).sum() for t in ts))


def _sgd(w, d):
    return [t - LR * (di + WD * t) for t, di in zip(w, d)]


def _run(name, net, x, y, steps, **overrides):
    """`steps` steps of arm `name` through the bank, as the trainer steps it; returns the bank and its evals."""
    cfg = optim_cfg("optim.sgd.momentum=0.0", *(f"optim.{name}.{k}={v}" for k, v in overrides.items()))
    bank = OptimizerBank(net.parameters, [name], cfg)
    evals = []
    for _ in range(steps):
        evals.append(bank.grad_evals(1))
        step(bank, net, x, y)
    return bank, evals


def _assert_at(net, expected, start):
    for got, want, before in zip(net.parameters(), expected, start):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got.detach(), before)


def test_asam_ascends_along_the_weight_scaled_gradient():
    """ASAM (Kwon et al. 2021, eta = 0): e = rho T^2 g / ||T g|| with T = diag|w|; SGD steps with the gradient at w + e."""
    net, x, y, w, grad = _problem()
    rho = 0.5
    g = grad(w)
    tg_norm = _norm([t.abs() * gi for t, gi in zip(w, g)])
    g_s = grad([t + rho * t ** 2 * gi / tg_norm for t, gi in zip(w, g)])
    _, evals = _run("asam", net, x, y, 1, rho=rho)
    _assert_at(net, _sgd(w, g_s), w)
    assert evals == [2]


def test_gsam_subtracts_the_gradient_part_orthogonal_to_the_sam_gradient():
    """GSAM (Zhuang et al. 2022): g_p = grad(w + rho g/||g||), g_perp = g - (g.g_p/||g_p||^2) g_p; the step
    follows g_p - alpha g_perp."""
    net, x, y, w, grad = _problem()
    rho, alpha = 0.05, 0.4
    g = grad(w)
    g_p = grad([t + rho * gi / _norm(g) for t, gi in zip(w, g)])
    dot = sum((a * b).sum() for a, b in zip(g, g_p))
    g_perp = [gi - dot / _norm(g_p) ** 2 * gp for gi, gp in zip(g, g_p)]
    _, evals = _run("gsam", net, x, y, 1, rho=rho, alpha=alpha)
    _assert_at(net, _sgd(w, [gp - alpha * gv for gp, gv in zip(g_p, g_perp)]), w)
    assert evals == [2]


def test_looksam_reuses_the_sharpness_direction_between_recomputes():
    """LookSAM (Liu et al. 2022), per parameter tensor as pytorch-optimizer computes it: on a recompute step
    g_s = grad(w + rho g/||g||) and g_v = g_s - ||g_s|| cos(g, g_s) g/||g|| is kept; on the next k-1 steps the
    update is g + alpha ||g||/||g_v|| g_v from the one gradient g at w."""
    net, x, y, w, grad = _problem()
    rho, alpha, k = 0.05, 0.7, 3
    g = grad(w)
    g_s = grad([t + rho * gi / _norm(g) for t, gi in zip(w, g)])
    g_v = [gs - gs.norm() * ((gi / gi.norm()) * (gs / gs.norm())).sum() * gi / gi.norm() for gi, gs in zip(g, g_s)]
    w1 = _sgd(w, g_s)
    g1 = grad(w1)
    w2 = _sgd(w1, [gi + alpha * gi.norm() / (gv.norm() + 1e-8) * gv for gi, gv in zip(g1, g_v)])
    _, evals = _run("looksam", net, x, y, 2, rho=rho, alpha=alpha, k=k)
    _assert_at(net, w2, w)
    assert evals == [2, 1]


def test_looksam_is_charged_two_evaluations_on_recompute_steps_only():
    """k = 3: steps 0, 3, 6 recompute; 8 steps cost 8 + 3, counted by the trainer in pieces of any size."""
    data, net = tiny_image_bundle(), bn_net(0.1)
    bank = OptimizerBank(net.parameters, ["looksam", "sgd"], optim_cfg("optim.looksam.k=3"))
    trainer = Trainer(net, data, bank, CPU, batch_size=8, eval_batch_size=64, amp=False, seed=0)
    spent = []
    for n in (1, 4, 3):
        trainer.train(n)
        spent.append(trainer.grad_evals)
    bank.select("sgd")
    trainer.train(2)  # LookSAM's step count waits while another optimizer steps
    bank.select("looksam")
    trainer.train(1)  # its step 8: no recompute
    assert spent + [trainer.grad_evals] == [2, 2 + 5, 11, 11 + 2 + 1]


def test_each_arm_keeps_its_state_across_switches_and_a_save_restore():
    net, x, y = tiny_regression()
    names = ["sgd", "looksam", "asam", "gsam", "sam_every_k"]
    bank = OptimizerBank(net.parameters, names, optim_cfg())
    for name in names * 2:
        bank.select(name)
        step(bank, net, x, y)
    kept = {n: state_of(bank.optimizers[n]) for n in names}
    bank.select("sgd")
    step(bank, net, x, y)
    for name in ("looksam", "asam", "gsam", "sam_every_k"):
        assert kept[name] and same_state(state_of(bank.optimizers[name]), kept[name])
    saved = bank.state_dict()
    fresh = OptimizerBank(net.parameters, names, optim_cfg())
    fresh.load_state_dict(saved)
    for name in names:
        assert same_state(state_of(fresh.optimizers[name]), state_of(bank.optimizers[name]))
    assert fresh.optimizers["looksam"].get_step() == bank.optimizers["looksam"].get_step() == 2
    assert fresh.optimizers["sam_every_k"].own_step == bank.optimizers["sam_every_k"].own_step == 2


def test_the_package_sam_matches_rlopts_to_float_precision():
    """The package's SAM (asam with adaptive=false) takes rlopt's SAM step up to float rounding (it restores w
    from a copy where rlopt subtracts the ascent: 6e-8 apart after 5 steps here, not bit for bit), so the `sam`
    arm stays rlopt's, whose runs repeat the recorded ones exactly."""
    net, x, y = tiny_regression()
    other, _, _ = tiny_regression()
    ours = build_optimizer("sam", net.parameters(), optim_cfg())
    theirs = build_optimizer("asam", other.parameters(), optim_cfg("optim.asam.adaptive=false", "optim.asam.rho=0.05"))
    for model, opt in ((net, ours), (other, theirs)):
        for _ in range(5):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step(lambda m=model: F.mse_loss(m(x), y).backward())
    for a, b in zip(net.parameters(), other.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- the bank's nodes: a package optimizer is a YAML node


def test_any_optimizer_class_joins_the_bank_from_a_node_alone():
    """What adding conf/optim/nadam.yaml does: a `_target_` node, no code."""
    net, x, y = tiny_regression()
    cfg = optim_cfg("+optim.nadam={_target_: torch.optim.NAdam, lr: 0.01, betas: [0.8, 0.99]}")
    bank = OptimizerBank(net.parameters, ["sgd", "nadam"], cfg)
    bank.select("nadam")
    before = net[0].weight.detach().clone()
    step(bank, net, x, y)
    assert type(bank.current) is torch.optim.NAdam and bank.current.param_groups[0]["betas"] == (0.8, 0.99)
    assert bank.grad_evals(3) == 3 and not bank.is_schedule_free and not torch.equal(net[0].weight, before)


@pytest.mark.parametrize("override, message", [
    ("+optim.bad={_target_: torch.optim.NoSuchThing}", "optim.bad cannot be built: a class it names cannot be imported"),
    ("+optim.bad={_target_: torch.optim.SGD, lr: 0.1, colour: red}", "optim.bad is not allowed: SGD refuses it"),
    ("+optim.bad={_target_: torch.optim.SGD, lr: 0.1, bn_batches: many}", "optim.bad.bn_batches=many is not allowed"),
    ("+optim.bad={lr: 0.1}", "optim.bad._target_ is missing"),
])
def test_a_bad_node_is_one_line_naming_it(override, message):
    net, _, _ = tiny_regression()
    with pytest.raises(UserError) as err:
        build_optimizer("bad", net.parameters(), optim_cfg(override))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_optimizer_file_is_in_the_bank_and_builds():
    """conf/optim/<name>.yaml and train.yaml's `optim:` list agree (a file left out of the list would be unusable)."""
    on_disk = sorted(p.stem for p in Path(conf_dir(), "optim").glob("*.yaml"))
    cfg = optim_cfg()
    assert sorted(cfg) == on_disk and len(on_disk) >= 13
    net, _, _ = tiny_regression()
    for name in cfg:
        assert isinstance(build_optimizer(name, net.parameters(), cfg), torch.optim.Optimizer)
