"""Which ACmix module a walkthrough shows, and which input reaches it.

A *source* is a small, frozen, hashable description: it can key a cache, be kept in a session, and
(where it names nothing private) round-trip through URL query parameters. `materialize(source,
resolver)` produces the module and its input tensor; every allocation it makes is admitted against
the memory budget first, beside what the process holds (convmix.budget: building a network, the
module, the stem, the forward up to a layer). Each step reserves what it allocates and nothing that
is held already (a built network's weights, the stem's features), so that a caller need not, and
must not, admit the same work again around it. Every refusal is a `SourceError` with a code, the
figures, and a message in the visitor's language (convmix.i18n) that says what failed and what
would work.

Four kinds of source:

* `RandomInit(config)`: the sidebar's configuration, weights drawn from its seed, on seeded noise
  (`config.build()`, `config.make_input()`).
* `RandomInitPicture(config, picture)`: the same module on photographs passed through the seed's
  stem (`convmix.activations.stem_features`). Batch item 0 is the chosen picture; further items
  are the other built-in pictures in catalogue order, so that batch items differ.
* `NetworkLayer(network, layer, image, image_size)`: an ACmix layer of a whole network with its own
  weights, on the activation that really reaches it when the image goes through the network's own
  forward (a forward pre-hook, `convmix.activations.layer_input`; nothing is re-implemented).
* `LayerAlone(network, layer, picture, size, kernel_att, stride)`: a layer of a checkpoint whose
  network cannot run here (not one of the authors' ResNets): its own weights, on a photograph
  through the seed's stem at the layer's width (seeded noise when `picture` is None).

Networks are references: `ResNetRef(depth, seed)`, the authors' ACmix ResNet randomly initialised
here, `CheckpointRef(sha256)`, an uploaded checkpoint, and `DigitsRef(sha256)`, a network trained on
the digits in this process. A `Resolver` turns references into
modules (through the builder registered for the reference's type in `NETWORK_BUILDERS`),
checkpoints and uploaded bytes; the app keeps them in a byte-bounded cache, tests build them
directly. What a network does with an image is its *kind*, an adapter registered per module class
in `NETWORK_KINDS`: the layers it has, the image's tensor, the memory a forward up to a layer needs,
and the input captured there. A network trained on the digits (convmix.train, the "Train it live" page) is the third kind of
network: `DigitsRef(sha256)` names a frozen copy of it (`freeze_trained`), which a resolver holds
like an upload (`Resolver(trained=...)`, `CachedResolver.keep_trained`); its builder returns that
copy, and the NetworkKind of `DigitsNet` takes a held-out digit (`HeldOutDigit(position)`) as its
image, so `NetworkLayer(DigitsRef(...), "mixer", HeldOutDigit(0), 8)` materialises like any other
layer: the trained ACmix layer on the activation its own forward feeds it for that digit.

Networks are shared by every session, so captures through one network run one at a time, and the
module handed out is a copy of the network's layer (same weights), which a trace may instrument.
"""

from __future__ import annotations

import copy
import hashlib
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from . import images
from .acmix import ACmix
from .activations import (
    ELEMENT,
    acmix_layer_names,
    forward_bytes_until,
    layer_input,
    stem_bytes,
    stem_features,
    to_network_input,
)
from .bias import ImageError
from .budget import (
    OverBudget,
    build_bytes,
    memory_budget,
    module_bytes,
    reserved,
    weights_and_input_bytes,
)
from .bytecache import ByteCache
from .checkpoint import (
    KEPT_SHARE,
    Checkpoint,
    CheckpointError,
    build_acmix,
    find_acmix_layers,
    load_resnet,
    network_bytes,
)
from .config import LIMITS, ACmixConfig
from .digits import SIZE as DIGIT_SIZE
from .digits import default_split, load_digits
from .format import human_bytes, join_items, literal
from .i18n import _
from .models import (
    DEPTHS,
    HEAD,
    KERNEL_ATT,
    KERNEL_CONV,
    ACmixResNet,
    acmix_resnet,
    block_layout,
    min_input_size,
)
from .train_net import DigitsNet, layer_inputs

# Image sizes a network input may have: multiples of 32 (every stride divides them) up to this.
MAX_IMAGE_SIZE = 512
IMAGE_STEP = 32
DEFAULT_IMAGE_SIZE = 224
SHORT_HASH = 12  # hex digits of an upload's SHA-256 that name it in a URL
UPLOAD_PREFIX = "upload-"


# ---------------------------------------------------------------------------------------------
# References: pictures and networks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltinPicture:
    id: str  # one of convmix.images.pictures()


@dataclass(frozen=True)
class UploadedPicture:
    sha256: str
    filename: str = field(default="", compare=False)

    @property
    def short(self) -> str:
        return self.sha256[:SHORT_HASH]


PictureRef = BuiltinPicture | UploadedPicture


@dataclass(frozen=True)
class HeldOutDigit:
    """Digit number `position` of the held-out digits (convmix.digits.default_split().held_out)."""

    position: int


ImageRef = PictureRef | HeldOutDigit


@dataclass(frozen=True)
class ResNetRef:
    """The authors' ACmix ResNet-`depth` (1000 classes), randomly initialised from `seed`."""

    depth: int
    seed: int = 0


@dataclass(frozen=True)
class CheckpointRef:
    """An uploaded checkpoint, named by the SHA-256 of its bytes."""

    sha256: str
    filename: str = field(default="", compare=False)

    @property
    def short(self) -> str:
        return self.sha256[:SHORT_HASH]


