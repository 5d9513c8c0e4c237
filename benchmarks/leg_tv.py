"""LEG / LEG-TV benchmarks: LP solve time by grid size and solver, end-to-end attribution time,
and the paper's sensitivity analysis (§5.2) on the zoo digits. Prints Markdown tables.

    python benchmarks/leg_tv.py --part iteration --sizes 14 28 56 224
    python benchmarks/leg_tv.py --part solve --sizes 14 28 56 112 224 --cvxpy-max 112
    python benchmarks/leg_tv.py --part e2e
    python benchmarks/leg_tv.py --part sensitivity --images 20 --evals 500 3000

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

    b, *_ = LEGTV(logprob)._collect_moments(
        x, pred, None, 500, 0.1, 100, False, (size, size), "auto", None, 0, None
    )
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

    from captum_latent.attr._admm import _PaddedGrid
    from captum_latent.attr._grid import _diff, _diff_adjoint, _GridLaplacian

    prob = _instance(size, 0)
    shape, s2 = prob.shape, prob.sigma2
    k = (prob.c / s2).to(device)
    r = (prob.bound / s2).to(device).unsqueeze(1)
    lo, hi = k - r, k + r
    rho = 32.0 / k.abs().amax(dim=1, keepdim=True)
    lap = _GridLaplacian(shape, k.dtype, device)
    state = {"w": torch.clamp(torch.zeros_like(k), lo, hi), "u": torch.zeros_like(k)}

    def textbook(n: int) -> None:
        w, u = state["w"], state["u"]
        for _ in range(n):
            v = _diff(lap.solve(_diff_adjoint(w - u, shape)))
            vh = 1.6 * v + (1 - 1.6) * w
            q = vh + u
            w = torch.clamp(torch.sign(q) * (q.abs() - 1.0 / rho).clamp_min(0.0), lo, hi)
            u = u + vh - w
        state["w"], state["u"] = w, u

    grid = _PaddedGrid(shape, 1, k.dtype, device)
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
    the solver's in-place padded loop (``captum_latent.attr._admm``), same arithmetic."""
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


def _sensitivity_methods(
    logprob: Callable[[Any], Any], n: int, k_l_grid: list[float]
) -> dict[str, Callable[[Any, int], dict[str, Any]]]:
    """Each entry maps ``(x, target)`` to one or more named ``(1, 1, 28, 28)`` attributions
    (a LEG-TV path over ``k_l_grid`` costs one set of ``n`` model evaluations; its
    ``K_L = 0`` end is the empirical LEG exactly, paper Lemma 3)."""
    import torch
    from captum.attr import KernelShap, Lime, Occlusion, Saliency

    from captum_latent import LEGTV

    blocks = (torch.arange(28)[:, None] // 2 * 14 + torch.arange(28)[None, :] // 2)
    mask = blocks.reshape(1, 1, 28, 28)

    def legtv_path(grid: int, sigma2: float) -> Callable[[Any, int], dict[str, Any]]:
        def run(x: Any, t: int) -> dict[str, Any]:
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

    return {
        "LEG-TV 28 0.1": legtv_path(28, 0.1),
        "LEG-TV 28 0.01": legtv_path(28, 0.01),
        "LEG-TV 14 0.01": legtv_path(14, 0.01),
        "Lime 2x2": lambda x, t: {"Lime (2x2 blocks)": Lime(logprob).attribute(
            x, target=t, n_samples=n, perturbations_per_eval=100, feature_mask=mask)},
        "Lime pixels": lambda x, t: {"Lime (pixels)": Lime(logprob).attribute(
            x, target=t, n_samples=n, perturbations_per_eval=100)},
        "KernelShap 2x2": lambda x, t: {"KernelShap (2x2 blocks)": KernelShap(logprob).attribute(
            x, target=t, n_samples=n, perturbations_per_eval=100, feature_mask=mask)},
        "Occlusion": lambda x, t: {"Occlusion (4x4, stride 2; 170 evals)": Occlusion(
            logprob).attribute(x, target=t, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2))},
        "Saliency": lambda x, t: {"Saliency (gradient)": Saliency(logprob).attribute(
            x.clone().requires_grad_(), target=t, abs=False)},
    }


