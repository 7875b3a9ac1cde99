"""One colour per optimizer and per method, the same in every figure of every report and run.

An optimizer (SGD, Adam, ...) and the fixed method that runs only it share a colour, so a timeline of
an agent's choices and a curve of the fixed baseline read alike. Methods the project ships have a
fixed colour below; any other name (a label, a method with overrides) gets one from `OTHERS` chosen by
a hash of the name, so it too keeps its colour from figure to figure, moving to the next free one only
when that colour is already taken in the same figure.
"""

from __future__ import annotations

import zlib

FIXED = {
    # optimizers, and the fixed methods named after them
    "sgd": "#1f77b4", "sam": "#ff7f0e", "adam": "#2ca02c", "adadelta": "#8c564b", "prodigy": "#9467bd",
    "dadapt_adam": "#e377c2", "dadapt_sgd": "#7f7f7f", "schedulefree_adamw": "#17becf", "schedulefree_sgd": "#bcbd22",
    # schedules, tuned and random baselines
    "cosine_adam": "#98df8a", "sgdr_adam": "#2b3d26", "adam_tuned": "#00563f", "random": "#000000",
    # agents
    "ppo_3opt": "#d62728", "ppo_2opt": "#f99379", "dqn_2opt": "#882d17", "ppo_portfolio": "#a6761d",
    "ppo_lr": "#b3446c", "dqn_lr": "#654522", "ppo_layerwise": "#f3c300",
    # the SAM arms (docs/guide/sam.md), told apart from SAM's orange in one figure; the cheap one a lighter orange
    "sam_every_k": "#ffbb78", "looksam": "#604e97", "asam": "#a1caf1", "gsam": "#dcd300", "late_sam": "#be0032",
    "ppo_sam": "#e68fac",
}
# Kelly's colours of maximum contrast and tab20's light hues not used above, for every other name
OTHERS = ["#c2b280", "#f6a600", "#0067a5", "#008856", "#875692", "#e25822", "#848482", "#222222", "#f38400",
          "#aec7e8", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]


def colours(names) -> dict[str, str]:
    """name -> colour for the names of one figure: FIXED where listed, else a hashed colour of OTHERS
    (in sorted order of those names, skipping colours already taken in this figure)."""
    chosen = {name: FIXED[name] for name in names if name in FIXED}
    taken = set(chosen.values())
    for name in sorted(set(names) - set(chosen)):
        start = zlib.crc32(name.encode()) % len(OTHERS)
        free = [OTHERS[(start + i) % len(OTHERS)] for i in range(len(OTHERS))]
        colour = next((c for c in free if c not in taken), free[0])
        chosen[name] = colour
        taken.add(colour)
    return chosen