@dataclass(frozen=True)
class DigitsRef:
    """A frozen copy of a network trained on the digits, named by the SHA-256 of its weights
    (`freeze_trained`). What it was trained with rides along for the page, outside equality."""

    sha256: str
    step: int = field(default=0, compare=False)
    config: object = field(default=None, compare=False)  # its convmix.train.TrainConfig
    held_out_accuracy: float | None = field(default=None, compare=False)

    @property
    def short(self) -> str:
        return self.sha256[:SHORT_HASH]


NetworkRef = ResNetRef | CheckpointRef | DigitsRef


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomInit:
    config: ACmixConfig


@dataclass(frozen=True)
class RandomInitPicture:
    config: ACmixConfig
    picture: PictureRef


@dataclass(frozen=True)
class NetworkLayer:
    network: NetworkRef
    layer: str  # e.g. "layer3.0.conv2", or "mixer" in a digits network
    image: ImageRef  # a picture for a ResNet, a held-out digit for a digits network
    image_size: int = DEFAULT_IMAGE_SIZE


@dataclass(frozen=True)
class LayerAlone:
    network: CheckpointRef
    layer: str
    picture: PictureRef | None  # None: seeded noise
    size: int = 56  # the layer's input height and width
    kernel_att: int = KERNEL_ATT  # not stored in any weight: the visitor's choice
    stride: int = 1


Source = RandomInit | RandomInitPicture | NetworkLayer | LayerAlone


# ---------------------------------------------------------------------------------------------
# Errors with codes: the page words them in the visitor's language from `values`
# ---------------------------------------------------------------------------------------------


class SourceError(ValueError):
    """A source that cannot be materialised. `code` says which rule failed, `values` the figures,
    `message` what failed and what would work (the visitor's language, nothing from a file in it:
    a page may show it as markdown), `details` a file's or a reader's own text, to show apart.

    Codes: "budget" (need, budget, held, what: "module", "stem", "forward", "layer", "network",
    "checkpoint network" or "trace"; layer), "network_too_large" (need, limit, depth), "config" (problems),
    "net_seed" (seed, low, high), "unknown_layer" (layer, layers), "no_forward" (reason),
    "upload_missing" (kind: "checkpoint", "picture" or "trained"; short), "picture" (reason),
    "image_size" (size, low, high), "layer" (reason), "network_kind" (name), "digit" (position, low,
    high), "no_acmix" (a digits network without an ACmix layer).
    """

    def __init__(self, code: str, message: str, details: str | None = None, **values):
        super().__init__(message if details is None else f"{message} ({details})")
        self.code = code
        self.message = message
        self.details = details
        self.values = values


# ---------------------------------------------------------------------------------------------
# Resolving references
# ---------------------------------------------------------------------------------------------


def resnet_weight_bytes(depth: int) -> int:
    """Bytes of a built ACmix ResNet's parameters and buffers (float32, 1000 classes)."""
    model = acmix_resnet(depth, device="meta")
    return sum(t.numel() * (ELEMENT if t.is_floating_point() else 8) for t in model.state_dict().values())


def max_network_bytes(budget: int | None = None) -> int:
    """The largest network kept for a visitor: a third of the budget, as for checkpoints
    (convmix.checkpoint.max_kept_bytes), so that a forward through it still fits beside it."""
    return (memory_budget() if budget is None else budget) // KEPT_SHARE


class Resolver:
    """Turns references into modules, checkpoints and uploaded bytes (no caching here).

    `checkpoints` and `pictures` map a SHA-256 to what was uploaded; subclasses may look them up
    elsewhere (the app's byte-bounded cache) and cache what they build.
    """

    def __init__(self, checkpoints: Mapping[str, Checkpoint] | None = None,
                 pictures: Mapping[str, bytes] | None = None,
                 trained: Mapping[str, nn.Module] | None = None):
        self._checkpoints = dict(checkpoints or {})
        self._pictures = dict(pictures or {})
        self._trained = dict(trained or {})

    def holds_network(self, ref: NetworkRef) -> bool:
        """Whether `network(ref)` would return a network already built (no cache here: False)."""
        return False

    def trained(self, ref: DigitsRef) -> nn.Module:
        found = self._trained.get(ref.sha256)
        if found is None:
            raise SourceError("upload_missing", _(
                "The trained network is no longer held by the server (it keeps a few for a while, within the "
                "memory budget). Open it again from the Train it live page."), kind="trained", short=ref.short)
        return found

    def checkpoint(self, ref: CheckpointRef) -> Checkpoint:
        found = self._checkpoints.get(ref.sha256)
        if found is None:
            raise SourceError("upload_missing", _(
                "The uploaded checkpoint is no longer held by the server (uploads are kept for a while, within "
                "the memory budget). Upload it again on the ACmix in ResNet page."),
                kind="checkpoint", short=ref.short)
        return found

    def picture_bytes(self, ref: UploadedPicture) -> bytes:
        found = self._pictures.get(ref.sha256)
        if found is None:
            raise SourceError("upload_missing", _(
                "The uploaded picture is no longer held by the server (uploads are kept for a while, within the "
                "memory budget). Upload it again."), kind="picture", short=ref.short)
        return found

    def network(self, ref: NetworkRef, budget: int | None = None) -> nn.Module:
        """The whole network, in eval mode, built by the builder registered for the reference's
        type (NETWORK_BUILDERS); refused when its weights exceed max_network_bytes or building it
        is not admitted by the process budget."""
        budget = memory_budget() if budget is None else budget
        build = NETWORK_BUILDERS.get(type(ref))
        if build is None:
            raise SourceError("network_kind", _("No network can be built from a {kind}.", kind=type(ref).__name__),
                              name=type(ref).__name__)
        return build(ref, self, budget)

    def make_room(self) -> bool:
        """Give memory back for new work (convmix.budget's make_room); False when nothing can go."""
        return False


