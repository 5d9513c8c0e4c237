"""Data-set runs on Ray: speed-up of 2 workers over 1 (and over in-process) for LEG-TV.

    OMP_NUM_THREADS=1 python benchmarks/distributed.py                # 60 digits, 500 samples
    OMP_NUM_THREADS=1 python benchmarks/distributed.py --n 40 --n-samples 300

Explains ``--n`` zoo test digits with ``LEGTV(classifier, output_transform="softmax")``
(target: the true label) through ``explain_dataset`` (a thin wrapper also records each item's
CPU seconds; it is checked to give the LEG adapter's attributions) on three set-ups: in-process
(``backend="local"``), Ray with 1 worker, Ray with 2 workers; every process uses one torch
thread. Ray is started once (``ray.init(num_cpus=2)``) before timing. With ``--repeats R`` the
set-ups run round robin R times and the table shows the best (least disturbed) run. Printed: a
Markdown table of wall-clock seconds (actor start-up included), the actors' start-up (loading
the explainer), items/s, speed-ups, CPU seconds per item and the CPU share each worker got
(CPU seconds / (wall seconds after start-up x workers): about 1.0 on an idle machine); whether
every set-up gave bitwise identical attributions; and the 1-minute load average before-after
each run (timings are only as clean as the machine).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time

import numpy as np


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


class CPUTimed:
    """LEG-TV for one item, as explain_dataset's LEG adapter calls it, plus the CPU seconds of
    the calling thread (what the worker got of a core, whatever the load)."""

    def __init__(self, explainer) -> None:
        self.explainer = explainer

    def __call__(self, item, seed, target, n_samples):
        begin = time.thread_time()
        attribution = self.explainer.attribute(item[None], target=target, n_samples=n_samples,
                                               seed=seed)[0]
        return {"attribution": attribution, "cpu_seconds": time.thread_time() - begin}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="test digits to explain")
    parser.add_argument("--n-samples", type=int, default=500, help="LEG samples per digit")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds over the set-ups (the table shows the best)")
    parser.add_argument("--setups", nargs="+", default=["local", "ray-1", "ray-2"],
                        choices=["local", "ray-1", "ray-2"])
    args = parser.parse_args()

    import ray
    import torch

    from captum_latent import LEGTV, zoo
    from captum_latent.distributed import explain_dataset

    torch.set_num_threads(1)
    classifier = zoo.digits_classifier(progress=False)
    data = zoo.digits()
    images, labels = data.test.images[: args.n], data.test.labels[: args.n]
    legtv = LEGTV(classifier, output_transform="softmax")
    explainer = CPUTimed(legtv)
    kwargs = {"explain_kwargs": {"n_samples": args.n_samples},
              "per_item_kwargs": {"target": labels}, "seed": 0}
    # the wrapper computes exactly what explain_dataset(LEGTV(...)) computes: check on 3 items
    plain = explain_dataset(legtv, images[:3], **kwargs | {"per_item_kwargs": {
        "target": labels[:3]}}).stack("attribution")[1]
    wrapped = explain_dataset(explainer, images[:3], **kwargs | {"per_item_kwargs": {
        "target": labels[:3]}}).stack("attribution")[1]
    if not np.array_equal(plain, wrapped):
        raise RuntimeError("the timing wrapper changed the attributions")

    print(f"# {datetime.date.today()} {platform.node()} {platform.processor() or 'cpu'}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, ray {ray.__version__}")
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"# ray.init(num_cpus=2): {time.perf_counter() - start:.1f} s (not in the table)")
    print(f"# LEG-TV on {args.n} zoo test digits, n_samples={args.n_samples}, chunk_size=1")

    runs: dict[str, list[tuple]] = {name: [] for name in args.setups}
    results = {}
    for rep in range(args.repeats):  # round robin: a change of load hits every set-up
        for setup in args.setups:
            before = _load()
            with tempfile.TemporaryDirectory() as out:
                options: dict = {"backend": "local"}
                if setup.startswith("ray"):
                    options = {"backend": "ray", "num_workers": int(setup[-1]),
                               "resources_per_worker": {"num_cpus": 1}}
                begin = time.perf_counter()
                run = explain_dataset(explainer, images, out, chunk_size=1, **options, **kwargs)
                seconds = time.perf_counter() - begin
                if not run.complete or run.failed:
                    raise RuntimeError(f"{setup}: {len(run.failed)} failed, "
                                       f"{len(run.missing)} missing")
                results[setup] = run.stack("attribution")[1]  # read before out is deleted
                cpu = float(run.stack("cpu_seconds")[1].sum())
            runs[setup].append((seconds, run.stats.get("startup_seconds", 0.0), cpu, before,
                                _load()))
            print(f"# repeat {rep + 1} {setup}: {seconds:.1f} s, CPU {cpu:.1f} s (load "
                  f"{before} -> {_load()})", flush=True)
    ray.shutdown()

    best = {name: min(r[0] for r in rs) for name, rs in runs.items()}
    print()
    print("| set-up | workers | best s | median s | actor start-up s | items/s | items/s after "
          "start-up | speed-up vs Ray 1 worker | speed-up vs local | CPU s per item | CPU share "
          "per worker | load avg (1 min) during runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, rs in runs.items():
        seconds, startup, cpu = min(rs)[:3]
        workers = 1 if name == "local" else int(name[-1])
        vs_one = f"{best['ray-1'] / seconds:.2f}" if "ray-1" in best else "-"
        vs_local = f"{best['local'] / seconds:.2f}" if "local" in best else "-"
        share = cpu / ((seconds - startup) * workers)
        loads = ", ".join(f"{r[3].split('/')[0]}-{r[4].split('/')[0]}" for r in rs)
        print(f"| {name} | {workers} | {seconds:.1f} | {statistics.median(r[0] for r in rs):.1f} "
              f"| {startup:.1f} | {args.n / seconds:.2f} | {args.n / (seconds - startup):.2f} | "
              f"{vs_one} | {vs_local} | {cpu / args.n:.2f} | {share:.2f} | {loads} |")
    names = list(results)
    same = all(np.array_equal(results[names[0]], results[k]) for k in names[1:])
    print(f"\nattributions bitwise identical across set-ups: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
