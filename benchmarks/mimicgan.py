"""MimicGAN on the zoo digits: robust classification (paper Fig. 3b analog), recovery PSNR,
cleaning time, and the adversarial-defence study (paper Fig. 4b analog).

    python benchmarks/mimicgan.py --n 500              # robust classification
    python benchmarks/mimicgan.py --n 500 --defence    # adversarial defence

Robust classification: for each corruption, digits-classifier accuracy on the raw corrupted
images, on PGD-cleaned (Defense-GAN) images and on MimicGAN-cleaned images; mean PSNR of the
recoveries against the clean digits; wall and CPU seconds of the MimicGAN cleaning (CPU seconds
of this process: on a machine shared with other jobs they estimate the idle wall time better).

Adversarial defence: untargeted L-inf FGSM and PGD attacks from ``captum.robust`` on the
classifier alone (the paper's setting: the attacker does not know the defence), then accuracy
with no defence, Defense-GAN (PGD cleaning), Cowboy (Defense-GAN plus the discriminator term,
``lambda_adv = 1e-3`` as in the paper) and MimicGAN. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any, Callable

import torch
from torch import nn


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500,
                        help="test digits (the zoo's test split holds 450)")
    parser.add_argument("--corruptions", default="binary,dropped_pixels,blur_negative")
    parser.add_argument("--config", default=None,
                        help="MimicGAN preset (default: digits_<corruption>, else digits; "
                             "with --defence: digits_adversarial)")
    parser.add_argument("--defence", action="store_true",
                        help="run the adversarial-defence study instead")
    parser.add_argument("--attacks", default="fgsm,pgd", help="with --defence")
    parser.add_argument("--epsilons", default="0,0.05,0.1,0.2",
                        help="with --defence: L-inf radii on [0, 1] images (0: no attack)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from captum_latent import zoo
    from captum_latent.inverse import PRESETS, MimicGAN, corruptions

    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    ds = zoo.digits()
    x, y = ds.test.images[: args.n], ds.test.labels[: args.n]

    def accuracy(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((clf(images).argmax(1) == y).float().mean())

    def psnr(images: torch.Tensor) -> float:
        mse = ((images.clamp(0, 1) - x) ** 2).flatten(1).mean(1)
        return float((10 * torch.log10(1 / mse)).mean())

    print(f"{len(y)} zoo test digits; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"clean accuracy {accuracy(x):.3f}")
    if args.defence:
        _defence(args, gan, clf, x, y, accuracy)
        return
    print("| corruption | raw acc. | PGD acc. | MimicGAN acc. | raw PSNR | PGD PSNR | "
          "MimicGAN PSNR | MimicGAN wall s | MimicGAN CPU s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.corruptions.split(","):
        observed = corruptions.CORRUPTIONS[name](x, seed=args.seed)
        config = args.config or (f"digits_{name}" if f"digits_{name}" in PRESETS else "digits")
        pgd = MimicGAN.pgd(gan.generator, config=config).recover(observed, seed=args.seed)
        mimic, wall, cpu = _timed(
            lambda: MimicGAN(gan.generator, config=config).recover(observed, seed=args.seed))
        print(f"| {name} | {accuracy(observed.clamp(0, 1)):.3f} | {accuracy(pgd.images):.3f} | "
              f"{accuracy(mimic.images):.3f} | {psnr(observed):.2f} | {psnr(pgd.images):.2f} | "
              f"{psnr(mimic.images):.2f} | {wall:.1f} | {cpu:.1f} |", flush=True)


def _defence(args: argparse.Namespace, gan: Any, clf: nn.Module, x: torch.Tensor,
             y: torch.Tensor, accuracy: Callable[[torch.Tensor], float]) -> None:
    from captum_latent.inverse import MimicGAN, corruptions

    config = args.config or "digits_adversarial"
    print(f"preset {config}; attacks from captum.robust on the classifier alone "
          "(PGD: 10 steps of epsilon / 4)")
    print("| attack | epsilon | no defence | Defense-GAN | Cowboy | MimicGAN | MimicGAN wall s "
          "| MimicGAN CPU s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    epsilons = [float(e) for e in args.epsilons.split(",")]
    cases = [("none", 0.0)] if 0.0 in epsilons else []
    cases += [(a, e) for a in args.attacks.split(",") for e in epsilons if e > 0]
    for attack, eps in cases:
        adv = x if attack == "none" else corruptions.adversarial(clf, x, y, attack, eps)
        pgd = MimicGAN.pgd(gan.generator, config=config).recover(adv, seed=args.seed)
        cowboy = MimicGAN.cowboy(gan.generator, gan.discriminator, config=config,
                                 lambda_adv=1e-3).recover(adv, seed=args.seed)
        mimic, wall, cpu = _timed(
            lambda adv=adv: MimicGAN(gan.generator, config=config).recover(adv, seed=args.seed))
        print(f"| {attack} | {eps:g} | {accuracy(adv):.3f} | {accuracy(pgd.images):.3f} | "
              f"{accuracy(cowboy.images):.3f} | {accuracy(mimic.images):.3f} | {wall:.1f} | "
              f"{cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
