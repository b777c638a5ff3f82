"""The attention path without the kernel_att² unfolded copies (Q9): `ATTENTION_IMPLS["fast"]`.

The authors' formulation unfolds K = kernel_att² copies of k, v and the positional encoding and
multiplies them elementwise. Every window position j = (dy, dx) only reads the padded maps at
(y*stride + dy*dilation, x*stride + dx*dilation), which is a strided *view* of the padded map.
This formulation walks the K offsets over such views:

  logits[j] = sum_c q[c] * (k_pad - pe_pad)[c, window j]
  att       = softmax over j
  out       = sum_j att[j] * v_pad[:, window j]

The reference's logits are q . (k + q_pe - pe) = q . (k - pe) + q . q_pe. Padding is linear, so
k_pad - pe_pad is the padding of k - pe: one padded map holds the keys and the key side of the
relative positional term. The query side, q . q_pe, is the same for all K window positions of a
query, and a softmax over the positions ignores a constant added to all of them, so it is left
out: in exact arithmetic the weights, the output and all gradients are unchanged (the constant's
gradient through the softmax is zero); in floating point they differ by rounding. Only the
B*h*K*Ho*Wo logits are stored, head_dim times fewer values than one unfolded copy.

Two code paths compute the same thing: without autograd (inference) the loops (over head channels
for the logits, over window offsets for the weighted sum) write into preallocated buffers in place; with autograd they use plain out-of-place slices, which autograd
differentiates (gradients of every parameter and of the input match the reference).
"""

from __future__ import annotations

import torch

from .acmix import ATTENTION_IMPLS, CONV_PATH_IMPLS, Geometry


def _window_slices(t: torch.Tensor, g: Geometry) -> list[torch.Tensor]:
    """The K windows of a padded (N, d, Hp, Wp) map as slices, j = dy * kernel_att + dx."""
    s, dil, ka = g.stride, g.dilation, g.kernel_att
    rows, cols = s * (g.out_height - 1) + 1, s * (g.out_width - 1) + 1
    return [
        t[:, :, dy * dil : dy * dil + rows : s, dx * dil : dx * dil + cols : s]
        for dy in range(ka)
        for dx in range(ka)
    ]


def _window_grid(t: torch.Tensor, g: Geometry) -> torch.Tensor:
    """All K windows of a padded (N, d, Hp, Wp) map as one view (ka, ka, N, d, Ho, Wo): the window
    j = dy * kernel_att + dx is grid[dy, dx]. No copy; used where autograd is off, as as_strided's
    backward is costly."""
    s, dil, ka = g.stride, g.dilation, g.kernel_att
    sn, sc, sh, sw = t.stride()
    return t.as_strided(
        (ka, ka, t.shape[0], t.shape[1], g.out_height, g.out_width),
        (dil * sh, dil * sw, sn, sc, s * sh, s * sw),
        t.storage_offset(),
    )


def _window_views(t: torch.Tensor, g: Geometry) -> list[torch.Tensor]:
    """The same K windows as `_window_slices`, from `_window_grid` by two unbinds (cheaper than 2K
    slicing calls)."""
    return [w for row in _window_grid(t, g).unbind(0) for w in row.unbind(0)]


def fast_attention(
    module,
    q_att: torch.Tensor,
    k_att: torch.Tensor,
    v_att: torch.Tensor,
    pe: torch.Tensor,
    q_pe: torch.Tensor,
    g: Geometry,
) -> torch.Tensor:
    """Same signature and result as `convmix.acmix.attention_unfold`: (B*h, d, Ho, Wo).

    q_pe is not read: the query's positional term cancels in the softmax (module docstring).
    """
    tracked = torch.is_grad_enabled() and any(
        t.requires_grad for t in (q_att, k_att, v_att, pe, q_pe)
    )
    if tracked:
        return _attention_autograd(module, q_att, k_att, v_att, pe, q_pe, g)
    return _attention_inplace(module, q_att, k_att, v_att, pe, q_pe, g)


def _attention_autograd(module, q_att, k_att, v_att, pe, q_pe, g):
    kp = module.pad_att(k_att) - module.pad_att(pe)
    logits = torch.stack([(q_att * w).sum(1) for w in _window_slices(kp, g)], 1)
    att = torch.softmax(logits, 1)
    out = None
    for j, w in enumerate(_window_slices(module.pad_att(v_att), g)):
        weight = att[:, j : j + 1]
        out = weight * w if out is None else out.addcmul_(weight, w)
    return out


