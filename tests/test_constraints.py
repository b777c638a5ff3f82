"""ConfigError for each constraint: raised instead of a shape error, named, explained, and real.

"Real" is checked against `authors_forward` below: the authors' ResNet-variant forward rewritten
here from ACMIX.md with plain torch (their padding, Unfold without dilation, h_out = H // s, dep_conv
padding 1). A configuration refused by convmix must make it crash, and every configuration the
message suggests must run (in convmix, and in the authors' code where the suggestion is theirs).
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from convmix import ACmix, ConfigError
from convmix.config import LIMITS, ACmixConfig
from convmix.constraints import (
    LINE_DEP_CONV,
    LINE_FINAL_SUM,
    LINE_HEAD_VIEW,
    LINE_PAD,
    LINE_VIEW_UNFOLD,
    input_problems,
    module_problems,
    round_size,
)
from convmix.i18n import language
from tests.i18n_text import english_runs
from tests.library_messages import assert_translated


def authors_forward(cin, c, ka, head, kc, stride, dilation, height, width, state=None, x=None):
    """The authors' forward, statement by statement (their shapes, their padding, their views)."""
    torch.manual_seed(0)
    d = c // head
    conv1, conv2, conv3 = (nn.Conv2d(cin, c, 1) for _ in range(3))
    conv_p = nn.Conv2d(2, d, 1)
    padding_att = (dilation * (ka - 1) + 1) // 2
    pad_att = nn.ReflectionPad2d(padding_att)
    unfold = nn.Unfold(kernel_size=ka, padding=0, stride=stride)
    fc = nn.Conv2d(3 * head, kc * kc, 1, bias=False)
    dep_conv = nn.Conv2d(kc * kc * d, c, kernel_size=kc, bias=True, groups=d, padding=1, stride=stride)
    dep_conv.bias = None
    rate1, rate2 = torch.tensor(0.5), torch.tensor(0.5)
    if state is not None:
        for mod, name in [(conv1, "conv1"), (conv2, "conv2"), (conv3, "conv3"), (conv_p, "conv_p")]:
            mod.weight.data, mod.bias.data = state[f"{name}.weight"], state[f"{name}.bias"]
        fc.weight.data, dep_conv.weight.data = state["fc.weight"], state["dep_conv.weight"]
        rate1, rate2 = state["rate1"], state["rate2"]
    if x is None:
        x = torch.randn(1, cin, height, width)

    q, k, v = conv1(x), conv2(x), conv3(x)
    scaling = float(d) ** -0.5
    b, _, h, w = q.shape
    h_out, w_out = h // stride, w // stride
    loc_w = torch.linspace(-1.0, 1.0, w).unsqueeze(0).repeat(h, 1)
    loc_h = torch.linspace(-1.0, 1.0, h).unsqueeze(1).repeat(1, w)
    loc = torch.cat([loc_w.unsqueeze(0), loc_h.unsqueeze(0)], 0).unsqueeze(0)
    pe = conv_p(loc)
    q_att = q.view(b * head, d, h, w) * scaling
    k_att = k.view(b * head, d, h, w)
    v_att = v.view(b * head, d, h, w)
    if stride > 1:
        q_att = q_att[:, :, ::stride, ::stride]
        q_pe = pe[:, :, ::stride, ::stride]
    else:
        q_pe = pe
    unfold_k = unfold(pad_att(k_att)).view(b * head, d, ka * ka, h_out, w_out)
    unfold_rpe = unfold(pad_att(pe)).view(1, d, ka * ka, h_out, w_out)
    att = (q_att.unsqueeze(2) * (unfold_k + q_pe.unsqueeze(2) - unfold_rpe)).sum(1)
    att = att.softmax(1)
    out_att = unfold(pad_att(v_att)).view(b * head, d, ka * ka, h_out, w_out)
    out_att = (att.unsqueeze(1) * out_att).sum(2).view(b, c, h_out, w_out)
    f_all = fc(torch.cat([q.view(b, head, d, h * w), k.view(b, head, d, h * w),
                          v.view(b, head, d, h * w)], 1))
    f_conv = f_all.permute(0, 2, 1, 3).reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])
    out_conv = dep_conv(f_conv)
    return rate1 * out_att + rate2 * out_conv


