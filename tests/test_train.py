"""Training on the bundled digits: the data, the network, the ablations and the step-wise trainer.

Runs use tiny networks on small subsets of the real digits, a few steps each: they check behaviour
(determinism to the last logged value, what the ablations hold fixed, what the stem's bias does),
not accuracy; benchmarks/train_digits.py measures the default run.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading

import pytest
import torch
import torch.nn.functional as F

from convmix import ConfigError
from convmix.acmix import ACmix
from convmix.digits import (
    LABEL_COUNTS,
    DataError,
    Split,
    default_split,
    digits_path,
    load_digits,
    parse_digits,
    stratified_split,
)
from convmix.trace import trace_forward
from convmix.train import (
    ABLATIONS,
    TIMING_KEYS,
    MomentumSGD,
    TrainConfig,
    Trainer,
    ablation_configs,
    active_parameter_count,
    build_network,
    layer_inputs,
    lr_at,
    parameter_count,
    plain_conv_channels,
    summary,
)
from convmix.train_config import ABLATION_LABELS, ablation_label
from convmix.train_frames import attention_frame, bias_frame, curves_frame, rates_frame
from tests.library_messages import assert_translated, in_both, made

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = TrainConfig(width=8, kernel_att=3, head=2, stride=2, batch=16, epochs=2, lr=0.05)


def small_split(train: int = 96, held_out: int = 40) -> Split:
    """The first digits of the fixed split: every run here sees the same few."""
    split = default_split()
    return Split(train=split.train[:train], held_out=split.held_out[:held_out])


def tiny_trainer(config: TrainConfig = TINY, **kwargs) -> Trainer:
    kwargs.setdefault("split", small_split())
    return Trainer(config, **kwargs)


def comparable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in history]


# -- data ------------------------------------------------------------------------------------------


def test_digits_come_from_the_installed_scikit_learn_file():
    path = digits_path()
    assert path.name == "digits.csv.gz" and "sklearn" in path.parts
    data = load_digits()
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == torch.float32
    assert data.labels.shape == (1797,) and data.labels.dtype == torch.int64
    assert tuple(torch.bincount(data.labels).tolist()) == LABEL_COUNTS
    assert data.images.min() == 0 and data.images.max() == 16
    assert torch.equal(data.images, data.images.round())  # whole numbers, as in the file
    # The first digit of the file is a 0: its top row, read from the raw text.
    assert data.labels[0] == 0 and data.images[0, 0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_loading_the_digits_does_not_import_sklearn():
    code = ("import sys; from convmix.digits import load_digits; d = load_digits(); "
            "print(len(d.labels), 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1797", "False"]


def test_a_missing_scikit_learn_is_a_clear_error(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install scikit-learn"):
        digits_path()


@pytest.mark.parametrize("mutate, message", [
    (lambda rows: rows[:-1], "1,796 rows"),
    (lambda rows: [rows[0] + ",0"] + rows[1:], "columns"),
    (lambda rows: [rows[0].replace("0", "17", 1)] + rows[1:], "pixel values"),
    (lambda rows: [rows[0][:-1] + "1"] + rows[1:], "label counts"),
    (lambda rows: [rows[0].replace("0", "x", 1)] + rows[1:], "not a number"),
])
def test_a_changed_digits_file_is_refused(mutate, message):
    import gzip

    rows = gzip.decompress(digits_path().read_bytes()).decode().splitlines()
    with pytest.raises(DataError, match=message):
        parse_digits("\n".join(mutate(rows)))


def test_the_split_is_fixed_stratified_and_disjoint():
    labels = load_digits().labels
    split = default_split()
    assert len(split.train) + len(split.held_out) == 1797
    assert not set(split.train.tolist()) & set(split.held_out.tolist())
    for digit, count in enumerate(LABEL_COUNTS):
        held = int((labels[split.held_out] == digit).sum())
        assert held == math.floor(0.2 * count + 0.5)  # round half up; no count here ends in .5
    assert torch.equal(stratified_split(labels).held_out, split.held_out)
    assert not torch.equal(stratified_split(labels, seed=1).held_out, split.held_out)


# -- configuration and network ------------------------------------------------------------------


@pytest.mark.parametrize("changes, constraint, words", [
    (dict(width=0), "width", "from 1 to 64"),
    (dict(lr=float("nan")), "lr", "0.0001 to 1"),
    (dict(lr=2.0), "lr", "0.0001 to 1"),
    (dict(head=3), "head_divides_out_planes", "Heads that divide 16"),
    (dict(kernel_att=4), "kernel_att_odd", "kernel_att = 3 or 5"),
    (dict(stride=3), "official_size_divisible_by_stride", "fixed variant"),
    (dict(ablation="both"), "ablation", "learned, attention_only"),
    (dict(epochs=True), "epochs", "integer"),
])
def test_bad_configurations_say_what_failed_and_what_works(changes, constraint, words):
    config = TrainConfig(**changes)
    problems = config.problems()
    assert constraint in [p.constraint for p in problems]
    assert words in " ".join(p.sentence() for p in problems)
    with pytest.raises(ConfigError):
        config.validate()


def test_url_parameters_round_trip_and_hostile_values_fall_back_with_a_note():
    config = TrainConfig(width=32, kernel_att=5, lr=0.0123, stem_bn=True, ablation="conv_only", variant="fixed")
    for prefix in ("", "train_"):
        params = config.to_query_params(prefix=prefix)
        assert TrainConfig.from_query_params(params, prefix=prefix) == (config, [])
    assert config.to_query_params(only_changed=True) == {
        "width": "32", "kernel_att": "5", "lr": "0.0123", "stem_bn": "true", "ablation": "conv_only",
        "variant": "fixed"}
    hostile = {"width": "<script>", "head": "2.5", "lr": "nan", "kernel_att": "99", "stem_bn": "yes",
               "ablation": "all", "epochs": ["3", "7"], "in_planes": "5"}
    parsed, notes = TrainConfig.from_query_params(hostile)
    assert parsed == TrainConfig(epochs=7)
    assert notes == [
        "URL parameter width='?script?' is not a whole number; using 16.",
        "URL parameter kernel_att='99' is outside 1 to 15; using 7.",
        "URL parameter head='2.5' is not a whole number; using 4.",
        "URL parameter lr='nan' is outside 0.0001 to 1; using 0.05.",
        "URL parameter stem_bn='yes' is not one of true, false; using false.",
        "URL parameter ablation='all' is not one of learned, attention_only, conv_only, plain_conv; using learned.",
    ]
    # A URL can still combine valid values into a configuration that cannot run: problems() says so.
    clash, notes = TrainConfig.from_query_params({"width": "10", "head": "4"})
    assert notes == [] and "head_divides_out_planes" in [p.constraint for p in clash.problems()]


def test_odd_output_sizes_need_the_fixed_variant():
    assert TrainConfig(stride=3, variant="fixed").problems() == []
    net = build_network(TrainConfig(stride=3, variant="fixed", width=8, head=2))
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("config", [
    TrainConfig(),
    TrainConfig(stem_bn=True, width=8, head=2, kernel_att=3),
    TrainConfig(ablation="plain_conv"),
    TrainConfig(ablation="plain_conv", width=32, stem_bn=True, stride=1),
    TrainConfig(ablation="attention_only", width=12, head=3),
    TrainConfig(ablation="conv_only", width=1, head=1, kernel_att=1),
])
def test_parameter_count_formula_matches_the_module(config):
    net = build_network(config)
    assert parameter_count(config) == sum(p.numel() for p in net.parameters())
    assert net.stem.bias is not None and net.stem.bias.requires_grad  # the stem has a learned bias


def test_the_plain_convolution_has_about_the_parameters_of_acmix():
    for width, head in ((8, 2), (16, 4), (32, 4), (64, 8)):
        config = TrainConfig(width=width, head=head)
        acmix, plain = parameter_count(config), parameter_count(config.with_(ablation="plain_conv"))
        assert abs(plain - acmix) <= 0.05 * acmix, (width, acmix, plain)
        channels = plain_conv_channels(config)
        for other in (channels - 1, channels + 1):  # no channel count comes closer
            net_other = build_network(config.with_(ablation="plain_conv"))
            net_other.mixer = torch.nn.Conv2d(width, other, 3, padding=1)
            net_other.classifier = torch.nn.Linear(4 * other, 10)
            assert abs(sum(p.numel() for p in net_other.parameters()) - acmix) >= abs(plain - acmix)


def test_weights_come_from_the_seed_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = build_network(TINY)
    assert torch.equal(state, torch.random.get_rng_state())  # neither read nor advanced
    torch.manual_seed(456)
    b = build_network(TINY)
    c = build_network(TINY.with_(seed=1))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.stem.weight, c.stem.weight)
    acmix = a.mixer
    assert acmix.rate1.item() == acmix.rate2.item() == 0.5  # ACmix's own init is kept
    assert acmix.dep_conv.weight.sum() == acmix.out_planes * 9  # shift kernels


def test_momentum_sgd_matches_torch_optim_sgd():
    net_a, net_b = build_network(TINY), build_network(TINY)
    ours = MomentumSGD(list(net_a.parameters()), 0.9)
    theirs = torch.optim.SGD(net_b.parameters(), lr=0.1, momentum=0.9)
    data = load_digits()
    for step, lr in enumerate((0.1, 0.05, 0.02)):
        x, y = data.images[step * 16 : step * 16 + 16], data.labels[step * 16 : step * 16 + 16]
        ours.zero_grad()
        F.cross_entropy(net_a(x), y).backward()
        ours.step(lr)
        theirs.zero_grad()
        F.cross_entropy(net_b(x), y).backward()
        for group in theirs.param_groups:
            group["lr"] = lr
        theirs.step()
    for (name, pa), pb in zip(net_a.named_parameters(), net_b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-6, msg=name)


def test_learning_rate_follows_a_cosine_to_zero():
    config = TrainConfig(lr=0.1)
    assert lr_at(config, 0, 100) == 0.1
    assert lr_at(config, 50, 100) == pytest.approx(0.05)
    assert lr_at(config, 99, 100) == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.99)) / 2)


# -- the trainer ---------------------------------------------------------------------------------


def test_same_seed_same_curves_in_one_go_or_in_resumed_chunks():
    whole = tiny_trainer(log_every=3)
    assert whole.step(10_000) == whole.total_steps == 12
    chunked = tiny_trainer(log_every=3)
    other = tiny_trainer(TINY.with_(seed=5), log_every=3)
    for n in (1, 4, 2, 1, 3, 5):  # pause and resume, with another run interleaved
        torch.manual_seed(n)  # whatever the global RNG does
        chunked.step(n)
        other.step(2)
    assert chunked.finished and chunked.step_count == 12
    assert comparable(chunked.history) == comparable(whole.history)  # to the last logged value
    assert [r["step"] for r in whole.history] == [0, 3, 6, 9, 12]
    assert len(whole.snapshots) == len(chunked.snapshots) == 4
    for a, b in zip(whole.snapshots, chunked.snapshots, strict=True):
        assert a.step == b.step and torch.equal(a.attention["mixer"], b.attention["mixer"])
    for key, value in whole.net.state_dict().items():
        assert torch.equal(value, chunked.net.state_dict()[key]), key
    assert comparable(other.history) != comparable(whole.history)


def test_log_points_cover_every_epoch_end_and_the_interval():
    trainer = tiny_trainer(log_every=4)  # 96 digits in batches of 16: 6 steps per epoch
    trainer.step(100)
    assert [r["step"] for r in trainer.history] == [0, 4, 6, 8, 12]
    assert [round(r["epoch"], 4) for r in trainer.history] == [0, 0.6667, 1, 1.3333, 2]
    assert trainer.history[0]["train_loss"] is None and trainer.history[1]["train_loss"] > 0
    assert trainer.snapshot_steps == [0, 4, 8, 12] and [s.step for s in trainer.snapshots] == [0, 4, 8, 12]
    assert trainer.progress == 1.0 and trainer.stopped and trainer.stop_reason is None
    assert trainer.step(5) == 0  # a finished run does nothing


def test_runs_in_parallel_threads_match_runs_alone():
    alone = [tiny_trainer(TINY.with_(seed=s)) for s in (0, 1)]
    for t in alone:
        t.step(100)
    together = [tiny_trainer(TINY.with_(seed=s)) for s in (0, 1)]
    threads = [threading.Thread(target=lambda t=t: [t.step(1) for _ in range(20)]) for t in together]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for a, b in zip(alone, together, strict=True):
        assert comparable(a.history) == comparable(b.history)


def test_training_runs_under_deterministic_algorithms():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        strict = tiny_trainer(TINY.with_(stem_bn=True))
        strict.step(100)
    finally:
        torch.use_deterministic_algorithms(before)
    relaxed = tiny_trainer(TINY.with_(stem_bn=True))
    relaxed.step(100)
    assert comparable(strict.history) == comparable(relaxed.history)


def test_held_out_accuracy_and_loss_match_a_digit_by_digit_count():
    trainer = tiny_trainer()
    trainer.step(100)
    net, data = trainer.net.eval(), trainer.data
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in trainer.split.held_out.tolist():
            logits = net(data.images[i : i + 1])[0]
            correct += int(logits.argmax()) == int(data.labels[i])
            loss += float(torch.logsumexp(logits, 0) - logits[data.labels[i]])
    last = trainer.history[-1]
    assert last["held_out_accuracy"] == correct / len(trainer.split.held_out)
    assert last["held_out_loss"] == pytest.approx(loss / len(trainer.split.held_out), rel=1e-5)


def test_training_loss_is_the_mean_of_the_minibatch_losses_since_the_last_record():
    trainer = tiny_trainer(log_every=1)
    replay = build_network(TINY, float(trainer.net.pixel_mean), float(trainer.net.pixel_std))
    optimizer = MomentumSGD(list(replay.parameters()), 0.9)
    order = torch.Generator().manual_seed(TINY.seed + 1)
    train = trainer.split.train
    losses = []
    for epoch in range(2):
        perm = train[torch.randperm(len(train), generator=order)]
        for s in range(6):
            idx = perm[s * 16 : s * 16 + 16]
            loss = F.cross_entropy(replay(trainer.data.images[idx]), trainer.data.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step(lr_at(TINY, epoch * 6 + s, 12))
            losses.append(loss.item())
    trainer.step(100)
    assert [r["train_loss"] for r in trainer.history[1:]] == pytest.approx(losses, rel=1e-6)


@pytest.mark.parametrize("ablation, fixed, learned", [("attention_only", "rate2", "rate1"),
                                                      ("conv_only", "rate1", "rate2")])
def test_an_ablation_holds_its_rate_at_exactly_zero(ablation, fixed, learned):
    trainer = tiny_trainer(TINY.with_(ablation=ablation))
    trainer.step(100)
    layer = trainer.net.mixer
    assert getattr(layer, fixed).item() == 0.0 and not getattr(layer, fixed).requires_grad
    assert getattr(layer, fixed).grad is None
    assert getattr(layer, learned).grad is not None and getattr(layer, learned).grad.abs().item() > 0
    assert all(r[fixed]["mixer"] == 0.0 for r in trainer.history)
    assert trainer.history[-1][learned]["mixer"] != 0.5


def test_both_rates_learn_in_the_learned_network():
    trainer = tiny_trainer()
    trainer.step(100)
    for rate in ("rate1", "rate2"):
        assert getattr(trainer.net.mixer, rate).grad.abs().item() > 0
        values = [r[rate]["mixer"] for r in trainer.history]
        assert values[0] == 0.5 and values[-1] != 0.5


@pytest.mark.parametrize("ablation", list(ABLATIONS))
def test_active_parameters_are_those_that_get_a_gradient(ablation):
    config = TINY.with_(ablation=ablation)
    net = build_network(config, 5.0, 6.0)
    data = load_digits()
    F.cross_entropy(net(data.images[:32]), data.labels[:32]).backward()
    moved = sum(p.numel() for p in net.parameters() if p.grad is not None and p.grad.abs().sum() > 0)
    assert moved == active_parameter_count(config)


def test_the_stem_bias_learns_without_batchnorm_and_stands_still_with_it():
    plain = tiny_trainer()
    plain.step(100)
    start, end = torch.tensor(plain.history[0]["stem_bias"]), torch.tensor(plain.history[-1]["stem_bias"])
    assert (end - start).abs().max() > 1e-3
    assert torch.tensor(plain.history[-1]["stem_bias_grad"]).abs().max() > 1e-4
    assert plain.history[-1]["bn_bias"] is None

    bn = tiny_trainer(TINY.with_(stem_bn=True))
    bn.step(100)
    start, end = torch.tensor(bn.history[0]["stem_bias"]), torch.tensor(bn.history[-1]["stem_bias"])
    # BatchNorm subtracts the batch mean, and with it the bias: its gradient is zero up to rounding.
    assert torch.tensor(bn.history[-1]["stem_bias_grad"]).abs().max() < 1e-6
    assert (end - start).abs().max() < 1e-6
    beta = torch.tensor([r["bn_bias"] for r in bn.history])
    assert (beta[-1] - beta[0]).abs().max() > 1e-3  # BatchNorm's own bias takes over


def test_attention_snapshots_are_the_layers_own_attention_on_the_real_input():
    trainer = tiny_trainer(snapshot_count=3, probe=5)
    trainer.step(100)
    snap = trainer.snapshots[-1]
    assert [s.step for s in trainer.snapshots] == [0, 6, 12]
    net = trainer.net.eval()
    pixels = trainer.probe_pixels
    assert int(trainer.data.labels[int(trainer.split.held_out[5])]) == trainer.probe_label
    # The ACmix input, computed by hand from the stem's weights (no hook).
    x = (pixels - net.pixel_mean) / net.pixel_std
    by_hand = torch.relu(F.conv2d(x, net.stem.weight, net.stem.bias, padding=1))
    captured, logits = layer_inputs(net, pixels)
    torch.testing.assert_close(captured["mixer"], by_hand, rtol=0, atol=1e-6)
    att = trace_forward(net.mixer, by_hand)["att"].tensor
    torch.testing.assert_close(snap.attention["mixer"], att, rtol=0, atol=1e-6)
    assert snap.attention["mixer"].shape == (2, 9, 4, 4)
    torch.testing.assert_close(snap.attention["mixer"].sum(1), torch.ones(2, 4, 4))
    assert snap.prediction == int(logits.argmax())
    assert snap.confidence == pytest.approx(float(torch.softmax(logits[0], 0)[trainer.probe_label]))


def test_the_time_cap_stops_a_run_and_logs_where_it_stopped():
    trainer = tiny_trainer(time_limit_s=1e-9)
    assert trainer.step(5) == 0
    assert "time cap of 1e-09 s" in trainer.stop_reason and trainer.stopped and not trainer.finished
    assert trainer.history[-1]["step"] == 0
    partial = tiny_trainer(time_limit_s=3600)
    partial.step(3)
    partial.time_limit_s = partial.seconds  # the cap is reached now
    assert partial.step(5) == 0
    assert partial.history[-1]["step"] == 3 and "after 3 of 12 steps" in partial.stop_reason


def test_a_loss_that_is_not_finite_stops_the_run_with_advice():
    data = load_digits()
    broken = type(data)(images=data.images.clone(), labels=data.labels)
    broken.images[small_split().train] = float("inf")
    trainer = tiny_trainer(data=broken)
    assert trainer.step(3) == 0
    assert "became nan" in trainer.stop_reason and "learning rate" in trainer.stop_reason


def test_run_calls_back_with_every_new_record():
    trainer = tiny_trainer(TINY.with_(epochs=1))
    seen = []
    trainer.run(on_log=seen.append)
    assert seen == trainer.history[1:] and trainer.finished


def test_bad_trainer_arguments_are_refused():
    with pytest.raises(ConfigError):
        Trainer(TrainConfig(head=5))
    with pytest.raises(ValueError, match="probe"):
        tiny_trainer(probe=40)
    with pytest.raises(ValueError, match="log_every"):
        tiny_trainer(log_every=-1)


def test_plain_convolution_has_no_rates_and_no_attention():
    trainer = tiny_trainer(TINY.with_(ablation="plain_conv"))
    trainer.step(100)
    assert trainer.net.acmix_layers() == {} and not any(isinstance(m, ACmix) for m in trainer.net.modules())
    assert trainer.history[-1]["rate1"] == {} and trainer.snapshots == []


def test_the_ablation_shares_data_seed_and_stem():
    configs = ablation_configs(TINY)
    assert list(configs) == list(ABLATIONS)
    assert {c.with_(ablation="learned") for c in configs.values()} == {TINY}
    nets = {name: build_network(c) for name, c in configs.items()}
    for net in nets.values():
        assert torch.equal(net.stem.weight, nets["learned"].stem.weight)
    trainer = tiny_trainer(configs["conv_only"])
    trainer.step(100)
    row = summary(trainer)
    assert row["ablation"] == "conv_only" and row["steps"] == 12 and row["stop_reason"] is None
    assert row["parameters"] == sum(p.numel() for p in trainer.net.parameters())
    assert row["held_out_accuracy"] == trainer.history[-1]["held_out_accuracy"]


def test_history_frames_hold_the_logged_values():
    trainer = tiny_trainer(TINY.with_(stem_bn=True))
    trainer.step(100)
    h = trainer.history
    curves = curves_frame(h)
    assert len(curves) == 2 * len(h) + 2 * (len(h) - 1)  # no training values at step 0
    last = curves[(curves.step == 12) & (curves.split == "held-out") & (curves.metric == "accuracy")]
    assert last.value.tolist() == [h[-1]["held_out_accuracy"]]
    rates = rates_frame(h)
    assert rates[(rates.step == 12) & (rates.rate == "rate2")].value.tolist() == [h[-1]["rate2"]["mixer"]]
    biases = bias_frame(h)
    assert len(biases) == len(h) * 2 * TINY.width
    assert biases[(biases.step == 12) & (biases.parameter == "BatchNorm bias")].value.tolist() == h[-1]["bn_bias"]
    window = attention_frame(trainer.snapshots[-1], "mixer", 1, 2)
    assert len(window) == 2 * 9 and set(window.dy) == {0, 1, 2}
    assert window.groupby("head").weight.sum().tolist() == pytest.approx([1.0, 1.0])
    assert window.weight.tolist() == trainer.snapshots[-1].attention["mixer"][:, :, 1, 2].flatten().tolist()
    with pytest.raises(ValueError, match="4x4 output"):
        attention_frame(trainer.snapshots[-1], "mixer", 4, 0)


# -- every message in Chinese ---------------------------------------------------------------------

CONFIG_CASES = {
    "bound": TrainConfig(width=0), "lr": TrainConfig(lr=2.0), "stem_bn": TrainConfig(stem_bn="yes"),
    "ablation": TrainConfig(ablation="both"), "variant": TrainConfig(variant="x"), "head": TrainConfig(head=3),
    "kernel_att": TrainConfig(kernel_att=4), "stride": TrainConfig(stride=3),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_every_problem_of_a_training_configuration_in_chinese(case):
    config = CONFIG_CASES[case]
    english, chinese = (made(lambda: [p.sentence() for p in config.problems()], lang) for lang in ("en", "zh"))
    assert english != "[]"
    assert_translated(english, chinese)


def test_the_head_problem_speaks_of_the_width():
    (problem,) = TrainConfig(width=16, head=3).problems()
    assert problem.message.startswith("head (3) must divide width (16)") and problem.fields == ("head", "width")
    assert problem.changes == ({"head": 1}, {"head": 2}, {"head": 4}, {"head": 8}, {"head": 16})
    assert "Heads that divide 16: 1, 2, 4, 8 and 16." == problem.fix


def test_configuration_keys_in_chinese():
    assert_translated(*in_both(lambda: TrainConfig.from_dict({"width": 8})))


@pytest.mark.parametrize("params", [
    {"width": "<script>"}, {"kernel_att": "99"}, {"lr": "nan"}, {"lr": "fast"}, {"stem_bn": "yes"},
    {"ablation": "all"},
])
def test_every_url_note_of_a_training_configuration_in_chinese(params):
    english, chinese = in_both(lambda: TrainConfig.from_query_params(params, prefix="")[1][0])
    assert_translated(english, chinese)


def test_every_ablation_has_a_label_in_both_languages():
    assert set(ABLATION_LABELS) == set(ABLATIONS)
    for name in ABLATIONS:
        assert_translated(*in_both(lambda name=name: ablation_label(name)))


@pytest.mark.parametrize("mutate", [
    lambda rows: rows[:-1], lambda rows: [rows[0] + ",0"] + rows[1:],
    lambda rows: [rows[0].replace("0", "17", 1)] + rows[1:], lambda rows: [rows[0][:-1] + "1"] + rows[1:],
], ids=["rows", "columns", "pixels", "labels"])
def test_a_changed_digits_file_is_told_in_chinese(mutate):
    import gzip

    rows = gzip.decompress(digits_path().read_bytes()).decode().splitlines()
    assert_translated(*in_both(lambda: parse_digits("\n".join(mutate(rows)))))


def test_a_missing_scikit_learn_is_told_in_chinese(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert_translated(*in_both(digits_path))
