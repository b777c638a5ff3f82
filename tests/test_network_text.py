"""The words of the "ACmix in ResNet" page for what convmix.paper returns as data and convmix.bias's
picture reader as English: findings worded from their own figures, labels, the pictures' credits, and
the picture reader's refusals, in English and in Chinese. (The checkpoint reader and the sources
word their own refusals: tests/test_checkpoint.py, tests/test_sources.py.)"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from convmix import images, paper
from convmix import network_text as text
from convmix.bias import ImageError, decode_upload
from convmix.i18n import language
from convmix.models import DEPTHS, acmix_resnet
from tests.i18n_text import english_runs


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
    for picture in images.pictures():
        assert picture.id in text.PICTURE_TITLES and picture.licence in text.LICENCE_LABELS


def test_the_paper_size_is_the_size_convmix_paper_counts_at():
    import inspect

    assert inspect.signature(paper.network_entries).parameters["height"].default == text.PAPER_SIZE
    assert inspect.signature(paper.stage1_shares).parameters["size"].default == text.PAPER_SIZE


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_picture_has_a_title_and_a_credit(lang):
    with language(lang):
        for picture in images.pictures():
            title, credit = text.picture_title(picture), text.picture_credit(picture)
            assert title in credit and picture.author in credit and picture.url in credit
            if lang == "zh":
                runs = [r for r in english_runs(credit) if r not in picture.author]
                assert english_runs(title) == [] and runs == [], credit
