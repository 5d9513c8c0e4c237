"""Demo-report section: GANchors (Alibi anchors with GAN in-painting perturbations)."""

from __future__ import annotations

import time

import numpy as np
import torch

from captum_latent.report._registry import register_section
from captum_latent.report._writer import SectionWriter


def _overlay(image: np.ndarray, segments: np.ndarray, features: list[int]) -> np.ndarray:
    """Grey image with the anchor's superpixels in colour and the rest dimmed."""
    grey = np.repeat(image, 3, axis=2) if image.shape[-1] == 1 else image
    keep = np.isin(segments, features)[..., None]
    tint = np.array([1.0, 0.55, 0.1])
    return np.clip(np.where(keep, 0.35 * grey + 0.65 * tint * (0.3 + grey), 0.3 * grey), 0, 1)


@register_section(
    "anchors", "GANchors: anchors with realistic GAN perturbations", order=40,
    description="Alibi AnchorImage vs GAN in-painting samplers on zoo digits",
    see_also=("zoo", "generative"),
)
def anchors_section(writer: SectionWriter) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alibi_ext import GANAnchorImage
    from captum_latent import zoo

    gan, clf = zoo.digits_gan(), zoo.digits_classifier()
    ds = zoo.digits()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(clf(torch.as_tensor(x).permute(0, 3, 1, 2)), 1).numpy()

    classes = [0, 4] if writer.quick else list(range(10))
    threshold = 0.9 if writer.quick else 0.95
    max_size = 2 if writer.quick else None
    background = ds.train.images[:100].permute(0, 2, 3, 1).numpy()
    explainers = {
        "Alibi (background images)": GANAnchorImage(
            predict, (28, 28, 1), sampler="alibi", images_background=background,
            seed=writer.seed),
        "GAN in-painting": GANAnchorImage(predict, (28, 28, 1), gan.generator, seed=writer.seed),
    }
    writer.html(
        "<p>Anchors (Ribeiro et al.) find superpixels that, kept fixed, make the classifier's "
        "prediction hold with high precision when the rest of the image is perturbed. "
        "Alibi perturbs by pasting superpixels of other images (random stitching); "
        "<code>alibi_ext.GANAnchorImage</code> keeps Alibi's KL-LUCB beam search and in-paints "
        "the perturbed superpixels with the zoo's DCGAN instead, so the classifier is queried on "
        "realistic digits (<code>(1 - A) G(z) + A x</code> with masked MSE below "
        "<code>xi</code>). Images come from the " + writer.link("zoo", "model zoo") + ".</p>"
    )
    rows, panels = [], []
    for k in writer.progress(classes, "anchors per digit"):
        index = int(torch.nonzero(ds.test.labels == k)[0])
        image = ds.test.images[index].permute(1, 2, 0).numpy()
        results = {}
        for name, explainer in explainers.items():
            start = time.perf_counter()
            e = explainer.explain(image, threshold=threshold, max_anchor_size=max_size)
            seconds = time.perf_counter() - start
            results[name] = e
            rows.append([k, name, len(e.raw["feature"]), float(np.mean(e.precision)),
                         float(e.coverage), seconds,
                         e.data["sampler_stats"]["predictor_images"]])
        panels.append((k, image, results))
    writer.table(rows, ["digit", "sampler", "anchor size", "precision", "coverage", "seconds",
                        "predictor images"],
                 caption=f"One test digit per class; threshold {threshold}, 15 quickshift "
                 "superpixels.")
    for name in explainers:
        mine = [r for r in rows if r[1] == name]
        writer.metric(f"{name} mean anchor size", float(np.mean([r[2] for r in mine])))
        writer.metric(f"{name} mean precision", float(np.mean([r[3] for r in mine])))

    n_show = 6
    fig, axes = plt.subplots(len(panels), 3 + n_show, figsize=(1.25 * (3 + n_show),
                                                               1.35 * len(panels)))
    axes = np.atleast_2d(axes)
    for row_axes, (k, image, results) in zip(axes, panels):
        alibi_e, gan_e = results.values()
        row_axes[0].imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        row_axes[0].set_title(f"digit {k}", fontsize=8)
        row_axes[1].imshow(_overlay(image, alibi_e.segments, alibi_e.raw["feature"]))
        row_axes[1].set_title(f"Alibi: {len(alibi_e.raw['feature'])} seg", fontsize=8)
        row_axes[2].imshow(_overlay(image, gan_e.segments, gan_e.raw["feature"]))
        row_axes[2].set_title(f"GAN: {len(gan_e.raw['feature'])} seg", fontsize=8)
        samples = gan_e.data["gan_samples"]["images"]
        for j in range(n_show):
            ax = row_axes[3 + j]
            if j < len(samples):
                ax.imshow(samples[j][..., 0], cmap="gray", vmin=0, vmax=1)
                if j == 0:
                    ax.set_title("GAN samples used", fontsize=8, loc="left")
        for ax in row_axes:
            ax.axis("off")
    writer.figure(fig, "anchors", "Each row: a test digit; its anchor with Alibi's random "
                  "stitching and with GAN in-painting (anchor superpixels in orange); then GAN "
                  "in-paintings the bandit evaluated for the final anchor (the anchor's pixels "
                  "are the image's, everything else comes from the generator).")
