"""Generator reversal, the PAG score and learned latent priors with the zoo DCGAN.

What it shows
-------------
1. ``GeneratorReversal`` (flexible-priors paper, Alg. 1) maps images back to latent codes of a
   frozen generator, all images in one batched search on the latent-search core: first images
   the generator made itself (``x = G(z*)``, reachable exactly), then real test digits (only
   approximately in the generator's range).
2. ``pag_score`` (Eq. 2): how far the codes that real data need are from the prior the GAN
   was trained with, ``N(0, I)``; 0 means perfect agreement.
3. Learned priors fitted to reverted codes: ``GaussianPrior`` (full covariance) and
   ``PGANPrior`` (the paper's secondary GAN; trained briefly here). Their samples are scored by
   the digits classifier's confidence on ``G(z)`` and by PAG. (The Gaussian's PAG is near 0
   by construction: it is fitted to the very second moments PAG compares; its samples are no
   more digit-like than ``N(0, I)``'s. The PGAN improves both.)
4. A learned prior is a drop-in ``LatentPrior``: ``LatentSearch(generator, prior=...)`` draws
   its initial codes from it. Here it starts a GANchors-style masked in-painting search and
   the number of gradient steps to the threshold is compared with ``N(0, I)`` starts.

The workloads are kept small so that it finishes in well under two minutes on a CPU; the
full-size numbers are in ``docs/methods/latent_search.md``.

Figures (in ``--out``, default ``examples-output/latent_search_reversal/``):
``reversal.png``, ``prior_samples.png``, ``priors.png``.

    python examples/latent_search_reversal.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from captum_latent import zoo
from captum_latent.core import (
    Adam,
    LatentSearch,
    LossThreshold,
    MaskedReconstruction,
    StandardNormal,
)
from captum_latent.generative import (
    GaussianPrior,
    GeneratorReversal,
    PGANConfig,
    PGANPrior,
    pag_score,
    random_superpixel_masks,
    superpixel_segments,
)

NAME = "latent_search_reversal"


def _second_moment(z: torch.Tensor) -> torch.Tensor:
    z = z.double()
    return z.T @ z / len(z)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=f"examples-output/{NAME}",
                        help="directory for the figures (created if missing)")
    parser.add_argument("--codes", type=int, default=256,
                        help="training digits reverted to fit the learned priors")
    parser.add_argument("--pgan-steps", type=int, default=1000,
                        help="PGAN training steps (the paper-size default is 1500)")
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

    gan = zoo.digits_gan()  # DCGAN, N(0, I) codes of size 32 -> 1x28x28 images in [0, 1]
    generator, d = gan.generator, gan.latent_dim
    classifier = zoo.digits_classifier()
    digits = zoo.digits()

    # -- 1. reversal of generated and of real digits ---------------------------------------
    reversal = GeneratorReversal(generator, optimizer=Adam(lr=0.1), tolerance=5e-4,
                                 max_iterations=300, restart_patience=150)
    z_star = torch.randn(32, d, generator=torch.Generator().manual_seed(args.seed + 1))
    with torch.no_grad():
        generated = generator(z_star)
    real = digits.test.images[:16]
    recon = {}
    for name, images in (("generated G(z*)", generated), ("real test digits", real)):
        start = time.perf_counter()
        r = reversal.reverse(images, seed=args.seed)
        recon[name] = r.reconstructions
        q = torch.quantile(r.mse, torch.tensor([0.1, 0.5, 0.9])).tolist()
        print(f"reversal of {len(images)} {name}: {time.perf_counter() - start:.1f} s, "
              f"MSE < 1e-3 for {float((r.mse < 1e-3).float().mean()):.0%}, "
              f"MSE 10/50/90% {q[0]:.1e}/{q[1]:.1e}/{q[2]:.1e}, "
              f"median {r.iterations.float().median().item():.0f} iterations, "
              f"{int(r.restarts.sum())} restarts")

    fig, axes = plt.subplots(4, 8, figsize=(8, 4.4))
    rows = [(generated, "G(z*)"), (recon["generated G(z*)"], "reverted"),
            (real, "real digit"), (recon["real test digits"], "reverted")]
    for r, (images, label) in enumerate(rows):
        for k in range(8):
            axes[r, k].imshow(images[k, 0], cmap="gray", vmin=0, vmax=1)
            axes[r, k].axis("off")
        axes[r, 0].set_title(label, fontsize=8, loc="left")
    fig.suptitle("Generator reversal: images and G(z) of their reverted codes", fontsize=9)
    fig.savefig(out / "reversal.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    # -- 2. codes of real data and the PAG score -------------------------------------------
    # the paper's initialisation N(0, 1e-4 I) and a loose tolerance: codes, not pixels, matter
    start = time.perf_counter()
    codes = GeneratorReversal(
        generator, prior=StandardNormal(d, scale=1e-4), optimizer=Adam(lr=0.1),
        tolerance=2e-3, max_iterations=150, restart_patience=None,
    ).reverse(digits.train.images[: args.codes], seed=args.seed).codes
    print(f"reverted {len(codes)} training digits in {time.perf_counter() - start:.1f} s; "
          f"PAG against N(0, I) (Eq. 2): {pag_score(codes):.3f}")

    # -- 3. learned priors --------------------------------------------------------------------
    start = time.perf_counter()
    gaussian = GaussianPrior.fit(codes)
    pgan = PGANPrior.fit(codes, config=PGANConfig(steps=args.pgan_steps), seed=args.seed)
    print(f"fitted GaussianPrior and PGANPrior ({args.pgan_steps} steps) in "
          f"{time.perf_counter() - start:.1f} s")
    draws = torch.zeros(1000, dtype=torch.long)  # 1000 draws "for problem 0"
    priors = {"N(0, I)": StandardNormal(d), "Gaussian fit": gaussian, "PGAN": pgan}
    samples, table = {}, []
    for name, prior in priors.items():
        z = prior.sample(draws, torch.Generator().manual_seed(args.seed + 5))
        with torch.no_grad():
            images = generator(z)
            confidence = float(classifier(images).softmax(1).amax(1).mean())
        pag = pag_score(codes, reference_covariance=_second_moment(z))
        samples[name] = images[:10]
        table.append((name, confidence, pag))
        print(f"prior {name:13s} classifier confidence on G(z) {confidence:.3f}   PAG {pag:.3f}")

    fig, axes = plt.subplots(3, 10, figsize=(10, 3.5))
    for r, (name, images) in enumerate(samples.items()):
        for k in range(10):
            axes[r, k].imshow(images[k, 0], cmap="gray", vmin=0, vmax=1)
            axes[r, k].axis("off")
        axes[r, 0].set_title(name, fontsize=8, loc="left")
    fig.suptitle("G(z) for codes drawn from each prior", fontsize=9)
    fig.savefig(out / "prior_samples.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    # -- 4. a learned prior as the search's initialiser -------------------------------------
    x = digits.test.images[16:24]
    masks = random_superpixel_masks(superpixel_segments(x), seed=args.seed)
    iterations = {}
    for name in ("N(0, I)", "PGAN"):
        search = LatentSearch(generator, prior=priors[name], max_iterations=300,
                              restart_patience=100)
        result = search.search(MaskedReconstruction(x, masks), samples_per_problem=8,
                               stop=LossThreshold(0.01), seed=args.seed)
        iterations[name] = result.iterations.float().flatten()
        print(f"in-painting 8 masks x 8 codes from {name:8s}: "
              f"{result.success_rate:.0%} reach masked MSE 0.01, median "
              f"{iterations[name].median().item():.0f} iterations, {result.steps} batched steps")

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(11, 3))
    names = [row[0] for row in table]
    ax1.bar(names, [row[1] for row in table], color="#4a6fa5")
    ax1.set_ylim(0.5, 1.0)
    ax1.set_title("classifier confidence on G(z) (higher: more digit-like)", fontsize=8)
    ax2.bar(names, [row[2] for row in table], color="#a56f4a")
    ax2.set_title("PAG of the reverted codes (lower: prior fits)", fontsize=8)
    ax3.hist([iterations[k].numpy() for k in iterations], bins=15, label=list(iterations))
    ax3.set_xlabel("iterations to masked MSE 0.01")
    ax3.set_title("in-painting search started from each prior", fontsize=8)
    ax3.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "priors.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"figures written to {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
