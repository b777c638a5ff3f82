"""Checkpoint loading: formats, wrappers, refusal of code-running pickles, malformed files, the
memory budget (admitted beside what the process holds; the load's measured peak); ACmix layers found
by their keys, rebuilt with their own weights, and their statistics; every message in Chinese."""

from __future__ import annotations

import io
import os
import sys
import zipfile

import pytest
import torch
from safetensors.torch import save as save_safetensors

from convmix.acmix import ACmix
from convmix.checkpoint import (
    CheckpointError,
    build_acmix,
    find_acmix_layers,
    kernel_att_note,
    layer_statistics,
    load_bytes,
    load_checkpoint,
    load_resnet,
    max_file_bytes,
    resnet_depth,
    statistics_frame,
)
from convmix.format import human_bytes
from convmix.models import acmix_resnet
from tests.by_hand import rss_growth
from tests.library_messages import assert_translated, in_both

BUDGET = None  # the process budget: conftest leaves each test 1 GiB beside what the process holds


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def resnet26_state():
    return acmix_resnet(26, seed=1).state_dict()


def test_bare_state_dict(resnet26_state):
    ck = load_checkpoint(saved(resnet26_state), "r26.pth", BUDGET)
    assert ck.format == "PyTorch" and ck.wrapper is None and ck.stripped_prefix is None
    assert list(ck.state_dict) == list(resnet26_state)
    assert all(torch.equal(ck.state_dict[k], v) for k, v in resnet26_state.items())
    assert ck.parameter_count == sum(v.numel() for v in resnet26_state.values())


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_wrapped_and_data_parallel(resnet26_state, wrapper):
    prefixed = {f"module.{k}": v for k, v in resnet26_state.items()}
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [{"lr": 0.1}]}
    data = saved({wrapper: prefixed, "epoch": 299, "best_acc1": torch.tensor(80.1), "optimizer": optimizer})
    ck = load_checkpoint(data, "checkpoint.pth.tar.pt", BUDGET)
    assert ck.wrapper == wrapper and ck.stripped_prefix == "module."
    assert list(ck.state_dict) == list(resnet26_state)
    assert set(ck.other_entries) == {"epoch", "best_acc1", "optimizer"}


def test_safetensors(resnet26_state):
    flat = {k: v.contiguous() for k, v in resnet26_state.items()}
    ck = load_checkpoint(save_safetensors(flat), "r26.safetensors", BUDGET)
    assert ck.format == "safetensors"
    assert all(torch.equal(ck.state_dict[k], v) for k, v in flat.items())


