"""LEG-TV's cost against Captum's Lime and KernelShap on an RGB 224x224 classifier.

Every method gets the same number of model evaluations per image, in the same process, on the
same images (skimage photographs, resized), one after the other; each is timed over
``--repeats`` runs after one warm-up call and the median is printed. The model is a small
ResNet-like CNN (random weights: cost does not depend on them). Lime and KernelShap use a
16x16-pixel block mask (196 features) and ``perturbations_per_eval=--ppe``; LEG and LEG-TV run
at their defaults (grid, ``perturbations_per_eval`` chosen from the batch) unless a row says
otherwise.

Usage::

    python benchmarks/leg_tv_cost.py                # 2 images, n = 500, 2 threads
    python benchmarks/leg_tv_cost.py --images 4 --n-samples 1000
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any, Callable

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


def small_resnet(classes: int = 10, seed: int = 0) -> nn.Module:
    """A ResNet-like CNN for ``(N, 3, 224, 224)`` inputs: 4 stages, one residual block each."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 7, stride=4, padding=3), nn.ReLU()]
    channels = 16
    for out in (16, 32, 64, 64):
        layers += [_Block(channels), nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.ReLU()]
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    return nn.Sequential(*layers).eval()


def photographs(count: int) -> torch.Tensor:
    """``count`` skimage photographs as ``(count, 3, 224, 224)`` in [0, 1]."""
    from skimage import data
    from skimage.transform import resize

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina"]
    out = []
    for name in (names * (count // len(names) + 1))[:count]:
        img = getattr(data, name)()[..., :3]
        out.append(torch.from_numpy(resize(img, (224, 224), anti_aliasing=True)).permute(2, 0, 1))
    return torch.stack(out).float()


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (allocations, first-call costs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--ppe", type=int, default=100,
                        help="Lime/KernelShap perturbations_per_eval (the issue's setting)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import warnings

    from captum.attr import KernelShap, Lime

    warnings.filterwarnings("ignore", message="You are providing multiple inputs")

    from captum_latent import LEG, LEGTV

    model = small_resnet()
    x = photographs(args.images)
    with torch.no_grad():
        target = model(x).argmax(dim=1)
    blocks = torch.arange(224) // 16
    mask = (blocks[:, None] * 14 + blocks[None, :]).reshape(1, 1, 224, 224)
    n = args.n_samples
    rows: list[tuple[str, Callable[[], Any]]] = [
        ("Captum Lime (16x16 blocks)", lambda: Lime(model).attribute(
            x, target=target, n_samples=n, perturbations_per_eval=args.ppe, feature_mask=mask)),
        ("Captum KernelShap (16x16 blocks)", lambda: KernelShap(model).attribute(
            x, target=target, n_samples=n, perturbations_per_eval=args.ppe, feature_mask=mask)),
        ("LEG-TV defaults", lambda: LEGTV(model).attribute(x, target=target, n_samples=n,
                                                           seed=0)),
        ("LEG defaults", lambda: LEG(model).attribute(x, target=target, n_samples=n, seed=0)),
        ("LEG-TV, 16x16 blocks as feature_mask", lambda: LEGTV(model).attribute(
            x, target=target, n_samples=n, seed=0, feature_mask=mask)),
        ("LEG-TV grid 56x56", lambda: LEGTV(model).attribute(
            x, target=target, n_samples=n, seed=0, grid_size=(56, 56))),
        ("model only: n forward passes", lambda: _forward_only(model, x, n, args.ppe)),
    ]
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.images} images 3x224x224, n = {n}, "
          f"median of {args.repeats}")
    print("| method | seconds (all images) | relative to Lime |")
    print("| --- | ---: | ---: |")
    lime = None
    for name, fn in rows:
        secs = _median_time(fn, args.repeats)
        lime = secs if lime is None else lime
        print(f"| {name} | {secs:.2f} | {secs / lime:.2f} |", flush=True)


def _forward_only(model: nn.Module, x: torch.Tensor, n: int, ppe: int) -> None:
    """The model evaluations alone: ``n`` perturbed copies of every image, ``ppe`` per call."""
    with torch.no_grad():
        for start in range(0, n, ppe):
            k = min(ppe, n - start)
            model(x.repeat_interleave(k, dim=0))


if __name__ == "__main__":
    main()
