"""The words of the "ACmix in ResNet" page for what the library returns as data or as English.

convmix.paper, convmix.checkpoint and convmix.sources compute; this module says what they found in
the visitor's language (convmix.i18n): the paper check's findings, worded from each finding's own
figures; labels of stages, kinds of module and candidate explanations; and the refusals of the
checkpoint reader, the picture reader and the walkthrough sources. No Streamlit here.

Text that comes from an uploaded file (its name, its keys, a library's low-level reason) is never
put into a sentence: a sentence names it generically, and the page shows the file's own text apart,
as plain text (`Worded.details`), so that nothing in a file can format the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import paper
from .bias import MAX_SIDE, MAX_UPLOAD_BYTES
from .checkpoint import KERNEL_ATT, CheckpointError, FoundACmix
from .format import human_bytes
from .i18n import N_, _, pgettext
from .images import Picture
from .models import DEPTHS, RELEASED_PARAMS

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


def join(items: list[str]) -> str:
    return pgettext("list separator", ", ").join(items)


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
            percents=join([f"{network_name(d)} {figs['percent_below'][d]:.2f} %" for d in DEPTHS])))
    if "dep_conv_weights" in figs:
        gaps = figs["gap_intervals"]
        return FindingText(f.status, _(
            "Adding Σ C·kc⁴ over the ACmix layers (dep_conv's weights once more) gives the table's "
            "figures."), _(
            "Σ C·kc⁴ = {sums}. The extra parameters that the table's rounding allows: {intervals}.",
            sums=_per_depth(figs["dep_conv_weights"], ","),
            intervals=join([f"{network_name(d)} [{gaps[d][0]:,}, {gaps[d][1]:,})" for d in DEPTHS])))
    if "candidates_fit" in figs:
        fit = [label(PARAMETER_CANDIDATE_LABELS, k) for k, v in figs["candidates_fit"].items() if v]
        misfit = [label(PARAMETER_CANDIDATE_LABELS, k) for k, v in figs["candidates_fit"].items() if not v]
        return FindingText(f.status, _("The gap is dep_conv's weights counted a second time."), _(
            "Consistent with all three rounded figures, but any extra inside the intervals above fits "
            "as well. Of the explanations tried, these fit all three networks: {fit}; these do not: "
            "{misfit}.", fit=join(fit) or "—", misfit=join(misfit) or "—"))
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
            evidence += " " + _("These do: {names}.", names=join(matching))
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
            evidence += " " + _("At or under half: {layers}.", layers=join(
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
# Refusals: checkpoints, layers, pictures
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worded:
    text: str  # the visitor's language; markdown-safe (no text from the file inside)
    details: str | None = None  # the file's or a library's own text, shown apart as plain text


_N = r"[\d,]+"
_SIZE = r"[\d,.]+ \w+"


def wrong_extension() -> str:
    return _("This is not a checkpoint file this page reads. Upload a .pth or .pt file saved by "
             "torch.save, or a .safetensors file.")


def empty_file() -> str:
    return _("The file is empty. Upload the checkpoint file itself.")


def too_large(size: int, limit: int, budget: int) -> str:
    return _("The file has {size}; checkpoints up to {limit} are read here (a third of this server's "
             "memory budget of {budget}: the file, its tensors and a network built from them must fit "
             "together). Run the app locally with a larger CONVMIX_MEMORY_BUDGET for bigger ones.",
             size=human_bytes(size), limit=human_bytes(limit), budget=human_bytes(budget))


def _payload_over_budget(m) -> Worded:
    return Worded(_(
        "The file holds {payload} of tensors. Reading it and building a network from it would need "
        "about {need}, over this server's memory budget of {budget}. Checkpoints up to about {limit} "
        "fit; run the app locally with a larger CONVMIX_MEMORY_BUDGET for bigger ones.",
        payload=m["payload"], need=m["need"], budget=m["budget"], limit=m["limit"]))


def _safetensors_too_short(m) -> Worded:
    return Worded(_("The file is too short to be a safetensors file: it has no header. Upload the "
                    "complete, unmodified .safetensors file."))


def _safetensors_header(m) -> Worded:
    return Worded(_("The file is not a valid safetensors file: its header claims {claim} bytes but the "
                    "file has {size}. Upload the complete, unmodified .safetensors file.",
                    claim=m["claim"], size=m["size"]))


def _legacy_format(m) -> Worded:
    return Worded(_("The file uses the format of PyTorch before 1.6, which this page does not read. "
                    "Load it in a recent PyTorch and save it again with `torch.save(state_dict, path)`."))


def _not_torch_save(m) -> Worded:
    return Worded(_("The file was not saved by torch.save (those files are zip archives) and is not a "
                    "safetensors file either. Upload a .pth or .pt from torch.save, or a .safetensors "
                    "file."))


def _damaged_archive(m) -> Worded:
    return Worded(_("The file starts like a torch.save archive but is damaged or truncated. Upload the "
                    "complete file."), m["reason"])


def _too_many_files(m) -> Worded:
    return Worded(_("The archive holds {count} files; the limit is {limit}. Upload a checkpoint of the "
                    "network's weights only.", count=m["count"], limit=m["limit"]))


def _refused_object(m) -> Worded:
    what = m["what"]
    if what:
        text = _("The file was refused: it contains a Python object other than tensors (`{name}`), "
                 "which loading would have to import or call.", name=what)
    else:
        text = _("The file was refused: it contains a Python object other than tensors, which loading "
                 "would have to import or call.")
    text += " " + _("This page loads only with `torch.load(weights_only=True)`, so nothing in the file "
                    "ran.")
    if what and what.startswith("torch.nn.modules"):
        text += " " + _("It stores a whole pickled model object; save `model.state_dict()` instead, "
                        "which holds tensors only.")
    else:
        text += " " + _("Upload a file that holds tensors only (a state dict), or a .safetensors file.")
    return Worded(text)


def _unreadable_torch(m) -> Worded:
    return Worded(_("The file could not be read as a torch.save checkpoint. Upload the complete, "
                    "unmodified file."), m["reason"])


def _unreadable_safetensors(m) -> Worded:
    return Worded(_("The file could not be read as a safetensors file. Upload the complete, unmodified "
                    "file."), m["reason"])


def _not_a_mapping(m) -> Worded:
    return Worded(_("The file holds a Python `{type}`, not a state dict (a mapping from names to "
                    "tensors). Save `model.state_dict()`.", type=m["type"]))


def _no_tensors(m) -> Worded:
    return Worded(_("The file holds no tensors at its top level, nor under `state_dict` or `model`. "
                    "Upload a state dict, bare or wrapped under one of those keys. What the file holds:"),
                  m["keys"])


def _unsupported_tensors(m) -> Worded:
    return Worded(_("The file holds tensors this page cannot read (sparse, quantized or not on the "
                    "CPU). Save a dense float state dict. The tensors:"), m["keys"])


def _not_a_resnet(m) -> Worded:
    return Worded(_("The checkpoint is not one of the authors' ACmix ResNets (26, 38, 50): its keys do "
                    "not show their layer1–layer4 block counts and fc. Its ACmix layers can still be "
                    "opened one at a time."))


def _resnet_mismatch(m) -> Worded:
    return Worded(_("The checkpoint looks like ACmix ResNet-{depth} but does not match it exactly, so "
                    "the whole network cannot run. Its ACmix layers can still be opened one at a time. "
                    "The differences:", depth=m["depth"]), m["parts"])


# The library's English messages (the file's name replaced by {file}) and their wording here;
# tests/test_network_text.py produces each message from the library itself.
_CHECKPOINT_PATTERNS = [(re.compile(regex, re.S), fn) for regex, fn in [
    (r"^\{file\} is not a checkpoint this page reads", lambda m: Worded(wrong_extension())),
    (r"^\{file\} is empty\.", lambda m: Worded(empty_file())),
    (rf"^\{{file\}} holds (?P<payload>{_SIZE}) of tensors; reading it and building a network from it "
     rf"needs about (?P<need>{_SIZE}), over this server's memory budget of (?P<budget>{_SIZE})\. "
     rf"Checkpoints up to about (?P<limit>{_SIZE}) fit", _payload_over_budget),
    (r"^\{file\} is too short to be a safetensors file", _safetensors_too_short),
    (rf"^\{{file\}} is not a valid safetensors file: its header claims (?P<claim>{_N}) bytes but the "
     rf"file has (?P<size>{_N})", _safetensors_header),
    (r"^\{file\} uses the serialization of PyTorch before 1\.6", _legacy_format),
    (r"^\{file\} is not a file saved by torch\.save", _not_torch_save),
    (r"^\{file\} starts like a torch\.save archive but is damaged or truncated \((?P<reason>.*)\)\. ",
     _damaged_archive),
    (rf"^\{{file\}} holds (?P<count>{_N}) files; the limit is (?P<limit>{_N})", _too_many_files),
    (r"^\{file\} was refused: it contains a Python object other than tensors(?: \((?P<what>[\w.]+)\))?",
     _refused_object),
    (r"^\{file\} could not be read as a torch\.save checkpoint \((?P<reason>.*)\)\. ", _unreadable_torch),
    (r"^\{file\} could not be read as a safetensors file \((?P<reason>.*)\)\. ", _unreadable_safetensors),
    (r"^\{file\} holds a (?P<type>\w+), not a state dict", _not_a_mapping),
    (r"^\{file\} holds no tensors at its top level or under 'state_dict' or 'model' "
     r"\(it holds: (?P<keys>.*)\)\. Upload", _no_tensors),
    (r"^\{file\} holds tensors this page cannot read \(sparse, quantized or not on the CPU\): "
     r"(?P<keys>.*)\. Save", _unsupported_tensors),
    (r"^\{file\} is not one of the authors' ACmix ResNets", _not_a_resnet),
    (r"^\{file\} looks like ACmix ResNet-(?P<depth>\d+) but does not match it exactly "
     r"\((?P<parts>.*)\)\. Its", _resnet_mismatch),
]]


def _checkpoint_worded(message: str) -> Worded:
    for regex, fn in _CHECKPOINT_PATTERNS:
        found = regex.search(message)
        if found:
            return fn(found)
    return Worded(_("The file could not be used as a checkpoint. The reader's own explanation follows."),
                  message)


def checkpoint_error(err: CheckpointError, filename: str) -> Worded:
    """A refusal of convmix.checkpoint, in the visitor's language."""
    message = str(err)
    for shown in {repr(filename), repr(str(filename))}:
        message = message.replace(shown, "{file}", 1)
    return _checkpoint_worded(message)


