"""The training page's library parts: chunks under the run slots, the ablation and its cache, the
library's own words for URL notes, settings that cannot run and stops (in both languages), and the
chart builders (through chart.to_dict()). Tiny networks on one thread; the page itself is
tests/test_page_train.py."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from convmix import charts_train, train_frames
from convmix.acmix import ACmix
from convmix.digits import default_split, load_digits
from convmix.i18n import language
from convmix.train import ABLATIONS, LIMITS, TIMING_KEYS, TrainConfig, Trainer, summary
from convmix.train_limits import RunSlots
from convmix.train_live import (
    LIVE_LOGS,
    MAX_LOGS_PER_EPOCH,
    AblationCache,
    AblationRun,
    advance,
    live_log_every,
    live_trainer,
    stop_message,
    stopped_by_time_cap,
)
from convmix.ui.training import URL_PREFIX
from tests.i18n_text import english_runs
from tests.library_messages import assert_translated, in_both

TINY = TrainConfig(width=4, head=1, kernel_att=3, stride=2, batch=256, epochs=1)
N_TRAIN = len(default_split().train)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def comparable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history]


# -- chunks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [TrainConfig(), TrainConfig(epochs=1), TrainConfig(epochs=2), TrainConfig(epochs=50),
                                    TrainConfig(batch=31), TrainConfig(batch=256, epochs=3), TrainConfig(batch=1)])
def test_live_logs_fall_on_epoch_ends_and_are_bounded(config):
    every = live_log_every(config, N_TRAIN)
    steps = config.steps_per_epoch(N_TRAIN)
    assert steps % every == 0  # every epoch's end is a log point, no stub of steps between logs
    assert steps // every <= MAX_LOGS_PER_EPOCH
    # about LIVE_LOGS over the run (rounding up adds at most one per epoch), at least one per epoch
    logs = config.epochs * (steps // every)
    assert config.epochs <= logs <= max(LIVE_LOGS + config.epochs, config.epochs)


def test_a_chunk_holds_one_slot_while_it_trains_and_none_after():
    slots = RunSlots(2)
    trainer = live_trainer(TINY, time_limit_s=60)
    seen = []
    original = trainer.step

    def step(n=1):
        seen.append(slots.active)
        return original(n)

    trainer.step = step
    chunk = advance(trainer, slots, max_steps=2)
    assert chunk.steps == 2 and not chunk.busy
    assert seen == [1, 1] and slots.active == 0


def test_no_free_slot_means_no_training():
    slots = RunSlots(1)
    trainer = live_trainer(TINY, time_limit_s=60)
    assert slots.try_acquire()
    chunk = advance(trainer, slots, max_steps=3)
    assert chunk.busy and chunk.steps == 0 and trainer.step_count == 0
    slots.release()
    assert advance(trainer, slots, max_steps=3).steps == 3


def test_chunks_of_any_size_give_the_run_in_one_go():
    slots = RunSlots(1)
    chunked = live_trainer(TINY.with_(epochs=2), time_limit_s=60)
    sizes = []
    while not chunked.stopped:
        sizes.append(advance(chunked, slots, max_steps=chunked.log_every, seconds=0.0).steps)
    whole = live_trainer(TINY.with_(epochs=2), time_limit_s=60)
    whole.run()
    assert set(sizes) == {1}  # seconds=0: one step per chunk
    assert comparable(chunked.history) == comparable(whole.history)
    assert len(chunked.snapshots) == len(whole.snapshots) == 4
    for a, b in zip(chunked.snapshots, whole.snapshots, strict=True):
        assert a.step == b.step and torch.equal(a.attention["mixer"], b.attention["mixer"])


def test_a_chunk_stops_at_the_end_of_the_run():
    slots = RunSlots(1)
    trainer = live_trainer(TINY, time_limit_s=60)
    assert advance(trainer, slots, max_steps=100).steps == trainer.total_steps == 6
    assert trainer.finished and advance(trainer, slots, max_steps=5).steps == 0


# -- the ablation ---------------------------------------------------------------------------------


def test_the_ablation_trains_the_four_networks_as_separate_runs_would():
    slots, cache = RunSlots(1), AblationCache()
    run = AblationRun(TINY, time_limit_s=60)
    while not run.finished:
        run.advance(slots, cache, seconds=0.0)
    assert list(run.results) == list(ABLATIONS) and slots.active == 0
    for name in ABLATIONS:
        alone = Trainer(TINY.with_(ablation=name), time_limit_s=60)
        alone.run()
        expected = {k: v for k, v in summary(alone).items() if k != "seconds"}
        got = {k: v for k, v in run.results[name].summary.items() if k != "seconds"}
        assert got == expected
        assert run.results[name].curve == tuple((r["epoch"], r["held_out_accuracy"]) for r in alone.history)
        assert not run.results[name].cached
    assert len(cache) == 4


def test_identical_settings_come_from_the_cache_without_training(monkeypatch):
    slots, cache = RunSlots(1), AblationCache()
    first = AblationRun(TINY, time_limit_s=60)
    while not first.finished:
        first.advance(slots, cache)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached network was trained again")

    monkeypatch.setattr("convmix.train_live.Trainer", no_training)
    again = AblationRun(TINY.with_(ablation="conv_only"), time_limit_s=60)  # the single run's network is irrelevant
    assert again.advance(slots, cache).steps == 0 and again.finished
    assert all(r.cached for r in again.results.values())
    assert {n: r.summary for n, r in again.results.items()} == {n: r.summary for n, r in first.results.items()}
    other = AblationRun(TINY.with_(seed=1), time_limit_s=60)
    with pytest.raises(AssertionError, match="trained again"):
        other.advance(slots, cache)


def test_runs_stopped_by_the_time_cap_are_not_cached():
    slots, cache = RunSlots(1), AblationCache()
    run = AblationRun(TINY, time_limit_s=1e-9)
    while not run.finished:
        run.advance(slots, cache)
    assert all(stopped_by_time_cap(r.summary["stop_reason"]) for r in run.results.values())
    assert len(cache) == 0


def test_the_cache_is_bounded():
    cache = AblationCache(max_entries=2)
    run = AblationRun(TINY, time_limit_s=60)
    while not run.finished:
        run.advance(RunSlots(1), cache)
    assert len(cache) == 2
    assert cache.get(TINY.with_(ablation="learned")) is None and cache.get(TINY.with_(ablation="plain_conv"))


def test_a_busy_server_holds_the_ablation_where_it_is():
    slots, cache = RunSlots(1), AblationCache()
    run = AblationRun(TINY, time_limit_s=60)
    assert slots.try_acquire()
    assert run.advance(slots, cache).busy and run.current is None and not run.results
    slots.release()
    chunk = run.advance(slots, cache)
    assert not chunk.busy and chunk.steps == 6 and list(run.results) == ["learned"]


# -- words ----------------------------------------------------------------------------------------

HOSTILE = {
    "width": "abc", "head": "8.5", "kernel_att": "1e400", "stride": "99", "lr": "nan", "epochs": "-3",
    "batch": "", "seed": "9" * 30, "stem_bn": "maybe", "ablation": "<script>alert(1)</script>", "variant": "`x`",
}


def url_notes(params: dict) -> list[str]:
    """The notes the training page shows: TrainConfig's own, for its `train_` parameters."""
    return TrainConfig.from_query_params(params, prefix=URL_PREFIX)[1]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_rejected_url_value_gets_a_note_that_names_it_and_its_fallback(lang):
    params = {URL_PREFIX + k: v for k, v in HOSTILE.items()}
    with language(lang):
        notes = url_notes(params)
    assert len(notes) == len(HOSTILE)
    default = TrainConfig()
    for name in HOSTILE:
        note = next(n for n in notes if f" {URL_PREFIX}{name}=" in n)
        shown = str(getattr(default, name)).lower() if name in ("stem_bn",) else str(getattr(default, name))
        assert shown.replace(",", "") in note.replace(",", "")
        assert "<" not in note and "`" not in note  # nothing of the URL can format the page
        if lang == "zh":
            assert english_runs(note) == []