def _attention_inplace(module, q_att, k_att, v_att, pe, q_pe, g):
    # Allocation order matters: fast_attention_peak_elements below counts what is alive when.
    kk = g.kernel_att * g.kernel_att
    kp = module.pad_att(k_att)
    kp.sub_(module.pad_att(pe))  # phase 1: kp and the padded pe
    # Window position first, (ka, ka, B*h, Ho, Wo) = (K, B*h, Ho, Wo): the logits of all K offsets
    # grow together, one head channel at a time: head_dim in-place multiply-adds over all of them,
    # each reading channel c of every window through one view, with no temporary (a dot product
    # per offset, K of them, took twice as long: K small reductions, each into a temporary).
    grid = _window_grid(kp, g)
    att = q_att.new_empty(g.kernel_att, g.kernel_att, q_att.shape[0], g.out_height, g.out_width)
    torch.mul(grid[:, :, :, 0], q_att[:, 0], out=att)  # phase 2: kp and the logits (out=: contiguous)
    for c in range(1, q_att.shape[1]):
        att.addcmul_(grid[:, :, :, c], q_att[:, c])
    del grid, kp
    att = torch.softmax(att.reshape(kk, *att.shape[2:]), 0).unsqueeze(2)  # phase 3: the logits and their softmax
    windows = _window_views(module.pad_att(v_att), g)
    out = torch.mul(att[0], windows[0])  # phase 4: v_pad, att, out
    for j in range(1, kk):
        out.addcmul_(att[j], windows[j])
    return out


def fast_attention_parts(config) -> dict[str, int]:
    """Elements of the buffers `_attention_inplace` holds (see fast_attention_peak_elements)."""
    b, c, h, d = config.batch, config.out_planes, config.head, config.head_dim
    no = config.out_height * config.out_width
    return {
        "padded map": b * c * config.padded_area,  # k - pe, later v, reflection-padded
        "padded pe": d * config.padded_area,
        "logits": b * h * config.kernel_att**2 * no,
        "output": b * c * no,
    }


def fast_attention_peak_elements(config) -> int:
    """Elements the fast path holds at its peak, beyond Stage I's q, k, v, q_att and pe (no autograd).

    Phases of `_attention_inplace`, with P the padded map's area, N_o = Ho*Wo and K = kernel_att²:
    1. kp (B*C*P) and the padded pe (d*P);
    2. kp and the logits (B*h*K*N_o);
    3. the logits and their softmax (2*B*h*K*N_o);
    4. the padded v, the weights and the output (B*C*N_o).
    """
    parts = fast_attention_parts(config)
    padded, logits, output = parts["padded map"], parts["logits"], parts["output"]
    return max(padded + parts["padded pe"], padded + logits + output, 2 * logits)


def fast_conv_path(module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The conv path with the same weights and values, in layouts that CPU kernels run fast.

    fc is a (kc², 3h) matrix applied to every (channel-in-head, position): one matmul instead of a
    1×1 convolution over a 3h-channel "image" of size head_dim × H·W. f_conv is then built in
    channels-last order, the layout in which the grouped dep_conv is several times faster on the
    CPU; like the reference's reshape, that is one copy of f_all.
    """
    rec = module._rec
    b, _, h, w = q.shape
    heads, d, kc2 = module.head, module.head_dim, module.kernel_conv**2
    weight = module.fc.weight.reshape(kc2, 3 * heads)
    groups = [t.reshape(b, heads, d, h * w) for t in (q, k, v)]
    # bmm with the weight broadcast by a stride-0 view: no copy of the q/k/v groups (matmul would
    # make one); the concatenation stays unnamed so that it is freed once read, as in the reference.
    mixed = torch.bmm(
        weight.expand(b, -1, -1),
        rec("qkv_groups", torch.cat(groups, 1)).reshape(b, 3 * heads, d * h * w),
    )
    f_all = rec("f_all", mixed.reshape(b, kc2, d, h * w))
    # (B, kc², d, H·W) -> memory order (B, H, W, d, kc²): channel d_i * kc² + j, as the reference.
    f_conv = f_all.permute(0, 3, 2, 1).contiguous().reshape(b, h, w, d * kc2).permute(0, 3, 1, 2)
    return module.dep_conv(rec("f_conv", f_conv))


ATTENTION_IMPLS["fast"] = fast_attention
CONV_PATH_IMPLS["fast"] = fast_conv_path
