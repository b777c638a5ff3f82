"""The paper check: parameters and operation counts of the authors' ACmix ResNets against their table.

Every count here comes from a formula over the network's layout (convmix.models.block_layout);
tests/test_paper.py checks each one against the operations the network's own forward executes.

Convention. ACmix layers follow convmix.counting (multiply-adds of convolutions and of the
attention dot products; FLOPs of everything executed). The rest of the network follows the same
rules, written out:
  * Conv2d / Linear: multiply-adds = output elements x (input channels / groups) x kernel area
    (x in_features for Linear); FLOPs = 2 x multiply-adds + 1 per output element with a bias.
  * BatchNorm (inference): 2 FLOPs per element, a multiply and an add by the per-channel scale and
    shift (the per-channel constants themselves are not counted).
  * ReLU: 1 per element. Residual add: 1 per element. Max-pool: kernel area - 1 comparisons per
    output element. Global average pool: H x W per output value (H x W - 1 adds and a divide).
  * None of these has multiply-adds.
Parameters are trainable parameters (BatchNorm's running statistics are buffers, not counted).

The README figures quoted in issue 13 (10.6 / 14.6 / 18.6 M parameters; 2.3 / 2.9 / 3.6 G FLOPs)
are data below, with their source; the audit's statements are checked in `findings()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .counting import STAGE_OF_STEP, param_formula, step_costs
from .models import DEPTHS, HEAD, KERNEL_ATT, KERNEL_CONV, STEM_PLANES, block_layout

# ---------------------------------------------------------------------------------------------
# The published figures and the audit's statements, as data
# ---------------------------------------------------------------------------------------------

README_SOURCE = (
    "README.md of LeapLabTHU/ACmix, ImageNet table of the ResNet models "
    "(figures as quoted in this project's issue 13)"
)
# depth -> (parameters in millions, FLOPs in G), both rounded to one decimal in the table.
README_TABLE: dict[int, tuple[float, float]] = {26: (10.6, 2.3), 38: (14.6, 2.9), 50: (18.6, 3.6)}
TABLE_RESOLUTION = 0.1  # the table's last digit

AUDIT_SOURCE = "an independent audit quoted in issue 13"
AUDIT_PERCENT_BELOW = (1.1, 1.4)  # released code below the table, percent
AUDIT_CONV_LINEAR_GMACS = {26: 2.155, 38: 2.761, 50: 3.367}
AUDIT_WITH_ATTENTION_GMACS = {26: 2.217, 38: 2.859, 50: 3.502}

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "head")
KINDS = (
    "stem conv", "bottleneck 1×1 conv", "downsample conv", "ACmix Stage I", "ACmix attention",
    "ACmix conv path", "ACmix mix", "BatchNorm", "ReLU", "max-pool", "residual add", "avg-pool", "fc",
)
# Which ACmix parameters and steps belong to which kind.
ACMIX_KIND_OF_STAGE = {
    "Stage I": "ACmix Stage I", "attention": "ACmix attention", "convolution": "ACmix conv path",
    "mix": "ACmix mix",
}
ACMIX_KIND_OF_PARAM = {
    "conv1": "ACmix Stage I", "conv2": "ACmix Stage I", "conv3": "ACmix Stage I",
    "conv_p": "ACmix attention", "fc": "ACmix conv path", "dep_conv": "ACmix conv path",
    "rate1": "ACmix mix", "rate2": "ACmix mix",
}


@dataclass(frozen=True)
class Entry:
    """One costed piece of the network: a module (or an ACmix part) at one call."""

    module: str  # state-dict-style name, e.g. "layer2.0.conv2" (an ACmix) or "layer2.0.bn1"
    stage: str  # one of STAGES
    kind: str  # one of KINDS
    params: int
    macs: int
    flops: int


# ---------------------------------------------------------------------------------------------
# Formulas for the pieces
# ---------------------------------------------------------------------------------------------


def _conv(module, stage, kind, cin, cout, k, out_elems, bias=False) -> Entry:
    macs = out_elems * cin * k * k
    params = cout * cin * k * k + (cout if bias else 0)
    return Entry(module, stage, kind, params, macs, 2 * macs + (out_elems if bias else 0))


def _bn(module, stage, channels, elems) -> Entry:
    return Entry(module, stage, "BatchNorm", 2 * channels, 0, 2 * elems)


def _relu(module, stage, elems) -> Entry:
    return Entry(module, stage, "ReLU", 0, 0, elems)


def _acmix(module, stage, cin, c, h, w, ho, wo, batch) -> list[Entry]:
    """ACmix split into its four kinds, by convmix.counting's formulas."""
    params: dict[str, int] = {}
    for name, n in param_formula(cin, c, HEAD, KERNEL_CONV).items():
        kind = ACMIX_KIND_OF_PARAM[name]
        params[kind] = params.get(kind, 0) + n
    macs: dict[str, int] = {}
    flops: dict[str, int] = {}
    for step, cost in step_costs(cin, c, KERNEL_ATT, HEAD, KERNEL_CONV, batch, h, w, ho, wo).items():
        kind = ACMIX_KIND_OF_STAGE[STAGE_OF_STEP[step]]
        macs[kind] = macs.get(kind, 0) + cost.macs
        flops[kind] = flops.get(kind, 0) + cost.flops
    return [
        Entry(module, stage, kind, params.get(kind, 0), macs.get(kind, 0), flops.get(kind, 0))
        for kind in ACMIX_KIND_OF_STAGE.values()
    ]