def test_valid_url_values_get_no_note():
    params = TrainConfig(width=8, head=2, lr=0.1, stem_bn=True, ablation="conv_only").to_query_params(prefix=URL_PREFIX)
    assert url_notes(params) == []


def _reachable_configs():
    """Values across the settings' bounds (the widgets allow nothing outside LIMITS)."""
    assert LIMITS["kernel_att"] == (1, 15) and LIMITS["stride"] == (1, 8)
    for width in (1, 2, 3, 6, 8, 16, 24, 64):
        for head in (1, 3, 4, 7, 64):
            for kernel_att in range(1, 16):
                for stride in range(1, 9):
                    for variant in ("official", "fixed"):
                        yield TrainConfig(width=width, head=head, kernel_att=kernel_att, stride=stride, variant=variant)


def test_every_constraint_the_settings_can_break_is_said_in_both_languages():
    broken, worded = 0, {}
    for config in _reachable_configs():
        with language("en"):
            english = [p.sentence() for p in config.problems()]
        if not english:
            continue
        broken += 1
        with language("zh"):
            chinese = [p.sentence() for p in config.problems()]
        assert len(english) == len(chinese)
        for en, zh in zip(english, chinese, strict=True):
            if en not in worded:  # each distinct sentence checked once
                assert_translated(en, zh)
                worded[en] = zh
    assert broken > 1000 and len(worded) > 30


