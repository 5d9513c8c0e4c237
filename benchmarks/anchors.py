"""GANchors on the zoo digits: the paper's Tables 1 and 2, and the sweep that picks ``xi``.

    python benchmarks/anchors.py --xi-sweep            # in-painting cost and realism per xi
    python benchmarks/anchors.py --digits 20           # Tables 1-2: two test digits per class
    python benchmarks/anchors.py --samplers stitching gan --thresholds 0.95 0.97 0.99
                                                        # matched precision (GAN thresholds)
    python benchmarks/anchors.py --compare a.json b.json  # rows + paired table of --json runs

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
                     device: torch.device | str = "cpu") -> float:
    """Precision of an explanation's anchor re-estimated on ``n`` new GAN in-paintings."""
    from alibi_ext import GANInpaintingSampler

    segments = explanation.segments
    sampler = GANInpaintingSampler(lambda x: predict(x).argmax(1), lambda _: segments, True,
                                   image, generator, seed=10_000 + seed, pool_size=n,
                                   device=device)
    anchor = tuple(int(f) for f in explanation.raw["feature"])
    _, _, labels, _, _, _ = sampler((0, anchor), n)
    return float(labels.mean())


_ROWS = {  # --samplers key -> (table name, GANAnchorImage keywords); "alibi" rows use Alibi's
    "alibi": ("Alibi default (mean superpixel)", dict(sampler="alibi")),
    "stitching": ("Alibi + background images", dict(sampler="alibi")),
    "gan": ("GAN batch (BN eval)", dict(sampler="gan", batchnorm="eval")),
    "gan-bn-batch": ("GAN batch + BN batch mode", dict(sampler="gan", batchnorm="batch")),
    "encoder": ("Diverse encoder", dict(sampler="diverse_encoder")),
}


