"""Throughput of the latent-search core: image-iterations per second.

One image-iteration is one code pushed through a forward pass, a backward pass to the code and
an optimiser update. For each generator shape, device, precision and batch size this prints

- ``raw``: a hand-written loop (``torch.optim.Adam`` on a ``(B, d)`` code tensor, frozen
  generator, MSE to a target), the ceiling for any search built on the same generator;
- ``engine``: :class:`captum_latent.core.LatentSearch` doing the same work (no stop rule,
  fixed budget), including its bookkeeping (per-row Adam, best-code tracking, stop checks);
- ``ratio``: engine / raw.

Generators (random weights: throughput does not depend on training):

- ``digits``: the zoo's digits DCGAN (``captum_latent.zoo.DCGANGenerator``, d=32, 1x28x28);
- ``fmnist``: MimicGAN's Fashion-MNIST generator (its App. C, Table 3: d=100, 1x28x28);
- ``dcgan64``: the DCGAN of Radford et al. (d=100, 3x64x64).

Besides throughput, ``--experiment`` runs the measured claims of
``docs/methods/latent_search.md`` on the zoo's digits models (trained on first use):

- ``batchnorm``: iterations to a masked threshold with batch-norm in "eval" vs "batch" mode;
- ``reversal``: reversal of generated images and the MSE distribution on real test digits;
- ``priors``: classifier confidence and PAG of N(0, I), Gaussian and PGAN priors;
- ``encoder``: diverse-encoder vs random initialisation (iterations to a masked threshold).

Usage::

    python benchmarks/latent_search.py                       # CPU, digits + fmnist
    python benchmarks/latent_search.py --threads 1 --experiment batchnorm reversal priors encoder
    python benchmarks/latent_search.py --device cuda --generators fmnist dcgan64 \\
        --batches 64 256 1024 4096 8192 --precisions fp32 bf16 bf16-cl
    python benchmarks/latent_search.py --batch-one           # batch 1: engine vs loop

Run it alone on the machine: timings of a shared CPU are not worth much.
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from typing import Callable

import torch
from torch import nn

from captum_latent.core import Adam, LatentSearch, Reconstruction


def fmnist_generator() -> nn.Module:
    g = nn.Sequential(
        nn.Linear(100, 1024), nn.ReLU(), nn.BatchNorm1d(1024),
        nn.Linear(1024, 128 * 7 * 7), nn.ReLU(), nn.BatchNorm1d(128 * 7 * 7),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh(),
    )
    g.latent_dim = 100
    return g


def dcgan64_generator() -> nn.Module:
    def up(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(True)]

    g = nn.Sequential(
        nn.Unflatten(1, (100, 1, 1)),
        nn.ConvTranspose2d(100, 512, 4, 1, 0, bias=False), nn.BatchNorm2d(512), nn.ReLU(True),
        *up(512, 256), *up(256, 128), *up(128, 64),
        nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False), nn.Tanh(),
    )
    g.latent_dim = 100
    return g


def digits_generator() -> nn.Module:
    from captum_latent.zoo import DCGANGenerator

    return DCGANGenerator(latent_dim=32)


GENERATORS: dict[str, Callable[[], nn.Module]] = {
    "digits": digits_generator,
    "fmnist": fmnist_generator,
    "dcgan64": dcgan64_generator,
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _prepare(name: str, device: torch.device, precision: str) -> nn.Module:
    torch.manual_seed(0)  # benchmark script: weights only, outside the library
    g = GENERATORS[name]().to(device).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    if precision.endswith("-cl"):
        g = g.to(memory_format=torch.channels_last)
    return g


def _autocast(device: torch.device, precision: str):
    if precision.startswith("bf16"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)


def raw_loop(g: nn.Module, target: torch.Tensor, iterations: int, device: torch.device,
             precision: str) -> float:
    """Seconds for ``iterations`` hand-written forward + backward + Adam steps."""
    d = g.latent_dim
    z = torch.randn(target.shape[0], d, device=device, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.05)
    _sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        with _autocast(device, precision):
            loss = (g(z).float() - target).square().flatten(1).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def engine_loop(g: nn.Module, target: torch.Tensor, iterations: int, device: torch.device,
                precision: str) -> float:
    search = LatentSearch(
        g, optimizer=Adam(lr=0.05), max_iterations=iterations, batch_size=target.shape[0],
        device=device, autocast_dtype=torch.bfloat16 if precision.startswith("bf16") else None,
    )
    objective = Reconstruction(target)
    _sync(device)
    start = time.perf_counter()
    search.search(objective, seed=0)
    _sync(device)
    # the engine evaluates once more than it steps (the final harvest check)
    return (time.perf_counter() - start) * iterations / (iterations + 1)


def measure(fn, g, batch: int, device: torch.device, precision: str, seconds: float,
            repeats: int = 1) -> float:
    """Best of ``repeats`` timings (the least disturbed by other load), in image-it/s."""
    with torch.no_grad():
        target = g(torch.randn(batch, g.latent_dim, device=device)).float()
    elapsed = fn(g, target, 2, device, precision)  # warm-up, and a time estimate
    iterations = max(3, min(2000, int(seconds / repeats / max(elapsed / 2, 1e-6))))
    best = min(fn(g, target, iterations, device, precision) for _ in range(repeats))
    return batch * iterations / best


def batch_one(names: list[str], device: torch.device, seconds: float, repeats: int) -> None:
    """Engine vs a hand-written single-sample loop, measured alternately, best of each."""
    print(f"\nbatch 1: time per iteration (best of {repeats} alternating runs), {device}")
    print(f"{'generator':<10}{'loop':>12}{'engine':>12}{'engine/loop':>13}")
    for name in names:
        g = _prepare(name, device, "fp32")
        loops, engines = [], []
        for _ in range(repeats):
            loops.append(1 / measure(raw_loop, g, 1, device, "fp32", seconds / repeats))
            engines.append(1 / measure(engine_loop, g, 1, device, "fp32", seconds / repeats))
        loop, eng = min(loops), min(engines)
        print(f"{name:<10}{loop * 1e3:>10.3f}ms{eng * 1e3:>10.3f}ms{eng / loop:>13.2f}")


# -- measured claims on the zoo's digits models -------------------------------------------

def _zoo_setup():
    from captum_latent import zoo
    from captum_latent.generative.superpixels import random_superpixel_masks, superpixel_segments

    generator = zoo.digits_gan(progress=False).generator
    digits = zoo.digits()
    x = digits.test.images[:100]
    masks = random_superpixel_masks(superpixel_segments(x), seed=1)
    return zoo, generator, digits, x, masks


def experiment_batchnorm() -> None:
    from captum_latent.core import LossThreshold, MaskedReconstruction

    _, generator, _, x, masks = _zoo_setup()
    objective = MaskedReconstruction(x, masks)
    print("\nbatch-norm mode: 100 test digits x random superpixel masks (keep 0.5), 8 codes "
          "each, Adam 0.05, budget 300")
    print(f"{'xi':>6}{'mode':>7}{'success':>9}{'median it':>11}{'mean it':>9}{'steps':>7}"
          f"{'seconds':>9}")
    for xi in (0.05, 0.02, 0.01):
        for mode in ("eval", "batch"):
            search = LatentSearch(generator, batchnorm=mode, max_iterations=300, batch_size=800)
            start = time.perf_counter()
            r = search.search(objective, samples_per_problem=8, stop=LossThreshold(xi), seed=0)
            it = r.iterations.float()
            print(f"{xi:>6}{mode:>7}{r.success_rate:>9.3f}{it.median().item():>11.0f}"
                  f"{it.mean().item():>9.1f}{r.steps:>7}{time.perf_counter() - start:>9.1f}")


def experiment_reversal() -> None:
    from captum_latent.generative import GeneratorReversal

    _, generator, digits, _, _ = _zoo_setup()
    z_star = torch.randn(256, generator.latent_dim, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        generated = generator(z_star)
    q = torch.tensor([0.1, 0.5, 0.9, 0.99])
    print("\nreversal, Adam 0.1, tolerance 5e-4, budget 400, restart patience 150")
    for name, images in (("generated G(z*)", generated), ("real test digits", digits.test.images)):
        reversal = GeneratorReversal(generator, optimizer=Adam(lr=0.1), tolerance=5e-4,
                                     max_iterations=400, restart_patience=150)
        start = time.perf_counter()
        r = reversal.reverse(images, seed=0)
        with torch.no_grad():
            mse = (generator(r.codes) - images).square().flatten(1).mean(1)
        quant = ", ".join(f"{v:.2e}" for v in torch.quantile(mse, q).tolist())
        print(f"{name}: n={len(images)}, MSE<1e-3 for {float((mse < 1e-3).float().mean()):.1%}, "
              f"MSE quantiles 10/50/90/99% = {quant}, median iterations "
              f"{r.iterations.float().median().item():.0f}, {time.perf_counter() - start:.1f}s")


def experiment_priors() -> None:
    from captum_latent.core import StandardNormal
    from captum_latent.generative import GaussianPrior, GeneratorReversal, PGANPrior, pag_score

    zoo, generator, digits, _, _ = _zoo_setup()
    classifier = zoo.digits_classifier(progress=False)
    start = time.perf_counter()
    reversal = GeneratorReversal(generator, prior=StandardNormal(32, scale=1e-4),
                                 tolerance=2e-3, max_iterations=300, restart_patience=None)
    codes = reversal.reverse(digits.train.images[:600], seed=0).codes
    print(f"\npriors: 600 training digits reverted (paper init sigma=1e-4, tolerance 2e-3) in "
          f"{time.perf_counter() - start:.0f}s; 3000 codes per prior")

    def confidence(z: torch.Tensor) -> float:
        with torch.no_grad():
            return float(classifier(generator(z)).softmax(1).amax(1).mean())

    n = 3000
    draws = torch.zeros(n, dtype=torch.long)
    start = time.perf_counter()
    pgan = PGANPrior.fit(codes, seed=0)
    pgan_seconds = time.perf_counter() - start
    rows = [
        ("N(0, I)", torch.randn(n, 32, generator=torch.Generator().manual_seed(5))),
        ("Gaussian (full cov.)",
         GaussianPrior.fit(codes).sample(draws, torch.Generator().manual_seed(5))),
        (f"PGAN ({pgan_seconds:.0f}s training)",
         pgan.sample(draws, torch.Generator().manual_seed(5))),
        ("reverted codes themselves", codes),
    ]
    print(f"{'prior':<28}{'mean confidence':>16}{'PAG':>10}")
    for name, z in rows:
        second_moment = z.T.double() @ z.double() / len(z)
        print(f"{name:<28}{confidence(z):>16.4f}"
              f"{pag_score(codes, reference_covariance=second_moment):>10.3f}")


def experiment_encoder() -> None:
    from captum_latent.core import LossThreshold, MaskedReconstruction
    from captum_latent.generative.diverse_encoder import (
        DiverseEncoderConfig,
        EncoderInitialiser,
        train_diverse_encoder,
    )

    _, generator, digits, x, masks = _zoo_setup()
    start = time.perf_counter()
    encoder = train_diverse_encoder(generator, digits.train.images,
                                    config=DiverseEncoderConfig(steps=400, batch_size=32), seed=0)
    with torch.no_grad():
        codes = encoder(x, masks)
    dist = torch.cdist(codes, codes)[:, ~torch.eye(encoder.n_codes, dtype=torch.bool)]
    print(f"\ndiverse encoder: trained {time.perf_counter() - start:.0f}s (400 steps x 32 masked "
          f"digits); mean pairwise code distance {float(dist.mean()):.2f} (t = {encoder.t:.2f})")
    objective = MaskedReconstruction(x, masks)
    print(f"{'xi':>6}{'init':>9}{'success':>9}{'median of per-digit median it':>31}"
          f"{'mean it':>9}{'seconds':>9}")
    for xi in (0.02, 0.01, 0.005):
        for name, prior in (("N(0,I)", None), ("encoder", EncoderInitialiser(encoder, x, masks))):
            search = LatentSearch(generator, max_iterations=300, batch_size=800)
            start = time.perf_counter()
            r = search.search(objective, samples_per_problem=8, stop=LossThreshold(xi),
                              prior=prior, seed=0)
            it = r.iterations.float()
            print(f"{xi:>6}{name:>9}{r.success_rate:>9.3f}"
                  f"{it.median(1).values.median().item():>31.0f}{it.mean().item():>9.1f}"
                  f"{time.perf_counter() - start:>9.1f}")


EXPERIMENTS = {
    "batchnorm": experiment_batchnorm,
    "reversal": experiment_reversal,
    "priors": experiment_priors,
    "encoder": experiment_encoder,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--generators", nargs="+", default=["digits", "fmnist"],
                        choices=sorted(GENERATORS))
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256, 1024])
    parser.add_argument("--precisions", nargs="+", default=["fp32"],
                        choices=["fp32", "bf16", "fp32-cl", "bf16-cl"])
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="target measuring time per cell")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timings per cell; the best is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--experiment", nargs="+", choices=sorted(EXPERIMENTS), default=None,
                        help="run these measurements on the zoo digits models instead")
    parser.add_argument("--batch-one", action="store_true",
                        help="also compare the engine with a hand-written loop at batch 1")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"torch {torch.__version__}, device {device} ({where or platform.machine()}), "
          f"{torch.get_num_threads()} CPU threads")
    if args.experiment:
        for name in args.experiment:
            EXPERIMENTS[name]()
        return
    print(f"{'generator':<10}{'precision':<10}{'batch':>7}{'raw img-it/s':>15}"
          f"{'engine img-it/s':>17}{'ratio':>8}")
    for name in args.generators:
        for precision in args.precisions:
            g = _prepare(name, device, precision)
            for batch in args.batches:
                raw = measure(raw_loop, g, batch, device, precision, args.seconds, args.repeats)
                eng = measure(engine_loop, copy.deepcopy(g), batch, device, precision,
                              args.seconds, args.repeats)
                print(f"{name:<10}{precision:<10}{batch:>7}{raw:>15,.0f}{eng:>17,.0f}"
                      f"{eng / raw:>8.2f}", flush=True)
    if args.batch_one:
        batch_one(args.generators, device, args.seconds, args.repeats)


if __name__ == "__main__":
    main()
