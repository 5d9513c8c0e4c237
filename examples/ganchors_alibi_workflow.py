"""GANchors in an existing Alibi workflow.

What it shows
-------------
An Alibi user explains a digit with ``alibi.explainers.AnchorImage``: a numpy, channel-last
predictor returning probabilities, a segmentation function, ``explain(image, threshold=...)``
and an ``Explanation`` with ``anchor``, ``precision``, ``coverage`` and ``to_json()``.
Swapping in ``alibi_ext.GANAnchorImage`` (same constructor arguments plus the generator, same
``explain`` call, same ``Explanation``) replaces Alibi's perturbations (superpixels pasted from
background images) by realistic in-paintings from the zoo DCGAN: the kept superpixels come
from the image, the rest from ``G(z)`` with ``||A x - A G(z)||`` below a threshold. The
explanation adds the in-paintings the bandit evaluated (``data["gan_samples"]``).

Figure (in ``--out``, default ``examples-output/ganchors_alibi_workflow/``):
``anchors.png``: the digit, both anchors (kept superpixels shown, the rest black) and GAN
in-paintings used for the final anchor.

    python examples/ganchors_alibi_workflow.py --digit 7
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from alibi.explainers import AnchorImage

from alibi_ext import GANAnchorImage, QuickshiftSegmentation
from captum_latent import zoo

NAME = "ganchors_alibi_workflow"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digit", type=int, default=7, help="class of the test digit")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--out", default=f"examples-output/{NAME}",
                        help="directory for the figure (created if missing)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: the zoo models are small, and "
                        "torch's one-thread-per-core default slows down badly on a busy CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

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
    fig.savefig(out / "anchors.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"figure written to {out / 'anchors.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