def network_entries(
    depth: int, height: int = 224, width: int | None = None, batch: int = 1, num_classes: int = 1000
) -> list[Entry]:
    """Every costed piece of the ACmix ResNet-`depth` for one forward, in forward order."""
    width = height if width is None else width
    b = batch
    out: list[Entry] = []
    h1, w1 = (height - 1) // 2 + 1, (width - 1) // 2 + 1  # conv1: 7x7, stride 2, padding 3
    stem = b * STEM_PLANES * h1 * w1
    out.append(_conv("conv1", "stem", "stem conv", 3, STEM_PLANES, 7, stem))
    out.append(_bn("bn1", "stem", STEM_PLANES, stem))
    out.append(_relu("relu", "stem", stem))
    layout = block_layout(depth, height, width)
    h0, w0 = layout[0].in_size
    out.append(Entry("maxpool", "stem", "max-pool", 0, 0, b * STEM_PLANES * h0 * w0 * (3 * 3 - 1)))
    for s in layout:
        stage, p, c = f"layer{s.stage}", s.name, s.width
        (h, w), (ho, wo) = s.in_size, s.out_size
        n, no = b * h * w, b * ho * wo
        out.append(_conv(f"{p}.conv1", stage, "bottleneck 1×1 conv", s.in_channels, c, 1, n * c))
        out.append(_bn(f"{p}.bn1", stage, c, n * c))
        out.append(_relu(f"{p}.relu", stage, n * c))
        out.extend(_acmix(f"{p}.conv2", stage, c, c, h, w, ho, wo, batch))
        out.append(_bn(f"{p}.bn2", stage, c, no * c))
        out.append(_relu(f"{p}.relu", stage, no * c))
        out.append(_conv(f"{p}.conv3", stage, "bottleneck 1×1 conv", c, s.out_channels, 1, no * s.out_channels))
        out.append(_bn(f"{p}.bn3", stage, s.out_channels, no * s.out_channels))
        if s.has_downsample:
            out.append(_conv(f"{p}.downsample.0", stage, "downsample conv", s.in_channels, s.out_channels, 1,
                             no * s.out_channels))
            out.append(_bn(f"{p}.downsample.1", stage, s.out_channels, no * s.out_channels))
        out.append(Entry(f"{p}", stage, "residual add", 0, 0, no * s.out_channels))
        out.append(_relu(f"{p}.relu", stage, no * s.out_channels))
    last = layout[-1]
    features = last.out_channels
    ho, wo = last.out_size
    out.append(Entry("avgpool", "head", "avg-pool", 0, 0, b * features * ho * wo))
    fc_macs = b * features * num_classes
    out.append(Entry("fc", "head", "fc", features * num_classes + num_classes, fc_macs,
                     2 * fc_macs + b * num_classes))
    return out


