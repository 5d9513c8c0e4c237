"""Demo-report section: DISC counterfactuals (query, counterfactual, difference map per method)."""

from __future__ import annotations

import torch

from captum_latent.report._registry import register_section
from captum_latent.report._writer import SectionWriter


@register_section(
    "disc", "DISC: counterfactuals by deep model inversion", order=60,
    description="zoo digits 3 -> 8: query, counterfactual and difference map per prior",
    see_also=("zoo",),
)
def disc_section(writer: SectionWriter) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from captum_latent import zoo
    from captum_latent.counterfactual import dep_digits_classifier
    from captum_latent.counterfactual.presets import TABLE1_METHODS, table1_generator
    from captum_latent.metrics import concentration, mse

    digits = zoo.digits()
    if writer.quick:
        # the plain zoo classifier (no DEP head, so no "+ DEP" columns) and short runs
        model = zoo.digits_classifier(progress=False)
        methods = [m for m in TABLE1_METHODS if not m.endswith("DEP")]
        n_queries, steps = 2, 40
    else:
        model = dep_digits_classifier(progress=False)
        methods = list(TABLE1_METHODS)
        n_queries, steps = 4, 150
    queries = digits.test.images[digits.test.labels == 3][:n_queries]
    writer.text(
        "DISC (Thiagarajan et al.) inverts the classifier itself: for every query an image "
        "prior (TV + L2 on the pixels, a deep image prior U-Net, or an implicit neural "
        "representation with Fourier features and SIREN layers) is optimised until the "
        "classifier predicts the target class, while the classifier's conv-block features "
        "(LSO) stay close to the query's. '+ DEP' adds the manifold-consistency term of a loss "
        "predictor trained jointly with the classifier, pulled to the predicted loss that real "
        "images of the target class typically get. Here: zoo digits, 3 -> 8"
        + (" (quick mode: plain zoo classifier, no DEP, short runs)." if writer.quick else ".")
    )
    rows, results = [], []
    for method in writer.progress(methods, "DISC configurations"):
        gen = table1_generator(method, model, steps=steps)
        res = gen.generate(queries, 8, seed=writer.seed)
        results.append((method, res))
        m = mse(res.queries, res.counterfactuals)
        c = concentration(res.queries, res.counterfactuals)
        rows.append([method, res.validity, float(m.mean()), float(c.mean()),
                     res.seconds / len(queries)])
        key = method.lower().replace(" + ", "_").replace(" ", "_")
        writer.metric(f"{key}_validity", res.validity)
        writer.metric(f"{key}_concentration", float(c.mean()))
    writer.table(rows, ["method", "validity", "MSE", "concentration", "seconds / query (CPU)"],
                 caption=f"{len(queries)} test threes to class 8, {steps} steps per query. "
                 "Concentration: area fraction of the smallest box holding every change > "
                 "0.05 (lower = more localised). Full Table 1 (with classifier discrepancy): "
                 "benchmarks/disc.py.")

    fig, axes = plt.subplots(len(results), 3 * len(queries),
                             figsize=(1.3 * 3 * len(queries), 1.45 * len(results)),
                             squeeze=False)
    for row, (method, res) in enumerate(results):
        for q in range(len(queries)):
            p = float(res.probabilities[q, 8])
            panels = [(res.queries[q, 0], "gray", 0, 1, "query 3"),
                      (res.counterfactuals[q, 0], "gray", 0, 1, f"cf: p(8)={p:.2f}"),
                      (res.difference[q, 0], "bwr", -1, 1, "difference")]
            for k, (img, cmap, lo, hi, title) in enumerate(panels):
                ax = axes[row, 3 * q + k]
                ax.imshow(torch.as_tensor(img).cpu(), cmap=cmap, vmin=lo, vmax=hi)
                ax.set_title(title, fontsize=6)
                ax.set_xticks([])
                ax.set_yticks([])
        axes[row, 0].set_ylabel(method, fontsize=6)
    fig.tight_layout()
    writer.figure(fig, "counterfactuals", "Per method (rows): query, counterfactual and "
                  "difference map (counterfactual - query; red = brighter) for each query.")
