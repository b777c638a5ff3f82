"""convmix.ui.charts: a cached chart sends exactly what st.altair_chart sends, and its key sees every
change of its input (issue 16, items 3 and 5)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from convmix import charts, sweep
from convmix import charts_bias as charts_bias
from convmix.config import ACmixConfig
from convmix.i18n import language
from convmix.ui import charts as ui_charts


def _sent(at) -> list[tuple[dict, list[tuple[str, bytes]]]]:
    """Each chart as the browser receives it: its spec and its datasets (name and Arrow bytes)."""
    return [(json.loads(el.proto.spec), [(d.name, d.data.data) for d in el.proto.datasets])
            for el in at.get("vega_lite_chart")]


def _both_ways():
    """A script: each chart drawn by st.altair_chart, then from its cached spec, twice (built, kept)."""
    import numpy as np
    import streamlit as st

    from convmix import charts, sweep
    from convmix import charts_bias as charts_bias
    from convmix.config import ACmixConfig
    from convmix.ui.charts import chart_spec

    grid = sweep.expand_grid(ACmixConfig(), {"kernel_att": [3, 5, 7], "head": [1, 4]})
    frame = sweep.add_labels(sweep.count_rows(grid.configs), "kernel_att")
    heat = np.random.default_rng(0).normal(size=(40, 56)).astype(np.float32)
    selected = {"on_select": "rerun", "selection_mode": charts.SELECTION}  # as the explorer draws
    cases = [
        (charts.totals_chart, (frame, "kernel_att", "flops", frame["config"].iloc[2], False, "", ""), {},
         {"width": "stretch", **selected}),
        (charts_bias.map_heatmap, (heat, "conv(x) + b", "before ReLU"), {"domain": (-3.0, 3.0)},
         {"width": "content"}),
        (charts_bias.survival_chart, (np.linspace(-2, 2, 41), np.linspace(1, 0, 41), 0.25, -0.5), {},
         {"width": "stretch"}),
    ]
    for build, args, kwargs, options in cases:
        st.altair_chart(build(*args, **kwargs), key=f"a{build.__name__}", **options)
        for i in range(2):
            st.vega_lite_chart(spec=chart_spec(build, *args, **kwargs), key=f"s{i}{build.__name__}", **options)


def test_a_cached_chart_sends_what_altair_chart_sends():
    at = AppTest.from_function(_both_ways, default_timeout=60).run()
    assert not at.exception
    sent = _sent(at)
    assert len(sent) == 9
    for i in range(0, 9, 3):
        direct, built, kept = sent[i: i + 3]
        assert direct == built == kept
        assert direct[1] and all(payload for _name, payload in direct[1])  # the data travel as Arrow bytes
    assert len(ui_charts._specs()) == 3


def test_drawing_leaves_the_cached_spec_as_it_was():
    frame = pd.DataFrame({"position": [0, 1], "layer": ["layer1.0", "layer1.1"], "name": ["a", "b"],
                          "series": ["rate1", "rate1"], "value": [0.5, 0.25]})
    from convmix import charts_network

    first = ui_charts.chart_spec(charts_network.across_depth_chart, frame, "t", "value")
    again = ui_charts.chart_spec(charts_network.across_depth_chart, frame, "t", "value")
    assert first == again and first is not again  # a fresh top level each time
    del first["datasets"]
    assert "datasets" in ui_charts.chart_spec(charts_network.across_depth_chart, frame, "t", "value")


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"x": np.arange(rows), "y": rng.normal(size=rows), "label": [f"r{i}" for i in range(rows)]})


def _key(*args, **kwargs) -> str:
    return ui_charts.chart_key(charts.totals_chart, args, kwargs, "en")


@pytest.mark.parametrize("change", ["value", "label", "index", "column", "dtype"])
def test_the_key_sees_any_change_in_a_large_frame(change):
    """Streamlit's own hash samples frames of more than 50,000 rows; this key reads every row."""
    base = _frame(120_000)
    other = base.copy()
    if change == "value":
        other.loc[99_999, "y"] += 1e-9
    elif change == "label":
        other.loc[77_777, "label"] = "r77778"
    elif change == "index":
        other.index = other.index.where(other.index != 60_001, 10**9)
    elif change == "column":
        other = other.rename(columns={"y": "z"})
    else:
        other["x"] = other["x"].astype("float64")
    assert _key(base) == _key(base.copy())
    assert _key(base) != _key(other)


