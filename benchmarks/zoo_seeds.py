"""Do the tests' claims hold for any model the zoo's configuration trains?

Every machine retrains the zoo from its configuration, and floating point makes the weights
differ in the last bits between CPUs and thread counts: a test that holds for one trained model
only is a test that fails elsewhere. This script retrains the whole zoo with other training
seeds (``CAPTUM_LATENT_ZOO_SEED``, which every zoo loader reads) and, for each seed:

1. runs the default test suite (``pytest -m "not slow"``, or ``--pytest-args``) against the
   models of that seed, in a subprocess, and reports passed / failed / skipped;
2. measures the LEG-TV sanity check (paper §5.1) on ``--images`` test digits: the ratio of the
   randomised model's ``L_max`` to the trained model's, and how many randomised maps are flat
   at the trained model's penalty for ``K_L`` 0.05 and 0.1 (see docs/benchmarks.md).

Usage::

    python benchmarks/zoo_seeds.py                      # seeds 1 2 3, the default suite
    python benchmarks/zoo_seeds.py --seeds 0 1 --skip-tests --images 40
    python benchmarks/zoo_seeds.py --pytest-args "tests/attr -x"

The models of all seeds share one cache (``--cache``, default a folder under the system's
temporary directory), so a second run retrains nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)")


def run_suite(seed: int, cache: Path, pytest_args: str) -> dict[str, Any]:
    """The test suite against the zoo trained with ``seed``: counts and failing test ids."""
    env = dict(os.environ, CAPTUM_LATENT_ZOO_SEED=str(seed), CAPTUM_LATENT_TEST_CACHE=str(cache))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *shlex.split(pytest_args)]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    # the counts line ("N passed, M skipped in S s"): the last line that has one (a "-q" in
    # pytest_args moves it above the skip summary)
    lines = proc.stdout.strip().splitlines()
    tail = next((line for line in reversed(lines)
                 if re.search(r"\d+ (passed|failed|errors?)\b", line)), lines[-1] if lines else "")
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n)
              for n, kind in _SUMMARY.findall(tail)}
    failed = sorted({line.split(" ")[1] for line in proc.stdout.splitlines()
                     if line.startswith(("FAILED ", "ERROR "))})
    return {"seed": seed, "returncode": proc.returncode, "seconds": seconds,
            "counts": counts, "failed": failed, "summary": tail}


def _randomise_top_layer(model: Any, seed: int) -> None:
    """Re-draw the logit layer from its initial distribution (Adebayo et al.)."""
    import torch

    layer = model.head.out
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(layer.weight.shape[1])
    with torch.no_grad():
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(layer.bias.shape, generator=gen) * 2 - 1) * bound)


def sanity_check(seed: int, n_images: int, n_samples: int,
                 output_transform: str = "none") -> dict[str, Any]:
    """LEG-TV's §5.1 check on the digits classifier trained with ``seed``."""
    import torch

    from captum_latent import LEGTV, zoo

    trained = zoo.digits_classifier(seed=seed, progress=False)
    randomised = zoo.digits_classifier(seed=seed, progress=False)
    _randomise_top_layer(randomised, seed=0)
    x = zoo.digits().test.images[:n_images]
    with torch.no_grad():
        pred = trained(x).argmax(dim=1)
    out: dict[str, Any] = {"seed": seed, "images": n_images, "n_samples": n_samples,
                           "output_transform": output_transform}
    trained_tv = LEGTV(trained, output_transform=output_transform)
    random_tv = LEGTV(randomised, output_transform=output_transform)
    # the paper's setting, at which docs/methods/leg_tv.md's sanity figures were measured
    paper = dict(sigma2=0.1, grid_size=(28, 28))
    path = trained_tv.attribute_path(x, target=pred, n_samples=n_samples, seed=0,
                                     k_l_grid=[1.0, 0.1, 0.05], **paper)
    l_max = path.bounds[0, :, 0]
    path_random = random_tv.attribute_path(x, target=pred, n_samples=n_samples, seed=0,
                                           k_l_grid=[1.0], **paper)
    ratio = path_random.bounds[0, :, 0] / l_max
    out["l_max_ratio_median"] = float(ratio.median())
    out["l_max_ratio_max"] = float(ratio.max())
    for k_l in (0.1, 0.05):
        # flat at the trained model's penalty L = k_l * L_max  <=>  L_max(random) <= L
        out[f"flat_at_k_l_{k_l}"] = float((ratio <= k_l).double().mean())
    # total size (largest deviation from the mean) of the randomised maps at the trained
    # model's K_L = 0.1 penalty, relative to the trained maps'
    maps = path.attributions[1]
    penalty = path.bounds[1, :, 0]
    random_maps = torch.cat([
        random_tv.attribute(x[i:i + 1], target=int(pred[i]), penalty="absolute",
                            l_value=float(penalty[i]), n_samples=n_samples, seed=0)
        for i in range(n_images)])

    def spread(m: torch.Tensor) -> torch.Tensor:
        return (m - m.mean(dim=(1, 2, 3), keepdim=True)).abs().amax(dim=(1, 2, 3))

    out["size_ratio_at_k_l_0.1"] = float(spread(random_maps).sum() / spread(maps).sum())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--pytest-args", default='-m "not slow"',
                        help='arguments for pytest (default: -m "not slow")')
    parser.add_argument("--skip-tests", action="store_true", help="only the sanity check")
    parser.add_argument("--images", type=int, default=30, help="test digits of the sanity check")
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--output-transform", default="none",
                        choices=["none", "softmax", "log_softmax"],
                        help="what LEG-TV explains in the sanity check (default: the logits)")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "captum_latent_zoo_seeds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    os.environ["CAPTUM_LATENT_CACHE"] = str(args.cache)
    import torch

    torch.set_num_threads(1)
    results: dict[str, list] = {"suite": [], "sanity": []}
    for seed in args.seeds:
        print(f"== zoo seed {seed}", flush=True)
        if not args.skip_tests:
            suite = run_suite(seed, args.cache, args.pytest_args)
            results["suite"].append(suite)
            print(f"   tests: {suite['summary']} ({suite['seconds']:.0f} s)", flush=True)
            for test in suite["failed"]:
                print(f"   FAILED {test}", flush=True)
        sanity = sanity_check(seed, args.images, args.n_samples, args.output_transform)
        results["sanity"].append(sanity)
        print(f"   sanity: {sanity}", flush=True)

    if results["suite"]:
        print("\n| zoo seed | passed | failed | skipped | seconds | failing tests |")
        print("| ---: | ---: | ---: | ---: | ---: | --- |")
        for r in results["suite"]:
            c = r["counts"]
            print(f"| {r['seed']} | {c.get('passed', 0)} | {c.get('failed', 0) + c.get('error', 0)}"
                  f" | {c.get('skipped', 0)} | {r['seconds']:.0f} | "
                  f"{', '.join(r['failed']) or '-'} |")
    print(f"\nLEG-TV sanity check, {args.images} test digits, n_samples={args.n_samples}, "
          f"output_transform={args.output_transform!r}:")
    print("| zoo seed | L_max ratio median | L_max ratio max | flat at K_L 0.1 | flat at K_L 0.05 "
          "| size ratio at K_L 0.1 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results["sanity"]:
        print(f"| {r['seed']} | {r['l_max_ratio_median']:.3f} | {r['l_max_ratio_max']:.3f} | "
              f"{r['flat_at_k_l_0.1']:.2f} | {r['flat_at_k_l_0.05']:.2f} | "
              f"{r['size_ratio_at_k_l_0.1']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["returncode"] == 0 for r in results["suite"]) else 1


if __name__ == "__main__":
    sys.exit(main())
