"""A network cut into layers, each of which gets its own learning rate (and its own agent).

A layer is a module that owns trainable parameters directly (a convolution, a linear layer, ...),
taken in registration order, which is forward order for every model of the zoo. A normalisation
layer (BatchNorm, GroupNorm, LayerNorm, InstanceNorm) does not count as a layer of its own: its
scale and shift join the layer registered just before it, the convolution whose output it
normalises, so `conv -> bn` moves with one learning rate. A normalisation layer with no layer
before it starts its own. A parameter shared by two modules belongs to the first one only, so
every trainable parameter is in exactly one layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

NORMALISATION = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass
class Layer:
    name: str  # the owning module's path in the model, e.g. "layer2.0.conv1"
    params: list[nn.Parameter] = field(default_factory=list)


def layer_groups(model: nn.Module, per_layer: bool = True) -> list[Layer]:
    """The model's layers in order, every trainable parameter in exactly one of them; with
    `per_layer=False` the whole network as one layer (one learning rate: the global-lr ablation)."""
    if not per_layer:
        return [Layer("network", [p for p in model.parameters() if p.requires_grad])]
    layers: list[Layer] = []
    seen: set[int] = set()
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad and id(p) not in seen]
        if not params:
            continue
        seen.update(id(p) for p in params)
        if isinstance(module, NORMALISATION) and layers:
            layers[-1].params.extend(params)
        else:
            layers.append(Layer(name or type(module).__name__, params))
    return layers


def layer_param_groups(model: nn.Module, per_layer: bool = True) -> list[dict]:
    """Optimizer param groups, one per layer, in `layer_groups` order."""
    return [{"params": layer.params} for layer in layer_groups(model, per_layer)]
