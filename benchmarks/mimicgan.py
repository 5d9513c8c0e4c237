"""MimicGAN on the zoo digits: robust classification (paper Fig. 3b analog), recovery PSNR,
cleaning time, and the adversarial-defence study (paper Fig. 4b analog).

    python benchmarks/mimicgan.py --n 500              # robust classification
    python benchmarks/mimicgan.py --n 500 --config digits   # ... with the generic preset
    python benchmarks/mimicgan.py --n 500 --defence    # adversarial defence
    python benchmarks/mimicgan.py --n 500 --inits 0,1,2,3 --corruptions blur_negative \
        --config digits_blur_negative,digits       # surrogate-initialisation dependence
    python benchmarks/mimicgan.py --n 500 --device cuda   # on a GPU (H100 speed target)

Robust classification: for each corruption, digits-classifier accuracy on the raw corrupted
images, on PGD-cleaned (Defense-GAN) images and on MimicGAN-cleaned images; mean PSNR of the
recoveries against the clean digits; wall and CPU seconds of the MimicGAN cleaning (CPU seconds
of this process: on a machine shared with other jobs they estimate the idle wall time better).

Adversarial defence: untargeted L-inf FGSM and PGD attacks from ``captum.robust`` on the
classifier alone (the paper's setting: the attacker does not know the defence), then accuracy
with no defence, Defense-GAN (PGD cleaning), Cowboy (Defense-GAN plus the discriminator term,
``lambda_adv = 1e-3`` as in the paper) and MimicGAN. Prints Markdown tables.

Initialisation dependence (``--inits``): for each seed ``s``, MimicGAN starts from a surrogate
initialised from torch seed ``s`` (``s = 0`` is the class's default surrogate) and recovers with
``seed=s``; prints the accuracy per seed and its spread, per preset.

``--device cuda`` puts the models and the digits on the GPU; timers are read after
``torch.cuda.synchronize()``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from typing import Any, Callable

import torch
from torch import nn


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds (queued GPU work included)."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500,
                        help="test digits (the zoo's test split holds 450)")
    parser.add_argument("--corruptions", default="binary,dropped_pixels,blur_negative")
    parser.add_argument("--config", default=None,
                        help="MimicGAN preset(s), comma-separated (default: digits_<corruption>, "
                             "else digits; with --defence: digits_adversarial)")
    parser.add_argument("--defence", action="store_true",
                        help="run the adversarial-defence study instead")
    parser.add_argument("--attacks", default="fgsm,pgd", help="with --defence")
    parser.add_argument("--epsilons", default="0,0.05,0.1,0.2",
                        help="with --defence: L-inf radii on [0, 1] images (0: no attack)")
    parser.add_argument("--inits", default=None,
                        help="comma-separated seeds: run the initialisation-dependence study")
    parser.add_argument("--restarts", type=int, default=None,
                        help="override the presets' number of surrogate initialisations")
    parser.add_argument("--skip-baselines", action="store_true",
                        help="MimicGAN only: no PGD / Defense-GAN / Cowboy (printed as -)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:index]")
    args = parser.parse_args()
    from captum_latent import zoo
    from captum_latent.inverse import PRESETS, MimicGAN, corruptions

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch.cuda.is_available() is False")
    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    gan.generator.to(device)
    gan.discriminator.to(device)
    clf.to(device)
    ds = zoo.digits()
    x, y = ds.test.images[: args.n].to(device), ds.test.labels[: args.n].to(device)

    def accuracy(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((clf(images).argmax(1) == y).float().mean())

    def psnr(images: torch.Tensor) -> float:
        mse = ((images.clamp(0, 1) - x) ** 2).flatten(1).mean(1)
        return float((10 * torch.log10(1 / mse)).mean())

    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"{len(y)} zoo test digits; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), device "
          f"{device}{gpu}")
    print(f"clean accuracy {accuracy(x):.3f}")
    if args.defence:
        _defence(args, gan, clf, x, y, accuracy, device)
        return
    if args.inits:
        _inits(args, gan, x, accuracy)
        return
    print("| corruption | preset | raw acc. | PGD acc. | MimicGAN acc. | raw PSNR | PGD PSNR | "
          "MimicGAN PSNR | MimicGAN wall s | MimicGAN CPU s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.corruptions.split(","):
        observed = corruptions.CORRUPTIONS[name](x, seed=args.seed)
        for label, config in _configs(args, name, PRESETS):
            pgd_acc = pgd_psnr = "-"
            if not args.skip_baselines:
                pgd = MimicGAN.pgd(gan.generator, config=config).recover(observed, seed=args.seed)
                pgd_acc, pgd_psnr = f"{accuracy(pgd.images):.3f}", f"{psnr(pgd.images):.2f}"
            mimic, wall, cpu = _timed(
                lambda config=config, observed=observed: MimicGAN(
                    gan.generator, config=config).recover(observed, seed=args.seed), device)
            print(f"| {name} | {label} | {accuracy(observed.clamp(0, 1)):.3f} | {pgd_acc} | "
                  f"{accuracy(mimic.images):.3f} | {psnr(observed):.2f} | {pgd_psnr} | "
                  f"{psnr(mimic.images):.2f} | {wall:.1f} | {cpu:.1f} |", flush=True)


def _configs(args: argparse.Namespace, name: str, presets: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(label, MimicGANConfig)`` for ``--config`` (default: ``digits_<name>``, else ``digits``)
    with ``--restarts`` applied."""
    names = args.config.split(",") if args.config else [
        f"digits_{name}" if f"digits_{name}" in presets else "digits"]
    if args.restarts is None:
        return [(n, presets[n]) for n in names]
    return [(f"{n} (restarts {args.restarts})", replace(presets[n], restarts=args.restarts))
            for n in names]