class CachedResolver(Resolver):
    """A resolver over one `ByteCache` shared by every visitor: built networks are kept under
    ("network", ref), uploads under ("checkpoint", sha256) and ("picture", sha256), trained copies
    under ("trained", sha256); making room for new work evicts from `evict_first` (e.g. the app's
    traces) while it can, then the least recently used of these."""

    def __init__(self, cache: ByteCache, trained: Mapping[str, nn.Module] | None = None,
                 evict_first: Callable[[], bool] | None = None):
        super().__init__(trained=trained)
        self.cache = cache
        self._evict_first = evict_first

    def holds_network(self, ref: NetworkRef) -> bool:
        return ("network", ref) in self.cache

    def keep_trained(self, sha: str, net: nn.Module) -> None:
        self.cache.put(("trained", sha), net)

    def trained(self, ref: DigitsRef) -> nn.Module:
        found = self.cache.get(("trained", ref.sha256))
        return found if found is not None else super().trained(ref)

    def keep_checkpoint(self, sha: str, checkpoint: Checkpoint) -> None:
        self.cache.put(("checkpoint", sha), checkpoint)

    def keep_picture(self, sha: str, data: bytes) -> None:
        self.cache.put(("picture", sha), bytes(data))

    def checkpoint(self, ref: CheckpointRef) -> Checkpoint:
        found = self.cache.get(("checkpoint", ref.sha256))
        return found if found is not None else super().checkpoint(ref)

    def picture_bytes(self, ref: UploadedPicture) -> bytes:
        found = self.cache.get(("picture", ref.sha256))
        return found if found is not None else super().picture_bytes(ref)

    def network(self, ref: NetworkRef, budget: int | None = None) -> nn.Module:
        return self.cache.get_or_build(("network", ref), lambda: super(CachedResolver, self).network(ref, budget))

    def make_room(self) -> bool:
        return bool(self._evict_first is not None and self._evict_first()) or self.cache.evict_one()


def _build_resnet(ref: ResNetRef, resolver: Resolver, budget: int) -> nn.Module:
    check_resnet_ref(ref)
    need, limit = resnet_weight_bytes(ref.depth), max_network_bytes(budget)
    if need > limit:
        raise SourceError("network_too_large", _(
            "The weights of ResNet-{depth} take {need}; networks up to {limit} (a third of this server's memory "
            "budget) are built here. Choose a smaller network, or run the app locally with a larger "
            "CONVMIX_MEMORY_BUDGET.", depth=ref.depth, need=human_bytes(need), limit=human_bytes(limit)),
            need=need, limit=limit, depth=ref.depth)
    # Building allocates the weights (measured: the peak equals them; tests/test_sources.py).
    with admitted_work(need, budget, "network", resolver.make_room, depth=ref.depth):
        return acmix_resnet(ref.depth, seed=ref.seed)


def _build_from_checkpoint(ref: CheckpointRef, resolver: Resolver, budget: int) -> nn.Module:
    """The authors' ResNet with the checkpoint's weights: their tensors as they are, float32 copies
    of any other dtype (convmix.checkpoint.network_bytes, admitted)."""
    checkpoint = resolver.checkpoint(ref)
    try:
        with admitted_work(network_bytes(checkpoint), budget, "checkpoint network", resolver.make_room):
            return load_resnet(checkpoint)
    except CheckpointError as err:
        raise SourceError("no_forward", err.message, err.details, reason=str(err), filename=ref.filename) from None


def _build_trained(ref: DigitsRef, resolver: Resolver, budget: int) -> nn.Module:
    """The frozen copy itself (a few hundred KB at most), held by the resolver."""
    return resolver.trained(ref)


# How each kind of reference becomes a network: (ref, resolver, budget) -> module in eval mode.
NETWORK_BUILDERS: dict[type, Callable[[object, Resolver, int], nn.Module]] = {
    ResNetRef: _build_resnet,
    CheckpointRef: _build_from_checkpoint,
    DigitsRef: _build_trained,
}


def network_build_bytes(ref: NetworkRef, resolver: Resolver) -> int:
    """What `resolver.network(ref)` allocates: a ResNet's weights when it is not built yet; nothing
    for a checkpoint (its network takes the checkpoint's own tensors) or a trained copy (held)."""
    if isinstance(ref, ResNetRef) and not resolver.holds_network(ref):
        check_resnet_ref(ref)
        return resnet_weight_bytes(ref.depth)
    return 0


def weights_hash(net: nn.Module) -> str:
    """SHA-256 of a network's state dict (names, dtypes, shapes and values), independent of where it
    is stored."""
    h = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.hexdigest()


def freeze_trained(net: nn.Module, step: int = 0, config: object = None,
                   held_out_accuracy: float | None = None) -> tuple[DigitsRef, nn.Module]:
    """A frozen copy of a trained network (eval mode, no gradients) and the reference that names it:
    training may go on in the original without changing what the reference shows."""
    frozen = copy.deepcopy(net).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return DigitsRef(weights_hash(frozen), step, config, held_out_accuracy), frozen

_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _lock_for(model: nn.Module) -> threading.Lock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.Lock()
        return lock


