"""Reading uploaded checkpoints safely, and finding the ACmix layers in them.

Loading never runs code from the file: `.pth`/`.pt` go through `torch.load(weights_only=True)`,
whose unpickler only builds tensors and plain containers and refuses anything else (a pickle that
would call a function is refused before the call); `.safetensors` holds no code at all. Every
failure raises `CheckpointError`, whose message says what was wrong and what would work in the
visitor's language (convmix.i18n) and never quotes the file: the file's own text (its keys, a
reader's reason) travels apart, in `details`.

Memory is admitted like any other work (convmix.budget): the tensors' size is read from the
container before anything is decoded, and decoding is reserved against the process budget beside
what the process holds (`load_bytes`); a checkpoint is also refused when its tensors exceed the
share of the budget that keeps uploads and networks for the pages (`max_kept_bytes`). The
uploader's own limit, `max_file_bytes`, follows from the same admission.

An ACmix layer is recognised by its keys (`<prefix>.conv1.weight` ... `<prefix>.dep_conv.weight`,
`rate1`, `rate2`); its configuration is read from the shapes. `kernel_att` is not stored anywhere
(no parameter depends on the window size), and neither is the stride: both come from the authors'
ResNet layout where the layer's name matches it, else from the caller.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from .acmix import ACmix
from .budget import OverBudget, in_use, memory_budget, reserved
from .constraints import ConfigError
from .format import human_bytes, join_items
from .i18n import N_, _
from .models import KERNEL_ATT, acmix_resnet, depth_of_blocks
from .quirks import cite

EXTENSIONS = (".pth", ".pt", ".safetensors")
WRAPPER_KEYS = ("state_dict", "model")  # what ImageNet training scripts wrap the weights in
MAX_ENTRIES = 100_000  # files inside a zip, or tensors in a safetensors header
SAFETENSORS_MAX_HEADER = 100 * 2**20  # the safetensors library's own limit
# Uploads and the networks built from them are kept for the pages in a cache of a third of the
# budget (convmix.ui.walkthrough_source), so that a forward through a kept network still fits.
KEPT_SHARE = 3
# An upload of S bytes, while it is read: the server's copy of the upload, the page's copy of its
# bytes, and the decoded tensors (about S; see load_bytes).
UPLOAD_COPIES = 3
FINITE_CHUNK = 1 << 16  # elements per NaN/infinity check: its temporaries (about 3 × 4 bytes each) stay small
# What reading allocates beside the tensors: the readers' own buffers and the NaN check's temporaries
# (measured: under 7 MiB on a process's first read, under 1 MiB after).
READ_OVERHEAD = 8 << 20


def kernel_att_note() -> str:
    return _("kernel_att is not stored in the weights: no parameter's shape depends on the attention window. "
             "The authors' ResNets use {k}; give another value if the checkpoint comes from elsewhere.",
             k=KERNEL_ATT)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used.

    `message` says why and what would work, in the visitor's language, and quotes nothing from the
    file (a page may show it as markdown); `details` is the file's own text or a reader's reason
    (keys, a library's error), to be shown apart as plain text; `filename` names the file. str()
    holds all three, for logs and the command line.
    """

    def __init__(self, message: str, details: str | None = None, filename: str | None = None):
        self.message, self.details, self.filename = message, details, filename
        text = message if filename is None else f"{filename!r}: {message}"
        super().__init__(text if details is None else f"{text} ({details})")


@dataclass(frozen=True)
class Checkpoint:
    filename: str
    format: str  # "PyTorch" or "safetensors"
    wrapper: str | None  # the key the weights sat under ("state_dict", "model"), None if bare
    stripped_prefix: str | None  # "module." when DataParallel's prefix was removed
    state_dict: dict[str, torch.Tensor]
    other_entries: tuple[str, ...] = ()  # what sat beside the weights (epoch, optimizer, ...)
    non_finite: tuple[str, ...] = ()  # tensors holding NaN or infinity

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.state_dict.values())

    @property
    def tensor_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state_dict.values())


def load_bytes(payload: int) -> int:
    """Memory that reading a checkpoint allocates beyond the file: its decoded tensors (torch.load
    from memory and safetensors' load both peak at the tensors' own size) and READ_OVERHEAD;
    tests/test_checkpoint.py checks it against the resident memory a read adds at its peak."""
    return payload + READ_OVERHEAD


