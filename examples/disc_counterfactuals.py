"""DISC counterfactuals in an Alibi workflow, and whether another classifier believes them.

What it shows
-------------
An Alibi user asks "what would make this 3 an 8?" with ``alibi_ext.DISC``: the same
``explain`` / ``Explanation`` / ``to_json`` as Alibi's counterfactual explainers, channel-last
numpy batches in, counterfactuals ``cf["X"]``, their classes and probabilities out. Three ways
to get them, side by side:

* **pixel space** (Wachter et al.): Adam on the pixels until the classifier says "8" -- valid
  for the explained model, but a nudge that fools only it;
* **DISC with the classifier alone** (its defaults): a deep image prior optimised per query,
  LSO semantics, the classifier's own DEP term (the zoo's ``dep_digits_classifier``);
* **DISC with a generator** (``prior=GeneratorPrior(gan.generator)``): the counterfactual is
  searched among the zoo GAN's images, started from the query's own reversal.

An independent classifier that none of them saw, the *judge* (``zoo.digits_judge()``, a fully
connected network), says under each image whether it sees the target class
(``captum_latent.metrics.judge_agreement``); the mean absolute change is printed next to it.

Figure (in ``--out``, default ``examples-output/disc_counterfactuals/``):
``side_by_side.png``: per query, the query and the three counterfactuals, each with the
explained model's and the judge's verdict and its mean change.

    python examples/disc_counterfactuals.py --source 3 --target 8
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from alibi_ext import DISC
from captum_latent import zoo
from captum_latent.counterfactual import (
    GeneratorPrior,
    dep_digits_classifier,
    pixel_counterfactuals,
)
from captum_latent.metrics import judge_agreement, judge_verdicts, mean_absolute_change

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
    judge = zoo.digits_judge()  # another architecture, same training split: never explained
    gan = zoo.digits_gan()
    x = data.test.images[data.test.labels == args.source][: args.n]
    X = x.permute(0, 2, 3, 1).numpy()  # Alibi's channel-last layout

    rows = {"pixel space": None, "DISC, classifier only": DISC(model, shape=X.shape[1:]),
            "DISC + GeneratorPrior": DISC(model, shape=X.shape[1:],
                                          prior=GeneratorPrior(gan.generator))}
    images = {}
    for name, explainer in rows.items():
        start = time.perf_counter()
        if explainer is None:
            cf = pixel_counterfactuals(model, x, args.target)
        else:
            explanation = explainer.explain(X, target_class=args.target)
            cf = torch.from_numpy(explanation.cf["X"]).permute(0, 3, 1, 2)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            valid = (model(cf).argmax(1) == args.target).float().mean()
        images[name] = cf
        print(f"{name:24s} valid {valid:.2f}  judge agrees "
              f"{judge_agreement(judge, cf, args.target):.2f}  mean change "
              f"{mean_absolute_change(x, cf).mean():.3f}  ({seconds:.1f} s)")
    print(f"JSON explanation: {len(explanation.to_json())} characters")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["query", *images]
    fig, axes = plt.subplots(len(x), len(columns), figsize=(1.9 * len(columns), 2.2 * len(x)),
                             squeeze=False)
    for j, name in enumerate(columns):
        batch = x if name == "query" else images[name]
        with torch.no_grad():
            model_says = model(batch).argmax(1)
        judge_ok = judge_verdicts(judge, batch, args.target)
        change = mean_absolute_change(x, batch)
        for i in range(len(x)):
            ax = axes[i, j]
            ax.imshow(batch[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if name != "query":
                verdict = "judge: yes" if judge_ok[i] else "judge: no"
                ax.set_xlabel(f"model {int(model_says[i])}, {verdict}\nchange "
                              f"{float(change[i]):.3f}", fontsize=7,
                              color="green" if judge_ok[i] else "red")
            if i == 0:
                ax.set_title(name, fontsize=8)
    fig.suptitle(f"{args.source} -> {args.target}: does an independent classifier see a "
                 f"{args.target}?", fontsize=9)
    fig.savefig(out / "side_by_side.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"figure written to {out / 'side_by_side.png'}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
