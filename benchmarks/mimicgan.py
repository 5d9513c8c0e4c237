"""MimicGAN on the zoo digits: robust classification (paper Fig. 3b analog) and recovery PSNR.

    python benchmarks/mimicgan.py --n 500

For each corruption: digits-classifier accuracy on the raw corrupted images, on PGD-cleaned
(Defense-GAN) images and on MimicGAN-cleaned images; mean PSNR of the recoveries against the
clean digits; seconds to clean the batch. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="test digits")
    parser.add_argument("--corruptions", default="binary,dropped_pixels,blur_negative")
    parser.add_argument("--config", default=None,
                        help="MimicGAN preset (default: digits_<corruption>, else digits)")
    args = parser.parse_args()
    from captum_latent import zoo
    from captum_latent.inverse import MimicGAN, corruptions

    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    ds = zoo.digits()
    x, y = ds.test.images[: args.n], ds.test.labels[: args.n]

    def accuracy(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((clf(images).argmax(1) == y).float().mean())

    def psnr(images: torch.Tensor) -> float:
        mse = ((images.clamp(0, 1) - x) ** 2).flatten(1).mean(1)
        return float((10 * torch.log10(1 / mse)).mean())

    from captum_latent.inverse import PRESETS

    print(f"{len(y)} zoo test digits, preset {args.config or 'digits_<corruption>'}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"clean accuracy {accuracy(x):.3f}")
    print("| corruption | raw acc. | PGD acc. | MimicGAN acc. | raw PSNR | PGD PSNR | "
          "MimicGAN PSNR | MimicGAN s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.corruptions.split(","):
        observed = corruptions.CORRUPTIONS[name](x, seed=0)
        config = args.config or (f"digits_{name}" if f"digits_{name}" in PRESETS else "digits")
        pgd = MimicGAN.pgd(gan.generator, config=config).recover(observed, seed=0)
        start = time.perf_counter()
        mimic = MimicGAN(gan.generator, config=config).recover(observed, seed=0)
        seconds = time.perf_counter() - start
        print(f"| {name} | {accuracy(observed.clamp(0, 1)):.3f} | {accuracy(pgd.images):.3f} | "
              f"{accuracy(mimic.images):.3f} | {psnr(observed):.2f} | {psnr(pgd.images):.2f} | "
              f"{psnr(mimic.images):.2f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
