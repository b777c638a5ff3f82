"""Walkthrough sources: each kind produces the module and the input it claims, within the memory
budget; refusals carry codes; URL round trips survive hostile text."""

from __future__ import annotations

import io

import pytest
import torch

from convmix import images, sources
from convmix.activations import stem_features
from convmix.bytecache import ByteCache
from convmix.checkpoint import load_checkpoint
from convmix.config import ACmixConfig
from convmix.models import acmix_resnet, block_layout
from tests.test_hostile_urls import HOSTILE

BUDGET = 1 << 30
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


def by_hand_until(model, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The network's modules called one by one (not its forward), up to `layer`'s input."""
    with torch.no_grad():
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for spec in block_layout(model.depth, x.shape[2], x.shape[3]):
            block = model.get_submodule(spec.name)
            inner = block.relu(block.bn1(block.conv1(y)))
            if spec.acmix_name == layer:
                return inner
            out = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(inner)))))
            shortcut = y if block.downsample is None else block.downsample(y)
            y = block.relu(out + shortcut)
    raise AssertionError(layer)


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
def test_refusals_have_codes_and_nothing_is_built(source, budget, code, monkeypatch):
    built = []  # networks built with real weights (a meta network, for a size, costs nothing)

    def record(*args, **kwargs):
        if kwargs.get("device") != "meta":
            built.append(args)
        return acmix_resnet(*args, **kwargs)

    monkeypatch.setattr(sources, "acmix_resnet", record)
    with pytest.raises(sources.SourceError) as err:
        sources.materialize(source, budget=budget)
    assert err.value.code == code
    if code in ("network_too_large", "network_kind", "net_seed"):
        assert built == []


def test_the_forward_estimate_is_checked_before_the_forward_runs(resnet26, monkeypatch):
    resolver = sources.Resolver()
    resolver.network = lambda ref, budget=None: resnet26
    ran = []
    resnet26.layer1.register_forward_pre_hook(lambda *a: ran.append(1))
    source = sources.NetworkLayer(sources.ResNetRef(26, 5), "layer4.0.conv2", CHELSEA, 512)
    need = sources.forward_bytes_until(26, "layer4.0.conv2", 1, 512, 512,
                                       sum(t.numel() for t in resnet26.state_dict().values()))
    with pytest.raises(sources.SourceError) as err:
        sources.materialize(source, resolver, budget=need - 1)
    assert err.value.code == "budget" and err.value.values["need"] == need and ran == []


def test_concurrent_captures_through_one_network_each_get_their_own_layer(resnet26):
    """Captures hook the shared network; run at once from several threads, each still gets the
    activation of its own layer."""
    import threading

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
