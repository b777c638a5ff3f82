"""convmix.walkthrough against independent computations: explicit loops, numpy's reflection
padding, experiments on the module. Nothing here re-reads the trace's unfold tensors to check
numbers derived from them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from convmix import budget
from convmix import charts_walkthrough as charts
from convmix import walkthrough as wt
from convmix.config import ACmixConfig
from convmix.trace import STEP_INFO, trace_forward

SMALL = ACmixConfig(in_planes=6, out_planes=12, head=3, kernel_att=7, height=9, width=9, batch=2)
CONFIGS = {
    "official": SMALL,
    "official-stride2": SMALL.with_(kernel_att=5, stride=2, height=10, width=8),
    "fixed-dilated-odd": SMALL.with_(variant="fixed", kernel_att=3, dilation=2, stride=2,
                                     height=11, width=9, kernel_conv=5),
    "fixed-kc1": SMALL.with_(variant="fixed", kernel_conv=1, head=4, out_planes=8),
}


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def case(request):
    config = CONFIGS[request.param]
    module = config.build()
    return config, module, trace_forward(module, config.make_input())


def t2np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


# ---------------------------------------------------------------------------------------------
# The attention inspector against explicit loops
# ---------------------------------------------------------------------------------------------


def naive_query(trace, config, b, n, y, x):
    """Logits, weights, output and key positions of one query, by loops over q, k, v and pe.

    Reflection comes from numpy: np.pad(arange(H), p, mode="reflect") maps each padded index to
    the input index it copies.
    """
    d, ka, s = config.head_dim, config.kernel_att, config.stride
    dil = config.dilation if config.variant == "fixed" else 1
    p = (config.dilation * (ka - 1) + 1) // 2
    q, k, v = (t2np(trace[name].tensor) for name in ("q", "k", "v"))
    pe = t2np(trace["pe"].tensor)
    src_rows = np.pad(np.arange(config.height), p, mode="reflect")
    src_cols = np.pad(np.arange(config.width), p, mode="reflect")
    qy, qx = y * s, x * s
    scale = 1 / math.sqrt(d)
    logits, content, positional, keys, pe_diff = [], [], [], [], []
    for dy in range(ka):
        for dx in range(ka):
            ky, kx = src_rows[qy + dy * dil], src_cols[qx + dx * dil]
            keys.append((ky, kx))
            c_sum = p_sum = 0.0
            diffs = []
            for c in range(d):
                qc = q[b, n * d + c, qy, qx] * scale
                diff = pe[0, c, qy, qx] - pe[0, c, ky, kx]
                diffs.append(diff)
                c_sum += qc * k[b, n * d + c, ky, kx]
                p_sum += qc * diff
            content.append(c_sum)
            positional.append(p_sum)
            logits.append(c_sum + p_sum)
            pe_diff.append(diffs)
    top = max(logits)
    exps = [math.exp(a - top) for a in logits]
    weights = [e / sum(exps) for e in exps]
    out = [sum(w * v[b, n * d + c, ky, kx] for w, (ky, kx) in zip(weights, keys, strict=True))
           for c in range(d)]
    return dict(logits=np.array(logits), content=np.array(content),
                positional=np.array(positional), weights=np.array(weights), out=np.array(out),
                keys=np.array(keys), pe_diff=np.array(pe_diff).T)


def queries(config):
    ho, wo = config.out_height, config.out_width
    return {(0, 0), (0, wo - 1), (ho - 1, 0), (ho - 1, wo - 1), (ho // 2, wo // 2), (1, min(2, wo - 1))}


def test_inspector_matches_explicit_loops(case):
    config, _, trace = case
    for b in range(config.batch):
        for n in (0, config.head - 1):
            for y, x in queries(config):
                insp = wt.inspect_query(trace, config, b, n, y, x)
                ref = naive_query(trace, config, b, n, y, x)
                cells = insp.cells
                np.testing.assert_allclose(cells["logit"], ref["logits"], atol=2e-5)
                np.testing.assert_allclose(cells["content"], ref["content"], atol=2e-5)
                np.testing.assert_allclose(cells["positional"], ref["positional"], atol=2e-5)
                np.testing.assert_allclose(cells["weight"], ref["weights"], atol=1e-6)
                np.testing.assert_allclose(insp.pe_diff, ref["pe_diff"], atol=1e-6)
                np.testing.assert_array_equal(cells[["key_row", "key_col"]].to_numpy(), ref["keys"])
                np.testing.assert_allclose(insp.output["Σ_j w_j · v_j"], ref["out"], atol=2e-6)
                np.testing.assert_allclose(insp.output["out_att entry"], ref["out"], atol=2e-6)
                assert insp.output["output channel"].tolist() == [
                    n * config.head_dim + c for c in range(config.head_dim)]


def test_reflected_cells_are_those_outside_the_input(case):
    config, _, trace = case
    insp = wt.inspect_query(trace, config, 0, 0, 0, 0)
    inside = ((insp.cells["padded_row"] >= 0) & (insp.cells["padded_row"] < config.height)
              & (insp.cells["padded_col"] >= 0) & (insp.cells["padded_col"] < config.width))
    assert (insp.cells["reflected"] == ~inside).all()
    assert insp.cells["reflected"].any()  # a corner query always reaches into the padding


def test_positional_term_is_zero_at_the_window_centre(case):
    config, _, trace = case
    ho, wo = config.out_height, config.out_width
    insp = wt.inspect_query(trace, config, 0, 0, ho // 2, wo // 2)
    centre = config.kernel_att**2 // 2
    assert np.abs(insp.pe_diff[:, centre]).max() == 0.0


def test_key_window_frame_reads_the_padded_keys(case):
    config, _, trace = case
    d, ch, n, b = config.head_dim, config.head_dim - 1, config.head - 1, config.batch - 1
    insp = wt.inspect_query(trace, config, b, n, 0, 1)
    df = wt.key_window_frame(trace, config, insp, ch)
    k = t2np(trace["k"].tensor)[b, n * d + ch]
    p = insp.padding
    padded = np.pad(k, p, mode="reflect")
    np.testing.assert_allclose(df["value"], padded[df["row"] + p, df["col"] + p], atol=1e-6)
    inside = (df["row"].between(0, config.height - 1)) & (df["col"].between(0, config.width - 1))
    assert (df["padding"] == ~inside).all()
    assert int(df["in_window"].sum()) == config.kernel_att**2


# ---------------------------------------------------------------------------------------------
# Slices, steps, statistics
# ---------------------------------------------------------------------------------------------


def test_every_step_has_text_and_a_group():
    assert set(wt.STEP_TEXT) == set(STEP_INFO)
    assert set(wt.GROUP_INTRO) == {key for key, _ in wt.GROUPS}
    assert {info.stage for info in STEP_INFO.values()} == {key for key, _ in wt.GROUPS}


def test_explanations_fill_in_the_configuration(case):
    config, _, trace = case
    for name in trace.names:
        text = wt.explanation(name, config)
        assert "{" not in text and "}" not in text
    assert f"{3 * config.head * config.kernel_conv**2:,} parameters" in wt.explanation("f_all", config)


def test_groups_keep_forward_order(case):
    _, _, trace = case
    groups = wt.group_steps(trace)
    flat = [s.name for key, _ in wt.GROUPS for s in groups[key]]
    assert flat == trace.names
    assert [s.name for s in groups["Stage I"]] == ["q", "k", "v"]
    assert [s.name for s in groups["mix"]] == ["out"]


def test_steps_frame_statistics_and_views(case):
    config, _, trace = case
    df = wt.steps_frame(trace).set_index("step")
    q = t2np(trace["q"].tensor)
    assert df.loc["q", "mean"] == pytest.approx(q.mean(), abs=1e-9)
    assert df.loc["q", "std"] == pytest.approx(q.std(ddof=1), rel=1e-5)
    assert df.loc["q", "min"] == q.min() and df.loc["q", "max"] == q.max()
    assert df.loc["k_att", "view_of"] == "k"
    assert df.loc["v_att", "view_of"] == "v"
    if config.stride == 1:
        assert df.loc["q_pe", "view_of"] == "pe"
    # Reshaping the permuted f_all copies, unless one of the swapped axes has length 1.
    copies = config.kernel_conv > 1 and config.head_dim > 1
    assert bool(df.loc["f_conv", "view_of"]) != copies
    assert df.loc["q", "bytes"] == trace["q"].tensor.numel() * 4 and df.loc["q", "view_of"] == ""
    shown = wt.display_steps(wt.steps_frame(trace)).set_index("step")
    assert shown.loc["k_att", "memory"] == "view of k" and shown.loc["q", "stage"] == "Stage I"
    assert df.loc["out_conv", "parameters"] == config.out_planes * config.kernel_conv**4


def test_step_maps_index_the_right_entries(case):
    config, _, trace = case
    d, h = config.head_dim, config.head
    sel = wt.Selection(batch=config.batch - 1, head=h - 1, channel=d - 1,
                       window=config.kernel_att**2 // 2, offset=config.kernel_conv**2 - 1)
    c_out = sel.head * d + sel.channel
    q = t2np(trace["q"].tensor)
    k = t2np(trace["k"].tensor)
    (q_att,) = wt.step_maps(trace["q_att"], sel, config)
    np.testing.assert_allclose(q_att.values, q[sel.batch, c_out] / math.sqrt(d), rtol=1e-6)
    # unfold_k at window position (dy, dx) is the reflection-padded keys shifted by (dy, dx).
    p = (config.dilation * (config.kernel_att - 1) + 1) // 2
    dil = config.dilation if config.variant == "fixed" else 1
    padded = np.pad(k[sel.batch, c_out], p, mode="reflect")
    for j in (0, sel.window, config.kernel_att**2 - 1):
        dy, dx = divmod(j, config.kernel_att)
        (unfold,) = wt.step_maps(trace["unfold_k"], wt.Selection(sel.batch, sel.head, sel.channel, j),
                                 config)
        s = config.stride
        expect = padded[dy * dil::s, dx * dil::s][:config.out_height, :config.out_width]
        np.testing.assert_allclose(unfold.values, expect, atol=1e-6)
    groups = wt.step_maps(trace["qkv_groups"], sel, config)
    assert [m.title.split(":")[1].split()[0] for m in groups] == ["q", "k", "v"]
    for m, name in zip(groups, ("q", "k", "v"), strict=True):
        np.testing.assert_array_equal(m.values, t2np(trace[name].tensor)[sel.batch, c_out])
    grid = wt.step_maps(trace["grid"], sel, config)
    assert len(grid) == 2
    for m in wt.step_maps(trace["out"], sel, config):
        assert m.index == f"out[{sel.batch}, {c_out}, :, :]"


def test_map_frame_pools_large_maps():
    big = np.arange(200 * 130, dtype=float).reshape(200, 130)
    df, block = wt.map_frame(big, max_side=64)
    assert block == 4 and df["row"].max() < 200 and len(df) == 50 * 33
    first = big[:4, :4].mean()
    assert df.loc[(df["row"] == 0) & (df["col"] == 0), "value"].item() == pytest.approx(first)
    small, one = wt.map_frame(np.ones((5, 7)))
    assert one == 1 and len(small) == 35


# ---------------------------------------------------------------------------------------------
# conv_p, fc, dep_conv
# ---------------------------------------------------------------------------------------------


def test_pe_is_a_plane_of_the_coordinates(case):
    config, module, trace = case
    h, w = config.height, config.width
    xs = np.array([-1 + 2 * i / (w - 1) for i in range(w)])
    ys = np.array([-1 + 2 * i / (h - 1) for i in range(h)])
    weights = wt.conv_p_frame(module)
    pe = t2np(trace["pe"].tensor)[0]
    for _, row in weights.iterrows():
        plane = row["w_x"] * xs[None, :] + row["w_y"] * ys[:, None] + row["bias"]
        np.testing.assert_allclose(pe[int(row["channel"])], plane, atol=1e-6)
    assert wt.conv_p_plane_error(trace, module) < 1e-6


def test_conv_p_bias_has_no_effect_on_the_output():
    """The page says the bias cancels in pe_q − pe_key: change it and run the module again."""
    config = CONFIGS["official"]
    module = config.build()
    x = config.make_input()
    with torch.no_grad():
        before = module(x)
        module.conv_p.bias.add_(5.0)
        after = module(x)
    assert (after - before).abs().max() < 1e-5


def test_fc_matrix_rows_are_q_k_v_heads(case):
    """Recompute f_all from the labelled matrix and the Stage I tensors: the labels are right."""
    config, module, trace = case
    d, h, kc2 = config.head_dim, config.head, config.kernel_conv**2
    df = wt.fc_matrix_frame(module)
    assert len(df) == 3 * h * kc2 and df["input"].nunique() == 3 * h
    first = wt.fc_matrix_frame(module, max_heads=1)
    assert first["input"].unique().tolist() == ["q · head 0", "k · head 0", "v · head 0"]
    f_all = t2np(trace["f_all"].tensor)  # (B, kc², d, H·W)
    stage1 = {name: t2np(trace[name].tensor) for name in "qkv"}
    rebuilt = np.zeros_like(f_all)
    for _, row in df.iterrows():
        kind, head = row["input"].split(" · head ")
        src = stage1[kind][:, int(head) * d:(int(head) + 1) * d]  # (B, d, H, W)
        rebuilt[:, row["offset"]] += row["value"] * src.reshape(src.shape[0], d, -1)
    np.testing.assert_allclose(rebuilt, f_all, atol=1e-5)


def test_shift_check_holds_at_initialisation(case):
    config, module, trace = case
    check = wt.check_shift(trace, module)
    assert check.weights_are_shift
    assert check.max_difference < 1e-5 < check.max_magnitude


def test_shift_check_fails_when_the_kernels_are_not_shifts():
    config = CONFIGS["official-stride2"]
    module = config.build()
    with torch.no_grad():
        module.dep_conv.weight.add_(0.05 * torch.randn_like(module.dep_conv.weight))
    check = wt.check_shift(trace_forward(module, config.make_input()), module)
    assert not check.weights_are_shift
    assert check.max_difference > 1e-2


def test_shift_sum_by_loops():
    """shift_sum against a loop over output pixels with explicit zero padding."""
    torch.manual_seed(3)
    b, kc, d, h, w, head, s, pad = 1, 3, 2, 5, 6, 2, 2, 1
    f_all = torch.randn(b, kc * kc, d, h * w)
    ho, wo = -(-h // s), -(-w // s)
    got = wt.shift_sum(f_all, h, w, kc, pad, s, head, ho, wo).numpy()
    f = f_all.double().numpy().reshape(b, kc * kc, d, h, w)
    for o in range(d * head):
        g = o // head
        for y in range(ho):
            for x in range(wo):
                total = 0.0
                for i in range(kc * kc):
                    a, e = divmod(i, kc)
                    r, c = y * s + a - pad, x * s + e - pad
                    if 0 <= r < h and 0 <= c < w:
                        total += f[0, i, g, r, c]
                assert got[0, o, y, x] == pytest.approx(total, abs=1e-12)


def test_dep_conv_bias_is_missing(case):
    config, module, _ = case
    info = wt.dep_conv_bias(module)
    assert not info.present and "dep_conv.bias" not in module.state_dict()
    assert info.params_without == config.out_planes * config.kernel_conv**4
    assert info.params_with - info.params_without == config.out_planes


# ---------------------------------------------------------------------------------------------
# Mix
# ---------------------------------------------------------------------------------------------


def test_remix_at_the_module_rates_is_the_output(case):
    _, module, trace = case
    a, c = trace["out_att"].tensor, trace["out_conv"].tensor
    mixed = wt.remix(a, c, float(module.rate1.detach()), float(module.rate2.detach()))
    np.testing.assert_allclose(mixed.numpy(), t2np(trace["out"].tensor), atol=1e-6)
    np.testing.assert_allclose(wt.remix(a, c, -0.3, 1.7).numpy(),
                               -0.3 * t2np(a) + 1.7 * t2np(c), atol=1e-12)


def test_path_shares():
    a = torch.tensor([[[[3.0]], [[0.0]]]])  # (1, 2, 1, 1): channel 0 only
    c = torch.tensor([[[[0.0]], [[4.0]]]])
    s = wt.path_shares(a, c, 1.0, 1.0)
    assert (s.norm_att, s.norm_conv) == (3.0, 4.0)
    assert s.attention == pytest.approx(3 / 7) and s.convolution == pytest.approx(4 / 7)
    s = wt.path_shares(a, c, -2.0, 0.5)  # |rate| weighs the norms
    assert s.attention == pytest.approx(6 / 8)
    assert wt.path_shares(a, c, 0.0, 0.0).attention == 0.0
    per = wt.channel_shares(a, c, 1.0, 1.0)
    assert per["attention share"].tolist() == [1.0, 0.0]


# ---------------------------------------------------------------------------------------------
# Channel grouping: the table against experiments on the module
# ---------------------------------------------------------------------------------------------


def changed_channels(before: torch.Tensor, after: torch.Tensor) -> set[int]:
    diff = (after - before).abs().amax(dim=(0, 2, 3))
    return set(torch.nonzero(diff > 1e-6).flatten().tolist())


@pytest.mark.parametrize("name", ["official", "fixed-kc1"])
def test_grouping_table_matches_experiments(name):
    config = CONFIGS[name]
    module = config.build()
    x = config.make_input()
    table = wt.channel_grouping_frame(config).set_index("output channel")
    kc2 = config.kernel_conv**2
    base = trace_forward(module, x)
    with torch.no_grad():
        # dep_conv: a change in one f_conv channel reaches exactly its group's output channels.
        f_conv = base["f_conv"].tensor
        out = module.dep_conv(f_conv)
        for j in range(f_conv.shape[1]):
            bumped = f_conv.clone()
            bumped[:, j] += 1.0
            got = changed_channels(out, module.dep_conv(bumped))
            assert got == set(table.index[table["conv group"] == j // kc2])
        for c in range(config.out_planes):
            # q channel c sets the weights of its head: every channel of that head moves.
            module.conv1.bias[c] += 1.0
            after = trace_forward(module, x)
            module.conv1.bias[c] -= 1.0
            head = table.loc[c, "attention head"]
            assert changed_channels(base["out_att"].tensor, after["out_att"].tensor) == set(
                table.index[table["attention head"] == head])
            # v channel c: out_att channel c only, and the conv outputs listing c.
            module.conv3.bias[c] += 1.0
            after = trace_forward(module, x)
            module.conv3.bias[c] -= 1.0
            assert changed_channels(base["out_att"].tensor, after["out_att"].tensor) == {c}
            listed = {o for o in table.index
                      if c in map(int, table.loc[o, "q/k/v channels (conv)"].split(", "))}
            assert changed_channels(base["out_conv"].tensor, after["out_conv"].tensor) == listed


def test_group_spread(case):
    config, _, trace = case
    within, across = wt.group_spread(trace, config)
    assert within == 0.0
    assert across > 0.0 or config.head_dim == 1


# ---------------------------------------------------------------------------------------------
# What the page can show
# ---------------------------------------------------------------------------------------------


def test_plan_defaults_and_fallback():
    plan = wt.plan_walkthrough(ACmixConfig())
    assert plan.shown == ACmixConfig() and not plan.problems and plan.refusal is None
    plan = wt.plan_walkthrough(ACmixConfig(kernel_conv=5))
    assert plan.fallback and plan.shown == ACmixConfig(kernel_conv=5, variant="fixed")
    assert any("kernel_conv" in p.message for p in plan.problems)
    plan = wt.plan_walkthrough(ACmixConfig(height=57, stride=2))  # Q3: odd size with stride
    assert plan.fallback and plan.shown.variant == "fixed"
    plan = wt.plan_walkthrough(ACmixConfig(head=5))  # neither variant runs
    assert plan.shown is None and not plan.fallback and plan.problems


def test_plan_refuses_a_trace_over_budget_and_offers_one_that_fits():
    limit = 300 << 20
    config = ACmixConfig(batch=3)
    assert budget.trace_bytes(ACmixConfig()) <= limit < budget.trace_bytes(config)
    assert wt.plan_walkthrough(ACmixConfig(), limit).shown == ACmixConfig()
    plan = wt.plan_walkthrough(config, limit)
    assert plan.shown is None and plan.refusal.estimate == budget.trace_bytes(config)
    nearby = plan.refusal.nearby
    assert nearby.is_valid and budget.trace_bytes(nearby) <= limit
    assert "300.0 MiB" in plan.refusal.message()
    # The fallback's configuration is the one that is measured.
    plan = wt.plan_walkthrough(ACmixConfig(kernel_conv=5, batch=3), limit)
    assert plan.fallback and plan.refusal.estimate == budget.trace_bytes(
        ACmixConfig(kernel_conv=5, batch=3, variant="fixed"))


def test_trace_estimate_covers_the_trace(case):
    """The budget is checked against an estimate: it must not be below what a trace holds."""
    config, _, trace = case
    assert budget.trace_bytes(config) >= trace.tensor_bytes()


# ---------------------------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------------------------


def test_charts_build_with_tooltips_and_selection():
    config = CONFIGS["official"]
    module = config.build()
    trace = trace_forward(module, config.make_input())
    df, _ = wt.map_frame(t2np(trace["out_att"].tensor)[0, 0])
    spec = charts.map_heatmap(df, "map", select=True, marker=(2, 3)).to_dict()
    (param,) = spec["params"]  # Altair lifts a layer's selection to the top level
    assert param["name"] == charts.QUERY_SELECTION and param["select"]["fields"] == ["row", "col"]
    assert {t["field"] for t in spec["layer"][0]["encoding"]["tooltip"]} == {"row", "col", "value"}
    assert spec["autosize"] == {"type": "pad"}
    tall = charts.map_heatmap(wt.map_frame(np.zeros((200, 3)))[0], "tall", size=260).to_dict()
    assert (tall["width"], tall["height"]) == (40, 260)
    rows = next(iter(spec["datasets"].values()))
    assert len(rows) == config.out_height * config.out_width
    insp = wt.inspect_query(trace, config, 0, 0, 0, 0)
    panels = wt.window_panels_frame(insp, channel=1)
    assert len(panels) == 5 * config.kernel_att**2
    np.testing.assert_array_equal(
        panels.loc[panels["order"] == 0, "value"], insp.pe_diff[1])
    np.testing.assert_array_equal(
        panels.loc[panels["order"] == 4, "value"], insp.cells["weight"])
    wins = [w.to_dict() for w in charts.window_panels(panels)]
    assert len(wins) == 5
    titles = [w["title"]["text"] for w in wins]
    assert titles[1:] == [["content q·k"], ["position q·(pe_q − pe_key)"], ["logit (recorded)"],
                          ["softmax weight (recorded)"]]
    for w in wins:  # each panel its own colour scale, its own (phone-sized) plot
        assert (w["width"], w["height"]) == (170, 170)
    y_titles = [w["layer"][0]["encoding"]["y"]["title"] for w in wins]
    assert y_titles == ["offset y", None, None, None, None]  # one axis title keeps the row narrow
    for chart in (
        charts.key_window_chart(wt.key_window_frame(trace, config, insp, 0), (0, 0), "k"),
        charts.fc_matrix_chart(wt.fc_matrix_frame(module)),
        charts.shift_kernel_chart(wt.shift_kernel_frame(module, 0), config.kernel_conv, "w"),
        charts.shift_kernel_chart(wt.shift_kernel_frame(ACmixConfig(
            variant="fixed", kernel_conv=7).build(), 0), 7, "w"),
        *charts.grouping_charts(wt.channel_grouping_frame(config)),
        charts.channel_share_chart(wt.channel_shares(trace["out_att"].tensor,
                                                     trace["out_conv"].tensor, 0.5, 0.5)),
    ):
        assert chart.to_dict()


@pytest.mark.parametrize("text", [
    "convolution path: dep_conv group of each output channel (o // h)",
    "卷积路径：每个输出通道所属的 dep_conv 组（o // h）",
    "rate1·out_att + rate2·out_conv，通道 17（2×2 块的均值）",
    "非常长的中文标题需要在任意位置断行以适应窄屏幕的宽度限制非常长的中文标题",
])
def test_long_titles_break_into_lines_that_fit(text):
    """A chart's title never widens it past its plot: lines fit the width (estimated), nothing is lost,
    no line starts with closing punctuation, and a short formula in parentheses stays whole."""
    lines = charts.title_lines(text, 160)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for line in lines:
        assert charts._text_width(line) <= 160 or " " not in line.strip() and len(line) <= 12
        assert line[0] not in "）。，、：；)"
    assert not any(line.endswith("(o //") or line.endswith("（o //") for line in lines)


def test_conv_p_bias_is_dead_and_its_gradient_is_rounding():
    """Independent route: moving conv_p's bias leaves the float64 output unchanged (to rounding),
    so its true gradient is zero; autograd's value is within a few epsilon of the weight's."""
    config = ACmixConfig(in_planes=8, out_planes=16, head=2, kernel_att=5, stride=2, height=12,
                         width=10, batch=2)
    module, x = config.build().double(), config.make_input(dtype=torch.float64)
    with torch.no_grad():
        before = module(x)
        module.conv_p.bias.add_(torch.linspace(-3.0, 5.0, config.head_dim, dtype=torch.float64))
        after = module(x)
    assert float((after - before).abs().max()) <= 1e-12 * float(before.abs().max())
    g = wt.conv_p_gradients(config.build(), config.make_input())
    assert g.weight64 > 1e-3 and g.bias64 <= 1e-12 * g.weight64
    assert g.bias32 <= 1e-4 * g.weight32
    assert abs(g.weight32 - g.weight64) <= 1e-4 * g.weight64  # the same loss in both dtypes


def test_conv_p_gradients_of_a_frozen_module():
    """A trained layer is handed out frozen (no parameter requires a gradient); the check still runs,
    on its copy, and leaves the module frozen."""
    config = ACmixConfig(in_planes=8, out_planes=16, head=2, kernel_att=3, height=8, width=8)
    module = config.build().requires_grad_(False)
    g = wt.conv_p_gradients(module, config.make_input())
    assert g.weight64 > 0 and g.bias64 <= 1e-12 * g.weight64
    assert not any(p.requires_grad for p in module.parameters())


def test_conv_p_gradients_leave_the_shared_module_alone():
    config = ACmixConfig(in_planes=4, out_planes=8, head=2, kernel_att=3, height=6, width=6)
    module = config.build()
    state = {k: v.clone() for k, v in module.state_dict().items()}
    wt.conv_p_gradients(module, config.make_input())
    assert all(p.grad is None for p in module.parameters())
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())
    assert next(module.parameters()).dtype == torch.float32


def test_offset_label_names_the_kernel_row_and_column():
    assert wt.offset_label(5, 3, 1) == "i=5: kernel row 1, column 2 (shift +0, +1)"
    assert wt.offset_label(0, 5, 2) == "i=0: kernel row 0, column 0 (shift -2, -2)"


# ---------------------------------------------------------------------------------------------
# Issue 11, item 4: every section's extra work is estimated, and no float64 copies of whole tensors
# ---------------------------------------------------------------------------------------------
# The configuration (kernel_conv 15 on an 8×8 map), at batch 4 instead of 64.
ITEM4 = ACmixConfig(in_planes=8, out_planes=128, kernel_att=1, head=2, kernel_conv=15, height=8, width=8,
                    batch=4, variant="fixed")


@pytest.fixture(scope="module")
def item4():
    module = ITEM4.build()
    return module, trace_forward(module, ITEM4.make_input())


def peak_of(fn, *args):
    from convmix.memory import LiveBytes

    counter = LiveBytes()
    with counter:
        result = fn(*args)
    return counter.peak, result


def test_check_shift_makes_no_padded_float64_copy(item4):
    """check_shift made float64 copies of f_all and of a zero-padded buffer: 4.76 GB at batch 64."""
    module, trace = item4
    f_all = trace["f_all"].tensor
    padded_copy = 8 * f_all.shape[0] * f_all.shape[1] * f_all.shape[2] * (8 + 14) ** 2
    peak, check = peak_of(wt.check_shift, trace, module)
    assert peak <= wt.check_shift_bytes(ITEM4) < padded_copy // 50
    assert check.max_difference < 1e-4 * check.max_magnitude and check.weights_are_shift


def test_shift_check_still_catches_other_kernels(item4):
    module, trace = item4
    broken = ITEM4.build()
    with torch.no_grad():
        broken.dep_conv.weight[0, 0, 0, 0] += 1.0
    check = wt.check_shift(trace_forward(broken, ITEM4.make_input()), broken)
    assert not check.weights_are_shift and check.max_difference > 1e-3


@pytest.mark.parametrize("shape, index", [((64, 1024, 40), None), ((8, 3, 200, 300), (slice(None), 1)),
                                          ((2, 4, 300, 300), (slice(None), slice(None), slice(None, None, 3)))])
def test_statistics_without_a_float64_copy(shape, index):
    """tensor_stats's mean(dtype=float64) copied the whole tensor to float64 (the overview's peak)."""
    t = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    if index is not None:
        t = t[index]  # a view that is not contiguous
    peak, stats = peak_of(wt.tensor_stats, t)
    assert peak <= 8 * wt.STATS_CHUNK + 4096
    ref = t.numpy().astype(np.float64)
    assert stats["mean"] == pytest.approx(ref.mean(), rel=1e-9, abs=1e-12)
    assert stats["std"] == pytest.approx(ref.std(ddof=1), rel=1e-5)
    assert (stats["min"], stats["max"]) == (ref.min(), ref.max())


def _section_work(section, trace, module, config):
    """What the page computes for a section, beyond drawing the map slices."""
    out_att, out_conv = trace["out_att"].tensor, trace["out_conv"].tensor
    if section == "mix":
        wt.path_shares(out_att, out_conv, 0.5, 0.5)
        remixed = wt.remix(out_att, out_conv, 0.7, 0.2)
        same = float((wt.remix(out_att, out_conv, 0.5, 0.5) - trace["out"].tensor.double()).abs().max())
        return remixed, same, wt.channel_shares(out_att, out_conv, 0.7, 0.2)
    if section == "conv_p":
        return wt.conv_p_plane_error(trace, module), wt.conv_p_frame(module)
    if section == "dep_conv":
        return wt.check_shift(trace, module), wt.shift_kernel_frame(module, 0)
    if section == "channel_grouping":
        return wt.group_spread(trace, config), wt.channel_grouping_frame(config)
    if section == "overview":
        return wt.steps_frame(trace)
    raise KeyError(section)


@pytest.mark.parametrize("section", ["overview", "mix", "conv_p", "dep_conv", "channel_grouping"])
@pytest.mark.parametrize("name", ["item4", "wide-map"])
def test_each_sections_estimate_covers_its_work(item4, section, name):
    if name == "item4":
        config, (module, trace) = ITEM4, item4
    else:
        config = ACmixConfig(in_planes=8, out_planes=64, head=2, kernel_att=3, height=48, width=48, batch=3)
        module = config.build()
        trace = trace_forward(module, config.make_input())
    peak, _ = peak_of(_section_work, section, trace, module, config)
    assert peak <= wt.section_extra_bytes(config, section)


def test_a_section_that_does_not_fit_beside_the_trace_is_refused():
    limit = budget.in_use() + wt.section_extra_bytes(ITEM4, "overview") + (4 << 20)
    assert wt.section_refusal(ITEM4, "overview", limit) is None
    assert wt.section_extra_bytes(ITEM4.with_(batch=64), "mix") > 8 << 20
    refusal = wt.section_refusal(ITEM4.with_(batch=64), "mix", budget.in_use() + (4 << 20))
    assert refusal is not None and "The section “Mix” of this walkthrough would need about" in refusal.message()
