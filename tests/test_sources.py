"""Walkthrough sources: each kind produces the module and the input it claims, admitted by the memory
budget beside what the process holds (building a network peaks at its weights, measured); refusals
carry codes and say in Chinese what failed; URL round trips survive hostile text."""

from __future__ import annotations

import io
import sys
import threading

import pytest
import torch
from torch import nn

from convmix import images, sources
from convmix.acmix import ACmix
from convmix.activations import stem_features
from convmix.bytecache import ByteCache
from convmix.checkpoint import load_checkpoint
from convmix.config import ACmixConfig
from convmix.models import acmix_resnet
from tests.by_hand import by_hand_until, rss_growth
from tests.library_messages import assert_translated, in_both
from tests.test_hostile_urls import HOSTILE

BUDGET = None  # the process budget: conftest leaves each test 1 GiB beside what the process holds
CHELSEA = sources.BuiltinPicture("chelsea")


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def resnet26():
    return acmix_resnet(26, seed=5)


@pytest.fixture(scope="module")
def uploaded(resnet26):
    """A ResNet-26 checkpoint as an upload: its hash, the Checkpoint, a resolver holding it."""
    data = saved({"state_dict": {f"module.{k}": v for k, v in resnet26.state_dict().items()}})
    sha = sources.sha256(data)
    checkpoint = load_checkpoint(data, "r26.pth", BUDGET)
    return sha, checkpoint, sources.Resolver(checkpoints={sha: checkpoint})


def test_random_init_is_the_sidebar_module_on_its_noise():
    config = ACmixConfig(in_planes=8, out_planes=16, head=2, height=12, width=12, seed=3)
    m = sources.materialize(sources.RandomInit(config), budget=BUDGET)
    twin = config.build()
    assert all(torch.equal(a, b) for a, b in zip(m.module.state_dict().values(), twin.state_dict().values(),
                                                 strict=True))
    gen = torch.Generator().manual_seed(config.seed + 1)
    assert torch.equal(m.x, torch.randn(1, 8, 12, 12, generator=gen))
    assert m.config == config


def test_random_init_picture_goes_through_the_seed_stem():
    config = ACmixConfig(in_planes=64, out_planes=64, height=16, width=16, batch=2)
    m = sources.materialize(sources.RandomInitPicture(config, CHELSEA), budget=BUDGET)
    second = next(p.id for p in images.pictures() if p.id != "chelsea")
    expected = stem_features([images.picture_rgb("chelsea", 64), images.picture_rgb(second, 64)],
                             budget=BUDGET).features
    assert m.x.shape == (2, 64, 16, 16)
    assert torch.equal(m.x, expected)
    assert not torch.equal(m.x[0], m.x[1])  # batch items are different pictures


def test_network_layer_input_is_what_the_network_feeds_it(resnet26):
    resolver = sources.Resolver()
    resolver.network = lambda ref, budget=None: resnet26  # the network under test, already built
    layer = "layer2.1.conv2"
    m = sources.materialize(sources.NetworkLayer(sources.ResNetRef(26, 5), layer, CHELSEA, 64), resolver, BUDGET)
    x = sources.to_network_input(images.picture_rgb("chelsea", 64))
    own = resnet26.get_submodule(layer)
    assert m.module is not own  # a copy: a trace may instrument it without touching the shared network
    assert all(torch.equal(a, b) for a, b in zip(m.module.state_dict().values(), own.state_dict().values(),
                                                 strict=True))
    assert torch.allclose(m.x, by_hand_until(resnet26, x, layer), atol=1e-5)
    assert m.config == sources.resnet_layer_config(26, layer, 64, seed=5)
    assert (m.config.in_planes, m.config.height, m.config.stride) == (128, 8, 1)


