"""GANchors on the zoo digits: the paper's Tables 1 and 2, and the sweep that picks ``xi``.

    python benchmarks/anchors.py --xi-sweep            # in-painting cost and realism per xi
    python benchmarks/anchors.py --digits 20           # Tables 1-2: two test digits per class
    python benchmarks/anchors.py --samplers stitching gan --thresholds 0.95 0.97 0.99
                                                        # matched precision (GAN thresholds)
    python benchmarks/anchors.py --compare a.json b.json  # rows + paired table of --json runs
    python benchmarks/anchors.py --indices 5 17 42 77 --samplers stitching gan --p-samples 0.5 1.0
                                                        # issue #17: cost, precision both ways
    python benchmarks/anchors.py --dataset 100 --backends local ray   # explain_dataset timing

Table rows (per sampler): median seconds per explanation, precision, anchor size (segments),
predictor calls and images. Samplers: Alibi default (mean superpixel), Alibi with background
images, GAN batch (batch-norm "eval"), GAN batch + batch-norm mode "batch", diverse encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch


def _predictor(classifier, device: torch.device | str = "cpu"):
    """Alibi predictor: channel-last numpy in, class probabilities (numpy, on the CPU) out."""
    device = torch.device(device)

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            batch = torch.as_tensor(x, device=device).permute(0, 3, 1, 2)
            return torch.softmax(classifier(batch), 1).cpu().numpy()
    return predict


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work before a timer is read (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def xi_sweep(n_images: int, n_masks: int, xis: list[float],
             device: torch.device | str = "cpu") -> None:
    from alibi_ext import GANInpainter, quickshift_n_segments
    from captum_latent import zoo

    device = torch.device(device)
    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    generator, clf = gan.generator.to(device), clf.to(device)
    ds = zoo.digits()
    rng = np.random.default_rng(0)
    print(f"xi sweep: {n_images} test digits x {n_masks} masks (each superpixel of 15 kept "
          "with p=0.5)")
    print("| xi | converged | median iterations | seconds | in-painting keeps label | "
          "mean max-prob |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for xi in xis:
        inpainter = GANInpainter(generator, xi=xi, device=device)
        conv, its, keep, conf, secs = [], [], [], [], 0.0
        for i in range(n_images):
            x = ds.test.images[i]
            seg = torch.as_tensor(quickshift_n_segments(x[0].numpy(), 15))
            rows = torch.as_tensor(rng.random((n_masks, 15)) >= 0.5)
            masks = rows[:, seg].unsqueeze(1)
            _synchronize(device)
            start = time.perf_counter()
            out = inpainter.inpaint(x, masks, seed=i)
            _synchronize(device)
            secs += time.perf_counter() - start
            with torch.no_grad():
                probs = torch.softmax(clf(out.images), 1).cpu()
                label = int(clf(x[None].to(device)).argmax())
            ok = out.converged.cpu()
            conv.append(float(ok.float().mean()))
            its.extend(out.iterations.cpu()[ok].tolist())
            keep.append(float((probs[ok].argmax(1) == label).float().mean()) if ok.any() else 0)
            conf.append(float(probs[ok].max(1).values.mean()) if ok.any() else 0)
        print(f"| {xi} | {np.mean(conv):.3f} | {statistics.median(its) if its else 'n/a'} | "
              f"{secs / n_images:.2f} | {np.mean(keep):.3f} | {np.mean(conf):.3f} |")


def batchnorm_study(n_masks: int, seed: int = 1, device: torch.device | str = "cpu") -> None:
    """In-paint one digit under ``n_masks`` random masks (and under one shared mask) with the
    generator's batch norm in "eval" and in "batch" mode: time, convergence, iterations."""
    from alibi_ext import GANInpainter, QuickshiftSegmentation
    from captum_latent import zoo

    device = torch.device(device)
    gan, ds = zoo.digits_gan(progress=False), zoo.digits()
    generator = gan.generator.to(device)
    x = ds.test.images[5]
    seg = torch.as_tensor(QuickshiftSegmentation(15)(x.permute(1, 2, 0).numpy()))
    rows = torch.as_tensor(np.random.default_rng(seed).random((n_masks, 15)) >= 0.5)
    masks = rows[:, seg].unsqueeze(1)
    print(f"one zoo test digit, {n_masks} masks, xi = 0.01, at most 400 steps per code, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("| batch norm | masks | seconds | converged | median iterations | mean iterations |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for mode in ("eval", "batch"):
        inpainter = GANInpainter(generator, xi=0.01, batchnorm=mode, device=device)
        for label, m in (("distinct", masks), ("one shared", masks[:1].expand_as(masks))):
            _synchronize(device)
            start = time.perf_counter()
            out = inpainter.inpaint(x, m, seed=0)
            _synchronize(device)
            secs = time.perf_counter() - start
            it = out.iterations.float().cpu()
            print(f"| {mode} | {label} | {secs:.1f} | {out.converged.float().mean():.3f} | "
                  f"{it.median():.0f} | {it.mean():.1f} |", flush=True)


def _fresh_precision(predict, image, explanation, generator, n: int, seed: int,
                     device: torch.device | str = "cpu", p_sample: float = 0.5) -> float:
    """Precision of an explanation's anchor re-estimated on ``n`` new GAN in-paintings made the
    paper's way (searches from ``N(0, I)``, no bank), each superpixel outside the anchor
    in-painted with probability ``p_sample`` (1.0: nothing but the anchor kept)."""
    from alibi_ext import GANInpaintingSampler

    segments = explanation.segments
    sampler = GANInpaintingSampler(lambda x: predict(x).argmax(1), lambda _: segments, True,
                                   image, generator, seed=10_000 + seed, pool_size=n,
                                   device=device, p_sample=p_sample)
    anchor = tuple(int(f) for f in explanation.raw["feature"])
    _, _, labels, _, _, _ = sampler((0, anchor), n)
    return float(labels.mean())


_ROWS = {  # --samplers key -> (table name, GANAnchorImage keywords); "alibi" rows use Alibi's
    "alibi": ("Alibi default (mean superpixel)", dict(sampler="alibi")),
    "stitching": ("Alibi + background images", dict(sampler="alibi")),
    "gan": ("GAN in-painting (defaults)", dict(sampler="gan")),
    "gan-paper": ("GAN batch, N(0, I) starts (paper)", dict(sampler="gan", bank_size=None)),
    "gan-k64": ("GAN in-painting, 64 bank neighbours", dict(sampler="gan", bank_neighbours=64)),
    "gan-k512": ("GAN in-painting, 512 bank neighbours", dict(sampler="gan",
                                                              bank_neighbours=512)),
    "gan-bn-batch": ("GAN batch + BN batch mode", dict(sampler="gan", batchnorm="batch",
                                                       bank_size=None)),
    "gan-xi004": ("GAN in-painting, xi 0.04", dict(sampler="gan", xi=0.04)),
    "encoder": ("Diverse encoder (defaults)", dict(sampler="diverse_encoder")),
    "encoder-former": ("Diverse encoder, noise 0.1, xi 0.01 (former defaults)",
                       dict(sampler="diverse_encoder", encoder_noise_std=0.1, xi=0.01)),
    # the diverse encoder with more noise on its codes (``encoder_noise_std``), at xi 0.01
    **{f"encoder-n{str(noise).replace('.', '')}": (
        f"Diverse encoder, noise {noise}, xi 0.01",
        dict(sampler="diverse_encoder", encoder_noise_std=noise, xi=0.01))
       for noise in (0.2, 0.3, 0.4, 0.5, 0.7, 1.0)},
    # ... and with a looser masked error (``xi``), e.g. encoder-n04-xi005
    **{f"encoder-n{str(noise).replace('.', '')}-xi{str(xi).replace('.', '')}": (
        f"Diverse encoder, noise {noise}, xi {xi}",
        dict(sampler="diverse_encoder", encoder_noise_std=noise, xi=xi))
       for noise in (0.3, 0.4, 0.5, 0.7, 1.0) for xi in (0.02, 0.03, 0.04, 0.05)},
}


def _digit_indices(ds, n_digits: int, digit_offset: int) -> list[int]:
    per_class = max(1, n_digits // 10)
    return [int(i) for k in range(10)
            for i in torch.nonzero(ds.test.labels == k).flatten()[digit_offset:][:per_class]]


def tables(n_digits: int, thresholds: list[float], baseline_thresholds: list[float],
           encoder_steps: int, n_fresh: int = 200, only: list[str] | None = None,
           device: torch.device | str = "cpu", json_path: str | None = None,
           digit_offset: int = 0, indices: list[int] | None = None,
           p_samples: list[float | None] | None = None,
           encoder_file: str | None = None) -> list[dict]:
    """Tables 1-2 rows: each sampler at each of its thresholds (``thresholds`` for the GAN
    samplers, ``baseline_thresholds`` for Alibi's) and each ``p_samples`` value (``None``: the
    explainer's default), on the same test digits. Returns one record per (sampler, threshold,
    p_sample) with the per-digit results."""
    from alibi_ext import GANAnchorImage
    from captum_latent import zoo

    device = torch.device(device)
    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    generator, clf = gan.generator.to(device), clf.to(device)
    ds = zoo.digits()
    predict = _predictor(clf, device)
    idx = indices if indices else _digit_indices(ds, n_digits, digit_offset)
    background = ds.train.images[:200].permute(0, 2, 3, 1).numpy()
    from captum_latent.generative.diverse_encoder import (
        DiverseEncoderConfig,
        train_diverse_encoder,
    )

    keys = [k for k in _ROWS if only is None or k in only]
    encoder = None
    if any(k.startswith("encoder") for k in keys):
        start = time.perf_counter()
        if encoder_file and os.path.exists(encoder_file):
            encoder = torch.load(encoder_file, weights_only=False).to(device)
            print(f"diverse encoder loaded from {encoder_file}")
        else:
            encoder = train_diverse_encoder(generator, ds.train.images,
                                            config=DiverseEncoderConfig(steps=encoder_steps),
                                            seed=0, device=device)
            encoder = getattr(encoder, "encoder", encoder)
            _synchronize(device)
            print(f"diverse encoder trained in {time.perf_counter() - start:.1f} s")
            if encoder_file:
                torch.save(encoder, encoder_file)
    where = (f"test digits {idx}" if indices else
             f"{len(idx)} test digits (after the first {digit_offset} of each class)")
    print(f"{where}, 15 quickshift segments, 200 training digits as stitching background, "
          f"fresh GAN samples: {n_fresh} (N(0, I) starts, no bank); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(_HEADER)
    records = []
    for key in keys:
        name, kwargs = _ROWS[key]
        kwargs = dict(kwargs)
        if key == "stitching":
            kwargs["images_background"] = background
        if key.startswith("encoder"):
            kwargs["encoder"] = encoder
        if kwargs["sampler"] != "alibi":
            kwargs["device"] = device
        for threshold in (baseline_thresholds if kwargs["sampler"] == "alibi" else thresholds):
            for p_sample in (p_samples or [None]):
                # a new explainer per row: digit j gets the same seed in every row
                explainer = GANAnchorImage(predict, (28, 28, 1), generator, seed=0, **kwargs)
                extra = {} if p_sample is None else {"p_sample": p_sample}
                digits = []
                first = None
                for i in idx:
                    image = ds.test.images[i].permute(1, 2, 0).numpy()
                    _synchronize(device)
                    start = time.perf_counter()
                    e = explainer.explain(image, threshold=threshold, **extra)
                    _synchronize(device)
                    secs = time.perf_counter() - start
                    first = secs if first is None else first
                    stats = e.data["sampler_stats"]
                    digits.append(dict(
                        index=i, label=int(ds.test.labels[i]), seconds=secs,
                        anchor=sorted(int(f) for f in e.raw["feature"]),
                        size=len(e.raw["feature"]),
                        precision=float(np.asarray(e.precision).mean()),
                        fresh_precision=_fresh_precision(predict, image, e, generator, n_fresh,
                                                         seed=i, device=device, p_sample=0.5),
                        anchor_only_precision=_fresh_precision(
                            predict, image, e, generator, n_fresh, seed=i, device=device,
                            p_sample=1.0),
                        predictor_calls=stats["predictor_calls"],
                        predictor_images=stats["predictor_images"],
                        inpaintings=stats.get("generated", 0),
                        steps=stats.get("steps", 0),
                        over_threshold=stats.get("over_threshold", 0),
                    ))
                record = dict(key=key, name=name, threshold=threshold, device=str(device),
                              p_sample=p_sample if p_sample is not None
                              else e.meta["params"].get("p_sample"), first_seconds=first,
                              digits=digits)
                records.append(record)
                print(_row(record), flush=True)
                if json_path:  # after every row, so a stopped run keeps what it measured
                    with open(json_path, "w") as f:
                        json.dump(records, f, indent=1)
    paired_table(records)
    return records


_HEADER = (
    "| sampler | threshold | p_sample | s / explanation (median) | first explanation (s) | "
    "precision (its own samples) | fresh GAN precision (p_sample 0.5) | "
    "anchor-only GAN precision (p_sample 1.0) | anchor size | predictor images | "
    "in-paintings | search steps |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")


def _row(record: dict) -> str:
    d = record["digits"]

    def mean(field: str) -> float:
        return float(np.mean([r.get(field, np.nan) for r in d]))

    return (f"| {record['name']} | {record['threshold']} | {record.get('p_sample')} | "
            f"{np.median([r['seconds'] for r in d]):.2f} | "
            f"{record.get('first_seconds', float('nan')):.2f} | {mean('precision'):.3f} | "
            f"{mean('fresh_precision'):.3f} | {mean('anchor_only_precision'):.3f} | "
            f"{mean('size'):.2f} | {mean('predictor_images'):.0f} | "
            f"{mean('inpaintings'):.0f} | {mean('steps'):.0f} |")


def paired_table(records: list[dict], reference: str = "stitching") -> None:
    """Each row against the reference sampler (random stitching, at each of its thresholds and
    p_sample values) on the same digits: how many digits have a smaller anchor, at equal or
    higher fresh GAN precision (p_sample 0.5) and anchor-only GAN precision (p_sample 1.0);
    the mean paired differences with a 95% t-interval; the median time ratio."""
    from scipy import stats

    refs = [r for r in records if r["key"] == reference]
    others = [r for r in records if r["key"] != reference]
    if not refs or not others:
        return
    print(f"\nPaired, digit by digit, against {refs[0]['name']} (differences: row minus "
          "reference)")
    print("| sampler | threshold | p_sample | reference threshold | reference p_sample | digits | "
          "smaller anchor | fresh precision >= | both | anchor-only precision >= | "
          "size difference | fresh precision difference | anchor-only precision difference | "
          "median time ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
          "---: | ---: |")
    for ref in refs:
        by_index = {r["index"]: r for r in ref["digits"]}
        for rec in others:
            pairs = [(r, by_index[r["index"]]) for r in rec["digits"] if r["index"] in by_index]
            if not pairs:
                continue
            smaller = [a["size"] < b["size"] for a, b in pairs]
            as_precise = [a["fresh_precision"] >= b["fresh_precision"] for a, b in pairs]
            only = [a.get("anchor_only_precision", np.nan) >= b.get("anchor_only_precision",
                                                                     np.nan) for a, b in pairs]
            both = sum(s and p for s, p in zip(smaller, as_precise))

            def interval(values: list[float]) -> str:
                values = np.asarray(values, dtype=float)
                half = (stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1)
                        / np.sqrt(len(values))) if len(values) > 1 else float("nan")
                return f"{values.mean():+.3f} ± {half:.3f}"

            def diff(field: str, pairs: list = pairs) -> str:
                return interval([a.get(field, np.nan) - b.get(field, np.nan) for a, b in pairs])

            print(f"| {rec['name']} | {rec['threshold']} | {rec.get('p_sample')} | "
                  f"{ref['threshold']} | {ref.get('p_sample')} | {len(pairs)} | "
                  f"{sum(smaller)} | {sum(as_precise)} | {both} | {sum(only)} | "
                  f"{diff('size')} | {diff('fresh_precision')} | "
                  f"{diff('anchor_only_precision')} | "
                  f"{np.median([a['seconds'] / b['seconds'] for a, b in pairs]):.2f} |")


def dataset_run(n_items: int, backends: list[str], device: torch.device | str = "cpu",
                only: list[str] | None = None) -> None:
    """``explain_dataset`` over the first ``n_items`` zoo test digits with random stitching and
    with ``GANAnchorImage`` at its defaults (one explainer: the GAN's bank of generator samples
    is made once per process and shared by every item)."""
    from alibi_ext import GANAnchorImage
    from captum_latent import zoo
    from captum_latent.distributed import explain_dataset

    device = torch.device(device)
    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    generator, clf = gan.generator.to(device), clf.to(device)
    ds = zoo.digits()
    predict = _predictor(clf, device)
    images = ds.test.images[:n_items].permute(0, 2, 3, 1).numpy()
    background = ds.train.images[:200].permute(0, 2, 3, 1).numpy()
    print(f"explain_dataset over {n_items} zoo test digits, threshold 0.95; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("| explainer | backend | seconds | s / digit | mean anchor size | mean precision |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    rows = {"stitching": ("Alibi + background images", dict(sampler="alibi",
                                                             images_background=background)),
            "gan": ("GANAnchorImage defaults", dict(sampler="gan", device=device))}
    for key, (name, kwargs) in rows.items():
        if only is not None and key not in only:
            continue
        for backend in backends:
            explainer = GANAnchorImage(predict, (28, 28, 1), generator, seed=0, **kwargs)
            extra = {"num_workers": 2} if backend == "ray" else {}
            start = time.perf_counter()
            result = explain_dataset(explainer, images, backend=backend,
                                     explain_kwargs={"threshold": 0.95}, **extra)
            secs = time.perf_counter() - start
            done = [r for r in result.results if r is not None]
            sizes = [len(r["feature"]) for r in done]
            precision = [float(r["precision"]) for r in done]
            print(f"| {name} | {backend} | {secs:.1f} | {secs / n_items:.2f} | "
                  f"{np.mean(sizes):.2f} | {np.mean(precision):.3f} |", flush=True)


def compare(paths: list[str]) -> None:
    """Print the rows and paired table of runs saved with ``--json``."""
    records = []
    for path in paths:
        with open(path) as f:
            records.extend(json.load(f))
    print(_HEADER)
    for record in records:
        print(_row(record))
    paired_table(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xi-sweep", action="store_true")
    parser.add_argument("--batchnorm-study", action="store_true",
                        help="eval vs batch batch-norm mode on one digit's in-paintings")
    parser.add_argument("--xis", default="0.0025,0.005,0.01,0.02,0.04")
    parser.add_argument("--images", type=int, default=10, help="digits in the xi sweep")
    parser.add_argument("--masks", type=int, default=64, help="masks per digit in the sweep")
    parser.add_argument("--digits", type=int, default=20, help="digits in Tables 1-2")
    parser.add_argument("--digit-offset", type=int, default=0,
                        help="skip this many test digits of each class (held-out digits)")
    parser.add_argument("--threshold", type=float, default=0.95,
                        help="threshold of every row unless --thresholds/--baseline-thresholds")
    parser.add_argument("--thresholds", type=float, nargs="+", default=None,
                        help="thresholds of the GAN rows (gan, gan-bn-batch, encoder)")
    parser.add_argument("--baseline-thresholds", type=float, nargs="+", default=None,
                        help="thresholds of Alibi's rows (alibi, stitching)")
    parser.add_argument("--fresh", type=int, default=200,
                        help="fresh GAN in-paintings that re-estimate each anchor's precision")
    parser.add_argument("--device", default="cpu",
                        help="torch device of generator, encoder and classifier (e.g. cuda)")
    parser.add_argument("--json", default=None, help="save per-digit results to this file")
    parser.add_argument("--compare", nargs="+", default=None, metavar="JSON",
                        help="print the rows and paired table of runs saved with --json")
    parser.add_argument("--indices", type=int, nargs="+", default=None,
                        help="explain these test digits (instead of --digits/--digit-offset)")
    parser.add_argument("--p-samples", type=float, nargs="+", default=None,
                        help="p_sample values of every row (default: each explainer's own)")
    parser.add_argument("--dataset", type=int, default=None, metavar="N",
                        help="time explain_dataset over the first N test digits")
    parser.add_argument("--backends", nargs="+", default=["local"], choices=["local", "ray"],
                        help="explain_dataset backends of --dataset")
    parser.add_argument("--encoder-steps", type=int, default=600)
    parser.add_argument("--encoder-file", default=None,
                        help="load the diverse encoder from this file, or train and save it")
    parser.add_argument("--samplers", nargs="+", default=None,
                        choices=list(_ROWS),
                        help="rows of Tables 1-2 to run (default: all)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    if args.compare:
        compare(args.compare)
    elif args.dataset:
        dataset_run(args.dataset, args.backends, device=device, only=args.samplers)
    elif args.batchnorm_study:
        batchnorm_study(args.masks, device=device)
    elif args.xi_sweep:
        xi_sweep(args.images, args.masks, [float(v) for v in args.xis.split(",")], device=device)
    else:
        tables(args.digits, args.thresholds or [args.threshold],
               args.baseline_thresholds or [args.threshold], args.encoder_steps,
               n_fresh=args.fresh, only=args.samplers, device=device, json_path=args.json,
               digit_offset=args.digit_offset, indices=args.indices, p_samples=args.p_samples,
               encoder_file=args.encoder_file)


if __name__ == "__main__":
    main()
