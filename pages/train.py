"""Train it live: a small ACmix network learns scikit-learn's 8×8 digits in the visitor's session.

Layout only. Training in convmix.train (advanced in chunks by convmix.train_live), limits in
convmix.train_limits, charts in convmix.charts_train, state and clicks in convmix.ui.training (the
visitor's Trainer lives in st.session_state["convmix_trainer"]). Messages are the library's own.

While a run trains, a fragment reruns every TICK_S seconds and trains one chunk each time (a run
slot is held only during the chunk): the page stays responsive, the charts follow the run, and a
paused run or a closed tab computes nothing and holds no slot.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from convmix import charts_train, train_frames
from convmix.budget import memory_budget
from convmix.digits import default_split
from convmix.format import human_bytes
from convmix.i18n import _, get_language, ngettext
from convmix.runtime import SERVER, configure_torch
from convmix.train import ABLATIONS, parameter_count
from convmix.train_checkpoint import checkpoint_bytes
from convmix.train_config import ablation_label
from convmix.train_limits import RUN_SLOTS, TIME_LIMIT_S, estimate_run_bytes
from convmix.train_live import advance, stop_message, stopped_by_time_cap
from convmix.ui import training, walkthrough_source
from convmix.ui.navigation import ensure_router

ensure_router()

TICK_S = 0.3  # the fragment's rerun interval while training (chunks run back to back when longer)
MEAN_OVER_HEADS = -1  # the head menu's first entry

split = default_split()
n_train, n_held = len(split.train), len(split.held_out)

st.html(training.PHONE_CSS)
st.title(_("Train it live"))
st.markdown(_(
    "A small network learns to read handwritten digits while you watch: a stem convolution **with a "
    "bias**, one **ACmix** layer, average pooling and a linear classifier, trained with SGD on this "
    "server's CPU, in your session. The data are scikit-learn's 8×8 digits, which ship inside the package "
    "(nothing is downloaded): {train:,} training digits and {held:,} held-out digits the network never "
    "trains on. Watch the loss fall, ACmix's rate1 (attention) and rate2 (convolution) settle on a mix, the "
    "stem's biases learn, and the attention of one held-out digit take shape.", train=n_train, held=n_held))
st.info(_("The ACmix configuration in the sidebar does not apply on this page: this network has its own "
          "settings, below."), icon=":material/info:")

# -- settings -----------------------------------------------------------------------------------------
with st.container(border=True, key="train_settings"):
    config = training.settings_block()
    training.show_url_notes()
    problems = [p.sentence() for p in config.problems()]
    if problems:
        st.error(_("These settings cannot run:") + "\n\n" + "\n".join(f"- {p}" for p in problems),
                 icon=":material/error:")
    else:
        steps = config.epochs * config.steps_per_epoch(n_train)
        size = _("This network has {params:,} parameters; a run is {steps:,} training steps of {batch:,} "
                 "digits and needs about {memory} of memory at its peak (this server's budget: {budget}).",
                 params=parameter_count(config), steps=steps, batch=config.batch,
                 memory=human_bytes(estimate_run_bytes(config)), budget=human_bytes(memory_budget()))
        bounds = ngettext(
            "Each run is timed before it starts and stops after {cap:g} s of computing; {slots} run trains at "
            "a time on this server.",
            "Each run is timed before it starts and stops after {cap:g} s of computing; at most {slots} runs "
            "train at once on this server.", RUN_SLOTS.capacity, cap=TIME_LIMIT_S, slots=RUN_SLOTS.capacity)
        st.caption(size + " " + bounds)

message = training.pop_message()
if message:
    kind, text = message
    (st.error if kind == "error" else st.warning)(text, icon=":material/block:")

# -- controls -----------------------------------------------------------------------------------------
trainer = training.trainer()
job = training.job()
with st.container(horizontal=True, key="train_controls", vertical_alignment="center"):
    if trainer is None or trainer.stopped:
        st.button(_("Start") if trainer is None else _("Start again"), key="run_start", type="primary",
                  icon=":material/play_arrow:", on_click=training.start_run, args=(config,),
                  disabled=bool(problems))
    elif job == "run":
        st.button(_("Pause"), key="run_pause", icon=":material/pause:", on_click=training.pause)
    else:
        st.button(_("Resume"), key="run_resume", type="primary", icon=":material/play_arrow:",
                  on_click=training.resume_run)
    st.button(_("Reset"), key="run_reset", icon=":material/restart_alt:", on_click=training.reset_run,
              disabled=trainer is None)
    if trainer is not None and job != "run":
        st.download_button(
            _("Download the network (checkpoint)"), data=checkpoint_bytes(trainer),
            file_name=f"convmix-digits-seed{trainer.config.seed}-step{trainer.step_count}.pt",
            mime="application/octet-stream", key="run_download", icon=":material/download:",
            on_click="ignore")
        walkthrough_source.open_trained_button(trainer)
if trainer is not None and job != "run":
    st.caption(_("The checkpoint is a dict of tensors and plain values: `torch.load(path, "
                 "weights_only=True)` reads it, and `convmix.train_checkpoint.load_checkpoint(path)` rebuilds "
                 "the network."))
if trainer is not None and not trainer.stopped and trainer.config != config:
    st.caption(_("The settings above differ from this run's: Resume continues the run with the settings it "
                 "started with; Reset, then Start, trains with the new ones."))


# -- the live run ---------------------------------------------------------------------------------------
def run_view() -> None:
    """Draw the run as it stands, then train one chunk (the next tick draws it). Drawing first keeps
    every element current while the chunk computes, so nothing fades or flickers."""
    configure_torch(SERVER)  # a fragment rerun is a new thread: give it the server's thread count
    run = training.trainer()
    if run is None:
        st.caption(_("Press Start to train with the settings above."))
        return
    status = st.empty()
    draw_run(run)
    if training.job() == "run":
        chunk = advance(run, RUN_SLOTS, max_steps=run.log_every)
        if chunk.busy:
            waits = _("Your run waits where it is and continues as soon as one of them pauses or ends.")
            status.warning(RUN_SLOTS.busy_message() + " " + waits, icon=":material/hourglass_top:")
        if run.stopped:
            training.pause()
            st.rerun()


def draw_run(run) -> None:
    last = run.history[-1]
    epochs = run.config.epochs
    st.progress(run.progress, text=_(
        "Epoch {epoch:.1f} of {epochs} · step {step:,} of {total:,} · {seconds:.1f} s of computing",
        epoch=run.epoch, epochs=epochs, step=run.step_count, total=run.total_steps, seconds=run.seconds))
    stopped = stop_message(run)
    if stopped:
        capped = stopped_by_time_cap(run.stop_reason)
        st.warning(stopped, icon=":material/timer_off:" if capped else ":material/error:")
    elif run.finished:
        st.success(_("Finished: held-out accuracy {accuracy:.2%} after {epochs} epochs.",
                     accuracy=last["held_out_accuracy"], epochs=epochs), icon=":material/check_circle:")
    elif training.job() != "run":
        st.caption(_("Paused."))
    if run.config.ablation != "learned":
        network = ablation_label(run.config.ablation)
        st.caption(_("This run trains the network “{network}”.", network=network))

    metrics = st.container(key="train_metrics").columns(4)
    metrics[0].metric(_("held-out accuracy"), f"{last['held_out_accuracy']:.2%}")
    metrics[1].metric(_("held-out loss"), f"{last['held_out_loss']:.4f}")
    layers = list(last["rate1"])
    if layers:
        layer = layers[0]
        metrics[2].metric("rate1", f"{last['rate1'][layer]:.4f}", help=_("Weight of the attention path."))
        metrics[3].metric("rate2", f"{last['rate2'][layer]:.4f}", help=_("Weight of the convolution path."))

    curves = train_frames.curves_frame(run.history)
    cols = st.columns(2)
    cols[0].altair_chart(charts_train.curve_chart(curves, "loss", epochs), width="stretch")
    cols[1].altair_chart(charts_train.curve_chart(curves, "accuracy", epochs), width="stretch")
    st.caption(_("Training values are the mean over the steps since the previous point; held-out values are "
                 "all {held:,} held-out digits at that step.", held=n_held))

    st.subheader(_("rate1 and rate2"))
    if layers:
        rates = train_frames.rates_frame(run.history)
        st.altair_chart(charts_train.rates_chart(rates, epochs), width="stretch")
        first = run.history[0]
        st.caption(_("ACmix adds its two paths as rate1 · attention + rate2 · convolution. This run started "
                     "them at {rate1:g} and {rate2:g}; a rate that the network chooses is learned like any "
                     "weight, and in the ablations one of them is held at 0.", rate1=first["rate1"][layer],
                     rate2=first["rate2"][layer]))
    else:
        st.caption(_("The plain convolution has no ACmix layer, so no rate1 and rate2."))

    draw_biases(run)
    draw_attention(run)


def draw_biases(run) -> None:
    st.subheader(_("The stem's biases"))
    frame = train_frames.bias_frame(run.history)
    first, last = run.history[0], run.history[-1]
    moved = max(abs(a - b) for a, b in zip(last["stem_bias"], first["stem_bias"], strict=True))
    grad = last["stem_bias_grad"]
    epochs = run.config.epochs
    if run.config.stem_bn:
        cols = st.columns(2)
        cols[0].altair_chart(charts_train.bias_chart(frame, "stem bias", epochs), width="stretch")
        cols[1].altair_chart(charts_train.bias_chart(frame, "BatchNorm bias", epochs), width="stretch")
        bn_moved = max(abs(a - b) for a, b in zip(last["bn_bias"], first["bn_bias"], strict=True))
        text = _("With BatchNorm after the stem, each channel's batch mean is subtracted, so a constant added "
                 "before it cancels: the stem's bias gets no gradient and stays where it started (largest "
                 "change so far: {moved:.2g}), while BatchNorm's own bias β moves instead (largest change: "
                 "{bn_moved:.3f}).", moved=moved, bn_moved=bn_moved)
    else:
        st.altair_chart(charts_train.bias_chart(frame, "stem bias", epochs), width="stretch")
        text = _("Without BatchNorm the stem's bias is an ordinary parameter: it gets a gradient and moves "
                 "(largest change so far: {moved:.3f}). Turn on BatchNorm after the stem and start again for "
                 "the contrast.", moved=moved)
    if grad is not None:
        text += " " + _("Largest |gradient| of the stem's bias at the last step: {grad:.2e}.",
                        grad=max(abs(g) for g in grad))
    st.caption(text)


def draw_attention(run) -> None:
    st.subheader(_("Attention of one held-out digit"))
    if not run.snapshots:
        st.caption(_("The plain convolution has no attention."))
        return
    layer = next(iter(run.snapshots[0].attention))
    heads, _window, out_h, out_w = run.snapshots[0].attention[layer].shape
    positions = [(r, c) for r in range(out_h) for c in range(out_w)]
    pick = st.columns(2)
    query = pick[0].selectbox(_("Query position (output row, column)"), positions,
                              index=positions.index((out_h // 2, out_w // 2)),
                              format_func=lambda p: f"({p[0]}, {p[1]})", key="attention_query")
    head = pick[1].selectbox(
        _("Head"), [MEAN_OVER_HEADS, *range(heads)], key=f"attention_head_{get_language()}",
        format_func=lambda h: _("mean over heads") if h == MEAN_OVER_HEADS else _("head {n}", n=h))
    stride, side = run.config.stride, run.probe_pixels.shape[-1]
    window = charts_train.window_bounds(*query, stride, run.config.kernel_att, side)
    cols = st.container(key="train_attention").columns(1 + len(run.snapshot_steps))
    cols[0].altair_chart(charts_train.digit_chart(
        run.probe_pixels, _("Held-out digit: {label}", label=run.probe_label),
        query=(query[0] * stride, query[1] * stride), window=window), width="content")
    frames = [charts_train.attention_window_frame(train_frames.attention_frame(snap, layer, *query),
                                                  None if head == MEAN_OVER_HEADS else head)
              for snap in run.snapshots]
    top = max(float(f["weight"].max()) for f in frames)
    for col, snap, frame in zip(cols[1:], run.snapshots, frames, strict=False):
        title = _("step {step:,} (epoch {epoch:.1f})", step=snap.step, epoch=snap.epoch)
        subtitle = _("predicts {prediction}; p({label}) = {p:.2f}", prediction=snap.prediction,
                     label=run.probe_label, p=snap.confidence)
        col.altair_chart(charts_train.attention_chart(frame, title, subtitle, max_weight=top), width="content")
    st.caption(_("First, the digit with the query pixel (filled) and its {k}×{k} attention window (outlined, "
                 "clipped to the image; beyond it the reflection padding repeats the image). Then the softmax "
                 "weights that this query gives each position of its window (rows down and columns right of "
                 "the query), read from the layer's own forward at {count} points of the run as the run "
                 "reaches them; darker is more weight, on one scale from 0 to {top:.3f} for all of them.",
                 k=run.config.kernel_att, count=len(run.snapshot_steps), top=top))


st.fragment(run_every=TICK_S if job == "run" else None)(run_view)()

# -- the ablation ------------------------------------------------------------------------------------------
st.header(_("The ablation, side by side"))
st.markdown(_(
    "The paper compares attention only, convolution only and the learned mix. Here the same network is "
    "trained four times on the same digits, with the same seed, schedule and settings: rate1 and rate2 "
    "learned; rate2 held at 0 (attention only); rate1 held at 0 (convolution only); and ACmix replaced by "
    "a plain 3×3 convolution with about the same number of parameters. Four runs take four times as long, "
    "so they start only when you ask; finished results are kept for identical settings."))
ablation_run = training.ablation()
with st.container(horizontal=True, key="ablation_controls"):
    same = ablation_run is not None and ablation_run.base == config.with_(ablation="learned")
    if not same or ablation_run.finished:
        st.button(_("Train the four networks"), key="ablation_start", icon=":material/compare:",
                  on_click=training.start_ablation, args=(config,), disabled=bool(problems))
    elif job == "ablation":
        st.button(_("Pause the ablation"), key="ablation_pause", icon=":material/pause:",
                  on_click=training.pause)
    else:
        st.button(_("Continue the ablation"), key="ablation_resume", icon=":material/play_arrow:",
                  on_click=training.resume_ablation)


def ablation_view() -> None:
    """Draw the ablation's results so far, then train one chunk of the next network."""
    configure_torch(SERVER)  # a fragment rerun is a new thread: give it the server's thread count
    run = training.ablation()
    if run is None:
        return
    status = st.empty()
    draw_ablation(run)
    if training.job() == "ablation":
        chunk = run.advance(RUN_SLOTS, training.ablation_cache())
        if chunk.busy:
            waits = _("The ablation waits and continues as soon as one of them pauses or ends.")
            status.warning(RUN_SLOTS.busy_message() + " " + waits, icon=":material/hourglass_top:")
        if run.finished:
            training.pause()
            st.rerun()