@dataclass
class Totals:
    params: int = 0
    macs: int = 0
    flops: int = 0

    def add(self, e: Entry) -> None:
        self.params += e.params
        self.macs += e.macs
        self.flops += e.flops


def totals(entries: list[Entry], by: str | None = None) -> dict[str, Totals] | Totals:
    """Sum of all entries, or a dict of sums per `by` ("stage", "kind" or "module")."""
    if by is None:
        t = Totals()
        for e in entries:
            t.add(e)
        return t
    out: dict[str, Totals] = {}
    for e in entries:
        out.setdefault(getattr(e, by), Totals()).add(e)
    return out


def attention_product_macs(depth: int, height: int = 224, width: int | None = None, batch: int = 1) -> int:
    """The attention path's dot products (logits and weighted sum) over all ACmix layers: the
    multiply-adds that are not convolutions (conv_p is one, and stays with the convolutions)."""
    total = 0
    for s in block_layout(depth, height, width):
        (h, w), (ho, wo) = s.in_size, s.out_size
        costs = step_costs(s.width, s.width, KERNEL_ATT, HEAD, KERNEL_CONV, batch, h, w, ho, wo)
        total += costs["logits"].macs + costs["out_att"].macs
    return total


def conv_linear_macs(depth: int, height: int = 224, width: int | None = None, batch: int = 1) -> int:
    """Multiply-adds of every Conv2d and Linear (ACmix's conv1-3, conv_p, fc and dep_conv included):
    what common counters report. All multiply-adds minus the attention dot products."""
    macs = totals(network_entries(depth, height, width, batch)).macs
    return macs - attention_product_macs(depth, height, width, batch)


# ---------------------------------------------------------------------------------------------
# Stage I's share of each ACmix layer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageShare:
    module: str
    in_shape: tuple[int, int, int]  # (C_in, H, W) reaching the layer
    out_size: tuple[int, int]
    stride: int
    stage1_macs: int
    attention_macs: int
    conv_macs: int
    total_macs: int
    stage1_flops: int
    total_flops: int

    @property
    def share_macs(self) -> float:
        return self.stage1_macs / self.total_macs

    @property
    def share_flops(self) -> float:
        return self.stage1_flops / self.total_flops


def stage1_shares(depth: int, size: int = 224) -> list[StageShare]:
    """Each ACmix layer at the shape it really has for a size x size image (stride-2 layers too)."""
    out = []
    for s in block_layout(depth, size):
        (h, w), (ho, wo) = s.in_size, s.out_size
        parts = {k: Totals() for k in ACMIX_KIND_OF_STAGE.values()}
        for e in _acmix(s.acmix_name, f"layer{s.stage}", s.width, s.width, h, w, ho, wo, 1):
            parts[e.kind].add(e)
        out.append(StageShare(
            module=s.acmix_name, in_shape=(s.width, h, w), out_size=(ho, wo), stride=s.stride,
            stage1_macs=parts["ACmix Stage I"].macs, attention_macs=parts["ACmix attention"].macs,
            conv_macs=parts["ACmix conv path"].macs, total_macs=sum(p.macs for p in parts.values()),
            stage1_flops=parts["ACmix Stage I"].flops, total_flops=sum(p.flops for p in parts.values()),
        ))
    return out


# ---------------------------------------------------------------------------------------------
# The parameter gap and the FLOPs figure: intervals, candidates, findings
# ---------------------------------------------------------------------------------------------


def rounding_interval(value: float, unit: float) -> tuple[int, int]:
    """[low, high) of exact counts that a table printing value (in `unit`s, one decimal) allows."""
    half = TABLE_RESOLUTION / 2
    return round((value - half) * unit), round((value + half) * unit)


def released_params(depth: int) -> int:
    return totals(network_entries(depth)).params


def dep_conv_weights(depth: int) -> int:
    """Sum of C x kc^4 over the network's ACmix layers: every dep_conv weight once."""
    return sum(s.width * KERNEL_CONV**4 for s in block_layout(depth))


def parameter_gap_interval(depth: int) -> tuple[int, int]:
    """Exact extra parameters [low, high) that would make the code's count print as the table's."""
    low, high = rounding_interval(README_TABLE[depth][0], 1e6)
    code = released_params(depth)
    return low - code, high - code


