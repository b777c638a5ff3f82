"""convmix.bias: every identity the bias page shows, checked against an independent computation.

The references here are plain numpy: explicit loops over windows, BatchNorm written out in
float64, gradients derived by hand. None of them calls the code path under test.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convmix import ACmix
from convmix import bias as cb

# ---------------------------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------------------------


def naive_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pad: int):
    """Direct convolution with explicit bounds checks (no padded copy), float64."""
    cin, h, wd = x.shape
    cout, _, k, _ = w.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((cout, ho, wo))
    for i in range(ho):
        for j in range(wo):
            acc = np.zeros(cout)
            for u in range(k):
                r = i * stride - pad + u
                if not 0 <= r < h:
                    continue
                for v in range(k):
                    c = j * stride - pad + v
                    if 0 <= c < wd:
                        acc += w[:, :, u, v].astype(np.float64) @ x[:, r, c].astype(np.float64)
            out[:, i, j] = acc + (b if b is not None else 0.0)
    return out


def numpy_bn_train(z: np.ndarray, gamma, beta, eps=cb.BN_EPS) -> np.ndarray:
    """Training-mode BatchNorm of (C, H, W): per-channel mean and biased variance, float64."""
    z = z.astype(np.float64)
    mean = z.mean(axis=(1, 2), keepdims=True)
    var = z.var(axis=(1, 2), keepdims=True)
    g = np.asarray(gamma, np.float64).reshape(-1, 1, 1)
    bt = np.asarray(beta, np.float64).reshape(-1, 1, 1)
    return g * (z - mean) / np.sqrt(var + eps) + bt


@pytest.fixture(scope="module")
def layer() -> nn.Conv2d:
    return cb.seed_layer()


@pytest.fixture(scope="module")
def small_run(layer) -> cb.SeedRun:
    """A 3×13×11 input: small enough for the naive loops, odd sizes to catch off-by-ones."""
    x = torch.randn(1, 3, 13, 11, generator=torch.Generator().manual_seed(5))
    return cb.run_seed_layer(layer, x)


@pytest.fixture(scope="module")
def scene_input() -> torch.Tensor:
    return cb.to_input(cb.builtin_scene(64))


# ---------------------------------------------------------------------------------------------
# The layer and its sizes
# ---------------------------------------------------------------------------------------------


def test_parameter_counts_of_the_seed_layer(layer):
    assert sum(p.numel() for p in layer.parameters()) == 9472 == 64 * 3 * 7 * 7 + 64
    no_bias = cb.seed_layer(bias=False)
    assert no_bias.bias is None
    assert sum(p.numel() for p in no_bias.parameters()) == 9408


@pytest.mark.parametrize(
    "cin,cout,k,bias,groups",
    [(3, 64, 7, True, 1), (3, 64, 7, False, 1), (16, 32, 3, True, 4), (144, 64, 3, True, 16)],
)
def test_conv_param_count_matches_nn_conv2d(cin, cout, k, bias, groups):
    conv = nn.Conv2d(cin, cout, k, bias=bias, groups=groups)
    expected = sum(p.numel() for p in conv.parameters())
    assert cb.conv_param_count(cin, cout, k, bias, groups) == expected


@pytest.mark.parametrize(
    "n,k,s,p,dil",
    [
        (n, *geom)
        for n in (1, 7, 8, 13, 224, 225)
        for geom in ((7, 2, 3, 1), (3, 1, 1, 1), (3, 2, 0, 2), (5, 3, 4, 1))
        if n + 2 * geom[2] >= geom[3] * (geom[0] - 1) + 1  # the kernel fits the padded input
    ],
)
def test_conv_output_size_matches_pytorch(n, k, s, p, dil):
    out = nn.functional.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), None, s, p, dil)
    assert cb.conv_output_size(n, k, s, p, dil) == out.shape[-1]


def test_seed_224_gives_64x112x112(layer):
    run = cb.run_seed_layer(layer, cb.to_input(cb.builtin_scene(224)))
    assert tuple(run.y.shape) == (64, 112, 112)


def test_seed_layer_is_deterministic_in_bounds_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, other = cb.seed_layer(), cb.seed_layer(), cb.seed_layer(seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert not torch.equal(a.weight, other.weight)
    bound = 1 / math.sqrt(147)
    w, bias = a.weight.detach(), a.bias.detach()
    assert float(w.abs().max()) <= bound and float(bias.abs().max()) <= bound
    # Spread over the whole interval, as a uniform draw of 9,408 values must be.
    assert float(w.abs().max()) > 0.99 * bound
    assert torch.equal(cb.seed_layer(bias=False).weight, a.weight)


# ---------------------------------------------------------------------------------------------
# The forward with and without bias
# ---------------------------------------------------------------------------------------------


def test_forward_matches_naive_convolution(layer, small_run):
    x = small_run.x[0].numpy()
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    np.testing.assert_allclose(small_run.y.numpy(), naive_conv(x, w, b, 2, 3), atol=1e-5)
    np.testing.assert_allclose(small_run.y_no_bias.numpy(), naive_conv(x, w, None, 2, 3), atol=1e-5)


def test_difference_with_and_without_bias_is_the_bias_everywhere(layer, small_run):
    x = small_run.x[0].numpy()
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    ref = naive_conv(x, w, b, 2, 3) - naive_conv(x, w, None, 2, 3)
    np.testing.assert_allclose(ref, np.broadcast_to(b.reshape(-1, 1, 1), ref.shape), atol=1e-12)
    assert small_run.shift_deviation < 1e-6
    # The measure must see a deviation when there is one.
    y = small_run.y.clone()
    y[3, 2, 1] += 0.25
    broken = cb.SeedRun(small_run.x, y, small_run.y_no_bias, small_run.bias)
    assert broken.shift_deviation == pytest.approx(0.25, abs=1e-6)


# ---------------------------------------------------------------------------------------------
# One output value, opened up
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c,i,j", [(0, 0, 0), (17, 3, 2), (63, 6, 5), (40, 6, 0), (5, 0, 5)])
def test_patch_dot_weights_plus_bias_equals_output(layer, small_run, c, i, j):
    x = small_run.x[0].numpy().astype(np.float64)
    w = layer.weight.detach().numpy().astype(np.float64)
    b = float(layer.bias.detach()[c])
    ov = cb.explain_output(layer, small_run, c, i, j)
    total, padding = 0.0, np.zeros((7, 7), bool)
    for ch in range(3):
        for u in range(7):
            for v in range(7):
                r, col = 2 * i - 3 + u, 2 * j - 3 + v
                if 0 <= r < 13 and 0 <= col < 11:
                    assert ov.patch[ch, u, v] == x[ch, r, col]
                    total += w[c, ch, u, v] * x[ch, r, col]
                else:
                    padding[u, v] = True
                    assert ov.patch[ch, u, v] == 0.0
    assert np.array_equal(ov.is_padding, padding)
    assert (ov.top, ov.left) == (2 * i - 3, 2 * j - 3)
    assert ov.dot == pytest.approx(total, abs=1e-12)
    assert ov.total == pytest.approx(total + b, abs=1e-12)
    # The forward's value, and the page's difference, agree with the loop up to float32 rounding.
    assert ov.output == pytest.approx(total + b, abs=1e-5)
    assert abs(ov.difference) < 1e-5
    assert ov.output == float(small_run.y[c, i, j])


def test_explain_output_refuses_positions_outside_the_output(layer, small_run):
    with pytest.raises(ValueError, match="outside the output"):
        cb.explain_output(layer, small_run, 0, 7, 0)
    with pytest.raises(ValueError, match="outside the output"):
        cb.explain_output(layer, small_run, 64, 0, 0)


def test_enlarge_repeats_pixels():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = cb.enlarge(rgb, 5)  # n = ceil(5 / 2) = 3
    assert big.shape == (6, 9, 3)
    for r in range(6):
        for c in range(9):
            assert np.array_equal(big[r, c], rgb[r // 3, c // 3])
    assert cb.enlarge(rgb, 2) is rgb


def test_window_picture_outlines_at_the_enlarged_scale():
    rgb = np.full((4, 4, 3), 100, np.uint8)
    pic = cb.window_picture(rgb, 1, 1, 2, min_side=12)  # n = 3: window covers rows/cols 3..8
    red = np.all(pic == [230, 20, 20], axis=-1)
    assert pic.shape == (12, 12, 3)
    assert red[2, 2:10].all() and red[9, 2:10].all() and red[2:10, 2].all() and red[2:10, 9].all()
    assert not red[3:9, 3:9].any()  # the window's own pixels are untouched
    assert red.sum() == 4 * 8 - 4


def test_outline_window_draws_a_clipped_red_box():
    rgb = np.full((10, 12, 3), 100, np.uint8)
    out = cb.outline_window(rgb, -3, 8, 7)  # rows -3..3, cols 8..14: clipped at top and right
    red = np.all(out == [230, 20, 20], axis=-1)
    expected = np.zeros((10, 12), bool)
    expected[4, 7:12] = True  # bottom edge, one row below the window
    expected[0:5, 7] = True  # left edge, one column left of the window
    assert np.array_equal(red, expected)
    assert np.all(rgb == 100)  # the input is untouched


# ---------------------------------------------------------------------------------------------
# ReLU survival
# ---------------------------------------------------------------------------------------------


def test_survival_fraction_and_sweep_count_positive_values():
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=(9, 7)), 1)  # rounding creates ties at exactly -b
    biases = np.array([-3.0, -0.5, -0.1, 0.0, 0.1, 0.3, 3.0])
    expected = [sum(1 for v in values.ravel() if v + b > 0) / values.size for b in biases]
    np.testing.assert_allclose([cb.survival_fraction(values, b) for b in biases], expected)
    np.testing.assert_allclose(cb.survival_sweep(values, biases), expected)


def test_bias_range_spans_none_kept_to_all_kept(small_run):
    pre = small_run.y_no_bias[4].numpy()
    learned = float(small_run.bias[4])
    lo, hi = cb.bias_range(pre, learned)
    assert cb.survival_fraction(pre, lo) == 0.0
    assert cb.survival_fraction(pre, hi) == 1.0
    assert lo <= learned <= hi and lo <= 0.0 <= hi
    assert cb.bias_range(np.array([5.0, 6.0]), 0.02) == pytest.approx((-6.0, 0.03))


# ---------------------------------------------------------------------------------------------
# Padding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h,w,p", [(13, 11, 3), (13, 11, 7), (8, 8, 9), (7, 16, 0), (2, 3, 3)])
def test_real_taps_counts_window_pixels_inside_the_input(h, w, p):
    taps = cb.real_taps(h, w, 7, 2, p).numpy()
    for i in range(taps.shape[0]):
        for j in range(taps.shape[1]):
            rows = sum(1 for u in range(7) if 0 <= 2 * i - p + u < h)
            cols = sum(1 for v in range(7) if 0 <= 2 * j - p + v < w)
            assert taps[i, j] == rows * cols


def test_seed_padding_never_makes_an_all_padding_window_and_seven_does():
    for n in (1, 2, 7, 8, 13, 64, 224, 225):
        for p in range(max(0, math.ceil((7 - n) / 2)), 13):  # the window must fit
            any_all_padding = bool((cb.real_taps(n, n, 7, 2, p) == 0).any())
            assert any_all_padding == (p >= 7), (n, p)


def test_all_padding_windows_output_exactly_the_bias(layer, small_run, scene_input):
    x = small_run.x[0].numpy()
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    ref = naive_conv(x, w, b, 2, 9)
    demo = cb.padding_demo(layer, small_run.x, 9)
    mask = demo.all_padding.numpy()
    assert demo.out_shape == ref.shape[1:] and 0 < mask.sum() < mask.size
    # The naive loop adds nothing but the bias where the window misses the input.
    np.testing.assert_array_equal(ref[:, mask], np.repeat(b.reshape(-1, 1), mask.sum(), axis=1))
    assert not np.allclose(ref[:, ~mask], b.reshape(-1, 1))
    assert demo.max_deviation == 0.0  # exact in float32 too: only zeros were summed
    seed = cb.padding_demo(layer, scene_input, 3)
    assert int(seed.all_padding.sum()) == 0 and math.isnan(seed.max_deviation)
    assert seed.min_real_taps == 16 and seed.out_shape == (32, 32)
    with pytest.raises(ValueError, match="larger than the padded input"):
        cb.padding_demo(layer, scene_input[:, :, :3, :3], 1)


# ---------------------------------------------------------------------------------------------
# BatchNorm
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bn(layer) -> nn.BatchNorm2d:
    return cb.illustrative_bn(layer)


def test_illustrative_bn_running_stats_are_the_average_over_the_four_views(layer, bn):
    assert not bn.training
    scene = cb.to_input(cb.builtin_scene(224))
    views = [scene, scene.flip(3), scene.flip(2), scene.flip(2, 3)]
    with torch.no_grad():
        outs = [layer(v)[0].double().numpy() for v in views]
    means = [o.mean(axis=(1, 2)) for o in outs]
    # BatchNorm's running variance is the unbiased one.
    vars_ = [o.reshape(64, -1).var(axis=1, ddof=1) for o in outs]
    np.testing.assert_allclose(
        bn.running_mean.numpy(), np.mean(means, axis=0), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean(vars_, axis=0), rtol=1e-4)
    assert not torch.allclose(bn.weight, torch.ones(64))  # γ, β not the trivial 1, 0


def test_train_mode_batchnorm_cancels_the_bias(layer, bn, small_run):
    result = cb.bn_cancellation(layer, bn, small_run.x)
    x = small_run.x[0].numpy()
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    gamma, beta = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    ref_with = numpy_bn_train(naive_conv(x, w, b, 2, 3), gamma, beta)
    ref_without = numpy_bn_train(naive_conv(x, w, None, 2, 3), gamma, beta)
    np.testing.assert_allclose(ref_with, ref_without, atol=1e-9)
    np.testing.assert_allclose(result.with_bias.numpy(), ref_with, atol=1e-4)
    np.testing.assert_allclose(result.without_bias.numpy(), ref_without, atol=1e-4)
    assert result.max_difference < 1e-5
    # The bias gets no gradient through the BN; without the BN, dL/db = Σ y / N for L = ½·mean(y²).
    assert float(result.bias_grad_through_bn.abs().max()) < 1e-6
    y = naive_conv(x, w, b, 2, 3)
    np.testing.assert_allclose(
        result.bias_grad_without_bn.numpy(), y.sum(axis=(1, 2)) / y.size, atol=1e-7
    )
    assert float(result.bias_grad_without_bn.abs().max()) > 1e-4
    # The cached BN is not changed by the demonstration.
    assert not bn.training


def test_fold_batchnorm_formula_and_folded_layer(layer, bn, small_run):
    w, b = layer.weight.detach().numpy().astype(np.float64), layer.bias.detach().numpy()
    g, beta = bn.weight.detach().numpy(), bn.bias.detach().numpy()
    mu, var = bn.running_mean.numpy(), bn.running_var.numpy()
    w_ref, b_ref = np.empty_like(w), np.empty(64)
    for c in range(64):
        s = g[c] / math.sqrt(var[c] + bn.eps)
        w_ref[c] = w[c] * s
        b_ref[c] = (b[c] - mu[c]) * s + beta[c]
    fw, fb = cb.fold_batchnorm(layer.weight.detach(), layer.bias.detach(), bn)
    np.testing.assert_allclose(fw.detach().numpy(), w_ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fb.detach().numpy(), b_ref, rtol=1e-5, atol=1e-6)

    check = cb.fold_check(layer, bn, small_run.x)
    y = naive_conv(small_run.x[0].numpy(), w, b, 2, 3)
    bn_eval = (y - mu.reshape(-1, 1, 1)) / np.sqrt(var.reshape(-1, 1, 1) + bn.eps)
    bn_eval = bn_eval * g.reshape(-1, 1, 1) + beta.reshape(-1, 1, 1)
    np.testing.assert_allclose(check.bn_output.numpy(), bn_eval, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(check.folded_output.numpy(), bn_eval, rtol=1e-4, atol=1e-4)
    assert check.max_difference < 1e-3


def test_fold_without_conv_bias_and_refusal_in_train_mode(layer, bn, small_run):
    _, fb = cb.fold_batchnorm(layer.weight.detach(), None, bn)
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(fb, -bn.running_mean * scale + bn.bias.detach())
    train_bn = nn.BatchNorm2d(64).train()
    with pytest.raises(ValueError, match="eval mode"):
        cb.fold_check(layer, train_bn, small_run.x)


# ---------------------------------------------------------------------------------------------
# Gradient
# ---------------------------------------------------------------------------------------------


def test_bias_gradient_is_the_output_gradient_summed_over_batch_and_positions(layer, small_run):
    x = torch.cat([small_run.x, small_run.x.flip(3)])
    result = cb.gradient_check(layer, x)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    ys = [naive_conv(item.numpy(), w, b, 2, 3) for item in x]
    n = sum(y.size for y in ys)
    # L = ½·mean(y²) over the batch: dL/dy = y / N, so dL/db[c] = Σ_n Σ_ij y[n, c, i, j] / N.
    per_item = np.stack([y.sum(axis=(1, 2)) / n for y in ys])
    np.testing.assert_allclose(result.per_item.numpy(), per_item, atol=1e-8)
    np.testing.assert_allclose(result.bias_grad.numpy(), per_item.sum(axis=0), atol=1e-8)
    np.testing.assert_allclose(result.output_grad_sum.numpy(), per_item.sum(axis=0), atol=1e-8)
    assert result.batch == 2 and result.max_difference < 1e-7
    assert result.loss == pytest.approx(0.5 * sum((y**2).sum() for y in ys) / n, rel=1e-5)
    assert layer.weight.grad is None and layer.bias.grad is None  # the shared layer stays clean


# ---------------------------------------------------------------------------------------------
# ACmix
# ---------------------------------------------------------------------------------------------


def acmix_formula(cin: int, c: int, h: int, kc: int) -> int:
    """ACMIX.md: 3(Cin·C + C) + 3d + 3h·kc² + C·kc⁴ + 2, d = C / h."""
    return 3 * (cin * c + c) + 3 * (c // h) + 3 * h * kc**2 + c * kc**4 + 2


@pytest.mark.parametrize("cin,c,h", [(64, 64, 4), (32, 48, 3), (16, 8, 8)])
def test_acmix_declared_and_actual_biases(cin, c, h):
    module = ACmix(cin, c, head=h)
    rows, total = cb.acmix_bias_table(module)
    by_name = {r.name: r for r in rows}
    assert [r.name for r in rows] == ["conv1", "conv2", "conv3", "conv_p", "fc", "dep_conv"]
    for name in ("conv1", "conv2", "conv3"):
        assert by_name[name].declared and by_name[name].actual and by_name[name].bias_params == c
    assert by_name["conv_p"].declared and by_name["conv_p"].bias_params == c // h
    assert not by_name["fc"].declared and not by_name["fc"].actual
    dep = by_name["dep_conv"]
    assert dep.declared and not dep.actual and module.dep_conv.bias is None
    assert dep.bias_params == 0 and dep.declared_bias_params == c and dep.groups == c // h
    assert total == acmix_formula(cin, c, h, 3)
    declared_total = total + sum(r.declared_bias_params - r.bias_params for r in rows)
    assert declared_total == acmix_formula(cin, c, h, 3) + c


def test_acmix_default_counts():
    rows, total = cb.acmix_bias_table(ACmix(64, 64))
    assert total == 17822
    assert total + sum(r.declared_bias_params - r.bias_params for r in rows) == 17886


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_builtin_scene_is_deterministic_and_drawn_at_any_size():
    a, b = cb.builtin_scene(224), cb.builtin_scene(224)
    assert a.shape == (224, 224, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert cb.builtin_scene(8).shape == (8, 8, 3)
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 100  # a scene, not a flat colour
    with pytest.raises(ValueError):
        cb.builtin_scene(0)


def test_to_input_normalises_with_imagenet_statistics():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 0, 128
    x = cb.to_input(rgb)
    assert x.shape == (1, 3, 2, 3)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    for c in range(3):
        assert torch.allclose(x[0, c], torch.full((2, 3), expected[c]), atol=1e-6)


def test_decode_png_round_trip_and_square_crop():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    img = cb.decode_upload(_encode(Image.fromarray(pixels), "PNG"))
    assert img.mode == "RGB" and np.array_equal(np.asarray(img), pixels)
    # Shorter side already 30: no resampling, just the centre 30×30.
    assert np.array_equal(cb.square_crop(img, 30), pixels[:, 10:40])
    assert cb.square_crop(img, 64).shape == (64, 64, 3)


def test_decode_jpeg_and_transparency():
    jpeg = cb.decode_upload(_encode(Image.new("RGB", (40, 20), (200, 10, 10)), "JPEG"))
    assert jpeg.size == (40, 20) and abs(int(np.asarray(jpeg)[10, 20, 0]) - 200) < 6
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (10, 20, 30, 255))
    out = np.asarray(cb.decode_upload(_encode(rgba, "PNG")))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (10, 20, 30)


def test_decode_16_bit_greyscale_is_rescaled_not_clipped():
    grey = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    out = np.asarray(cb.decode_upload(_encode(Image.fromarray(grey), "PNG")))
    assert out.shape == (1, 3, 3)
    assert out[0, :, 0].tolist() == [0, 100, 255] and np.all(out[..., 0] == out[..., 2])


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "empty"),
        (b"not an image at all", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|damaged"),
    ],
)
def test_decode_refuses_unreadable_files(data, match):
    with pytest.raises(cb.ImageError, match=match):
        cb.decode_upload(data)


def test_decode_refuses_other_formats_and_oversize_files():
    with pytest.raises(cb.ImageError, match="GIF"):
        cb.decode_upload(_encode(Image.new("RGB", (8, 8)), "GIF"))
    with pytest.raises(cb.ImageError, match="limit is 5 MB"):
        cb.decode_upload(b"\x00" * (cb.MAX_UPLOAD_BYTES + 1))


def test_decode_refuses_too_many_pixels_before_decoding():
    # A 1-bit 5000×5000 PNG is a few kB: the header, not the file size, must stop it.
    wide = _encode(Image.new("1", (5000, 5000)), "PNG")
    assert len(wide) < cb.MAX_UPLOAD_BYTES
    with pytest.raises(cb.ImageError, match="5,000×5,000"):
        cb.decode_upload(wide)
    # Within the side limit but over the pixel limit: 4,000 × 4,001 = 16,004,000.
    with pytest.raises(cb.ImageError, match="16,000,000"):
        cb.decode_upload(_encode(Image.new("1", (4000, 4001)), "PNG"))


def test_decode_turns_pil_decompression_bomb_refusal_into_image_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = _encode(Image.new("RGB", (20, 20)), "PNG")  # 400 pixels: over 100, warning level
    with pytest.raises(cb.ImageError, match="too many pixels"):
        cb.decode_upload(data)
    data = _encode(Image.new("RGB", (20, 11)), "PNG")  # 220 pixels: over 2×100, PIL's error
    with pytest.raises(cb.ImageError, match="too many pixels"):
        cb.decode_upload(data)


def test_decode_refuses_truncated_png():
    noise = np.random.default_rng(2).integers(0, 256, (64, 64, 3), np.uint8)
    data = _encode(Image.fromarray(noise), "PNG")
    with pytest.raises(cb.ImageError, match="damaged or truncated"):
        cb.decode_upload(data[: len(data) // 2])


# ---------------------------------------------------------------------------------------------
# The visitor's layer, its URL parameters, and what a bias adds to a ReLU network
# ---------------------------------------------------------------------------------------------

SPECS = [
    cb.LayerSpec(),
    cb.LayerSpec(in_channels=1, out_channels=8, kernel=3, stride=1, padding=1),
    cb.LayerSpec(out_channels=5, kernel=1, stride=3, padding=0, bias=False),
    cb.LayerSpec(in_channels=1, out_channels=256, kernel=15, stride=8, padding=15),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.line)
def test_layer_spec_builds_the_layer_it_names(spec):
    layer = cb.seed_layer(spec)
    reference = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride,
                          spec.padding, bias=spec.bias)
    assert layer.weight.shape == reference.weight.shape
    assert (layer.bias is None) == (not spec.bias)
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in reference.parameters())
    bound = 1 / math.sqrt(spec.fan_in)
    assert float(layer.weight.abs().max()) <= bound
    x = cb.to_input(cb.builtin_scene(32), spec.in_channels)
    assert x.shape == (1, spec.in_channels, 32, 32)
    assert layer(x).shape[-1] == spec.output_size(32) == reference(x).shape[-1]
    # the line the page shows builds the same layer
    built = eval(spec.line, {"nn": nn})
    assert built.weight.shape == reference.weight.shape and (built.bias is None) == (not spec.bias)


def test_a_kernel_that_does_not_fit_is_a_sentence():
    spec = cb.LayerSpec(kernel=15, padding=0)
    assert spec.problem(16) is None
    text = spec.problem(8)
    assert "does not fit a 8×8 input with padding 0" in text and "padding ≥ 4" in text
    with pytest.raises(RuntimeError):
        nn.Conv2d(3, 4, 15)(torch.zeros(1, 3, 8, 8))
    nn.Conv2d(3, 4, 15, padding=4)(torch.zeros(1, 3, 8, 8))  # the suggestion runs


def test_greyscale_input_is_the_luminance():
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    grey = cb.to_input(rgb, 1)[0, 0].double().numpy()
    luma = (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255
    mean = 0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406
    std = 0.299 * 0.229 + 0.587 * 0.224 + 0.114 * 0.225
    np.testing.assert_allclose(grey, (luma - mean) / std, rtol=1e-6)
    assert (cb.as_seen(rgb, 1)[..., 0] == cb.as_seen(rgb, 1)[..., 2]).all()


def test_view_from_query_params_checks_each_value_against_the_others():
    view, notes = cb.view_from_query_params({})
    assert view == cb.PageView() and notes == []  # row and column None: the middle of the output
    view, notes = cb.view_from_query_params(
        {"bias_out": "128", "bias_channel": "100", "bias_size": "112", "bias_row": "27"})
    assert notes == [] and view.layer.out_channels == 128 and view.channel == 100
    assert (view.size, view.row, view.col) == (112, 27, None)
    view, notes = cb.view_from_query_params(
        {"bias_size": "999", "bias_channel": "70", "bias_kernel": "1e400", "bias_row": "3.5",
         "bias_bias": "maybe", "bias_in": "2", "bias_col": "112"})
    assert view == cb.PageView()
    assert [note.text() for note in notes] == [
        "URL parameter `bias_in=2` is not one of 1, 3; using 3.",
        "URL parameter `bias_bias=maybe` is not one of true, false; using true.",
        "URL parameter `bias_kernel=1e400` is not a whole number; using 7.",
        "URL parameter `bias_size=999` is not one of 8, 16, 32, 64, 112, 160, 224, 320, 448; using 224.",
        "URL parameter `bias_channel=70` is outside 0 to 63: this layer has 64 output channels; "
        "using channel 0.",
        "URL parameter `bias_row=3.5` is not a whole number; using 56.",
        "URL parameter `bias_col=112` is outside 0 to 111: this layer's output is 112×112; using 56.",
    ]
    view, notes = cb.view_from_query_params({"bias_bias": "false", "bias_in": "1", "bias_pad": "0"})
    assert notes == [] and view.layer == cb.LayerSpec(in_channels=1, padding=0, bias=False)


def test_url_notes_show_the_visitors_text_as_text_in_either_language():
    from convmix.i18n import language
    from tests.i18n_text import english_runs

    hostile = {"bias_out": "![p](http://127.0.0.1:9/x.png)", "bias_size": "<b>8</b>",
               "bias_channel": "1" * 40, "bias_stride": "`; x"}
    view, notes = cb.view_from_query_params(hostile)
    assert view == cb.PageView() and len(notes) == 4
    for lang in ("en", "zh"):
        with language(lang):
            for note in notes:
                text = note.text()
                # The visitor's text stands in one code span, cut short: never a link or an image.
                assert text.count("`") >= 2 and "](http" not in text.replace(
                    text[text.index("`"):text.rindex("`") + 1], "")
                if lang == "zh":
                    assert english_runs(text) == [], text


@pytest.mark.parametrize("spec,size", [(cb.LayerSpec(), 224), (cb.LayerSpec(kernel=3, stride=1), 16),
                                       (cb.LayerSpec(kernel=15, stride=8), 64),
                                       (cb.LayerSpec(kernel=15, stride=1, padding=4), 8)])
def test_first_all_padding_is_the_smallest_padding_with_an_empty_window(spec, size):
    first = cb.first_all_padding(size, spec.kernel, spec.stride)

    def any_empty(p):  # by hand: a window whose every tap lies outside the input
        n = cb.conv_output_size(size, spec.kernel, spec.stride, p)
        starts = [i * spec.stride - p for i in range(n)]
        return any(s + spec.kernel <= 0 or s >= size for s in starts)

    assert any_empty(first) and not any(any_empty(p) for p in range(cb.min_padding(spec.kernel, size), first))


def test_bias_range_is_a_grid_through_the_learned_bias():
    pre = np.array([-0.3, 0.1, 0.52])
    lo, hi = cb.bias_range(pre, 0.0615)
    assert lo <= -0.52 and hi > 0.3 and lo <= 0.0 <= hi
    steps = (0.0615 - lo) / 0.01
    assert abs(steps - round(steps)) < 1e-9  # the slider's grid passes through 0.0615 exactly
    assert cb.survival_fraction(pre, lo) == 0.0 and cb.survival_fraction(pre, hi) == 1.0


def test_a_bias_breaks_positive_homogeneity():
    """Checked against ReLU(conv(·)) written out here: without the bias f(2x) = 2 f(x) to float
    rounding, with it not."""
    layer = cb.seed_layer(cb.LayerSpec(out_channels=8, kernel=3, stride=1, padding=1))
    x = cb.to_input(cb.builtin_scene(24))
    h = cb.homogeneity(layer, x, alpha=2.0)
    with torch.no_grad():
        conv = torch.nn.functional.conv2d
        plain = (conv(2 * x, layer.weight, None, 1, 1).clamp_min(0)
                 - 2 * conv(x, layer.weight, None, 1, 1).clamp_min(0)).abs().max()
        biased = (conv(2 * x, layer.weight, layer.bias, 1, 1).clamp_min(0)
                  - 2 * conv(x, layer.weight, layer.bias, 1, 1).clamp_min(0)).abs().max()
    assert h.without_bias < 1e-6 and float(plain) < 1e-5
    assert h.with_bias > 1e-3 and float(biased) > 1e-3
    with pytest.raises(ValueError):
        cb.homogeneity(cb.seed_layer(bias=False), x)


@pytest.mark.parametrize("spec,size", [
    (cb.LayerSpec(), 224),
    (cb.LayerSpec(out_channels=128, kernel=3, stride=1, padding=1), 112),
    (cb.LayerSpec(in_channels=1, out_channels=32, kernel=15, stride=1, padding=15), 64),
    (cb.LayerSpec(out_channels=256, kernel=3, stride=1, padding=1, bias=False), 8),  # BN statistics
])
def test_page_bytes_bounds_what_the_page_computes(spec, size):
    """Everything the page computes under its reservation, run as the page runs it (the BatchNorm's
    running statistics, gathered at the default size, included): the allocator's peak stays under
    the estimate the page reserves."""
    from convmix.memory import cpu_allocator_peak

    layer = cb.seed_layer(spec)
    x = cb.to_input(cb.builtin_scene(size), spec.in_channels)
    kept = []

    def everything():
        bn = cb.illustrative_bn(layer)
        kept.extend([bn, cb.page_results(layer, bn, x),
                     cb.padding_demo(layer, x, cb.demo_padding_max(spec))])

    assert cpu_allocator_peak(everything) <= cb.page_bytes(spec, size)
    assert cb.fitting_size(spec, 448, cb.page_bytes(spec, size)) >= size


@pytest.mark.parametrize("padding", [0, 3, 12])
def test_padding_bytes_bounds_one_demonstration(padding):
    from convmix.memory import cpu_allocator_peak

    spec = cb.LayerSpec(out_channels=96, kernel=5, stride=1, padding=2)
    layer, x = cb.seed_layer(spec), cb.to_input(cb.builtin_scene(96))
    assert cpu_allocator_peak(lambda: cb.padding_demo(layer, x, padding)) <= cb.padding_bytes(spec, 96, padding)


def test_page_results_are_the_functions_they_gather():
    spec = cb.LayerSpec(out_channels=8, kernel=3, stride=2, padding=1)
    layer = cb.seed_layer(spec)
    bn, x = cb.illustrative_bn(layer), cb.to_input(cb.builtin_scene(16))
    found = cb.page_results(layer, bn, x)
    assert torch.equal(found.run.y, cb.run_seed_layer(layer, x).y)
    assert found.gradient.batch == 2  # the image and its mirror
    assert torch.equal(found.gradient.bias_grad,
                       cb.gradient_check(layer, torch.cat([x, x.flip(3)])).bias_grad)
    assert found.first_empty == cb.first_all_padding(16, 3, 2)
    assert found.first_padding.padding == max(found.first_empty, 1) and found.layer_padding.padding == 1
    plain = cb.page_results(cb.seed_layer(spec.with_(bias=False)), bn, x)
    assert plain.cancellation is None and plain.gradient is None and plain.homogeneity is None


def test_the_padding_demonstration_starts_where_the_kernel_fits():
    spec = cb.LayerSpec(kernel=15, padding=4)
    assert spec.problem(8) is None and cb.demo_padding_min(spec, 8) == 4
    layer, x = cb.seed_layer(spec), cb.to_input(cb.builtin_scene(8))
    cb.padding_demo(layer, x, 4)
    with pytest.raises(ValueError):
        cb.padding_demo(layer, x, 3)
    assert cb.demo_padding_min(cb.LayerSpec(), 224) == 0


# -- decoding costs and refusals in the visitor's language ---------------------------------------------
def _peak_rss_during(run) -> int | None:
    """Growth of this process's peak resident memory while run() executes (Linux), else None."""
    import gc
    import os

    if not os.path.exists("/proc/self/clear_refs"):
        return None

    def status(key: str) -> int:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    base = status("VmRSS:")
    run()
    return status("VmHWM:") - base