AUTHORS_CRASH = (RuntimeError, ValueError)


def runs(cin, c, ka, head, kc, stride, dilation, height, width, variant) -> torch.Size:
    module = ACmix(cin, c, ka, head, kc, stride, dilation, variant=variant)
    with torch.no_grad():
        return module(torch.randn(1, cin, height, width)).shape


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("cin,c,ka,head,kc,stride,height,width", [
    (4, 8, 3, 2, 3, 1, 6, 6),
    (3, 6, 5, 3, 3, 2, 8, 6),
    (2, 4, 7, 1, 3, 3, 9, 6),
])
def test_official_equals_authors_forward(cin, c, ka, head, kc, stride, height, width):
    """The reference above is the authors' code: convmix's official variant matches it exactly."""
    module = ACmix(cin, c, ka, head, kc, stride)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
        x = torch.randn(2, cin, height, width)
        want = authors_forward(cin, c, ka, head, kc, stride, 1, height, width, module.state_dict(), x)
        torch.testing.assert_close(module(x), want, rtol=1e-5, atol=1e-5)


def authors_failing_line(*args) -> str:
    """The statement of `authors_forward` (constructor or forward) that raises for these arguments."""
    import linecache
    import traceback

    try:
        authors_forward(*args)
    except AUTHORS_CRASH as err:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.name == "authors_forward"]
        return linecache.getline(frames[-1].filename, frames[-1].lineno).strip()
    raise AssertionError(f"the authors' code ran {args}")


@pytest.mark.parametrize("c,head,line,statement", [
    (64, 5, LINE_DEP_CONV, "dep_conv = nn.Conv2d"),  # head_dim 12 does not divide 64
    (18, 4, LINE_DEP_CONV, "dep_conv = nn.Conv2d"),  # head_dim 4 does not divide 18
    (8, 16, LINE_DEP_CONV, "dep_conv = nn.Conv2d"),  # head_dim 0: groups = 0
    (10, 4, LINE_HEAD_VIEW, "q_att = q.view("),  # head_dim 2 divides 10: builds, the view fails
])
def test_head_must_divide_out_planes_and_names_the_line_that_breaks(c, head, line, statement):
    with pytest.raises(ConfigError) as err:
        ACmix(8, c, head=head)
    assert err.value.constraints == ["head_divides_out_planes"]
    text = str(err.value)
    assert f"head ({head}) must divide out_planes ({c})" in text
    assert line in text
    # real: the authors' code, run statement by statement, breaks exactly there
    assert authors_failing_line(8, c, 7, head, 3, 1, 1, 8, 8).startswith(statement)
    problem = err.value.problems[0]
    assert problem.changes
    for change in problem.changes:  # every suggestion runs, here and in the authors' code
        assert runs(8, c, 7, change["head"], 3, 1, 1, 8, 8, "official") == (1, c, 8, 8)
        assert authors_forward(8, c, 7, change["head"], 3, 1, 1, 8, 8).shape == (1, c, 8, 8)


@pytest.mark.parametrize("c,listed", [
    (64, "Heads that divide 64: 1, 2, 4, 8, 16, 32 and 64."),  # every divisor
    (4, "Heads that divide 4: 1, 2 and 4."),
    (720, "Heads that divide 720 include 5, 6, 8 and 9."),  # 30 divisors: the nearest, "include"
])
def test_head_suggestions_list_every_divisor_or_say_include(c, listed):
    with pytest.raises(ConfigError) as err:
        ACmix(4, c, head=7 if c == 720 else (5 if c == 64 else 8))
    assert listed in str(err.value)


