"""The bias page in Chinese: no English sentence left in the main area, for the default layer,
other layers, an uploaded image, and every refusal and notice the page can show; hostile URL
values told in Chinese. The article's own sentences stay exactly as the article has them."""

from __future__ import annotations

import contextvars
import io
import random

import numpy as np
import pytest
from PIL import Image

from convmix import bias as cb
from convmix import budget
from convmix.config import ACmixConfig
from convmix.i18n import language
from convmix.quirks import cite
from tests.bias_sections import each_section, open_section
from tests.i18n_text import english_left, visible_texts

PAGE = "pages/bias.py"


def english_in_main(at) -> list[tuple[str, str]]:
    """English left in the main area, apart from what library modules converted elsewhere word
    (the quirk's name from convmix.quirks, said in the ACmix section)."""
    with language("zh"):
        elsewhere = [cite("Q1")]
    return [(run, where) for run, where in english_left(at, area="main")
            if not any(run in other for other in elsewhere)]


def has_chinese(texts) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for t in texts for ch in t)


@pytest.fixture
def zh(app, monkeypatch):
    """Open the bias page in Chinese with these URL parameters."""
    # AppTest formats a menu's labels in the test's own thread: speak Chinese there too.
    monkeypatch.setattr("convmix.i18n._active", contextvars.ContextVar("test_language", default="zh"))

    def open_(**params):
        at = app(PAGE, query_params={"lang": "zh", **params})
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_


def source(at):
    (found,) = [w for w in at.radio if w.key and w.key.startswith("bias_source__")]
    return found


def test_the_default_page_has_no_english_left(zh):
    at = zh()
    texts = []
    for code in each_section(at, "zh"):
        assert not at.exception and not at.main.error and not at.main.warning, code
        assert english_in_main(at) == [], code
        texts += visible_texts(at, "main")
    joined = "\n".join(texts)
    # The article's own sentences, exactly as it has them, with no gloss for a Chinese reader.
    for quote in (cb.QUOTE_SCALAR, cb.QUOTE_NONLINEAR, cb.QUOTE_NEEDED, cb.QUOTE_LEARNED,
                  cb.QUOTE_NO_SHIFT, cb.QUOTE_DEP_CONV):
        assert f"“{quote}”" in joined
    assert cb.ARTICLE_TITLE in joined and "What does bias mean" not in joined
    # Chart labels too: the patch grid's rows, axes, legends and tooltips; the tabs' labels.
    assert "输入块（最大 |·| 为" in joined and "ReLU 之前" in joined and "这一层的偏置" in joined
    assert "逐项求和" in [t.label for t in at.tabs]


def test_english_keeps_the_gloss_beside_each_quote(app):
    at = open_section(app(PAGE), "article")
    joined = "\n".join(visible_texts(at, "main"))
    assert f"“{cb.QUOTE_SCALAR}” (a scalar added to each kernel's output)" in joined
    assert "“What does bias mean in `self.conv1" in joined


@pytest.mark.parametrize("params", [
    {"bias_in": "1", "bias_out": "8", "bias_kernel": "3", "bias_stride": "1", "bias_pad": "1",
     "bias_size": "32"},
    {"bias_out": "5", "bias_kernel": "1", "bias_stride": "3", "bias_pad": "0", "bias_bias": "false",
     "bias_size": "64"},
    {"bias_out": "4", "bias_kernel": "15", "bias_stride": "1", "bias_pad": "4", "bias_size": "8"},
], ids=["grey", "no-bias", "wide-kernel"])
def test_other_layers_have_no_english_left(zh, params):
    at = zh(**params)
    for code in each_section(at, "zh"):
        assert not at.exception and not at.main.error, code
        assert english_in_main(at) == [], code
    open_section(at, "shift", "zh")
    at.slider(key="bias_padding").set_value(at.slider(key="bias_padding").max).run()
    assert not at.exception and english_in_main(at) == []


