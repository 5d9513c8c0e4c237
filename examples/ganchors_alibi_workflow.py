"""GANchors in an existing Alibi workflow.

An Alibi user explains a digit with ``AnchorImage``; swapping in ``GANAnchorImage`` (same
``explain`` call, same ``Explanation``) makes the perturbations realistic GAN in-paintings.
Writes ``ganchors_example.png`` next to the working directory (or ``--out``).

    python examples/ganchors_alibi_workflow.py --digit 7
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from alibi.explainers import AnchorImage

from alibi_ext import GANAnchorImage, QuickshiftSegmentation
from captum_latent import zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--digit", type=int, default=7, help="class of the test digit")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--out", default="ganchors_example.png")
    args = parser.parse_args()

    classifier, gan, data = zoo.digits_classifier(), zoo.digits_gan(), zoo.digits()

    # The usual Alibi set-up: a numpy, channel-last predictor returning probabilities.
    def predictor(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(classifier(torch.as_tensor(x).permute(0, 3, 1, 2)), 1).numpy()

    index = int(torch.nonzero(data.test.labels == args.digit)[0])
    image = data.test.images[index].permute(1, 2, 0).numpy()  # (28, 28, 1)
    segmentation = QuickshiftSegmentation(15)
    background = data.train.images[:100].permute(0, 2, 3, 1).numpy()

    explainers = {
        "Alibi AnchorImage (random stitching)": AnchorImage(
            predictor, image.shape, segmentation_fn=segmentation,
            images_background=background, seed=0),
        "GANAnchorImage": GANAnchorImage(
            predictor, image.shape, gan.generator, segmentation_fn=segmentation, seed=0),
    }
    explanations = {}
    for name, explainer in explainers.items():
        start = time.perf_counter()
        explanation = explainer.explain(image, threshold=args.threshold)  # the same call
        explanations[name] = explanation
        print(f"{name:40s} anchor {explanation.raw['feature']} "
              f"precision {np.mean(explanation.precision):.3f} "
              f"coverage {explanation.coverage:.3f} ({time.perf_counter() - start:.1f} s)")
    json_size = len(explanations["GANAnchorImage"].to_json())
    print(f"GANAnchorImage explanation serialises to JSON ({json_size} characters)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = explanations["GANAnchorImage"].data["gan_samples"]["images"][:5]
    fig, axes = plt.subplots(1, 3 + len(samples), figsize=(2 * (3 + len(samples)), 2.3))
    axes[0].imshow(image[..., 0], cmap="gray")
    axes[0].set_title(f"test digit {args.digit}")
    for ax, (label, e) in zip(axes[1:3], zip(("Alibi", "GANchors"), explanations.values())):
        ax.imshow(e.anchor[..., 0], cmap="gray")
        ax.set_title(f"{label}: {len(e.raw['feature'])} segments", fontsize=9)
    for ax, sample in zip(axes[3:], samples):
        ax.imshow(sample[..., 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title("GAN sample", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.savefig(args.out, dpi=100, bbox_inches="tight")
    print(f"figure written to {args.out}")


if __name__ == "__main__":
    main()
