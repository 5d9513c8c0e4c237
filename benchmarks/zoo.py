"""Zoo quality gates and timings: first-use training time, cached load time, accuracies,
generator sample quality. Prints a Markdown table.

    python benchmarks/zoo.py            # trains into a fresh temporary cache (cold start)
    python benchmarks/zoo.py --warm     # uses the user cache
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warm", action="store_true", help="use the existing user cache")
    parser.add_argument("--samples", type=int, default=2000, help="generator samples to score")
    args = parser.parse_args()
    if not args.warm:
        os.environ["CAPTUM_LATENT_CACHE"] = tempfile.mkdtemp(prefix="zoo_bench_")
    import torch

    from captum_latent import zoo

    rows = []
    for name, load, data in (("digits classifier", zoo.digits_classifier, zoo.digits),
                             ("faces classifier", zoo.faces_classifier, zoo.faces),
                             ("digits DCGAN", zoo.digits_gan, None)):
        start = time.perf_counter()
        obj = load(progress=False)
        first = time.perf_counter() - start
        start = time.perf_counter()
        load(progress=False)
        cached = time.perf_counter() - start
        if data is not None:
            ds = data()
            quality = f"test accuracy {zoo.accuracy(obj, ds.test.images, ds.test.labels):.4f}"
        else:
            q = zoo.generator_quality(obj.generator, zoo.digits_classifier(progress=False),
                                      n_samples=args.samples, seed=1)
            quality = (f"mean max-prob {q['mean_max_probability']:.3f}, "
                       f"classes {q['class_histogram']}")
        rows.append((name, first, cached, quality))
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| model | first use (s) | cached load (s) | quality |")
    print("| --- | ---: | ---: | --- |")
    for name, first, cached, quality in rows:
        print(f"| {name} | {first:.1f} | {cached:.3f} | {quality} |")


if __name__ == "__main__":
    main()
