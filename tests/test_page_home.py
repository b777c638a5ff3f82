"""AppTest of the home page: live numbers, constraint messages, URL reproduction, hostile URLs."""

from __future__ import annotations

import statistics
import time

import pytest

from convmix import ACmix
from convmix.config import ACmixConfig

HOME = "pages/home.py"


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def main_errors(at) -> str:
    return "\n".join(e.value for e in at.main.error)


def test_defaults(app):
    at = app()
    assert not at.exception
    shown = metrics(at)
    assert shown["Parameters"] == "17,822"
    assert shown["Output shape"] == "1 × 64 × 56 × 56"
    module = ACmix(64, 64)
    assert shown["Parameters"] == f"{sum(p.numel() for p in module.parameters()):,}"
    assert not at.main.error and not at.sidebar.error and not at.sidebar.warning
    assert any("torch sees" in md.value for md in at.markdown)
    assert at.title[0].value == "convmix"


def test_head_that_does_not_divide_the_channels(app):
    at = app()
    at.sidebar.number_input(key="head").set_value(5).run()
    assert not at.exception
    text = main_errors(at)
    assert "head (5) must divide out_planes (64)" in text
    assert "Heads that divide 64: 2, 4, 8." in text
    assert not at.metric  # nothing live to show
    assert "Heads that divide 64" in at.sidebar.error[0].value


def test_kernel_conv_5_fixed_runs_official_explains(app):
    at = app()
    at.sidebar.number_input(key="kernel_conv").set_value(5).run()
    assert not at.exception
    text = main_errors(at)
    assert "kernel_conv = 5" in text and "fixed variant" in text
    assert any("fixed" in info.value and "runs this configuration" in info.value for info in at.info)
    assert not at.metric

    at.sidebar.radio(key="variant").set_value("fixed").run()
    assert not at.exception and not at.main.error
    shown = metrics(at)
    module = ACmix(64, 64, kernel_conv=5, variant="fixed")
    assert shown["Parameters"] == f"{sum(p.numel() for p in module.parameters()):,}" == "52,830"
    assert shown["Output shape"] == "1 × 64 × 56 × 56"


def test_url_reproduces_a_configuration(app):
    at = app(query_params={"head": 8, "out_planes": 128, "stride": 2, "variant": "fixed"})
    assert not at.exception
    assert at.sidebar.number_input(key="head").value == 8
    assert at.sidebar.number_input(key="out_planes").value == 128
    assert at.sidebar.radio(key="variant").value == "fixed"
    module = ACmix(64, 128, head=8, stride=2, variant="fixed")
    shown = metrics(at)
    assert shown["Parameters"] == f"{sum(p.numel() for p in module.parameters()):,}"
    assert shown["Output shape"] == "1 × 128 × 28 × 28"
    assert not at.sidebar.warning


HOSTILE_URLS = [
    {"head": "abc", "height": "-5", "variant": "<script>alert(1)</script>"},
    {"stride": "1e400", "width": "inf", "batch": "nan"},
    {"head": "8.5", "seed": "", "kernel_att": "9" * 60},
    {"out_planes": "0x40", "in_planes": "[64]", "dilation": "-inf"},
]


@pytest.mark.parametrize("params", HOSTILE_URLS, ids=lambda p: ",".join(p))
def test_hostile_url_parameters_warn(app, params):
    at = app(query_params=params)
    assert not at.exception
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == len(params)
    for name in params:
        assert any(w.startswith(f"URL parameter {name}=") for w in warnings), name
    assert all("<" not in w for w in warnings)
    # every refused value falls back to the default, in the widget as in the message
    for name in params:
        widget = at.sidebar.radio(key=name) if name == "variant" else at.sidebar.number_input(key=name)
        assert widget.value == getattr(ACmixConfig(), name)
    assert metrics(at)["Parameters"] == "17,822"
    # the session goes on: a later change works
    at.sidebar.number_input(key="head").set_value(8).run()
    assert not at.exception
    assert at.sidebar.number_input(key="head").value == 8


def test_good_and_bad_url_values_together(app):
    at = app(query_params={"head": "8", "stride": "1e400", "height": "28"})
    assert not at.exception
    assert at.sidebar.number_input(key="head").value == 8
    assert at.sidebar.number_input(key="height").value == 28
    assert at.sidebar.number_input(key="stride").value == 1
    warnings = [w.value for w in at.sidebar.warning]
    assert warnings == ["URL parameter stride='1e400' is not a whole number; using 1."]
    assert metrics(at)["Output shape"] == "1 × 64 × 28 × 56"


def test_warm_reruns_are_stable_and_timed(app, capsys, record_property):
    """Reruns with warm caches show the same numbers. Their time is measured and reported (printed
    and recorded as a property), never asserted."""
    at = app()
    first = metrics(at)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception
        assert metrics(at) == first
    median_ms = 1000 * statistics.median(times)
    record_property("home_warm_rerun_median_ms", round(median_ms, 1))
    with capsys.disabled():
        print(f"\nhome page warm rerun under AppTest: median {median_ms:.0f} ms of {len(times)}")
