"""ReDo (Sokar et al., ICML 2023): dead or dormant ReLU channels of a warm-started network learn again.

A ReLU channel that fires on no training pixel gets no gradient, so no amount of training brings it back. ReDo gives
it fresh incoming weights and zero outgoing ones: the network's output is unchanged (for a channel that never fired)
and the gradient reaches the channel again. `Trainer` applies it before the first step of a recipe with revive_dead.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def revive_dead(model: nn.Module, fresh: nn.Module, batches: list[torch.Tensor], threshold: float = 0.0) -> list[str]:
    """ReDo: each ReLU channel of `model.body` whose mean output on `batches` is at most `threshold` times its layer's
    mean (at 0: that fires on no pixel) takes its incoming weights from `fresh` (a newly initialised network of the
    same build), and its outgoing weights are zeroed, so that the gradient that reaches them brings the channel back.
    A channel that never fired leaves the output as it was. One line per layer."""
    layers, new = list(model.body), list(fresh.body)
    relus = [i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)]
    total = dict.fromkeys(relus, 0)

    def count(i: int):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            total[i] = total[i] + output.double().sum((0, 2, 3))

        return hook

    hooks = [layers[i].register_forward_hook(count(i)) for i in relus]
    try:
        for x in batches:
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    lines = []
    for i in relus:
        dead = (total[i] <= threshold * total[i].mean()).nonzero().flatten()
        before = max(j for j in range(i) if isinstance(layers[j], nn.Conv2d))
        after = next(j for j in range(i + 1, len(layers)) if isinstance(layers[j], nn.Conv2d))
        layers[before].weight[dead] = new[before].weight[dead]
        if layers[before].bias is not None:
            layers[before].bias[dead] = new[before].bias[dead]
        layers[after].weight[:, dead] = 0
        what = f"at most {threshold:g} of their layer's mean" if threshold else "fired on none of the sampled pixels"
        lines.append(f"body.{i}: {len(dead)} of {len(total[i])} channels {what}")
    return lines