def test_the_words_suggest_what_works():
    config = TrainConfig(width=16, head=3, kernel_att=4, stride=3)
    text = " ".join(p.sentence() for p in config.problems())
    assert "Heads that divide 16: 1, 2, 4, 8 and 16." in text
    for head in (1, 2, 4, 8, 16):
        assert not config.with_(head=head, kernel_att=5, stride=2).problems()
    assert "Try kernel_att = 3 or 5." in text
    assert "Use stride 1, 2, 4 or 8, or the fixed variant." in text
    assert not config.with_(head=4, kernel_att=5, variant="fixed").problems()


def test_stop_messages_tell_the_time_cap_from_a_loss_that_is_not_finite():
    capped = Trainer(TINY, time_limit_s=1e-9)
    capped.step(3)
    assert stopped_by_time_cap(capped.stop_reason) and "cap of 1e-09 s" in stop_message(capped)
    data = load_digits()
    broken = type(data)(images=data.images.clone(), labels=data.labels)
    broken.images[default_split().train] = float("inf")
    diverged = Trainer(TINY, data=broken)
    diverged.step(3)
    assert diverged.stop_reason and not stopped_by_time_cap(diverged.stop_reason)
    assert "learning rate 0.05 is too high" in stop_message(diverged) and "Try 0.0167" in stop_message(diverged)
    for stopped in (capped, diverged):
        assert_translated(*in_both(lambda stopped=stopped: stop_message(stopped)))
    running = Trainer(TINY)
    assert stop_message(running) is None
    running.run()
    assert running.finished and stop_message(running) is None


def test_busy_message_in_both_languages():
    assert RunSlots(1).busy_message().startswith("1 training run is")
    assert RunSlots(2).busy_message().startswith("2 training runs are")
    assert_translated(*in_both(RunSlots(2).busy_message))


# -- charts ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished():
    trainer = Trainer(TINY.with_(epochs=2, stem_bn=True), log_every=2, snapshot_count=3)
    trainer.run()
    return trainer


def _values(spec: dict) -> list[dict]:
    return next(iter(spec["datasets"].values()))


def test_curve_charts_hold_the_logged_values_with_translated_labels(finished):
    frame = train_frames.curves_frame(finished.history)
    spec = charts_train.curve_chart(frame, "accuracy", epochs=2).to_dict()
    assert spec["encoding"]["x"]["scale"]["domain"] == [0, 2]
    rows = _values(spec)
    held = [r["value"] for r in rows if r["split"] == "held-out"]
    assert held == [r["held_out_accuracy"] for r in finished.history]
    assert {r["split"] for r in rows} == {"training", "held-out"} and spec["autosize"]["type"] == "fit-x"
    with language("zh"):
        zh = charts_train.curve_chart(frame, "loss").to_dict()
    assert {r["split"] for r in _values(zh)} == {"训练", "留出集"} and zh["title"] == "损失（F.cross_entropy）"
    assert [r["value"] for r in _values(zh) if r["split"] == "训练"] == [
        r["train_loss"] for r in finished.history if r["train_loss"] is not None]