@pytest.mark.parametrize("variant", ["official", "fixed"])
def test_kernel_att_must_be_odd(variant):
    with pytest.raises(ConfigError) as err:
        ACmix(8, 8, kernel_att=4, head=2, variant=variant)
    assert err.value.constraints == ["kernel_att_odd"]
    text = str(err.value)
    assert "kernel_att (4) must be odd" in text and "Try kernel_att = 3 or 5." in text
    assert LINE_VIEW_UNFOLD in text
    # real: padding (4-1+1)//2 = 2 on each side, a 4-wide window: 6 + 4 - 4 + 1 = 7 positions, not 6
    padded = nn.ReflectionPad2d(2)(torch.zeros(1, 1, 6, 6))
    assert nn.Unfold(4)(padded).shape[-1] == 7 * 7 != 6 * 6
    with pytest.raises(AUTHORS_CRASH):
        authors_forward(8, 8, 4, 2, 3, 1, 1, 6, 6)
    for ka in (3, 5):
        assert runs(8, 8, ka, 2, 3, 1, 1, 6, 6, variant) == (1, 8, 6, 6)
        assert authors_forward(8, 8, ka, 2, 3, 1, 1, 6, 6).shape == (1, 8, 6, 6)


@pytest.mark.parametrize("variant", ["official", "fixed"])
def test_kernel_conv_must_be_odd(variant):
    with pytest.raises(ConfigError) as err:
        ACmix(8, 8, kernel_conv=4, head=2, variant=variant)
    assert err.value.constraints == ["kernel_conv_odd"]
    text = str(err.value)
    assert "kernel_conv (4) must be odd" in text
    if variant == "official":
        assert "Use kernel_conv = 3, or the fixed variant with kernel_conv = 3 or 5." in text
    else:
        assert "Try kernel_conv = 3 or 5." in text
    assert LINE_FINAL_SUM in text
    # real with either padding: authors' 1 gives 6 + 2 - 4 + 1 = 5; kc // 2 = 2 gives 7, never 6
    for padding, size in ((1, 5), (2, 7)):
        conv = nn.Conv2d(1, 1, 4, padding=padding)
        assert conv(torch.zeros(1, 1, 6, 6)).shape[-1] == size
    with pytest.raises(AUTHORS_CRASH):
        authors_forward(8, 8, 3, 2, 4, 1, 1, 6, 6)
    assert runs(8, 8, 3, 2, 3, 1, 1, 6, 6, variant) == (1, 8, 6, 6)
    assert runs(8, 8, 3, 2, 5, 1, 1, 6, 6, "fixed") == (1, 8, 6, 6)


@pytest.mark.parametrize("kc,conv_size", [(1, 18), (5, 14), (7, 12)])
def test_official_kernel_conv_must_be_3(kc, conv_size):
    with pytest.raises(ConfigError) as err:
        ACmix(8, 8, kernel_conv=kc, head=2)
    assert err.value.constraints == ["official_kernel_conv_3"]
    text = str(err.value)
    assert f"kernel_conv = {kc}" in text and "pads by 1 whatever kernel_conv is" in text
    assert "Use kernel_conv = 3, or the fixed variant" in text
    # real (ACMIX.md Q2, 16x16 input): the conv path's size with padding 1
    assert nn.Conv2d(1, 1, kc, padding=1)(torch.zeros(1, 1, 16, 16)).shape[-1] == conv_size
    with pytest.raises(RuntimeError):
        authors_forward(8, 8, 3, 2, kc, 1, 1, 16, 16)
    assert runs(8, 8, 3, 2, kc, 1, 1, 16, 16, "fixed") == (1, 8, 16, 16)
    assert runs(8, 8, 3, 2, 3, 1, 1, 16, 16, "official") == (1, 8, 16, 16)


def test_official_dilation_must_be_1():
    with pytest.raises(ConfigError) as err:
        ACmix(8, 8, kernel_att=3, head=2, dilation=2)
    assert err.value.constraints == ["official_dilation_1"]
    text = str(err.value)
    assert "dilation 2" in text and "no dilation" in text and "Use dilation = 1, or the fixed variant" in text
    # real: padding (2*2+1)//2 = 2 but an undilated 3-window: 6 + 4 - 3 + 1 = 8 positions, not 6
    padded = nn.ReflectionPad2d(2)(torch.zeros(1, 1, 6, 6))
    assert nn.Unfold(3)(padded).shape[-1] == 8 * 8
    with pytest.raises(RuntimeError):
        authors_forward(8, 8, 3, 2, 3, 1, 2, 6, 6)
    assert runs(8, 8, 3, 2, 3, 1, 2, 6, 6, "fixed") == (1, 8, 6, 6)
    assert runs(8, 8, 3, 2, 3, 1, 1, 6, 6, "official") == (1, 8, 6, 6)


