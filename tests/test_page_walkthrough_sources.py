"""AppTest of the walkthrough's sources and languages (issues 12, 13 items 4-5, 14 item 5).

Each kind of source opens every section: the sidebar's module on a photograph (the default) and on
seeded noise, a layer of the authors' ResNet named by the URL, and the layer trained on the "Train it
live" page. The numbers shown are checked against independent computations (the module run directly
on the input built by hand, the network's modules called one by one). Every section is rendered in
English and in Chinese with no English left in the main area; section ids, the input menu and the
new URL keys survive hostile values; refusals come before allocation.
"""

from __future__ import annotations

import contextvars
import urllib.parse

import numpy as np
import pytest
import torch

from convmix import budget, images, sources
from convmix import walkthrough as wt
from convmix.activations import stem_features
from convmix.budget import BUDGET_ENV
from convmix.config import ACmixConfig
from convmix.digits import default_split, load_digits
from convmix.i18n import _ as translate
from convmix.i18n import language
from convmix.models import acmix_resnet
from convmix.quirks import QUIRKS, cite
from convmix.ui import walkthrough_source as ws
from convmix.ui.cache import get_walk
from tests.by_hand import by_hand_until
from tests.i18n_text import english_left, english_runs
from tests.test_hostile_urls import HOSTILE

PAGE = "pages/walkthrough.py"
TRAIN = "pages/train.py"
TINY_TRAIN = {"train_width": 4, "train_head": 1, "train_kernel_att": 3, "train_batch": 256, "train_epochs": 2}
AUTHORS = [p.author for p in images.pictures()]  # people's names stay as they are in every language
RESNET = {"net": "resnet26", "net_seed": "3", "layer": "layer2.0.conv2", "picture": "coffee", "image_size": "64"}


@pytest.fixture
def page(app, monkeypatch):
    def open_page(lang: str = "en", **params):
        # AppTest formats a menu's options in the test's own thread: it must speak the page's language.
        monkeypatch.setattr("convmix.i18n._active", contextvars.ContextVar("test_language", default=lang))
        at = app(PAGE, query_params={"lang": lang, **params})
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_page


def show(at, section: str):
    at.session_state["wt_section"] = section
    at.run()
    assert not at.exception, (section, [e.value for e in at.exception])
    return at


def texts(at) -> str:
    return "\n".join([m.value for m in at.main.markdown] + [c.value for c in at.main.caption]
                     + [e.value for e in at.main.error] + [w.value for w in at.main.warning]
                     + [i.value for i in at.main.info])


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def untranslated_library_texts() -> list[str]:
    """The quirks' words (convmix.quirks), which the library's own catalog translates: those not yet
    translated in this checkout are not the walkthrough's to translate."""
    left = []
    with language("zh"):
        for quirk in QUIRKS.values():
            left += [text for text in (quirk.name, quirk.what, quirk.evidence) if translate(text) == text]
            if english_runs(cite(quirk.code)):
                left.append(cite(quirk.code))
    return left


def english_in_main(at) -> list:
    excused = untranslated_library_texts()
    return [(run, where) for run, where in english_left(at, area="main")
            if not any(run in author for author in AUTHORS) and not any(run in text for text in excused)]