def parameter_candidates(depth: int) -> dict[str, int]:
    """Candidate explanations of the parameter gap, each as the number of parameters it adds."""
    layout = block_layout(depth)
    acmix = len(layout)
    bn_channels = STEM_PLANES + sum(
        2 * s.width + s.out_channels + (s.out_channels if s.has_downsample else 0) for s in layout)
    return {
        "dep_conv's weights counted twice (Σ C·kc⁴)": dep_conv_weights(depth),
        "dep_conv's bias kept (Σ C)": sum(s.width for s in layout),
        "fc as drawn in the paper, 3N × k²N (Q10)": acmix * 3 * HEAD * KERNEL_CONV**2 * (HEAD - 1),
        "BatchNorm running statistics counted": 2 * bn_channels,
    }


def flops_candidates(depth: int) -> dict[str, int]:
    """Candidate multiply-add counts for the table's FLOPs column (one 224×224 image)."""
    convlin = conv_linear_macs(depth)
    products = attention_product_macs(depth)
    dep = sum(s.width * KERNEL_CONV**4 * s.out_size[0] * s.out_size[1] for s in block_layout(depth))
    return {
        "convolutions and linear layers": convlin,
        "+ attention dot products": convlin + products,
        "+ attention dot products + dep_conv counted twice": convlin + products + dep,
        "all FLOPs (this convention) / 2": totals(network_entries(depth)).flops // 2,
    }


def rounds_to(count: int, value: float, unit: float) -> bool:
    low, high = rounding_interval(value, unit)
    return low <= count < high


@dataclass(frozen=True)
class Finding:
    statement: str
    status: str  # "established", "does not hold", or "hypothesis"
    evidence: str
    figures: dict = field(default_factory=dict)