def tables(n_digits: int, thresholds: list[float], baseline_thresholds: list[float],
           encoder_steps: int, n_fresh: int = 200, only: list[str] | None = None,
           device: torch.device | str = "cpu", json_path: str | None = None,
           digit_offset: int = 0) -> list[dict]:
    """Tables 1-2 rows: each sampler at each of its thresholds (``thresholds`` for the GAN
    samplers, ``baseline_thresholds`` for Alibi's), on the same test digits. Returns one record
    per (sampler, threshold) with the per-digit results."""
    from alibi_ext import GANAnchorImage
    from captum_latent import zoo

    device = torch.device(device)
    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    generator, clf = gan.generator.to(device), clf.to(device)
    ds = zoo.digits()
    predict = _predictor(clf, device)
    per_class = max(1, n_digits // 10)
    idx = [int(i) for k in range(10)
           for i in torch.nonzero(ds.test.labels == k).flatten()[digit_offset:][:per_class]]
    background = ds.train.images[:100].permute(0, 2, 3, 1).numpy()
    from captum_latent.generative.diverse_encoder import (
        DiverseEncoderConfig,
        train_diverse_encoder,
    )

    keys = [k for k in _ROWS if only is None or k in only]
    encoder = None
    if "encoder" in keys:
        start = time.perf_counter()
        encoder = train_diverse_encoder(generator, ds.train.images,
                                        config=DiverseEncoderConfig(steps=encoder_steps), seed=0,
                                        device=device)
        encoder = getattr(encoder, "encoder", encoder)
        _synchronize(device)
        print(f"diverse encoder trained in {time.perf_counter() - start:.1f} s")
    print(f"{len(idx)} test digits (after the first {digit_offset} of each class), "
          f"15 quickshift segments, fresh GAN samples: {n_fresh}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print("| sampler | threshold | s / explanation (median) | precision (its own samples) | "
          "precision (fresh GAN samples) | anchor size | predictor calls | predictor images |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    records = []
    for key in keys:
        name, kwargs = _ROWS[key]
        kwargs = dict(kwargs)
        if key == "stitching":
            kwargs["images_background"] = background
        if key == "encoder":
            kwargs["encoder"] = encoder
        if kwargs["sampler"] != "alibi":
            kwargs["device"] = device
        for threshold in (baseline_thresholds if kwargs["sampler"] == "alibi" else thresholds):
            # a new explainer per row: digit j gets the same seed in every row
            explainer = GANAnchorImage(predict, (28, 28, 1), generator, seed=0, **kwargs)
            digits = []
            for i in idx:
                image = ds.test.images[i].permute(1, 2, 0).numpy()
                _synchronize(device)
                start = time.perf_counter()
                e = explainer.explain(image, threshold=threshold)
                _synchronize(device)
                secs = time.perf_counter() - start
                digits.append(dict(
                    index=i, label=int(ds.test.labels[i]), seconds=secs,
                    anchor=sorted(int(f) for f in e.raw["feature"]),
                    size=len(e.raw["feature"]),
                    precision=float(np.asarray(e.precision).mean()),
                    fresh_precision=_fresh_precision(predict, image, e, generator, n_fresh,
                                                     seed=i, device=device),
                    predictor_calls=e.data["sampler_stats"]["predictor_calls"],
                    predictor_images=e.data["sampler_stats"]["predictor_images"],
                ))
            record = dict(key=key, name=name, threshold=threshold, device=str(device),
                          digits=digits)
            records.append(record)
            print(_row(record), flush=True)
            if json_path:  # after every row, so a stopped run keeps what it measured
                with open(json_path, "w") as f:
                    json.dump(records, f, indent=1)
    paired_table(records)
    return records


def _row(record: dict) -> str:
    d = record["digits"]

    def mean(field: str) -> float:
        return float(np.mean([r[field] for r in d]))

    return (f"| {record['name']} | {record['threshold']} | "
            f"{np.median([r['seconds'] for r in d]):.2f} | {mean('precision'):.3f} | "
            f"{mean('fresh_precision'):.3f} | {mean('size'):.2f} | "
            f"{mean('predictor_calls'):.1f} | {mean('predictor_images'):.0f} |")


def paired_table(records: list[dict], reference: str = "stitching") -> None:
    """Each row against the reference sampler (random stitching, at each of its thresholds)
    on the same digits: how many digits have a smaller anchor at equal or higher fresh-GAN
    precision, the mean paired differences with a 95% t-interval, and how many explanations
    took no longer than the reference's on the same digit."""
    from scipy import stats

    refs = [r for r in records if r["key"] == reference]
    others = [r for r in records if r["key"] != reference]
    if not refs or not others:
        return
    print(f"\nPaired, digit by digit, against {refs[0]['name']} "
          "(size and precision differences: row minus reference; fresh GAN precision)")
    print("| sampler | threshold | reference threshold | digits | smaller anchor | "
          "fresh precision >= | both | size difference | precision difference | "
          "no slower | median time ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for ref in refs:
        by_index = {r["index"]: r for r in ref["digits"]}
        for rec in others:
            pairs = [(r, by_index[r["index"]]) for r in rec["digits"] if r["index"] in by_index]
            if not pairs:
                continue
            smaller = [a["size"] < b["size"] for a, b in pairs]
            as_precise = [a["fresh_precision"] >= b["fresh_precision"] for a, b in pairs]
            both = sum(s and p for s, p in zip(smaller, as_precise))

            def interval(values: list[float]) -> str:
                values = np.asarray(values, dtype=float)
                half = (stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1)
                        / np.sqrt(len(values))) if len(values) > 1 else float("nan")
                return f"{values.mean():+.3f} ± {half:.3f}"

            print(f"| {rec['name']} | {rec['threshold']} | {ref['threshold']} | {len(pairs)} | "
                  f"{sum(smaller)} | {sum(as_precise)} | {both} | "
                  f"{interval([a['size'] - b['size'] for a, b in pairs])} | "
                  f"{interval([a['fresh_precision'] - b['fresh_precision'] for a, b in pairs])}"
                  f" | {sum(a['seconds'] <= b['seconds'] for a, b in pairs)} | "
                  f"{np.median([a['seconds'] / b['seconds'] for a, b in pairs]):.2f} |")


def compare(paths: list[str]) -> None:
    """Print the rows and the paired table of runs saved with ``--json``."""
    records = []
    for path in paths:
        with open(path) as f:
            records.extend(json.load(f))
    print("| sampler | threshold | s / explanation (median) | precision (its own samples) | "
          "precision (fresh GAN samples) | anchor size | predictor calls | predictor images |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
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
    parser.add_argument("--encoder-steps", type=int, default=600)
    parser.add_argument("--samplers", nargs="+", default=None,
                        choices=["alibi", "stitching", "gan", "gan-bn-batch", "encoder"],
                        help="rows of Tables 1-2 to run (default: all)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    if args.compare:
        compare(args.compare)
    elif args.batchnorm_study:
        batchnorm_study(args.masks, device=device)
    elif args.xi_sweep:
        xi_sweep(args.images, args.masks, [float(v) for v in args.xis.split(",")], device=device)
    else:
        tables(args.digits, args.thresholds or [args.threshold],
               args.baseline_thresholds or [args.threshold], args.encoder_steps,
               n_fresh=args.fresh, only=args.samplers, device=device, json_path=args.json,
               digit_offset=args.digit_offset)


if __name__ == "__main__":
    main()
