"""Demo-report section: the embedded data sets and the zoo's reference models."""

from __future__ import annotations

import torch

from captum_latent.report._registry import register_section
from captum_latent.report._writer import SectionWriter


@register_section(
    "zoo", "Model zoo: data and reference models", order=10,
    description="embedded data sets, classifier accuracies, DCGAN samples",
)
def zoo_section(writer: SectionWriter) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from captum_latent import zoo

    digits, faces = zoo.digits(), zoo.faces()
    writer.text(
        "Everything below is computed from data that ships inside scikit-learn and "
        "scikit-image; the models are trained in-process on first use and cached under "
        f"{zoo.cache_dir()}."
    )

    # data samples
    fig, axes = plt.subplots(3, 10, figsize=(10, 3.3))
    for k in range(10):
        img = digits.test.images[digits.test.labels == k][0, 0]
        axes[0, k].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[0, k].set_title(str(k), fontsize=9)
    for k in range(10):
        label = k % 2
        img = faces.test.images[faces.test.labels == label][k // 2, 0]
        axes[1, k].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[1, k].set_title(faces.classes[label], fontsize=8)
    for k, name in enumerate(zoo.PHOTOGRAPHS[:10]):
        axes[2, k].imshow(zoo.photograph(name, size=64).permute(1, 2, 0))
        axes[2, k].set_title(name[:12], fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    writer.figure(fig, "data", "Top: one test digit per class (8x8 sklearn digits upsampled to "
                  "28x28). Middle: lfw_subset faces and non-faces (25x25). Bottom: "
                  "scikit-image colour photographs (resized to 64x64).")

    # classifiers
    rows = []
    for name, loader, ds in (("digits", zoo.digits_classifier, digits),
                             ("faces", zoo.faces_classifier, faces)):
        model = loader()
        test_acc = zoo.accuracy(model, ds.test.images, ds.test.labels)
        train_acc = zoo.accuracy(model, ds.train.images, ds.train.labels)
        rows.append([name, len(ds.train), len(ds.test), train_acc, test_acc,
                     model.zoo_metrics.get("train_seconds", float("nan"))])
        writer.metric(f"{name}_test_accuracy", test_acc)
    writer.table(rows, ["classifier", "train images", "test images", "train accuracy",
                        "test accuracy", "training seconds (first use)"],
                 caption="Reference classifiers (SmallCNN). Quality gates: digits >= 0.97, "
                 "faces >= 0.90 test accuracy.")

    # generator
    gan = zoo.digits_gan()
    classifier = zoo.digits_classifier()
    n = 500 if writer.quick else 2000
    quality = zoo.generator_quality(gan.generator, classifier, n_samples=n, seed=writer.seed)
    writer.metric("gan_mean_max_probability", quality["mean_max_probability"])
    writer.metric("gan_class_histogram", quality["class_histogram"])
    gen = torch.Generator().manual_seed(writer.seed)
    with torch.no_grad():
        samples = gan.generator(torch.randn(40, gan.latent_dim, generator=gen))
        probs = torch.softmax(classifier(samples), 1)
    fig, axes = plt.subplots(4, 10, figsize=(10, 4.6))
    for ax, img, p in zip(axes.ravel(), samples, probs):
        ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{int(p.argmax())} ({float(p.max()):.2f})", fontsize=8)
        ax.axis("off")
    writer.figure(fig, "gan_samples", "DCGAN samples from N(0, I) codes (latent size "
                  f"{gan.latent_dim}); titles: digits-classifier label and its probability.")
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(range(10), quality["class_histogram"], color="#4a6fa5")
    ax.set_xticks(range(10))
    ax.set_xlabel("label given by the digits classifier")
    ax.set_ylabel("samples")
    writer.figure(fig, "gan_histogram", f"Class histogram of {n} generator samples; mean "
                  f"max-probability {quality['mean_max_probability']:.3f} (gate: >= 0.8, all "
                  "10 classes present).")
    writer.table([[n, quality["mean_max_probability"], min(quality["class_histogram"]),
                   max(quality["class_histogram"])]],
                 ["samples", "mean max-probability", "rarest class count",
                  "commonest class count"], caption="Generator sample quality.")
