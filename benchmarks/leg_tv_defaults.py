"""Which LEG-TV grid and sigma2 are faithful, against Lime and KernelShap on every feature mask.

Deletion test of paper §5.2 on held-out zoo images (the *last* ``--images`` digits or faces of
the test split, never used to tune anything): each map ranks the pixels by attribution x input
(the ranking docs/methods/leg_tv.md recommends), the top 10% are set to 0, and the table gives
the mean target log-probability afterwards (lower: the map found pixels the model relies on).
LEG-TV runs over grids (the input's side, half and a quarter of it) and sigma2 values, at
``K_L`` 0.2, 0.05 (the default) and 0 (the empirical LEG), one set of ``n`` evaluations per
(grid, sigma2); Lime and KernelShap get the same ``n`` on each feature mask of
``benchmarks/leg_tv.py --part sensitivity``: 2x2 blocks, lime_image's quickshift and
quickshift with 50 segments.

Usage::

    python benchmarks/leg_tv_defaults.py --dataset digits --n-samples 500
    python benchmarks/leg_tv_defaults.py --dataset faces --n-samples 3000 --images 16
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from leg_tv import _block_mask, _ranked, _sensitivity_data, _superpixels  # noqa: E402


def _deletion(logprob: Any, x: torch.Tensor, pred: torch.Tensor, attr: torch.Tensor,
              fraction: float = 0.10) -> float:
    """Mean target log-probability after zeroing the top ``fraction`` of attribution x input."""
    size = x.shape[-1] * x.shape[-2]
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        tie_break = torch.randperm(size, generator=torch.Generator().manual_seed(i))
        order = _ranked(attr[i].reshape(-1) * xi.reshape(-1), tie_break)
        masked = xi.clone().reshape(-1)
        masked[order[: int(round(fraction * size))]] = 0.0
        with torch.no_grad():
            out.append(float(logprob(masked.reshape(xi.shape))[0, pred[i]]))
    return sum(out) / len(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["digits", "faces"], default="digits")
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--sigma2", type=float, nargs="*",
                        default=[0.001, 0.003, 0.01, 0.03, 0.1],
                        help="fixed sigma2 values tried on each grid (none: a bare --sigma2)")
    parser.add_argument("--grids", type=int, nargs="+", default=None,
                        help="grid sides (default: the input's side, half and a quarter of it)")
    parser.add_argument("--k-l", type=float, nargs="+", default=[0.2, 0.05, 0.0],
                        help="relative penalties of each LEG-TV path (table columns)")
    parser.add_argument("--no-peers", action="store_true", help="skip Lime and KernelShap")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import warnings

    from captum.attr import KernelShap, Lime

    from captum_latent import LEGTV
    from captum_latent.attr.grid import default_grid

    warnings.filterwarnings("ignore", message="You are providing multiple inputs")
    x_all, clf, what = _sensitivity_data(args.dataset, 40)
    x = x_all[-args.images :]
    size = x.shape[-1]
    with torch.no_grad():
        pred = clf(x).argmax(dim=1)

    def logprob(inp: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(clf(inp), dim=1)

    n = args.n_samples
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; the last {args.images} "
          f"{what} of the 40 the sensitivity benchmark reads, n = {n}")
    with torch.no_grad():
        base = float(logprob(x)[torch.arange(x.shape[0]), pred].mean())
    print(f"# unmasked mean target log-probability {base:.3f}")
    heads = [f"K_L {k:g}" if k > 0 else "LEG (K_L 0)" for k in sorted(args.k_l, reverse=True)]
    print("| method | grid | sigma2 | " + " | ".join(heads) + " | seconds |")
    print("| --- | --- | ---: | " + " | ".join("---:" for _ in heads) + " | ---: |")
    start = time.perf_counter()
    path = LEGTV(logprob).attribute_path(x, target=pred, n_samples=n, seed=0,
                                         k_l_grid=args.k_l)
    secs = time.perf_counter() - start
    cols = " | ".join(f"{_deletion(logprob, x, pred, a):.2f}" for a in path.attributions)
    chosen = default_grid((size, size), n)
    s2 = path.certificates[0].sigma2
    print(f"| **LEG-TV defaults** | {chosen[0]}x{chosen[1]} | {s2:.2g} (auto) | {cols} | "
          f"{secs:.1f} |", flush=True)
    grids = args.grids or sorted({size, (size + 1) // 2, (size + 3) // 4}, reverse=True)
    for grid in grids:
        for s2 in args.sigma2:
            start = time.perf_counter()
            path = LEGTV(logprob).attribute_path(
                x, target=pred, n_samples=n, sigma2=s2, seed=0, grid_size=(grid, grid),
                k_l_grid=args.k_l,
            )
            secs = time.perf_counter() - start
            cols = " | ".join(f"{_deletion(logprob, x, pred, a):.2f}" for a in path.attributions)
            print(f"| LEG-TV | {grid}x{grid} | {s2:g} | {cols} | {secs:.1f} |", flush=True)
    if args.no_peers:
        return
    segments = [_superpixels(x[i : i + 1]) for i in range(x.shape[0])]
    blocks = _block_mask(size, (size + 1) // 2)
    torch.manual_seed(0)  # Lime and KernelShap draw from torch's global generator
    for cls in (Lime, KernelShap):
        for mask_name in ("2x2 blocks", "quickshift", "quickshift 50"):
            start = time.perf_counter()
            attrs = []
            for i in range(x.shape[0]):
                mask = blocks if mask_name == "2x2 blocks" else segments[i][mask_name]
                attrs.append(cls(logprob).attribute(
                    x[i : i + 1], target=int(pred[i]), n_samples=n, perturbations_per_eval=100,
                    feature_mask=mask))
            secs = time.perf_counter() - start
            value = _deletion(logprob, x, pred, torch.cat(attrs))
            cells = [f"{value:.2f}" if k == 0.05 else "" for k in sorted(args.k_l, reverse=True)]
            print(f"| {cls.__name__} | {mask_name} | | " + " | ".join(cells) + f" | {secs:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
