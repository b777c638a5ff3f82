"""The walkthrough's words for what it shows: which module and which input, in the visitor's language
(convmix.i18n). No Streamlit here. Why something could not be shown is worded where it is refused
(`convmix.sources.SourceError.message`, `convmix.sources.Note.message`).

convmix.sources describes a source as data; this module says it in sentences. Text that comes from
a visitor (an uploaded file's name, a checkpoint's layer names) is only ever put in as
`convmix.format.literal`, so nothing in it can format the page.
"""

from __future__ import annotations

from . import images, sources
from .activations import STEM_CHANNELS
from .format import literal
from .i18n import _
from .network_text import picture_title

# ---------------------------------------------------------------------------------------------
# Which module, which input
# ---------------------------------------------------------------------------------------------


def module_code(config) -> str:
    """The module as the code that builds it (language-neutral)."""
    return (f"ACmix({config.in_planes}, {config.out_planes}, kernel_att={config.kernel_att}, "
            f"head={config.head}, kernel_conv={config.kernel_conv}, stride={config.stride}, "
            f"dilation={config.dilation}, variant={config.variant!r})")


def shape_text(shape) -> str:
    return " × ".join(map(str, shape))


def _picture_name(picture: sources.PictureRef) -> str:
    """A built-in picture's translated title in italics, or an upload's file name as literal text."""
    if isinstance(picture, sources.BuiltinPicture):
        try:
            return f"*{picture_title(images.picture(picture.id))}*"
        except ValueError:
            return literal(picture.id)
    return _("your picture {name}", name=literal(picture.filename or picture.short))


def is_sidebar_source(source) -> bool:
    return isinstance(source, sources.RandomInit | sources.RandomInitPicture)


def module_sentence(source, config) -> str:
    """**Module**: which module the walkthrough shows and where its weights come from (markdown)."""
    if isinstance(source, sources.RandomInit | sources.RandomInitPicture):
        return _("**Module**: the sidebar's configuration, with weights drawn at random from seed {seed}: "
                 "ACmix's own initialisation, untrained.", seed=config.seed)
    if isinstance(source, sources.NetworkLayer) and isinstance(source.network, sources.ResNetRef):
        return _("**Module**: layer `{layer}` of the authors' ACmix ResNet-{depth}, randomly initialised from "
                 "seed {seed} as their code does it: untrained, and their init loop has replaced dep_conv's "
                 "shift kernels by Kaiming normal weights.", layer=source.layer, depth=source.network.depth,
                 seed=source.network.seed)
    if isinstance(source, sources.NetworkLayer) and isinstance(source.network, sources.DigitsRef):
        ref = source.network
        if ref.held_out_accuracy is not None:
            return _("**Module**: the ACmix layer `{layer}` of the digits network trained on the *Train it "
                     "live* page, with its trained weights as they were at step {step:,} (held-out accuracy "
                     "then: {accuracy:.1%}).", layer=source.layer, step=ref.step, accuracy=ref.held_out_accuracy)
        return _("**Module**: the ACmix layer `{layer}` of the digits network trained on the *Train it live* "
                 "page, with its trained weights as they were at step {step:,}.", layer=source.layer, step=ref.step)
    if isinstance(source, sources.NetworkLayer):
        return _("**Module**: layer {layer} of the uploaded checkpoint {file}, with the checkpoint's weights.",
                 layer=literal(source.layer), file=literal(source.network.filename or source.network.short))
    return _("**Module**: layer {layer} of the uploaded checkpoint {file} on its own, with the checkpoint's "
             "weights (the checkpoint is not a network that runs here, so kernel_att and the stride are the ones "
             "chosen on the ACmix in ResNet page).", layer=literal(source.layer),
             file=literal(source.network.filename or source.network.short))


def stem_sentence(channels: int) -> str:
    """How the seed's stem gives `channels` channels (markdown)."""
    text = _("The seed's stem is `Conv2d(3, 64, 7, 2, 3, bias=True)` with weights drawn from the bias "
             "page's seed, then BatchNorm with the picture's own statistics, ReLU and `MaxPool(3, 2, 1)`, as "
             "in ResNet: the map is a quarter of the picture's size.")
    if channels < STEM_CHANNELS:
        text += " " + _("This module takes {channels} channels: the first {channels} of the stem's 64 filters.",
                        channels=channels)
    elif channels > STEM_CHANNELS:
        text += " " + _("This module takes {channels} channels: the stem's 64 filters and {extra} more drawn "
                        "from the same distribution.", channels=channels, extra=channels - STEM_CHANNELS)
    return text


def input_sentence(source, config, facts: dict | None = None) -> str:
    """**Input**: what the module receives (markdown)."""
    facts = facts or {}
    shape = shape_text(config.input_shape)
    if isinstance(source, sources.RandomInit):
        return _("**Input**: seeded random noise ({shape}, standard normal, drawn from seed {seed} + 1). Noise "
                 "has no structure, so neither have the maps below; choose a photograph to see one.",
                 shape=shape, seed=config.seed)
    if isinstance(source, sources.RandomInitPicture):
        text = _("**Input**: the photograph {picture} at {side_h}×{side_w} pixels through the seed's stem: a "
                 "feature map of {shape}.", picture=_picture_name(source.picture), side_h=4 * config.height,
                 side_w=4 * config.width, shape=shape)
        if config.batch > 1:
            text += " " + _("Batch items 1 to {last} are the other built-in photographs, in turn.",
                            last=config.batch - 1)
        return text + " " + stem_sentence(config.in_planes)
    if isinstance(source, sources.NetworkLayer) and isinstance(source.image, sources.HeldOutDigit):
        stem = (_("the stem convolution, BatchNorm and ReLU") if getattr(source.network.config, "stem_bn", False)
                else _("the stem convolution and ReLU"))
        return _("**Input**: the activation ({shape}) that reaches the layer when held-out digit number "
                 "{position} goes through the network's own forward ({stem}, captured by a forward hook). "
                 "The digit is a {label} that the network never trained on; the network predicts {prediction}.",
                 shape=shape, position=source.image.position, stem=stem, label=facts.get("label", "?"),
                 prediction=facts.get("prediction", "?"))
    if isinstance(source, sources.NetworkLayer):
        return _("**Input**: the activation ({shape}) that reaches the layer when the photograph {picture}, "
                 "resized and centre-cropped to {size}×{size} pixels, goes through the network's own forward "
                 "(captured by a forward pre-hook on the layer; nothing after it runs).", shape=shape,
                 picture=_picture_name(source.image), size=source.image_size)
    if source.picture is None:
        return _("**Input**: seeded random noise ({shape}).", shape=shape)
    return _("**Input**: the photograph {picture} through the seed's stem at the layer's width: a feature map "
             "of {shape}.", picture=_picture_name(source.picture), shape=shape) + " " + stem_sentence(config.in_planes)


def trained_note(source, shift: bool) -> str | None:
    """A note for sections that explain ACmix's initialisation, when the module is not at it."""
    if shift:
        return None
    if isinstance(source, sources.NetworkLayer) and isinstance(source.network, sources.ResNetRef):
        return _("In this network dep_conv no longer holds the shift kernels: the authors' init loop replaced "
                 "them by Kaiming normal weights (the quirk shown in this section).")
    return _("This module's dep_conv no longer holds the shift kernels: its weights were trained.")
