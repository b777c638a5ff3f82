"""ACmix (Pan et al., CVPR 2022), written from ../shared/design/ACMIX.md.

`variant="official"` computes what the authors' ResNet-variant module computes, value for value,
quirks included (dep_conv's bias removed, h_out = H // stride). Where their code would crash with
a shape error, this one raises `ConfigError` naming the constraint and the line that breaks.

`variant="fixed"` keeps every parameter and name but:
  * dep_conv pads by kernel_conv // 2, so any odd kernel_conv works;
  * h_out = ceil(H / stride), w_out = ceil(W / stride), so odd sizes work with any stride;
  * dilation applies to the attention window: window position j = (dy, dx) reads the padded
    key/value/positional maps at (y*stride + dy*dilation, x*stride + dx*dilation), with the
    reflection padding p = (dilation*(kernel_att-1)+1)//2 = dilation*(kernel_att-1)/2 that
    centres the dilated window on the query.

Both variants build the coordinate grid with the input's dtype and device (fixing Q8; float32
values are unchanged) and accept channels-last inputs.

The attention path (ACMIX.md steps 5-7) is a pluggable function chosen by `impl`, so a second
formulation can be registered in `ATTENTION_IMPLS` without copying the rest of the forward.
Every named intermediate passes through `_rec`, which a trace (convmix.trace) listens to.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .constraints import (
    ConfigError,
    Problem,
    attention_padding,
    input_problems,
    module_problems,
    output_size,
)


@dataclass(frozen=True)
class Geometry:
    """Sizes of one forward: input H x W, output Ho x Wo, window, padding, stride, dilation."""

    batch: int
    height: int
    width: int
    out_height: int
    out_width: int
    kernel_att: int
    padding: int
    stride: int
    dilation: int  # dilation of the attention window actually applied (1 for official)


def coordinate_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 2, H, W): channel 0 is linspace(-1, 1, W) along x, channel 1 linspace(-1, 1, H) along y.

    Built with `like`'s dtype and device (the authors always use float32 on CPU or the current
    CUDA device, Q8). The linspace itself is computed in float32 and then cast, so float32 values
    are identical to theirs and other dtypes see the same coordinates rounded once.
    """
    loc_w = torch.linspace(-1.0, 1.0, width, device=like.device).to(like.dtype)
    loc_h = torch.linspace(-1.0, 1.0, height, device=like.device).to(like.dtype)
    grid_x = loc_w.unsqueeze(0).repeat(height, 1)
    grid_y = loc_h.unsqueeze(1).repeat(1, width)
    return torch.cat([grid_x.unsqueeze(0), grid_y.unsqueeze(0)], 0).unsqueeze(0)


def subsample(t: torch.Tensor, stride: int) -> torch.Tensor:
    """Every stride-th row and column (a view): the query positions of a strided layer."""
    return t[:, :, ::stride, ::stride]


def attention_unfold(
    module: ACmix,
    q_att: torch.Tensor,
    k_att: torch.Tensor,
    v_att: torch.Tensor,
    pe: torch.Tensor,
    q_pe: torch.Tensor,
    g: Geometry,
) -> torch.Tensor:
    """The authors' formulation: unfold K = kernel_att^2 copies of k, v and pe (ACMIX.md 5-7).

    q_att (B*h, d, Ho, Wo) already scaled and strided; k_att, v_att (B*h, d, H, W);
    pe (1, d, H, W); q_pe (1, d, Ho, Wo). Returns (B*h, d, Ho, Wo).
    """
    rec = module._rec
    bh, d = k_att.shape[0], k_att.shape[1]
    kk = g.kernel_att * g.kernel_att
    shape = (g.out_height, g.out_width)
    # Temporaries are rebound or left unnamed as in the authors' code, so that the same tensors
    # are alive at the same time and peak memory matches theirs.
    unfold_k = rec("unfold_k", module.unfold(rec("k_pad", module.pad_att(k_att))).view(bh, d, kk, *shape))
    unfold_rpe = rec("unfold_rpe", module.unfold(rec("pe_pad", module.pad_att(pe))).view(1, d, kk, *shape))
    att = rec("logits", (q_att.unsqueeze(2) * (unfold_k + q_pe.unsqueeze(2) - unfold_rpe)).sum(1))
    att = rec("att", module.softmax(att))
    out_att = rec("unfold_v", module.unfold(rec("v_pad", module.pad_att(v_att))).view(bh, d, kk, *shape))
    return (att.unsqueeze(1) * out_att).sum(2)


