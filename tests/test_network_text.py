"""The page's words for what the library returns: findings worded from their own figures, and every
refusal of the checkpoint reader, the picture reader and the sources, in English and in Chinese."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest
import torch
from PIL import Image
from safetensors.torch import save as save_safetensors

from convmix import network_text as text
from convmix import paper, sources
from convmix.acmix import ACmix
from convmix.bias import ImageError, decode_upload
from convmix.checkpoint import CheckpointError, build_acmix, find_acmix_layers, load_checkpoint, load_resnet
from convmix.i18n import language
from convmix.models import DEPTHS, acmix_resnet
from tests.i18n_text import english_runs

BUDGET = 1 << 30
FALLBACK = "The file could not be used as a checkpoint. The reader's own explanation follows."


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class RunsCode:
    def __reduce__(self):
        return (exec, ("raise SystemExit('ran')",))


def zipped(entries: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(entries):
            z.writestr(f"x/{i}", b"")
    return buf.getvalue()


def inflating() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data/0", b"\0" * (8 << 20))
    return buf.getvalue()


def sparse_state() -> bytes:
    return saved({"w": torch.eye(3).to_sparse()})


SMALL_ACMIX = ACmix(8, 8, head=2).state_dict()
R26 = acmix_resnet(26, device="meta").state_dict()


def refusal(data: bytes, name: str, budget: int = BUDGET) -> CheckpointError:
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(data, name, budget)
    return err.value


FILES = {
    "wrong extension": (b"abc", "weights.bin", BUDGET),
    "empty": (b"", "e.pth", BUDGET),
    "payload over budget": (inflating(), "big.pth", 3 << 20),
    "safetensors too short": (b"abc", "s.safetensors", BUDGET),
    "safetensors header": (struct.pack("<Q", 10**6) + b"{}", "s.safetensors", BUDGET),
    "legacy format": (b"\x80\x02" + b"x" * 50, "old.pth", BUDGET),
    "not torch.save": (b"hello world, not a checkpoint", "g.pth", BUDGET),
    "damaged archive": (b"PK\x03\x04" + b"\0" * 40, "d.pth", BUDGET),
    "too many files": (zipped(100_001), "many.pth", BUDGET),
    "code-running pickle": (saved({"a": RunsCode()}), "evil's `name`.pth", BUDGET),
    "whole pickled model": (saved(torch.nn.Linear(2, 2)), "model.pth", BUDGET),
    "unreadable torch": (saved({"a": torch.zeros(2)})[:-30], "cut.pth", BUDGET),
    "unreadable safetensors": (struct.pack("<Q", 8) + b"not json", "x.safetensors", BUDGET),
    "not a mapping": (saved([torch.zeros(2)]), "list.pth", BUDGET),
    "no tensors": (saved({"epoch": 3, "**bold**": "x"}), "meta.pth", BUDGET),
    "sparse": (sparse_state(), "sparse.pth", BUDGET),
}


def worded_refusal(case: str) -> text.Worded:
    data, name, budget = FILES[case]
    return text.checkpoint_error(refusal(data, name, budget), name)


@pytest.mark.parametrize("case", list(FILES))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_checkpoint_refusal_is_worded_without_the_file_in_the_sentence(case, lang):
    name = FILES[case][1]
    with language(lang):
        worded = worded_refusal(case)
        assert worded.text != text._(FALLBACK)
    assert name not in worded.text  # the file's own text never enters a sentence
    if lang == "zh":
        assert english_runs(worded.text) == [], worded.text


def test_refusal_wording_keeps_the_facts():
    evil = worded_refusal("code-running pickle")
    assert "`exec`" in evil.text and "weights_only=True" in evil.text
    assert "state_dict()" in worded_refusal("whole pickled model").text
    assert "**bold**" in worded_refusal("no tensors").details
    over = worded_refusal("payload over budget")
    assert "8.0 MiB" in over.text and "3.0 MiB" in over.text
    with language("zh"):
        assert "`exec`" in worded_refusal("code-running pickle").text


def test_network_mismatches_are_worded():
    partial = {k: torch.zeros(v.shape) for k, v in R26.items() if k != "fc.bias"}
    checkpoint = load_checkpoint(saved(partial), "r26.pth", BUDGET)
    with pytest.raises(CheckpointError) as err:
        load_resnet(checkpoint)
    with language("zh"):
        worded = text.checkpoint_error(err.value, "r26.pth")
    assert "ResNet-26" in worded.text and "fc.bias" in worded.details and not english_runs(worded.text)
    alone = load_checkpoint(saved(SMALL_ACMIX), "a.pth", BUDGET)
    with pytest.raises(CheckpointError) as err:
        load_resnet(alone)
    with language("zh"):
        assert not english_runs(text.checkpoint_error(err.value, "a.pth").text)


def test_an_unknown_message_falls_back_with_the_readers_text():
    worded = text.checkpoint_error(CheckpointError("'x.pth' did something new."), "x.pth")
    assert worded.text == FALLBACK and worded.details == "{file} did something new."


BROKEN = {
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


@pytest.mark.parametrize("case", list(BROKEN))
def test_every_layer_problem_is_worded(case):
    state = {f"blk.{k}": v for k, v in BROKEN[case](dict(SMALL_ACMIX)).items()}
    (layer,) = find_acmix_layers(state)
    assert layer.problems
    for problem in layer.problems:
        with language("zh"):
            worded = text.layer_problem(layer, problem)
        assert worded != problem and not english_runs(worded), (problem, worded)
    with language("zh"):
        built = text.build_error(pytest.raises(CheckpointError, build_acmix, state, layer).value)
    assert not english_runs(built.text) and built.details


def test_a_configuration_acmix_cannot_run_is_worded():
    layer = find_acmix_layers(SMALL_ACMIX)[0]
    with pytest.raises(CheckpointError) as err:
        build_acmix(SMALL_ACMIX, layer, kernel_att=4)
    with language("zh"):
        worded = text.build_error(err.value)
    assert not english_runs(worded.text) and "kernel_att" in worded.details


def png(size=(8, 8), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size).save(buf, format=fmt)
    return buf.getvalue()


PICTURES = {
    "empty": b"",
    "too big": b"x" * (6 << 20),
    "format": png(fmt="GIF"),
    "pixels": png((4097, 2)),
    "unreadable": b"not an image",
    "damaged": png((64, 64))[:60],
}


@pytest.mark.parametrize("case", list(PICTURES))
def test_every_picture_refusal_is_worded(case):
    with pytest.raises(ImageError) as err:
        decode_upload(PICTURES[case])
    with language("zh"):
        worded = text.upload_picture_error(str(err.value))
        assert not english_runs(worded) and not worded.startswith(text._("The picture could not be used."))


def source_error(code, **values):
    return sources.SourceError(code, "English", **values)


SOURCE_ERRORS = [
    source_error("budget", need=2 << 30, budget=1 << 30, what="forward", layer="layer1.0.conv2"),
    source_error("budget", need=2 << 30, budget=1 << 30, what="stem"),
    source_error("network_too_large", need=70 << 20, limit=32 << 20, depth=50),
    source_error("net_seed", seed=-1, low=0, high=2**31 - 1),
    source_error("unknown_layer", layer="x", layers=["a", "b"]),
    source_error("image_size", size=100, low=64, high=512, step=32),
    source_error("upload_missing", kind="picture", short="abc"),
    source_error("upload_missing", kind="checkpoint", short="abc"),
    source_error("no_forward", reason="'a.pth' is not one of the authors' ACmix ResNets (26, 38, 50): x",
                 filename="a.pth"),
    source_error("picture", reason="The file is empty. Upload a PNG."),
    source_error("layer", reason="blk cannot run as ACmix: kernel_att must be odd."),
    source_error("config", problems=["out_planes must be divisible by head."]),
]


@pytest.mark.parametrize("err", SOURCE_ERRORS, ids=[f"{e.code}-{i}" for i, e in enumerate(SOURCE_ERRORS)])
def test_every_source_error_and_note_is_worded(err):
    with language("zh"):
        worded = text.source_error(err)
    assert not english_runs(worded.text) and worded.text != text._("This cannot be shown here.")


@pytest.mark.parametrize("code", ["net", "net_seed", "layer", "picture", "image_size", "upload_missing"])
def test_every_url_note_is_worded(code):
    values = {"net_seed": (("low", 0), ("high", 9)), "layer": (("network", "ResNet-26"),),
              "picture": (("default", "chelsea"),),
              "image_size": (("low", 64), ("high", 512), ("step", 32), ("default", 224))}.get(code, ())
    note = sources.Note(code, "x_y", values)
    with language("zh"):
        worded = text.note_text(note)
    assert "`x_y`" in worded and not english_runs(worded)


# -- the findings ---------------------------------------------------------------------------------


def test_every_finding_is_worded_from_its_own_figures():
    findings = paper.findings()
    for lang in ("en", "zh"):
        with language(lang):
            worded = [text.finding_text(f) for f in findings]
        assert [w.status for w in worded] == [f.status for f in findings]
        for f, w in zip(findings, worded, strict=True):
            assert w.topic == next(iter(f.figures))
            assert (w.statement, w.evidence) != (f.statement, f.evidence) or lang == "en"
            if lang == "zh":
                assert not english_runs(w.statement) and not english_runs(w.evidence), w
    with language("en"):
        by_topic = {w.topic: w for w in map(text.finding_text, findings)}
    for d in DEPTHS:  # the figures shown are the live counts, independently recomputed here
        assert f"{sum(p.numel() for p in acmix_resnet(d, device='meta').parameters()):,}" in by_topic["params"].evidence
        assert f"{paper.conv_linear_macs(d) / 1e9:.6f}" in by_topic["conv_linear_macs"].evidence
    low, high = by_topic["share_range"].evidence.split("from ")[1].split(" %.")[0].split(" % to ")
    shares = [s.share_macs for d in DEPTHS for s in paper.stage1_shares(d)]
    assert (float(low), float(high)) == (round(100 * min(shares), 1), round(100 * max(shares), 1))


def test_labels_cover_the_library_keys():
    for key in paper.STAGES:
        assert key in text.STAGE_LABELS
    for key in paper.KINDS:
        assert key in text.KIND_LABELS
    for d in DEPTHS:
        assert set(paper.parameter_candidates(d)) <= set(text.PARAMETER_CANDIDATE_LABELS)
        assert set(paper.flops_candidates(d)) <= set(text.FLOPS_CANDIDATE_LABELS)
    from convmix import images

    for picture in images.pictures():
        assert picture.id in text.PICTURE_TITLES and picture.licence in text.LICENCE_LABELS


def test_safetensors_of_a_bare_layer_is_read():  # the format the refusals above are not about
    data = save_safetensors({k: v.contiguous() for k, v in SMALL_ACMIX.items()})
    assert load_checkpoint(data, "a.safetensors", BUDGET).format == "safetensors"


def test_the_paper_size_is_the_size_convmix_paper_counts_at():
    import inspect

    assert inspect.signature(paper.network_entries).parameters["height"].default == text.PAPER_SIZE
    assert inspect.signature(paper.stage1_shares).parameters["size"].default == text.PAPER_SIZE
