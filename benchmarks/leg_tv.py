"""LEG / LEG-TV benchmarks: LP solve time by grid size and solver, end-to-end attribution time,
and the paper's sensitivity analysis (§5.2) on the zoo digits. Prints Markdown tables.

    python benchmarks/leg_tv.py --part solve --sizes 14 28 56 112 224 --cvxpy-max 112
    python benchmarks/leg_tv.py --part e2e
    python benchmarks/leg_tv.py --part sensitivity --images 40

Instances for ``solve``: the moment map of a noisy piecewise-constant linear model under the
paper's TV perturbation (n = 500, sigma2 = 0.1), penalty K_L = 0.05 (the paper's default).
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


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def part_solve(args: argparse.Namespace) -> None:
    import torch

    from captum_latent.attr import CvxpyTVSolver, FastTVSolver

    device = torch.device(args.device)
    print(f"### LP solve time, one channel, median of {args.repeats} (K_L = 0.05, tol {args.tol})")
    print()
    print("| grid | solver | seconds | iterations | relative gap | feasibility viol. / L "
          "| objective vs cvxpy |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        for seed in range(args.instances):
            prob = _instance(size, seed)
            ref_obj = None
            if size <= args.cvxpy_max:
                t_ref, ref = _timed(lambda p=prob: CvxpyTVSolver().solve(p), 1)
                ref_obj = float(ref.certificate.objective)
                viol = float(ref.certificate.feasibility_violation / prob.bound)
                print(f"| {size}x{size} #{seed} | cvxpy CLARABEL (structured) | {t_ref:.3f} "
                      f"| - | - | {viol:.1e} | - |")
            solver = FastTVSolver(tol=args.tol, max_iter=args.max_iter)
            dev_prob = type(prob)(prob.c.to(device), prob.sigma2, prob.bound.to(device), prob.shape)
            solver.solve(dev_prob)  # warm-up (allocations, first scipy import)
            t_fast, sol = _timed(lambda p=dev_prob: solver.solve(p), args.repeats)
            cert = sol.certificate
            versus = "-"
            if ref_obj is not None:
                versus = f"{(float(cert.objective) - ref_obj) / ref_obj:+.1e}"
            print(f"| {size}x{size} #{seed} | fast (ADMM + polish, {device.type}) | {t_fast:.3f} "
                  f"| {cert.iterations} | {float(cert.relative_gap):.1e} "
                  f"| {float(cert.feasibility_violation / prob.bound):.1e} | {versus} |")
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
    print("| input | grid | method | seconds / image |")
    print("| --- | --- | --- | ---: |")
    kw = dict(target=pred, n_samples=500, perturbations_per_eval=100, seed=0)
    for name, cls in (("LEG", LEG), ("LEG-TV", LEGTV)):
        t, _ = _timed(lambda c=cls: c(clf).attribute(x, **kw), args.repeats)
        print(f"| 1x28x28 digits | 28x28 | {name} | {t / x.shape[0]:.3f} |")
    # 224x224 RGB input on the paper's 28x28 grid, with a small fixed-seed CNN
    torch.manual_seed(0)
    big = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(128, 10),
    ).eval()
    img = zoo.photograph("astronaut", size=224).unsqueeze(0)
    for name, cls in (("LEG", LEG), ("LEG-TV", LEGTV)):
        t, _ = _timed(
            lambda c=cls: c(big, output_transform="softmax").attribute(
                img, target=0, n_samples=500, perturbations_per_eval=100, seed=0,
                grid_size=(28, 28),
            ),
            args.repeats,
        )
        print(f"| 3x224x224 photograph | 28x28 | {name} | {t:.3f} |")
    print()


def part_sensitivity(args: argparse.Namespace) -> None:
    import torch
    from captum.attr import KernelShap, Lime, Occlusion, Saliency

    from captum_latent import LEG, LEGTV, zoo

    clf = zoo.digits_classifier(progress=False)
    ds = zoo.digits()
    x = ds.test.images[: args.images]
    pred = clf(x).argmax(dim=1)

    def logprob(inp: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(clf(inp), dim=1)

    blocks = (torch.arange(28)[:, None] // 2 * 14 + torch.arange(28)[None, :] // 2)
    mask = blocks.reshape(1, 1, 28, 28)
    n = args.evals
    methods: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
        "LEG-TV (K_L 0.05)": lambda xi, t: LEGTV(logprob).attribute(
            xi, target=t, n_samples=n, perturbations_per_eval=100, seed=0),
        "LEG-TV (K_L 0.01)": lambda xi, t: LEGTV(logprob).attribute(
            xi, target=t, n_samples=n, perturbations_per_eval=100, seed=0, k_l=0.01),
        "LEG-TV (14x14 grid, sigma2 0.01)": lambda xi, t: LEGTV(logprob).attribute(
            xi, target=t, n_samples=n, perturbations_per_eval=100, seed=0, sigma2=0.01,
            grid_size=(14, 14)),
        "LEG": lambda xi, t: LEG(logprob).attribute(
            xi, target=t, n_samples=n, perturbations_per_eval=100, seed=0),
        "Lime (2x2 blocks)": lambda xi, t: Lime(logprob).attribute(
            xi, target=t, n_samples=n, perturbations_per_eval=100, feature_mask=mask),
        "KernelShap (2x2 blocks)": lambda xi, t: KernelShap(logprob).attribute(
            xi, target=t, n_samples=n, perturbations_per_eval=100, feature_mask=mask),
        "Occlusion (4x4, stride 2)": lambda xi, t: Occlusion(logprob).attribute(
            xi, target=t, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2)),
        "Saliency": lambda xi, t: Saliency(logprob).attribute(
            xi.clone().requires_grad_(), target=t, abs=False),
    }
    fractions = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2]
    rankings = {
        "attribution": lambda a, xi: a,
        "attribution x input": lambda a, xi: a * xi.reshape(-1),
    }
    results: dict[str, dict[str, list[float]]] = {r: {} for r in rankings}
    seconds = {}
    torch.manual_seed(0)  # Lime / KernelShap draw from torch's global generator
    for name, fn in methods.items():
        curves: dict[str, list[list[float]]] = {r: [] for r in rankings}
        start = time.perf_counter()
        attrs = [fn(x[i : i + 1], int(pred[i])).detach().reshape(-1) for i in range(x.shape[0])]
        seconds[name] = (time.perf_counter() - start) / x.shape[0]
        for i, attr in enumerate(attrs):
            xi, t = x[i : i + 1], int(pred[i])
            for rname, rank in rankings.items():
                order = torch.argsort(rank(attr, xi), descending=True)
                row = []
                for frac in fractions:
                    k = int(round(frac * attr.numel()))
                    masked = xi.clone().reshape(-1)
                    masked[order[:k]] = 0.0
                    with torch.no_grad():
                        row.append(float(logprob(masked.reshape(xi.shape))[0, t]))
                curves[rname].append(row)
        for rname in rankings:
            rows = curves[rname]
            results[rname][name] = [statistics.mean(r[j] for r in rows)
                                    for j in range(len(fractions))]
    for rname in rankings:
        print(f"### Sensitivity (paper §5.2), pixels ranked by {rname}: mean target "
              f"log-probability after masking (setting to 0) the top-k% pixels "
              f"({x.shape[0]} zoo test digits, {n} model evaluations for the sampling methods)")
        print()
        print("| method | " + " | ".join(f"{int(f * 100)}%" for f in fractions)
              + " | s / image |")
        print("| --- | " + " | ".join("---:" for _ in fractions) + " | ---: |")
        for name, curve in results[rname].items():
            print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in curve)
                  + f" | {seconds[name]:.2f} |")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["solve", "e2e", "sensitivity", "all"], default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[14, 28, 56, 112, 224])
    parser.add_argument("--cvxpy-max", type=int, default=112,
                        help="largest grid also solved by cvxpy (224 takes ~20 s here)")
    parser.add_argument("--instances", type=int, default=1, help="instances per grid size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--max-iter", type=int, default=20000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--evals", type=int, default=500)
    args = parser.parse_args()
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    parts = ["solve", "e2e", "sensitivity"] if args.part == "all" else [args.part]
    for part in parts:
        {"solve": part_solve, "e2e": part_e2e, "sensitivity": part_sensitivity}[part](args)


if __name__ == "__main__":
    main()