# name -> formulation of the attention path; convmix.fast registers "fast".
ATTENTION_IMPLS: dict[str, Callable[..., torch.Tensor]] = {"reference": attention_unfold}
# name -> another formulation of the conv path, (module, q, k, v) -> out_conv; the authors' conv
# path is written inline in ACmix.forward and serves every impl not listed here.
CONV_PATH_IMPLS: dict[str, Callable[..., torch.Tensor]] = {}


class ACmix(nn.Module):
    """ACmix with the authors' names: conv1-3, conv_p, pad_att, unfold, softmax, fc, dep_conv, rate1, rate2."""

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        kernel_att: int = 7,
        head: int = 4,
        kernel_conv: int = 3,
        stride: int = 1,
        dilation: int = 1,
        *,
        variant: str = "official",
        impl: str = "reference",
    ):
        super().__init__()
        problems = module_problems(
            in_planes, out_planes, kernel_att, head, kernel_conv, stride, dilation, variant
        )
        if problems:
            raise ConfigError(problems)
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.head = head
        self.kernel_att = kernel_att
        self.kernel_conv = kernel_conv
        self.stride = stride
        self.dilation = dilation
        self.variant = variant
        self.impl = impl
        self.rate1 = nn.Parameter(torch.empty(1))
        self.rate2 = nn.Parameter(torch.empty(1))
        self.head_dim = out_planes // head

        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv2 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv3 = nn.Conv2d(in_planes, out_planes, kernel_size=1)
        self.conv_p = nn.Conv2d(2, self.head_dim, kernel_size=1)

        self.padding_att = attention_padding(kernel_att, dilation)
        self.pad_att = nn.ReflectionPad2d(self.padding_att)
        # The authors' Unfold ignores dilation (Q4, refused for "official"); "fixed" applies it.
        window_dilation = dilation if variant == "fixed" else 1
        self.unfold = nn.Unfold(
            kernel_size=kernel_att, dilation=window_dilation, padding=0, stride=stride
        )
        self.softmax = nn.Softmax(dim=1)

        self.fc = nn.Conv2d(3 * head, kernel_conv * kernel_conv, kernel_size=1, bias=False)
        conv_padding = 1 if variant == "official" else kernel_conv // 2
        self.dep_conv = nn.Conv2d(
            kernel_conv * kernel_conv * self.head_dim,
            out_planes,
            kernel_size=kernel_conv,
            bias=True,
            groups=self.head_dim,
            padding=conv_padding,
            stride=stride,
        )
        self._recorder: Callable[[str, torch.Tensor, int], None] | None = None
        # A clock (convmix.bench.PartClock) hears only the names: no frame lookup for the line.
        self._stamper: Callable[[str], None] | None = None
        self.reset_parameters()

    @property
    def impl(self) -> str:
        return self._impl

    @impl.setter
    def impl(self, name: str) -> None:
        if name not in ATTENTION_IMPLS:
            raise ValueError(f"impl must be one of {', '.join(ATTENTION_IMPLS)}, not {name!r}.")
        self._impl = name

    def reset_parameters(self) -> None:
        """rate1 = rate2 = 0.5; dep_conv = shift kernels; dep_conv's bias removed (Q1)."""
        with torch.no_grad():
            self.rate1.fill_(0.5)
            self.rate2.fill_(0.5)
        kc = self.kernel_conv
        shift = torch.zeros(kc * kc, kc, kc)
        for i in range(kc * kc):
            shift[i, i // kc, i % kc] = 1.0
        self.dep_conv.weight = nn.Parameter(shift.unsqueeze(0).repeat(self.out_planes, 1, 1, 1))
        # The authors assign the result of a fill helper that returns None: the bias is gone.
        self.dep_conv.bias = None

    def extra_repr(self) -> str:
        return (
            f"in_planes={self.in_planes}, out_planes={self.out_planes}, kernel_att={self.kernel_att}, "
            f"head={self.head}, kernel_conv={self.kernel_conv}, stride={self.stride}, "
            f"dilation={self.dilation}, variant={self.variant!r}, impl={self.impl!r}"
        )

    def _rec(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """Pass `tensor` through, telling the recorder (if a trace listens) its name and line, and
        the stamper (if a clock listens) its name."""
        if self._recorder is not None:
            self._recorder(name, tensor, sys._getframe(1).f_lineno)
        if self._stamper is not None:
            self._stamper(name)
        return tensor

    def geometry(self, batch: int, height: int, width: int) -> Geometry:
        """Sizes for an input of (batch, in_planes, height, width); raises ConfigError if invalid."""
        problems = input_problems(
            height, width, self.kernel_att, self.stride, self.dilation, self.variant
        )
        if problems:
            raise ConfigError(problems)
        return Geometry(
            batch=batch,
            height=height,
            width=width,
            out_height=output_size(height, self.stride, self.variant),
            out_width=output_size(width, self.stride, self.variant),
            kernel_att=self.kernel_att,
            padding=self.padding_att,
            stride=self.stride,
            dilation=self.dilation if self.variant == "fixed" else 1,
        )

    def attention_inputs(
        self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heads, scaling, positional encoding and query striding (ACMIX.md steps 2-4).

        Returns q_att (B*h, d, Ho, Wo) scaled and strided, k_att and v_att (B*h, d, H, W), pe
        (1, d, H, W) and q_pe (1, d, Ho, Wo): what an attention formulation receives.
        """
        rec = self._rec
        b, _, h, w = x.shape
        heads, d = self.head, self.head_dim
        pe = rec("pe", self.conv_p(rec("grid", coordinate_grid(h, w, x))))
        q_att = rec("q_att", q.reshape(b * heads, d, h, w) * float(d) ** -0.5)
        k_att = rec("k_att", k.reshape(b * heads, d, h, w))
        v_att = rec("v_att", v.reshape(b * heads, d, h, w))
        if self.stride > 1:
            q_att = rec("q_strided", subsample(q_att, self.stride))
            q_pe = rec("q_pe", subsample(pe, self.stride))
        else:
            q_pe = rec("q_pe", pe)
        return q_att, k_att, v_att, pe, q_pe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_planes:
            raise ConfigError(
                [
                    Problem(
                        "input_shape",
                        f"ACmix expects input of shape (batch, {self.in_planes}, height, width), "
                        f"got {tuple(x.shape)}.",
                    )
                ]
            )
        rec = self._rec
        b, _, h, w = x.shape
        g = self.geometry(b, h, w)
        heads, d = self.head, self.head_dim

        # Stage I: three 1x1 projections, shared by both paths.
        q = rec("q", self.conv1(x))
        k = rec("k", self.conv2(x))
        v = rec("v", self.conv3(x))

        # Attention path: heads, scaling, relative positional encoding, local windows. The inputs
        # stay bound here, as in the authors' forward, so they live until it returns.
        q_att, k_att, v_att, pe, q_pe = self.attention_inputs(x, q, k, v)
        out_att = ATTENTION_IMPLS[self.impl](self, q_att, k_att, v_att, pe, q_pe, g)
        out_att = rec("out_att", out_att.reshape(b, self.out_planes, g.out_height, g.out_width))

        # Convolution path: fc mixes the 3*head q/k/v groups into kernel_conv^2 groups, then the
        # grouped dep_conv (shift kernels at init) sums shifted copies.
        conv_path = CONV_PATH_IMPLS.get(self.impl)
        if conv_path is None:
            # The authors' code, inline so that its temporaries live exactly as long as theirs; the
            # concatenation stays unnamed, so it is freed once fc has read it.
            groups = [t.reshape(b, heads, d, h * w) for t in (q, k, v)]
            f_all = rec("f_all", self.fc(rec("qkv_groups", torch.cat(groups, 1))))
            f_conv = rec("f_conv", f_all.permute(0, 2, 1, 3).reshape(b, -1, h, w))
            out_conv = rec("out_conv", self.dep_conv(f_conv))
        else:
            out_conv = rec("out_conv", conv_path(self, q, k, v))

        return rec("out", self.rate1 * out_att + self.rate2 * out_conv)