def test_the_key_sees_arrays_numbers_options_and_the_language():
    heat = np.zeros((8, 8), np.float32)
    changed = heat.copy()
    changed[7, 7] = 1e-30
    assert _key(heat) != _key(changed)
    assert _key(heat) != _key(heat.astype(np.float64))  # same values, another dtype
    assert _key(heat) != _key(heat.reshape(4, 16))
    assert _key(heat, domain=(0.0, 1.0)) != _key(heat, domain=(0.0, 1.5))
    assert _key(heat, 1) != _key(heat, 1.0) != _key(heat, True)
    assert _key(heat, None) != _key(heat, "")
    assert ui_charts.chart_key(charts.totals_chart, (heat,), {}, "en") != \
        ui_charts.chart_key(charts.totals_chart, (heat,), {}, "zh")
    assert ui_charts.chart_key(charts.totals_chart, (heat,), {}, "en") != \
        ui_charts.chart_key(charts.latency_chart, (heat,), {}, "en")


def test_the_language_keeps_translated_charts_apart():
    heat = np.random.default_rng(2).normal(size=(6, 6))
    def words(spec: dict) -> str:
        return json.dumps({k: v for k, v in spec.items() if k != "datasets"}, ensure_ascii=False)

    with language("en"):
        english = words(ui_charts.chart_spec(charts_bias.map_heatmap, heat, "title", "value"))
    with language("zh"):
        chinese = words(ui_charts.chart_spec(charts_bias.map_heatmap, heat, "title", "value"))
    assert english != chinese and "行" in chinese  # the tooltip's "row"
    assert len(ui_charts._specs()) == 2


def test_an_argument_it_cannot_digest_is_drawn_uncached():
    class Opaque:
        pass

    def build(_thing, df):
        return charts_bias.map_heatmap(df, "t", "v")

    with pytest.raises(ui_charts.Unkeyable):
        ui_charts.chart_key(build, (Opaque(), None), {}, "en")
    spec = ui_charts.chart_spec(build, Opaque(), np.ones((3, 3)))
    assert spec["datasets"] and len(ui_charts._specs()) == 0


def test_the_cache_is_bounded_by_bytes_and_counts_the_data(monkeypatch):
    heat = np.random.default_rng(3).normal(size=(60, 60))
    spec = ui_charts.chart_spec(charts_bias.map_heatmap, heat, "t", "v")
    size = ui_charts.spec_bytes(spec)
    assert size > heat.size * 4  # the Arrow data are counted, not only the JSON
    store = ui_charts._specs()
    monkeypatch.setattr(store, "max_bytes", lambda: 2 * size + size // 2)  # room for two
    for i in range(4):
        ui_charts.chart_spec(charts_bias.map_heatmap, heat + i, "t", "v")
    assert len(store) == 2 and store.nbytes <= 2 * size + size // 2


def test_sweep_frames_from_the_explorer_are_keyed_by_content_not_layout():
    """A frame that went through st.cache_data is a copy laid out anew (the explorer's counts are): it
    must find the charts that the original built, or the first visitor after a warm start rebuilds
    them all."""
    grid = sweep.expand_grid(ACmixConfig(), {"kernel_att": [3, 5], "head": [1, 2], "stride": [1, 2]})
    counts = sweep.count_rows(grid.configs)
    copied = pickle.loads(pickle.dumps(counts))
    frame, from_copy = sweep.add_labels(counts, "kernel_att", "stride"), sweep.add_labels(copied, "kernel_att", "stride")
    assert pickle.dumps(frame) != pickle.dumps(from_copy)  # the layouts differ...
    assert _key(frame) == _key(from_copy)  # ...the content does not
    for (_t1, part), (_t2, part_copy) in zip(charts.facets(frame, "stride"), charts.facets(from_copy, "stride"),
                                             strict=True):
        assert _key(part) == _key(part_copy)
    assert _key(frame) != _key(sweep.add_labels(counts, "head", "stride"))


def test_a_column_of_other_objects_is_not_guessed_at():
    plain = pd.DataFrame({"v": ["a", None, 1.5, np.float32(2)]})
    assert _key(plain) == _key(plain.copy())
    with pytest.raises(ui_charts.Unkeyable):
        _key(pd.DataFrame({"v": [object()]}))
    with pytest.raises(ui_charts.Unkeyable):
        _key(pd.DataFrame({"v": [[1, 2]]}))