def same_features(shown: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal to float32 rounding. Both sides run the stem on one thread (the server's count; the
    tests use the `one_thread` fixture): oneDNN's convolution sums in an order that depends on the
    thread count, and the stem's per-picture BatchNorm magnifies the last bits in channels of small
    variance."""
    return shown.shape == expected.shape and torch.allclose(shown, expected, rtol=1e-5, atol=1e-5)


def every_section(at, check) -> None:
    for section in wt.SECTION_IDS:
        show(at, section)
        assert not at.main.error, (section, [e.value for e in at.main.error])
        check(at, section)


# -- the sidebar's module: a photograph by default, noise as a choice ------------------------------------


@pytest.mark.usefixtures("one_thread")
def test_the_default_input_is_a_photograph_through_the_seed_stem(page):
    config = ACmixConfig(height=16, width=16, batch=2)
    at = page(height=16, width=16, batch=2)
    assert at.selectbox(key="wt_input__en").value == "chelsea"
    assert "picture" not in at.query_params  # the default is left out of the URL
    shown = get_walk(ws.default_source(config))
    # Independently: the pictures prepared here, the stem, then the module itself, not traced.
    second = images.pictures()[1].id
    x = stem_features([images.picture_rgb("chelsea", 64), images.picture_rgb(second, 64)]).features
    assert same_features(shown.x, x), (shown.x - x).abs().max().item()
    with torch.no_grad():
        assert torch.allclose(shown.trace.output, config.build()(x), atol=1e-6)
    words = texts(at)
    assert "the photograph *Chelsea the cat* at 64×64 pixels through the seed's stem" in words
    assert "Batch items 1 to 1 are the other built-in photographs" in words
    assert "Conv2d(3, 64, 7, 2, 3, bias=True)" in words
    assert at.main.get("image")  # the picture that goes in is shown
    # The maps show the picture's structure: neighbouring outputs are far more alike than noise's.
    noise = get_walk(sources.RandomInit(config)).trace.output[0].double()
    photo = shown.trace.output[0].double()

    def roughness(t):
        return float((t[:, 1:] - t[:, :-1]).abs().mean() / t.std())

    assert roughness(photo) < 0.5 * roughness(noise)


def test_noise_is_a_choice_bound_to_the_url(page, monkeypatch):
    at = page()
    at.selectbox(key="wt_input__en").set_value(sources.NOISE).run()
    assert not at.exception and at.query_params["picture"] == "noise"
    assert "**Input**: seeded random noise" in texts(at)
    shown = get_walk(sources.RandomInit(ACmixConfig()))
    with torch.no_grad():
        assert torch.allclose(shown.trace.output, ACmixConfig().build()(ACmixConfig().make_input()), atol=1e-6)
    at.selectbox(key="wt_input__en").set_value("rocket").run()
    assert at.query_params["picture"] == "rocket"
    at.selectbox(key="wt_input__en").set_value("chelsea").run()
    assert "picture" not in at.query_params
    # A copied URL opens on its input, whatever the session chose before.
    again = page(picture="noise")
    assert again.selectbox(key="wt_input__en").value == sources.NOISE
    assert "seeded random noise (1 × 64 × 56 × 56" in texts(again)


@pytest.mark.usefixtures("one_thread")
def test_in_planes_other_than_64_take_the_stem_filters_in_order(page):
    at = page(in_planes=96, height=8, width=8)
    assert "the stem's 64 filters and 32 more drawn from the same distribution" in texts(at)
    at = page(in_planes=3, out_planes=8, head=2, height=8, width=8)
    assert "the first 3 of the stem's 64 filters" in texts(at)
    shown = get_walk(ws.default_source(ACmixConfig(in_planes=3, out_planes=8, head=2, height=8, width=8)))
    expected = stem_features(images.picture_rgb("chelsea", 32)).features[:, :3]
    assert same_features(shown.x, expected), (shown.x - expected).abs().max().item()


# -- a layer of the authors' ResNet, named by the URL --------------------------------------------------


def test_a_resnet_layer_from_the_url_opens_on_the_activation_that_reaches_it(page):
    at = page(**RESNET)
    words = texts(at)
    assert "layer `layer2.0.conv2` of the authors' ACmix ResNet-26, randomly initialised from seed 3" in words
    assert "*A cup of coffee*, resized and centre-cropped to 64×64 pixels" in words
    assert "The sidebar's configuration does not apply" in words
    assert {k: at.query_params[k] for k in RESNET} == RESNET  # the URL names what is shown
    network = acmix_resnet(26, seed=3).eval()
    own = network.get_submodule("layer2.0.conv2")
    assert metrics(at)["Parameters"] == f"{sum(p.numel() for p in own.parameters()):,}"
    source = sources.NetworkLayer(sources.ResNetRef(26, 3), "layer2.0.conv2", sources.BuiltinPicture("coffee"), 64)
    shown = get_walk(source)
    x = sources.to_network_input(images.picture_rgb("coffee", 64))
    assert torch.allclose(shown.x, by_hand_until(network, x, "layer2.0.conv2"), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(shown.trace.output, own(shown.x), atol=1e-5)
    assert (shown.config.in_planes, shown.config.stride, shown.config.height) == (128, 2, 16)

    def check(at, section):
        if section == "dep_conv":  # their init loop replaced the shift kernels: say so, do not pretend
            assert "no longer holds the shift kernels" in texts(at)
            assert "‖W − shift kernels‖ / ‖shift kernels‖" in metrics(at)
        if section == "channel_grouping":
            assert "differ (largest difference within a group" in texts(at)

    every_section(at, check)
    link = [p for p in at.get("page_link") if p.proto.page == "network"]
    assert link and dict(urllib.parse.parse_qsl(link[0].proto.query_string))["layer"] == "layer2.0.conv2"
    at.button(key="wt_forget").click().run()
    assert not at.exception and not any(k in at.query_params for k in ("net", "layer", "image_size"))
    assert "**Module**: the sidebar's configuration" in texts(at)


# -- the layer trained on the "Train it live" page -------------------------------------------------------


def train_and_open(app, lang: str = "en"):
    """Train the tiny network on the training page, then press its walkthrough button."""
    at = app(TRAIN, query_params={"lang": lang, **TINY_TRAIN})
    at.button(key="run_start").click().run()
    for _ in range(40):
        if "run_walkthrough" in {b.key for b in at.button}:
            break
        at.run()
    trainer = at.session_state["convmix_trainer"]
    at.button(key="run_walkthrough").click().run()
    assert not at.exception
    params = dict(at.query_params)
    at.switch_page(PAGE).run()  # AppTest reruns the page it was on: follow the switch by hand
    assert not at.exception
    return at, trainer, params


def test_the_trained_layer_opens_on_a_held_out_digit(app, monkeypatch):
    monkeypatch.setattr("convmix.i18n._active", contextvars.ContextVar("test_language", default="en"))
    at, trainer, params = train_and_open(app)
    assert params["layer"] == "mixer" and params["picture"] == "digit-0" and params["net"].startswith("digits-")
    words = texts(at)
    assert "the digits network trained on the *Train it live* page" in words
    assert f"as they were at step {trainer.step_count}" in words
    source = at.session_state[ws.CHOICE_KEY]
    frozen = at.session_state[ws.TRAINED_KEY][source.network.short][1]
    # By hand: the held-out digit, the network's stem and ReLU; the trained layer's own weights.
    index = int(default_split().held_out[0])
    pixels = load_digits().images[index:index + 1]
    with torch.no_grad():
        expected = torch.relu(trainer.net.stem((pixels - trainer.net.pixel_mean) / trainer.net.pixel_std))
        prediction = int(trainer.net(pixels).argmax(1))
    shown = get_walk(source)
    assert torch.allclose(shown.x, expected, atol=1e-6)
    for key, value in shown.module.state_dict().items():
        assert torch.equal(value, trainer.net.mixer.state_dict()[key])
        assert torch.equal(value, frozen.mixer.state_dict()[key])
    assert f"The digit is a {int(load_digits().labels[index])} that the network never trained on; the network " \
           f"predicts {prediction}." in words
    every_section(at, lambda at, section: None)
    # Another held-out digit: its own activation, named in the URL.
    at.number_input(key="wt_digit").set_value(5).run()
    assert not at.exception and at.query_params["picture"] == "digit-5"
    index = int(default_split().held_out[5])
    with torch.no_grad():
        expected = torch.relu(frozen.stem((load_digits().images[index:index + 1] - frozen.pixel_mean)
                                          / frozen.pixel_std))
    assert torch.allclose(get_walk(at.session_state[ws.CHOICE_KEY]).x, expected, atol=1e-6)


def test_a_trained_network_is_named_only_by_the_session_that_holds_it(page):
    at = page(net="digits-" + "ab" * 6, layer="mixer", picture="digit-3")
    assert any("names a trained network that this session does not hold" in w.value for w in at.main.warning)
    assert "**Module**: the sidebar's configuration" in texts(at)


def test_the_plain_convolution_ablation_has_no_walkthrough_button(app, monkeypatch):
    monkeypatch.setattr("convmix.i18n._active", contextvars.ContextVar("test_language", default="en"))
    at = app(TRAIN, query_params={"lang": "en", **TINY_TRAIN, "train_ablation": "plain_conv"})
    at.button(key="run_start").click().run()
    for _ in range(40):
        if "run_start" in {b.key for b in at.button}:
            break
        at.run()
    assert "run_download" in {b.key for b in at.get("download_button")}
    assert "run_walkthrough" not in {b.key for b in at.button}


# -- languages ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_section_in_both_languages(page, lang):
    at = page(lang, height=16, width=16)
    every_section(at, lambda at, section: None)
    if lang == "zh":
        every_section(at, lambda at, section: (english_in_main(at) == []) or pytest.fail(
            f"{section}: {english_in_main(at)[:5]}"))
    else:
        assert "ACmix, step by step" in [t.value for t in at.title]


def test_chinese_with_a_resnet_layer_and_with_noise(page):
    at = page("zh", **RESNET)
    every_section(at, lambda at, section: (english_in_main(at) == []) or pytest.fail(
        f"{section}: {english_in_main(at)[:5]}"))
    at = page("zh", picture="noise", height=12, width=12)
    assert english_in_main(at) == [] and "带种子的随机噪声" in texts(at)


def test_chinese_with_the_trained_layer(app, monkeypatch):
    monkeypatch.setattr("convmix.i18n._active", contextvars.ContextVar("test_language", default="zh"))
    at, _, _ = train_and_open(app, "zh")
    every_section(at, lambda at, section: (english_in_main(at) == []) or pytest.fail(
        f"{section}: {english_in_main(at)[:5]}"))


def test_switching_language_keeps_the_section_and_the_input(page):
    at = page("en", picture="rocket", section="fc")
    assert at.session_state["wt_section"] == "fc"
    # The click is sent from the English page (its menus formatted in English), the answer read in Chinese.
    at.sidebar.radio(key="lang").set_value("zh").run()
    with language("zh"):
        assert not at.exception
        assert at.session_state["wt_section"] == "fc" and at.query_params["section"] == "fc"
        assert at.selectbox(key="wt_input__zh").value == "rocket" and at.query_params["picture"] == "rocket"
        assert any("fc：输入 3·head 组" in h.value for h in at.subheader)


# -- section ids in the URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "section"), [
    ("attention_inspector", "attention_inspector"), ("Attention inspector", "attention_inspector"),
    ("Authors' quirks", "quirks"), ("channel grouping", "channel_grouping"), ("DEP_CONV", "dep_conv"),
    ("Overview", "overview"),
])
def test_section_ids_and_old_urls(page, value, section):
    at = page(section=value)
    assert at.session_state["wt_section"] == section
    assert at.query_params.get("section") == (None if section == "overview" else section)
    assert not at.main.warning


@pytest.mark.parametrize("value", HOSTILE[:16] + ["注意力检查器", "x" * 300])
def test_hostile_section_values(page, value):
    at = page(section=value)
    assert at.session_state["wt_section"] == "overview" and "section" not in at.query_params
    if value.strip():
        assert any("is not a section of this page" in w.value for w in at.main.warning)


# -- hostile values of the source keys ---------------------------------------------------------------------


@pytest.mark.parametrize("key", sources.QUERY_KEYS)
def test_hostile_source_values(page, key, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, str(budget.held_bytes() + (160 << 20)))  # a ResNet-26 fits, not much more
    for value in HOSTILE + ["resnet51", "layer9.0.conv2", "upload-" + "0" * 12, "digits-" + "0" * 12, "digit-4",
                            "noise", "4096"]:
        at = page(**{**RESNET, key: value})
        assert not at.exception, (key, value)
        for note in at.main.warning:  # what is echoed back is cleaned: no markup can get through
            assert "<" not in note.value and "![" not in note.value, (key, value, note.value)


def test_hostile_picture_without_a_layer_falls_back_to_the_photograph(page):
    for value in HOSTILE + ["digit-3", "upload-" + "f" * 12, "NOISE"]:
        at = page(picture=value)
        assert not at.exception and at.selectbox(key="wt_input__en").value == "chelsea"
        assert any(("is not a built-in picture" in w.value or "names an upload that this session does not hold"
                    in w.value) and "using chelsea" in w.value for w in at.main.warning), value


# -- refusals before allocation ----------------------------------------------------------------------------


def test_a_resnet_forward_that_does_not_fit_beside_the_server_is_refused(page, headroom, monkeypatch):
    page()  # imports and first-run allocations are not what this test is about
    source = sources.NetworkLayer(sources.ResNetRef(26, 0), "layer4.0.conv2", sources.BuiltinPicture("chelsea"), 512)
    resolver = sources.Resolver()
    network = sources.network_build_bytes(source.network, resolver)
    headroom(network + (24 << 20))  # the network fits; its forward at 512×512 does not
    ran = []
    monkeypatch.setattr(sources, "layer_input", lambda *a, **k: ran.append(1))
    at = page(net="resnet26", layer="layer4.0.conv2", picture="chelsea", image_size="512")
    (error,) = at.main.error
    assert "Running the network up to layer4.0.conv2 would need about" in error.value
    assert "this server holds now" in error.value and "an earlier layer" in error.value
    assert ran == [] and not at.metric


def test_a_trained_network_that_is_gone_is_a_sentence(app, monkeypatch):
    monkeypatch.setattr("convmix.i18n._active", contextvars.ContextVar("test_language", default="en"))
    at, _, _ = train_and_open(app)
    del at.session_state[ws.TRAINED_KEY]
    ws.network_cache(sources.max_network_bytes(budget.memory_budget())).clear()
    from convmix.ui.cache import _trace_cache

    _trace_cache().clear()
    at.session_state["wt_section"] = "mix"
    at.run()
    assert not at.exception
    assert any("no longer held by the server" in e.value and "Train it live" in e.value for e in at.main.error)


def test_photographs_have_structure_noise_has_not():
    """What the default input is for: a photograph's feature map is spatially smooth, noise's is not."""
    photo = stem_features(images.picture_rgb("chelsea", 224)).features[0].double()
    noise = ACmixConfig().make_input()[0].double()

    def neighbour_correlation(t):
        a, b = t[:, :, 1:].flatten(), t[:, :, :-1].flatten()
        return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])

    assert neighbour_correlation(photo) > 0.5 > abs(neighbour_correlation(noise)) + 0.4
