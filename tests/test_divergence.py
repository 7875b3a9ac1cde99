"""Divergence is exactly a non-finite loss, gradient or weight: huge finite values are not divergence."""

from __future__ import annotations

import math

import torch

from conftest import make_cfg
from rlopt.env import make_env


def _env():
    env = make_env(make_cfg("controller=sgd", "trainer.epochs=1", "dataset.train_subset=64", "dataset.val_size=32"))
    env.reset(seed=0)
    return env


def test_huge_finite_weights_are_finite_and_nan_or_inf_are_not():
    trainer = _env().trainer
    weight = trainer.params[0]
    with torch.no_grad():
        weight.view(-1)[0] = 7e23  # what resnet18_imagenet reached on digits: its float32 L2 norm is inf
        assert trainer.weights_finite()
        for bad in (math.nan, math.inf):
            weight.view(-1)[1] = bad
            assert not trainer.weights_finite()


def test_gradient_norm_is_exact_for_huge_finite_gradients():
    trainer = _env().trainer
    for p in trainer.params:
        p.grad = torch.full_like(p, 1e30)
    norm = trainer._grad_norm().item()
    assert math.isfinite(norm) and norm > 1e30
    trainer.params[0].grad.view(-1)[0] = math.nan
    assert not math.isfinite(trainer._grad_norm().item())


def test_a_non_finite_gradient_ends_the_run_as_diverged():
    env = _env()
    env.trainer.params[0].register_hook(lambda g: torch.full_like(g, math.inf))
    _, reward, terminated, _, info = env.step(0)
    assert terminated and info["metrics"]["diverged"] and env.status == "diverged"
    assert reward <= -env.penalty and not math.isfinite(info["metrics"]["grad_norm"])


def test_bf16_cpu_convolutions_over_1x1_maps_get_exact_weight_gradients():
    # resnet18_imagenet on 8x8 digits: layer3/layer4's strided 3x3 convs see 1x1 maps, where CPU bf16's weight
    # gradient of the taps that only see padding is garbage (the run was flagged diverged); there it must be 0
    env = make_env(make_cfg("model=resnet18_imagenet", "trainer.amp=true", "trainer.device=cpu", "trainer.max_steps=4",
                            "dataset.train_subset=64", "dataset.val_size=32", "env.steps_per_action=1",
                            "controller=sgd"))
    env.reset(seed=1)
    assert env.trainer.bf16
    convs = [env.trainer.model.layer3[0].conv1, env.trainer.model.layer4[0].conv1]
    off_centre = torch.ones(3, 3, dtype=torch.bool)
    off_centre[1, 1] = False
    for _ in range(3):
        env.step(0)
        for conv in convs:
            assert conv.weight.grad[..., off_centre].abs().max().item() == 0.0
    assert env.trainer.weights_finite() and env.status == "running"


def test_plots_of_a_diverged_run_raise_no_warning(tmp_path):
    import warnings

    import pandas as pd

    from rlopt.reporting.plots import plot_run

    df = pd.DataFrame({"epoch": [1.0, 2.0], "step": [1, 2], "optimizer": ["sgd", "sgd"], "lr": [0.05, 0.05],
                       "train_loss": [math.nan, math.inf], "val_loss": [math.nan, math.nan], "val_acc": [0.1, None],
                       "reward": [0.0, -1500.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend" among them
        written = plot_run(df, tmp_path, "digits / sgd")
    assert {p.name for p in written} >= {"loss.png", "reward.png", "accuracy.png"} and all(p.is_file() for p in written)
