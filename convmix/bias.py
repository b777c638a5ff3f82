"""What `bias=True` does in nn.Conv2d, computed on live tensors (the bias page's logic).

The article the project started from asks about
`nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=True)`. Everything here works on that
layer, on any other the visitor sets (`LayerSpec`), or on ACmix, and returns plain numbers and
arrays, so the page only draws and the tests can check each identity against an independent
computation. Importable without Streamlit.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn

from .acmix import ACmix
from .config import url_choice, url_int, url_text
from .format import literal
from .i18n import N_, _, pgettext

# The article's layer, ResNet's stem with bias=True.
IN_CHANNELS, OUT_CHANNELS, KERNEL, STRIDE, PADDING = 3, 64, 7, 2, 3
SEED_LINE = "nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=True)"
SEED = 0  # of the random weights
# The article, as far as it is known: a Chinese blog answer whose page furniture (likes,
# favourites, tips, comments) is CSDN's; its author and date are not in the saved copy.
ARTICLE_TITLE = "self.conv1=nn.Conv2d(3,64,kernel_size=7,stride=2,padding=3,bias=True)里面的bias什么意思"
# The title in other words, for readers of other languages (translated where it is shown).
ARTICLE_TITLE_EN = N_("What does bias mean in `self.conv1=nn.Conv2d(3,64,kernel_size=7,stride=2,padding=3,"
                      "bias=True)`?")
ARTICLE_SITE = "CSDN"  # inferred from the page's furniture
ARTICLE_LANGUAGE = "zh"  # its quotes need no gloss for a reader of this language

# The article's own sentences the page judges, exactly as the saved copy has them (substrings of its
# text; tests/test_bias.py checks them against the copy where it is present). Never translated.
QUOTE_SCALAR = "它是一个标量值,与每个卷积核的输出相加"
QUOTE_NONLINEAR = "用于增加模型的非线性能力"
QUOTE_NEEDED = "通常情况下,bias项是需要设置的,因为它可以提供更大的模型拟合能力"
QUOTE_LEARNED = "偏置项是可学习的参数,需要通过训练过程来学习到合适的值"
QUOTE_NO_SHIFT = "如果`bias=False`,即没有偏置项,那么卷积核的输出不会进行偏移"
QUOTE_DEP_CONV = "定义特征融合的卷积层和深度可分离卷积层"

# torchvision's ImageNet normalisation: what a ResNet stem is fed.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Upload limits: bytes are checked before decoding, pixels from the header before loading.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4096
MAX_PIXELS = 16_000_000
UPLOAD_FORMATS = ("PNG", "JPEG")
# Decoding holds up to five copies of the pixels as RGBA: PIL's image, the EXIF-oriented copy, a
# white background, the composite over it, and the RGB result (measured: at most 15.3 bytes a pixel,
# a transparent 4000×4000 PNG; tests/test_bias.py checks the bound).
DECODE_BYTES_PER_PIXEL = 5 * 4

BN_EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# The layer and its sizes
# ---------------------------------------------------------------------------------------------


IN_CHANNEL_CHOICES = (1, 3)  # greyscale or RGB: what an image offers
LAYER_LIMITS = {"out_channels": (1, 256), "kernel": (1, 15), "stride": (1, 8), "padding": (0, 15)}
SIZES = (8, 16, 32, 64, 112, 160, 224, 320, 448)  # input sizes (H = W) the page offers
DEFAULT_SIZE = 224


@dataclass(frozen=True)
class LayerSpec:
    """An nn.Conv2d the bias page explains; the default is the article's."""

    in_channels: int = IN_CHANNELS
    out_channels: int = OUT_CHANNELS
    kernel: int = KERNEL
    stride: int = STRIDE
    padding: int = PADDING
    bias: bool = True

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel * self.kernel

    @property
    def line(self) -> str:
        return (f"nn.Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias})")

    def with_(self, **changes) -> LayerSpec:
        return replace(self, **changes)

    def output_size(self, size: int) -> int:
        return conv_output_size(size, self.kernel, self.stride, self.padding)

    def problem(self, size: int) -> str | None:
        """Why this layer cannot run on a size × size input, with what would (in the active
        language); None if it can."""
        if size + 2 * self.padding >= self.kernel:
            return None
        fits = [s for s in SIZES if s + 2 * self.padding >= self.kernel]
        return _("A {kernel}×{kernel} kernel does not fit a {size}×{size} input with padding "
                 "{padding}: the padded input is {padded} wide. Use padding ≥ {need}, a kernel ≤ "
                 "{padded}, or an input of at least {fit}×{fit}.",
                 kernel=self.kernel, size=size, padding=self.padding, padded=size + 2 * self.padding,
                 need=min_padding(self.kernel, size), fit=fits[0])


DEFAULT_LAYER = LayerSpec()