def test_a_resnet_built_from_its_ref_is_seeded():
    ref = sources.ResNetRef(26, 7)
    a = sources.Resolver().network(ref, BUDGET)
    b = acmix_resnet(26, seed=7)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_checkpoint_layers_carry_the_uploaded_weights(uploaded, resnet26):
    sha, checkpoint, resolver = uploaded
    ref = sources.CheckpointRef(sha, "r26.pth")
    m = sources.materialize(sources.NetworkLayer(ref, "layer3.0.conv2", CHELSEA, 64), resolver, BUDGET)
    for key, value in m.module.state_dict().items():
        assert torch.equal(value, resnet26.state_dict()[f"layer3.0.conv2.{key}"])
    x = sources.to_network_input(images.picture_rgb("chelsea", 64))
    assert torch.allclose(m.x, by_hand_until(resnet26, x, "layer3.0.conv2"), atol=1e-5)

    alone = sources.materialize(sources.LayerAlone(ref, "layer3.0.conv2", CHELSEA, 14, 5, 2), resolver, BUDGET)
    assert (alone.module.kernel_att, alone.module.stride, alone.x.shape) == (5, 2, (1, 256, 14, 14))
    assert torch.equal(alone.module.conv_p.weight, resnet26.layer3[0].conv2.conv_p.weight)
    expected = stem_features(images.picture_rgb("chelsea", 56), channels=256, budget=BUDGET).features
    assert torch.equal(alone.x, expected)
    noise = sources.materialize(sources.LayerAlone(ref, "layer3.0.conv2", None, 14), resolver, BUDGET)
    assert noise.x.shape == (1, 256, 14, 14)


def test_an_uploaded_picture_is_read_through_the_resolver():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 10)).save(buf, format="PNG")
    data = buf.getvalue()
    ref = sources.UploadedPicture(sources.sha256(data), "red.png")
    config = ACmixConfig(height=8, width=8)
    m = sources.materialize(sources.RandomInitPicture(config, ref), sources.Resolver(pictures={ref.sha256: data}),
                            BUDGET)
    assert m.x.shape == (1, 64, 8, 8)
    with pytest.raises(sources.SourceError) as err:
        sources.materialize(sources.RandomInitPicture(config, ref), sources.Resolver(), BUDGET)
    assert err.value.code == "upload_missing" and err.value.values["kind"] == "picture"
    bad = sources.UploadedPicture(sources.sha256(b"junk"))
    with pytest.raises(sources.SourceError) as err:
        sources.materialize(sources.RandomInitPicture(config, bad), sources.Resolver(pictures={bad.sha256: b"junk"}),
                            BUDGET)
    assert err.value.code == "picture"


@pytest.fixture
def real_builds(monkeypatch) -> list:
    """The networks built with real weights while a test runs (a meta network, built for its size,
    costs nothing and is not listed)."""
    built = []

    def record(*args, **kwargs):
        if kwargs.get("device") != "meta":
            built.append(args)
        return acmix_resnet(*args, **kwargs)

    monkeypatch.setattr(sources, "acmix_resnet", record)
    return built


@pytest.mark.parametrize(("source", "budget", "code"), [
    (sources.NetworkLayer(sources.ResNetRef(26), "layer4.0.conv2", CHELSEA, 512), 400 << 20, "budget"),
    (sources.NetworkLayer(sources.ResNetRef(50), "layer1.0.conv2", CHELSEA, 224), 96 << 20, "network_too_large"),
    (sources.NetworkLayer(sources.ResNetRef(26), "layer9.0.conv2", CHELSEA, 224), BUDGET, "unknown_layer"),
    (sources.NetworkLayer(sources.ResNetRef(26), "layer1.0.conv2", CHELSEA, 100), BUDGET, "image_size"),
    (sources.NetworkLayer(sources.ResNetRef(27), "layer1.0.conv2", CHELSEA, 224), BUDGET, "network_kind"),
    (sources.NetworkLayer(sources.ResNetRef(26, -1), "layer1.0.conv2", CHELSEA, 224), BUDGET, "net_seed"),
    (sources.NetworkLayer(sources.CheckpointRef("0" * 64), "layer1.0.conv2", CHELSEA, 224), BUDGET, "upload_missing"),
    (sources.RandomInit(ACmixConfig(height=1024, width=1024, batch=64)), BUDGET, "budget"),
    (sources.RandomInit(ACmixConfig(out_planes=63)), BUDGET, "config"),
])
def test_refusals_have_codes_and_nothing_is_built(source, budget, code, real_builds):
    built = real_builds
    with pytest.raises(sources.SourceError) as err:
        sources.materialize(source, budget=budget)
    assert err.value.code == code
    if code in ("network_too_large", "network_kind", "net_seed"):
        assert built == []