def build_error(err: CheckpointError) -> Worded:
    """build_acmix's refusal of a layer (unusable weights or a configuration ACmix cannot run)."""
    message = str(err)
    if " cannot run as ACmix: " in message:
        return Worded(_("This layer's weights cannot run as ACmix with the window and stride chosen. The "
                        "constraint that failed:"), message.split(" cannot run as ACmix: ", 1)[1])
    return Worded(_("This layer's weights do not form a complete ACmix layer. What is wrong:"), message)


_PROBLEM_PATTERNS = [
    (re.compile(r"^has no (?P<key>[\w.]+)$"), N_("`{key}` is missing")),
    (re.compile(r"^has a dep_conv\.bias, which the authors' ACmix removes \(Q1\)$"),
     N_("it has a `dep_conv.bias`, which the authors' ACmix removes (Q1)")),
    (re.compile(r"^\.(?P<key>[\w.]+) has shape (?P<shape>\([\d, ]*\)), not (?P<want>.*)$"),
     N_("`{key}` has shape `{shape}`, not `{want}`")),
    (re.compile(r"^\.(?P<key>[\w.]+) has shape (?P<shape>\([\d, ]*\)), conv1's is (?P<want>\([\d, ]*\))$"),
     N_("`{key}` has shape `{shape}`; conv1's is `{want}`")),
    (re.compile(r"^: conv_p's (?P<n>\d+) channels \(head_dim\) do not divide (?P<c>\d+) channels$"),
     N_("conv_p's {n} channels (head_dim) do not divide the {c} channels")),
    (re.compile(r"^\.fc\.weight has (?P<n>\d+) input channels; 3·head = (?P<m>\d+)$"),
     N_("`fc.weight` has {n} input channels; 3·head = {m}")),
    (re.compile(r"^\.dep_conv\.weight has shape (?P<shape>\([\d, ]*\)), expected (?P<want>\([\d, ]*\))$"),
     N_("`dep_conv.weight` has shape `{shape}`; expected `{want}`")),
    (re.compile(r"^\.(?P<key>rate[12]) holds (?P<n>\d+) values, not one$"),
     N_("`{key}` holds {n} values, not one")),
]