def min_padding(kernel: int, size: int) -> int:
    """The smallest padding at which a kernel × kernel window fits a size × size input."""
    return max(0, -(-(kernel - size) // 2))


def seed_layer(spec: LayerSpec = DEFAULT_LAYER, seed: int = SEED, bias: bool | None = None) -> nn.Conv2d:
    """`spec`'s layer with PyTorch's default initialisation, drawn from a fixed seed.

    PyTorch's default (kaiming_uniform with a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
    both weight and bias. Drawing from a private generator keeps the global RNG untouched, which
    matters when several Streamlit sessions build layers at once. The bias is drawn either way,
    so `bias=False` (which overrides spec.bias) gives the same weights without a bias.
    """
    bias = spec.bias if bias is None else bias
    # Built on the meta device: the constructor's own init would draw from the global RNG.
    layer = nn.Conv2d(
        spec.in_channels, spec.out_channels, kernel_size=spec.kernel, stride=spec.stride,
        padding=spec.padding, bias=bias, device="meta",
    ).to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(spec.fan_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=gen)
        bias_values = torch.empty(spec.out_channels).uniform_(-bound, bound, generator=gen)
        if bias:
            layer.bias.copy_(bias_values)
    return layer


# -- the page's URL parameters ------------------------------------------------------------------

URL_LAYER = {"bias_out": "out_channels", "bias_kernel": "kernel", "bias_stride": "stride",
             "bias_pad": "padding"}
URL_INTEGERS = ("bias_in", "bias_out", "bias_kernel", "bias_stride", "bias_pad", "bias_size",
                "bias_channel", "bias_row", "bias_col")


@dataclass(frozen=True)
class PageView:
    """What the bias page's URL sets: the layer, the input size, the output value opened up."""

    layer: LayerSpec = DEFAULT_LAYER
    size: int = DEFAULT_SIZE
    channel: int = 0
    row: int | None = None  # None: not in the URL, the middle of the output
    col: int | None = None


_UNBOUNDED = 10**30  # url_int parses; the range is checked here, so that the note can say why


@dataclass(frozen=True)
class UrlNote:
    """A URL value the bias page did not take as given: which, why, and what it used instead.

    Kept as data and worded where it is shown (`text()`), in the visitor's language of the moment.
    `reason`: "not_integer", "not_choice" (of `choices`), or "outside" (lo to hi); `extent` is what
    sets the range of an output channel, row or column (the channels, or the output's side).
    """

    name: str
    shown: str  # the URL's text, cut short; shown as a code span, never as markdown
    reason: str
    fallback: object
    lo: int = 0
    hi: int = 0
    choices: tuple = ()
    extent: int = 0

    def text(self) -> str:
        value = literal(f"{self.name}={self.shown}", 60)
        fallback = _url_form(self.fallback)
        if self.reason == "not_integer":
            return _("URL parameter {value} is not a whole number; using {fallback}.",
                     value=value, fallback=fallback)
        if self.reason == "not_choice":
            return _("URL parameter {value} is not one of {choices}; using {fallback}.", value=value,
                     choices=pgettext("list separator", ", ").join(_url_form(c) for c in self.choices),
                     fallback=fallback)
        if self.name == "bias_channel":
            return _("URL parameter {value} is outside {lo} to {hi}: this layer has {count} output "
                     "channels; using channel {fallback}.",
                     value=value, lo=self.lo, hi=self.hi, count=self.extent, fallback=fallback)
        if self.name in ("bias_row", "bias_col"):
            return _("URL parameter {value} is outside {lo} to {hi}: this layer's output is "
                     "{side}×{side}; using {fallback}.",
                     value=value, lo=self.lo, hi=self.hi, side=self.extent, fallback=fallback)
        return _("URL parameter {value} is outside {lo} to {hi}; using {fallback}.",
                 value=value, lo=self.lo, hi=self.hi, fallback=fallback)


def _url_form(value: object) -> str:
    """A value as the URL writes it (booleans as true and false)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def view_from_query_params(params: Mapping[str, object]) -> tuple[PageView, list[UrlNote]]:
    """Parse the bias page's URL parameters safely, each against the range the others allow
    (the channel against the layer's output channels, the row against its output height...).

    Returns the view and a note for each value not taken as given (`UrlNote.text()` words it).
    """
    notes: list[UrlNote] = []

    def choice(name: str, choices: tuple, fallback):
        if name not in params:
            return fallback
        value = url_choice(name, params[name], choices, None)[0]
        if value is None:
            notes.append(UrlNote(name, url_text(params[name]), "not_choice", fallback, choices=choices))
            return fallback
        return value

    def integer(name: str, lo: int, hi: int, fallback, extent: int = 0, used: int | None = None):
        """The URL's integer, or `fallback`; the note names `used` (what the page shows for the
        fallback) when it is not the fallback itself."""
        if name not in params:
            return fallback
        number = url_int(name, params[name], -_UNBOUNDED, _UNBOUNDED, None)[0]
        used = fallback if used is None else used
        if number is None:
            notes.append(UrlNote(name, url_text(params[name]), "not_integer", used))
            return fallback
        if not lo <= number <= hi:
            notes.append(UrlNote(name, str(number), "outside", used, lo, hi, extent=extent))
            return fallback
        return number

    layer = DEFAULT_LAYER
    changes: dict[str, object] = {
        "in_channels": choice("bias_in", IN_CHANNEL_CHOICES, layer.in_channels),
        "bias": choice("bias_bias", (True, False), layer.bias),
    }
    for name, field in URL_LAYER.items():
        changes[field] = integer(name, *LAYER_LIMITS[field], getattr(layer, field))
    layer = layer.with_(**changes)
    size = choice("bias_size", SIZES, DEFAULT_SIZE)
    channel = integer("bias_channel", 0, layer.out_channels - 1, 0, layer.out_channels)
    view = PageView(layer, size, channel)
    if layer.problem(size) is None:
        out = layer.output_size(size)
        view = replace(view, row=integer("bias_row", 0, out - 1, None, out, out // 2),
                       col=integer("bias_col", 0, out - 1, None, out, out // 2))
    return view, notes


def conv_param_count(in_ch: int, out_ch: int, kernel: int, bias: bool, groups: int = 1) -> int:
    """out·(in/groups)·k² weights, plus one bias per output channel."""
    return out_ch * (in_ch // groups) * kernel * kernel + (out_ch if bias else 0)


def conv_output_size(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """PyTorch's output length: floor((n + 2p - dil·(k-1) - 1) / s) + 1."""
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ---------------------------------------------------------------------------------------------
# Images: the built-in scene and uploads
# ---------------------------------------------------------------------------------------------


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def builtin_scene(size: int = 224) -> np.ndarray:
    """A synthetic landscape, (size, size, 3) uint8, drawn from numpy math (no files, no downloads).

    Sky gradient, a sun, hills, a checkered flag, a striped field and a dark tree: edges in many
    orientations, flat areas and texture, so different filters respond differently. Drawn in
    continuous coordinates, so every size shows the same scene without resampling.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}.")
    px = 1.0 / size  # one pixel in scene units: the width of the anti-aliased edges
    c = (np.arange(size) + 0.5) / size
    y, x = np.meshgrid(c, c, indexing="ij")

    def over(img: np.ndarray, alpha: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
        return img * (1 - alpha[..., None]) + np.array(colour) * alpha[..., None]

    sky_top, sky_bottom = np.array([0.25, 0.45, 0.85]), np.array([0.80, 0.90, 1.00])
    img = sky_top + (sky_bottom - sky_top) * y[..., None]
    sun = 1 - _smoothstep(0.10 - px, 0.10 + px, np.hypot(x - 0.75, y - 0.22))
    img = over(img, sun, (1.0, 0.85, 0.25))
    far = 0.55 + 0.06 * np.sin(7.0 * x + 1.0) + 0.03 * np.sin(19.0 * x)
    img = over(img, _smoothstep(far - px, far + px, y), (0.35, 0.55, 0.35))
    near = 0.68 + 0.05 * np.sin(4.0 * x + 2.5)
    field = _smoothstep(near - px, near + px, y)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (9.0 * x + 14.0 * (y - near)))
    img = over(img, field, (0.45, 0.65, 0.20))
    img = over(img, field * stripes * 0.5, (0.85, 0.75, 0.30))
    pole = _smoothstep(-px, px, x - 0.20) * (1 - _smoothstep(-px, px, x - 0.215))
    pole *= _smoothstep(-px, px, y - 0.25) * (1 - _smoothstep(-px, px, y - 0.70))
    img = over(img, pole, (0.30, 0.25, 0.20))
    flag = _smoothstep(-px, px, x - 0.215) * (1 - _smoothstep(-px, px, x - 0.40))
    flag *= _smoothstep(-px, px, y - 0.25) * (1 - _smoothstep(-px, px, y - 0.40))
    checks = (np.floor((x - 0.215) / 0.0465) + np.floor((y - 0.25) / 0.0375)) % 2
    img = over(img, flag, (0.95, 0.95, 0.95))
    img = over(img, flag * checks, (0.85, 0.10, 0.10))
    crown = 1 - _smoothstep(0.09 - px, 0.09 + px, np.hypot((x - 0.60) / 0.8, y - 0.52))
    trunk = _smoothstep(-px, px, x - 0.585) * (1 - _smoothstep(-px, px, x - 0.615))
    trunk *= _smoothstep(-px, px, y - 0.55) * (1 - _smoothstep(-px, px, y - 0.75))
    img = over(img, np.maximum(crown, trunk), (0.10, 0.25, 0.12))
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


class ImageError(ValueError):
    """An upload that cannot be used; the message says what failed and what would work.

    `str(err)` is the English source sentence (what logs and other modules read); `text()` is the
    same sentence in the visitor's language. Every message ends with what to upload instead, with
    the limits filled in (`mb`, `side`).
    """

    def __init__(self, message: str, **values: object):
        self.message = message
        self.values = {"mb": MAX_UPLOAD_BYTES // 2**20, "side": MAX_SIDE, **values}
        super().__init__(message.format(**self.values))

    def text(self) -> str:
        return _(self.message, **self.values)


def check_size(width: int, height: int) -> None:
    """Refuse, with an ImageError, an image over MAX_SIDE per side or MAX_PIXELS in all."""
    if width < 1 or height < 1 or width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(
            N_("The image is {width:,}×{height:,} pixels; the limit is {side:,} per side and "
               "{pixels:,} pixels in all. Upload a PNG or JPEG of at most {mb} MB and {side}×{side} "
               "pixels."),
            width=width, height=height, pixels=MAX_PIXELS,
        )


def decode_upload(data: bytes) -> Image.Image:
    """Validate and decode an uploaded PNG or JPEG into an RGB image.

    Refuses, with an ImageError: more than MAX_UPLOAD_BYTES; anything PIL cannot identify; formats
    other than PNG/JPEG; a header declaring more than MAX_SIDE per side or MAX_PIXELS in all (read
    before any pixel is decoded, so a small file that would inflate to gigabytes is never
    expanded); PIL's own decompression-bomb refusal; truncated or corrupt data. A phone camera's
    MPO file (a JPEG followed by more frames) is read as its first frame, a JPEG. The size is
    checked again after the EXIF orientation is applied, on the image that is returned.
    """
    if not data:
        raise ImageError(N_("The file is empty. Upload a PNG or JPEG of at most {mb} MB and "
                            "{side}×{side} pixels."))
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(
            N_("The file is {size:.1f} MB; the limit is {mb} MB. Upload a smaller PNG or JPEG, of "
               "at most {side}×{side} pixels."),
            size=len(data) / 2**20,
        )
    fmt = None  # known once PIL has read the header; a file cut inside it never gets that far
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            if fmt not in UPLOAD_FORMATS + ("MPO",):
                raise ImageError(N_("The file is a {fmt} image. Upload a PNG or JPEG of at most "
                                    "{mb} MB and {side}×{side} pixels."), fmt=literal(fmt or "?", 20))
            check_size(*img.size)
            img.load()  # an MPO loads its first frame (the photo; later frames are previews or depth)
            img = ImageOps.exif_transpose(img)
            check_size(*img.size)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(N_("This file is not an image that can be read. Upload a PNG or JPEG of "
                            "at most {mb} MB and {side}×{side} pixels.")) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(N_("The image declares too many pixels to decode safely. Upload a PNG or "
                            "JPEG of at most {mb} MB and {side}×{side} pixels.")) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError) as err:
        # PIL's own words say where the data ends; shown as text (a code span), never as markdown.
        detail = literal(str(err), 120)
        if fmt:
            raise ImageError(N_("The {fmt} file is damaged or truncated ({detail}). Upload a "
                                "complete PNG or JPEG of at most {mb} MB and {side}×{side} pixels."),
                             fmt="JPEG" if fmt == "MPO" else fmt, detail=detail) from None
        raise ImageError(N_("The file is damaged or truncated ({detail}). Upload a complete PNG or "
                            "JPEG of at most {mb} MB and {side}×{side} pixels."),
                         detail=detail) from None
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit greyscale: PIL's own conversion clips at 255; rescale the 0-65535 range instead.
        # In place and in float32 (exact here: k/257 is never within 0.002 of a half), so that a
        # 16-megapixel image costs 4 bytes a pixel beside PIL's own, not 32 (DECODE_BYTES_PER_PIXEL).
        grey = np.asarray(img, dtype=np.float32)
        grey /= 257.0
        np.clip(np.rint(grey, out=grey), 0, 255, out=grey)
        img = Image.fromarray(grey.astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels carry arbitrary colour; show them as white, as a viewer would.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def square_crop(img: Image.Image, size: int) -> np.ndarray:
    """Shorter side resized to `size`, centre square cropped: ResNet's preprocessing.

    The centre square of the original is resampled straight to size × size (PIL's `box`), which
    gives the same pixels as resizing the whole image and cropping, without ever allocating the
    resized whole: a 4096×1 image at size 448 would be 1,835,008×448 pixels first.
    """
    w, h = img.size
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}.")
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    square = img.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
    return np.asarray(square, dtype=np.uint8)


def outline_window(rgb: np.ndarray, top: int, left: int, kernel: int) -> np.ndarray:
    """A copy of the image with the receptive-field window outlined in red (clipped to the image).

    The outline is drawn one pixel outside the window so the pixels it covers stay visible.
    """
    out = np.array(rgb, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    r0, r1, c0, c1 = top - 1, top + kernel, left - 1, left + kernel
    red = np.array([230, 20, 20], dtype=np.uint8)
    rows = np.arange(max(r0, 0), min(r1, h - 1) + 1)
    cols = np.arange(max(c0, 0), min(c1, w - 1) + 1)
    for r in (r0, r1):
        if 0 <= r < h and cols.size:
            out[r, cols] = red
    for c in (c0, c1):
        if 0 <= c < w and rows.size:
            out[rows, c] = red
    return out


def enlarge(rgb: np.ndarray, min_side: int) -> np.ndarray:
    """Repeat each pixel n times per axis (smallest n with n·side ≥ min_side): small inputs
    stay sharp on screen instead of being blurred by the browser's smooth scaling."""
    n = max(1, math.ceil(min_side / min(rgb.shape[:2])))
    return np.repeat(np.repeat(rgb, n, axis=0), n, axis=1) if n > 1 else rgb


def window_picture(
    rgb: np.ndarray, top: int, left: int, kernel: int, min_side: int = 224
) -> np.ndarray:
    """The image enlarged by pixel repetition, with the window outlined at the enlarged scale, so
    the outline on a small image runs between pixels instead of painting over them."""
    big = enlarge(rgb, min_side)
    n = big.shape[0] // rgb.shape[0]
    return outline_window(big, top * n, left * n, kernel * n)


LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601: greyscale from RGB


def as_seen(rgb: np.ndarray, channels: int = 3) -> np.ndarray:
    """The picture as a layer with `channels` input channels sees it: RGB, or its luminance
    (grey, repeated to three channels for display)."""
    if channels == 3:
        return np.asarray(rgb, dtype=np.uint8)
    grey = np.asarray(rgb, dtype=np.float64) @ np.array(LUMA)
    return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def to_input(rgb: np.ndarray, channels: int = 3) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, channels, H, W) float32, ImageNet-normalised.

    One channel is the luminance, normalised with the luminance of ImageNet's mean and standard
    deviation (a convention: ImageNet has no greyscale statistics of its own).
    """
    x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    if channels == 1:
        luma = torch.tensor(LUMA).view(3, 1, 1)
        x, mean, std = ((t * luma).sum(0, keepdim=True) for t in (x, mean, std))
    return ((x - mean) / std).unsqueeze(0)


# ---------------------------------------------------------------------------------------------
# One forward of the seed layer, with and without its bias
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRun:
    """The layer on one image: input, output with its bias (the module's forward) and without."""

    x: torch.Tensor  # (1, in, H, W)
    y: torch.Tensor  # (out, Ho, Wo): layer(x)
    y_no_bias: torch.Tensor  # (out, Ho, Wo): the same weights, bias=None
    bias: torch.Tensor  # (out,): zeros when the layer has none

    @property
    def shift_deviation(self) -> float:
        """Largest |(y - y_no_bias) - b[c]| over every channel and position."""
        diff = self.y - self.y_no_bias - self.bias.view(-1, 1, 1)
        return float(diff.abs().max())


def run_seed_layer(layer: nn.Conv2d, x: torch.Tensor) -> SeedRun:
    with torch.no_grad():
        y = layer(x)[0]
        y0 = F.conv2d(x, layer.weight, None, layer.stride, layer.padding)[0]
    bias = layer.bias.detach().clone() if layer.bias is not None else torch.zeros(y.shape[0])
    return SeedRun(x=x, y=y, y_no_bias=y0, bias=bias)


# ---------------------------------------------------------------------------------------------
# One output value, opened up
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputValue:
    """y[c, i, j] as patch · weights + bias, beside the value the layer's forward produced."""

    channel: int
    row: int
    col: int
    top: int  # input row of the window's first tap (negative: padding)
    left: int
    patch: np.ndarray  # (3, k, k) input values under the window; 0 where padding
    is_padding: np.ndarray  # (k, k) bool: tap lies in the zero padding
    weights: np.ndarray  # (3, k, k)
    products: np.ndarray  # (3, k, k)
    dot: float
    bias: float
    total: float  # dot + bias
    output: float  # from the layer's forward

    @property
    def difference(self) -> float:
        return self.total - self.output


def explain_output(layer: nn.Conv2d, run: SeedRun, channel: int, row: int, col: int) -> OutputValue:
    """Decompose one output value: the window of the zero-padded input times the channel's kernel.

    Sums in float64, so the difference to the forward's float32 value is the forward's rounding.
    """
    ho, wo = run.y.shape[1:]
    if not (0 <= channel < run.y.shape[0] and 0 <= row < ho and 0 <= col < wo):
        raise ValueError(
            f"(channel, row, col) = ({channel}, {row}, {col}) is outside the output "
            f"{tuple(run.y.shape)}."
        )
    k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
    padded = F.pad(run.x[0], (p, p, p, p)).double()
    top, left = row * s - p, col * s - p
    patch = padded[:, row * s : row * s + k, col * s : col * s + k]
    h, w = run.x.shape[2:]
    rows = torch.arange(top, top + k).view(-1, 1)
    cols = torch.arange(left, left + k).view(1, -1)
    is_padding = (rows < 0) | (rows >= h) | (cols < 0) | (cols >= w)
    weights = layer.weight[channel].detach().double()
    products = patch * weights
    dot = float(products.sum())
    b = float(layer.bias.detach()[channel]) if layer.bias is not None else 0.0
    return OutputValue(
        channel=channel,
        row=row,
        col=col,
        top=top,
        left=left,
        patch=patch.numpy(),
        is_padding=is_padding.numpy(),
        weights=weights.numpy(),
        products=products.numpy(),
        dot=dot,
        bias=b,
        total=dot + b,
        output=float(run.y[channel, row, col]),
    )


# ---------------------------------------------------------------------------------------------
# Bias as a shift: ReLU survival
# ---------------------------------------------------------------------------------------------


def survival_fraction(pre_bias: np.ndarray, bias: float) -> float:
    """Fraction of positions where pre_bias + bias > 0, i.e. that a ReLU lets through."""
    return float(np.mean(np.asarray(pre_bias, dtype=np.float64) + bias > 0))


def bias_range(pre_bias: np.ndarray, learned: float, step: float = 0.01) -> tuple[float, float]:
    """A bias interval from all positions cut (≤ −max) to all kept (> −min), containing 0, on a
    grid of `step` through the learned bias: a slider over it starts exactly at the layer's own
    value (and passes within half a step of 0).
    """
    lo = min(-float(np.max(pre_bias)), learned, 0.0)
    hi = max(-float(np.min(pre_bias)), learned, 0.0)
    below = math.ceil(round((learned - lo) / step, 9))
    above = math.ceil(round((hi - learned) / step, 9)) + 1
    return learned - below * step, learned + above * step


def survival_sweep(pre_bias: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """survival_fraction for many biases at once: one sort, then a binary search per bias."""
    values = np.sort(np.asarray(pre_bias, dtype=np.float64).ravel())
    # value + b > 0  <=>  value > -b: count the values strictly above -b.
    above = values.size - np.searchsorted(values, -np.asarray(biases, dtype=np.float64), "right")
    return above / values.size


# ---------------------------------------------------------------------------------------------
# Padding: windows that see only zeros output the bias
# ---------------------------------------------------------------------------------------------


def real_taps(height: int, width: int, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """(Ho, Wo): how many taps of each window fall on the input rather than on the padding."""
    ones = torch.ones(1, 1, height, width, dtype=torch.float64)
    window = torch.ones(1, 1, kernel, kernel, dtype=torch.float64)
    counts = F.conv2d(ones, window, None, stride, padding)
    return counts[0, 0].round().to(torch.int64)


@dataclass(frozen=True)
class PaddingDemo:
    padding: int
    out_shape: tuple[int, int]
    min_real_taps: int  # per input channel, over all windows
    all_padding: torch.Tensor  # (Ho, Wo) bool
    max_deviation: float  # largest |y - b[c]| over all-padding windows and all channels (nan: none)


def first_all_padding(size: int, kernel: int, stride: int) -> int:
    """The smallest padding at which some window of a size × size input lies wholly in it (among
    the paddings at which the kernel fits the padded input at all)."""
    return next(p for p in range(min_padding(kernel, size), kernel + 1)
                if bool((real_taps(size, size, kernel, stride, p) == 0).any()))


def padding_demo(layer: nn.Conv2d, x: torch.Tensor, padding: int) -> PaddingDemo:
    """The layer's weights and bias with another padding; compare all-padding windows to the
    bias (0 for a layer without one)."""
    if padding < 0:
        raise ValueError(f"padding must be ≥ 0, got {padding}.")
    k, s = layer.kernel_size[0], layer.stride[0]
    h, w = x.shape[2:]
    if min(h, w) + 2 * padding < k:
        raise ValueError(
            f"The {k}×{k} kernel is larger than the padded input ({h}×{w} with padding {padding})."
        )
    taps = real_taps(h, w, k, s, padding)
    with torch.no_grad():
        y = F.conv2d(x, layer.weight, layer.bias, s, padding)[0]
    mask = taps == 0
    bias = layer.bias.detach() if layer.bias is not None else torch.zeros(y.shape[0])
    dev = (y - bias.view(-1, 1, 1)).abs()[:, mask]
    return PaddingDemo(
        padding=padding,
        out_shape=(int(y.shape[1]), int(y.shape[2])),
        min_real_taps=int(taps.min()),
        all_padding=mask,
        max_deviation=float(dev.max()) if dev.numel() else float("nan"),
    )


# ---------------------------------------------------------------------------------------------
# Bias and BatchNorm
# ---------------------------------------------------------------------------------------------


def illustrative_bn(layer: nn.Conv2d, seed: int = SEED) -> nn.BatchNorm2d:
    """A BatchNorm2d after the layer, in eval mode, with non-trivial parameters.

    γ ~ U(0.5, 1.5), β ~ U(-0.5, 0.5) from a fixed seed (a fresh BN has γ=1, β=0, which would hide
    half of the folding formula). Running statistics are accumulated as in training (cumulative
    average) from the layer's output on the built-in scene and its three flips.
    """
    bn = nn.BatchNorm2d(layer.out_channels, eps=BN_EPS, momentum=None)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=gen)
        bn.bias.uniform_(-0.5, 0.5, generator=gen)
        scene = to_input(builtin_scene(DEFAULT_SIZE), layer.in_channels)
        bn.train()
        for view in (scene, scene.flip(3), scene.flip(2), scene.flip(2, 3)):
            bn(layer(view))
    return bn.eval()


@dataclass(frozen=True)
class BNCancellation:
    """Training-mode BN after the conv, with and without the conv's bias."""

    with_bias: torch.Tensor  # (64, Ho, Wo)
    without_bias: torch.Tensor
    max_difference: float
    bias_grad_through_bn: torch.Tensor  # (64,): d loss / d bias with the BN in between
    bias_grad_without_bn: torch.Tensor  # (64,): the same loss straight on the conv output


def bn_cancellation(layer: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> BNCancellation:
    """Train-mode BN subtracts each channel's batch mean, so the constant bias drops out.

    Uses a copy of `bn` in train mode (the batch statistics; running stats untouched) and a loss
    ½·mean(out²) to show the bias also receives (numerically) zero gradient through the BN.
    The layer must have a bias.
    """
    if layer.bias is None:
        raise ValueError("The layer has no bias to cancel (bias=False).")
    norm = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=None)
    norm.load_state_dict(bn.state_dict())
    norm.train()
    weight = layer.weight.detach()
    bias = layer.bias.detach().clone().requires_grad_(True)
    conv = F.conv2d(x, weight, bias, layer.stride, layer.padding)
    with_bias = norm(conv)
    (0.5 * with_bias.pow(2).mean()).backward()
    bias_no_bn = layer.bias.detach().clone().requires_grad_(True)
    (0.5 * F.conv2d(x, weight, bias_no_bn, layer.stride, layer.padding).pow(2).mean()).backward()
    with torch.no_grad():
        without_bias = norm(F.conv2d(x, weight, None, layer.stride, layer.padding))
    with_bias = with_bias.detach()
    return BNCancellation(
        with_bias=with_bias[0],
        without_bias=without_bias[0],
        max_difference=float((with_bias - without_bias).abs().max()),
        bias_grad_through_bn=bias.grad,
        bias_grad_without_bn=bias_no_bn.grad,
    )


def fold_batchnorm(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN(conv(x)) = conv'(x) with W' = W·γ/√(σ²+ε) and b' = (b − μ)·γ/√(σ²+ε) + β."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * scale.view(-1, 1, 1, 1), (b - bn.running_mean) * scale + bn.bias.detach()


@dataclass(frozen=True)
class FoldCheck:
    weight: torch.Tensor  # folded (64, 3, 7, 7)
    bias: torch.Tensor  # folded (64,)
    scale: torch.Tensor  # γ/√(σ²+ε), (64,)
    bn_output: torch.Tensor  # (64, Ho, Wo): bn.eval()(layer(x))
    folded_output: torch.Tensor  # (64, Ho, Wo): conv with the folded weight and bias
    max_difference: float


def fold_check(layer: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> FoldCheck:
    if bn.training:
        raise ValueError("Folding uses the running statistics: put the BatchNorm in eval mode.")
    with torch.no_grad():
        w, b = fold_batchnorm(layer.weight, layer.bias, bn)
        reference = bn(layer(x))[0]
        folded = F.conv2d(x, w, b, layer.stride, layer.padding)[0]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return FoldCheck(
        weight=w,
        bias=b,
        scale=scale,
        bn_output=reference,
        folded_output=folded,
        max_difference=float((reference - folded).abs().max()),
    )


# ---------------------------------------------------------------------------------------------
# Learning the bias
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientCheck:
    """Loss ½·mean(y²) over a batch; dL/db from autograd beside Σ dL/dy over batch and positions."""

    batch: int
    bias_grad: torch.Tensor  # (64,): autograd's layer.bias.grad
    output_grad_sum: torch.Tensor  # (64,): y.grad summed over dims (0, 2, 3)
    per_item: torch.Tensor  # (batch, 64): y.grad summed over positions, per batch item
    loss: float

    @property
    def max_difference(self) -> float:
        return float((self.bias_grad - self.output_grad_sum).abs().max())


def gradient_check(layer: nn.Conv2d, x: torch.Tensor) -> GradientCheck:
    """Run autograd through a copy of the layer (the cached layer's .grad stays untouched).
    The layer must have a bias."""
    if layer.bias is None:
        raise ValueError("The layer has no bias to learn (bias=False).")
    weight = layer.weight.detach().clone().requires_grad_(True)
    bias = layer.bias.detach().clone().requires_grad_(True)
    y = F.conv2d(x, weight, bias, layer.stride, layer.padding)
    y.retain_grad()
    loss = 0.5 * y.pow(2).mean()
    loss.backward()
    grad = y.grad.detach()
    return GradientCheck(
        batch=int(x.shape[0]),
        bias_grad=bias.grad.detach(),
        output_grad_sum=grad.sum(dim=(0, 2, 3)),
        per_item=grad.sum(dim=(2, 3)),
        loss=float(loss.detach()),
    )


# ---------------------------------------------------------------------------------------------
# What a bias adds to a ReLU network: it is no longer positively homogeneous
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Homogeneity:
    """ReLU(conv(α·x)) against α·ReLU(conv(x)), without and with the layer's bias.

    Without biases a ReLU network is positively homogeneous, f(α·x) = α·f(x) for α > 0: every
    kink of every ReLU passes through the origin. A bias breaks that. Deviations are the largest
    |difference| over the largest |α·ReLU(conv(x))|.
    """

    alpha: float
    without_bias: float
    with_bias: float


def homogeneity(layer: nn.Conv2d, x: torch.Tensor, alpha: float = 2.0) -> Homogeneity:
    """The layer must have a bias (the comparison is with and without it)."""
    if layer.bias is None:
        raise ValueError("The layer has no bias to compare with (bias=False).")
    def relu_conv(t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.relu(F.conv2d(t, layer.weight, bias, layer.stride, layer.padding))

    deviations = []
    with torch.no_grad():
        for bias in (None, layer.bias):
            scaled, once = relu_conv(alpha * x, bias), alpha * relu_conv(x, bias)
            deviations.append(float((scaled - once).abs().max() / once.abs().max().clamp_min(1e-30)))
    return Homogeneity(alpha, *deviations)


# ---------------------------------------------------------------------------------------------
# Everything the page computes on one layer and one image
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageResults:
    """The bias page's computations on one layer and input: what `page_bytes` estimates."""

    run: SeedRun
    cancellation: BNCancellation | None  # None for a layer without a bias
    fold: FoldCheck
    gradient: GradientCheck | None  # the image and its mirror; None without a bias
    homogeneity: Homogeneity | None  # None without a bias
    first_empty: int  # the smallest padding with an all-padding window
    layer_padding: PaddingDemo  # at the layer's own padding
    first_padding: PaddingDemo  # at max(first_empty, the layer's padding)


def page_results(layer: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> PageResults:
    k, s, p = layer.kernel_size[0], layer.stride[0], layer.padding[0]
    biased = layer.bias is not None
    first = first_all_padding(int(x.shape[-1]), k, s)
    return PageResults(
        run=run_seed_layer(layer, x),
        cancellation=bn_cancellation(layer, bn, x) if biased else None,
        fold=fold_check(layer, bn, x),
        gradient=gradient_check(layer, torch.cat([x, x.flip(3)])) if biased else None,
        homogeneity=homogeneity(layer, x) if biased else None,
        first_empty=first,
        layer_padding=padding_demo(layer, x, p),
        first_padding=padding_demo(layer, x, max(first, p)),
    )


# ---------------------------------------------------------------------------------------------
# Bias inside ACmix
# ---------------------------------------------------------------------------------------------

ACMIX_CONVS = ("conv1", "conv2", "conv3", "conv_p", "fc", "dep_conv")


@dataclass(frozen=True)
class SubmoduleBias:
    name: str
    declared: bool  # the constructor asked for a bias
    actual: bool  # the live module has one
    weight_params: int
    bias_params: int  # in the live module
    declared_bias_params: int  # what the constructor's bias would hold
    groups: int


def acmix_bias_table(module: ACmix) -> tuple[list[SubmoduleBias], int]:
    """Declared vs actual bias of each of `module`'s convolutions, and its parameter count.

    "Declared" is read from the constructor itself: a twin of the same class and hyperparameters
    with reset_parameters skipped (the step that removes dep_conv's bias, Q1) shows which
    convolutions __init__ gave a bias.
    """

    class _AsConstructed(type(module)):
        def reset_parameters(self) -> None:
            pass

    # On the meta device: only the shapes are needed, so wide configurations cost nothing.
    with torch.device("meta"):
        built = _AsConstructed(
            module.in_planes, module.out_planes, module.kernel_att, module.head,
            module.kernel_conv, module.stride, module.dilation, variant=module.variant,
        )
    rows = []
    for name in ACMIX_CONVS:
        mod, decl = getattr(module, name), getattr(built, name)
        rows.append(
            SubmoduleBias(
                name=name,
                declared=decl.bias is not None,
                actual=mod.bias is not None,
                weight_params=mod.weight.numel(),
                bias_params=mod.bias.numel() if mod.bias is not None else 0,
                declared_bias_params=decl.bias.numel() if decl.bias is not None else 0,
                groups=mod.groups,
            )
        )
    return rows, sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# What the page costs
# ---------------------------------------------------------------------------------------------


def demo_padding_max(spec: LayerSpec) -> int:
    """The padding demonstration's largest padding: past the first all-padding window."""
    return max(12, spec.kernel + 3)


def demo_padding_min(spec: LayerSpec, size: int) -> int:
    """The padding demonstration's smallest padding: the kernel must fit the padded input."""
    return min_padding(spec.kernel, size)


def _columns(spec: LayerSpec, side: int) -> int:
    """Values of the column buffer PyTorch's CPU convolution may unfold the input into (im2col):
    in_channels·k² per output position; it outgrows the output itself for large kernels."""
    return spec.in_channels * spec.kernel * spec.kernel * side * side


def padding_bytes(spec: LayerSpec, size: int, padding: int) -> int:
    """What one padding demonstration allocates: the output at that padding, its deviation from
    the bias and the mask (about three float32 outputs), and the convolution's column buffer."""
    side = conv_output_size(size, spec.kernel, spec.stride, padding)
    return 4 * (3 * spec.out_channels * side * side + _columns(spec, side)
                + spec.in_channels * size * size)


def page_bytes(spec: LayerSpec, size: int) -> int:
    """Bytes the bias page's computations hold at their peak, from shapes, float32.

    The larger of two stages: the page's results (`page_results`), about 24 tensors of the output's
    size (the output with and without bias, BatchNorm with and without it, the folded layer, a
    two-image gradient, and their temporaries; measured at 11 to 20), taking the padding
    demonstration's largest output as the size; and the BatchNorm's running statistics, gathered
    once from the layer's output on the built-in scene at DEFAULT_SIZE (measured at 2 to 3 outputs).
    Each stage adds two of the convolution's column buffers (`_columns`), and the inputs.
    """
    widest = max(spec.output_size(size), conv_output_size(size, spec.kernel, spec.stride,
                                                          demo_padding_max(spec)))
    statistics = spec.output_size(DEFAULT_SIZE)
    results = 24 * spec.out_channels * widest * widest + 2 * _columns(spec, widest)
    running = 4 * spec.out_channels * statistics * statistics + 2 * _columns(spec, statistics)
    return 4 * (max(results, running) + 2 * spec.in_channels * max(size, DEFAULT_SIZE) ** 2)


def upload_bytes(data: bytes, size: int) -> int:
    """What decoding an upload and cropping it to size × size allocates at most, from the image's
    header (nothing is decoded): DECODE_BYTES_PER_PIXEL per pixel, and the square. 0 for a file
    whose header cannot be read or declares too many pixels: decode_upload refuses it before
    decoding anything."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Exception:  # noqa: BLE001 - any unreadable header: decode_upload says why
        return 0
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        return 0  # refused from the header, before decoding
    return DECODE_BYTES_PER_PIXEL * width * height + 3 * size * size


def fitting_size(spec: LayerSpec, size: int, budget: int) -> int | None:
    """The largest offered input size up to `size` whose page fits `budget` (None: none does)."""
    fits = [s for s in SIZES if s <= size and spec.problem(s) is None and page_bytes(spec, s) <= budget]
    return fits[-1] if fits else None