def check_resnet_ref(ref: ResNetRef) -> None:
    if ref.depth not in DEPTHS:
        raise SourceError("network_kind", _("ResNet-{depth} is not one of the authors' networks ({depths}).",
                                            depth=ref.depth, depths=join_items(f"ResNet-{d}" for d in DEPTHS)),
                          name=f"ResNet-{ref.depth}")
    lo, hi = LIMITS["seed"]
    if not isinstance(ref.seed, int) or not lo <= ref.seed <= hi:
        raise SourceError("net_seed", _("The seed must be a whole number from {low} to {high:,}.", low=lo, high=hi),
                          seed=ref.seed, low=lo, high=hi)


# ---------------------------------------------------------------------------------------------
# Network kinds
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkKind:
    """What a kind of network does with an image: its layers, its input, its cost, its capture.

    `capture` returns the layer, the input that reached it, and facts about the forward (name,
    value pairs, e.g. the digits network's prediction); `image_facts` says what the image is."""

    layers: Callable[[nn.Module], list[str]]
    image_sizes: Callable[[nn.Module], list[int]]
    image_tensor: Callable[[nn.Module, ImageRef, int, Resolver], torch.Tensor]
    forward_bytes: Callable[[nn.Module, str, int], int]  # up to the layer's input, one image, weights included
    capture: Callable[[nn.Module, torch.Tensor, str, int], tuple[ACmix, torch.Tensor, tuple]]
    image_facts: Callable[[ImageRef], tuple] = lambda image: ()


def picture_rgb(picture: PictureRef, height: int, width: int, resolver: Resolver) -> np.ndarray:
    """A picture as a (height, width, 3) uint8 array; uploads are decoded with the bias page's checks."""
    if not isinstance(picture, BuiltinPicture | UploadedPicture):
        raise SourceError("picture", _("This network reads a photograph, not a held-out digit. Choose a "
                                       "built-in picture or upload one."), reason="not a picture")
    if isinstance(picture, BuiltinPicture):
        try:
            return images.picture_rgb(picture.id, height, width)
        except ValueError as err:
            raise SourceError("picture", str(err), reason=str(err)) from None
    try:
        return images.upload_rgb(resolver.picture_bytes(picture), height, width)
    except ImageError as err:  # the picture reader's own reason, shown apart
        raise SourceError("picture", _("The uploaded picture could not be used. Upload a PNG or JPEG again."),
                          str(err), reason=str(err)) from None


def resnet_image_sizes(depth: int) -> list[int]:
    return list(range(min_input_size(depth), MAX_IMAGE_SIZE + 1, IMAGE_STEP))


def _resnet_weights(model: nn.Module) -> int:
    return sum(t.numel() for t in model.state_dict().values())


def _resnet_capture(model, x, layer, budget):
    reached = layer_input(model, x, layer, budget)
    return reached.module, reached.x, ()


# -- the digits network -------------------------------------------------------------------------------

DIGITS_LAYERS = ("mixer",)  # the ACmix layer of convmix.train_net.DigitsNet (a test checks it)


def held_out_count() -> int:
    return len(default_split().held_out)


def _digit_index(image: ImageRef) -> int:
    """The row of the digits file that held-out digit `image` is."""
    if not isinstance(image, HeldOutDigit):
        raise SourceError("picture", _("A network trained on the digits reads a held-out digit, not a "
                                       "photograph. Choose a held-out digit."), reason="not a digit")
    count = held_out_count()
    if isinstance(image.position, bool) or not isinstance(image.position, int) or not 0 <= image.position < count:
        raise SourceError("digit", _("Held-out digits are numbered {low} to {high}.", low=0, high=count - 1),
                          position=image.position, low=0, high=count - 1)
    return int(default_split().held_out[image.position])


def digit_pixels(image: ImageRef) -> torch.Tensor:
    """(1, 1, 8, 8) raw pixel values 0-16 of a held-out digit (what DigitsNet takes)."""
    index = _digit_index(image)
    return load_digits().images[index:index + 1]


def _digit_facts(image: ImageRef) -> tuple:
    index = _digit_index(image)
    return (("label", int(load_digits().labels[index])), ("dataset_index", index))


def _digits_forward_bytes(model: nn.Module, layer: str, size: int) -> int:
    """The digits network's forward on one digit: weights, the digit, the stem's maps, the layer's
    own forward peak and the rest (all small; counted alive at once)."""
    module = model.get_submodule(layer)
    config = module_config(module, (1, module.in_planes, size, size))
    weights = sum(t.numel() for t in model.state_dict().values())
    return ELEMENT * (weights + size * size + 4 * module.in_planes * size * size) + config.estimate_peak_bytes()


def _digits_capture(model, x, layer, budget):
    """The network's own forward with a hook on every ACmix layer (convmix.train.layer_inputs)."""
    seen, logits = layer_inputs(model, x)
    return model.get_submodule(layer), seen[layer], (("prediction", int(logits.argmax(1))),)


def no_acmix() -> SourceError:
    """A digits network without an ACmix layer (the plain-convolution ablation)."""
    return SourceError("no_acmix", _("This network has no ACmix layer (the plain-convolution ablation), so "
                                     "there is nothing to walk through."))


def _digits_layers(model: nn.Module) -> list[str]:
    names = list(model.acmix_layers())
    if not names:
        raise no_acmix()
    return names


