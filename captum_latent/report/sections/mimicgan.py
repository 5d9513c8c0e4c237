"""Demo-report section: MimicGAN blind recovery vs PGD (Defense-GAN) on corrupted zoo digits."""

from __future__ import annotations

from typing import Any, Callable

import torch

from captum_latent.report._registry import register_section
from captum_latent.report._writer import SectionWriter


@register_section(
    "mimicgan", "MimicGAN: blind recovery and clean-then-classify", order=50,
    description="corrupted digits, PGD and MimicGAN recoveries, accuracy and PSNR, and "
    "accuracy under FGSM / PGD attacks with Defense-GAN and MimicGAN cleaning",
    see_also=("zoo", "generative"),
)
def mimicgan_section(writer: SectionWriter) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from captum_latent import zoo
    from captum_latent.inverse import MimicGAN, corruptions

    gan, clf = zoo.digits_gan(), zoo.digits_classifier()
    ds = zoo.digits()
    n = 32 if writer.quick else 200
    x, y = ds.test.images[:n], ds.test.labels[:n]
    names = ["binary", "dropped_pixels", "blur_negative"]
    if writer.quick:
        names = names[2:]

    def accuracy(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((clf(images).argmax(1) == y).float().mean())

    def psnr(images: torch.Tensor) -> float:
        mse = ((images.clamp(0, 1) - x) ** 2).flatten(1).mean(1)
        return float((10 * torch.log10(1 / mse)).mean())

    writer.html(
        "<p>MimicGAN recovers images from an <em>unknown</em> corruption by fitting a shallow "
        "surrogate network that mimics the corruption while searching the "
        + writer.link("zoo", "zoo DCGAN") + "'s latent space for the clean images (alternating "
        "RMSprop steps). PGD / Defense-GAN is the special case with an identity surrogate. "
        f"Below: {n} zoo test digits per corruption, presets "
        "<code>digits_&lt;corruption&gt;</code>."
        "</p>")
    rows, shown = [], []
    for name in writer.progress(names, "corruptions"):
        observed = corruptions.CORRUPTIONS[name](x, seed=writer.seed)
        config = f"digits_{name}"
        pgd = MimicGAN.pgd(gan.generator, config=config).recover(observed, seed=writer.seed)
        mimic = MimicGAN(gan.generator, config=config).recover(observed, seed=writer.seed)
        rows.append([name, accuracy(observed.clamp(0, 1)), accuracy(pgd.images),
                     accuracy(mimic.images), psnr(pgd.images), psnr(mimic.images)])
        shown.append((name, observed, pgd.images, mimic.images, mimic.mimicked))
        writer.metric(f"{name}_accuracy", {"raw": rows[-1][1], "pgd": rows[-1][2],
                                           "mimicgan": rows[-1][3]})
    writer.table(rows, ["corruption", "raw accuracy", "PGD accuracy", "MimicGAN accuracy",
                        "PGD PSNR (dB)", "MimicGAN PSNR (dB)"],
                 caption=f"Digits-classifier accuracy (clean: {accuracy(x):.3f}) and recovery "
                 "PSNR against the clean digits.")
    k = 6
    fig, axes = plt.subplots(5 * len(shown), k, figsize=(1.2 * k, 6.2 * len(shown)))
    labels = ["clean", "observed", "PGD", "MimicGAN", "surrogate(G(z))"]
    for block, (name, observed, pgd_images, mimic_images, mimicked) in enumerate(shown):
        for r, images in enumerate((x, observed, pgd_images, mimic_images, mimicked)):
            for c in range(k):
                ax = axes[5 * block + r, c]
                ax.imshow(images[c, 0], cmap="gray")
                ax.axis("off")
            axes[5 * block + r, 0].set_title(f"{name}: {labels[r]}", fontsize=8, loc="left")
    writer.figure(fig, "recoveries", "Per corruption, rows: clean digits, the corrupted "
                  "observations, PGD (Defense-GAN) recoveries, MimicGAN recoveries, and the "
                  "fitted surrogate applied to the MimicGAN recoveries (its imitation of the "
                  "corruption).")
    _defence(writer, gan, clf, x, y, accuracy)


def _defence(writer: SectionWriter, gan: Any, clf: torch.nn.Module, x: torch.Tensor,
             y: torch.Tensor, accuracy: Callable[[torch.Tensor], float]) -> None:
    """Compact paper Fig. 4b analog: accuracy under attacks (``captum.robust``) on the
    classifier alone, with no defence, Defense-GAN (PGD cleaning) and MimicGAN cleaning."""
    from captum_latent.inverse import MimicGAN, corruptions

    attacks = ["fgsm"] if writer.quick else ["fgsm", "pgd"]
    eps, config = 0.1, "digits_adversarial"
    rows = []
    for attack in attacks:
        adv = corruptions.adversarial(clf, x, y, attack, eps)
        pgd = MimicGAN.pgd(gan.generator, config=config).recover(adv, seed=writer.seed)
        mimic = MimicGAN(gan.generator, config=config).recover(adv, seed=writer.seed)
        rows.append([attack.upper(), eps, accuracy(adv), accuracy(pgd.images),
                     accuracy(mimic.images)])
        writer.metric(f"{attack}_defence_accuracy", {"none": rows[-1][2],
                                                     "defense_gan": rows[-1][3],
                                                     "mimicgan": rows[-1][4]})
    writer.table(rows, ["attack", "epsilon (L-inf)", "no defence", "Defense-GAN",
                        "MimicGAN"],
                 caption=f"Adversarial defence on {len(y)} zoo test digits: untargeted attacks "
                 "from captum.robust on the classifier alone (PGD: 10 steps), then the "
                 "classifier's accuracy on the attacked images, on their Defense-GAN (PGD) "
                 "cleaning and on their MimicGAN cleaning (preset digits_adversarial). The "
                 "full study (more epsilons, Cowboy, all 450 digits): "
                 "python benchmarks/mimicgan.py --defence.")
