"""GANchors on the zoo digits: the paper's Tables 1 and 2, and the sweep that picks ``xi``.

    python benchmarks/anchors.py --xi-sweep            # in-painting cost and realism per xi
    python benchmarks/anchors.py --digits 20           # Tables 1-2: two test digits per class

Table rows (per sampler): mean seconds per explanation, precision, anchor size (segments),
predictor calls and images. Samplers: Alibi default (mean superpixel), Alibi with background
images, GAN batch (batch-norm "eval"), GAN batch + batch-norm mode "batch", diverse encoder.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch


def _predictor(classifier):
    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(classifier(torch.as_tensor(x).permute(0, 3, 1, 2)), 1).numpy()
    return predict


def xi_sweep(n_images: int, n_masks: int, xis: list[float]) -> None:
    from alibi_ext import GANInpainter, quickshift_n_segments
    from captum_latent import zoo

    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    ds = zoo.digits()
    rng = np.random.default_rng(0)
    print(f"xi sweep: {n_images} test digits x {n_masks} masks (each superpixel of 15 kept "
          "with p=0.5)")
    print("| xi | converged | median iterations | seconds | in-painting keeps label | "
          "mean max-prob |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for xi in xis:
        inpainter = GANInpainter(gan.generator, xi=xi)
        conv, its, keep, conf, secs = [], [], [], [], 0.0
        for i in range(n_images):
            x = ds.test.images[i]
            seg = torch.as_tensor(quickshift_n_segments(x[0].numpy(), 15))
            rows = torch.as_tensor(rng.random((n_masks, 15)) >= 0.5)
            masks = rows[:, seg].unsqueeze(1)
            start = time.perf_counter()
            out = inpainter.inpaint(x, masks, seed=i)
            secs += time.perf_counter() - start
            with torch.no_grad():
                probs = torch.softmax(clf(out.images), 1)
                label = int(clf(x[None]).argmax())
            ok = out.converged
            conv.append(float(ok.float().mean()))
            its.extend(out.iterations[ok].tolist())
            keep.append(float((probs[ok].argmax(1) == label).float().mean()) if ok.any() else 0)
            conf.append(float(probs[ok].max(1).values.mean()) if ok.any() else 0)
        print(f"| {xi} | {np.mean(conv):.3f} | {statistics.median(its) if its else 'n/a'} | "
              f"{secs / n_images:.2f} | {np.mean(keep):.3f} | {np.mean(conf):.3f} |")


def batchnorm_study(n_masks: int, seed: int = 1) -> None:
    """In-paint one digit under ``n_masks`` random masks (and under one shared mask) with the
    generator's batch norm in "eval" and in "batch" mode: time, convergence, iterations."""
    from alibi_ext import GANInpainter, QuickshiftSegmentation
    from captum_latent import zoo

    gan, ds = zoo.digits_gan(progress=False), zoo.digits()
    x = ds.test.images[5]
    seg = torch.as_tensor(QuickshiftSegmentation(15)(x.permute(1, 2, 0).numpy()))
    rows = torch.as_tensor(np.random.default_rng(seed).random((n_masks, 15)) >= 0.5)
    masks = rows[:, seg].unsqueeze(1)
    print(f"one zoo test digit, {n_masks} masks, xi = 0.01, at most 400 steps per code, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("| batch norm | masks | seconds | converged | median iterations | mean iterations |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for mode in ("eval", "batch"):
        inpainter = GANInpainter(gan.generator, xi=0.01, batchnorm=mode)
        for label, m in (("distinct", masks), ("one shared", masks[:1].expand_as(masks))):
            start = time.perf_counter()
            out = inpainter.inpaint(x, m, seed=0)
            secs = time.perf_counter() - start
            it = out.iterations.float()
            print(f"| {mode} | {label} | {secs:.1f} | {out.converged.float().mean():.3f} | "
                  f"{it.median():.0f} | {it.mean():.1f} |", flush=True)


def _fresh_precision(predict, image, explanation, generator, n: int, seed: int) -> float:
    """Precision of an explanation's anchor re-estimated on ``n`` new GAN in-paintings."""
    from alibi_ext import GANInpaintingSampler

    segments = explanation.segments
    sampler = GANInpaintingSampler(lambda x: predict(x).argmax(1), lambda _: segments, True,
                                   image, generator, seed=10_000 + seed, pool_size=n)
    anchor = tuple(int(f) for f in explanation.raw["feature"])
    _, _, labels, _, _, _ = sampler((0, anchor), n)
    return float(labels.mean())


def tables(n_digits: int, threshold: float, encoder_steps: int, n_fresh: int = 200,
           only: list[str] | None = None) -> None:
    from alibi_ext import GANAnchorImage
    from captum_latent import zoo

    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    ds = zoo.digits()
    predict = _predictor(clf)
    per_class = max(1, n_digits // 10)
    idx = [int(i) for k in range(10)
           for i in torch.nonzero(ds.test.labels == k).flatten()[:per_class]]
    background = ds.train.images[:100].permute(0, 2, 3, 1).numpy()
    from captum_latent.generative.diverse_encoder import (
        DiverseEncoderConfig,
        train_diverse_encoder,
    )

    encoder = None
    if only is None or "encoder" in only:
        start = time.perf_counter()
        encoder = train_diverse_encoder(gan.generator, ds.train.images,
                                        config=DiverseEncoderConfig(steps=encoder_steps), seed=0)
        encoder = getattr(encoder, "encoder", encoder)
        print(f"diverse encoder trained in {time.perf_counter() - start:.1f} s")
    variants = {
        "Alibi default (mean superpixel)": ("alibi", dict(sampler="alibi")),
        "Alibi + background images": ("stitching", dict(sampler="alibi",
                                                        images_background=background)),
        "GAN batch (BN eval)": ("gan", dict(sampler="gan", batchnorm="eval")),
        "GAN batch + BN batch mode": ("gan-bn-batch", dict(sampler="gan", batchnorm="batch")),
        "Diverse encoder": ("encoder", dict(sampler="diverse_encoder", encoder=encoder)),
    }
    variants = {name: kw for name, (key, kw) in variants.items() if only is None or key in only}
    print(f"{len(idx)} test digits, threshold {threshold}, 15 quickshift segments; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("| sampler | s / explanation (median) | precision (its own samples) | precision "
          "(fresh GAN samples) | anchor size | predictor calls | predictor images |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, kwargs in variants.items():
        explainer = GANAnchorImage(predict, (28, 28, 1), gan.generator, seed=0, **kwargs)
        secs, prec, fresh, size, calls, images = [], [], [], [], [], []
        for i in idx:
            image = ds.test.images[i].permute(1, 2, 0).numpy()
            start = time.perf_counter()
            e = explainer.explain(image, threshold=threshold)
            secs.append(time.perf_counter() - start)
            prec.append(float(np.asarray(e.precision).mean()))
            fresh.append(_fresh_precision(predict, image, e, gan.generator, n_fresh, seed=i))
            size.append(len(e.raw["feature"]))
            calls.append(e.data["sampler_stats"]["predictor_calls"])
            images.append(e.data["sampler_stats"]["predictor_images"])
        print(f"| {name} | {np.median(secs):.2f} | {np.mean(prec):.3f} | {np.mean(fresh):.3f} | "
              f"{np.mean(size):.2f} | {np.mean(calls):.1f} | {np.mean(images):.0f} |", flush=True)


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
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--encoder-steps", type=int, default=600)
    parser.add_argument("--samplers", nargs="+", default=None,
                        choices=["alibi", "stitching", "gan", "gan-bn-batch", "encoder"],
                        help="rows of Tables 1-2 to run (default: all)")
    args = parser.parse_args()
    if args.batchnorm_study:
        batchnorm_study(args.masks)
    elif args.xi_sweep:
        xi_sweep(args.images, args.masks, [float(v) for v in args.xis.split(",")])
    else:
        tables(args.digits, args.threshold, args.encoder_steps, only=args.samplers)


if __name__ == "__main__":
    main()