def max_kept_bytes(budget: int | None = None) -> int:
    """The most tensor bytes a checkpoint may hold: the pages keep it in a third of the budget."""
    return (memory_budget() if budget is None else budget) // KEPT_SHARE


def max_file_bytes(budget: int | None = None, held: int | None = None) -> int:
    """The largest checkpoint file whose reading would be admitted now: at most the kept share, and
    small enough that its UPLOAD_COPIES copies and READ_OVERHEAD fit in what the budget leaves
    beside `held` (default: what the process holds and running requests reserved, budget.in_use)."""
    budget = memory_budget() if budget is None else budget
    held = in_use() if held is None else held
    return max(0, min(max_kept_bytes(budget), (budget - held - READ_OVERHEAD) // UPLOAD_COPIES))


def load_checkpoint(data: bytes, filename: str, budget: int | None = None,
                    make_room: Callable[[], bool] | None = None) -> Checkpoint:
    """Read a `.pth`/`.pt` or `.safetensors` upload into a flat state dict of tensors.

    Decoding is admitted against the process budget (`budget`, default memory_budget()) beside what
    the process holds; `make_room` (e.g. evicting a cache entry) is asked while it does not fit.
    """
    budget = memory_budget() if budget is None else budget
    name = filename.lower()
    if not name.endswith(EXTENSIONS):
        raise CheckpointError(_("This is not a checkpoint this page reads: upload a .pth or .pt file saved by "
                                "torch.save, or a .safetensors file."), filename=filename)
    if not data:
        raise CheckpointError(_("The file is empty. Upload the checkpoint file itself."), filename=filename)
    payload = _payload_bytes(data, filename, name.endswith(".safetensors"))
    if payload > max_kept_bytes(budget):
        raise CheckpointError(_(
            "The file holds {payload} of tensors; checkpoints of up to {limit} of tensors are kept here (a "
            "third of this server's memory budget of {budget}, so that a network built from one still "
            "fits). Run the app locally with a larger CONVMIX_MEMORY_BUDGET for bigger ones.",
            payload=human_bytes(payload), limit=human_bytes(max_kept_bytes(budget)),
            budget=human_bytes(budget)), filename=filename)
    room = budget - in_use() - READ_OVERHEAD
    if room > 0:
        advice = _("Checkpoints up to about {limit} fit beside what it holds now; run the app locally with a "
                   "larger CONVMIX_MEMORY_BUDGET for bigger ones.", limit=human_bytes(room))
    else:
        advice = _("It has no room for a checkpoint now: try again in a moment, or run the app locally with a "
                   "larger CONVMIX_MEMORY_BUDGET.")
    try:
        with reserved(load_bytes(payload), budget, N_("Reading this checkpoint"), make_room, advice):
            if name.endswith(".safetensors"):
                obj = _load_safetensors(data, filename)
                fmt = "safetensors"
            else:
                obj = _load_torch(data, filename)
                fmt = "PyTorch"
            state, wrapper, others = _unwrap(obj, filename)
            state, prefix = _strip_prefix(state)
            bad = [k for k, t in state.items()
                   if t.layout != torch.strided or t.is_quantized or t.device.type != "cpu"]
            if bad:
                raise CheckpointError(_("The file holds tensors this page cannot read (sparse, quantized or "
                                        "not on the CPU). Save a dense float state dict."),
                                      join_items(bad[:5]), filename)
            non_finite = tuple(k for k, t in state.items() if not _finite(t))
    except OverBudget as err:
        raise CheckpointError(err.refusal.message(), filename=filename) from None
    return Checkpoint(filename, fmt, wrapper, prefix, state, others, non_finite)


def _finite(t: torch.Tensor) -> bool:
    """No NaN or infinity in `t`, checked in chunks (a whole-tensor check allocates its size again)."""
    if not t.is_floating_point():
        return True
    flat = t.reshape(-1)
    return all(bool(torch.isfinite(chunk).all()) for chunk in flat.split(FINITE_CHUNK))


def _payload_bytes(data: bytes, filename: str, safetensors: bool) -> int:
    """Bytes the tensors will occupy once decoded, read from the container before decoding."""
    if safetensors:
        if len(data) < 8:
            raise CheckpointError(_("The file is too short to be a safetensors file: it has no header. Upload "
                                    "the complete, unmodified .safetensors file."), filename=filename)
        (header,) = struct.unpack("<Q", data[:8])
        if header > min(SAFETENSORS_MAX_HEADER, len(data) - 8):
            raise CheckpointError(_(
                "The file is not a valid safetensors file: its header claims {claim:,} bytes but the file has "
                "{size:,}. Upload the complete, unmodified .safetensors file.", claim=header, size=len(data)),
                filename=filename)
        return len(data) - 8 - header
    if data[:4] != b"PK\x03\x04":
        if data[:1] == b"\x80":
            raise CheckpointError(_(
                "The file uses the serialization of PyTorch before 1.6, which this page does not read. Load it "
                "in a recent PyTorch and save it again with torch.save(state_dict, path)."), filename=filename)
        raise CheckpointError(_(
            "This is not a file saved by torch.save (those are zip archives), nor a safetensors file. Upload a "
            ".pth or .pt from torch.save, or a .safetensors file."), filename=filename)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as err:
        raise CheckpointError(_("The file starts like a torch.save archive but is damaged or truncated. "
                                "Upload the complete file."), str(err), filename) from None
    if len(infos) > MAX_ENTRIES:
        raise CheckpointError(_("The archive holds {count:,} files; the limit is {limit:,}. Upload a checkpoint "
                                "of the network's weights only.", count=len(infos), limit=MAX_ENTRIES),
                              filename=filename)
    return sum(i.file_size for i in infos)


def _load_torch(data: bytes, filename: str):
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:  # a dotted Python name: safe inside a code span
            what = _("The file was refused: it contains a Python object other than tensors (`{name}`), which "
                     "loading would have to import or call.", name=found.group(1))
        else:
            what = _("The file was refused: it contains a Python object other than tensors, which loading "
                     "would have to import or call.")
        if found and found.group(1).startswith("torch.nn.modules"):
            hint = _("It stores a whole pickled model object; save model.state_dict() instead, which holds "
                     "tensors only.")
        else:
            hint = _("Upload a file that holds tensors only (a state dict), or a .safetensors file.")
        ran = _("This page only loads with torch.load(weights_only=True), so nothing in the file ran.")
        raise CheckpointError(f"{what} {ran} {hint}", filename=filename) from None
    except Exception as err:  # a malformed archive can fail in many layers of torch.load
        raise CheckpointError(_("The file could not be read as a torch.save checkpoint. Upload the complete, "
                                "unmodified file."), _reason(err), filename) from None


def _load_safetensors(data: bytes, filename: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as err:  # SafetensorError and friends
        raise CheckpointError(_("The file could not be read as a safetensors file. Upload the complete, "
                                "unmodified file."), _reason(err), filename) from None


def _reason(err: Exception) -> str:
    """A reader's own explanation, one line (shown apart from the message, as plain text)."""
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__


def _unwrap(obj, filename: str) -> tuple[dict[str, torch.Tensor], str | None, tuple[str, ...]]:
    if not isinstance(obj, Mapping):
        kind = re.sub(r"[^\w.]", "?", type(obj).__name__)[:40]  # a type weights_only allows: list, tuple …
        raise CheckpointError(_("The file holds a {type}, not a state dict (a mapping from names to tensors). "
                                "Save model.state_dict().", type=kind), filename=filename)
    wrapper = None
    others: tuple[str, ...] = ()
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            wrapper = key
            others = tuple(str(k) for k in obj if k != key)
            obj = obj[key]
            break
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    skipped = tuple(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if not state:
        keys = ", ".join(map(str, list(obj)[:8]))
        raise CheckpointError(_("The file holds no tensors at its top level or under state_dict or model. "
                                "Upload a state dict, bare or wrapped under one of those keys."),
                              _("it holds: {keys}", keys=keys) if keys else _("it holds nothing"), filename)
    return state, wrapper, others + skipped


def _strip_prefix(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str | None]:
    """DataParallel and DistributedDataParallel save every key as 'module.<name>'."""
    prefix = "module."
    if all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}, prefix
    return state, None


# ---------------------------------------------------------------------------------------------
# ACmix layers in a state dict
# ---------------------------------------------------------------------------------------------

ACMIX_KEYS = (
    "rate1", "rate2", "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight",
    "conv3.bias", "conv_p.weight", "conv_p.bias", "fc.weight", "dep_conv.weight",
)
_AUTHORS_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.conv2$")


@dataclass(frozen=True)
class FoundACmix:
    """One ACmix layer of a state dict, its configuration as far as the weights tell it.

    `stride_source` and `problems` are sentences in the language active when the layer was found;
    a problem names the layer and its keys, which come from the file: show them as plain text.
    """

    name: str  # the key prefix without the trailing dot, e.g. "layer2.0.conv2"
    in_planes: int | None
    out_planes: int | None
    head: int | None
    kernel_conv: int | None
    stride: int | None  # from the authors' layout; None when the name does not tell
    stride_source: str
    problems: tuple[str, ...] = field(default=())

    @property
    def usable(self) -> bool:
        return not self.problems


def find_acmix_layers(state: Mapping[str, torch.Tensor]) -> list[FoundACmix]:
    """Every prefix holding dep_conv.weight, in the state dict's order, with its configuration."""
    out = []
    for key in state:
        if key == "dep_conv.weight" or key.endswith(".dep_conv.weight"):
            out.append(_inspect(state, key[: -len("dep_conv.weight")].rstrip(".")))
    return out


def _inspect(state: Mapping[str, torch.Tensor], name: str) -> FoundACmix:
    def key(sub):
        return f"{name}.{sub}" if name else sub

    def get(sub):
        return state.get(key(sub))

    layer = name or _("(top level)")
    problems = [_("{layer} has no {key}", layer=layer, key=k) for k in ACMIX_KEYS if get(k) is None]
    if get("dep_conv.bias") is not None:
        problems.append(_("{layer} has a dep_conv.bias, which the authors' ACmix removes ({quirk})", layer=layer,
                          quirk=cite("Q1")))
    stride, source = _layout_stride(name)
    cin = c = head = kc = None
    if not problems:
        w1, cp, fc, dep = (tuple(get(k).shape) for k in ("conv1.weight", "conv_p.weight", "fc.weight", "dep_conv.weight"))

        def wrong_shape(sub, shape, expected):
            problems.append(_("{key} has shape {shape}, not {expected}", key=key(sub), shape=shape,
                              expected=expected))

        if len(w1) != 4 or w1[2:] != (1, 1):
            wrong_shape("conv1.weight", w1, "(out_planes, in_planes, 1, 1)")
        else:
            c, cin = w1[0], w1[1]
            for sub in ("conv2.weight", "conv3.weight"):
                if tuple(get(sub).shape) != w1:
                    problems.append(_("{key} has shape {shape}, conv1's is {conv1}", key=key(sub),
                                      shape=tuple(get(sub).shape), conv1=w1))
            for sub in ("conv1.bias", "conv2.bias", "conv3.bias"):
                if tuple(get(sub).shape) != (c,):
                    wrong_shape(sub, tuple(get(sub).shape), f"({c},)")
        if len(cp) != 4 or cp[1:] != (2, 1, 1) or cp[0] < 1:
            wrong_shape("conv_p.weight", cp, "(head_dim, 2, 1, 1)")
        elif c is not None:
            if c % cp[0]:
                problems.append(_("{layer}: conv_p's {count} channels (head_dim) do not divide {channels} "
                                  "channels", layer=layer, count=cp[0], channels=c))
            else:
                head = c // cp[0]
        if len(fc) != 4 or fc[2:] != (1, 1) or math.isqrt(fc[0]) ** 2 != fc[0]:
            wrong_shape("fc.weight", fc, "(kernel_conv², 3·head, 1, 1)")
        else:
            kc = math.isqrt(fc[0])
            if head is not None and fc[1] != 3 * head:
                problems.append(_("{key} has {count} input channels; 3·head = {expected}", key=key("fc.weight"),
                                  count=fc[1], expected=3 * head))
        if c is not None and kc is not None and dep != (c, kc * kc, kc, kc):
            problems.append(_("{key} has shape {shape}, expected {expected}", key=key("dep_conv.weight"),
                              shape=dep, expected=(c, kc * kc, kc, kc)))
        for sub in ("rate1", "rate2"):
            if get(sub).numel() != 1:
                problems.append(_("{key} holds {count} values, not one", key=key(sub), count=get(sub).numel()))
    if problems:
        cin = c = head = kc = None
    return FoundACmix(name, cin, c, head, kc, stride, source, tuple(problems))


def _layout_stride(name: str) -> tuple[int | None, str]:
    match = _AUTHORS_BLOCK.match(name)
    if match is None:
        return None, _("not stored in the weights; give it (1 unless the layer downsamples)")
    stage, block = int(match.group(1)), int(match.group(2))
    stride = 2 if stage > 1 and block == 0 else 1
    return stride, _("the authors' ResNet layout (stride 2 in the first block of layer2-layer4)")


def acmix_state(state: Mapping[str, torch.Tensor], layer: FoundACmix) -> dict[str, torch.Tensor]:
    prefix = f"{layer.name}." if layer.name else ""
    return {k: state[prefix + k].to(torch.float32) for k in ACMIX_KEYS}


def build_acmix(
    state: Mapping[str, torch.Tensor], layer: FoundACmix, kernel_att: int = KERNEL_ATT,
    stride: int | None = None, variant: str = "official",
) -> ACmix:
    """An ACmix with the layer's own weights (float32), loaded with strict=True."""
    if not layer.usable:
        raise CheckpointError(_("This layer's weights do not form a complete ACmix layer."),
                              "; ".join(layer.problems) + ".")
    stride = stride if stride is not None else (layer.stride or 1)
    try:
        with torch.device("meta"):
            module = ACmix(layer.in_planes, layer.out_planes, kernel_att, layer.head, layer.kernel_conv,
                           stride, variant=variant)
    except ConfigError as err:
        message = _("This layer's weights cannot run as ACmix with the window and stride chosen.")
        if layer.kernel_conv != 3:
            message += " " + _("The fixed variant (variant='fixed') runs any odd kernel_conv.")
        raise CheckpointError(message, " ".join(p.sentence() for p in err.problems)) from None
    module.load_state_dict(acmix_state(state, layer), strict=True, assign=True)
    return module.eval()


# ---------------------------------------------------------------------------------------------
# A whole network from a checkpoint
# ---------------------------------------------------------------------------------------------


def resnet_depth(state: Mapping[str, torch.Tensor]) -> int | None:
    """The depth (26, 38, 50) whose block counts the keys show, or None."""
    blocks = [0, 0, 0, 0]
    for key in state:
        match = re.match(r"^layer([1-4])\.(\d+)\.", key)
        if match:
            stage, index = int(match.group(1)), int(match.group(2))
            blocks[stage - 1] = max(blocks[stage - 1], index + 1)
    return depth_of_blocks(tuple(blocks))


def network_bytes(checkpoint: Checkpoint) -> int:
    """What building the network from the checkpoint allocates: float32 copies of the tensors that
    are not float32 already (the others become the network's weights as they are)."""
    return sum(4 * t.numel() for t in checkpoint.state_dict.values()
               if t.is_floating_point() and t.dtype != torch.float32)


def load_resnet(checkpoint: Checkpoint):
    """The authors' ACmix ResNet with the checkpoint's weights (strict), in eval mode."""
    state = checkpoint.state_dict
    depth = resnet_depth(state)
    if depth is None or "fc.weight" not in state:
        raise CheckpointError(_(
            "The checkpoint is not one of the authors' ACmix ResNets (26, 38, 50): its keys do not show their "
            "layer1-layer4 block counts and fc. Its ACmix layers can still be opened one at a time."),
            filename=checkpoint.filename)
    model = acmix_resnet(depth, num_classes=int(state["fc.weight"].shape[0]), device="meta")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        def keys(found):
            return ", ".join(found[:4]) + (" …" if len(found) > 4 else "")

        parts = []
        if missing:
            parts.append(_("missing {keys}", keys=keys(missing)))
        if unexpected:
            parts.append(_("unexpected {keys}", keys=keys(unexpected)))
        if wrong:
            parts.append(_("wrong shape for {keys}", keys=keys(wrong)))
        raise CheckpointError(_(
            "The checkpoint looks like ACmix ResNet-{depth} but does not match it exactly, so the whole network "
            "cannot run. Its ACmix layers can still be opened one at a time.", depth=depth),
            "; ".join(parts), checkpoint.filename)
    weights = {k: (v.to(torch.float32) if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# What a researcher compares across layers
# ---------------------------------------------------------------------------------------------


def shift_kernels(channels: int, kernel_conv: int) -> torch.Tensor:
    """dep_conv's initial weight: weight[o, i, a, b] = 1 where i = a·kc + b (ACMIX.md)."""
    kc = kernel_conv
    shift = torch.zeros(kc * kc, kc, kc)
    for i in range(kc * kc):
        shift[i, i // kc, i % kc] = 1.0
    return shift.unsqueeze(0).expand(channels, -1, -1, -1)


@dataclass(frozen=True)
class LayerStats:
    name: str
    position: int  # order in the network, from 0
    in_planes: int
    out_planes: int
    head: int
    kernel_conv: int
    stride: int | None
    rate1: float
    rate2: float
    rate_ratio: float | None  # rate1 / rate2 (None when rate2 is 0)
    attention_weight: float  # |rate1| / (|rate1| + |rate2|)
    norms: dict[str, float]  # Frobenius norm of each weight and bias
    rms: dict[str, float]  # root mean square: comparable across widths
    dep_conv_shift_distance: float  # ‖W − shift‖ / ‖shift‖
    dep_conv_is_shift: bool
    dep_conv_shift_energy: float  # share of each kernel's energy on its own shift tap (1/kc² for noise)
    conv_p_bias_mean: float

    def row(self) -> dict:
        out = {k: getattr(self, k) for k in (
            "name", "position", "in_planes", "out_planes", "head", "kernel_conv", "stride", "rate1",
            "rate2", "rate_ratio", "attention_weight", "dep_conv_shift_distance", "dep_conv_is_shift",
            "dep_conv_shift_energy", "conv_p_bias_mean")}
        out.update({f"norm {k}": v for k, v in self.norms.items()})
        out.update({f"rms {k}": v for k, v in self.rms.items()})
        return out


NORMED = ("conv1.weight", "conv2.weight", "conv3.weight", "conv1.bias", "conv2.bias", "conv3.bias",
          "conv_p.weight", "conv_p.bias", "fc.weight", "dep_conv.weight")


def layer_statistics(state: Mapping[str, torch.Tensor], layers: list[FoundACmix]) -> list[LayerStats]:
    """Per-layer statistics of every usable ACmix layer, in network order."""
    out = []
    for position, layer in enumerate(x for x in layers if x.usable):
        w = acmix_state(state, layer)
        r1, r2 = w["rate1"].item(), w["rate2"].item()
        norms = {k: w[k].norm().item() for k in NORMED}
        rms = {k: (w[k].pow(2).mean().sqrt().item()) for k in NORMED}
        dep = w["dep_conv.weight"]
        shift = shift_kernels(layer.out_planes, layer.kernel_conv)
        distance = ((dep - shift).norm() / shift.norm()).item()
        kc2 = layer.kernel_conv**2
        own_tap = dep.reshape(layer.out_planes, kc2, kc2).diagonal(dim1=1, dim2=2)  # weight[o, i, tap i]
        energy = dep.pow(2).sum().item()
        out.append(LayerStats(
            name=layer.name, position=position, in_planes=layer.in_planes, out_planes=layer.out_planes,
            head=layer.head, kernel_conv=layer.kernel_conv, stride=layer.stride, rate1=r1, rate2=r2,
            rate_ratio=r1 / r2 if r2 != 0 else None,
            attention_weight=abs(r1) / (abs(r1) + abs(r2)) if (r1 or r2) else float("nan"),
            norms=norms, rms=rms, dep_conv_shift_distance=distance,
            dep_conv_is_shift=bool(torch.equal(dep, shift)),
            dep_conv_shift_energy=own_tap.pow(2).sum().item() / energy if energy else float("nan"),
            conv_p_bias_mean=w["conv_p.bias"].mean().item(),
        ))
    return out


def statistics_frame(stats: list[LayerStats]):
    """The statistics as a pandas DataFrame, one row per layer (for charts and tables)."""
    import pandas as pd

    return pd.DataFrame([s.row() for s in stats])