NETWORK_KINDS: dict[type, NetworkKind] = {
    ACmixResNet: NetworkKind(
        layers=acmix_layer_names,
        image_sizes=lambda model: resnet_image_sizes(model.depth),
        image_tensor=lambda model, picture, size, resolver: to_network_input(
            picture_rgb(picture, size, size, resolver)),
        forward_bytes=lambda model, layer, size: forward_bytes_until(
            model.depth, layer, 1, size, size, _resnet_weights(model)),
        capture=_resnet_capture,
    ),
    DigitsNet: NetworkKind(
        layers=_digits_layers,
        image_sizes=lambda model: [DIGIT_SIZE],
        image_tensor=lambda model, image, size, resolver: digit_pixels(image),
        forward_bytes=_digits_forward_bytes,
        capture=_digits_capture,
        image_facts=_digit_facts,
    ),
}


def network_kind(model: nn.Module) -> NetworkKind:
    kind = NETWORK_KINDS.get(type(model))
    if kind is None:
        raise SourceError("network_kind", _("No kind of network is registered for a {kind}.",
                                            kind=type(model).__name__), name=type(model).__name__)
    return kind


# ---------------------------------------------------------------------------------------------
# Materialising a source
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Materialized:
    module: ACmix
    x: torch.Tensor  # (B, in_planes, H, W): what the module receives
    config: ACmixConfig  # the module's hyperparameters and the input's shape (not its weights)
    estimate_bytes: int  # the estimate checked against the budget
    facts: tuple = ()  # (name, value) pairs about the input: a digit's label and the prediction


def module_config(module: ACmix, x_shape: tuple[int, ...], seed: int = 0) -> ACmixConfig:
    b, h, w = x_shape[0], x_shape[2], x_shape[3]
    return ACmixConfig(
        in_planes=module.in_planes, out_planes=module.out_planes, kernel_att=module.kernel_att,
        head=module.head, kernel_conv=module.kernel_conv, stride=module.stride,
        dilation=module.dilation, height=h, width=w, batch=b, seed=seed, variant=module.variant)


def _work(what: str, layer: str = "", depth: int = 0) -> tuple[str, str | None]:
    """The work `what` names, as the subject of a refusal, and what would fit instead (None: the
    budget's advice for a configuration), both in the visitor's language."""
    if what == "module":
        return _("Building the module and its input"), None
    if what == "layer":
        return _("Building the layer and its input"), _("Choose a smaller input size.")
    if what == "stem":
        return (_("Passing the pictures through the seed's stem"),
                _("Choose a smaller input size, fewer channels or a smaller batch."))
    if what == "forward":
        return (_("Running the network up to {layer}", layer=layer),
                _("Choose a smaller image, an earlier layer or a smaller network."))
    if what == "trace":
        return (_("Tracing this layer's forward, which keeps every intermediate tensor,"),
                _("Choose an earlier layer, a smaller image or a smaller network, or try again when the server is "
                  "less busy."))
    if what == "network":
        return (_("Building ResNet-{depth}", depth=depth),
                _("Choose a smaller network, or run the app locally with a larger CONVMIX_MEMORY_BUDGET."))
    return (_("Building the network from this checkpoint"),
            _("Save the checkpoint in float32, or run the app locally with a larger CONVMIX_MEMORY_BUDGET."))


def admitted_work(need: int, budget: int, what: str, make_room=None, layer: str = "", depth: int = 0):
    """Reserve `need` bytes of the process budget for the block (convmix.budget.reserved), or raise
    SourceError "budget". `what`: "module", "stem", "forward" (up to `layer`), "layer", "network"
    (ResNet-`depth`), "checkpoint network", or "trace" (a layer's traced forward: convmix.ui.cache)."""
    subject, advice = _work(what, layer, depth)
    return _Admission(reserved(need, budget, subject, make_room, advice), need, budget, what, layer)


class _Admission:
    """A budget reservation whose refusal becomes a SourceError."""

    def __init__(self, reservation, need: int, budget: int, what: str, layer: str):
        self._reservation, self._figures = reservation, dict(need=need, budget=budget, what=what, layer=layer)

    def __enter__(self) -> int:
        try:
            return self._reservation.__enter__()
        except OverBudget as err:
            raise SourceError("budget", err.refusal.message(), held=err.refusal.held, **self._figures) from None

    def __exit__(self, *exc) -> bool | None:
        return self._reservation.__exit__(*exc)


def _config_problems(config: ACmixConfig) -> None:
    problems = config.problems()
    if problems:
        raise SourceError("config", " ".join(p.sentence() for p in problems),
                          problems=[p.sentence() for p in problems])


def stem_pictures(first: PictureRef, batch: int) -> list[PictureRef]:
    """Batch item 0 is `first`; the others are the remaining built-in pictures, in order, cycled."""
    others = [BuiltinPicture(p.id) for p in images.pictures() if BuiltinPicture(p.id) != first]
    out = [first]
    while len(out) < batch:
        out.append(others[(len(out) - 1) % len(others)])
    return out


def _stem_input(pictures: list[PictureRef], channels: int, height: int, width: int,
                resolver: Resolver, budget: int) -> tuple[torch.Tensor, int]:
    need = stem_bytes(len(pictures), height, width, channels)
    with admitted_work(need, budget, "stem", resolver.make_room):
        rgb = [picture_rgb(p, 4 * height, 4 * width, resolver) for p in pictures]
        return stem_features(rgb, channels=channels, budget=budget).features, need


def _input_bytes(config: ACmixConfig) -> int:
    """The configuration's input tensor (float32)."""
    return weights_and_input_bytes(config) - module_bytes(config)