def test_the_forward_estimate_is_checked_before_the_forward_runs(resnet26, monkeypatch):
    resolver = sources.Resolver()
    resolver.network = lambda ref, budget=None: resnet26
    ran = []
    hook = resnet26.layer1.register_forward_pre_hook(lambda *a: ran.append(1))
    source = sources.NetworkLayer(sources.ResNetRef(26, 5), "layer4.0.conv2", CHELSEA, 512)
    held = sum(t.numel() * t.element_size() for t in resnet26.state_dict().values())
    copied = sum(t.numel() * t.element_size() for t in resnet26.layer4[0].conv2.state_dict().values())
    # The forward's estimate counts the network's weights, which are held already: the reservation
    # is the rest, and the layer's copy.
    need = sources.forward_bytes_until(26, "layer4.0.conv2", 1, 512, 512,
                                       sum(t.numel() for t in resnet26.state_dict().values())) - held + copied
    try:
        with pytest.raises(sources.SourceError) as err:
            sources.materialize(source, resolver, budget=need - 1)
    finally:
        hook.remove()
    assert err.value.code == "budget" and err.value.values["need"] == need and ran == []


def test_a_forward_that_fits_beside_the_held_network_is_admitted(resnet26, headroom):
    """The network's weights are held (counted in what the process holds): the forward is admitted
    when the rest of its need fits, and refused when it does not."""
    resolver = sources.Resolver()
    resolver.network = lambda ref, budget=None: resnet26
    source = sources.NetworkLayer(sources.ResNetRef(26, 5), "layer3.0.conv2", CHELSEA, 224)
    sources.materialize(source, resolver)  # first-run allocations are not what this test is about
    weights = sum(t.numel() * t.element_size() for t in resnet26.state_dict().values())
    need = sources.materialize_bytes(source, resolver)
    margin = 16 << 20
    assert weights > margin and need > 4 * margin  # counting the weights again would refuse it
    m = sources.materialize(source, resolver, headroom(need + margin))
    assert m.estimate_bytes == need
    assert m.x.shape == sources.resnet_layer_config(26, "layer3.0.conv2", 224).input_shape
    with pytest.raises(sources.SourceError) as err:
        sources.materialize(source, resolver, headroom(need - margin))
    assert err.value.code == "budget" and err.value.values["what"] == "forward"