@pytest.mark.parametrize("variant,ka,dilation,small,enough", [
    ("official", 7, 1, 3, 4),
    ("fixed", 3, 2, 2, 3),
    ("fixed", 5, 2, 4, 5),
])
def test_input_too_small_for_reflection_padding(variant, ka, dilation, small, enough):
    module = ACmix(4, 4, kernel_att=ka, head=2, dilation=dilation, variant=variant)  # builds
    with pytest.raises(ConfigError) as err:
        module(torch.randn(1, 4, small, small + 3))
    assert err.value.constraints == ["input_too_small"]
    text = str(err.value)
    # the suggestion keeps the width, which is large enough already
    assert f"at least {enough}." in text and f"Use an input of {enough}×{small + 3}, or kernel_att" in text
    assert LINE_PAD in text
    # real: reflection padding by `enough - 1` refuses a map of `small` rows
    with pytest.raises(RuntimeError):
        nn.ReflectionPad2d(enough - 1)(torch.zeros(1, 1, small, small + 3))
    if variant == "official":
        with pytest.raises(RuntimeError):
            authors_forward(4, 4, ka, 2, 3, 1, 1, small, small)
        assert authors_forward(4, 4, ka, 2, 3, 1, 1, enough, enough).shape == (1, 4, enough, enough)
    with torch.no_grad():
        assert module(torch.randn(1, 4, enough, enough)).shape == (1, 4, enough, enough)


