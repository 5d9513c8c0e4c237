"""DISC counterfactuals in an Alibi workflow.

What it shows
-------------
An Alibi user asks "what would make this 3 an 8?" with ``alibi_ext.DISC``: the same
``explain`` / ``Explanation`` / ``to_json`` as Alibi's counterfactual explainers, channel-last
numpy batches in, counterfactuals ``cf["X"]``, their classes and probabilities out. DISC needs
only the classifier (no generator): an image prior (here an implicit neural representation,
``INRPrior``) is optimised per query until the classifier predicts the target class, with a
manifold-consistency term from a loss predictor trained jointly with the classifier
(``DEPConsistency``, the zoo's ``dep_digits_classifier``) and progressive optimisation. All
queries run together (``captum_latent.counterfactual.DISCGenerator`` underneath).
``captum_latent.metrics`` scores the result (MSE, concentration of the change).

Figure (in ``--out``, default ``examples-output/disc_counterfactuals/``):
``counterfactuals.png``: query, counterfactual, difference map per query.

    python examples/disc_counterfactuals.py --source 3 --target 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from alibi_ext import DISC
from captum_latent import zoo
from captum_latent.counterfactual import (
    DEPConsistency,
    INRPrior,
    ProgressiveSchedule,
    dep_digits_classifier,
)
from captum_latent.metrics import concentration, mse

NAME = "disc_counterfactuals"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=int, default=3)
    parser.add_argument("--target", type=int, default=8)
    parser.add_argument("--n", type=int, default=4, help="queries explained together")
    parser.add_argument("--out", default=f"examples-output/{NAME}",
                        help="directory for the figure (created if missing)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: the zoo models are small, and "
                        "torch's one-thread-per-core default slows down badly on a busy CPU)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = zoo.digits()
    model = dep_digits_classifier()  # zoo digits classifier trained jointly with DEP
    x = data.test.images[data.test.labels == args.source][: args.n]
    X = x.permute(0, 2, 3, 1).numpy()  # Alibi's channel-last layout

    explainer = DISC(
        model, shape=X.shape[1:],
        prior=INRPrior(variance=100.0 * (28 / 96) ** 2),  # paper's frequencies per pixel
        # s* per target class: the median DEP score of real training images of that class
        manifold=DEPConsistency(model.loss_predictor(), model.class_loss_scores),
        schedule=ProgressiveSchedule(steps_per_stage=50, kappa=0.7),
    )
    start = time.perf_counter()
    explanation = explainer.explain(X, target_class=args.target)
    seconds = time.perf_counter() - start
    cf = explanation.cf
    print(f"{len(X)} queries in {seconds:.1f} s: classes {explanation.orig_class.tolist()} -> "
          f"{cf['class'].tolist()} (p = {np.round(cf['proba'][:, args.target], 3).tolist()})")
    x_cf = torch.from_numpy(cf["X"]).permute(0, 3, 1, 2)
    print(f"MSE {mse(x, x_cf).mean():.4f}, concentration {concentration(x, x_cf).mean():.3f}")
    print(f"JSON explanation: {len(explanation.to_json())} characters")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(X), figsize=(1.6 * len(X), 5), squeeze=False)
    for i in range(len(X)):
        axes[0, i].imshow(X[i, ..., 0], cmap="gray", vmin=0, vmax=1)
        axes[1, i].imshow(cf["X"][i, ..., 0], cmap="gray", vmin=0, vmax=1)
        axes[2, i].imshow(cf["diff"][i, ..., 0], cmap="bwr", vmin=-1, vmax=1)
        for ax in axes[:, i]:
            ax.axis("off")
    axes[0, 0].set_title("query", fontsize=8, loc="left")
    axes[1, 0].set_title("counterfactual", fontsize=8, loc="left")
    axes[2, 0].set_title("difference", fontsize=8, loc="left")
    fig.savefig(out / "counterfactuals.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"figure written to {out / 'counterfactuals.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