def test_concurrent_captures_through_one_network_each_get_their_own_layer(resnet26):
    """Captures hook the shared network; run at once from several threads, each still gets the
    activation of its own layer."""

    resolver = sources.Resolver()
    resolver.network = lambda ref, budget=None: resnet26
    x = sources.to_network_input(images.picture_rgb("chelsea", 64))
    layers = ["layer1.0.conv2", "layer2.0.conv2", "layer3.1.conv2", "layer4.0.conv2"] * 3
    results, errors = {}, []

    def run(i, layer):
        try:
            source = sources.NetworkLayer(sources.ResNetRef(26, 5), layer, CHELSEA, 64)
            results[i] = (layer, sources.materialize(source, resolver, BUDGET).x)
        except Exception as err:  # noqa: BLE001 - any failure is the finding
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i, layer)) for i, layer in enumerate(layers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for layer, got in results.values():
        assert torch.allclose(got, by_hand_until(resnet26, x, layer), atol=1e-5)


def test_the_cached_resolver_keeps_networks_within_its_bytes():
    cache = ByteCache(max_bytes=60 << 20)
    resolver = sources.CachedResolver(cache)
    a = resolver.network(sources.ResNetRef(26, 0), BUDGET)
    assert resolver.network(sources.ResNetRef(26, 0), BUDGET) is a
    assert 40 << 20 < cache.nbytes <= 60 << 20
    resolver.network(sources.ResNetRef(26, 1), BUDGET)  # a second 42 MB network evicts the first
    assert ("network", sources.ResNetRef(26, 0)) not in cache and cache.nbytes <= 60 << 20


# -- URLs ----------------------------------------------------------------------------------------


def test_query_round_trip_of_a_built_network_layer():
    source = sources.NetworkLayer(sources.ResNetRef(38, 12), "layer3.4.conv2", sources.BuiltinPicture("rocket"), 160)
    named, notes = sources.from_query(sources.to_query(source), ACmixConfig())
    assert named == source and notes == []
    picture = sources.RandomInitPicture(ACmixConfig(), sources.BuiltinPicture("coffee"))
    assert sources.from_query(sources.to_query(picture), ACmixConfig()) == (picture, [])
    assert sources.from_query({}, ACmixConfig()) == (None, [])


def test_uploads_are_named_only_in_the_session_that_holds_them():
    ref = sources.CheckpointRef("ab" * 32, "mine.pth")
    choice = sources.NetworkLayer(ref, "layer1.0.conv2", CHELSEA, 224)
    params = sources.to_query(choice)
    assert params["net"] == "upload-" + "ab" * 6
    assert sources.from_query(params, ACmixConfig(), choice) == (choice, [])
    named, notes = sources.from_query(params, ACmixConfig(), None)
    assert named is None and [n.code for n in notes] == ["upload_missing"]
    pic = sources.UploadedPicture("cd" * 32)
    named, notes = sources.from_query({"picture": "upload-" + "cd" * 6}, ACmixConfig(), None, {pic.short: pic})
    assert named == sources.RandomInitPicture(ACmixConfig(), pic) and notes == []


@pytest.mark.parametrize("key", ["net", "net_seed", "layer", "picture", "image_size"])
def test_hostile_query_values_become_notes(key):
    base = {"net": "resnet50", "net_seed": "3", "layer": "layer2.1.conv2", "picture": "coffee", "image_size": "256"}
    for value in HOSTILE + ["resnet51", "layer2.9.conv2", "upload-" + "0" * 12, "4096", "224.0", ["a", "b"]]:
        params = {**base, key: value}
        named, notes = sources.from_query(params, ACmixConfig())
        assert named is None or isinstance(named, sources.NetworkLayer)
        for note in notes:
            assert note.code in ("net", "net_seed", "layer", "picture", "image_size", "upload_missing")
            assert len(note.value) <= 40 and all(ch.isalnum() or ch in "-_." for ch in note.value)
        if named is not None and not notes:
            assert sources.to_query(named)[key] == str(value)


# -- the digits network, noise --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """A tiny digits network trained for a few steps, and its frozen copy with the reference."""
    from convmix.train import TrainConfig, Trainer

    trainer = Trainer(TrainConfig(width=4, head=1, kernel_att=3, batch=256, epochs=1))
    trainer.step(3)
    ref, frozen = sources.freeze_trained(trainer.net, trainer.step_count, trainer.config,
                                         trainer.history[-1]["held_out_accuracy"])
    return trainer, ref, frozen


def test_the_digits_layer_is_the_trained_layer_on_what_its_forward_feeds_it(trained):
    from convmix.digits import default_split, load_digits

    trainer, ref, frozen = trained
    assert list(frozen.acmix_layers()) == list(sources.DIGITS_LAYERS)
    resolver = sources.Resolver(trained={ref.sha256: frozen})
    m = sources.materialize(sources.NetworkLayer(ref, "mixer", sources.HeldOutDigit(7), 8), resolver, BUDGET)
    index = int(default_split().held_out[7])
    pixels = load_digits().images[index:index + 1]
    with torch.no_grad():  # by hand: the stem and its ReLU, not the network's forward
        expected = torch.relu(frozen.stem((pixels - frozen.pixel_mean) / frozen.pixel_std))
        logits = frozen(pixels)
    assert torch.allclose(m.x, expected, atol=1e-6) and m.x.shape == (1, 4, 8, 8)
    for key, value in m.module.state_dict().items():
        assert torch.equal(value, frozen.mixer.state_dict()[key])
    facts = dict(m.facts)
    assert facts["label"] == int(load_digits().labels[index]) and facts["dataset_index"] == index
    assert facts["prediction"] == int(logits.argmax(1))
    assert (m.config.in_planes, m.config.height, m.config.stride, m.config.kernel_att) == (4, 8, 2, 3)


def test_a_frozen_copy_does_not_follow_further_training(trained):
    trainer, ref, frozen = trained
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    trainer.step(2)
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())
    assert not all(torch.equal(before[k], v) for k, v in trainer.net.state_dict().items())
    assert sources.weights_hash(frozen) == ref.sha256 != sources.weights_hash(trainer.net)