def _transparent_png(side: int) -> bytes:
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[..., 0] = np.arange(side) % 256
    rgba[..., 3] = (np.arange(side)[:, None] % 256)
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def _grey16_png(side: int) -> bytes:
    return _encode(Image.fromarray((np.arange(side * side, dtype=np.uint32) % 65536)
                                   .astype(np.uint16).reshape(side, side)), "PNG")


NOISE_RSS = 8 << 20  # 5 % of the 180 MB estimate for a 3000 × 3000 image: a bound, not a fit


@pytest.mark.parametrize("make", [_transparent_png, _grey16_png], ids=["RGBA PNG", "16-bit PNG"])
def test_upload_bytes_bounds_what_decoding_holds(make):
    """The costliest decodes (a transparent image is composited over white; 16-bit greyscale is
    rescaled): the process's peak grows by less than the estimate the page reserves."""
    data = make(3000)
    assert len(data) < cb.MAX_UPLOAD_BYTES
    need = cb.upload_bytes(data, 448)
    assert need >= cb.DECODE_BYTES_PER_PIXEL * 3000 * 3000
    grown = _peak_rss_during(lambda: cb.square_crop(cb.decode_upload(data), 448))
    if grown is not None:  # resident memory: other threads of a long test run may add a few MiB
        assert grown <= need + NOISE_RSS