def findings() -> list[Finding]:
    """The audit's statements and the explanations tried, each with what the counts show."""
    depths = tuple(DEPTHS)
    params = {d: released_params(d) for d in depths}
    pct = {d: 100 * (README_TABLE[d][0] * 1e6 - params[d]) / (README_TABLE[d][0] * 1e6) for d in depths}
    lo, hi = AUDIT_PERCENT_BELOW
    out = [Finding(
        "The released code has 10,487,816 / 14,410,896 / 18,333,976 parameters.",
        "established" if params == {26: 10_487_816, 38: 14_410_896, 50: 18_333_976} else "does not hold",
        "Counted by formula per module and from the built network's own tensors (tests/test_models.py, "
        "tests/test_paper.py); ResNet-26's key list equals the authors' state dict.",
        {"params": params},
    )]
    pct_ok = all(lo - 0.05 <= round(p, 1) <= hi + 0.05 for p in pct.values())
    out.append(Finding(
        f"The released code is {lo}–{hi} % below the table.",
        "established" if pct_ok else "does not hold",
        "Against the table's printed figures: " + ", ".join(f"ResNet-{d} {pct[d]:.2f} %" for d in depths)
        + ". The table rounds to 0.1 M, so the true gap is only known within ±50,000 parameters.",
        {"percent_below": pct},
    ))
    gaps = {d: parameter_gap_interval(d) for d in depths}
    dep = {d: dep_conv_weights(d) for d in depths}
    fits = {d: gaps[d][0] <= dep[d] < gaps[d][1] for d in depths}
    out.append(Finding(
        "Adding Σ C·kc⁴ over the ACmix layers (dep_conv's weights once more) gives the table's figures.",
        "established" if all(fits.values()) else "does not hold",
        "Σ C·81 = " + ", ".join(f"{dep[d]:,}" for d in depths) + "; the gaps the rounding allows are "
        + ", ".join(f"[{gaps[d][0]:,}, {gaps[d][1]:,})" for d in depths) + ".",
        {"dep_conv_weights": dep, "gap_intervals": gaps},
    ))
    others = {
        name: all(gaps[d][0] <= parameter_candidates(d)[name] < gaps[d][1] for d in depths)
        for name in parameter_candidates(26)
    }
    out.append(Finding(
        "The gap IS dep_conv's weights counted a second time.",
        "hypothesis",
        "Consistent with all three rounded figures, but any extra inside the intervals above fits as "
        "well; of the candidates tried, " + ", ".join(k for k, v in others.items() if v)
        + " fit(s) all three; " + ", ".join(k for k, v in others.items() if not v) + " do(es) not.",
        {"candidates_fit": others},
    ))
    convlin = {d: conv_linear_macs(d) for d in depths}
    with_att = {d: convlin[d] + attention_product_macs(d) for d in depths}
    ok1 = all(round(convlin[d] / 1e9, 3) == AUDIT_CONV_LINEAR_GMACS[d] for d in depths)
    ok2 = all(round(with_att[d] / 1e9, 3) == AUDIT_WITH_ATTENTION_GMACS[d] for d in depths)
    out.append(Finding(
        "Convolution-plus-linear multiply-adds are 2.155 / 2.761 / 3.367 G at 224×224.",
        "established" if ok1 else "does not hold",
        "By formula: " + ", ".join(f"{convlin[d] / 1e9:.6f} G" for d in depths)
        + "; checked against the convolutions and matrix products the forward executes.",
        {"conv_linear_macs": convlin},
    ))
    out.append(Finding(
        "With the attention path's dot products they are 2.217 / 2.859 / 3.502 G.",
        "established" if ok2 else "does not hold",
        "By formula: " + ", ".join(f"{with_att[d] / 1e9:.6f} G" for d in depths)
        + " (logits and weighted sum: 2·C·49 per output position of every ACmix).",
        {"with_attention_macs": with_att},
    ))
    match = {name: [rounds_to(flops_candidates(d)[name], README_TABLE[d][1], 1e9) for d in depths]
             for name in flops_candidates(26)}
    all_three = [k for k, v in match.items() if all(v)]
    out.append(Finding(
        "The table's FLOPs (2.3 / 2.9 / 3.6 G) are some count of this network's operations.",
        "hypothesis",
        "Which counts print as the table (ResNet-26, 38, 50): "
        + "; ".join(f"{k}: {', '.join('yes' if m else 'no' for m in v)}" for k, v in match.items())
        + ". Neither figure the audit computed prints as the table for all three depths"
        + (f"; {' and '.join(all_three)} do" if all_three else "")
        + ". The table's counting is not published, so which one (if any) it used is not established.",
        {"candidates_match": match},
    ))
    shares = [s for d in depths for s in stage1_shares(d)]
    below = sorted({(s.module, s.in_shape, round(100 * s.share_macs, 1)) for s in shares if s.share_macs <= 0.5})
    low = min(s.share_macs for s in shares)
    high = max(s.share_macs for s in shares)
    out.append(Finding(
        "Stage I (the 1×1 projections) takes more than half of every ACmix layer's multiply-adds.",
        "does not hold" if below else "established",
        f"At the shapes of a 224×224 image, Stage I's share ranges from {100 * low:.1f} % to "
        f"{100 * high:.1f} %. At or under half: "
        + ("; ".join(f"{m} ({c}×{h}×{w}) {p} %" for m, (c, h, w), p in below) if below else "none")
        + ". Stride-2 layers have the highest shares: Stage I runs at the input's resolution, "
        "Stage II at the output's.",
        {"share_range": (low, high), "at_or_below_half": below},
    ))
    return out


def summary_rows() -> list[dict]:
    """One row per depth: the code's counts beside the README table (for a table on a page)."""
    rows = []
    for depth in DEPTHS:
        entries = network_entries(depth)
        whole = totals(entries)
        table_params, table_flops = README_TABLE[depth]
        convlin = conv_linear_macs(depth)
        rows.append({
            "network": f"ACmix ResNet-{depth}",
            "parameters (code)": whole.params,
            "parameters (table, M)": table_params,
            "below the table, %": 100 * (table_params * 1e6 - whole.params) / (table_params * 1e6),
            "Σ C·kc⁴ (dep_conv weights)": dep_conv_weights(depth),
            "conv + linear multiply-adds": convlin,
            "+ attention dot products": convlin + attention_product_macs(depth),
            "all multiply-adds": whole.macs,
            "all FLOPs": whole.flops,
            "FLOPs (table, G)": table_flops,
        })
    return rows