def test_digits_refusals(trained):
    _, ref, frozen = trained
    resolver = sources.Resolver(trained={ref.sha256: frozen})
    count = sources.held_out_count()
    for image, code in [(sources.HeldOutDigit(count), "digit"), (sources.HeldOutDigit(-1), "digit"),
                        (CHELSEA, "picture")]:
        with pytest.raises(sources.SourceError) as err:
            sources.materialize(sources.NetworkLayer(ref, "mixer", image, 8), resolver, BUDGET)
        assert err.value.code == code
    with pytest.raises(sources.SourceError) as err:  # another session's (or an evicted) network
        sources.materialize(sources.NetworkLayer(ref, "mixer", sources.HeldOutDigit(0), 8), sources.Resolver(),
                            BUDGET)
    assert err.value.code == "upload_missing" and err.value.values["kind"] == "trained"
    with pytest.raises(sources.SourceError) as err:
        sources.materialize(sources.NetworkLayer(ref, "stem", sources.HeldOutDigit(0), 8), resolver, BUDGET)
    assert err.value.code == "unknown_layer"


def test_digits_and_noise_in_the_url(trained):
    _, ref, _ = trained
    source = sources.NetworkLayer(ref, "mixer", sources.HeldOutDigit(12), 8)
    params = sources.to_query(source)
    assert params == {"net": "digits-" + ref.sha256[:12], "layer": "mixer", "picture": "digit-12"}
    assert sources.from_query(params, ACmixConfig(), None, None, {ref.short: ref}) == (source, [])
    assert sources.from_query(params, ACmixConfig(), source) == (source, [])  # the session's choice
    named, notes = sources.from_query(params, ACmixConfig())  # not this session's
    assert named is None and [n.code for n in notes] == ["trained_missing"]
    count = sources.held_out_count()
    for bad in ["digit-" + str(count), "digit--1", "digit-1.5", "chelsea", "digit-" + "9" * 30, "<b>x</b>"]:
        named, notes = sources.from_query({**params, "picture": bad}, ACmixConfig(), source)
        assert named == sources.NetworkLayer(ref, "mixer", sources.HeldOutDigit(0), 8)
        assert [n.code for n in notes] == ["digit"] and dict(notes[0].values) == {"low": 0, "high": count - 1}
    named, notes = sources.from_query({**params, "layer": "stem"}, ACmixConfig(), source)
    assert named is None and [n.code for n in notes] == ["layer"]
    noise = sources.RandomInit(ACmixConfig(head=8))
    assert sources.to_query(noise) == {"picture": "noise"}
    assert sources.from_query({"picture": "noise"}, ACmixConfig(head=8)) == (noise, [])