def draw_ablation(run) -> None:
    if run.base != config.with_(ablation="learned"):
        st.caption(_("These results are for the settings the ablation ran with, not the ones above."))
    if not run.finished:
        running = run.running_name
        text = (_("Training “{network}”…", network=ablation_label(running)) if running
                else _("Waiting to start."))
        st.progress(run.progress, text=text)
    rows, curves = [], []
    for name in ABLATIONS:
        result = run.results.get(name)
        if result is None:
            continue
        s = result.summary
        note = ""
        if s["stop_reason"] is not None:
            capped = stopped_by_time_cap(s["stop_reason"])
            note = _("stopped at the time cap") if capped else _("loss not finite")
        elif result.cached:
            note = _("kept from an earlier identical run")
        rows.append({
            _("network"): ablation_label(name), _("held-out accuracy"): s["held_out_accuracy"],
            _("parameters"): s["parameters"], _("parameters in use"): s["active_parameters"],
            _("seconds"): s["seconds"], _("note"): note,
        })
        curves += [{"network": ablation_label(name), "epoch": e, "accuracy": a} for e, a in result.curve]
    if not rows:
        return
    table = pd.DataFrame(rows)
    if not any(table[_("note")]):
        table = table.drop(columns=[_("note")])
    in_use = _("Without a path's rate, that path's own weights cannot change the output.")
    seconds = _("Computing time of the run (training and one held-out evaluation per epoch), measured on this "
                "server when it ran.")
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        _("held-out accuracy"): st.column_config.NumberColumn(format="%.4f"),
        _("parameters"): st.column_config.NumberColumn(format="localized"),
        _("parameters in use"): st.column_config.NumberColumn(format="localized", help=in_use),
        _("seconds"): st.column_config.NumberColumn(format="%.1f", help=seconds),
    })
    order = [ablation_label(name) for name in ABLATIONS]
    chart = charts_train.ablation_chart(pd.DataFrame(curves), order, run.base.epochs)
    st.altair_chart(chart, width="stretch")


st.fragment(run_every=TICK_S if job == "ablation" else None)(ablation_view)()

st.markdown(_(
    "**What this can and cannot say.** These are {train:,} tiny 8×8 images and one seed; one held-out "
    "digit is {point:.2f} percentage points of accuracy, so a difference of a few digits between two "
    "networks can come from the seed alone. The paper's claims are about ResNets and Swin on 224×224 "
    "ImageNet. This table shows that each network trains, what holding a rate at 0 costs here, and how the "
    "learned mix sets rate1 and rate2; it cannot confirm or refute that ACmix beats attention or "
    "convolution at the paper's scale.", train=n_train, point=100 / n_held))