def test_rates_and_bias_charts(finished):
    rates = charts_train.rates_chart(train_frames.rates_frame(finished.history)).to_dict()
    assert "strokeDash" not in rates["encoding"]  # one ACmix layer
    two = train_frames.rates_frame(finished.history)
    two = pd.concat([two, two.assign(layer="other")])
    assert "strokeDash" in charts_train.rates_chart(two).to_dict()["encoding"]
    bias = charts_train.bias_chart(train_frames.bias_frame(finished.history), "BatchNorm bias").to_dict()
    rows = _values(bias)
    assert len(rows) == len(finished.history) * 4 and bias["encoding"]["detail"]["field"] == "channel"
    assert [r["value"] for r in rows if r["channel"] == 2] == [h["bn_bias"][2] for h in finished.history]


@pytest.mark.parametrize("kernel_att", [1, 3, 5, 7, 15])
@pytest.mark.parametrize("stride", [1, 2, 4])
def test_the_outlined_window_is_what_the_layer_unfolds(kernel_att, stride):
    """The authors' own padding and unfold of a map of pixel indices: the window of query (r, c)
    reads exactly the pixels of the outlined rectangle (reflection brings outside ones back in)."""
    layer = ACmix(4, 4, kernel_att, 1, 3, stride)
    indices = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    columns = layer.unfold(layer.pad_att(indices))  # (1, K, Ho*Wo)
    out = 8 // stride
    for r in range(out):
        for c in range(out):
            read = {int(v) for v in columns[0, :, r * out + c]}
            r0, r1, c0, c1 = charts_train.window_bounds(r, c, stride, kernel_att, 8)
            assert read == {y * 8 + x for y in range(r0, r1 + 1) for x in range(c0, c1 + 1)}


def test_digit_and_attention_charts(finished):
    snap = finished.snapshots[-1]
    frame = train_frames.attention_frame(snap, "mixer", 2, 1)
    mean = charts_train.attention_window_frame(frame, None)
    att = snap.attention["mixer"][:, :, 2, 1].mean(0)  # (K,) mean over heads
    assert mean.sort_values(["dy", "dx"])["weight"].tolist() == pytest.approx(att.tolist())
    assert sorted(set(mean["dy"])) == [-1, 0, 1]
    one = charts_train.attention_window_frame(frame, 0)
    assert one["weight"].sum() == pytest.approx(1.0)
    spec = charts_train.attention_chart(one, "step", "sub", max_weight=0.7).to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == [0, 0.7] and spec["autosize"]["type"] == "pad"
    digit = charts_train.digit_chart(finished.probe_pixels, "digit", query=(4, 2), window=(3, 5, 1, 3)).to_dict()
    layers = digit["layer"]
    assert len(layers) == 3
    cells = _values({"datasets": {k: v for k, v in digit["datasets"].items() if len(v) == 64}})
    assert [r["value"] for r in sorted(cells, key=lambda r: (r["row"], r["col"]))] == \
        finished.probe_pixels.flatten().tolist()
    boxes = [v[0] for v in digit["datasets"].values() if len(v) == 1]
    assert {"row": 3, "row2": 6, "col": 1, "col2": 4} in boxes and {"row": 4, "row2": 5, "col": 2, "col2": 3} in boxes


def test_ablation_chart_keeps_the_networks_in_order():
    order = ["b", "a"]
    frame = pd.DataFrame({"network": ["a", "b"], "epoch": [1.0, 1.0], "accuracy": [0.5, 0.6]})
    spec = charts_train.ablation_chart(frame, order).to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == order
    assert spec["encoding"]["y"]["scale"]["domain"] == [0, 1]