def layer_problem(layer: FoundACmix, problem: str) -> str:
    """One of FoundACmix.problems, in the visitor's language (markdown: keys and shapes as code;
    the layer's own name, which comes from the file, is left out)."""
    prefix = layer.name or "(top level)"
    rest = problem[len(prefix):] if problem.startswith(prefix) else problem
    rest = rest.lstrip() if rest.startswith(" ") else rest
    for regex, template in _PROBLEM_PATTERNS:
        found = regex.match(rest)
        if found:
            return _(template, **found.groupdict())
    return "`" + rest.replace("`", "'") + "`"


def stride_source(layer: FoundACmix) -> str:
    if layer.stride is not None:
        return _("from the authors' ResNet layout (stride 2 in the first block of layer2–layer4)")
    return _("not stored in the weights: choose it (1 unless the layer downsamples)")


def kernel_att_note() -> str:
    return _("kernel_att is not stored in the weights: no parameter's shape depends on the attention "
             "window. The authors' ResNets use {k}; choose another value if the checkpoint comes from "
             "elsewhere.", k=KERNEL_ATT)


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
# Pictures, sources and URL notes
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


def source_error(err) -> Worded:
    """A convmix.sources.SourceError in the visitor's language."""
    v = err.values
    code = err.code
    if code == "budget":
        what = {
            "module": _("Building the module and its input"),
            "stem": _("Passing the pictures through the seed's stem"),
            "forward": _("Running the network up to {layer}", layer=v.get("layer", "")),
            "layer": _("Building the layer and its input"),
        }.get(v.get("what"), _("This step"))
        return Worded(_("{what} would need about {need}, over this server's memory budget of {budget}, so "
                        "it was not run. Choose a smaller image, an earlier layer or a smaller network.",
                        what=what, need=human_bytes(v["need"]), budget=human_bytes(v["budget"])))
    if code == "network_too_large":
        return Worded(_("The weights of ResNet-{depth} take {need}; networks up to {limit} (a third of this "
                        "server's memory budget) are built here. Choose a smaller network, or run the app "
                        "locally with a larger CONVMIX_MEMORY_BUDGET.",
                        depth=v["depth"], need=human_bytes(v["need"]), limit=human_bytes(v["limit"])))
    if code == "net_seed":
        return Worded(_("The seed must be a whole number from {low} to {high:,}.", low=v["low"], high=v["high"]))
    if code == "unknown_layer":
        return Worded(_("The layer chosen is not an ACmix layer of this network. Its ACmix layers:"),
                      ", ".join(map(str, v.get("layers", []))))
    if code == "image_size":
        return Worded(_("The image size must be a multiple of {step} from {low} to {high}.",
                        step=v["step"], low=v["low"], high=v["high"]))
    if code == "upload_missing":
        if v.get("kind") == "picture":
            return Worded(_("The uploaded picture is no longer held by the server (uploads are kept for a "
                            "while, within the memory budget). Upload it again."))
        return Worded(_("The uploaded checkpoint is no longer held by the server (uploads are kept for a "
                        "while, within the memory budget). Upload it again on the ACmix in ResNet page."))
    if code == "no_forward":
        worded = checkpoint_error(CheckpointError(v["reason"]), v.get("filename", ""))
        return worded
    if code == "picture":
        return Worded(upload_picture_error(v.get("reason", "")))
    if code == "layer":
        return build_error(CheckpointError(v["reason"]))
    if code == "config":
        return Worded(_("This configuration cannot run. The constraints that fail:"),
                      "\n".join(v.get("problems", [])))
    return Worded(_("This cannot be shown here."), str(err))


def note_text(note) -> str:
    """A convmix.sources.Note (a URL value not taken as given), in the visitor's language."""
    v = dict(note.values)
    if note.code == "net":
        return _("URL parameter net=`{value}` names no network here (resnet26, resnet38, resnet50, or an "
                 "upload of this session).", value=note.value)
    if note.code == "net_seed":
        return _("URL parameter net_seed=`{value}` is not a whole number from {low} to {high:,}; using 0.",
                 value=note.value, low=v["low"], high=v["high"])
    if note.code == "layer":
        return _("URL parameter layer=`{value}` is not an ACmix layer of {network}.", value=note.value,
                 network=v["network"])
    if note.code == "picture":
        return _("URL parameter picture=`{value}` is not a built-in picture; using {default}.",
                 value=note.value, default=v["default"])
    if note.code == "image_size":
        return _("URL parameter image_size=`{value}` is not a multiple of {step} from {low} to {high}; "
                 "using {default}.", value=note.value, step=v["step"], low=v["low"], high=v["high"],
                 default=v["default"])
    if note.code == "upload_missing":
        return _("URL parameter `{value}` names an upload that this session does not hold (an upload stays "
                 "with the session that made it).", value=note.value)
    return _("URL parameter `{value}` was not understood.", value=note.value)
