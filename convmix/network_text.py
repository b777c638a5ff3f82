"""The words of the "ACmix in ResNet" page for what the library returns as data or as English.

convmix.paper computes; this module says what it found in the visitor's language (convmix.i18n):
the paper check's findings, worded from each finding's own figures; labels of stages, kinds of
module and candidate explanations; the built-in pictures' titles and credits; and the refusals of
the picture reader (convmix.bias.decode_upload words them in English). The checkpoint reader and
the walkthrough sources word their own refusals (convmix.checkpoint, convmix.sources). No
Streamlit here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import paper
from .bias import MAX_SIDE, MAX_UPLOAD_BYTES
from .format import join_items
from .i18n import N_, _
from .images import Picture
from .models import DEPTHS, KERNEL_ATT, RELEASED_PARAMS

# The image size of the README table, and convmix.paper's default for every count.
PAPER_SIZE = 224

# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------

STAGE_LABELS = {
    "stem": N_("stem"), "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4",
    "head": N_("pool and fc"),
}
KIND_LABELS = {
    "stem conv": N_("stem convolution"),
    "bottleneck 1×1 conv": N_("bottleneck 1×1 convolutions"),
    "downsample conv": N_("downsample convolutions"),
    "ACmix Stage I": N_("ACmix Stage I (1×1 projections)"),
    "ACmix attention": N_("ACmix attention path"),
    "ACmix conv path": N_("ACmix convolution path"),
    "ACmix mix": N_("ACmix rate mix"),
    "BatchNorm": "BatchNorm",
    "ReLU": "ReLU",
    "max-pool": N_("max pooling"),
    "residual add": N_("residual additions"),
    "avg-pool": N_("average pooling"),
    "fc": N_("fc (classifier)"),
}
MEASURE_LABELS = {"params": N_("parameters"), "macs": N_("multiply-adds"), "flops": "FLOPs"}
PART_LABELS = {"stage1": N_("Stage I (projections)"), "attention": N_("attention path"),
               "conv": N_("convolution path")}
STATUS_LABELS = {"established": N_("established"), "does not hold": N_("does not hold"),
                 "hypothesis": N_("hypothesis")}
PARAMETER_CANDIDATE_LABELS = {
    "dep_conv's weights counted twice (Σ C·kc⁴)": N_("dep_conv's weights counted twice (Σ C·kc⁴)"),
    "dep_conv's bias kept (Σ C)": N_("dep_conv's bias kept (Σ C)"),
    "fc as drawn in the paper, 3N × k²N (Q10)": N_("fc as drawn in the paper, 3N × k²N (Q10)"),
    "BatchNorm running statistics counted": N_("BatchNorm's running statistics counted"),
}
FLOPS_CANDIDATE_LABELS = {
    "convolutions and linear layers": N_("multiply-adds of convolutions and linear layers"),
    "+ attention dot products": N_("… plus the attention dot products"),
    "+ attention dot products + dep_conv counted twice": N_("… plus the attention dot products and dep_conv once more"),
    "all FLOPs (this convention) / 2": N_("all FLOPs (this project's convention) ÷ 2"),
}


def label(table: dict[str, str], key: str) -> str:
    """The translated label of `key`, or the key itself when the table does not know it."""
    return _(table[key]) if key in table else key


def network_name(depth: int) -> str:
    return f"ResNet-{depth}"


def _per_depth(values: dict[int, object], fmt: str) -> str:
    return " / ".join(format(values[d], fmt) for d in DEPTHS)


# ---------------------------------------------------------------------------------------------
# The paper check's findings
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindingText:
    status: str  # the finding's own status: "established", "does not hold" or "hypothesis"
    statement: str
    evidence: str
    topic: str = ""  # the first key of the finding's figures: which statement this is


def finding_text(f: paper.Finding) -> FindingText:
    """A finding of convmix.paper.findings(), worded from its own figures."""
    worded = _finding_text(f)
    return FindingText(worded.status, worded.statement, worded.evidence, next(iter(f.figures), ""))


def _finding_text(f: paper.Finding) -> FindingText:
    figs = f.figures
    if "params" in figs:
        return FindingText(f.status, _(
            "The released code has {claimed} parameters (ResNet-26 / 38 / 50).",
            claimed=_per_depth(RELEASED_PARAMS, ",")), _(
            "Counted module by module from the network's layout: {counted}. The same totals come from "
            "the built network's own tensors, and ResNet-26's state-dict keys and shapes equal the "
            "authors' (tests/test_models.py, tests/test_paper.py).",
            counted=_per_depth(figs["params"], ",")))
    if "percent_below" in figs:
        low, high = paper.AUDIT_PERCENT_BELOW
        table = {d: paper.README_TABLE[d][0] for d in DEPTHS}
        return FindingText(f.status, _(
            "The released code is {low}–{high} % below the table.", low=low, high=high), _(
            "Against the table's printed {table} M: {percents}. The table rounds to {step} M, so the "
            "true gap is known only within ±{half:,} parameters.",
            table=_per_depth(table, ""), step=paper.TABLE_RESOLUTION,
            half=round(paper.TABLE_RESOLUTION / 2 * 1e6),
            percents=join_items([f"{network_name(d)} {figs['percent_below'][d]:.2f} %" for d in DEPTHS])))
    if "dep_conv_weights" in figs:
        gaps = figs["gap_intervals"]
        return FindingText(f.status, _(
            "Adding Σ C·kc⁴ over the ACmix layers (dep_conv's weights once more) gives the table's "
            "figures."), _(
            "Σ C·kc⁴ = {sums}. The extra parameters that the table's rounding allows: {intervals}.",
            sums=_per_depth(figs["dep_conv_weights"], ","),
            intervals=join_items([f"{network_name(d)} [{gaps[d][0]:,}, {gaps[d][1]:,})" for d in DEPTHS])))
    if "candidates_fit" in figs:
        fit = [label(PARAMETER_CANDIDATE_LABELS, k) for k, v in figs["candidates_fit"].items() if v]
        misfit = [label(PARAMETER_CANDIDATE_LABELS, k) for k, v in figs["candidates_fit"].items() if not v]
        return FindingText(f.status, _("The gap is dep_conv's weights counted a second time."), _(
            "Consistent with all three rounded figures, but any extra inside the intervals above fits "
            "as well. Of the explanations tried, these fit all three networks: {fit}; these do not: "
            "{misfit}.", fit=join_items(fit) or "—", misfit=join_items(misfit) or "—"))
    if "conv_linear_macs" in figs:
        return FindingText(f.status, _(
            "Convolution-plus-linear multiply-adds are {claimed} G at {size}×{size}.",
            claimed=_per_depth(paper.AUDIT_CONV_LINEAR_GMACS, ".3f"), size=PAPER_SIZE), _(
            "By formula: {counted} G, checked against the convolutions and matrix products that the "
            "network's forward executes (tests/test_paper.py).",
            counted=_per_depth({d: v / 1e9 for d, v in figs["conv_linear_macs"].items()}, ".6f")))
    if "with_attention_macs" in figs:
        return FindingText(f.status, _(
            "With the attention path's dot products they are {claimed} G.",
            claimed=_per_depth(paper.AUDIT_WITH_ATTENTION_GMACS, ".3f")), _(
            "By formula: {counted} G. The dot products are the logits and the weighted sum, "
            "2·C·{taps} multiply-adds per output position of every ACmix layer.",
            counted=_per_depth({d: v / 1e9 for d, v in figs["with_attention_macs"].items()}, ".6f"),
            taps=KERNEL_ATT**2))
    if "candidates_match" in figs:
        matching = [label(FLOPS_CANDIDATE_LABELS, k) for k, v in figs["candidates_match"].items() if all(v)]
        table = {d: paper.README_TABLE[d][1] for d in DEPTHS}
        evidence = _(
            "The table below shows which counts print as the table's figures. Neither count the audit "
            "computed does so for all three networks.")
        if matching:
            evidence += " " + _("These do: {names}.", names=join_items(matching))
        evidence += " " + _(
            "The table's way of counting is not published, so which count it used, if any, is not "
            "established.")
        return FindingText(f.status, _(
            "The table's FLOPs ({table} G) are some count of this network's operations.",
            table=_per_depth(table, "")), evidence)
    if "share_range" in figs:
        low, high = figs["share_range"]
        below = figs["at_or_below_half"]
        evidence = _(
            "At the shapes of a {size}×{size} image, Stage I's share of a layer's multiply-adds ranges "
            "from {low:.1f} % to {high:.1f} %.", size=PAPER_SIZE, low=100 * low, high=100 * high)
        if below:
            evidence += " " + _("At or under half: {layers}.", layers=join_items(
                [f"{m} ({c}×{h}×{w}) {p} %" for m, (c, h, w), p in below]))
        shares = [s for d in DEPTHS for s in paper.stage1_shares(d)]
        if max(shares, key=lambda s: s.share_macs).stride > 1:
            evidence += " " + _(
                "The stride-2 layers have the highest shares: Stage I runs at the input's resolution, "
                "the attention and convolution paths at the output's.")
        return FindingText(f.status, _(
            "Stage I (the 1×1 projections) takes more than half of every ACmix layer's multiply-adds."),
            evidence)
    return FindingText(f.status, f.statement, f.evidence)


# ---------------------------------------------------------------------------------------------
# The picture reader's refusals
# ---------------------------------------------------------------------------------------------

_IMAGE_PATTERNS = [
    (re.compile(r"^The file is empty\."), N_("The picture file is empty.")),
    (re.compile(r"^The file is [\d.]+ MB; the limit is"), N_("The picture file is larger than the limit.")),
    (re.compile(r"^The file is a (?P<fmt>\S+) image\."), N_("The picture is a {fmt} image.")),
    (re.compile(r"^The image is (?P<w>[\d,]+)×(?P<h>[\d,]+) pixels"),
     N_("The picture has {w}×{h} pixels, more than the limit.")),
    (re.compile(r"^This file is not an image that can be read\."), N_("The file is not a picture that can be read.")),
    (re.compile(r"^The image declares too many pixels"), N_("The picture declares too many pixels to decode safely.")),
    (re.compile(r"^The \S+ file is damaged or truncated"), N_("The picture file is damaged or truncated.")),
]


def picture_error(message: str, max_mb: int, max_side: int) -> str:
    """convmix.bias.decode_upload's refusal, in the visitor's language, with what would work."""
    first = _("The picture could not be used.")
    for regex, template in _IMAGE_PATTERNS:
        found = regex.match(message)
        if found:
            first = _(template, **found.groupdict())
            break
    return first + " " + _("Upload a PNG or JPEG of at most {mb} MB and {side}×{side} pixels.",
                           mb=max_mb, side=max_side)


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------

PICTURE_TITLES = {
    "chelsea": N_("Chelsea the cat"),
    "coffee": N_("A cup of coffee"),
    "astronaut": N_("Astronaut Eileen Collins"),
    "rocket": N_("Launch of DSCOVR on a Falcon 9 rocket"),
}
LICENCE_LABELS = {
    "CC0": "CC0",
    "Public domain (no known copyright restrictions)": N_("public domain (no known copyright restrictions)"),
    "Public domain (released by SpaceX)": N_("public domain (released by SpaceX)"),
}


def picture_title(picture: Picture) -> str:
    return label(PICTURE_TITLES, picture.id) if picture.id in PICTURE_TITLES else picture.title


def picture_credit(picture: Picture) -> str:
    """Title, author, licence and where it comes from (markdown, with a link to the source)."""
    return _("{title}: {author}, {licence}, from `{package}` ([source]({url}))",
             title=picture_title(picture), author=picture.author,
             licence=label(LICENCE_LABELS, picture.licence), package=picture.source_package, url=picture.url)


def upload_picture_error(message: str) -> str:
    return picture_error(message, MAX_UPLOAD_BYTES // 2**20, MAX_SIDE)
