"""DISC Table 1 on the zoo: validity, MSE, concentration and classifier discrepancy per method.

Data sets: zoo digits (one class pair, default 3 -> 8) and zoo faces (non-face -> face). The
classifier is the DEP-trained zoo model of each data set (the same classifier for every
method, so only the counterfactual generator changes). Queries are training images of the
source class that the classifier gets right (up to --n; the faces have 75); CD trains F on
[X0, X1] (real) and F^c on [X0, counterfactuals of X0] with --cd-repeats seeds, and compares
their accuracy on the test images of both classes (mean +- std over seeds). MSE and
concentration: mean +- std over queries. Prints Markdown tables and a JSON line per run.

    OMP_NUM_THREADS=1 python benchmarks/disc.py --datasets digits   # one data set
    OMP_NUM_THREADS=1 python benchmarks/disc.py --datasets digits --methods "LSO + INR" \
        "LSO + INR + DEP" "LSO + INR + DUQ"                           # DUQ: digits only
    OMP_NUM_THREADS=1 python benchmarks/disc.py --dep-target low    # the earlier s*
    python benchmarks/disc.py --device cuda --timing               # one-query timing too

--judge: does an independent classifier believe the counterfactuals? For each data set, 10 test
images per source -> target pair (``--pairs``; faces: non-face -> face and back), every method
(a pixel-space counterfactual as the baseline, DISC at its defaults and at its defaults before
issue #21, every Table 1 method and,
on digits, ``GeneratorPrior`` with the zoo GAN) is scored by the explained model's validity,
the judge's agreement with the target (``zoo.digits_judge`` / ``zoo.faces_judge``, a
fully connected network trained on the same split), the mean absolute change and the time:

    python benchmarks/disc.py --judge --datasets digits --pairs 1-7 4-9 5-6 2-3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time


def _queries(ds, model, source: int, n: int):
    import torch

    x = ds.train.images[ds.train.labels == source]
    with torch.no_grad():
        ok = model(x).argmax(1) == source
    return x[ok][:n]


def run_dataset(name: str, args: argparse.Namespace) -> list[dict]:
    import torch

    from captum_latent import zoo
    from captum_latent.counterfactual import (
        dep_digits_classifier,
        dep_faces_classifier,
        duq_digits_classifier,
    )
    from captum_latent.counterfactual.presets import TABLE1_METHODS, table1_generator
    from captum_latent.metrics import DiscrepancyTrainer, classifier_discrepancy, concentration, mse

    if name == "digits":
        ds, model = zoo.digits(), dep_digits_classifier(progress=False)
        source, target = args.pair
    else:
        ds, model = zoo.faces(), dep_faces_classifier(progress=False)
        source, target = 0, 1
    model = model.to(args.device)
    x0 = _queries(ds, model.cpu(), source, args.n)
    model = model.to(args.device)
    x1 = ds.train.images[ds.train.labels == target][: len(x0)]
    test_mask = (ds.test.labels == source) | (ds.test.labels == target)
    test_x = ds.test.images[test_mask]
    test_y = (ds.test.labels[test_mask] == target).long()
    trainer = DiscrepancyTrainer(seed=args.seed, device=args.device)
    rows = []
    methods = args.methods or TABLE1_METHODS
    for method in methods:
        duq = None
        if method.endswith("DUQ"):
            if name != "digits":
                print(f"skipping {method!r} on {name}: the zoo has a DUQ model for digits only")
                continue
            duq = duq_digits_classifier(progress=False).to(args.device)
        gen = table1_generator(method, model, steps=args.steps, device=args.device,
                               inr_variance=args.inr_variance, image_size=x0.shape[-1],
                               lambda_manifold=args.lambda_manifold,
                               dep_target=args.dep_target, duq_model=duq)
        cfs, valid, seconds = [], [], 0.0
        for start in range(0, len(x0), args.batch):
            res = gen.generate(x0[start:start + args.batch].to(args.device), target,
                               seed=args.seed + start)
            cfs.append(res.counterfactuals.cpu())
            valid.append(res.valid.cpu())
            seconds += res.seconds
        cf = torch.cat(cfs)
        m = mse(x0, cf)
        c = concentration(x0, cf)
        cd = classifier_discrepancy(x0, x1, cf, test_x, test_y, trainer, repeats=args.cd_repeats)
        row = {
            "dataset": name, "pair": f"{ds.classes[source]}->{ds.classes[target]}",
            "method": method, "n": len(x0), "validity": float(torch.cat(valid).float().mean()),
            "mse_mean": float(m.mean()), "mse_std": float(m.std()),
            "conc_mean": float(c.mean()), "conc_std": float(c.std()),
            "cd": cd.discrepancy, "cd_std": cd.std, "acc_F": cd.reference_accuracy,
            "acc_Fc": cd.counterfactual_accuracy, "seconds_per_query": seconds / len(x0),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def one_query_timing(args: argparse.Namespace) -> dict:
    import torch

    from captum_latent import zoo
    from captum_latent.counterfactual import dep_digits_classifier
    from captum_latent.counterfactual.presets import table1_generator

    ds = zoo.digits()
    model = dep_digits_classifier(progress=False).to(args.device)
    x = ds.test.images[ds.test.labels == args.pair[0]][:1].to(args.device)
    gen = table1_generator("LSO + INR + DEP", model, steps=args.steps, device=args.device,
                           inr_variance=args.inr_variance)
    gen.generate(x, args.pair[1], seed=0)  # warm-up (allocator, kernels)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    res = gen.generate(x, args.pair[1], seed=1)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"one_query_seconds": time.perf_counter() - start, "valid": bool(res.valid[0])}


def run_judge(name: str, args: argparse.Namespace) -> list[dict]:
    """Validity, judge agreement, mean change and time of every method on one data set."""
    import torch

    from captum_latent import zoo
    from captum_latent.counterfactual import (
        DISCGenerator,
        GeneratorPrior,
        INRPrior,
        dep_digits_classifier,
        dep_faces_classifier,
        pixel_counterfactuals,
    )
    from captum_latent.counterfactual.presets import TABLE1_METHODS, table1_generator
    from captum_latent.metrics import judge_verdicts, mean_absolute_change

    if name == "digits":
        ds, model = zoo.digits(), dep_digits_classifier(progress=False)
        judge = zoo.digits_judge(progress=False)
        pairs = [tuple(int(c) for c in p.split("-")) for p in args.pairs]
    else:
        ds, model = zoo.faces(), dep_faces_classifier(progress=False)
        judge = zoo.faces_judge(progress=False)
        pairs = [(0, 1), (1, 0)]
    queries, targets, pair_of = [], [], []
    for source, target in pairs:
        x = ds.test.images[ds.test.labels == source]
        with torch.no_grad():
            x = x[model(x).argmax(1) == source][: args.per_pair]
        queries.append(x)
        targets += [target] * len(x)
        pair_of += [f"{ds.classes[source]}->{ds.classes[target]}"] * len(x)
    x, t = torch.cat(queries), torch.tensor(targets)
    methods = args.methods or ["pixel", "DISC defaults", "DISC former defaults", *TABLE1_METHODS,
                               *(["GeneratorPrior"] if name == "digits" else [])]
    rows = []
    for method in methods:
        if method == "GeneratorPrior" and name != "digits":
            print(f"skipping GeneratorPrior on {name}: the zoo has a GAN for digits only")
            continue
        start = time.perf_counter()
        if method == "pixel":
            # L1 weight 0.1 per pixel of a 28x28 image (the run in docs/benchmarks.md)
            cf = pixel_counterfactuals(model, x, t, l1=0.1 * 784 / x[0].numel())
        else:
            if method == "DISC defaults":
                gen = DISCGenerator(model)
            elif method == "DISC former defaults":  # before issue #21: INR, lambda1 = 1, no DEP
                gen = DISCGenerator(model, prior=INRPrior(), manifold=None, lambda_semantic=1.0,
                                    target_probability=None)
            elif method == "GeneratorPrior":
                gan = zoo.digits_gan(progress=False)
                gen = DISCGenerator(model, prior=GeneratorPrior(
                    gan.generator, **json.loads(args.generator_prior)))
            else:
                gen = table1_generator(method, model, image_size=x.shape[-1])
            cf = torch.cat([gen.generate(x[i:i + args.batch], t[i:i + args.batch],
                                         seed=args.seed + i).counterfactuals
                            for i in range(0, len(x), args.batch)])
        seconds = time.perf_counter() - start
        with torch.no_grad():
            valid = model(cf).argmax(1) == t
        agree = judge_verdicts(judge, cf, t)
        change = mean_absolute_change(x, cf)
        per_pair = {p: float(agree[[q == p for q in pair_of]].float().mean())
                    for p in dict.fromkeys(pair_of)}
        row = {"dataset": name, "method": method, "n": len(x),
               "validity": float(valid.float().mean()), "judge": float(agree.float().mean()),
               "change": float(change.mean()), "seconds_per_query": seconds / len(x),
               "judge_per_pair": per_pair,
               "judge_test_accuracy": judge.zoo_metrics["test_accuracy"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "faces"],
                        choices=["digits", "faces"])
    parser.add_argument("--pair", nargs=2, type=int, default=[3, 8], metavar=("SRC", "TGT"),
                        help="digits class pair (source target)")
    parser.add_argument("--n", type=int, default=128,
                        help="queries per data set (at most the correctly classified "
                             "training images of the source class: 137 threes, 75 non-faces)")
    parser.add_argument("--batch", type=int, default=32, help="queries optimised together")
    parser.add_argument("--steps", type=int, default=150, help="optimisation steps per query")
    parser.add_argument("--methods", nargs="+", default=None,
                        help="subset of Table 1 names, or 'LSO + INR + DUQ' / 'LSO + DIP + DUQ'")
    parser.add_argument("--dep-target", default="class", choices=["class", "low"],
                        help="s* of the DEP term: the target class's median training score "
                             "(default) or the 10%% quantile over all classes (earlier default)")
    parser.add_argument("--inr-variance", type=float, default=None,
                        help="INR frequency variance (default: 100 * (side / 96)^2)")
    parser.add_argument("--lambda-manifold", type=float, default=1.0,
                        help="weight lambda2 of the DEP term")
    parser.add_argument("--cd-repeats", type=int, default=10,
                        help="training seeds averaged in the classifier discrepancy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generator-prior", default="{}", metavar="JSON",
                        help="keyword arguments of GeneratorPrior for --judge, e.g. "
                        "'{\"keep_threshold\": 0.28, \"min_probability\": null}' (the defaults "
                        "before 2026-12-07)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timing", action="store_true", help="also time one 28x28 query")
    parser.add_argument("--judge", action="store_true",
                        help="judge agreement table instead of Table 1 (see above)")
    parser.add_argument("--pairs", nargs="+", default=["1-7", "4-9", "5-6", "2-3"],
                        help="digits source-target pairs of --judge")
    parser.add_argument("--per-pair", type=int, default=10, help="queries per pair (--judge)")
    args = parser.parse_args()
    import torch

    start = time.perf_counter()
    if args.judge:
        rows = [r for name in args.datasets for r in run_judge(name, args)]
        device = (f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, "
                  f"{torch.get_num_threads()} threads")
        print(f"\n{datetime.date.today()} on {device}, torch {torch.__version__}, "
              f"seed={args.seed}, pairs={args.pairs}, {args.per_pair} test images per pair, "
              f"GeneratorPrior keyword arguments {args.generator_prior}")
        print("\n| data | method | n | validity (explained model) | judge agrees | "
              "mean abs change | s/query |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['dataset']} | {r['method']} | {r['n']} | {r['validity']:.2f} | "
                  f"{r['judge']:.2f} | {r['change']:.3f} | {r['seconds_per_query']:.2f} |")
        print(f"\ntotal {time.perf_counter() - start:.0f} s")
        return
    rows = []
    for name in args.datasets:
        rows.extend(run_dataset(name, args))
    device = (torch.cuda.get_device_name(0) if args.device.startswith("cuda")
              else f"{platform.processor() or platform.machine()} CPU, "
                   f"{os.cpu_count()} cores, {torch.get_num_threads()} threads")
    print(f"\n{datetime.date.today()} on {device}, torch {torch.__version__}, "
          f"steps={args.steps}, seed={args.seed}, inr_variance={args.inr_variance}, "
          f"cd_repeats={args.cd_repeats}, lambda_manifold={args.lambda_manifold}, "
          f"dep_target={args.dep_target}")
    print("\n| data | method | n | validity | MSE | concentration | CD ± std over seeds "
          "(Acc F - Acc F^c) | s/query |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} {r['pair']} | {r['method']} | {r['n']} | {r['validity']:.3f} "
              f"| {r['mse_mean']:.4f} ± {r['mse_std']:.4f} "
              f"| {r['conc_mean']:.3f} ± {r['conc_std']:.3f} "
              f"| {r['cd']:.3f} ± {r['cd_std']:.3f} ({r['acc_F']:.3f} - {r['acc_Fc']:.3f}) "
              f"| {r['seconds_per_query']:.2f} |")
    if args.timing:
        print("\n" + json.dumps(one_query_timing(args)))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