@pytest.mark.parametrize("height,width,stride,suggested", [
    (7, 7, 2, (8, 8)), (13, 13, 2, (12, 12)), (15, 16, 2, (16, 16)), (7, 9, 3, (6, 9)),
])
def test_official_odd_size_with_stride(height, width, stride, suggested):
    module = ACmix(4, 4, kernel_att=3, head=2, stride=stride)
    with pytest.raises(ConfigError) as err:
        module(torch.randn(1, 4, height, width))
    assert err.value.constraints == ["official_size_divisible_by_stride"]
    text = str(err.value)
    assert f"Use {suggested[0]}×{suggested[1]}, or the fixed variant" in text
    assert LINE_VIEW_UNFOLD in text
    # real: unfold gives ceil(H / s) positions, the authors' view wants H // s
    padded = nn.ReflectionPad2d(1)(torch.zeros(1, 1, height, width))
    positions = nn.Unfold(3, stride=stride)(padded).shape[-1]
    assert positions == -(-height // stride) * -(-width // stride) != (height // stride) * (width // stride)
    with pytest.raises(RuntimeError):
        authors_forward(4, 4, 3, 2, 3, stride, 1, height, width)
    expected = (1, 4, suggested[0] // stride, suggested[1] // stride)
    assert authors_forward(4, 4, 3, 2, 3, stride, 1, *suggested).shape == expected
    assert runs(4, 4, 3, 2, 3, stride, 1, *suggested, "official") == expected
    fixed_shape = (1, 4, -(-height // stride), -(-width // stride))
    assert runs(4, 4, 3, 2, 3, stride, 1, height, width, "fixed") == fixed_shape


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        ACmix(64, 64, kernel_att=4, head=5, kernel_conv=5, dilation=2)
    assert err.value.constraints == [
        "head_divides_out_planes", "kernel_att_odd", "official_kernel_conv_3", "official_dilation_1",
    ]
    assert len(err.value.problems) == 4
    for problem in err.value.problems:
        assert problem.sentence() in str(err.value)
        assert problem.fix and problem.line


@pytest.mark.parametrize("kwargs,constraint", [
    (dict(variant="authors"), "variant"),
    (dict(head=0), "head"),
    (dict(kernel_att=-3), "kernel_att"),
    (dict(stride=0), "stride"),
    (dict(in_planes=2.5), "in_planes"),
])
def test_bad_values(kwargs, constraint):
    args = dict(in_planes=4, out_planes=4, head=2) | kwargs
    with pytest.raises(ConfigError) as err:
        ACmix(**args)
    assert constraint in err.value.constraints


def test_wrong_input_shape_is_a_config_error():
    module = ACmix(4, 4, kernel_att=3, head=2)
    for x in (torch.randn(1, 3, 6, 6), torch.randn(4, 6, 6)):
        with pytest.raises(ConfigError) as err:
            module(x)
        assert err.value.constraints == ["input_shape"]
        assert "(batch, 4, height, width)" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Every suggested fix passes every constraint it touches, and reads naturally
# ---------------------------------------------------------------------------------------------


def random_config(rng: random.Random) -> ACmixConfig:
    """Any configuration within the URL limits, often invalid, often small (where sizes clash)."""
    small = rng.random() < 0.5
    values = {
        "in_planes": rng.randint(1, 64),
        "out_planes": rng.choice([rng.randint(1, 64), rng.randint(1, LIMITS["out_planes"][1])]),
        "kernel_att": rng.randint(1, LIMITS["kernel_att"][1]),
        "head": rng.choice([rng.randint(1, 16), rng.randint(1, 200)]),
        "kernel_conv": rng.randint(1, LIMITS["kernel_conv"][1]),
        "stride": rng.randint(1, LIMITS["stride"][1]),
        "dilation": rng.choice([1, 1, rng.randint(1, LIMITS["dilation"][1])]),
        "height": rng.randint(1, 12) if small else rng.randint(1, LIMITS["height"][1]),
        "width": rng.randint(1, 12) if small else rng.randint(1, LIMITS["width"][1]),
    }
    return ACmixConfig(**values, variant=rng.choice(["official", "fixed"]))


def test_every_suggested_fix_passes_every_constraint_it_touches():
    """2,000 seeded random configurations: each alternative of each problem's fix, applied,
    leaves no problem on any value it changed (so "Use 6x4" for a 5x4 input that is also too
    small cannot happen), and each is named in the fix's sentence."""
    rng = random.Random(2026)
    seen: set[str] = set()
    for _ in range(2000):
        config = random_config(rng)
        for problem in config.problems():
            seen.add(problem.constraint)
            assert problem.changes, problem.constraint
            for change in problem.changes:
                fixed = config.with_(**change)
                for value in change.values():
                    shown = str(value) if not isinstance(value, int) else f"{value:,}"
                    assert shown in problem.fix or f"{value}" in problem.fix, (problem.fix, change)
                left = fixed.problems()
                assert problem.constraint not in [p.constraint for p in left], (config, change)
                for other in left:
                    assert not set(other.fields) & set(change), (config.describe(), change, other)
    assert seen >= {"head_divides_out_planes", "kernel_att_odd", "kernel_conv_odd",
                    "official_kernel_conv_3", "official_dilation_1", "input_too_small",
                    "official_size_divisible_by_stride"}


def test_the_reported_case_suggests_a_size_that_runs():
    """A 5x4 input with kernel_att 9 and stride 2 is both too small and not divisible: both
    problems suggest one size that fixes both (not 6x4, still too small)."""
    config = ACmixConfig(kernel_att=9, stride=2, height=5, width=4)
    problems = config.problems()
    assert {p.constraint for p in problems} == {"input_too_small", "official_size_divisible_by_stride"}
    for p in problems:
        assert "6×6" in p.fix and "6×4" not in p.fix
    assert not config.with_(height=6, width=6).problems()
    assert runs(64, 64, 9, 4, 3, 2, 1, 6, 6, "official") == (1, 64, 3, 3)


@pytest.mark.parametrize("size,multiple,minimum,expected", [
    (101, 3, 1, 96),  # not 102: a multiple of 96 is as near as one-twelfth allows
    (56, 3, 1, 60),
    (1023, 7, 1, 1008),
    (5, 2, 5, 6),
    (4, 2, 5, 6),
    (21, 3, 1, 21),  # already fine: kept
    (1021, 8, 1, 1024),
    (3, 1, 5, 5),
])
def test_round_size_prefers_round_numbers_nearby(size, multiple, minimum, expected):
    got = round_size(size, multiple, minimum)
    assert got == expected
    assert got % multiple == 0 and minimum <= got <= LIMITS["height"][1]


def test_a_shrunk_size_is_rounded_even_when_it_already_fits():
    """The budget's nearby configurations shrink by about 3/4: 136x28 with stride 3 becomes
    96x24, not 102x21."""
    assert (round_size(102, 3, maximum=135, keep=False), round_size(21, 3, maximum=27, keep=False)) == (96, 24)


# -- every message in Chinese ---------------------------------------------------------------------


def _problem_cases():
    """Calls that, together, produce every Problem this module words, with each variant of its words."""
    return {
        "variant": lambda: module_problems(8, 8, 3, 1, 3, 1, 1, "bogus"),
        "positive": lambda: module_problems(0, 8, 3, 1, 3, 1, 1, "fixed"),
        "more heads than channels": lambda: module_problems(8, 16, 3, 32, 3, 1, 1, "fixed"),
        "groups do not divide": lambda: module_problems(8, 16, 3, 3, 3, 1, 1, "fixed"),
        "split fails": lambda: module_problems(8, 12, 3, 8, 3, 1, 1, "fixed"),
        "many divisors": lambda: module_problems(8, 720, 3, 7, 3, 1, 1, "fixed"),
        "even window": lambda: module_problems(8, 8, 4, 1, 3, 1, 1, "fixed"),
        "even window, small input": lambda: module_problems(8, 8, 6, 1, 3, 1, 1, "fixed", input_size=(3, 3)),
        "even kernel_conv official": lambda: module_problems(8, 8, 3, 1, 4, 1, 1, "official"),
        "even kernel_conv fixed": lambda: module_problems(8, 8, 3, 1, 4, 1, 1, "fixed"),
        "kernel_conv 5 official": lambda: module_problems(8, 8, 3, 1, 5, 1, 1, "official"),
        "dilation official": lambda: module_problems(8, 8, 3, 1, 3, 1, 2, "official"),
        "dilation official, small input": lambda: module_problems(8, 8, 7, 1, 3, 1, 2, "official", input_size=(3, 3)),
        "input not positive": lambda: input_problems(0, 8, 3, 1, 1, "fixed"),
        "input too small": lambda: input_problems(2, 2, 7, 1, 1, "fixed"),
        "odd size with a stride": lambda: input_problems(7, 9, 3, 2, 1, "official"),
    }


@pytest.mark.parametrize("case", list(_problem_cases()))
def test_every_problem_in_chinese(case):
    make = _problem_cases()[case]
    with language("en"):
        english = make()
    with language("zh"):
        chinese = make()
    assert english and [p.constraint for p in english] == [p.constraint for p in chinese]
    for en, zh in zip(english, chinese, strict=True):
        assert (en.fields, en.changes, en.line) == (zh.fields, zh.changes, zh.line)  # data, not words
        assert_translated(en.message, zh.message)
        if en.fix:
            assert_translated(en.fix, zh.fix)
    with language("zh"):
        error = str(ConfigError(chinese))
    sentences = " ".join(p.sentence() for p in chinese)
    assert error.startswith(sentences)
    frame = error[len(sentences):]
    for line in {p.line for p in chinese if p.line}:  # the authors' lines stay code
        frame = frame.replace(line, "")
    assert english_runs(frame) == [] and any(p.line for p in chinese) == ("作者的代码在此处出错" in frame)


def test_lists_read_naturally_in_both_languages():
    with language("en"):
        (problem,) = module_problems(8, 16, 3, 3, 3, 1, 1, "fixed")
    assert problem.fix == "Heads that divide 16: 1, 2, 4, 8 and 16."
    with language("zh"):
        (problem,) = module_problems(8, 16, 3, 3, 3, 1, 1, "fixed")
    assert "1、2、4、8 和 16" in problem.fix