class RunsCode:
    """Pickles as a call: unpickling would execute `code`."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


class RunsShell:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran.txt"
    touched = tmp_path / "touched.txt"
    evil = {"conv1.weight": torch.ones(2), "payload": RunsCode(f"open({str(marker)!r}, 'w').write('ran')")}
    shell = {"w": torch.ones(1), "x": RunsShell(f"touch {touched}")}
    # the crafted files really would run their payload if unpickled without weights_only
    torch.load(io.BytesIO(saved(evil)), weights_only=False)
    assert marker.exists()
    marker.unlink()
    for obj, name in ((evil, "evil.pth"), (shell, "shell.pt")):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(saved(obj), name, BUDGET)
        text = str(err.value)
        assert "refused" in text and "weights_only=True" in text and "nothing in the file ran" in text
        assert "Traceback" not in text
    assert "exec" in str(pytest.raises(CheckpointError, load_checkpoint, saved(evil), "e.pth", BUDGET).value)
    assert not marker.exists() and not touched.exists()


def test_a_whole_pickled_model_is_refused_with_a_hint():
    with pytest.raises(CheckpointError, match=r"state_dict\(\) instead"):
        load_checkpoint(saved(torch.nn.Linear(2, 2)), "model.pth", BUDGET)


def _zip_with(files: dict[str, bytes], compress=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        for name, content in files.items():
            z.writestr(name, content)
    return buf.getvalue()


def _safetensors_header(header: bytes, body: bytes = b"") -> bytes:
    return len(header).to_bytes(8, "little") + header + body


GOOD = saved({"w": torch.arange(1000.0)})
GOOD_ST = save_safetensors({"w": torch.arange(1000.0)})
MALFORMED = [
    (b"", "empty.pth", "empty"),
    (b"hello, this is not a checkpoint", "text.pth", "not a file saved by torch.save"),
    (GOOD[: len(GOOD) // 2], "truncated.pth", "damaged or truncated"),
    (_zip_with({"notes.txt": b"hi"}), "other.zip.pt", "could not be read as a torch.save checkpoint"),
    (b"\x80\x02" + b"\x00" * 40, "old.pth", "before 1.6"),
    (b"\x01\x02\x03", "short.safetensors", "too short"),
    (_safetensors_header(b"{}")[:6], "cut.safetensors", "too short"),
    ((10**9).to_bytes(8, "little") + b"{}", "huge_header.safetensors", "header claims"),
    (_safetensors_header(b"{not json}"), "bad.safetensors", "could not be read as a safetensors"),
    (GOOD_ST[:-100], "truncated.safetensors", "could not be read as a safetensors"),
    (
        _safetensors_header(b'{"w":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}', b"\0" * 16),
        "lying.safetensors", "could not be read as a safetensors",
    ),
    (saved([torch.ones(2)]), "list.pth", "holds a list, not a state dict"),
    (saved({"epoch": 3, "arch": "resnet"}), "notensors.pth", "holds no tensors"),
    (GOOD, "weights.txt", "not a checkpoint this page reads"),
]


@pytest.mark.parametrize("data,name,phrase", MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_files_get_clear_messages(data, name, phrase):
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(data, name, BUDGET)
    text = str(err.value)
    assert phrase in text, text
    assert name in text and "Traceback" not in text and len(text) < 600
    assert err.value.__suppress_context__ or err.value.__cause__ is None


def test_size_follows_the_memory_budget(headroom):
    data = saved({"w": torch.zeros(300_000)})  # 1.2 MB of tensors
    # More tensors than the third of the budget that keeps uploads for the pages:
    with pytest.raises(CheckpointError, match="memory budget of 2.0 MiB"):
        load_checkpoint(data, "big.pth", budget=2 << 20)
    # Admitted like other work, beside what the process holds:
    assert load_checkpoint(data, "big.pth", budget=headroom(16 << 20)).parameter_count == 300_000
    tight = headroom(512 << 10)
    with pytest.raises(CheckpointError, match="on top of the .* this server holds now, over this server's memory budget"):
        load_checkpoint(data, "big.pth", budget=tight)
    # the default follows convmix.budget.memory_budget()
    headroom(16 << 20)
    assert load_checkpoint(data, "big.pth").parameter_count == 300_000


@pytest.mark.parametrize(("budget_mib", "held_mib"), [(30, 0), (300, 0), (300, 200), (300, 290), (300, 400)])
def test_the_uploaders_limit_follows_the_admission(budget_mib, held_mib):
    """A file of the uploader's limit is admitted beside what is held (the server's copy of the
    upload and the page's copy count as held when it is read), a larger one is not, unless the kept
    share (a third of the budget) is what limits it."""
    budget, held = budget_mib << 20, held_mib << 20
    limit = max_file_bytes(budget, held)

    def admitted(size):  # the read's reservation, beside the two copies of the upload
        return held + 2 * size + load_bytes(size) <= budget

    assert limit >= 0 and limit <= budget // 3
    assert limit == 0 or admitted(limit)
    assert limit == budget // 3 or not admitted(limit + 4)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("form", ["pth", "safetensors"])
def test_reading_peaks_within_its_estimate(form):
    """The admission reserves load_bytes(payload): the resident memory that reading really adds at
    its peak (sampled while it runs) stays within it, and is most of it."""
    state = {f"w{i}": torch.randn(1 << 20) for i in range(16)}  # 64 MiB
    payload = 16 * 4 * (1 << 20)
    data = saved(state) if form == "pth" else save_safetensors(state)
    del state
    ck, grown = rss_growth(lambda: load_checkpoint(data, f"m.{form}"))
    assert ck.tensor_bytes == payload
    assert 0.8 * payload <= grown <= load_bytes(payload), (grown, load_bytes(payload))


def test_a_small_file_that_inflates_is_refused_before_decoding():
    bomb = _zip_with({"archive/data/0": b"\0" * (50 << 20)}, zipfile.ZIP_DEFLATED)
    assert len(bomb) < 1 << 20
    with pytest.raises(CheckpointError, match="memory budget"):
        load_checkpoint(bomb, "bomb.pth", budget=64 << 20)


def test_non_finite_weights_are_reported():
    ck = load_checkpoint(saved({"a": torch.tensor([1.0, float("nan")]), "b": torch.ones(2)}), "n.pt", BUDGET)
    assert ck.non_finite == ("a",)


# ---------------------------------------------------------------------------------------------
# ACmix layers
# ---------------------------------------------------------------------------------------------


def test_layers_of_the_authors_resnet(resnet26_state):
    layers = find_acmix_layers(resnet26_state)
    assert [x.name for x in layers] == [
        "layer1.0.conv2", "layer2.0.conv2", "layer2.1.conv2", "layer3.0.conv2", "layer3.1.conv2",
        "layer3.2.conv2", "layer3.3.conv2", "layer4.0.conv2"]
    assert [(x.in_planes, x.out_planes, x.head, x.kernel_conv, x.stride) for x in layers] == [
        (64, 64, 4, 3, 1), (128, 128, 4, 3, 2), (128, 128, 4, 3, 1), (256, 256, 4, 3, 2),
        (256, 256, 4, 3, 1), (256, 256, 4, 3, 1), (256, 256, 4, 3, 1), (512, 512, 4, 3, 2)]
    assert all(x.usable for x in layers)
    assert "not stored" in kernel_att_note() and "7" in kernel_att_note()
    assert resnet_depth(resnet26_state) == 26


def test_a_built_layer_computes_what_the_network_layer_computes(resnet26_state):
    model = acmix_resnet(26, seed=1)
    layer = find_acmix_layers(resnet26_state)[3]  # layer3.0.conv2, stride 2
    module = build_acmix(resnet26_state, layer)
    assert (module.kernel_att, module.stride, module.variant) == (7, 2, "official")
    x = torch.randn(1, 256, 28, 28)
    with torch.no_grad():
        assert torch.equal(module(x), model.layer3[0].conv2(x))


def test_a_layer_of_another_configuration_and_prefix():
    torch.manual_seed(0)
    source = ACmix(32, 48, kernel_att=5, head=6, kernel_conv=5, variant="fixed")
    state = {f"blocks.1.attn.{k}": v.half() for k, v in source.state_dict().items()}
    state["blocks.1.norm.weight"] = torch.ones(48)
    (layer,) = find_acmix_layers(state)
    assert (layer.name, layer.in_planes, layer.out_planes, layer.head, layer.kernel_conv, layer.stride) == (
        "blocks.1.attn", 32, 48, 6, 5, None)
    assert "give it" in layer.stride_source
    with pytest.raises(CheckpointError, match="fixed"):
        build_acmix(state, layer, kernel_att=5)
    module = build_acmix(state, layer, kernel_att=5, stride=1, variant="fixed")
    assert module.conv1.weight.dtype == torch.float32
    x = torch.randn(1, 32, 9, 9)
    reference = ACmix(32, 48, kernel_att=5, head=6, kernel_conv=5, variant="fixed")
    reference.load_state_dict({k: v.half().float() for k, v in source.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(module(x), reference(x))


def test_a_bare_acmix_state_dict_is_one_layer_at_the_top_level():
    (layer,) = find_acmix_layers(ACmix(16, 16).state_dict())
    assert layer.name == "" and layer.usable and layer.out_planes == 16


def test_inconsistent_layers_are_listed_with_their_problems():
    state = dict(ACmix(16, 16, head=4).state_dict())
    broken = {f"a.{k}": v for k, v in state.items()}
    broken["a.fc.weight"] = torch.zeros(9, 6, 1, 1)  # 3·head would be 12
    missing = {f"b.{k}": v for k, v in state.items() if k != "rate2"}
    with_bias = {f"c.{k}": v for k, v in state.items()} | {"c.dep_conv.bias": torch.zeros(16)}
    layers = find_acmix_layers(broken | missing | with_bias)
    assert [x.name for x in layers] == ["a", "b", "c"]
    assert not any(x.usable for x in layers)
    assert "3·head = 12" in layers[0].problems[0]
    assert layers[1].problems == ("b has no rate2",)
    assert "dep_conv.bias" in layers[2].problems[0]
    with pytest.raises(CheckpointError, match="b has no rate2"):
        build_acmix(missing, layers[1])


def test_statistics():
    fresh = ACmix(16, 16)  # shift kernels
    with torch.no_grad():
        fresh.rate1.fill_(0.8)
        fresh.rate2.fill_(0.2)
    net = acmix_resnet(26, seed=2)  # dep_conv overwritten by the network's init (Q11)
    state = {f"x.{k}": v for k, v in fresh.state_dict().items()}
    state |= {f"y.{k}": v for k, v in net.layer1[0].conv2.state_dict().items()}
    a, b = layer_statistics(state, find_acmix_layers(state))
    assert a.dep_conv_is_shift and a.dep_conv_shift_distance == 0 and a.dep_conv_shift_energy == 1
    assert a.rate_ratio == pytest.approx(4) and a.attention_weight == pytest.approx(0.8)
    assert not b.dep_conv_is_shift and b.rate_ratio == 1
    # share of energy on the own shift tap, by a loop: about 1/9 for random kernels
    w = net.layer1[0].conv2.dep_conv.weight.detach()
    own = sum(float(w[o, i, i // 3, i % 3]) ** 2 for o in range(64) for i in range(9))
    assert b.dep_conv_shift_energy == pytest.approx(own / float((w**2).sum()), rel=1e-5)
    assert 0.08 < b.dep_conv_shift_energy < 0.15
    norm = float(torch.linalg.vector_norm(net.layer1[0].conv2.conv2.weight.detach().flatten()))
    assert b.norms["conv2.weight"] == pytest.approx(norm, rel=1e-6)
    assert b.rms["conv2.weight"] == pytest.approx(norm / 64, rel=1e-6)  # 4096 values
    frame = statistics_frame([a, b])
    assert list(frame["name"]) == ["x", "y"] and "norm fc.weight" in frame.columns


def test_load_resnet_strictly(resnet26_state):
    data = saved({"state_dict": {f"module.{k}": v for k, v in resnet26_state.items()}})
    model = load_resnet(load_checkpoint(data, "r26.pth", BUDGET))
    reference = acmix_resnet(26, seed=1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    partial = dict(resnet26_state)
    del partial["layer2.1.bn1.weight"]
    with pytest.raises(CheckpointError, match="missing layer2.1.bn1.weight"):
        load_resnet(load_checkpoint(saved(partial), "p.pth", BUDGET))
    with pytest.raises(CheckpointError, match="not one of the authors"):
        load_resnet(load_checkpoint(saved(ACmix(8, 8).state_dict()), "a.pth", BUDGET))


# ---------------------------------------------------------------------------------------------
# Every message in Chinese
# ---------------------------------------------------------------------------------------------


def _every_refusal():
    """Every CheckpointError this module raises, as (case, call)."""
    acmix = ACmix(8, 8, head=2).state_dict()
    r26 = acmix_resnet(26, device="meta").state_dict()

    def load(data, name, budget=BUDGET):
        return lambda: load_checkpoint(data, name, budget)

    cases = [(f"malformed {name}", load(data, name)) for data, name, _phrase in MALFORMED]
    cases += [
        ("kept share", load(saved({"w": torch.zeros(300_000)}), "big.pth", 2 << 20)),
        ("too many files", load(_zip_with({f"x/{i}": b"" for i in range(100_001)}), "many.pth")),
        ("code-running pickle", load(saved({"a": RunsCode("pass")}), "evil.pth")),
        ("whole model", load(saved(torch.nn.Linear(2, 2)), "model.pth")),
        ("sparse", load(saved({"w": torch.eye(3).to_sparse()}), "sparse.pth")),
        ("not a resnet", lambda: load_resnet(load_checkpoint(saved(acmix), "a.pth", BUDGET))),
        ("resnet mismatch", lambda: load_resnet(load_checkpoint(
            saved({k: torch.zeros(v.shape) for k, v in r26.items() if k != "fc.bias"}), "r.pth", BUDGET))),
        ("incomplete layer", lambda: build_acmix({k: v for k, v in acmix.items() if k != "rate2"},
                                                 find_acmix_layers({k: v for k, v in acmix.items() if k != "rate2"})[0])),
        ("configuration", lambda: build_acmix(acmix, find_acmix_layers(acmix)[0], kernel_att=4)),
    ]
    return cases


@pytest.mark.parametrize(("case", "make"), _every_refusal(), ids=[c for c, _m in _every_refusal()])
def test_every_refusal_in_chinese_without_the_file_in_the_sentence(case, make):
    english, chinese = in_both(make)
    assert_translated(english, chinese)
    with pytest.raises(CheckpointError) as err:
        make()
    if err.value.filename:
        assert err.value.filename not in err.value.message and err.value.filename in str(err.value)


def test_the_file_s_own_text_travels_apart():
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(saved({"epoch": 3, "**bold**": "x"}), "meta.pth", BUDGET)
    assert "**bold**" in err.value.details and "**bold**" not in err.value.message
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(saved({"a": RunsCode("pass")}), "e.pth", BUDGET)
    assert "`exec`" in err.value.message  # a Python name, as code


def test_the_admission_refusal_in_chinese(headroom):
    data = saved({"w": torch.zeros(300_000)})
    need = human_bytes(load_bytes(1_200_000))
    for room in (512 << 10, 9 << 20):  # none left for a checkpoint; some, not enough
        budget = headroom(room)
        english, chinese = in_both(lambda budget=budget: load_checkpoint(data, "big.pth", budget))
        assert f"would need about {need} on top of" in english
        assert_translated(english, chinese)


BROKEN_LAYERS = {
    "missing": lambda s: {k: v for k, v in s.items() if k != "rate2"},
    "dep_conv bias": lambda s: {**s, "dep_conv.bias": torch.zeros(8)},
    "conv1 shape": lambda s: {**s, "conv1.weight": torch.zeros(8, 8, 3, 3)},
    "conv2 shape": lambda s: {**s, "conv2.weight": torch.zeros(4, 8, 1, 1)},
    "bias shape": lambda s: {**s, "conv3.bias": torch.zeros(3)},
    "conv_p shape": lambda s: {**s, "conv_p.weight": torch.zeros(4, 3, 1, 1)},
    "conv_p divide": lambda s: {**s, "conv_p.weight": torch.zeros(3, 2, 1, 1)},
    "fc shape": lambda s: {**s, "fc.weight": torch.zeros(8, 6, 1, 1)},
    "fc channels": lambda s: {**s, "fc.weight": torch.zeros(9, 5, 1, 1)},
    "dep_conv shape": lambda s: {**s, "dep_conv.weight": torch.zeros(8, 9, 2, 2)},
    "rate values": lambda s: {**s, "rate1": torch.zeros(2)},
}


@pytest.mark.parametrize("case", list(BROKEN_LAYERS))
@pytest.mark.parametrize("prefix", ["blk.", ""])
def test_every_layer_problem_and_stride_source_in_chinese(case, prefix):
    state = {prefix + k: v for k, v in BROKEN_LAYERS[case](dict(ACmix(8, 8, head=2).state_dict())).items()}
    english, chinese = (made_layer(state, lang) for lang in ("en", "zh"))
    assert english.problems and len(english.problems) == len(chinese.problems)
    for en, zh in zip(english.problems, chinese.problems, strict=True):
        assert_translated(en, zh)
        assert not prefix or "blk" in zh  # the layer's name is kept (shown as plain text)
    assert_translated(english.stride_source, chinese.stride_source)


def made_layer(state, lang):
    from convmix.i18n import language

    with language(lang):
        (layer,) = find_acmix_layers(state)
    return layer


def test_the_authors_layout_and_the_kernel_att_note_in_chinese(resnet26_state):
    english, chinese = in_both(lambda: find_acmix_layers(resnet26_state)[1].stride_source)
    assert_translated(english, chinese)
    assert_translated(*in_both(kernel_att_note))