def _forward_need(model: nn.Module, kind: NetworkKind, layer: str, size: int) -> int:
    """What capturing `layer`'s input allocates beside the network, whose weights are held already:
    the forward up to the layer (the kind's estimate, weights included, less the weights) and the
    layer's copy."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    copied = sum(t.numel() * t.element_size() for t in model.get_submodule(layer).state_dict().values())
    return kind.forward_bytes(model, layer, size) - weights + copied


def materialize(source: Source, resolver: Resolver | None = None, budget: int | None = None) -> Materialized:
    """The ACmix module and the input it receives, for any kind of source."""
    resolver = Resolver() if resolver is None else resolver
    budget = memory_budget() if budget is None else budget
    if isinstance(source, RandomInit | RandomInitPicture):
        config = source.config
        _config_problems(config)
        if isinstance(source, RandomInit):
            need = build_bytes(config) + _input_bytes(config)
            with admitted_work(need, budget, "module", resolver.make_room):
                return Materialized(config.build(), config.make_input(), config, need)
        pictures = stem_pictures(source.picture, config.batch)
        x, stem = _stem_input(pictures, config.in_planes, config.height, config.width, resolver, budget)
        need = build_bytes(config)  # the stem's features, the module's input, are held now
        with admitted_work(need, budget, "module", resolver.make_room):
            return Materialized(config.build(), x, config, stem + need)
    if isinstance(source, NetworkLayer):
        model = resolver.network(source.network, budget)
        kind = network_kind(model)
        layers = kind.layers(model)
        if source.layer not in layers:
            raise _unknown_layer(source.layer, layers)
        sizes = kind.image_sizes(model)
        if source.image_size not in sizes:
            raise SourceError("image_size", _("The image size must be a multiple of {step} from {low} to {high}.",
                                              step=IMAGE_STEP, low=sizes[0], high=sizes[-1]),
                              size=source.image_size, low=sizes[0], high=sizes[-1], step=IMAGE_STEP)
        need = _forward_need(model, kind, source.layer, source.image_size)
        facts = kind.image_facts(source.image)
        with admitted_work(need, budget, "forward", resolver.make_room, layer=source.layer):
            x = kind.image_tensor(model, source.image, source.image_size, resolver)
            with _lock_for(model):  # the capture hooks the shared network: one capture at a time
                module, reached, found = kind.capture(model, x, source.layer, budget)
            # The walkthrough records a trace through the module it gets; a copy keeps that trace
            # apart from any forward through the network (which is shared by every session).
            module = copy.deepcopy(module)
        seed = getattr(source.network, "seed", 0)
        return Materialized(module, reached, module_config(module, tuple(reached.shape), seed), need,
                            facts + tuple(found))
    if isinstance(source, LayerAlone):
        checkpoint = resolver.checkpoint(source.network)
        found = {layer.name: layer for layer in find_acmix_layers(checkpoint.state_dict)}
        if source.layer not in found:
            raise _unknown_layer(source.layer, list(found))
        try:
            module = build_acmix(checkpoint.state_dict, found[source.layer], source.kernel_att, source.stride)
        except CheckpointError as err:
            raise SourceError("layer", err.message, err.details, reason=str(err)) from None
        config = module_config(module, (1, module.in_planes, source.size, source.size))
        _config_problems(config)
        # The module holds the checkpoint's own tensors (convmix.checkpoint.build_acmix): only its input
        # is new.
        if source.picture is None:
            need = _input_bytes(config)
            with admitted_work(need, budget, "layer", resolver.make_room):
                return Materialized(module, config.make_input(), config, need)
        x, stem = _stem_input([source.picture], module.in_planes, source.size, source.size, resolver, budget)
        return Materialized(module, x, config, stem)
    raise SourceError("network_kind", _("No network can be built from a {kind}.", kind=type(source).__name__),
                      name=type(source).__name__)


def _unknown_layer(layer: str, layers: list[str]) -> SourceError:
    """The layer (from a URL or a file: shown apart) is not one of `layers`."""
    return SourceError("unknown_layer", _("The layer chosen is not an ACmix layer of this network. Its ACmix "
                                          "layers:"), join_items(layers), layer=layer, layers=layers)


def materialize_bytes(source: Source, resolver: Resolver) -> int:
    """An upper bound on what `materialize(source, resolver)` allocates beyond what is already held:
    the module and its input (with the stem's work for pictures), or the network's forward up to the
    layer and the layer's copy; for figures shown before it runs. `materialize` admits each of its
    steps itself: a caller must not reserve this again around it (the same bytes would be counted
    twice). A network source's network must be built first (`network_build_bytes` says what that
    costs): its weights are held, not allocated here."""
    if isinstance(source, RandomInit | RandomInitPicture):
        config = source.config
        need = build_bytes(config) + weights_and_input_bytes(config) - module_bytes(config)
        if isinstance(source, RandomInitPicture):
            need += stem_bytes(config.batch, config.height, config.width, config.in_planes)
        return need
    if isinstance(source, NetworkLayer):
        model = resolver.network(source.network)
        kind = network_kind(model)
        if source.layer not in kind.layers(model) or source.image_size not in kind.image_sizes(model):
            return 0  # materialize refuses it before it allocates anything
        return _forward_need(model, kind, source.layer, source.image_size)
    if isinstance(source, LayerAlone):
        config = module_config_of_alone(source, resolver)
        need = 2 * weights_and_input_bytes(config)  # the layer's weights as read and as built
        if source.picture is not None:
            need += stem_bytes(1, source.size, source.size, config.in_planes)
        return need
    return 0


def module_config_of_alone(source: LayerAlone, resolver: Resolver) -> ACmixConfig:
    """The configuration a LayerAlone source shows (from the checkpoint's shapes, no weights built)."""
    checkpoint = resolver.checkpoint(source.network)
    found = {layer.name: layer for layer in find_acmix_layers(checkpoint.state_dict)}
    layer = found.get(source.layer)
    if layer is None or not layer.usable:
        usable = [name for name, f in found.items() if f.usable]
        raise SourceError("unknown_layer", _("The layer chosen is not a usable ACmix layer of this checkpoint. "
                                             "Its usable ACmix layers:"), join_items(usable),
                          layer=source.layer, layers=usable)
    return ACmixConfig(in_planes=layer.in_planes, out_planes=layer.out_planes, kernel_att=source.kernel_att,
                       head=layer.head, kernel_conv=layer.kernel_conv, stride=source.stride,
                       height=source.size, width=source.size)


# ---------------------------------------------------------------------------------------------
# URL query parameters
# ---------------------------------------------------------------------------------------------

QUERY_KEYS = ("net", "net_seed", "layer", "picture", "image_size")
NOISE = "noise"  # picture=noise: the sidebar's module on seeded noise
TRAINED_PREFIX = "digits-"
DIGIT_PREFIX = "digit-"
_RESNET_NET = re.compile(r"^resnet([0-9]{2})$")
_UPLOAD = re.compile(rf"^upload-([0-9a-f]{{{SHORT_HASH}}})$")
_TRAINED = re.compile(rf"^digits-([0-9a-f]{{{SHORT_HASH}}})$")
_DIGIT = re.compile(r"^digit-([0-9]{1,6})$")
_LAYER = re.compile(r"^[A-Za-z0-9_.]{1,80}$")


@dataclass(frozen=True)
class Note:
    """A URL value that was not taken as given: `code` and the figures; `message()` says it."""

    code: str  # "net", "net_seed", "layer", "picture", "image_size", "upload_missing", "trained_missing",
    # "digit"
    value: str  # the offending value, cut to 40 characters of letters, digits and -_.
    values: tuple[tuple[str, object], ...] = ()

    def message(self) -> str:
        """The note in the visitor's language (markdown: the value as code)."""
        v = dict(self.values)
        value = literal(self.value, 40)
        if self.code == "net":
            return _("URL parameter net={value} names no network here (resnet26, resnet38, resnet50, or an upload "
                     "of this session).", value=value)
        if self.code == "net_seed":
            return _("URL parameter net_seed={value} is not a whole number from {low} to {high:,}; using 0.",
                     value=value, low=v["low"], high=v["high"])
        if self.code == "layer":
            return _("URL parameter layer={value} is not an ACmix layer of {network}.", value=value,
                     network=v["network"])
        if self.code == "picture":
            return _("URL parameter picture={value} is not a built-in picture; using {default}.", value=value,
                     default=v["default"])
        if self.code == "image_size":
            return _("URL parameter image_size={value} is not a multiple of {step} from {low} to {high}; using "
                     "{default}.", value=value, step=v["step"], low=v["low"], high=v["high"], default=v["default"])
        if self.code == "trained_missing":
            return _("URL parameter net={value} names a trained network that this session does not hold (a "
                     "trained network stays with the session that trained it). Showing the sidebar's module "
                     "instead.", value=value)
        if self.code == "digit":
            return _("URL parameter picture={value} is not a held-out digit (digit-{low} to digit-{high}); using "
                     "digit-{low}.", value=value, low=v["low"], high=v["high"])
        if "default" in v:  # a picture: the default is shown instead
            return _("URL parameter picture={value} names an upload that this session does not hold (an upload "
                     "stays with the session that made it); using {default}.", value=value, default=v["default"])
        return _("URL parameter {value} names an upload that this session does not hold (an upload stays with the "
                 "session that made it).", value=value)


def picture_query(picture: ImageRef | None) -> str:
    if picture is None:
        return NOISE
    if isinstance(picture, HeldOutDigit):
        return f"{DIGIT_PREFIX}{picture.position}"
    return picture.id if isinstance(picture, BuiltinPicture) else UPLOAD_PREFIX + picture.short


def to_query(source: Source) -> dict[str, str]:
    """The parameters that name `source` in a URL (the sidebar's own carry a RandomInit's config)."""
    if isinstance(source, RandomInit):
        return {"picture": NOISE}
    if isinstance(source, RandomInitPicture):
        return {"picture": picture_query(source.picture)}
    if isinstance(source, NetworkLayer):
        if isinstance(source.network, DigitsRef):
            return {"net": TRAINED_PREFIX + source.network.short, "layer": source.layer,
                    "picture": picture_query(source.image)}
        if isinstance(source.network, ResNetRef):
            out = {"net": f"resnet{source.network.depth}", "net_seed": str(source.network.seed)}
        else:
            out = {"net": UPLOAD_PREFIX + source.network.short}
        out.update(layer=source.layer, picture=picture_query(source.image), image_size=str(source.image_size))
        return out
    return {"net": UPLOAD_PREFIX + source.network.short, "layer": source.layer}


def _shown(raw: object) -> str:
    text = str(raw[-1] if isinstance(raw, list | tuple) and raw else raw)
    return "".join(ch for ch in text[:40] if ch.isalnum() or ch in "-_.")


def _picture_from_query(raw: str, uploads: Mapping[str, UploadedPicture], notes: list[Note]) -> PictureRef:
    ids = [p.id for p in images.pictures()]
    default = BuiltinPicture(ids[0])
    if raw in ids:
        return BuiltinPicture(raw)
    match = _UPLOAD.match(raw)
    if match and match.group(1) in uploads:
        return uploads[match.group(1)]
    notes.append(Note("upload_missing" if match else "picture", _shown(raw), (("default", ids[0]),)))
    return default


def _param(params: Mapping[str, object], key: str) -> str | None:
    raw = params.get(key)
    if raw is None:
        return None
    return str(raw[-1] if isinstance(raw, list | tuple) and raw else raw).strip()


def _digit_from_query(raw: str | None, notes: list[Note]) -> HeldOutDigit:
    if raw is None:
        return HeldOutDigit(0)
    count = held_out_count()
    match = _DIGIT.match(raw)
    if match and int(match.group(1)) < count:
        return HeldOutDigit(int(match.group(1)))
    notes.append(Note("digit", _shown(raw), (("low", 0), ("high", count - 1))))
    return HeldOutDigit(0)


def from_query(
    params: Mapping[str, object], config: ACmixConfig, choice: Source | None = None,
    uploaded_pictures: Mapping[str, UploadedPicture] | None = None,
    trained: Mapping[str, DigitsRef] | None = None,
) -> tuple[Source | None, list[Note]]:
    """The source a URL names, or None when it names none (then the caller decides); one Note per
    value not taken as given. Hostile text never raises.

    `choice` is the source this session chose (an upload can only be named by the session that
    holds it); `uploaded_pictures` maps the short hash of each picture this session uploaded, and
    `trained` that of each trained network it opened. Without `layer`, `picture` names the sidebar
    module's input: a picture, or `noise`.
    """
    uploads = dict(uploaded_pictures or {})
    notes: list[Note] = []
    picture_raw = _param(params, "picture")
    if _param(params, "layer") is None:
        if picture_raw is None:
            return None, notes
        if picture_raw == NOISE:
            return RandomInit(config), notes
        return RandomInitPicture(config, _picture_from_query(picture_raw, uploads, notes)), notes
    layer = _param(params, "layer") or ""
    net = _param(params, "net") or ""
    held = _TRAINED.match(net)
    if held:
        nets = dict(trained or {})
        chosen_net = getattr(choice, "network", None)
        if isinstance(chosen_net, DigitsRef):
            nets.setdefault(chosen_net.short, chosen_net)
        ref = nets.get(held.group(1))
        if ref is None:
            notes.append(Note("trained_missing", _shown(net)))
            return None, notes
        if layer not in DIGITS_LAYERS:
            notes.append(Note("layer", _shown(layer), (("network", "DigitsNet"),)))
            return None, notes
        return NetworkLayer(ref, layer, _digit_from_query(picture_raw, notes), DIGIT_SIZE), notes
    upload = _UPLOAD.match(net)
    if upload:
        chosen_net = getattr(choice, "network", None)
        if (isinstance(chosen_net, CheckpointRef) and chosen_net.short == upload.group(1)
                and getattr(choice, "layer", None) == layer):
            return choice, notes
        notes.append(Note("upload_missing", _shown(net)))
        return None, notes
    match = _RESNET_NET.match(net)
    if not match or int(match.group(1)) not in DEPTHS:
        notes.append(Note("net", _shown(net)))
        return None, notes
    depth = int(match.group(1))
    seed = 0
    seed_raw = _param(params, "net_seed")
    if seed_raw is not None:
        lo, hi = LIMITS["seed"]
        if re.fullmatch(r"[0-9]{1,10}", seed_raw) and lo <= int(seed_raw) <= hi:
            seed = int(seed_raw)
        else:
            notes.append(Note("net_seed", _shown(seed_raw), (("low", lo), ("high", hi))))
    names = [s.acmix_name for s in block_layout(depth)]
    if not _LAYER.match(layer) or layer not in names:
        notes.append(Note("layer", _shown(layer), (("network", f"ResNet-{depth}"),)))
        return None, notes
    size = DEFAULT_IMAGE_SIZE
    size_raw = _param(params, "image_size")
    sizes = resnet_image_sizes(depth)
    if size_raw is not None:
        if re.fullmatch(r"[0-9]{1,4}", size_raw) and int(size_raw) in sizes:
            size = int(size_raw)
        else:
            notes.append(Note("image_size", _shown(size_raw),
                              (("low", sizes[0]), ("high", sizes[-1]), ("step", IMAGE_STEP),
                               ("default", DEFAULT_IMAGE_SIZE))))
    picture = _picture_from_query(picture_raw, uploads, notes) if picture_raw is not None \
        else BuiltinPicture(images.pictures()[0].id)
    return NetworkLayer(ResNetRef(depth, seed), layer, picture, size), notes


# ---------------------------------------------------------------------------------------------
# What a source shows, without building it
# ---------------------------------------------------------------------------------------------


def resnet_layer_config(depth: int, layer: str, image_size: int, seed: int = 0) -> ACmixConfig:
    """The hyperparameters and input shape of a ResNet layer at an image size (no weights built)."""
    for s in block_layout(depth, image_size):
        if s.acmix_name == layer:
            h, w = s.in_size
            return ACmixConfig(in_planes=s.width, out_planes=s.width, kernel_att=KERNEL_ATT, head=HEAD,
                               kernel_conv=KERNEL_CONV, stride=s.stride, height=h, width=w, seed=seed)
    raise _unknown_layer(layer, [s.acmix_name for s in block_layout(depth, image_size)])
