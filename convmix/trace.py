"""A trace: the module's own forward, with every named intermediate recorded in order.

`trace_forward(module, x)` sets a recorder on the module, runs `module(x)` (the same code path as
any other call) and returns a `Trace`: an ordered list of `Step`s, each with its tensor, shape,
source line, owning submodule and its parameter count, and the step's multiply-adds and FLOPs.

Costs are always the official formulation's counts (convmix.counting), whichever `impl` ran, so a
trace of either impl counts the same work: `impl="fast"` records no `logits` or `att` step (it
never materialises them as the reference does), and their counts are carried by the next counted
step it records, `out_att`. The totals of both traces are equal.
"""

from __future__ import annotations

import inspect
import linecache
from dataclasses import dataclass, field

import torch

from . import acmix as acmix_source
from .counting import Cost, module_param_counts, step_costs
from .i18n import N_


@dataclass(frozen=True)
class StepInfo:
    stage: str  # "Stage I", "attention", "convolution", "mix"
    owner: str  # submodule(s) whose parameters or code produce the step ("" for plain tensor ops)
    code: str  # the authors' statement that computes it
    summary: str  # one correct sentence, marked for translation (convmix.walkthrough.step_summary)


STEP_INFO: dict[str, StepInfo] = {
    "q": StepInfo("Stage I", "conv1",
                  "q = self.conv1(x)",
                  N_("1x1 convolution: the query projection, Cin -> C channels, with bias.")),
    "k": StepInfo("Stage I", "conv2",
                  "k = self.conv2(x)",
                  N_("1x1 convolution: the key projection; also feeds the conv path.")),
    "v": StepInfo("Stage I", "conv3",
                  "v = self.conv3(x)",
                  N_("1x1 convolution: the value projection; also feeds the conv path.")),
    "grid": StepInfo("attention", "",
                     "position(h, w, x.is_cuda)",
                     N_("Coordinate grid: channel 0 is x in [-1, 1], channel 1 is y in [-1, 1].")),
    "pe": StepInfo("attention", "conv_p",
                   "pe = self.conv_p(position(h, w, x.is_cuda))",
                   N_("conv_p maps the 2 coordinate channels to head_dim channels, shared by all "
                      "heads.")),
    "q_att": StepInfo("attention", "",
                      "q_att = q.view(b * self.head, self.head_dim, h, w) * scaling",
                      N_("Split q into heads and scale by head_dim^-1/2.")),
    "k_att": StepInfo("attention", "",
                      "k_att = k.view(b * self.head, self.head_dim, h, w)",
                      N_("Split k into heads (a view, no copy).")),
    "v_att": StepInfo("attention", "",
                      "v_att = v.view(b * self.head, self.head_dim, h, w)",
                      N_("Split v into heads (a view, no copy).")),
    "q_strided": StepInfo("attention", "",
                          "q_att = stride(q_att, self.stride)",
                          N_("With stride s, only every s-th row and column is a query.")),
    "q_pe": StepInfo("attention", "",
                     "q_pe = stride(pe, self.stride)  # or pe when stride == 1",
                     N_("Positional encoding at the query positions.")),
    "k_pad": StepInfo("attention", "pad_att",
                      "self.pad_att(k_att)",
                      N_("Reflection padding so that border queries get full windows.")),
    "unfold_k": StepInfo("attention", "unfold",
                         "unfold_k = self.unfold(self.pad_att(k_att)).view(b * self.head, "
                         "self.head_dim, self.kernel_att * self.kernel_att, h_out, w_out)",
                         N_("kernel_att^2 copies of the keys: one per window position.")),
    "pe_pad": StepInfo("attention", "pad_att",
                       "self.pad_att(pe)",
                       N_("The positional encoding, reflection-padded like the keys.")),
    "unfold_rpe": StepInfo("attention", "unfold",
                           "unfold_rpe = self.unfold(self.pad_att(pe)).view(1, self.head_dim, "
                           "self.kernel_att * self.kernel_att, h_out, w_out)",
                           N_("The positional encoding at every window position.")),
    "logits": StepInfo("attention", "",
                       "att = (q_att.unsqueeze(2) * (unfold_k + q_pe.unsqueeze(2) - "
                       "unfold_rpe)).sum(1)",
                       N_("Dot product of each query with each key in its window, plus the relative "
                          "positional term q . (pe_query - pe_key).")),
    "att": StepInfo("attention", "softmax",
                    "att = self.softmax(att)",
                    N_("Softmax over the kernel_att^2 window positions.")),
    "v_pad": StepInfo("attention", "pad_att",
                      "self.pad_att(v_att)",
                      N_("Reflection padding of the values.")),
    "unfold_v": StepInfo("attention", "unfold",
                         "out_att = self.unfold(self.pad_att(v_att)).view(b * self.head, "
                         "self.head_dim, self.kernel_att * self.kernel_att, h_out, w_out)",
                         N_("kernel_att^2 copies of the values.")),
    "out_att": StepInfo("attention", "",
                        "out_att = (att.unsqueeze(1) * out_att).sum(2).view(b, self.out_planes, h_out, "
                        "w_out)",
                        N_("Weighted sum of the window's values; heads merged back into C channels.")),
    "qkv_groups": StepInfo("convolution", "",
                           "torch.cat([q.view(b, self.head, self.head_dim, h * w), k.view(...), "
                           "v.view(...)], 1)",
                           N_("q, k, v as 3*head groups of head_dim channels (the fc input).")),
    "f_all": StepInfo("convolution", "fc",
                      "f_all = self.fc(torch.cat([...], 1))",
                      N_("fc mixes the 3*head groups into kernel_conv^2 groups, one per kernel offset.")),
    "f_conv": StepInfo("convolution", "",
                       "f_conv = f_all.permute(0, 2, 1, 3).reshape(x.shape[0], -1, x.shape[-2], "
                       "x.shape[-1])",
                       N_("Back to a feature map with head_dim * kernel_conv^2 channels.")),
    "out_conv": StepInfo("convolution", "dep_conv",
                         "out_conv = self.dep_conv(f_conv)",
                         N_("Grouped convolution (groups = head_dim), initialised as shift kernels.")),
    "out": StepInfo("mix", "rate1, rate2",
                    "return self.rate1 * out_att + self.rate2 * out_conv",
                    N_("The two paths weighed by the learnable scalars rate1 and rate2.")),
}