def _png(size=(300, 200)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_an_uploaded_image_and_every_refusal_of_one(zh):
    at = zh()
    source(at).set_value("upload").run()
    assert english_in_main(at) == [] and any("还没有上传图像" in i.value for i in at.info)
    at.get("file_uploader")[0].set_value(("photo.png", _png(), "image/png"))
    at.run()
    assert not at.exception and not at.main.error
    assert english_in_main(at) == []
    assert any("你的图像（300×200 像素）" in c.value for c in at.caption)
    for name, data in [("empty.png", b"x"), ("gif.png", _encode(Image.new("RGB", (8, 8)), "GIF")),
                       ("huge.png", _encode(Image.new("1", (5000, 5000)), "PNG")),
                       ("cut.jpg", _encode(Image.new("RGB", (40, 30)), "JPEG")[:300])]:
        at.get("file_uploader")[0].set_value((name, data, "image/png"))
        at.run()
        assert not at.exception
        (error,) = [e.value for e in at.main.error]
        assert error.startswith("上传的文件无法使用") and "改为显示内置场景图" in error, error
        assert english_in_main(at) == [], name


def test_decoding_refused_by_the_budget_is_said_in_chinese(zh, headroom):
    at = zh(bias_size="32")
    headroom(48 << 20)
    source(at).set_value("upload").run()
    at.get("file_uploader")[0].set_value(("big.png", _encode(Image.new("RGB", (2000, 2000)), "PNG"),
                                          "image/png"))
    at.run()
    (error,) = [e.value for e in at.main.error]
    assert error.startswith("解码这张图像约需") and english_in_main(at) == []


def test_refusals_and_notices_are_said_in_chinese(zh, headroom):
    # A kernel that does not fit the input.
    at = zh(bias_kernel="15", bias_pad="0", bias_size="8")
    (error,) = [e.value for e in at.main.error]
    assert "15×15 的卷积核放不进填充为 0 的 8×8 输入" in error and english_in_main(at) == []
    # Values that no longer fit after a change: the channel, then the row.
    at = zh(bias_size="448", bias_row="200", bias_channel="50")
    at.number_input(key="bias_out").set_value(8).run()
    notes = [w.value for w in at.main.warning]
    assert notes == ["这一层没有输出通道 50；改为显示最后一个通道 7。"] and english_in_main(at) == []
    at.select_slider(key="bias_size").set_value(8).run()
    notes = [w.value for w in at.main.warning]
    assert notes == ["在这个尺寸下没有输出行 200；改为显示最后一行 3。"] and english_in_main(at) == []
    # A layer without a bias: the notices that replace the BatchNorm, gradient and claims sections.
    at = zh(bias_bias="false")
    infos = 0
    for _code in each_section(at, "zh"):
        infos += len(at.main.info)
        assert english_in_main(at) == []
    assert infos == 3
    # The sidebar's ACmix configuration cannot be built.
    at = open_section(zh(out_planes="30", head="4"), "acmix", "zh")
    assert any("侧边栏的 ACmix 配置无法构建" in w.value for w in at.main.warning)
    assert english_in_main(at) == []
    # Over the memory budget: the page, then one padding demonstration.
    wide = {"bias_out": "256", "bias_kernel": "3", "bias_stride": "1", "bias_pad": "1", "bias_size": "448"}
    headroom(cb.page_bytes(cb.view_from_query_params(wide)[0].layer, 160) + (48 << 20))
    at = zh(**wide)
    (error,) = [e.value for e in at.main.error]
    assert "会超过本服务器" in error and "放得下的更小输入" in error and english_in_main(at) == []


def test_a_padding_demonstration_refused_by_the_budget_is_said_in_chinese(zh, headroom):
    at = open_section(zh(), "shift", "zh")  # its demonstration at the first padding is cached
    headroom(1 << 20)
    at.slider(key="bias_padding").set_value(10).run()
    (warning,) = [w.value for w in at.main.warning]
    assert warning.startswith("padding=10 的演示约需") and english_in_main(at) == []


def test_what_another_request_reserved_is_said_in_chinese(zh, headroom):
    need = cb.page_bytes(cb.LayerSpec(), 224)
    limit = headroom(need + (96 << 20))
    with budget.admitted(ACmixConfig(), limit, lambda _config: need + (64 << 20)):
        at = zh()
    (error,) = [e.value for e in at.main.error]
    assert error.startswith("这一层在 224×224 输入上约需") and english_in_main(at) == []


HOSTILE = ["-1", "1e400", "-inf", "nan", "8.5", "0x10", "", "abc", "<script>alert(1)</script>",
           "![p](http://127.0.0.1:9/x.png)", ":red[x]", "$x^2$", "9" * 40, "１６", "`", "true"]
NAMES = ["bias_in", "bias_out", "bias_kernel", "bias_stride", "bias_pad", "bias_bias", "bias_size",
         "bias_channel", "bias_row", "bias_col"]


def test_hostile_bias_url_values_are_told_in_chinese(zh):
    """Each bias parameter with hostile values (several at once): no traceback, each value told in
    a Chinese sentence that shows it as text (a code span), and no English left."""
    rng = random.Random(12)
    urls = [{name: rng.choice(HOSTILE) for name in rng.sample(NAMES, rng.randint(1, 4))} for _url in range(12)]
    for params in urls:
        at = zh(**params)
        assert not at.main.error, params
        for warning in at.main.warning:
            assert warning.value.startswith("URL 参数 `"), (params, warning.value)
            assert "](http" not in warning.value.split("`")[0] + warning.value.split("`")[-1]
        assert english_in_main(at) == [], params
        assert has_chinese(visible_texts(at, "main"))
