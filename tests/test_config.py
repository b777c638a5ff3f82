"""ACmixConfig: URL round trip, hostile URL values, problems(), output shape, memory estimate."""

from __future__ import annotations

import random
from dataclasses import fields

import pytest
import torch

from convmix import ACmix, ConfigError
from convmix.config import LIMITS, ACmixConfig
from convmix.constraints import VARIANTS
from convmix.memory import MKLDNN_SCRATCH_BYTES, measure_peak_bytes
from tests.library_messages import assert_translated, in_both

FIELDS = [f.name for f in fields(ACmixConfig)]


def random_config(rng: random.Random) -> ACmixConfig:
    """Any configuration within the URL limits, valid or not."""
    values = {name: rng.randint(lo, min(hi, 4096)) for name, (lo, hi) in LIMITS.items()}
    values["seed"] = rng.randint(*LIMITS["seed"])
    return ACmixConfig(**values, variant=rng.choice(VARIANTS))


def random_valid_config(rng: random.Random, max_channels: int = 16, max_size: int = 12) -> ACmixConfig:
    """A small configuration that runs: drawn until its problems() is empty."""
    while True:
        variant = rng.choice(VARIANTS)
        head = rng.randint(1, 4)
        config = ACmixConfig(
            in_planes=rng.randint(1, max_channels),
            out_planes=head * rng.randint(1, max_channels // head),
            kernel_att=rng.choice([1, 3, 5, 7]),
            head=head,
            kernel_conv=3 if variant == "official" else rng.choice([1, 3, 5]),
            stride=rng.randint(1, 3),
            dilation=1 if variant == "official" else rng.randint(1, 2),
            height=rng.randint(1, max_size),
            width=rng.randint(1, max_size),
            batch=rng.randint(1, 2),
            seed=rng.randint(0, 1000),
            variant=variant,
        )
        if not config.problems():
            return config


# ---------------------------------------------------------------------------------------------
# URL round trip
# ---------------------------------------------------------------------------------------------
def test_query_parameter_names_are_the_field_names():
    assert FIELDS == ["in_planes", "out_planes", "kernel_att", "head", "kernel_conv", "stride",
                      "dilation", "height", "width", "batch", "seed", "variant"]
    assert set(ACmixConfig().to_query_params()) == set(FIELDS)


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_through_query_params(seed):
    rng = random.Random(seed)
    for _ in range(20):
        config = random_config(rng)
        params = config.to_query_params()
        assert all(isinstance(v, str) for v in params.values())
        assert ACmixConfig.from_query_params(params) == (config, [])
        short = config.to_query_params(only_changed=True)
        assert ACmixConfig.from_query_params(short) == (config, [])
        # as Streamlit hands them over: lists of strings
        assert ACmixConfig.from_query_params({k: [v] for k, v in params.items()}) == (config, [])


def test_defaults_give_an_empty_url():
    assert ACmixConfig().to_query_params(only_changed=True) == {}
    assert ACmixConfig.from_query_params({}) == (ACmixConfig(), [])
    assert ACmixConfig().with_(head=8).to_query_params(only_changed=True) == {"head": "8"}


def test_unknown_parameters_are_ignored():
    assert ACmixConfig.from_query_params({"page": "walkthrough", "foo": "<b>"}) == (ACmixConfig(), [])


def test_number_formats_accepted():
    config, notes = ACmixConfig.from_query_params({"head": " 8 ", "height": "32.0", "width": "+40"})
    assert notes == []
    assert (config.head, config.height, config.width) == (8, 32, 40)


HOSTILE = [
    "", " ", "abc", "-3", "0", "8.5", "1e400", "nan", "inf", "-inf", "9" * 100, "0x10",
    "<script>alert(1)</script>", "'; DROP TABLE x; --", "None", "[8]", "\x00", "10000000",
]


@pytest.mark.parametrize("raw", HOSTILE)
@pytest.mark.parametrize("name", ["head", "height", "out_planes", "batch"])
def test_hostile_numbers_fall_back_to_defaults(name, raw):
    config, notes = ACmixConfig.from_query_params({name: raw, "kernel_att": "5"})
    assert getattr(config, name) == getattr(ACmixConfig(), name)
    assert config.kernel_att == 5  # the good value next to it is kept
    assert len(notes) == 1
    note = notes[0]
    assert note.startswith(f"URL parameter {name}=") and f"using {getattr(ACmixConfig(), name)}" in note
    assert "<" not in note and ">" not in note and "\x00" not in note
    assert len(note) < 200


@pytest.mark.parametrize("raw", ["", "Official", "fixed ", "authors", "<img src=x>", ["official", "bad"], []])
def test_hostile_variant_falls_back(raw):
    config, notes = ACmixConfig.from_query_params({"variant": raw})
    expected = "fixed" if raw == "fixed " else "official"  # surrounding spaces are stripped
    assert config.variant == expected
    if raw == "fixed ":
        assert notes == []
    else:
        assert len(notes) == 1 and "variant" in notes[0] and "official, fixed" in notes[0]
        assert "<" not in notes[0]


@pytest.mark.parametrize("raw", ["", "abc", "-1", "1e400", "2147483648", "<script>"])
def test_hostile_seed_falls_back(raw):
    config, notes = ACmixConfig.from_query_params({"seed": raw})
    assert config.seed == 0 and len(notes) == 1 and notes[0].startswith("URL parameter seed=")


def test_lists_take_the_last_value_and_empty_lists_fall_back():
    config, notes = ACmixConfig.from_query_params({"head": ["2", "8"], "height": []})
    assert config.head == 8 and config.height == 56
    assert len(notes) == 1 and notes[0].startswith("URL parameter height=")


def test_out_of_range_values_say_the_range():
    config, notes = ACmixConfig.from_query_params({"stride": "9", "batch": "0", "height": "99999"})
    assert config == ACmixConfig()
    assert notes == [
        "URL parameter stride=9 is outside 1 to 8; using 1.",
        "URL parameter height=99999 is outside 1 to 1,024; using 56.",
        "URL parameter batch=0 is outside 1 to 64; using 1.",
    ]


# ---------------------------------------------------------------------------------------------
# problems()
# ---------------------------------------------------------------------------------------------
def test_defaults_have_no_problems():
    assert ACmixConfig().problems() == [] and ACmixConfig().is_valid


def test_problems_aggregate_module_and_input_constraints():
    config = ACmixConfig(head=5, kernel_att=4, kernel_conv=5, dilation=2, height=1, width=7, stride=2)
    assert [p.constraint for p in config.problems()] == [
        "head_divides_out_planes", "kernel_att_odd", "official_kernel_conv_3", "official_dilation_1",
        "input_too_small", "official_size_divisible_by_stride",
    ]
    assert all(p.sentence().endswith(".") for p in config.problems())


def test_bounds_problems():
    config = ACmixConfig(head=0, height=5000, stride=True, variant="official")
    assert [p.constraint for p in config.problems()] == ["head", "stride", "height"]
    assert "height must be an integer from 1 to 1,024, not 5000." in [p.message for p in config.problems()]
    assert [p.constraint for p in ACmixConfig(variant="x").problems()] == ["variant"]


@pytest.mark.parametrize("seed", range(3))
def test_problems_are_the_modules_errors(seed):
    """problems() says what building and running the module raises, in the same words (a fix
    may be more specific: the configuration knows the input size the module does not)."""
    rng = random.Random(100 + seed)
    seen_invalid = 0
    for _ in range(40):
        config = ACmixConfig(
            in_planes=4, out_planes=rng.choice([4, 6, 8]), kernel_att=rng.randint(1, 6),
            head=rng.randint(1, 5), kernel_conv=rng.randint(1, 5), stride=rng.randint(1, 3),
            dilation=rng.randint(1, 2), height=rng.randint(1, 7), width=rng.randint(1, 7),
            variant=rng.choice(VARIANTS),
        )
        raised = []
        try:
            module = ACmix(**config.module_kwargs())
            with torch.no_grad():
                module(config.make_input())
        except ConfigError as err:
            raised = err.problems
        module_part = [p for p in config.problems() if p.constraint not in
                       ("input_too_small", "official_size_divisible_by_stride")]

        def said(problems):  # the fix may differ: the configuration knows the input's size
            return [(p.constraint, p.message, p.line) for p in problems]

        if module_part:
            assert said(raised) == said(module_part)
        else:
            assert raised == config.problems()
        seen_invalid += bool(raised)
    assert 0 < seen_invalid < 40


# ---------------------------------------------------------------------------------------------
# Shapes and memory
# ---------------------------------------------------------------------------------------------
def test_output_shape_equals_the_modules():
    rng = random.Random(7)
    for _ in range(40):
        config = random_valid_config(rng)
        module = config.build()
        x = config.make_input()
        assert x.shape == config.input_shape
        with torch.no_grad():
            assert module(x).shape == config.output_shape, config.describe()


def test_build_and_input_follow_the_seed():
    a, b = ACmixConfig(in_planes=4, out_planes=4, seed=3), ACmixConfig(in_planes=4, out_planes=4, seed=4)
    assert torch.equal(a.build().conv1.weight, a.build().conv1.weight)
    assert not torch.equal(a.build().conv1.weight, b.build().conv1.weight)
    assert torch.equal(a.make_input(), a.make_input())
    assert not torch.equal(a.make_input(), b.make_input())


def test_peak_memory_estimate_bounds_the_measurement():
    """estimate_peak_bytes (shapes only) vs the allocator's peak of a real forward, 24 random
    configurations: never below it, and never far above (tests/test_memory.py checks how close)."""
    rng = random.Random(11)
    variants, strides = set(), set()
    checked = 0
    while checked < 24:
        config = random_valid_config(rng, max_channels=32, max_size=24)
        measured = measure_peak_bytes(config.build(), config.make_input())
        estimate = config.estimate_peak_bytes()
        assert measured <= estimate, config.describe()
        if config.height * config.width >= 36:  # tiny maps: a few KiB, mostly oneDNN's allowance
            assert estimate <= 3 * measured + MKLDNN_SCRATCH_BYTES, config.describe()
        variants.add(config.variant)
        strides.add(config.stride)
        checked += 1
    assert variants == {"official", "fixed"} and strides == {1, 2, 3}


@pytest.mark.parametrize("config", [
    ACmixConfig(in_planes=10, out_planes=28, kernel_att=3, head=4, stride=3, height=2, width=15,
                variant="fixed"),  # unfold's storage is its padded input's size
    ACmixConfig(in_planes=16, out_planes=3, kernel_att=1, head=3, kernel_conv=5, stride=2, height=8,
                width=20, variant="fixed"),  # f_conv is a view (head_dim 1)
    ACmixConfig(in_planes=8, out_planes=16, kernel_att=5, head=2, stride=2, height=10, width=12, batch=2),
    ACmixConfig(in_planes=29, out_planes=21, kernel_att=1, head=3, kernel_conv=1, height=5, width=22,
                variant="fixed"),  # the conv path peaks
])
def test_peak_memory_estimate_is_exact_in_float64(config):
    """float64 runs PyTorch's own kernels, whose every buffer the estimate follows: to the byte."""
    module, x = config.build().double(), config.make_input(dtype=torch.float64)
    assert config.estimate_peak_bytes("float64") == measure_peak_bytes(module, x)


def test_peak_memory_estimate_at_defaults_and_dtypes():
    config = ACmixConfig()
    measured = measure_peak_bytes(config.build(), config.make_input())
    assert measured <= config.estimate_peak_bytes() <= 1.01 * measured
    # The default's peak is the attention path's unfolded copies, where no kernel has buffers of
    # its own: twice the bytes per value, twice the peak.
    assert config.estimate_peak_bytes("float64") == 2 * config.estimate_peak_bytes("float32")


# ---------------------------------------------------------------------------------------------
# Every message in Chinese
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {"head": "abc"}, {"stride": "9"}, {"height": "99999"}, {"variant": "authors"}, {"seed": "<script>"},
])
def test_every_url_note_in_chinese(params):
    english, chinese = in_both(lambda: ACmixConfig.from_query_params(params)[1][0])
    assert_translated(english, chinese)
    assert english.split("=")[0].split()[-1] in chinese  # the parameter's name, as in the URL


def test_bound_problems_in_chinese():
    for config in (ACmixConfig(head=0), ACmixConfig(height=5000), ACmixConfig(stride=True)):
        english, chinese = in_both(lambda config=config: config.problems()[0].message)
        assert_translated(english, chinese)
    assert "URL" not in ACmixConfig().describe() and "ACmix(" in ACmixConfig().describe()  # code: not translated
