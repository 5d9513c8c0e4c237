"""LEG / LEG-TV benchmarks: LP solve time by grid size and solver, end-to-end attribution time,
and the paper's sensitivity analysis (§5.2) on the zoo digits or faces. Prints Markdown
tables.

    python benchmarks/leg_tv.py --part iteration --sizes 14 28 56 224
    python benchmarks/leg_tv.py --part solve --sizes 14 28 56 112 224 --cvxpy-max 112
    python benchmarks/leg_tv.py --part e2e
    python benchmarks/leg_tv.py --part sensitivity --images 20 --evals 500 3000
    python benchmarks/leg_tv.py --part sensitivity --dataset faces --images 20 --evals 500 3000

Instances for ``solve`` (penalty K_L = 0.05, the paper's default): the moment map of a noisy
piecewise-constant linear model under the paper's TV perturbation (n = 500, sigma2 = 0.1),
white-noise moment maps, and real LEG moment maps of zoo digits (grids up to 28x28). Times are
reported as CPU time of this process (``time.process_time``) and wall time: on a shared machine
the wall time includes waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any, Callable


def _instance(size: int, seed: int) -> Any:
    import torch

    from captum_latent.attr import StructuredTVProblem, TVGaussian

    gen = torch.Generator().manual_seed(seed)
    truth = torch.zeros(size, size, dtype=torch.float64)
    truth[size // 4 : size // 2, size // 4 : 3 * size // 4] = 1.0
    truth[size // 2 : 3 * size // 4, size // 3 : size // 2] = -0.5
    n = 500
    z = TVGaussian().sample(n, (size, size), 0.1, generator=gen)
    y = (z * truth).sum(dim=(1, 2)) + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    b = (y[:, None, None] * z).mean(0, keepdim=True)
    return StructuredTVProblem.from_moments(b, 0.1, k_l=0.05)


def _random_instance(size: int, seed: int) -> Any:
    """White-noise moment map: no structure at all (a hard case for face identification)."""
    import torch

    from captum_latent.attr import StructuredTVProblem

    gen = torch.Generator().manual_seed(1000 + seed)
    b = torch.randn(1, size, size, dtype=torch.float64, generator=gen)
    return StructuredTVProblem.from_moments(b, 0.1, k_l=0.05)


def _digit_instances(size: int, count: int) -> list[Any]:
    """Real LEG moment maps: log-probability of the predicted class of zoo test digits,
    n = 500, sigma2 = 0.1, on a ``size x size`` grid (at most the digits' 28x28)."""
    import torch

    from captum_latent import LEGTV, zoo
    from captum_latent.attr import StructuredTVProblem

    clf = zoo.digits_classifier(progress=False)
    x = zoo.digits().test.images[:count]
    pred = clf(x).argmax(dim=1)

    def logprob(inp: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(clf(inp), dim=1)

    b = LEGTV(logprob).moments(x, target=pred, n_samples=500, sigma2=0.1,
                               perturbations_per_eval=100, grid_size=(size, size), seed=0)
    return [StructuredTVProblem.from_moments(b[i], 0.1, k_l=0.05) for i in range(count)]


def _timed_cpu(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall and CPU (``time.process_time``: this process only) seconds, last output."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), statistics.median(cpus), out


def part_solve(args: argparse.Namespace) -> None:
    import torch

    from captum_latent.attr import CvxpyTVSolver, FastTVSolver

    device = torch.device(args.device)
    print(f"### LP solve time, one channel (K_L = 0.05, fast solver tol {args.tol}; per "
          f"instance the median of {args.repeats} solves after a warm-up; CPU = process time)")
    print()
    print("| grid | instances | solver | CPU ms median (max) | wall ms median (max) "
          "| iterations | max rel. gap | max viol. / L | max obj. vs cvxpy |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        kinds = [("model", [_instance(size, s) for s in range(args.instances)]),
                 ("random", [_random_instance(size, s) for s in range(args.random)])]
        if args.digits and size <= 28:
            kinds.append(("digits", _digit_instances(size, args.digits)))
        for kind, probs in kinds:
            if not probs:
                continue
            ref_t, refs = [], []
            fast_w, fast_c, iters, gaps, viols, diffs = [], [], [], [], [], []
            for prob in probs:
                ref_obj = None
                if size <= args.cvxpy_max:
                    t_ref, c_ref, ref = _timed_cpu(lambda p=prob: CvxpyTVSolver().solve(p), 1)
                    ref_t.append((t_ref, c_ref))
                    ref_obj = float(ref.certificate.objective)
                    refs.append(float(ref.certificate.feasibility_violation / prob.bound))
                solver = FastTVSolver(tol=args.tol, max_iter=args.max_iter)
                dev_prob = type(prob)(prob.c.to(device), prob.sigma2, prob.bound.to(device),
                                      prob.shape)
                solver.solve(dev_prob)  # warm-up (allocations, caches)
                wall, cpu, sol = _timed_cpu(lambda p=dev_prob, s=solver: s.solve(p), args.repeats)
                cert = sol.certificate
                fast_w.append(wall)
                fast_c.append(cpu)
                iters.append(cert.iterations)
                gaps.append(float(cert.relative_gap.max()))
                viols.append(float((cert.feasibility_violation / dev_prob.bound).max()))
                if ref_obj is not None:
                    diffs.append(abs(float(cert.objective) - ref_obj) / ref_obj)
            label = f"{size}x{size} | {len(probs)} {kind}"
            if ref_t:
                rw = [t for t, _ in ref_t]
                rc = [c for _, c in ref_t]
                print(f"| {label} | cvxpy CLARABEL (structured) "
                      f"| {1e3 * statistics.median(rc):.1f} ({1e3 * max(rc):.1f}) "
                      f"| {1e3 * statistics.median(rw):.1f} ({1e3 * max(rw):.1f}) | - | - "
                      f"| {max(refs):.1e} | - |")
            versus = f"{max(diffs):.1e}" if diffs else "-"
            print(f"| {label} | fast ({device.type}) "
                  f"| {1e3 * statistics.median(fast_c):.1f} ({1e3 * max(fast_c):.1f}) "
                  f"| {1e3 * statistics.median(fast_w):.1f} ({1e3 * max(fast_w):.1f}) "
                  f"| {min(iters)}-{max(iters)} | {max(gaps):.1e} | {max(viols):.1e} "
                  f"| {versus} |")
    print()


def _iteration_rows(size: int, device: Any) -> list[tuple[str, float, float]]:
    """(form, CPU us, wall us) per iteration for one problem of the given size."""
    import torch

    from captum_latent.attr.grid import (
        GridLaplacian,
        PaddedADMMGrid,
        grid_difference,
        grid_difference_adjoint,
    )

    prob = _instance(size, 0)
    shape, s2 = prob.shape, prob.sigma2
    k = (prob.c / s2).to(device)
    r = (prob.bound / s2).to(device).unsqueeze(1)
    lo, hi = k - r, k + r
    rho = 32.0 / k.abs().amax(dim=1, keepdim=True)
    lap = GridLaplacian(shape, k.dtype, device)
    state = {"w": torch.clamp(torch.zeros_like(k), lo, hi), "u": torch.zeros_like(k)}

    def textbook(n: int) -> None:
        w, u = state["w"], state["u"]
        for _ in range(n):
            v = grid_difference(lap.solve(grid_difference_adjoint(w - u, shape)))
            vh = 1.6 * v + (1 - 1.6) * w
            q = vh + u
            w = torch.clamp(torch.sign(q) * (q.abs() - 1.0 / rho).clamp_min(0.0), lo, hi)
            u = u + vh - w
        state["w"], state["u"] = w, u

    grid = PaddedADMMGrid(shape, 1, k.dtype, device)
    lo_p, hi_p = grid.pad(lo), grid.pad(hi)
    torch.clamp(grid.w, lo_p, hi_p, out=grid.w)

    def in_place(n: int) -> None:
        grid.iterate(n, lo_p, hi_p, 1.0 / rho, -1.0 / rho, 1.6)

    def synced(fn: Callable[[int], None]) -> None:
        fn(200)
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for name, fn in (("textbook (allocating)", textbook), ("in place, padded", in_place)):
        fn(20)
        wall, cpu, _ = _timed_cpu(lambda f=fn: synced(f), 5)
        rows.append((name, 1e6 * cpu / 200, 1e6 * wall / 200))
    return rows


def part_iteration(args: argparse.Namespace) -> None:
    """Cost of one ADMM iteration: the textbook form (allocating ``D^T``, DCT solve, ``D``) vs
    the solver's in-place padded loop (``captum_latent.attr.grid.PaddedADMMGrid``), same
    arithmetic."""
    import torch

    device = torch.device(args.device)
    print("### One ADMM iteration (one problem; median over 5 runs of 200 iterations)")
    print()
    print("| grid | form | CPU us / iteration | wall us / iteration |")
    print("| --- | --- | ---: | ---: |")
    for size in args.sizes:
        for name, cpu, wall in _iteration_rows(size, device):
            print(f"| {size}x{size} | {name} | {cpu:.1f} | {wall:.1f} |")
    print()


def part_e2e(args: argparse.Namespace) -> None:
    import torch

    from captum_latent import LEG, LEGTV, zoo

    clf = zoo.digits_classifier(progress=False)
    x = zoo.digits().test.images[:4]
    pred = clf(x).argmax(dim=1)
    print("### End-to-end attribution time (4 zoo digits, n_samples = 500, "
          "perturbations_per_eval = 100)")
    print()
    print("| input | grid | method | CPU s / image | wall s / image |")
    print("| --- | --- | --- | ---: | ---: |")
    kw = dict(target=pred, n_samples=500, perturbations_per_eval=100, seed=0)
    for name, cls in (("LEG", LEG), ("LEG-TV", LEGTV)):
        t, c, _ = _timed_cpu(lambda c=cls: c(clf).attribute(x, **kw), args.repeats)
        print(f"| 1x28x28 digits | 28x28 | {name} | {c / x.shape[0]:.3f} "
              f"| {t / x.shape[0]:.3f} |")
    # 224x224 RGB input on the paper's 28x28 grid, with a small fixed-seed CNN
    torch.manual_seed(0)
    big = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(128, 10),
    ).eval()
    img = zoo.photograph("astronaut", size=224).unsqueeze(0)
    for name, cls in (("LEG", LEG), ("LEG-TV", LEGTV)):
        t, c, _ = _timed_cpu(
            lambda c=cls: c(big, output_transform="softmax").attribute(
                img, target=0, n_samples=500, perturbations_per_eval=100, seed=0,
                grid_size=(28, 28),
            ),
            args.repeats,
        )
        print(f"| 3x224x224 photograph | 28x28 | {name} | {c:.3f} | {t:.3f} |")
    print()


def _superpixels(image: Any) -> dict[str, Any]:
    """Superpixel ``feature_mask`` tensors ``(1, 1, H, W)`` of one ``(1, 1, H, W)`` grey image, as
    Lime / SHAP segment images before explaining them.

    ``quickshift`` follows ``lime_image``'s default (quickshift on the grey image repeated to
    RGB, ``kernel_size=4, max_dist=200, ratio=0.2``) scaled from 224x224 to this size by the
    factor ``H / 224``; scikit-image refuses a ``kernel_size`` below 1, so it is 1 (the paper's
    images were 224x224). ``quickshift 50`` asks ``alibi_ext.quickshift_n_segments`` for 50
    segments, the superpixel count of shap's KernelExplainer ImageNet example (SLIC, 50
    segments on 224x224)."""
    import numpy as np
    import torch
    from skimage.color import gray2rgb
    from skimage.segmentation import quickshift

    from alibi_ext import quickshift_n_segments

    grey = image[0, 0].detach().double().numpy()
    scale = grey.shape[0] / 224
    lime_style = quickshift(gray2rgb(grey), kernel_size=max(1.0, 4 * scale),
                            max_dist=200 * scale, ratio=0.2, rng=0)
    fifty = quickshift_n_segments(grey, 50)
    out = {}
    for name, labels in (("quickshift", lime_style), ("quickshift 50", fifty)):
        _, dense = np.unique(labels, return_inverse=True)  # labels 0..K-1
        out[name] = torch.as_tensor(dense.reshape(grey.shape), dtype=torch.long)[None, None]
    return out


def _block_mask(size: int, grid: int) -> Any:
    """``(1, 1, size, size)`` mask of the cells of a ``grid x grid`` saliency grid upsampled by
    nearest neighbour to ``size`` (what LEG-TV's ``grid_size`` does), e.g. 2x2 blocks for
    28 -> 14."""
    import torch

    cell = torch.arange(size) * grid // size
    return (cell[:, None] * grid + cell[None, :]).reshape(1, 1, size, size)


def _sensitivity_methods(
    logprob: Callable[[Any], Any], n: int, k_l_grid: list[float], size: int
) -> dict[str, Callable[[Any, int, dict[str, Any]], dict[str, Any]]]:
    """Each entry maps ``(x, target, superpixel masks)`` to one or more named ``(1, 1, H, W)``
    attributions (a LEG-TV path over ``k_l_grid`` costs one set of ``n`` model evaluations;
    its ``K_L = 0`` end is the empirical LEG exactly, paper Lemma 3). ``size`` is the input's
    side; the coarse grid is ``ceil(size / 2)`` (14 for digits, 13 for 25x25 faces) and Lime /
    KernelShap's blocks are exactly its cells."""
    import torch
    from captum.attr import KernelShap, Lime, Occlusion, Saliency

    from captum_latent import LEGTV

    coarse = (size + 1) // 2
    mask = _block_mask(size, coarse)
    block = "2x2 blocks" if size % 2 == 0 else f"{coarse}x{coarse} cells of 1-2 px"
    occl_evals = ((size - 4) // 2 + 1) ** 2 + 1

    def legtv_path(grid: int, sigma2: float) -> Callable[[Any, int, Any], dict[str, Any]]:
        def run(x: Any, t: int, seg: Any) -> dict[str, Any]:
            path = LEGTV(logprob).attribute_path(
                x, target=t, n_samples=n, sigma2=sigma2, perturbations_per_eval=100, seed=0,
                grid_size=(grid, grid), k_l_grid=k_l_grid,
            )
            out = {}
            for k, attr in zip(path.k_l.tolist(), path.attributions):
                name = "LEG" if k == 0 else f"LEG-TV K_L {k:g}"
                out[f"{name} ({grid}x{grid}, sigma2 {sigma2:g})"] = attr
            return out
        return run

    def captum(cls: Any, label: str, seg_name: str | None) -> Callable[[Any, int, Any],
                                                                        dict[str, Any]]:
        def run(x: Any, t: int, seg: Any) -> dict[str, Any]:
            kw = {} if seg_name is None else {
                "feature_mask": mask if seg_name == "blocks" else seg[seg_name]}
            return {label: cls(logprob).attribute(
                x, target=t, n_samples=n, perturbations_per_eval=100, **kw)}
        return run

    return {
        f"LEG-TV {size} 0.1": legtv_path(size, 0.1),
        f"LEG-TV {size} 0.01": legtv_path(size, 0.01),
        f"LEG-TV {coarse} 0.01": legtv_path(coarse, 0.01),
        "Lime blocks": captum(Lime, f"Lime ({block})", "blocks"),
        "Lime pixels": captum(Lime, "Lime (pixels)", None),
        "KernelShap blocks": captum(KernelShap, f"KernelShap ({block})", "blocks"),
        "Lime quickshift": captum(Lime, "Lime (quickshift, lime_image default)", "quickshift"),
        "KernelShap quickshift": captum(
            KernelShap, "KernelShap (quickshift, lime_image default)", "quickshift"),
        "Lime quickshift 50": captum(Lime, "Lime (quickshift, 50 segments)", "quickshift 50"),
        "KernelShap quickshift 50": captum(
            KernelShap, "KernelShap (quickshift, 50 segments)", "quickshift 50"),
        "Occlusion": lambda x, t, seg: {f"Occlusion (4x4, stride 2; {occl_evals} evals)": Occlusion(
            logprob).attribute(x, target=t, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2))},
        "Saliency": lambda x, t, seg: {"Saliency (gradient)": Saliency(logprob).attribute(
            x.clone().requires_grad_(), target=t, abs=False)},
        "Random": lambda x, t, seg: {"Random map (no model evaluation)": torch.rand(
            x.shape, generator=torch.Generator().manual_seed(int(1e6 * float(x.sum()))))},
    }


def _log_odds(logp: Any) -> Any:
    """Per class ``log p_c - log(1 - p_c)`` from log-probabilities ``(B, C)``, computed as
    ``log p_c - logsumexp_{j != c} log p_j`` (no ``1 - p`` cancellation when ``p_c ~ 1``)."""
    import torch

    c = logp.shape[1]
    others = logp.unsqueeze(1).expand(-1, c, c).clone()
    others[:, torch.arange(c), torch.arange(c)] = float("-inf")
    return logp - torch.logsumexp(others, dim=2)


def _sensitivity_data(name: str, count: int) -> tuple[Any, Any, str]:
    """``(images, classifier, description)``: the first ``count`` zoo test digits, or the
    first ``count`` test images labelled "face" of the zoo's faces set (25 exist)."""
    from captum_latent import zoo

    if name == "digits":
        return zoo.digits().test.images[:count], zoo.digits_classifier(progress=False), \
            "zoo test digits"
    split = zoo.faces().test
    faces = split.images[split.labels == 1]
    return faces[:count], zoo.faces_classifier(progress=False), "zoo test faces (lfw_subset)"


def _ranked(score: Any, tie_break: Any) -> Any:
    """Indices by decreasing ``score``; equal scores (a superpixel's or block's pixels) in the
    random order ``tie_break`` (a permutation), so no method gains from index order."""
    import torch

    return tie_break[torch.argsort(score[tie_break], descending=True, stable=True)]


def part_sensitivity(args: argparse.Namespace) -> None:
    """Paper §5.2 on zoo digits or faces: mask (set to 0) the top-k% pixels of each map and
    record the target log-probability; lower is better. The maps explain the target
    log-probability (default) or its log-odds ``log p - log(1 - p)`` (``--explain logodds``,
    not saturated when ``p ~ 1``). Three rankings: the signed
    attribution (as Lime's coefficients are read), its absolute value (the paper's saliency:
    sum over channels of |gamma|) and attribution x input (the first-order effect of setting a
    pixel to 0)."""
    import torch

    x, clf, what = _sensitivity_data(args.dataset, args.images)
    size = x.shape[-1]
    pred = clf(x).argmax(dim=1)

    def logprob(inp: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(clf(inp), dim=1)

    def explained(inp: torch.Tensor) -> torch.Tensor:
        logp = logprob(inp)
        return logp if args.explain == "logprob" else _log_odds(logp)

    segments = [_superpixels(x[i : i + 1]) for i in range(x.shape[0])]
    for seg_name in segments[0]:
        counts = [int(s[seg_name].max()) + 1 for s in segments]
        print(f"{seg_name} superpixels per image: min {min(counts)}, median "
              f"{statistics.median(counts):g}, max {max(counts)}")
    with torch.no_grad():
        base = logprob(x)[torch.arange(x.shape[0]), pred]
    print(f"unmasked mean target log-probability {float(base.mean()):.3f}; predicted classes "
          f"{pred.tolist()}")
    print()
    tie_breaks = [torch.randperm(size * size, generator=torch.Generator().manual_seed(i))
                  for i in range(x.shape[0])]

    fractions = [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2]
    rankings = {
        "attribution": lambda a, xi: a,
        "|attribution|": lambda a, xi: a.abs(),
        "attribution x input": lambda a, xi: a * xi.reshape(-1),
    }
    for n in args.evals:
        methods = _sensitivity_methods(explained, n, [0.2, 0.05, 0.01, 0.0], size)
        if args.methods:
            methods = {k: v for k, v in methods.items() if k in args.methods}
        torch.manual_seed(0)  # Lime / KernelShap draw from torch's global generator
        curves: dict[str, dict[str, list[list[float]]]] = {r: {} for r in rankings}
        cpu: dict[str, float] = {}
        for group, fn in methods.items():
            start = time.process_time()
            per_image = [fn(x[i : i + 1], int(pred[i]), segments[i]) for i in range(x.shape[0])]
            cpu[group] = (time.process_time() - start) / x.shape[0]
            for i, maps in enumerate(per_image):
                xi, t = x[i : i + 1], int(pred[i])
                for name, attr in maps.items():
                    attr = attr.detach().reshape(-1)
                    for rname, rank in rankings.items():
                        order = _ranked(rank(attr, xi), tie_breaks[i])
                        row = []
                        for frac in fractions:
                            k = int(round(frac * attr.numel()))
                            masked = xi.clone().reshape(-1)
                            masked[order[:k]] = 0.0
                            with torch.no_grad():
                                row.append(float(logprob(masked.reshape(xi.shape))[0, t]))
                        curves[rname].setdefault(f"{name}|{group}", []).append(row)
        print(f"#### Sensitivity with {n} model evaluations per map ({x.shape[0]} {what}; "
              f"maps explain the {args.explain})")
        print()
        print("Mean target log-probability after setting the top-k% pixels to 0 (lower: the "
              "map found pixels the model relies on); `below X` = images (of "
              f"{x.shape[0]}) where the method's 10% value is below X's; CPU seconds per map "
              "(process time; LEG-TV rows share one set of evaluations).")
        print()
        for rname in rankings:
            refs = {short: curves[rname][key] for key in curves[rname]
                    for short, group in (("Lime blocks", "Lime blocks"),
                                         ("Lime qs", "Lime quickshift"),
                                         ("KS qs", "KernelShap quickshift"))
                    if key.endswith(f"|{group}")}
            print(f"Ranked by {rname}:")
            print()
            print("| method | " + " | ".join(f"{100 * f:g}%" for f in fractions)
                  + "".join(f" | below {r} at 10%" for r in refs) + " | CPU s / map |")
            print("| --- | " + " | ".join("---:" for _ in fractions)
                  + " | ---:" * len(refs) + " | ---: |")
            for key, rows in curves[rname].items():
                name, group = key.split("|")
                means = [statistics.mean(r[j] for r in rows) for j in range(len(fractions))]
                wins = [sum(r[4] < q[4] for r, q in zip(rows, ref)) for ref in refs.values()]
                print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in means)
                      + "".join(f" | {w}" for w in wins) + f" | {cpu[group]:.2f} |")
            print()


def _user_covariance_instance(size: int, kind: str, seed: int) -> Any:
    """A user covariance (``kind``: a squared-exponential kernel on the grid with a nugget,
    image-like and badly conditioned, or a Wishart matrix) scaled by 0.1, and the moment map of
    a noisy piecewise-constant linear model under it (n = 500); K_L = 0.05."""
    import torch

    from captum_latent.attr import GeneralTVProblem, StructuredTVProblem

    p = size * size
    gen = torch.Generator().manual_seed(2000 + seed)
    if kind == "wishart":
        q = torch.randn(p, p, generator=gen, dtype=torch.float64)
        cov = 0.1 * (q @ q.T / p + 0.1 * torch.eye(p, dtype=torch.float64))
    else:
        ell = 1.0 + 2.0 * float(torch.rand(1, generator=gen))
        ij = torch.cartesian_prod(torch.arange(size), torch.arange(size)).double()
        d2 = ((ij[:, None] - ij[None]) ** 2).sum(-1)
        cov = 0.1 * (torch.exp(-d2 / (2 * ell**2)) + 0.05 * torch.eye(p, dtype=torch.float64))
    truth = torch.zeros(size, size, dtype=torch.float64)
    truth[size // 4 : size // 2, size // 4 : 3 * size // 4] = 1.0
    truth[size // 2 : 3 * size // 4, size // 3 : size // 2] = -0.5
    z = torch.randn(500, p, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    y = z @ truth.reshape(-1) + 0.05 * torch.randn(500, generator=gen, dtype=torch.float64)
    b = (y[:, None] * z).mean(0).reshape(1, size, size)
    bound = StructuredTVProblem.from_moments(b, 0.1, k_l=0.05).bound
    return GeneralTVProblem(b, cov, bound)


def part_solve_user_covariance(args: argparse.Namespace) -> None:
    """LP solve time with a user covariance (``GeneralTVProblem``): the fast solver (dense
    factorisation once per covariance, then ADMM) against cvxpy's general formulation."""
    import torch

    from captum_latent.attr import CvxpyTVSolver, FastTVSolver

    device = torch.device(args.device)
    print(f"### LP solve time with a user covariance, one channel (K_L = 0.05, fast solver tol "
          f"{args.tol}; CPU = process time; first = a new covariance, factorisation included; "
          f"again = the same covariance, median of {args.repeats})")
    print()
    print("| grid | covariance | solver | CPU ms first | CPU ms again | wall ms again "
          "| iterations | rel. gap | viol. / L | obj. vs cvxpy |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.user_covariance:
        for kind in ("smooth", "wishart"):
            for seed in range(args.instances):
                prob = _user_covariance_instance(size, kind, seed)
                ref_obj = None
                label = f"{size}x{size} | {kind} #{seed}"
                if size <= args.cvxpy_max:
                    _, c_ref, ref = _timed_cpu(lambda p=prob: CvxpyTVSolver().solve(p), 1)
                    ref_obj = float(ref.certificate.objective)
                    print(f"| {label} | cvxpy CLARABEL (general) | {1e3 * c_ref:.0f} | - | - | - "
                          f"| - | {float(ref.certificate.feasibility_violation / prob.bound):.1e} "
                          "| - |")
                dev_prob = type(prob)(prob.b.to(device), prob.covariance.to(device),
                                      prob.bound.to(device))
                solver = FastTVSolver(tol=args.tol, max_iter=args.max_iter)
                _, c_first, _ = _timed_cpu(lambda p=dev_prob, s=solver: s.solve(p), 1)
                wall, cpu, sol = _timed_cpu(lambda p=dev_prob, s=solver: s.solve(p), args.repeats)
                cert = sol.certificate
                versus = (f"{abs(float(cert.objective) - ref_obj) / ref_obj:.1e}"
                          if ref_obj is not None else "-")
                print(f"| {label} | fast ({device.type}) | {1e3 * c_first:.0f} | {1e3 * cpu:.0f} "
                      f"| {1e3 * wall:.0f} | {cert.iterations} "
                      f"| {float(cert.relative_gap.max()):.1e} "
                      f"| {float((cert.feasibility_violation / dev_prob.bound).max()):.1e} "
                      f"| {versus} |")
    print()


def _independent_instance(size: int, seed: int) -> Any:
    """``IndependentGaussian`` (``Sigma = 0.1 I``, a :class:`SpectralCovariance`): the moment
    map of a noisy piecewise-constant linear model under it (n = 500); K_L = 0.05."""
    import torch

    from captum_latent.attr import GeneralTVProblem, IndependentGaussian, StructuredTVProblem

    gen = torch.Generator().manual_seed(3000 + seed)
    truth = torch.zeros(size, size, dtype=torch.float64)
    truth[size // 4 : size // 2, size // 4 : 3 * size // 4] = 1.0
    truth[size // 2 : 3 * size // 4, size // 3 : size // 2] = -0.5
    z = IndependentGaussian().sample(500, (size, size), 0.1, generator=gen)
    y = (z * truth).sum(dim=(1, 2)) + 0.05 * torch.randn(500, generator=gen, dtype=torch.float64)
    b = (y[:, None, None] * z).mean(0, keepdim=True)
    bound = StructuredTVProblem.from_moments(b, 0.1, k_l=0.05).bound
    return GeneralTVProblem(b, IndependentGaussian().covariance_operator((size, size), 0.1),
                            bound)


def part_solve_independent(args: argparse.Namespace) -> None:
    """LP solve time with ``IndependentGaussian``: the fast solver's DCT path (no dense
    matrix) against cvxpy's general formulation (``Sigma = s2 I`` as a sparse matrix)."""
    import torch

    from captum_latent.attr import CvxpyTVSolver, FastTVSolver, GeneralTVProblem

    device = torch.device(args.device)
    print(f"### LP solve time with IndependentGaussian, one channel (K_L = 0.05, fast solver "
          f"tol {args.tol}, max_iter {args.max_iter}; CPU = process time, median of "
          f"{args.repeats} solves, the first included)")
    print()
    print("| grid | solver | CPU ms | wall ms | iterations | converged | rel. gap | viol. / L "
          "| obj. vs cvxpy |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for size in args.independent:
        prob = _independent_instance(size, 0)
        ref_obj = None
        if size <= args.cvxpy_max:
            wall, cpu, ref = _timed_cpu(lambda p=prob: CvxpyTVSolver().solve(p), 1)
            ref_obj = float(ref.certificate.objective)
            print(f"| {size}x{size} | cvxpy CLARABEL (general) | {1e3 * cpu:.0f} "
                  f"| {1e3 * wall:.0f} | - | {bool(ref.certificate.converged.all())} | - "
                  f"| {float(ref.certificate.feasibility_violation / prob.bound):.1e} | - |",
                  flush=True)
        moved = GeneralTVProblem(*(t.to(device) for t in (prob.b, prob.covariance, prob.bound)))
        fast = FastTVSolver(tol=args.tol, max_iter=args.max_iter)
        wall, cpu, sol = _timed_cpu(lambda q=moved, f=fast: f.solve(q), args.repeats)
        cert = sol.certificate
        cells = [f"{1e3 * cpu:.0f}", f"{1e3 * wall:.0f}", str(cert.iterations),
                 str(bool(cert.converged.all())), f"{float(cert.relative_gap.max()):.1e}",
                 f"{float((cert.feasibility_violation / moved.bound).max()):.1e}",
                 "-" if ref_obj is None else f"{abs(float(cert.objective) / ref_obj - 1):.1e}"]
        print(f"| {size}x{size} | fast, DCT path ({device.type}) | " + " | ".join(cells) + " |",
              flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["iteration", "solve", "e2e", "sensitivity", "all"],
                        default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[14, 28, 56, 112, 224])
    parser.add_argument("--cvxpy-max", type=int, default=112,
                        help="largest grid also solved by cvxpy (224 takes ~20 s here)")
    parser.add_argument("--instances", type=int, default=3,
                        help="piecewise-constant model instances per grid size")
    parser.add_argument("--random", type=int, default=3,
                        help="white-noise instances per grid size")
    parser.add_argument("--digits", type=int, default=4,
                        help="zoo-digit LEG instances per grid size (grids up to 28x28)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--max-iter", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--evals", type=int, nargs="+", default=[500],
                        help="model evaluations per map for the sampling methods")
    parser.add_argument("--dataset", choices=["digits", "faces"], default="digits",
                        help="sensitivity: zoo test digits (28x28) or zoo test faces (25x25)")
    parser.add_argument("--explain", choices=["logprob", "logodds"], default="logprob",
                        help="sensitivity: output the maps explain (the masking metric is "
                             "always the target log-probability)")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="sensitivity: method groups to run (default: all). Lime and "
                             "KernelShap draw from torch's global generator, seeded once per "
                             "--evals value, so a subset changes their samples")
    parser.add_argument("--user-covariance", type=int, nargs="+", default=None,
                        metavar="SIZE", help="only the LP solve time with a user covariance "
                        "on these grid sizes (e.g. 14 28), fast vs cvxpy")
    parser.add_argument("--independent", type=int, nargs="+", default=None, metavar="SIZE",
                        help="only the LP solve time with IndependentGaussian (the fast "
                        "solver's DCT path) on these grid sizes, fast vs cvxpy")
    args = parser.parse_args()
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    if args.user_covariance:
        part_solve_user_covariance(args)
        return
    if args.independent:
        part_solve_independent(args)
        return
    parts = ["iteration", "solve", "e2e", "sensitivity"] if args.part == "all" else [args.part]
    for part in parts:
        {"iteration": part_iteration, "solve": part_solve, "e2e": part_e2e,
         "sensitivity": part_sensitivity}[part](args)


if __name__ == "__main__":
    main()
