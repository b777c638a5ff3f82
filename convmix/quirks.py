"""The authors' quirks Q1-Q11 (ACMIX.md): what each one is, in words, and how to see it.

Pages never show a bare code: wherever a quirk is mentioned, `cite(code)` puts its short name
beside it, and the walkthrough's "Authors' quirks" section lists them all with their evidence.
The texts are English msgids (marked with N_); `name`, `what` and `evidence` read them in the
visitor's language (convmix.i18n).
"""

from __future__ import annotations

from dataclasses import dataclass

from .i18n import N_, _


@dataclass(frozen=True)
class Quirk:
    code: str
    name_msgid: str  # a few words, shown beside the code wherever it appears
    what_msgid: str  # what the authors' code does, one or two sentences
    evidence_msgid: str  # how to see it, here or in their code

    @property
    def name(self) -> str:
        return _(self.name_msgid)

    @property
    def what(self) -> str:
        return _(self.what_msgid)

    @property
    def evidence(self) -> str:
        return _(self.evidence_msgid)


QUIRKS: dict[str, Quirk] = {q.code: q for q in [
    Quirk("Q1", N_("dep_conv's bias is removed"),
          N_("dep_conv is declared with bias=True, but reset_parameters assigns to dep_conv.bias the "
             "return value of a fill helper that returns nothing, so the bias becomes None."),
          N_("The live module has no dep_conv.bias and no such state-dict key: C parameters fewer "
             "than the constructor suggests (the walkthrough's dep_conv section and the bias page "
             "show both counts).")),
    Quirk("Q2", N_("dep_conv always pads by 1"),
          N_("dep_conv pads by 1 whatever kernel_conv is, so any kernel_conv other than 3 changes "
             "the conv path's output size and the final sum fails."),
          N_("On a 16×16 input the conv path gives 18×18, 14×14 and 12×12 for kernel_conv 1, 5 "
             "and 7 while the attention path gives 16×16. The fixed variant pads by kernel_conv // 2.")),
    Quirk("Q3", N_("odd sizes with a stride fail"),
          N_("The forward assumes h_out = H // stride, but unfold, the strided query slice and "
             "dep_conv give ceil(H / stride), so the view after unfold fails when the stride does "
             "not divide the input size."),
          N_("7×7, 13×13 and 15×16 inputs with stride 2 fail; even sizes work. The fixed variant "
             "uses h_out = ceil(H / stride).")),
    Quirk("Q4", N_("dilation pads but does not dilate"),
          N_("The reflection padding is computed for the dilation, but nn.Unfold is built without "
             "it, so any dilation above 1 unfolds a map of the wrong size and the view fails."),
          N_("dilation = 2 with kernel_att = 3 pads by 2 and unfolds 8×8 windows from a 6×6 input "
             "instead of 6×6. The fixed variant dilates the window.")),
    Quirk("Q5", N_("even windows fail"),
          N_("An even kernel_att has no centre: the padded map unfolds to one position more than "
             "the input per side, and the view fails."),
          N_("kernel_att = 4 pads by 2 and unfolds 7×7 positions from a 6×6 input.")),
    Quirk("Q6", N_("small inputs fail the padding"),
          N_("Reflection padding by p needs p < H and p < W, so small inputs fail for large windows."),
          N_("kernel_att = 7 pads by 3 and needs at least a 4×4 input.")),
    Quirk("Q7", N_("head must divide the channels"),
          N_("out_planes must be a multiple of head; otherwise the grouped dep_conv cannot be built "
             "or the split into heads fails."),
          N_("head = 4 with 18 channels fails building dep_conv (groups = 4 does not divide 18); "
             "head = 4 with 10 channels fails at q.view.")),
    Quirk("Q8", N_("the coordinate grid is always float32"),
          N_("The positional grid is built in float32 on the CPU or the current CUDA device whatever "
             "the input is, so float64, float16 and bfloat16 models fail, and so does any other "
             "device."),
          N_("Their error reads \"Input type (float) and bias type (double) should be the same\". "
             "Both variants here build the grid with the input's dtype and device; float32 values "
             "are unchanged.")),
    Quirk("Q9", N_("unfold copies k and v kernel_att² times"),
          N_("nn.Unfold materialises K = kernel_att² copies of k, v and the positional encoding, "
             "B·C·K·Ho·Wo values each, and the logits are computed over those copies."),
          N_("Users report running out of GPU memory at batch 1 on 24 GB cards; the authors' README "
             "calls the sliding-window pattern \"extremely inefficient\". The home page measures "
             "it against a formulation without the copies.")),
    Quirk("Q10", N_("the paper's figure mislabels fc"),
          N_("The paper's first figure labels the fc layer 3N_head × k²N_conv, two different N; the "
             "code's fc is 3N × k² (N = heads). The authors confirmed in their issue tracker "
             "(LeapLabTHU/ACmix, issue 5, April 2022) that 3N × k², as in the code, is correct: the "
             "conv path's groups come from the grouped convolution, not from fc."),
          N_("fc.weight of the live module has 3·head × kernel_conv² entries (the walkthrough's fc "
             "section).")),
    Quirk("Q11", N_("the network's init overwrites the shift kernels"),
          N_("In the authors' ResNet model file a network-wide Kaiming initialisation runs after "
             "the ACmix modules are built and overwrites every dep_conv's shift-kernel "
             "initialisation."),
          N_("Their model file initialises every nn.Conv2d after construction; a module built "
             "alone, as here, keeps the shift kernels (the walkthrough's dep_conv section checks "
             "them).")),
]}


def cite(code: str) -> str:
    """'quirk Q9 (unfold copies k and v kernel_att² times)': a code never appears alone."""
    return _("quirk {code} ({name})", code=code, name=QUIRKS[code].name)
