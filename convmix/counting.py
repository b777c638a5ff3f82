"""Parameters and operation counts of ACmix, from formulas (checked against execution in the tests).

Convention (one for the whole project):
  * `macs`: multiply-adds. A convolution output element with an n-term dot product costs n; so does
    each attention dot product (logits and the weighted sum of values). Elementwise adds, scaling,
    softmax and the final mix have no multiply-adds.
  * `flops`: the formulation's floating-point operations, counted as follows: 2 per multiply-add
    (a reduction of n terms is counted as n adds, as for convolutions), plus 1 per bias add, 1 per
    output element of each elementwise add/sub/mul, and 5 per softmax element (max, subtract,
    exp, sum, divide).
    Reshapes, padding, unfolding, slicing and concatenation move data and cost 0.
This is a convention, not a census of machine instructions: a kernel may add a reduction as a
tree, fuse a multiply-add, or skip work, and common counters disagree on all of these (ACMIX.md).
Counts are for the official formulation (the unfold path); other attention formulations
compute the same values with a different number of operations (convmix.trace reports these
counts for every impl).
"""

from __future__ import annotations

from dataclasses import dataclass

SUBMODULES = ("conv1", "conv2", "conv3", "conv_p", "fc", "dep_conv", "rate1", "rate2")


@dataclass(frozen=True)
class Cost:
    macs: int = 0
    flops: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.flops + other.flops)


def param_formula(in_planes: int, out_planes: int, head: int, kernel_conv: int) -> dict[str, int]:
    """Parameters per submodule: 3(Cin*C + C) + 3d + 3h*kc^2 + C*kc^4 + 2 in all (ACMIX.md)."""
    c, d, kc2 = out_planes, out_planes // head, kernel_conv**2
    return {
        "conv1": in_planes * c + c,
        "conv2": in_planes * c + c,
        "conv3": in_planes * c + c,
        "conv_p": 2 * d + d,
        "fc": 3 * head * kc2,
        "dep_conv": c * kc2 * kc2,  # weight (C, kc^2, kc, kc); the bias is removed (Q1)
        "rate1": 1,
        "rate2": 1,
    }


def module_param_counts(module) -> dict[str, int]:
    """Parameters per submodule, read from the live module's own tensors."""
    counts = {}
    for name in SUBMODULES:
        obj = getattr(module, name)
        counts[name] = obj.numel() if name.startswith("rate") else sum(p.numel() for p in obj.parameters())
    return counts


def step_costs(
    in_planes: int,
    out_planes: int,
    kernel_att: int,
    head: int,
    kernel_conv: int,
    batch: int,
    height: int,
    width: int,
    out_height: int,
    out_width: int,
) -> dict[str, Cost]:
    """Multiply-adds and FLOPs of each traced step (the op that produced it), by formula."""
    b, cin, c, h = batch, in_planes, out_planes, head
    d = c // h
    n, no = height * width, out_height * out_width
    kk, kc2 = kernel_att**2, kernel_conv**2
    proj = b * n * cin * c
    window = b * c * kk * no  # one multiply-add per (channel, window position, query)
    fc = b * n * c * 3 * kc2
    dep = b * no * c * kc2 * kc2
    return {
        "q": Cost(proj, 2 * proj + b * c * n),
        "k": Cost(proj, 2 * proj + b * c * n),
        "v": Cost(proj, 2 * proj + b * c * n),
        "pe": Cost(2 * d * n, 4 * d * n + d * n),
        "q_att": Cost(0, b * c * n),  # scaling by d^-1/2, before striding
        "logits": Cost(window, 2 * window + 2 * window),  # dot product + (k + q_pe - rpe)
        "att": Cost(0, 5 * b * h * kk * no),
        "out_att": Cost(window, 2 * window),
        "f_all": Cost(fc, 2 * fc),
        "out_conv": Cost(dep, 2 * dep),
        "out": Cost(0, 3 * b * c * no),  # rate1 *, rate2 *, +
    }


def total_cost(costs: dict[str, Cost]) -> Cost:
    total = Cost()
    for cost in costs.values():
        total = total + cost
    return total


STAGE_OF_STEP = {
    "q": "Stage I",
    "k": "Stage I",
    "v": "Stage I",
    "pe": "attention",
    "q_att": "attention",
    "logits": "attention",
    "att": "attention",
    "out_att": "attention",
    "f_all": "convolution",
    "out_conv": "convolution",
    "out": "mix",
}


def stage_costs(costs: dict[str, Cost]) -> dict[str, Cost]:
    """Costs summed per stage: Stage I, attention, convolution, mix."""
    out: dict[str, Cost] = {}
    for name, cost in costs.items():
        stage = STAGE_OF_STEP[name]
        out[stage] = out.get(stage, Cost()) + cost
    return out