def test_upload_bytes_is_nothing_for_what_the_header_refuses():
    assert cb.upload_bytes(b"not an image", 224) == 0
    assert cb.upload_bytes(_encode(Image.new("1", (5000, 5000)), "PNG"), 224) == 0


def test_image_errors_are_english_for_logs_and_translated_for_the_visitor():
    from convmix.i18n import language
    from tests.i18n_text import english_runs

    cases = [b"", b"not an image at all", _encode(Image.new("RGB", (8, 8)), "GIF"),
             _encode(Image.new("1", (5000, 5000)), "PNG"), b"\x00" * (cb.MAX_UPLOAD_BYTES + 1),
             _encode(Image.new("RGB", (40, 30)), "JPEG")[:300]]
    for data in cases:
        with pytest.raises(cb.ImageError) as caught:
            cb.decode_upload(data)
        err = caught.value
        assert "PNG or JPEG" in str(err) and str(err) == err.text()
        with language("zh"):
            text = err.text()
        assert "PNG 或 JPEG" in text and english_runs(text) == [], text
        assert "5 MB" in text or "5,000×5,000" in text or "4096" in text


def test_the_articles_sentences_are_quoted_exactly():
    """The page quotes the saved copy of the article (shared/seed, beside the repository) word for
    word; it judges them, never re-translates them."""
    from pathlib import Path

    seed = Path(__file__).resolve().parents[2] / "shared" / "seed"
    copies = sorted(seed.glob("*.txt")) if seed.is_dir() else []
    if not copies:
        pytest.skip("the saved copy of the article is not beside this checkout")
    text = copies[0].read_text(encoding="utf-8")
    assert text.startswith(cb.ARTICLE_TITLE)
    for quote in (cb.QUOTE_SCALAR, cb.QUOTE_NONLINEAR, cb.QUOTE_NEEDED, cb.QUOTE_LEARNED,
                  cb.QUOTE_NO_SHIFT, cb.QUOTE_DEP_CONV):
        assert quote in text, quote


