"""One forward of the authors' ACmix ResNet at 224×224 on the CPU: time and peak memory.

    python benchmarks/resnet_forward.py [--depth 50] [--size 224] [--batch 1] [--repeats 5]

Side by side in one run: the network as the authors wrote it (ACmix's reference attention), the
same weights with ACmix's fast attention (impl="fast", same values), and the same network with a
plain 3×3 convolution as every bottleneck's conv2 (torchvision's ResNet layout), whose ratio shows
what ACmix costs. Peak memory is what the no-grad forward allocates beyond weights and input
(convmix.memory.LiveBytes), beside convmix.activations' estimate that gates forwards on the hosted
app, and the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from convmix.activations import forward_bytes_until  # noqa: E402
from convmix.format import human_bytes  # noqa: E402
from convmix.memory import LiveBytes  # noqa: E402
from convmix.models import acmix_resnet  # noqa: E402
from convmix.runtime import configure_torch  # noqa: E402


def plain_conv2(model: nn.Module) -> nn.Module:
    """The same network with torchvision's 3×3 conv2 (bias-free) in every bottleneck."""
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            w, s = block.conv2.in_planes, block.conv2.stride
            block.conv2 = nn.Conv2d(w, w, 3, stride=s, padding=1, bias=False)
    return model.eval()


def time_forwards(models: dict[str, nn.Module], x: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Interleaved: every repeat runs each model once, so load on a shared machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model(x)  # warm-up
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    return times


def peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    counter = LiveBytes()
    with torch.no_grad(), counter:
        model(x)
    return counter.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=50, choices=(26, 38, 50))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    configure_torch()  # a lone measurement: $CONVMIX_THREADS, else the CPUs this process may use

    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    reference = acmix_resnet(args.depth, seed=0)
    fast = acmix_resnet(args.depth, seed=0)
    for _, m in fast.acmix_modules():
        m.impl = "fast"
    plain = plain_conv2(acmix_resnet(args.depth, seed=0))
    with torch.no_grad():
        same = torch.allclose(reference(x), fast(x), rtol=1e-4, atol=1e-4)

    weights = sum(t.numel() for t in reference.state_dict().values())
    estimate = forward_bytes_until(args.depth, None, args.batch, args.size, args.size, weights)
    estimate -= 4 * (weights + x.numel())
    print(f"ACmix ResNet-{args.depth}, batch {args.batch}, {args.size}×{args.size}, float32, CPU, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; fast == reference: {same}")
    print(f"{'network':<34}{'median s':>10}{'min s':>8}{'peak allocated':>16}")
    models = {"authors' ACmix (reference)": reference, "ACmix, impl='fast'": fast,
              "plain 3×3 conv2 (torchvision)": plain}
    all_times = time_forwards(models, x, args.repeats)
    rows = {}
    for name, model in models.items():
        times = all_times[name]
        peak = peak_bytes(model, x)
        rows[name] = (statistics.median(times), peak)
        print(f"{name:<34}{statistics.median(times):>10.3f}{min(times):>8.3f}{human_bytes(peak):>16}")
    ref_t, ref_p = rows["authors' ACmix (reference)"]
    fast_t, fast_p = rows["ACmix, impl='fast'"]
    plain_t, plain_p = rows["plain 3×3 conv2 (torchvision)"]
    print(f"ratios: reference / plain time {ref_t / plain_t:.2f}, peak {ref_p / plain_p:.2f}; "
          f"reference / fast time {ref_t / fast_t:.2f}, peak {ref_p / fast_p:.2f}")
    print(f"estimate used to gate forwards (beyond weights and input): {human_bytes(estimate)} "
          f"= {estimate / ref_p:.2f} × the measured reference peak")
    print(f"process max RSS: {human_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}")


if __name__ == "__main__":
    main()