def test_materialize_bytes_covers_what_materialize_allocates():
    """The walkthrough admits `materialize_bytes` before it materialises: it must not be below the CPU
    allocator's peak while the stem and the module are built (convmix.memory.cpu_allocator_peak)."""
    from convmix.memory import cpu_allocator_peak

    for config in (ACmixConfig(in_planes=32, out_planes=32, head=2, height=24, width=24, batch=2),
                   ACmixConfig(in_planes=96, out_planes=64, kernel_conv=5, variant="fixed", height=40, width=32)):
        source = sources.RandomInitPicture(config, CHELSEA)
        peak = cpu_allocator_peak(lambda s=source: sources.materialize(s, budget=BUDGET))
        assert sources.materialize_bytes(source, sources.Resolver()) >= peak > 0


# -- building networks is admitted like other work ---------------------------------------------------


def test_building_a_network_is_admitted_beside_what_the_process_holds(headroom, real_builds):
    built = real_builds
    budget = headroom(sources.resnet_weight_bytes(26) // 2)  # room for half of ResNet-26's weights
    with pytest.raises(sources.SourceError) as err:
        sources.Resolver().network(sources.ResNetRef(26), budget)
    assert err.value.code == "budget" and err.value.values["what"] == "network"
    assert "Building ResNet-26 would need about" in err.value.message and "holds now" in err.value.message
    assert built == []
    cache = ByteCache(max_bytes=200 << 20)
    cache.put("old", torch.zeros(20 << 20))  # 80 MiB that the build may evict to make room
    headroom(sources.resnet_weight_bytes(26) + (16 << 20) - (80 << 20))
    model = sources.CachedResolver(cache).network(sources.ResNetRef(26))
    assert isinstance(model, nn.Module) and "old" not in cache


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("depth", [26, 50])
def test_building_a_network_peaks_at_its_weights(depth):
    """The admission reserves resnet_weight_bytes: the resident memory the build adds at its peak
    (sampled while it runs) is within it, and is most of it."""
    sources.acmix_resnet(depth, seed=0)  # the first build of a process allocates for itself too

    def build():
        return sources.Resolver().network(sources.ResNetRef(depth, 1))

    # The least of three builds: another thread of the test process (a browser test's driver, say)
    # may allocate during one of them; the build's own peak is in every one (a full run once saw
    # 2.5 MB more in one, alone the builds differ by 0.1 MB).
    model, grown = rss_growth(build, 0.0002)
    grown = min(grown, *(rss_growth(build, 0.0002)[1] for _ in range(2)))
    need = sources.resnet_weight_bytes(depth)
    assert sum(t.numel() * t.element_size() for t in model.state_dict().values()) == need
    assert 0.9 * need <= grown <= need + (2 << 20), (grown, need)


# -- every message in Chinese --------------------------------------------------------------------------


def _stub(model):
    resolver = sources.Resolver()
    resolver.network = lambda ref, budget=None: model
    return resolver


def _every_refusal(resnet26, uploaded, headroom):
    sha, _checkpoint, holding = uploaded
    alone = {f"blk.{k}": v for k, v in ACmix(16, 16, head=4).state_dict().items()}
    alone_sha = sources.sha256(saved(alone))
    alone_resolver = sources.Resolver(checkpoints={alone_sha: load_checkpoint(saved(alone), "a.pth", BUDGET)})
    alone_ref = sources.CheckpointRef(alone_sha, "a.pth")
    layer4 = sources.NetworkLayer(sources.ResNetRef(26), "layer4.0.conv2", CHELSEA, 512)
    need = sources.forward_bytes_until(26, "layer4.0.conv2", 1, 512, 512,
                                       sum(t.numel() for t in resnet26.state_dict().values()))
    junk = sources.UploadedPicture(sources.sha256(b"junk"))
    return {
        "upload_missing checkpoint": lambda: sources.Resolver().checkpoint(sources.CheckpointRef("0" * 64)),
        "upload_missing picture": lambda: sources.Resolver().picture_bytes(sources.UploadedPicture("0" * 64)),
        "network_kind builder": lambda: sources.Resolver().network("resnet"),
        "network_kind depth": lambda: sources.check_resnet_ref(sources.ResNetRef(27)),
        "network_kind module": lambda: sources.network_kind(nn.Linear(1, 1)),
        "network_kind source": lambda: sources.materialize("a source", _stub(resnet26)),
        "net_seed": lambda: sources.check_resnet_ref(sources.ResNetRef(26, -1)),
        "network_too_large": lambda: sources.Resolver().network(sources.ResNetRef(50), 96 << 20),
        "budget network": lambda: sources.Resolver().network(sources.ResNetRef(26), headroom(1 << 20)),
        "budget module": lambda: sources.materialize(
            sources.RandomInit(ACmixConfig(height=1024, width=1024, batch=64)), budget=BUDGET),
        "budget stem": lambda: sources.materialize(sources.RandomInitPicture(
            ACmixConfig(in_planes=256, out_planes=256, height=1024, width=1024, batch=8), CHELSEA), budget=BUDGET),
        "budget forward": lambda: sources.materialize(layer4, _stub(resnet26), budget=need - 1),
        "budget layer": lambda: sources.materialize(
            sources.LayerAlone(alone_ref, "blk", None, 1024), alone_resolver, headroom(16 << 20)),
        "unknown_layer network": lambda: sources.materialize(
            sources.NetworkLayer(sources.ResNetRef(26), "layer9.conv2", CHELSEA), _stub(resnet26)),
        "unknown_layer checkpoint": lambda: sources.materialize(
            sources.LayerAlone(alone_ref, "nope", None), alone_resolver),
        "unknown_layer config": lambda: sources.resnet_layer_config(26, "nope", 224),
        "image_size": lambda: sources.materialize(
            sources.NetworkLayer(sources.ResNetRef(26), "layer1.0.conv2", CHELSEA, 100), _stub(resnet26)),
        "picture builtin": lambda: sources.picture_rgb(sources.BuiltinPicture("nope"), 8, 8, sources.Resolver()),
        "picture upload": lambda: sources.picture_rgb(junk, 8, 8, sources.Resolver(pictures={junk.sha256: b"junk"})),
        "layer": lambda: sources.materialize(sources.LayerAlone(alone_ref, "blk", None, kernel_att=4), alone_resolver),
        "no_forward": lambda: sources.materialize(
            sources.NetworkLayer(alone_ref, "blk", CHELSEA), alone_resolver),
        "config": lambda: sources.materialize(sources.RandomInit(ACmixConfig(out_planes=63))),
    }, holding, sha


CASES = ["upload_missing checkpoint", "upload_missing picture", "network_kind builder", "network_kind depth",
         "network_kind module", "network_kind source", "net_seed", "network_too_large", "budget network",
         "budget module", "budget stem", "budget forward", "budget layer", "unknown_layer network",
         "unknown_layer checkpoint", "unknown_layer config", "image_size", "picture builtin", "picture upload",
         "layer", "no_forward", "config"]


@pytest.mark.parametrize("case", CASES)
def test_every_refusal_in_chinese(case, resnet26, uploaded, headroom, monkeypatch):
    from convmix import budget

    held = budget.held_bytes()  # fixed: the English and the Chinese message carry the same figures
    monkeypatch.setattr(budget, "held_bytes", lambda: held)
    cases, _holding, _sha = _every_refusal(resnet26, uploaded, headroom)
    assert list(cases) == CASES
    with pytest.raises(sources.SourceError) as err:
        cases[case]()
    assert err.value.code == case.split()[0]
    english, chinese = in_both(cases[case])
    assert_translated(english, chinese)


def test_a_files_text_stays_out_of_the_message():
    name = "evil`**x**`"
    state = {f"{name}.{k}": v for k, v in ACmix(8, 8, head=2).state_dict().items()}
    sha = sources.sha256(saved(state))
    resolver = sources.Resolver(checkpoints={sha: load_checkpoint(saved(state), "e.pth", BUDGET)})
    ref = sources.CheckpointRef(sha, "e.pth")
    with pytest.raises(sources.SourceError) as err:
        sources.materialize(sources.LayerAlone(ref, "other", None), resolver)
    assert name not in err.value.message and name in err.value.details


def _digits_refusals(trained, uploaded):
    from convmix.train import TrainConfig
    from convmix.train_net import build_network

    _, ref, frozen = trained
    resolver = sources.Resolver(trained={ref.sha256: frozen})
    plain = build_network(TrainConfig(width=4, head=1, kernel_att=3, ablation="plain_conv"))
    sha, _checkpoint, holding = uploaded
    return {
        "upload_missing trained": lambda: sources.materialize(
            sources.NetworkLayer(ref, "mixer", sources.HeldOutDigit(0), 8), sources.Resolver()),
        "digit": lambda: sources.materialize(
            sources.NetworkLayer(ref, "mixer", sources.HeldOutDigit(sources.held_out_count()), 8), resolver),
        "picture not a digit": lambda: sources.materialize(sources.NetworkLayer(ref, "mixer", CHELSEA, 8), resolver),
        "picture not a picture": lambda: sources.picture_rgb(sources.HeldOutDigit(0), 8, 8, sources.Resolver()),
        "no_acmix": lambda: sources.network_kind(plain).layers(plain),
        "unknown_layer alone": lambda: sources.module_config_of_alone(
            sources.LayerAlone(sources.CheckpointRef(sha, "r26.pth"), "nope", None), holding),
        "budget trace": lambda: sources.admitted_work(64 << 20, 1 << 20, "trace", layer="mixer").__enter__(),
    }


DIGITS_CASES = ["upload_missing trained", "digit", "picture not a digit", "picture not a picture", "no_acmix",
                "unknown_layer alone", "budget trace"]


@pytest.mark.parametrize("case", DIGITS_CASES)
def test_every_refusal_of_the_walkthroughs_networks_in_chinese(case, trained, uploaded):
    cases = _digits_refusals(trained, uploaded)
    assert list(cases) == DIGITS_CASES
    with pytest.raises(sources.SourceError) as err:
        cases[case]()
    assert err.value.code == case.split()[0]
    english, chinese = in_both(cases[case])
    assert_translated(english, chinese)


NOTE_VALUES = {"net": (), "net_seed": (("low", 0), ("high", 2**31 - 1)), "layer": (("network", "ResNet-26"),),
               "picture": (("default", "chelsea"),),
               "image_size": (("low", 64), ("high", 512), ("step", 32), ("default", 224)),
               "upload_missing": (), "upload_missing picture": (("default", "chelsea"),), "trained_missing": (),
               "digit": (("low", 0), ("high", 359))}


def test_each_url_note_has_words_of_its_own():
    messages = {case: sources.Note(case.split()[0], "x", values).message() for case, values in NOTE_VALUES.items()}
    assert len(set(messages.values())) == len(NOTE_VALUES)
    assert "trained network" in messages["trained_missing"] and "digit-359" in messages["digit"]


@pytest.mark.parametrize("case", list(NOTE_VALUES))
def test_every_url_note_in_chinese(case):
    note = sources.Note(case.split()[0], "x_y-9", NOTE_VALUES[case])
    english, chinese = in_both(note.message)
    assert_translated(english, chinese)
    assert "`x_y-9`" in english and "`x_y-9`" in chinese  # the URL's text, as code