@dataclass
class Step:
    name: str
    tensor: torch.Tensor
    line: int  # line in convmix/acmix.py that recorded it
    info: StepInfo
    params: int  # parameters of the owning submodule(s)
    cost: Cost

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    @property
    def source(self) -> str:
        """The line of convmix/acmix.py that computed this step."""
        return linecache.getline(inspect.getsourcefile(acmix_source), self.line).strip()


@dataclass
class Trace:
    steps: list[Step] = field(default_factory=list)
    output: torch.Tensor | None = None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def __getitem__(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no step named {name!r}; steps are {', '.join(self.names)}")

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def total_cost(self) -> Cost:
        total = Cost()
        for step in self.steps:
            total = total + step.cost
        return total

    def tensor_bytes(self) -> int:
        """Bytes of all recorded tensors, counting shared storage once (the trace's footprint)."""
        seen: dict[int, int] = {}
        for step in self.steps:
            storage = step.tensor.untyped_storage()
            # _cdata identifies the storage itself, also for meta tensors (which have no address).
            seen[storage._cdata] = storage.nbytes()
        return sum(seen.values())


def estimate_trace_bytes(config, dtype_bytes: int = 4) -> int:
    """Bytes a float32 trace of `config` holds (every recorded tensor that owns its storage)."""
    c = config
    b, ch, d = c.batch, c.out_planes, c.head_dim
    n, no = c.height * c.width, c.out_height * c.out_width
    kk, kc2 = c.kernel_att**2, c.kernel_conv**2
    padded = c.padded_area
    elements = (
        3 * b * ch * n + 2 * n + d * n + b * ch * n  # q, k, v, grid, pe, q_att
        + 2 * b * ch * padded + d * padded  # k_pad, v_pad, pe_pad
        # unfold_k, unfold_v, unfold_rpe: im2col's storage is first sized like its padded input
        + (2 * b * ch + d) * max(kk * no, padded)
        + 2 * b * c.head * kk * no  # logits, att
        + b * ch * no + 3 * b * ch * n  # out_att, qkv_groups
        + (2 if kc2 > 1 and d > 1 else 1) * b * kc2 * d * n  # f_all, f_conv (else a view)
        + 2 * b * ch * no  # out_conv, out
    )
    return dtype_bytes * elements


def trace_forward(module, x: torch.Tensor, grad: bool = False) -> Trace:
    """Run `module(x)` once with a recorder; every named intermediate becomes a Step."""
    b, _, h, w = x.shape
    g = module.geometry(b, h, w)
    costs = step_costs(
        module.in_planes, module.out_planes, module.kernel_att, module.head, module.kernel_conv,
        b, h, w, g.out_height, g.out_width,
    )
    params = module_param_counts(module)
    trace = Trace()
    uncounted = list(costs)  # counted steps in forward order, not yet attributed

    def cost_of(name: str) -> Cost:
        """This step's count, plus those of earlier counted steps this impl did not record."""
        if name not in uncounted:
            return Cost()
        upto = uncounted.index(name) + 1
        total = sum((costs[n] for n in uncounted[:upto]), Cost())
        del uncounted[:upto]
        return total

    def record(name: str, tensor: torch.Tensor, line: int) -> None:
        info = STEP_INFO[name]
        owners = [o.strip() for o in info.owner.split(",") if o.strip()]
        trace.steps.append(
            Step(
                name=name,
                tensor=tensor if grad else tensor.detach(),
                line=line,
                info=info,
                params=sum(params.get(o, 0) for o in owners),
                cost=cost_of(name),
            )
        )

    module._recorder = record
    try:
        with torch.set_grad_enabled(grad):
            trace.output = module(x)
    finally:
        module._recorder = None
    return trace