# -- issue 11 --------------------------------------------------------------------------------------------
def _record_resizes(monkeypatch) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    original = Image.Image.resize

    def resize(self, size, *args, **kwargs):
        sizes.append(tuple(size))
        return original(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    return sizes


def _exif_rotated(img: Image.Image, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(img, "JPEG", exif=exif)


@pytest.mark.parametrize(
    "data",
    [
        _encode(Image.new("RGB", (4096, 1), (9, 99, 199)), "PNG"),  # 97 bytes, passes the header checks
        _exif_rotated(Image.new("RGB", (1, 4096), (9, 99, 199))),  # 1×4096, rotated to 4096×1
    ],
    ids=["4096x1 PNG", "1x4096 JPEG with EXIF rotation"],
)
def test_a_thin_image_is_never_resized_beyond_the_square(monkeypatch, data):
    """Item 2: resized whole before cropping, a 4096×1 image became 1,835,008×448 (4.2 GB)."""
    sizes = _record_resizes(monkeypatch)
    img = cb.decode_upload(data)
    assert img.size == (4096, 1)  # the orientation is applied before anything else
    out = cb.square_crop(img, 448)
    assert out.shape == (448, 448, 3)
    assert sizes and all(w * h <= 448 * 448 for w, h in sizes)
    assert abs(int(out[100, 100, 2]) - 199) <= 3  # the image's colour, not padding


def test_square_crop_equals_resize_then_crop(monkeypatch):
    """Cropping the centre square first and resampling it (PIL's box) gives ResNet's resize-then-crop
    pixels: checked where the crop falls on whole pixels of the resized image."""
    rng = np.random.default_rng(5)
    for (w, h), size in (((60, 40), 20), ((40, 60), 20), ((90, 30), 60), ((64, 64), 32)):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8))
        scale = size / min(w, h)
        new_w, new_h = round(w * scale), round(h * scale)
        resized = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        expected = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.int16)
        got = cb.square_crop(img, size).astype(np.int16)
        assert np.abs(got - expected).max() <= 1


