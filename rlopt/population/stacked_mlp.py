"""An MLP's forward pass for K members at once, as batched matrix products on their stacked weights.

A model that is a `Sequential` of `Flatten`, `Linear` and parameter-free elementwise activations (the `mlp` and
`maclaurin` models) needs no torch.func: layer by layer, `baddbmm` multiplies each member's own (out, in) weight
by its inputs (the values `vmap(functional_call)` gives, to float32 rounding: tests/test_population.py), without
functional_call swapping the template's parameters on every call and vmap's batching rules on every op, which on
a small MLP cost more than its matmuls (BENCHMARKS.md, issue 23).
Other models (CNNs) keep the vmap path (`PopulationTrainer`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# parameter-free and elementwise: applied to a (K, B, features) tensor, each member's values are its own
ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity)

Forward = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def stacked_mlp(template: nn.Module) -> Forward | None:
    """`forward(weights, x)`: every member's outputs (K, B, outputs) from `weights` (the template's parameter names,
    each (K, *shape)) and inputs `x` (K, B, *input shape); None when `template` is not such an MLP: a Flatten, then
    Linear layers and elementwise activations.

    Activations are held features-first, (K, features, B): each layer is then `W h + b` on the weight as stored,
    (K, out, in), so the backward pass writes every weight's gradient in the weight's own layout; rows-first it
    comes out transposed and costs a copy of the largest weight per step (BENCHMARKS.md, MNIST MLP)."""
    first = next(iter(template), None) if isinstance(template, nn.Sequential) else None
    if not (isinstance(first, nn.Flatten) and first.start_dim == 1 and first.end_dim == -1):
        return None
    layers: list[tuple] = []
    for name, module in list(template.named_children())[1:]:
        if isinstance(module, nn.Linear):
            layers.append(("linear", f"{name}.weight", f"{name}.bias" if module.bias is not None else None))
        elif type(module) in ELEMENTWISE:
            layers.append(("elementwise", module))
        else:
            return None

    def forward(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(2).transpose(1, 2)
        for layer in layers:
            if layer[0] == "linear":
                weight = weights[layer[1]]
                h = torch.bmm(weight, h) if layer[2] is None else torch.baddbmm(weights[layer[2]].unsqueeze(2), weight, h)
            else:
                h = layer[1](h)
        return h.transpose(1, 2)

    return forward
