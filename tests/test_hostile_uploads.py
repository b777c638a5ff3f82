"""Hostile uploads: seeded random images and result files, through the decoders and the pages.

Every image is decoded to RGB and cropped, or refused with an ImageError; every result file is read
or refused with a ResultFileError whose sentences quote the file only inside code spans. Nothing
raises anything else, no resize is larger than the image or the square it makes, and the process's
peak memory stays bounded. Classes covered (issue 11): thin images and EXIF rotations (item 2),
truncations anywhere, including the header (item 9), MPO (item 12), thousands of columns (item 6),
overflowing numbers, extra fields, repeated headers and out-of-range values (items 9, 10), markdown
and control characters in text (item 11).
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from test_hostile_urls import HOSTILE, _peak_resident, _reset_peak

from convmix import bias as cb
from convmix import sweep
from convmix.config import ACmixConfig

IMAGES = 300
FILES = 400
SIZES = [8, 16, 32, 64, 112, 160, 224, 320, 448]


# -- images -------------------------------------------------------------------------------------------
def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width × height and stops after its header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def hostile_image(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    w, h = rng.choice([(1, 1), (3, 5), (64, 48), (4096, 1), (1, 4096), (4096, 2), (300, 7), (4000, 4000)])
    mode = rng.choice(["RGB", "L", "1", "P", "RGBA", "LA", "I;16", "CMYK"])
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
    if kind == 1:
        return _png_header_only(rng.choice([5000, 10**5, 2**31 - 1, 0]), rng.choice([1, 5000, 10**5]))
    if mode in ("LA", "RGBA", "P", "1", "I;16") and w * h > 1 << 20:
        w, h = 64, 48  # keep the test's own drawing cheap
    if mode == "I;16":
        grey = np.random.default_rng(rng.randrange(1 << 30)).integers(0, 65536, (h, w), dtype=np.uint16)
        img = Image.fromarray(grey)  # mode I;16
    elif w * h <= 1 << 16:
        img = Image.effect_noise((w, h), 64).convert(mode)
    else:
        img = Image.new(mode, (w, h))
    fmt = "PNG" if mode in ("LA", "RGBA", "P", "1", "I;16") else rng.choice(["PNG", "JPEG"])
    if mode == "CMYK":
        fmt = "JPEG"  # PNG has no CMYK; a JPEG from a print workflow does
    if kind == 2 and fmt == "JPEG":
        exif = Image.Exif()
        exif[0x0112] = rng.randrange(1, 9)
        return _encode(img, "JPEG", exif=exif)
    if kind == 3 and mode == "RGB":
        return _encode(img, "MPO", save_all=True, append_images=[img.resize((8, 8))])
    if kind == 4:
        return _encode(img.convert("RGB"), rng.choice(["GIF", "BMP", "TIFF"]))
    data = _encode(img, fmt)
    if kind == 5:
        return data[: rng.randrange(len(data))]  # cut anywhere, the header included
    if kind == 6:
        flipped = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        return bytes(flipped)
    return data


def test_hostile_images_decode_or_are_refused(monkeypatch):
    rng = random.Random(11)
    resizes: list[tuple[tuple[int, int], tuple[int, int]]] = []
    original = Image.Image.resize

    def resize(self, size, *args, **kwargs):
        resizes.append((self.size, tuple(size)))
        return original(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    cases = [hostile_image(rng) for _ in range(IMAGES)]
    exact = _reset_peak()
    before = _peak_resident()
    decoded = refused = 0
    for data in cases:
        try:
            img = cb.decode_upload(data)
        except cb.ImageError as err:
            refused += 1
            assert "PNG or JPEG" in str(err)
            continue
        size = rng.choice(SIZES)
        assert img.mode == "RGB" and img.width * img.height <= cb.MAX_PIXELS
        assert cb.square_crop(img, size).shape == (size, size, 3)
        decoded += 1
    assert decoded > 50 and refused > 50
    # No resize makes more pixels than the square it is asked for (a 4096×1 image used to become
    # 1,835,008×448 pixels first).
    assert all(w * h <= max(SIZES) ** 2 for _, (w, h) in resizes)
    if exact:  # the largest legal image (4,000×4,000 RGB) decodes to 48 MB, and PIL keeps a copy
        assert _peak_resident() - before < 160 << 20


def test_hostile_images_on_the_bias_page(app):
    rng = random.Random(12)
    for size in (448, 64):
        at = app("pages/bias.py", query_params={"bias_size": size})
        # The image menu is convmix.ui.widgets.choice: its widget key carries the language.
        at.radio(key="bias_source__en").set_value("upload").run()
        for i in range(6):
            at.get("file_uploader")[0].set_value((f"fuzz{i}.png", hostile_image(rng), "image/png"))
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            assert len(at.error) <= 1


# -- result files ------------------------------------------------------------------------------------------
def _valid_file() -> bytes:
    configs = [ACmixConfig(kernel_att=k, head=h) for k in (3, 5) for h in (1, 4)]
    rows = {c: {"latency_ms": 1.0 + i, "latency_ms_p25": 0.5 + i, "latency_ms_p75": 2.0 + i,
                "peak_bytes": 1000 * (i + 1), "device": "cpu", "device_name": "fuzz", "dtype": "float32",
                "torch_version": "2.13.0", "threads": 4}
            for i, c in enumerate(configs)}
    return sweep.to_csv(sweep.sweep_frame(configs, rows))


TEXT_HOSTILE = HOSTILE + ["1e400", "-1e400", "9" * 30, "1e30", "-0", "0.5", "x" * 200, "a\rb", "\u202e",
                          "[l](http://127.0.0.1:9/)", "<img src=http://127.0.0.1:9/i>", ":material/home:",
                          "`", "``", '"', "2e9", "999999"]


def hostile_file(rng: random.Random, base: bytes) -> bytes:
    lines = base.decode().splitlines()
    header = lines[0].split(",")
    kind = rng.randrange(9)
    if kind == 0:  # cells replaced
        rows = [line.split(",") for line in lines[1:]]
        for _ in range(rng.randrange(1, 6)):
            row = rng.choice(rows)
            value = rng.choice(TEXT_HOSTILE)
            row[rng.randrange(len(row))] = '"' + value.replace('"', '""') + '"' if "," in value or '"' in value \
                or "\n" in value or "\r" in value else value
        lines = [lines[0]] + [",".join(r) for r in rows]
    elif kind == 1:  # extra or missing fields
        i = rng.randrange(1, len(lines))
        lines[i] = lines[i] + ",extra" * rng.randrange(1, 3) if rng.random() < 0.5 else lines[i].rsplit(",", 1)[0]
    elif kind == 2:  # a repeated header
        header[rng.randrange(len(header))] = rng.choice(header)
        lines[0] = ",".join(header)
    elif kind == 3:  # many columns
        n = rng.choice([300, 3000, 12_000])
        lines = [",".join(f"c{j}" for j in range(n)), ",".join("1" for _ in range(n))]
    elif kind == 4:  # markdown in names of columns and in text cells
        header.append(rng.choice(TEXT_HOSTILE).replace(",", ";").replace("\n", " "))
        lines = [",".join(header)] + [line + ",x" for line in lines[1:]]
    elif kind == 5:
        return base[: rng.randrange(len(base))]
    elif kind == 6:
        return rng.choice([b"\xff\xfe" + base, base.replace(b"\n", b"\r\n"), base + b"\n\n\n",
                           base.replace(b",", b"\x00", 3), b'"' + base, "\ufeff".encode() + base])
    elif kind == 7:  # rows multiplied past the limit
        return (lines[0] + "\n" + "\n".join(lines[1:] * 1300) + "\n").encode()
    lines = [line for line in lines if line is not None]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def _outside_code_spans(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "`":
            run = len(text[i:]) - len(text[i:].lstrip("`"))
            end = text.find("`" * run, i + run)
            if end < 0:
                out.append(text[i:])
                break
            i = end + run
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def test_hostile_result_files_are_read_or_refused_with_sentences():
    rng = random.Random(13)
    base = _valid_file()
    exact = _reset_peak()
    before = _peak_resident()
    read = refused = 0
    for _ in range(FILES):
        data = hostile_file(rng, base)
        try:
            df = sweep.read_results(data, "fuzz.csv")
        except sweep.ResultFileError as err:
            refused += 1
            for problem in err.problems:
                plain = _outside_code_spans(problem)
                assert "](" not in plain and "<img" not in plain and ":material" not in plain, problem
            continue
        read += 1
        for col, (lo, hi) in sweep.INT_RANGES.items():
            if col in df and df[col].notna().any():
                assert lo <= df[col].min() and df[col].max() <= hi
        assert len(sweep.read_results(sweep.to_csv(df))) == len(df)  # writes back without overflow
    assert read > 20 and refused > 200
    if exact:
        assert _peak_resident() - before < 64 << 20


def test_hostile_result_files_on_the_explorer(app):
    rng = random.Random(14)
    at = app("pages/explorer.py")
    base = _valid_file()
    for _ in range(6):
        # (Streamlit itself refuses a file name with a NUL byte.)
        names = [rng.choice(TEXT_HOSTILE)[:30].replace("\x00", "") + ".csv" for _j in range(3)]
        files = [(name, hostile_file(rng, base), "text/csv") for name in names]
        at.file_uploader(key="explorer_upload").set_value(files).run()
        assert not at.exception, [e.value for e in at.exception]
        for element in [*at.error, *at.success]:
            plain = _outside_code_spans(element.value)
            assert "](" not in plain and "<img" not in plain, element.value


@pytest.mark.parametrize("text", ["`", "a`b", "``x``", " x ", "[a](b)", "![i](http://h/i.png)"])
def test_the_code_span_helper_round_trips(text):
    from convmix.format import literal

    span = literal(text)
    assert _outside_code_spans(span) == ""
