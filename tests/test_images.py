"""Built-in pictures: files, sizes, licences, README attribution; picture and upload loading."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convmix.bias import ImageError, square_crop
from convmix.images import (
    CATALOGUE,
    IMAGES_DIR,
    attribution_markdown,
    crop_to,
    load_picture,
    picture_rgb,
    pictures,
    upload_rgb,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def test_catalogue_lists_every_file_with_its_licence():
    entries = json.loads(CATALOGUE.read_text())["pictures"]
    assert 3 <= len(entries) <= 5 and len(pictures()) == len(entries)
    files = {p.file for p in pictures()}
    assert files == {f.name for f in IMAGES_DIR.glob("*.jpg")}
    total = 0
    for p in pictures():
        assert p.title and p.author and p.source_package.startswith("scikit-image")
        assert p.licence.startswith(("CC0", "Public domain")) and p.url.startswith("https://")
        with Image.open(p.path) as img:
            assert img.format == "JPEG" and max(img.size) <= 512
        total += p.path.stat().st_size
    assert total < 500_000


def test_readme_carries_the_attribution():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Pictures", 1)[1].split("\n## ", 1)[0]
    assert attribution_markdown() in section
    for p in pictures():
        assert p.author in section and p.licence in section


def test_pictures_at_any_size():
    for p in pictures():
        img = load_picture(p.id)
        assert img.mode == "RGB"
        square = picture_rgb(p.id, 224)
        assert square.shape == (224, 224, 3) and square.dtype == np.uint8
        assert np.array_equal(square, square_crop(img, 224))
        assert picture_rgb(p.id, 64, 96).shape == (64, 96, 3)
    with pytest.raises(ValueError, match="chelsea"):
        picture_rgb("mona_lisa", 64)


def test_crop_keeps_the_centre_at_the_targets_aspect():
    # a 300x100 image: left third red, centre green, right third blue
    arr = np.zeros((100, 300, 3), dtype=np.uint8)
    arr[:, :100, 0] = 255
    arr[:, 100:200, 1] = 255
    arr[:, 200:, 2] = 255
    out = crop_to(Image.fromarray(arr), 50, 50)  # square: the green centre
    assert out[25, 25, 1] > 200 and out[25, 25, 0] < 50
    wide = crop_to(Image.fromarray(arr), 10, 30)  # same aspect: everything kept
    assert wide[5, 2, 0] > 200 and wide[5, 27, 2] > 200
    with pytest.raises(ValueError, match="at least 1×1"):
        crop_to(Image.fromarray(arr), 0, 10)


def test_uploads_reuse_the_bias_pages_validation():
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 80, 3), 128, dtype=np.uint8)).save(buf, "PNG")
    assert upload_rgb(buf.getvalue(), 32).shape == (32, 32, 3)
    with pytest.raises(ImageError, match="not an image"):
        upload_rgb(b"definitely not a picture", 32)
    with pytest.raises(ImageError, match="empty"):
        upload_rgb(b"", 32)


def test_every_message_in_chinese():
    from convmix.images import picture
    from tests.library_messages import assert_translated, in_both

    for make in (lambda: picture("nope"), lambda: crop_to(load_picture("chelsea"), 0, 5)):
        assert_translated(*in_both(make))
