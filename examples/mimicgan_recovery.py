"""MimicGAN: blind recovery of corrupted zoo digits, against PGD, and a defended classifier that
Captum explains unchanged.

What it shows
-------------
1. ``MimicGAN.recover`` cleans a batch of digits corrupted by a process it is *not* told
   (binarisation, and a blur followed by a negative): it fits a shallow surrogate network that
   mimics the corruption while searching the zoo DCGAN's latent space for the clean digits.
   ``MimicGAN.pgd`` is the Defense-GAN / PGD baseline (the same search with an identity
   surrogate). Both are scored by the digits classifier's accuracy on the recovered images and
   by PSNR against the clean digits.
2. ``MimicGANDefense(classifier, mimicgan)`` is an ``nn.Module`` that cleans, then classifies.
   It is fitted once on the corrupted batch (to learn the surrogate) and then handed to Captum's
   ``Saliency`` and ``InputXGradient`` like any model. Gradients pass through the cleaning
   step as the identity (straight-through), so a map shows the classifier's gradient at the
   cleaned image, at the position of the corrupted input's pixels.

Figures (in ``--out``, default ``examples-output/mimicgan_recovery/``): ``recoveries.png`` and
``defense_attributions.png``.

    python examples/mimicgan_recovery.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from captum.attr import InputXGradient, Saliency

from captum_latent import zoo
from captum_latent.inverse import MimicGAN, MimicGANDefense, corruptions

NAME = "mimicgan_recovery"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=f"examples-output/{NAME}",
                        help="directory for the figures (created if missing)")
    parser.add_argument("--images", type=int, default=32,
                        help="corrupted digits recovered together (the surrogate needs >= 25)")
    parser.add_argument("--corruptions", nargs="+", default=["binary", "blur_negative"],
                        choices=["binary", "dropped_pixels", "blur_negative"])
    parser.add_argument("--defend", default="binary",
                        choices=["binary", "dropped_pixels", "blur_negative"],
                        help="corruption the defended classifier is shown on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: the zoo models are small, and "
                        "torch's one-thread-per-core default slows down badly on a busy CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gan = zoo.digits_gan()  # the clean-image prior: DCGAN generator, images in [0, 1]
    classifier = zoo.digits_classifier()
    digits = zoo.digits()
    x, y = digits.test.images[: args.images], digits.test.labels[: args.images]

    def accuracy(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((classifier(images).argmax(1) == y).float().mean())

    def psnr(images: torch.Tensor) -> float:
        mse = ((images.clamp(0, 1) - x) ** 2).flatten(1).mean(1)
        return float((10 * torch.log10(1 / mse)).mean())

    # -- 1. blind recovery, MimicGAN vs PGD ----------------------------------------------------
    print(f"{len(x)} clean test digits: classifier accuracy {accuracy(x):.3f}")
    shown = []
    for name in args.corruptions:
        observed = corruptions.CORRUPTIONS[name](x, seed=args.seed)
        preset = f"digits_{name}"  # hyper-parameters tuned on other digits for this corruption
        start = time.perf_counter()
        pgd = MimicGAN.pgd(gan.generator, config=preset).recover(observed, seed=args.seed)
        t_pgd = time.perf_counter() - start
        start = time.perf_counter()
        mimic = MimicGAN(gan.generator, config=preset).recover(observed, seed=args.seed)
        t_mimic = time.perf_counter() - start
        print(f"{name:15s} accuracy raw {accuracy(observed.clamp(0, 1)):.3f}  "
              f"PGD {accuracy(pgd.images):.3f} ({t_pgd:.1f} s)  "
              f"MimicGAN {accuracy(mimic.images):.3f} ({t_mimic:.1f} s);  "
              f"PSNR PGD {psnr(pgd.images):.2f} dB, MimicGAN {psnr(mimic.images):.2f} dB")
        shown.append((name, observed, pgd.images, mimic.images, mimic.mimicked))

    k = 6
    labels = ["clean", "observed", "PGD", "MimicGAN", "surrogate(G(z))"]
    fig, axes = plt.subplots(5 * len(shown), k, figsize=(1.2 * k, 6.3 * len(shown)),
                             squeeze=False)
    for block, (name, *images) in enumerate(shown):
        for r, batch in enumerate([x, *images]):
            for c in range(k):
                ax = axes[5 * block + r, c]
                ax.imshow(batch[c, 0].clamp(0, 1), cmap="gray", vmin=0, vmax=1)
                ax.axis("off")
            axes[5 * block + r, 0].set_title(f"{name}: {labels[r]}", fontsize=8, loc="left")
    fig.suptitle("Blind recovery: the last row is the fitted surrogate's imitation of the "
                 "corruption", fontsize=8)
    fig.savefig(out / "recoveries.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    # -- 2. the defended classifier inside a Captum workflow ---------------------------------
    name = args.defend
    observed = corruptions.CORRUPTIONS[name](x, seed=args.seed)
    defended = MimicGANDefense(classifier, MimicGAN(gan.generator, config=f"digits_{name}"),
                               seed=args.seed)
    start = time.perf_counter()
    defended.fit(observed)  # learn the corruption surrogate once, on the whole batch
    print(f"MimicGANDefense fitted on {len(observed)} '{name}' digits in "
          f"{time.perf_counter() - start:.1f} s")
    few, few_y = observed[:4], y[:4]
    with torch.no_grad():
        raw_pred = classifier(few).argmax(1)
        outcome = defended.defend(few)  # the fitted surrogate stays fixed for later batches
        cleaned = outcome.images
        defended_pred = classifier(cleaned).argmax(1)  # what defended(few) returns
    print(f"labels {few_y.tolist()}: classifier on corrupted input {raw_pred.tolist()}, "
          f"defended {defended_pred.tolist()}")
    used = outcome.explained & ~outcome.passed_through
    repaired = int(outcome.repaired.sum())
    print(f"the classifier saw MimicGAN's recovery for {int(used.sum())} of {len(few)}, PGD's "
          f"for {int((~outcome.explained).sum()) - repaired}, PGD's reconstruction around an "
          f"occlusion for {repaired}, the observation itself for "
          f"{int(outcome.passed_through.sum())} (untrusted recoveries)")

    start = time.perf_counter()
    maps = {
        "Saliency, classifier": Saliency(classifier).attribute(
            few.clone().requires_grad_(), target=few_y, abs=False),
        "Saliency, defended": Saliency(defended).attribute(
            few.clone().requires_grad_(), target=few_y, abs=False),
        "InputXGradient, defended": InputXGradient(defended).attribute(
            few.clone().requires_grad_(), target=few_y),
    }
    print(f"Captum attributions of the defended model in {time.perf_counter() - start:.1f} s")

    fig, axes = plt.subplots(len(few), 2 + len(maps), figsize=(1.7 * (2 + len(maps)),
                                                               1.8 * len(few)), squeeze=False)
    for i in range(len(few)):
        axes[i, 0].imshow(few[i, 0].clamp(0, 1), cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(f"observed, label {int(few_y[i])}", fontsize=7)
        axes[i, 1].imshow(cleaned[i, 0], cmap="gray", vmin=0, vmax=1)
        axes[i, 1].set_title(f"cleaned: pred {int(defended_pred[i])}", fontsize=7)
        for j, (title, m) in enumerate(maps.items(), start=2):
            m_i = m[i, 0].detach()
            lim = float(m_i.abs().max()) or 1.0
            axes[i, j].imshow(m_i, cmap="bwr", vmin=-lim, vmax=lim)
            axes[i, j].set_title(title, fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"Captum on MimicGANDefense ('{name}' digits); red raises the label's logit",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "defense_attributions.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"figures written to {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
