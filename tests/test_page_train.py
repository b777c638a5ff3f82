"""AppTest of the training page: start, chunks, pause, resume, reset; the same settings give the same
logged values in two sessions; refusals (memory, time, busy); hostile URL values; the settings' URL
round trip; the ablation and its cache; the checkpoint download; English and Chinese.

A tiny network keeps it fast: width 4, one head, a 3x3 window, 256 digits per step, so an epoch is
6 steps and a chunk 2 (convmix.train_live.live_log_every).
"""

from __future__ import annotations

import contextvars
import io
import json
import random
from dataclasses import fields

import pyarrow as pa
import pytest
import torch
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from convmix.budget import BUDGET_ENV
from convmix.digits import default_split, load_digits
from convmix.train import LIMITS, TrainConfig
from convmix.train_checkpoint import FORMAT, load_checkpoint
from convmix.train_limits import RUN_SLOTS, StepTiming
from convmix.ui.training import ABLATION_KEY, JOB_KEY, TRAINER_KEY
from tests.i18n_text import english_left, english_runs

PAGE = "pages/train.py"
TINY = {"train_width": 4, "train_head": 1, "train_kernel_att": 3, "train_batch": 256, "train_epochs": 2}
TINY_CONFIG = TrainConfig(width=4, head=1, kernel_att=3, batch=256, epochs=2)
CHUNK = 2  # steps per chunk of TINY (a divisor of its 6 steps per epoch, at most 4 logs per epoch)


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """Tiny networks run fastest on one thread (and the same thread count gives the same values)."""
    monkeypatch.setenv("CONVMIX_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def page(app, monkeypatch):
    def open_page(lang: str = "en", tiny: bool = True, **params):
        # AppTest formats a menu's value with the menu's format_func in the test's own thread: that
        # thread must speak the page's language too (the app sets it in the script's thread).
        monkeypatch.setattr("convmix.i18n._active", contextvars.ContextVar("test_language", default=lang))
        at = app(PAGE, query_params={"lang": lang, **(TINY if tiny else {}), **params})
        assert not at.exception
        return at

    return open_page


def trainer(at):
    return at.session_state[TRAINER_KEY] if TRAINER_KEY in at.session_state else None


def job(at):
    return at.session_state[JOB_KEY] if JOB_KEY in at.session_state else None


def click(at, key: str):
    at.button(key=key).click().run()
    assert not at.exception
    return at


def buttons(at) -> set[str]:
    return {b.key for b in at.button if not b.disabled}


def run_to_end(at, limit: int = 40):
    for _ in range(limit):
        if job(at) is None:
            return at
        at.run()
        assert not at.exception
    raise AssertionError("the run did not end")


def charts(at) -> dict[str, list[dict]]:
    """Every chart's rows by its title."""
    out = {}
    for el in at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        title = spec.get("title") or spec.get("layer", [{}])[0].get("title")  # the digit is a layer chart
        title = title if isinstance(title, str) else title.get("text")
        rows = []
        for ds in el.proto.datasets:
            rows += pa.ipc.open_stream(ds.data.data).read_all().to_pylist()
        out[title] = rows
    return out


def texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
                     + [w.value for w in at.warning] + [s.value for s in at.success] + [i.value for i in at.info])


# -- controls -------------------------------------------------------------------------------------


