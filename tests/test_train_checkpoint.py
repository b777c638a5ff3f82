"""Checkpoints (torch.load with weights_only=True), hostile files, and the trained ACmix layer with
the activation that reaches it."""

from __future__ import annotations

import io
import pickle

import pytest
import torch
import torch.nn.functional as F

from convmix.acmix import ACmix
from convmix.digits import Split, default_split, load_digits
from convmix.train import TrainConfig, Trainer
from convmix.train_checkpoint import (
    FORMAT,
    MAX_CHECKPOINT_BYTES,
    CheckpointError,
    acmix_input,
    checkpoint_bytes,
    checkpoint_dict,
    load_checkpoint,
    save_checkpoint,
)
from tests.library_messages import assert_translated, in_both

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = TrainConfig(width=8, kernel_att=3, head=2, stride=2, batch=16, epochs=1)


@pytest.fixture(scope="module")
def trained() -> Trainer:
    split = default_split()
    trainer = Trainer(TINY.with_(stem_bn=True, ablation="conv_only"),
                      split=Split(train=split.train[:64], held_out=split.held_out[:32]))
    trainer.step(100)
    return trainer


def test_checkpoint_round_trip_with_weights_only(tmp_path, trained):
    path = tmp_path / "model.pt"
    save_checkpoint(trained, path)
    raw = torch.load(path, weights_only=True)  # plain values and tensors only
    assert raw["format"] == FORMAT and raw["config"] == trained.config.to_dict()
    assert raw["step"] == trained.step_count and raw["held_out_accuracy"] == trained.held_out_accuracy
    loaded = load_checkpoint(path)
    assert loaded.config == trained.config and loaded.step == 4 and not loaded.net.training
    for key, value in trained.net.state_dict().items():
        assert torch.equal(value, loaded.net.state_dict()[key]), key
    pixels = load_digits().images[default_split().held_out[:50]]
    trained.net.eval()
    with torch.no_grad():
        assert torch.equal(trained.net(pixels), loaded.net(pixels))
    trained.net.train()
    # The ablation's fixed rate stays fixed in the loaded network.
    assert loaded.net.mixer.rate1.item() == 0.0 and not loaded.net.mixer.rate1.requires_grad
    assert load_checkpoint(checkpoint_bytes(trained)).config == trained.config


def _bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def hostile_files(trained) -> dict[str, tuple[bytes, str]]:
    good = checkpoint_dict(trained)
    wrong_shape = dict(good, state_dict=dict(good["state_dict"], **{"stem.weight": torch.zeros(3, 1, 3, 3)}))
    nan = dict(good, state_dict=dict(good["state_dict"], **{"classifier.bias": torch.full((10,), float("nan"))}))
    return {
        "empty": (b"", "weights_only=True"),
        "text": (b"hello, not a checkpoint", "weights_only=True"),
        "pickle with code": (pickle.dumps(Payload(), protocol=2), "weights_only=True"),
        "torch.save with code": (_bytes({"format": FORMAT, "x": Payload()}), "weights_only=True"),
        "a list": (_bytes([1, 2]), "not a convmix digits checkpoint"),
        "other format": (_bytes(dict(good, format="x/9")), "found 'x/9'"),
        "bad config": (_bytes(dict(good, config=dict(good["config"], head=3))), "head (3) must divide"),
        "config keys": (_bytes(dict(good, config={"width": 8})), "keys"),
        "no state": (_bytes(dict(good, state_dict=[1])), "no state dict"),
        "wrong shape": (_bytes(wrong_shape), "do not fit"),
        "nan weights": (_bytes(nan), "NaN"),
        "no accuracy": (_bytes(dict(good, held_out_accuracy="high")), "'held_out_accuracy'"),
    }


HOSTILE = ["empty", "text", "pickle with code", "torch.save with code", "a list", "other format", "bad config",
           "config keys", "no state", "wrong shape", "nan weights", "no accuracy"]