def test_the_size_is_checked_again_after_the_exif_orientation(monkeypatch):
    monkeypatch.setattr(cb, "MAX_SIDE", 100)
    data = _exif_rotated(Image.new("RGB", (50, 100)))  # within limits as stored, and as rotated
    assert cb.decode_upload(data).size == (100, 50)
    checks = []
    original = cb.check_size
    monkeypatch.setattr(cb, "check_size", lambda w, h: checks.append((w, h)) or original(w, h))
    cb.decode_upload(data)
    assert checks == [(50, 100), (100, 50)]  # the header's size, then the oriented image's


@pytest.mark.parametrize("cut", [2, 3, 10, 20, 50, 100, 200, 400])
def test_a_jpeg_cut_inside_its_header_is_a_message(cut):
    """Item 9: a JPEG cut inside its header raised UnboundLocalError ('fmt')."""
    data = _encode(Image.new("RGB", (40, 30), (1, 2, 3)), "JPEG")
    with pytest.raises(cb.ImageError, match="not an image that can be read|damaged or truncated"):
        cb.decode_upload(data[:cut])


def test_a_phone_cameras_mpo_is_read_as_its_first_frame():
    """Item 12: phone cameras save MPO files (a JPEG followed by more frames); the first is the photo."""
    photo, preview = Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (20, 10), (0, 0, 255))
    buf = io.BytesIO()
    photo.save(buf, "MPO", save_all=True, append_images=[preview])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    img = cb.decode_upload(buf.getvalue())
    assert img.size == (40, 30) and abs(int(np.asarray(img)[5, 5, 0]) - 200) < 6
