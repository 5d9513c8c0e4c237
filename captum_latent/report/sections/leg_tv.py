"""Demo-report section: LEG-TV and LEG next to Captum's Lime, KernelShap, Occlusion, Saliency."""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch

from captum_latent.report._registry import register_section
from captum_latent.report._writer import SectionWriter


def _methods(logprob: Callable[[torch.Tensor], torch.Tensor], n: int, seed: int) -> dict[str, Any]:
    from captum.attr import KernelShap, Lime, Occlusion, Saliency

    from captum_latent import LEG, LEGTV

    blocks = torch.arange(28)[:, None] // 2 * 14 + torch.arange(28)[None, :] // 2
    mask = blocks.reshape(1, 1, 28, 28)
    legtv = LEGTV(logprob)
    return {
        "LEG-TV": (legtv, lambda x, t: legtv.attribute(
            x, target=t, n_samples=n, seed=seed, return_certificate=True), n),
        "LEG-TV K_L=0.2": (None, lambda x, t: LEGTV(logprob).attribute(
            x, target=t, n_samples=n, seed=seed, k_l=0.2), n),
        "LEG": (None, lambda x, t: LEG(logprob).attribute(x, target=t, n_samples=n, seed=seed), n),
        "Lime": (None, lambda x, t: Lime(logprob).attribute(
            x, target=t, n_samples=n, perturbations_per_eval=100, feature_mask=mask), n),
        "Lime (pixels)": (None, lambda x, t: Lime(logprob).attribute(
            x, target=t, n_samples=n, perturbations_per_eval=100), n),
        "KernelShap": (None, lambda x, t: KernelShap(logprob).attribute(
            x, target=t, n_samples=n, perturbations_per_eval=100, feature_mask=mask), n),
        "Occlusion": (None, lambda x, t: Occlusion(logprob).attribute(
            x, target=t, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2)), 13 * 13 + 1),
        "Saliency": (None, lambda x, t: Saliency(logprob).attribute(
            x.clone().requires_grad_(), target=t, abs=False), 1),
    }


def _map_shape(attr: torch.Tensor) -> tuple[float, float]:
    """How regional a ``(H, W)`` map reads: ``(concentration, roughness)``.

    ``concentration``: the share of the map's total ``|mass|`` in its top 10% pixels (0.1 for a
    flat map, 1 when everything sits in a tenth of the image). ``roughness``: total variation
    per unit of mass, ``sum |neighbour differences| / sum |m|`` (about 4 for pixel noise, small
    for a few constant regions)."""
    m = attr.double().abs()
    total = float(m.sum())
    if total == 0.0:
        return 0.0, 0.0
    top = m.reshape(-1).sort(descending=True).values[: max(1, round(0.1 * m.numel()))]
    a = attr.double()
    tv = float((a[:, 1:] - a[:, :-1]).abs().sum() + (a[1:, :] - a[:-1, :]).abs().sum())
    return float(top.sum()) / total, tv / total


def _masked_logprob(
    logprob: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, attr: torch.Tensor,
    target: int, fraction: float, times_input: bool = False,
) -> float:
    """Target log-probability after setting the top ``fraction`` of pixels to 0, ranked by the
    attribution or (``times_input``) by attribution x input, the first-order effect of
    setting a pixel to 0."""
    score = attr * x if times_input else attr
    order = torch.argsort(score.reshape(-1), descending=True)
    masked = x.clone().reshape(-1)
    masked[order[: int(round(fraction * order.numel()))]] = 0.0
    with torch.no_grad():
        return float(logprob(masked.reshape(x.shape))[0, target])