def test_every_hostile_file_is_tried(trained):
    assert sorted(hostile_files(trained)) == sorted(HOSTILE)


@pytest.mark.parametrize("name", HOSTILE)
def test_malformed_checkpoints_get_a_clear_error(name, trained, capsys):
    data, words = hostile_files(trained)[name]
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(data)
    assert words in str(err.value)
    assert "this must never run" not in capsys.readouterr().out


def test_oversized_or_missing_files_are_refused(tmp_path):
    big = tmp_path / "big.pt"
    big.write_bytes(b"\0" * (MAX_CHECKPOINT_BYTES + 1))
    with pytest.raises(CheckpointError, match="at most"):
        load_checkpoint(big)
    with pytest.raises(CheckpointError, match="at most"):
        load_checkpoint(b"\0" * (MAX_CHECKPOINT_BYTES + 1))
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "missing.pt")


def test_the_trained_layer_comes_with_the_activation_that_reaches_it(trained):
    net = load_checkpoint(checkpoint_bytes(trained)).net
    got = acmix_input(net, held_out_position=7)
    assert got.layer is net.mixer and isinstance(got.layer, ACmix) and got.name == "mixer"
    index = int(default_split().held_out[7])
    data = load_digits()
    assert got.dataset_index == index and got.label == int(data.labels[index])
    assert torch.equal(got.pixels, data.images[index : index + 1])
    # By hand from the weights: standardise, stem convolution, BatchNorm with running statistics, ReLU.
    x = (got.pixels - net.pixel_mean) / net.pixel_std
    x = F.conv2d(x, net.stem.weight, net.stem.bias, padding=1)
    bn = net.stem_bn
    x = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    x = torch.relu(x * bn.weight[:, None, None] + bn.bias[:, None, None])
    torch.testing.assert_close(got.activation, x, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # the rest of the network, by hand, from that activation
        logits = net.classifier(F.adaptive_avg_pool2d(torch.relu(got.layer(got.activation)), 2).flatten(1))
        torch.testing.assert_close(logits, net(got.pixels), rtol=0, atol=1e-6)
    assert got.prediction == int(logits.argmax())
    config = got.acmix_config
    assert config.input_shape == tuple(got.activation.shape) and config.problems() == []
    shapes = {k: v.shape for k, v in config.build().state_dict().items()}
    assert shapes == {k: v.shape for k, v in got.layer.state_dict().items()}


def test_acmix_input_refuses_what_it_cannot_give(trained):
    with pytest.raises(ValueError, match="from 0 to 358"):
        acmix_input(trained.net, held_out_position=359)
    with pytest.raises(ValueError, match="no ACmix layer named"):
        acmix_input(trained.net, layer="stem")
    plain = Trainer(TINY.with_(ablation="plain_conv"), split=Split(default_split().train[:16],
                                                                  default_split().held_out[:16]))
    with pytest.raises(ValueError, match="plain-convolution"):
        acmix_input(plain.net)


# -- every message in Chinese ---------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_every_refusal_in_chinese(name, trained):
    data, _words = hostile_files(trained)[name]
    assert_translated(*in_both(lambda: load_checkpoint(data)))


def test_sizes_paths_and_layers_in_chinese(trained, tmp_path):
    big = tmp_path / "big.pt"
    big.write_bytes(b"\0" * (MAX_CHECKPOINT_BYTES + 1))
    plain = Trainer(TINY.with_(ablation="plain_conv"), split=Split(default_split().train[:16],
                                                                  default_split().held_out[:16]))
    for make in (lambda: load_checkpoint(big), lambda: load_checkpoint(b"\0" * (MAX_CHECKPOINT_BYTES + 1)),
                 lambda: load_checkpoint(tmp_path / "missing.pt"),
                 lambda: acmix_input(trained.net, held_out_position=359), lambda: acmix_input(trained.net, layer="stem"),
                 lambda: acmix_input(plain.net)):
        assert_translated(*in_both(make))