def _inits(args: argparse.Namespace, gan: Any, x: torch.Tensor,
           accuracy: Callable[[torch.Tensor], float]) -> None:
    """Accuracy of MimicGAN started from differently initialised surrogates (seed ``s``:
    surrogate from torch seed ``s``, ``recover(seed=s)``)."""
    from captum_latent.inverse import PRESETS, MimicGAN, ShallowSurrogate, corruptions

    seeds = [int(v) for v in args.inits.split(",")]
    print(f"initialisation seeds {seeds}")
    print("| corruption | preset | restarts | " + " | ".join(f"seed {s}" for s in seeds)
          + " | mean | min | max - min |")
    print("| --- | --- | ---: | " + " | ".join("---:" for _ in seeds) + " | ---: | ---: | ---: |")
    for name in args.corruptions.split(","):
        observed = corruptions.CORRUPTIONS[name](x, seed=args.seed)
        for label, config in _configs(args, name, PRESETS):
            accs = []
            for s in seeds:
                with torch.random.fork_rng(devices=[]):
                    torch.default_generator.manual_seed(s)
                    surrogate = ShallowSurrogate(tuple(x.shape[1:]))
                model = MimicGAN(gan.generator, surrogate=surrogate, config=config)
                accs.append(accuracy(model.recover(observed, seed=s).images))
            print(f"| {name} | {label} | {config.restarts} | "
                  + " | ".join(f"{a:.3f}" for a in accs)
                  + f" | {sum(accs) / len(accs):.3f} | {min(accs):.3f} | "
                  f"{max(accs) - min(accs):.3f} |", flush=True)


def _defence(args: argparse.Namespace, gan: Any, clf: nn.Module, x: torch.Tensor,
             y: torch.Tensor, accuracy: Callable[[torch.Tensor], float],
             device: torch.device) -> None:
    from captum_latent.inverse import PRESETS, MimicGAN, corruptions

    configs = _configs(args, "adversarial", PRESETS)
    print("attacks from captum.robust on the classifier alone (PGD: 10 steps of epsilon / 4); "
          "Defense-GAN and Cowboy use the first preset")
    print("| attack | epsilon | no defence | Defense-GAN | Cowboy | "
          + " | ".join(f"MimicGAN {label} | wall s | CPU s" for label, _ in configs) + " |")
    print("| --- | ---: | ---: | ---: | ---: | " + " | ".join("---: | ---: | ---:" for _ in configs)
          + " |")
    epsilons = [float(e) for e in args.epsilons.split(",")]
    cases = [("none", 0.0)] if 0.0 in epsilons else []
    cases += [(a, e) for a in args.attacks.split(",") for e in epsilons if e > 0]
    for attack, eps in cases:
        adv = x if attack == "none" else corruptions.adversarial(clf, x, y, attack, eps)
        baselines = ["-", "-"]
        if not args.skip_baselines:
            pgd = MimicGAN.pgd(gan.generator, config=configs[0][1]).recover(adv, seed=args.seed)
            cowboy = MimicGAN.cowboy(gan.generator, gan.discriminator, config=configs[0][1],
                                     lambda_adv=1e-3).recover(adv, seed=args.seed)
            baselines = [f"{accuracy(pgd.images):.3f}", f"{accuracy(cowboy.images):.3f}"]
        cells = []
        for _, config in configs:
            mimic, wall, cpu = _timed(
                lambda adv=adv, config=config: MimicGAN(gan.generator, config=config).recover(
                    adv, seed=args.seed), device)
            cells.append(f"{accuracy(mimic.images):.3f} | {wall:.1f} | {cpu:.1f}")
        print(f"| {attack} | {eps:g} | {accuracy(adv):.3f} | {baselines[0]} | {baselines[1]} | "
              + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
