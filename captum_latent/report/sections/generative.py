"""Demo-report section: the latent-search core, generator reversal and learned priors."""

from __future__ import annotations

import time

import torch

from captum_latent.report._registry import register_section
from captum_latent.report._writer import SectionWriter


@register_section(
    "generative", "Latent search, generator reversal and learned priors", order=30,
    description="batched in-painting and reversal through the zoo DCGAN; PAG; PGAN prior",
    see_also=("zoo",),
)
def generative_section(writer: SectionWriter) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from captum_latent import zoo
    from captum_latent.core import Adam, LatentSearch, LossThreshold, MaskedReconstruction
    from captum_latent.generative import (
        GaussianPrior,
        GeneratorReversal,
        PGANConfig,
        PGANPrior,
        pag_score,
        random_superpixel_masks,
        superpixel_segments,
    )

    quick, seed = writer.quick, writer.seed
    generator = zoo.digits_gan(progress=False).generator
    classifier = zoo.digits_classifier(progress=False)
    digits = zoo.digits()
    d = generator.latent_dim

    writer.html(
        "<p>The " + writer.link("zoo", "zoo's DCGAN") + " maps a code <code>z ~ N(0, I)</code> "
        f"of size {d} to a 28x28 digit. GANchors, MimicGAN and generator reversal all search "
        "its latent space for codes whose images satisfy a loss: one batched engine "
        "(<code>captum_latent.core.LatentSearch</code>) runs many such searches at once, "
        "stops each code when it meets its threshold and refills its slot.</p>")

    # -- in-painting: many samples of several masks, one batched search --------------------
    x = digits.test.images[:3]
    masks = random_superpixel_masks(superpixel_segments(x), seed=seed)
    n = 6
    search = LatentSearch(generator, max_iterations=60 if quick else 400, restart_patience=80)
    start = time.perf_counter()
    result = search.search(MaskedReconstruction(x, masks), samples_per_problem=n,
                           stop=LossThreshold(0.01), seed=seed)
    seconds = time.perf_counter() - start
    fig, axes = plt.subplots(3, n + 2, figsize=(1.2 * (n + 2), 3.8))
    for p in range(3):
        axes[p, 0].imshow(x[p, 0], cmap="gray", vmin=0, vmax=1)
        axes[p, 1].imshow((x[p, 0] * masks[p, 0]), cmap="gray", vmin=0, vmax=1)
        for k in range(n):
            filled = (1 - masks[p]) * result.images[p, k] + masks[p] * x[p]
            axes[p, k + 2].imshow(filled[0], cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("image", fontsize=8)
    axes[0, 1].set_title("anchor A x", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    writer.figure(fig, "inpainting", f"GANchors-style in-painting (Eq. 8) through the core: "
                  f"{n} codes per mask for 3 masks in one batch of {3 * n}, masked MSE <= 0.01; "
                  f"{result.success_rate:.0%} converged, median "
                  f"{result.iterations.float().median().item():.0f} iterations, "
                  f"{seconds:.1f} s on CPU.")
    writer.metric("inpainting_success_rate", result.success_rate)

    # -- generator reversal -----------------------------------------------------------------
    n_rev = 16 if quick else 256
    z_star = torch.randn(n_rev, d, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        generated = generator(z_star)
    real = digits.test.images[: 8 if quick else 128]
    reversal = GeneratorReversal(generator, optimizer=Adam(lr=0.1), tolerance=5e-4,
                                 max_iterations=40 if quick else 400, restart_patience=150)
    rows = []
    recon = {}
    for name, images in (("generated G(z*)", generated), ("real test digits", real)):
        r = reversal.reverse(images, seed=seed)
        recon[name] = r.reconstructions
        q = torch.quantile(r.mse, torch.tensor([0.1, 0.5, 0.9])).tolist()
        rows.append([name, len(images), float((r.mse < 1e-3).float().mean()), *q,
                     r.iterations.float().median().item()])
        writer.metric(f"reversal_{name.split()[0]}_fraction_below_1e-3",
                      float((r.mse < 1e-3).float().mean()))
    writer.table(rows, ["images", "n", "MSE < 1e-3", "MSE 10%", "MSE 50%", "MSE 90%",
                        "median iterations"],
                 caption="Generator reversal (flexible-priors paper, Alg. 1) on the zoo DCGAN.")
    fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
    for k in range(8):
        axes[0, k].imshow(real[k, 0], cmap="gray", vmin=0, vmax=1)
        axes[1, k].imshow(recon["real test digits"][k, 0], cmap="gray", vmin=0, vmax=1)
    for ax in axes.ravel():
        ax.axis("off")
    writer.figure(fig, "reversal", "Real test digits (top) and G(z) for their reverted codes "
                  "(bottom).")

    # -- learned priors -----------------------------------------------------------------------
    if quick:
        writer.text("Learned priors (PGAN, Gaussian) are skipped in quick mode: fitting them "
                    "needs several hundred reverted codes.")
        return
    from captum_latent.core import StandardNormal

    n_codes = 600
    codes = GeneratorReversal(
        generator, prior=StandardNormal(d, scale=1e-4), tolerance=2e-3, max_iterations=300,
        restart_patience=None,
    ).reverse(digits.train.images[:n_codes], seed=seed).codes
    pgan = PGANPrior.fit(codes, config=PGANConfig(), seed=seed)
    draws = torch.zeros(3000, dtype=torch.long)

    def confidence(z: torch.Tensor) -> float:
        with torch.no_grad():
            return float(classifier(generator(z)).softmax(1).amax(1).mean())

    rows = []
    for name, z in (
        ("N(0, I)", torch.randn(3000, d, generator=torch.Generator().manual_seed(seed + 5))),
        ("Gaussian, full covariance",
         GaussianPrior.fit(codes).sample(draws, torch.Generator().manual_seed(seed + 5))),
        ("PGAN", pgan.sample(draws, torch.Generator().manual_seed(seed + 5))),
    ):
        second = z.T.double() @ z.double() / len(z)
        rows.append([name, confidence(z), pag_score(codes, reference_covariance=second)])
    writer.table(rows, ["prior", "classifier confidence", "PAG"],
                 caption=f"Priors fitted to {n_codes} reverted training digits. PAG (Eq. 2) is "
                 "the KL from the reverted codes' Gaussian to the prior's second moments; "
                 "lower is better.")
    writer.metric("pag_standard_normal", rows[0][2])
    writer.metric("pag_pgan", rows[2][2])