def part_sensitivity(args: argparse.Namespace) -> None:
    """Paper §5.2 on the zoo digits: mask (set to 0) the top-k% pixels of each map and record
    the target log-probability; lower is better. Three rankings: the signed attribution (as
    Lime's coefficients are read), its absolute value (the paper's saliency: sum over channels
    of |gamma|) and attribution x input (the first-order effect of setting a pixel to 0)."""
    import torch

    from captum_latent import zoo

    clf = zoo.digits_classifier(progress=False)
    ds = zoo.digits()
    x = ds.test.images[: args.images]
    pred = clf(x).argmax(dim=1)

    def logprob(inp: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(clf(inp), dim=1)

    fractions = [0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2]
    rankings = {
        "attribution": lambda a, xi: a,
        "|attribution|": lambda a, xi: a.abs(),
        "attribution x input": lambda a, xi: a * xi.reshape(-1),
    }
    for n in args.evals:
        methods = _sensitivity_methods(logprob, n, [0.2, 0.05, 0.01, 0.0])
        torch.manual_seed(0)  # Lime / KernelShap draw from torch's global generator
        curves: dict[str, dict[str, list[list[float]]]] = {r: {} for r in rankings}
        cpu: dict[str, float] = {}
        for group, fn in methods.items():
            start = time.process_time()
            per_image = [fn(x[i : i + 1], int(pred[i])) for i in range(x.shape[0])]
            cpu[group] = (time.process_time() - start) / x.shape[0]
            for i, maps in enumerate(per_image):
                xi, t = x[i : i + 1], int(pred[i])
                for name, attr in maps.items():
                    attr = attr.detach().reshape(-1)
                    for rname, rank in rankings.items():
                        order = torch.argsort(rank(attr, xi), descending=True)
                        row = []
                        for frac in fractions:
                            k = int(round(frac * attr.numel()))
                            masked = xi.clone().reshape(-1)
                            masked[order[:k]] = 0.0
                            with torch.no_grad():
                                row.append(float(logprob(masked.reshape(xi.shape))[0, t]))
                        curves[rname].setdefault(f"{name}|{group}", []).append(row)
        print(f"#### Sensitivity with {n} model evaluations per map ({x.shape[0]} zoo test digits)")
        print()
        print("Mean target log-probability after setting the top-k% pixels to 0 (lower: the "
              "map found pixels the model relies on); `wins vs Lime` = images (of "
              f"{x.shape[0]}) where the method's 10% value is below the better Lime's; CPU "
              "seconds per map (process time; LEG-TV rows share one set of evaluations).")
        print()
        for rname in rankings:
            lime = [curves[rname][key] for key in curves[rname] if key.startswith("Lime")]
            best_lime = min(lime, key=lambda rows: statistics.mean(r[4] for r in rows))
            print(f"Ranked by {rname}:")
            print()
            print("| method | " + " | ".join(f"{100 * f:g}%" for f in fractions)
                  + " | wins vs Lime at 10% | CPU s / map |")
            print("| --- | " + " | ".join("---:" for _ in fractions) + " | ---: | ---: |")
            for key, rows in curves[rname].items():
                name, group = key.split("|")
                means = [statistics.mean(r[j] for r in rows) for j in range(len(fractions))]
                wins = sum(r[4] < q[4] for r, q in zip(rows, best_lime))
                print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in means)
                      + f" | {wins} | {cpu[group]:.2f} |")
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
    args = parser.parse_args()
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    parts = ["iteration", "solve", "e2e", "sensitivity"] if args.part == "all" else [args.part]
    for part in parts:
        {"iteration": part_iteration, "solve": part_solve, "e2e": part_e2e,
         "sensitivity": part_sensitivity}[part](args)


if __name__ == "__main__":
    main()