def test_start_chunks_pause_resume_reset(page):
    at = page()
    assert trainer(at) is None and {"run_start", "ablation_start"} <= buttons(at) and "run_reset" not in buttons(at)
    assert "The ACmix configuration in the sidebar does not apply on this page" in texts(at)
    click(at, "run_start")
    run = trainer(at)
    assert run.config == TINY_CONFIG and job(at) == "run"
    assert run.step_count == CHUNK and "run_pause" in buttons(at)  # the click's own run trained a chunk
    at.run()
    assert run.step_count == 2 * CHUNK and RUN_SLOTS.active == 0
    click(at, "run_pause")
    paused_at = run.step_count
    at.run().run()
    assert run.step_count == paused_at and "run_resume" in buttons(at) and RUN_SLOTS.active == 0
    assert "Paused." in texts(at)
    assert at.download_button(key="run_download") is not None
    click(at, "run_resume")
    assert run.step_count == paused_at + CHUNK
    run_to_end(at)
    assert run.finished and run.step_count == 12 and "run_start" in buttons(at)
    assert at.button(key="run_start").label == "Start again"
    assert any("Finished: held-out accuracy" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["held-out accuracy"] == f"{run.history[-1]['held_out_accuracy']:.2%}"
    assert metrics["rate1"] == f"{run.history[-1]['rate1']['mixer']:.4f}"
    assert "Epoch 2.0 of 2 · step 12 of 12" in at.get("progress")[0].proto.text
    click(at, "run_reset")
    assert trainer(at) is None and "run_start" in buttons(at)
    assert at.button(key="run_start").label == "Start"


def test_the_charts_show_the_runs_own_values(page):
    at = page()
    click(at, "run_start")
    run_to_end(at)
    run = trainer(at)
    shown = charts(at)
    titles = list(shown)
    held = [r["value"] for r in shown["Accuracy"] if r["split"] == "held-out"]
    assert held == [r["held_out_accuracy"] for r in run.history]
    rate2 = [r["value"] for r in shown["rate1 and rate2 of each ACmix layer"] if r["rate"] == "rate2 (convolution)"]
    assert rate2 == [r["rate2"]["mixer"] for r in run.history]
    assert "Stem convolution's bias, one line per channel" in titles
    assert "BatchNorm's bias β, one line per channel" not in titles
    steps = [t for t in titles if t and t.startswith("step ")]
    assert len(steps) == 4 and steps[0] == "step 0 (epoch 0.0)" and steps[-1] == "step 12 (epoch 2.0)"


def test_batchnorm_after_the_stem_shows_both_biases(page):
    at = page(train_stem_bn="true")
    click(at, "run_start")
    run_to_end(at)
    assert "BatchNorm's bias β, one line per channel" in charts(at)
    caption = next(c.value for c in at.caption if c.value.startswith("With BatchNorm after the stem"))
    moved = float(caption.split("largest change so far: ")[1].split(")")[0])
    assert moved < 1e-5  # the stem's bias stands still: BatchNorm cancels it


def test_the_same_settings_give_the_same_logged_values_in_two_sessions(page):
    def finished_charts():
        at = page(train_seed="3")
        click(at, "run_start")
        run_to_end(at)
        metrics = [(m.label, m.value) for m in at.metric]
        return charts(at), metrics, trainer(at)

    first, first_metrics, one = finished_charts()
    second, second_metrics, two = finished_charts()
    assert one is not two and one.config.seed == 3
    assert first == second and first_metrics == second_metrics
    assert [r["held_out_loss"] for r in one.history] == [r["held_out_loss"] for r in two.history]


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_over_the_memory_budget_the_run_is_refused_with_what_fits(page, monkeypatch, lang):
    monkeypatch.setenv(BUDGET_ENV, "1MiB")
    at = page(lang, train_width="64", train_kernel_att="15", train_head="4", train_batch="256", train_stride="1")
    click(at, "run_start")
    assert trainer(at) is None and job(at) is None
    message = at.main.error[0].value
    if lang == "en":
        assert "over this server's memory budget of 1.0 MiB" in message and "A nearby configuration" in message
    else:
        assert "1.0 MiB" in message and english_left(at, "main") == []


def test_over_the_time_cap_the_run_is_refused_with_the_epochs_that_fit(page, monkeypatch):
    slow = StepTiming(batch=32, train_step_s=0.5, forward_s=0.2)
    monkeypatch.setattr("convmix.ui.training.measure_timing", lambda config: slow)
    at = page(train_epochs="20")
    click(at, "run_start")
    assert trainer(at) is None
    message = at.main.error[0].value
    assert "Training 20 epochs would take about" in message and "over the cap of 60 s per run" in message
    assert "epochs fit" in message or "Not even one epoch fits" in message


def test_busy_slots_hold_a_start_and_pause_a_running_run(page):
    at = page()
    taken = [RUN_SLOTS.try_acquire() for _ in range(RUN_SLOTS.capacity)]
    try:
        assert all(taken)
        click(at, "run_start")
        assert trainer(at) is None and "training runs are using this server's processor" in at.main.warning[0].value
    finally:
        for _ in taken:
            RUN_SLOTS.release()
    click(at, "run_start")
    run = trainer(at)
    before = run.step_count
    taken = [RUN_SLOTS.try_acquire() for _ in range(RUN_SLOTS.capacity)]
    try:
        at.run()
        assert run.step_count == before
        assert any("Your run waits where it is" in w.value for w in at.main.warning)
    finally:
        for _ in taken:
            RUN_SLOTS.release()
    at.run()
    assert run.step_count == before + CHUNK


# -- the URL --------------------------------------------------------------------------------------

HOSTILE = {
    "train_width": "abc", "train_head": "8.5", "train_kernel_att": "1e400", "train_stride": "-inf",
    "train_lr": "nan", "train_epochs": "9" * 40, "train_batch": "", "train_seed": "<script>alert(1)</script>",
    "train_stem_bn": "maybe", "train_ablation": "\"><img src=x onerror=alert(1)>", "train_variant": "Fixed;",
}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_hostile_url_values_fall_back_with_notes(page, lang):
    at = page(lang, tiny=False, **HOSTILE)
    notes = [w.value for w in at.main.warning]
    assert len(notes) == len(HOSTILE)
    assert all("<" not in n and "onerror=" not in n.replace("onerror", "") for n in notes)
    assert at.number_input(key="train_width").value == 16 and at.number_input(key="train_lr").value == 0.05
    assert at.selectbox(key=f"train_ablation_{lang}").value == "learned" and at.toggle(key="train_stem_bn").value is False
    assert not any(k in at.query_params for k in HOSTILE)  # the URL now holds what the page uses
    if lang == "zh":
        assert english_left(at, "main") == []
    else:
        assert any("URL parameter train_kernel_att='1e400' is not a whole number; using 7." in n for n in notes)


def test_random_hostile_urls_never_raise_and_the_widgets_show_what_the_parser_took(page):
    from tests.test_hostile_urls import HOSTILE as VALUES

    rng = random.Random(14)
    names = [f.name for f in fields(TrainConfig)]
    for _ in range(30):
        params = {}
        for name in rng.sample(names, rng.randint(1, len(names))):
            if rng.random() < 0.6:
                params["train_" + name] = rng.choice(VALUES + ["learned", "fixed", "true", "0.5", "1e-5"])
            elif name in LIMITS:
                low, high = LIMITS[name]
                params["train_" + name] = str(rng.choice([low, high, rng.randint(low, high)]))
        at = page(tiny=False, **params)
        expected, rejected = TrainConfig.from_query_params(params, prefix="train_")
        assert len(at.main.warning) == len(rejected), params
        assert at.number_input(key="train_width").value == expected.width
        assert at.number_input(key="train_lr").value == expected.lr
        assert at.number_input(key="train_seed").value == expected.seed
        assert at.selectbox(key="train_ablation_en").value == expected.ablation
        assert bool(at.main.error) == bool(expected.problems()), params


def test_settings_that_cannot_run_say_why_and_start_stays_off(page):
    at = page(train_width="16", train_head="3", train_kernel_att="4")
    error = at.main.error[0].value
    assert "head (3) must divide width (16)" in error and "kernel_att (4) must be odd" in error
    assert at.button(key="run_start").disabled and at.button(key="ablation_start").disabled


def test_settings_round_trip_through_the_url_and_survive_a_page_switch(app, page):
    at = page(tiny=False)
    assert not any(k.startswith("train_") for k in at.query_params)  # defaults stay out of the URL
    at.number_input(key="train_width").set_value(8).run()
    at.number_input(key="train_lr").set_value(0.1).run()
    at.toggle(key="train_stem_bn").set_value(True).run()
    at.selectbox(key="train_ablation_en").set_value("conv_only").run()
    expected = TrainConfig(width=8, lr=0.1, stem_bn=True, ablation="conv_only")
    assert {k: v for k, v in at.query_params.items() if k.startswith("train_")} == \
        expected.to_query_params(only_changed=True, prefix="train_")
    copied = dict(at.query_params)
    fresh = page(tiny=False, **copied)
    assert fresh.number_input(key="train_width").value == 8 and fresh.toggle(key="train_stem_bn").value is True
    assert fresh.selectbox(key="train_ablation_en").value == "conv_only" and fresh.number_input(key="train_lr").value == 0.1
    at.switch_page("pages/home.py").run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.number_input(key="train_width").value == 8 and at.selectbox(key="train_ablation_en").value == "conv_only"
    assert at.query_params.get("train_width") == "8"


# -- the ablation ---------------------------------------------------------------------------------


def test_the_ablation_runs_on_request_shows_each_result_and_is_cached(page):
    at = page(train_epochs="1")
    assert not at.dataframe
    click(at, "ablation_start")
    assert job(at) == "ablation"
    rows_seen = []
    for _ in range(30):
        if job(at) is None:
            break
        at.run()
        assert not at.exception
        rows_seen.append(len(at.dataframe[0].value) if at.dataframe else 0)
    assert at.session_state[ABLATION_KEY].finished
    table = at.dataframe[0].value
    assert table["network"].tolist() == ["learned mix (rate1 and rate2 learned)", "attention only (rate2 = 0)",
                                         "convolution only (rate1 = 0)", "plain 3×3 convolution"]
    assert rows_seen[0] < 4 and sorted(rows_seen) == rows_seen  # results arrive one by one
    results = at.session_state[ABLATION_KEY].results
    assert table["held-out accuracy"].tolist() == [results[n].summary["held_out_accuracy"] for n in results]
    assert table["parameters"].tolist() == [results[n].summary["parameters"] for n in results]
    assert "note" not in table.columns
    assert any(s.startswith("**What this can and cannot say.**") for s in [m.value for m in at.markdown])

    again = page("zh", train_epochs="1")
    click(again, "ablation_start")
    assert again.session_state[ABLATION_KEY].finished and again.session_state[JOB_KEY] is None
    cached = again.dataframe[0].value
    assert cached["留出准确率"].tolist() == table["held-out accuracy"].tolist()
    assert set(cached["备注"]) == {"沿用之前相同设置的结果"}
    assert english_left(again, "main") == []


# -- download -------------------------------------------------------------------------------------


def test_the_download_is_a_checkpoint_that_loads_with_weights_only(page, monkeypatch):
    saved: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, bytes) and filename:
            saved[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    at = page()
    click(at, "run_start")
    at.run()
    click(at, "run_pause")
    run = trainer(at)
    name = f"convmix-digits-seed0-step{run.step_count}.pt"
    assert name in saved
    raw = torch.load(io.BytesIO(saved[name]), weights_only=True)
    assert raw["format"] == FORMAT and raw["config"] == TINY_CONFIG.to_dict() and raw["step"] == run.step_count
    loaded = load_checkpoint(saved[name])
    digits = load_digits().images[default_split().held_out[:32]]
    run.net.eval()
    with torch.no_grad():
        assert torch.equal(loaded.net(digits), run.net(digits))
    assert loaded.held_out_accuracy == run.history[-1]["held_out_accuracy"]


# -- Chinese --------------------------------------------------------------------------------------


def test_no_english_left_in_chinese_at_every_stage(page):
    at = page("zh", train_stem_bn="true")
    assert english_left(at, "main") == []
    click(at, "run_start")
    assert english_left(at, "main") == []
    click(at, "run_pause")
    assert english_left(at, "main") == []
    click(at, "run_resume")
    run_to_end(at)
    assert trainer(at).finished
    assert english_left(at, "main") == []
    labels = [v for rows in charts(at).values() for row in rows for v in row.values() if isinstance(v, str)]
    assert "训练" in labels and "rate2（卷积）" in labels
    assert [v for v in labels if english_runs(v)] == []
    broken = page("zh", train_head="3", train_stride="3")
    assert broken.main.error and english_left(broken, "main") == []