@register_section(
    "leg_tv", "LEG and LEG-TV saliency", order=20,
    description="statistically consistent saliency vs Lime, KernelShap, Occlusion, Saliency",
    see_also=("zoo",),
)
def leg_tv_section(writer: SectionWriter) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from captum_latent import LEGTV, zoo
    from captum_latent.attr.grid import default_grid

    clf = zoo.digits_classifier(progress=False)
    digits = zoo.digits()
    n_images = 2 if writer.quick else 8
    n = 200 if writer.quick else 500
    x_all = digits.test.images[:n_images]
    pred = clf(x_all).argmax(dim=1)

    def logprob(inp: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(clf(inp), dim=1)

    grid = default_grid(tuple(x_all.shape[-2:]), n)
    writer.text(
        "Every method explains the same quantity, the log-probability of the predicted class "
        f"of the zoo digits classifier, on {n_images} test digits. LEG-TV (paper Eq. 4, "
        "K_L = 0.1, the default, and 0.2) and LEG (Eq. 3) use "
        f"{n} model evaluations, the paper's TV-adapted Gaussian perturbation and their "
        "defaults: sigma2 calibrated to the image (each pixel's perturbation has a standard "
        "deviation of 5% of the image's range) and a grid with 4 evaluations per cell "
        f"({grid[0]}x{grid[1]} here); Lime and KernelShap use the same "
        "number of evaluations on 2x2 pixel blocks (Lime also on single pixels); Occlusion "
        "slides a 4x4 window with stride 2. Masking columns: mean target log-probability "
        "after setting the top 10% of pixels to black, ranked by the attribution or by "
        "attribution x input - lower means the method found pixels the model relies on "
        "(paper §5.2). On these digits Lime on 2x2 blocks beats LEG-TV at equal model "
        "evaluations (see docs/benchmarks.md, LEG-TV)."
    )
    methods = _methods(logprob, n, writer.seed)
    maps: dict[str, list[torch.Tensor]] = {name: [] for name in methods}
    map_shapes: dict[str, list[tuple[float, float]]] = {}
    rows = []
    with torch.random.fork_rng():  # Lime and KernelShap draw from torch's global generator
        torch.manual_seed(writer.seed)
        for name, (_, fn, evals) in writer.progress(methods.items(), "explainers",
                                                    total=len(methods)):
            start = time.perf_counter()
            drops, drops_x, gaps, iters, shapes = [], [], [], [], []
            for i in range(n_images):
                xi, t = x_all[i : i + 1], int(pred[i])
                attr = fn(xi, t)
                if isinstance(attr, tuple):  # LEG-TV with its certificate
                    attr, cert = attr
                    gaps.append(float(cert.relative_gap.max()))
                    iters.append(cert.iterations)
                attr = attr.detach()
                maps[name].append(attr[0, 0])
                shapes.append(_map_shape(attr[0, 0]))
                drops.append(_masked_logprob(logprob, xi, attr, t, 0.10))
                drops_x.append(_masked_logprob(logprob, xi, attr, t, 0.10, times_input=True))
            secs = (time.perf_counter() - start) / n_images
            mean_drop = sum(drops) / len(drops)
            mean_drop_x = sum(drops_x) / len(drops_x)
            map_shapes[name] = shapes
            concentration = sum(c for c, _ in shapes) / len(shapes)
            roughness = sum(r for _, r in shapes) / len(shapes)
            rows.append([name, evals, secs, mean_drop, mean_drop_x, concentration, roughness])
            key = name.lower()
            for old, new in (("-", "_"), (" ", "_"), ("=", ""), (".", ""), ("(", ""), (")", "")):
                key = key.replace(old, new)
            writer.metric(f"{key}_masked10_logprob", mean_drop)
            writer.metric(f"{key}_masked10_logprob_x_input", mean_drop_x)
            writer.metric(f"{key}_concentration_top10", concentration)
            writer.metric(f"{key}_roughness", roughness)
            if gaps:
                writer.metric("legtv_max_relative_gap", max(gaps))
                writer.metric("legtv_max_iterations", max(iters))
    with torch.no_grad():
        base = float(logprob(x_all).gather(1, pred[:, None]).mean())
    writer.table(
        rows, ["method", "model evaluations / image", "seconds / image",
               "mean log-prob, top 10% masked", "same, ranked by attribution x input",
               "|mass| in top 10% of pixels", "roughness (TV / |mass|)"],
        caption=f"Unmasked mean log-probability: {base:.4f}. The last two columns say how "
        "regional a map reads: the share of its absolute mass in its top 10% pixels (0.1: "
        "flat, 1: all in a tenth of the image) and its total variation per unit of mass (about "
        "4 for pixel noise, low for a few constant regions).",
    )

    fig, axes = plt.subplots(n_images, len(methods) + 1,
                             figsize=(1.6 * (len(methods) + 1), 1.7 * n_images))
    for i in range(n_images):
        axes[i, 0].imshow(x_all[i, 0], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(f"pred {int(pred[i])}", fontsize=8)
        for j, name in enumerate(methods, start=1):
            m = maps[name][i]
            lim = float(m.abs().max()) or 1.0
            axes[i, j].imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
            conc, rough = map_shapes[name][i]
            axes[i, j].text(0.5, -0.04, f"top10% {conc:.2f}, TV {rough:.1f}", fontsize=6,
                            ha="center", va="top", transform=axes[i, j].transAxes)
    for ax in axes.ravel():
        ax.axis("off")
    writer.figure(fig, "maps", "Attribution maps (red: raises the log-probability, blue: "
                  "lowers it; each map on its own symmetric scale). Under each map: the share "
                  "of its absolute mass in its top 10% pixels and its total variation per unit "
                  "of mass (see the table).")

    # sanity check (paper §5.1): randomise the logit layer, keep the trained model's penalty
    trained = LEGTV(clf)
    k = min(n_images, 4)
    trained_maps, trained_cert = trained.attribute(
        x_all[:k], target=pred[:k], n_samples=n, seed=writer.seed, k_l=0.1,
        return_certificate=True,
    )
    penalty = trained_cert.penalty[:, 0]
    random_model = zoo.digits_classifier(progress=False)
    gen = torch.Generator().manual_seed(writer.seed)
    layer = random_model.head.out
    bound = 1.0 / math.sqrt(layer.weight.shape[1])
    with torch.no_grad():
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(layer.bias.shape, generator=gen) * 2 - 1) * bound)

    def spread(m: torch.Tensor) -> float:
        return float((m - m.mean()).abs().max())

    from captum.attr import Saliency

    sanity_rows = []
    for i in range(k):
        xi, t = x_all[i : i + 1], int(pred[i])
        rand_map = LEGTV(random_model).attribute(
            xi, target=t, n_samples=n, seed=writer.seed, penalty="absolute",
            l_value=float(penalty[i]),
        )
        sal = Saliency(clf).attribute(xi.clone().requires_grad_(), target=t, abs=False)
        sal_r = Saliency(random_model).attribute(xi.clone().requires_grad_(), target=t, abs=False)
        sanity_rows.append([i, spread(rand_map) / spread(trained_maps[i]), spread(sal_r) /
                            spread(sal)])
    writer.table(sanity_rows, ["image", "LEG-TV: randomised / trained", ("Saliency: randomised / "
                               "trained")],
                 caption="Sanity check (paper §5.1): size (max |map - mean|) of the map after "
                 "re-drawing the logit layer, relative to the trained model's, at the trained "
                 "model's LEG-TV penalty (K_L = 0.1, logits). 0 means a flat map.")
    writer.metric("sanity_legtv_ratio_mean", sum(r[1] for r in sanity_rows) / k)
    writer.metric("sanity_saliency_ratio_mean", sum(r[2] for r in sanity_rows) / k)
