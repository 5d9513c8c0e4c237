"""LEG-TV in an existing Captum workflow.

What it shows
-------------
A Captum user already explains a classifier with ``captum.attr.Saliency``,
``IntegratedGradients`` and ``Lime``, scores the attributions with ``captum.metrics``
(``infidelity``, ``sensitivity_max``) and draws them with
``captum.attr.visualization.visualize_image_attr``. ``captum_latent.LEGTV`` is one more entry in
that dictionary: same constructor (the forward function), same ``attribute(inputs, target=...,
n_samples=..., perturbations_per_eval=...)`` call, a tensor of the input's shape back, so the
metrics and the visualisation run on it unchanged. Nothing else in the workflow changes.

Every method explains the probability the zoo digits classifier gives to its predicted class.
Infidelity uses the perturbations LEG is defined with (the paper's TV-adapted Gaussian), so it
measures how well each map predicts the model's response to them; lower is better for both
metrics.

Figures (in ``--out``, default ``examples-output/leg_tv_captum_workflow/``):
``attributions.png`` (``visualize_image_attr`` blended heat maps, one row per method) and
``metrics.png`` (infidelity and max-sensitivity per method).

    python examples/leg_tv_captum_workflow.py
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from captum.attr import IntegratedGradients, Lime, Saliency, visualization
from captum.metrics import infidelity, sensitivity_max
from torch import nn

from captum_latent import LEGTV, zoo
from captum_latent.attr import TVGaussian

NAME = "leg_tv_captum_workflow"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=f"examples-output/{NAME}",
                        help="directory for the figures (created if missing)")
    parser.add_argument("--images", type=int, default=4, help="test digits to explain")
    parser.add_argument("--n-samples", type=int, default=500,
                        help="model evaluations per image for Lime and LEG-TV")
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

    # -- the user's existing set-up: a model, some inputs, Captum explainers --------------------
    model = nn.Sequential(zoo.digits_classifier(), nn.Softmax(dim=1)).eval()  # probabilities
    digits = zoo.digits()
    x = digits.test.images[: args.images]  # (B, 1, 28, 28) in [0, 1]
    with torch.no_grad():
        target = model(x).argmax(dim=1)
    blocks = (torch.arange(28)[:, None] // 2 * 14 + torch.arange(28)[None, :] // 2)
    feature_mask = blocks.reshape(1, 1, 28, 28)  # Lime on 2x2 pixel blocks (196 features)
    n = args.n_samples

    explainers = {
        "Saliency": (Saliency(model), dict(abs=False)),
        "IntegratedGradients": (IntegratedGradients(model), dict(baselines=0.0, n_steps=50)),
        "Lime": (Lime(model), dict(n_samples=n, perturbations_per_eval=100,
                                   feature_mask=feature_mask)),
        # the swap: one more entry, same call. grid_size / sigma2 are LEG-TV's own knobs
        # (14x14 saliency grid, small perturbations: the most faithful setting on these digits)
        "LEGTV": (LEGTV(model), dict(n_samples=n, perturbations_per_eval=100, seed=args.seed,
                                     grid_size=(14, 14), sigma2=0.01)),
    }

    # infidelity's perturbations: the TV-adapted Gaussian on the 14x14 grid, upsampled
    scheme = TVGaussian()
    noise_gen = torch.Generator().manual_seed(args.seed)

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = scheme.sample(inputs.shape[0], (14, 14), 0.01, noise_gen)  # (N, 14, 14)
        z = z.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2).unsqueeze(1).float()
        return z, inputs - z  # captum's convention: (perturbation, inputs - perturbation)

    # Captum recommends one example per Lime call; batches work and are what we want here
    warnings.filterwarnings("ignore", message="You are providing multiple inputs for Lime")
    results = {}
    with torch.random.fork_rng():  # Lime draws from torch's global generator
        torch.manual_seed(args.seed)
        for name, (explainer, kwargs) in explainers.items():
            start = time.perf_counter()
            attr = explainer.attribute(x, target=target, **kwargs)
            seconds = time.perf_counter() - start
            infid = infidelity(model, perturb, x, attr, target=target, n_perturb_samples=50,
                               normalize=True)
            sens = sensitivity_max(explainer.attribute, x, target=target, n_perturb_samples=4,
                                   perturb_radius=0.02, **kwargs)
            # compare sensitivity across methods relative to each map's own size
            rel_sens = sens / attr.flatten(1).norm(dim=1).clamp_min(1e-12)
            results[name] = (attr.detach(), float(infid.mean()), float(rel_sens.mean()),
                             seconds)
            print(f"{name:20s} {seconds:6.2f} s   infidelity {float(infid.mean()):.3e}   "
                  f"max-sensitivity / ||attr|| {float(rel_sens.mean()):.3f}")

    # -- visualisation with Captum's own helper, unchanged --------------------------------------
    fig, axes = plt.subplots(len(results), len(x),
                             figsize=(1.9 * len(x), 2.0 * len(results)), squeeze=False)
    for row, (name, (attr, *_)) in enumerate(results.items()):
        for col in range(len(x)):
            visualization.visualize_image_attr(
                attr[col].permute(1, 2, 0).numpy(), x[col].permute(1, 2, 0).numpy(),
                method="blended_heat_map", sign="all", plt_fig_axis=(fig, axes[row, col]),
                use_pyplot=False,
                title=(f"{name}: " if col == 0 else "") + f"pred {int(target[col])}")
            axes[row, col].title.set_fontsize(8)
    fig.suptitle("visualize_image_attr(blended_heat_map, sign='all') on each method's map",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "attributions.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    names = list(results)
    ax1.bar(names, [results[k][1] for k in names], color="#4a6fa5")
    ax1.set_title("infidelity (normalised; lower is better)", fontsize=9)
    ax2.bar(names, [results[k][2] for k in names], color="#a56f4a")
    ax2.set_title("max-sensitivity / ||attribution|| (lower is better)", fontsize=9)
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelsize=8, rotation=15)
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"figures written to {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
