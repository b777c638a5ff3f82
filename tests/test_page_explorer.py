"""The explorer page under AppTest: defaults, changed axes, skipped and refused configurations,
measuring on tiny sizes, uploads valid and invalid, and the highlight across charts."""

from __future__ import annotations

import json

import pytest
import torch

from convmix import bench, sweep
from convmix.config import ACmixConfig

PAGE = "pages/explorer.py"


def specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("vega_lite_chart")]


def titles(at) -> list[str]:
    """Each chart's title, lines joined by ", "."""
    out = []
    for spec in specs(at):
        title = spec.get("title", "")
        text_ = title.get("text", "") if isinstance(title, dict) else title
        out.append(", ".join(text_) if isinstance(text_, list) else text_)
    return out


def text(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption]
                     + [i.value for i in at.info] + [w.value for w in at.warning] + [s.value for s in at.success])


def assert_clean(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture
def page(app):
    at = app(PAGE)
    assert_clean(at)
    return at


@pytest.fixture
def small_peaks(monkeypatch):
    """Peaks from small sizes, so that measuring in tests does not spend time on a large matmul."""
    cpu = torch.device("cpu")
    peaks = bench.measure_peaks(cpu, "float32", matmul_size=64, copy_elements=1 << 12, repeats=2)
    monkeypatch.setitem(bench._PEAKS, (str(cpu), "float32"), peaks)


def tiny(at):
    """Sidebar at 8×8 input, channels 8 and 16: a sweep that measures in a moment."""
    at.sidebar.number_input(key="height").set_value(8).run()
    at.sidebar.number_input(key="width").set_value(8).run()
    at.multiselect(key="explorer_values_channels").set_value([8, 16]).run()
    at.radio(key="explorer_budget").set_value("quick").run()
    return at


def test_defaults(page):
    body = text(page)
    n = len(sweep.AXES["kernel_att"].default) * len(sweep.AXES["channels"].default)
    assert f"**{n}** configurations" in body
    assert page.multiselect(key="explorer_vary").value == list(sweep.DEFAULT_VARIED)
    assert "changes no parameter count" in body  # kernel_att on the x axis
    assert "Stage I is more than half of all FLOPs for ka=3 from **64 channels** on." in body
    assert "Nothing measured yet" in body
    assert "No GPU here" in body or torch.cuda.is_available()
    assert page.button(key="explorer_measure").label == f"Measure {n} configurations"
    t = titles(page)
    assert t[0] == "Parameters against kernel_att"
    assert t[1] == "Parameters per submodule"
    assert t[2] == "Stage I's share of all FLOPs as channels grow"
    smallest = sweep.count_row(ACmixConfig(32, 32, kernel_att=3))
    assert f"**Parameters** {smallest['params']:,} to 17,822" in body
    assert f"**FLOPs** {smallest['flops']:,} to " in body


def test_changed_axes(page):
    page.multiselect(key="explorer_vary").set_value(["head", "stride", "resolution"]).run()
    page.multiselect(key="explorer_values_head").set_value([1, 2, 8]).run()
    page.multiselect(key="explorer_values_resolution").set_value([16, 32]).run()
    page.selectbox(key="explorer_x").set_value("resolution").run()
    assert_clean(page)
    assert "**12** configurations" in text(page)
    spec = specs(page)[0]
    assert spec["layer"][1]["encoding"]["x"]["field"] == "height"
    page.radio(key="explorer_quantity").set_value("flops").run()
    page.toggle(key="explorer_normalize").set_value(True).run()
    page.radio(key="explorer_share_kind").set_value("macs").run()
    assert_clean(page)
    t = titles(page)
    assert t[:3] == ["Floating-point operations per forward against height", "FLOPs per component",
                     "Stage I's share of all multiply-adds as channels grow"]
    assert specs(page)[1]["encoding"]["x"]["stack"] == "normalize"


def test_nothing_varied_is_one_configuration(page):
    page.multiselect(key="explorer_vary").set_value([]).run()
    assert_clean(page)
    assert "**1** configuration of" in text(page)


def test_skipped_combinations_are_explained_and_fixed_is_offered(page):
    page.multiselect(key="explorer_vary").set_value(["kernel_conv", "head"]).run()
    page.multiselect(key="explorer_values_kernel_conv").set_value([3, 5]).run()
    page.multiselect(key="explorer_values_head").set_value([4, 64, 32]).run()
    assert_clean(page)
    warning = page.warning[0].value
    assert "3 of 6 combinations cannot run with the **official** variant" in warning
    assert "pads by 1 whatever kernel_conv is" in warning  # the quirk in words, no bare code
    assert "The **fixed** variant runs 6 of the 6 combinations" in page.info[0].value
    page.sidebar.radio(key="variant").set_value("fixed").run()
    assert_clean(page)
    assert "**6** configurations" in text(page)


def test_nothing_runnable_and_too_many(page):
    page.multiselect(key="explorer_vary").set_value(["head"]).run()
    page.multiselect(key="explorer_values_head").set_value([64]).run()
    page.sidebar.number_input(key="out_planes").set_value(32).run()
    assert not page.exception
    assert "No configuration of this sweep can run" in page.error[0].value
    page.multiselect(key="explorer_vary").set_value(["kernel_att", "head", "channels", "resolution"]).run()
    for name in ("kernel_att", "head", "channels", "resolution"):
        page.multiselect(key=f"explorer_values_{name}").set_value(list(sweep.AXES[name].choices)).run()
    assert not page.exception
    assert "at most 1,000 are counted at once" in page.error[0].value


def test_highlight_reaches_every_chart(page):
    options = page.selectbox(key="explorer_highlight").options
    assert options[0] == "none"
    chosen = sweep.short_id(ACmixConfig(64, 64, 5, 4))
    assert "C=64 ka=5" in options
    page.selectbox(key="explorer_highlight").set_value(chosen).run()
    assert_clean(page)
    for spec in specs(page)[:2]:
        params = spec.get("params", []) + [p for layer in spec.get("layer", []) for p in layer.get("params", [])]
        (pick,) = [p for p in params if p["name"] == "pick"]
        assert pick["value"] == [{"config": chosen}]


def test_measure_on_tiny_sizes(page, small_peaks):
    at = tiny(page)
    assert_clean(at)
    at.button(key="explorer_measure").click().run()
    assert_clean(at)
    assert at.button(key="explorer_measure").label == "All shown configurations are measured"
    device = bench.environment(bench.pick_device("auto"), "float32").device_name
    t = titles(at)
    measured = [x for x in t if "measured on" in x]
    assert len(measured) == 5 and all(device in x for x in measured)
    table = at.dataframe[-1].value
    assert len(table) == 6 and (table["source"] == "this server").all()
    assert (table["latency_ms_p25"] <= table["latency_ms"]).all()
    body = text(at)
    assert "Nothing measured yet" not in body


def fixture_file(device_name: str = "Fixture GPU (test data)") -> bytes:
    """A result file as the CLI writes it, with stand-in measured values (test data, not a measurement)."""
    configs = sweep.expand_grid(ACmixConfig(), {"kernel_att": [3, 5, 7]}).configs
    rows = {c: {"latency_ms": 1.0 + i, "latency_ms_p25": 0.9 + i, "latency_ms_p75": 1.2 + i,
                "peak_bytes": 1000 * (i + 1), "device": "cuda", "device_name": device_name,
                "dtype": "bfloat16", "torch_version": "2.13.0"} for i, c in enumerate(configs)}
    return sweep.to_csv(sweep.sweep_frame(configs, rows))


def test_upload_valid_and_invalid_files(page):
    bad = fixture_file().replace(b"official", b"unofficial", 1)
    page.file_uploader(key="explorer_upload").set_value(
        [("gpu.csv", fixture_file(), "text/csv"), ("broken.csv", bad, "text/csv")]).run()
    assert not page.exception
    (error,) = page.error
    assert "`broken.csv` was not loaded" in error.value
    assert "Column variant: line 2 must be one of official, fixed (found `unofficial`)" in error.value
    assert "`gpu.csv`: 3 rows, 3 with latency, measured on `Fixture GPU (test data), bfloat16`." in text(page)
    t = titles(page)
    assert "ACmix latency, measured on Fixture GPU (test data), bfloat16" in t
    assert "Peak memory, measured on Fixture GPU (test data), bfloat16" in t
    # The file holds only the required columns: no parts, baselines or floor to draw.
    assert "No parts, baselines, roofline in the results shown" in text(page)


def test_uploads_are_drawn_beside_live_results(page, small_peaks):
    at = tiny(page)
    at.button(key="explorer_measure").click().run()
    at.file_uploader(key="explorer_upload").set_value(("gpu.csv", fixture_file(), "text/csv")).run()
    assert_clean(at)
    (latency,) = [t for t in titles(at) if t.startswith("ACmix latency")]
    device = bench.environment(bench.pick_device("auto"), "float32").device_name
    assert latency.startswith(f"ACmix latency, measured on {device}, float32")
    assert latency.endswith(", and on Fixture GPU (test data), bfloat16")


def test_memory_refusal_is_explained(page, monkeypatch):
    monkeypatch.setenv("CONVMIX_MEMORY_BUDGET", "1MiB")
    page.run()
    assert not page.exception
    assert "over this server's memory budget of 1.0 MiB" in text(page)
    assert page.button(key="explorer_measure").disabled


# -- issue 11 --------------------------------------------------------------------------------------------
def test_user_text_is_shown_as_text_not_markdown(page):
    """Item 11: upload names and the file's device_name were rendered as markdown (a link and a
    remote image appeared, and the browser fetched it)."""
    image = "![p](http://127.0.0.1:9/probe.png)"
    name = "[click](http://127.0.0.1:9/x) :red[red] $x^2$.csv"
    page.file_uploader(key="explorer_upload").set_value(
        [(name, fixture_file(device_name=image), "text/csv"),
         ("**bold**.csv", fixture_file().replace(b"official", b"![q](http://127.0.0.1:9/q.png)", 1), "text/csv")]
    ).run()
    assert not page.exception
    success = page.success[0].value
    assert success.startswith(f"`{name}`: 3 rows") and f"`{image}, bfloat16`" in success
    (error,) = page.error
    assert error.value.startswith("`**bold**.csv` was not loaded")
    assert "(found `![q](http://127.0.0.…`)" in error.value
    # Every visitor-supplied piece of text sits inside a code span.
    for text in (success, error.value):
        outside = "".join(part for i, part in enumerate(text.split("`")) if i % 2 == 0)
        assert "](" not in outside and ":red[" not in outside and "**" not in outside


def test_uploads_beyond_the_limit_are_dropped(page, monkeypatch):
    """Item 12: 150 files of 1.9 MB raised the server to 1 GB and held it after the tab closed."""
    from convmix.ui import session

    dropped = []
    # The page imports the name on every run, so it gets this stand-in (which records what it drops).
    monkeypatch.setattr(session, "discard_uploads", lambda files: dropped.extend(files) or len(files))

    files = [(f"r{i}.csv", fixture_file(), "text/csv") for i in range(11)]
    page.file_uploader(key="explorer_upload").set_value(files).run()
    assert not page.exception
    assert [s.value.split(":")[0] for s in page.success] == [f"`r{i}.csv`" for i in range(8)]
    assert "Only the first 8 files are read; the other 3 were discarded" in text(page)
    assert [f.name for f in dropped] == ["r8.csv", "r9.csv", "r10.csv"]


def test_a_measurement_whose_baseline_does_not_fit_is_refused_before_the_click(page):
    """Item 1: with both "vary" chips removed, this configuration passed at an estimated 1,011 MiB and
    peaked at 4.9 GB (its plain Conv2d baseline alone is 3.8 GB)."""
    for name, value in (("in_planes", 2048), ("out_planes", 2048), ("kernel_conv", 15), ("kernel_att", 1),
                        ("height", 8), ("width", 8)):
        page.sidebar.number_input(key=name).set_value(value).run()
    page.sidebar.radio(key="variant").set_value("fixed").run()
    page.multiselect(key="explorer_vary").set_value([]).run()
    assert not page.exception
    body = text(page)
    assert "Measuring Cin=2048 C=2048 ka=1 h=4 kc=15" in body and "over this server's memory budget" in body
    assert page.button(key="explorer_measure").disabled


def test_a_measurement_over_the_time_limit_is_a_message(page, small_peaks, monkeypatch):
    """Item 7: a measurement estimated beyond the time limit is refused when it would run, and says
    what would fit."""
    monkeypatch.setenv("CONVMIX_TIME_LIMIT", "0.001")
    at = tiny(page)
    at.button(key="explorer_measure").click().run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "would take about" in warnings and "over its limit of 0.0 s per request" in warnings
