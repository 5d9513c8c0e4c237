"""Does ``MimicGANDefense`` do harm? A panel of corruptions that no preset names (issue #19).

For each corruption in ``corruptions.PANEL`` (none, the three of issue #19, a shift, a rotation,
a scaling, occlusion, JPEG-like quantisation, dropped pixels) and two attacks on the classifier
(FGSM and PGD, L-inf 0.1, from ``captum.robust``), the zoo digits classifier's accuracy on the
observations, on PGD (Defense-GAN) recoveries, on the MimicGAN recoveries and through
``MimicGANDefense``, with the fractions of images given MimicGAN's recovery (its surrogate
explains the observation) and passed through unchanged (untrusted). One configuration for every
corruption (no per-corruption tuning): ``MimicGAN(generator, surrogate=..., config="digits")``,
the defence fitted on the batch it cleans (it calibrates its error threshold on that batch; the
PGD and MimicGAN columns are the defence's own two recoveries). The bar is
``defended >= max(observed, PGD) - 0.02``.

    OMP_NUM_THREADS=2 python benchmarks/mimicgan_panel.py                 # 160 digits, 200-359
    python benchmarks/mimicgan_panel.py --surrogate shallow --corruptions none,shift
    python benchmarks/mimicgan_panel.py --extra   # and four corruptions outside the panel
    python benchmarks/mimicgan_panel.py --extra --diagnose   # and what the occlusion test reads

--diagnose adds two columns: the share of images whose PGD residual has more outliers than the
occlusion test's ``min_outliers``, and the 10th / 50th / 90th percentile of their clustering
ratio (``outlier_statistics``; the test's bar is ``OcclusionTest().clustering``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings

import torch


def _salt_and_pepper(x, gen, fraction=0.15):
    u = torch.rand(x.shape, generator=gen)
    return torch.where(u < fraction / 2, 0.0, torch.where(u > 1 - fraction / 2, 1.0, x))


def _noise(x, gen, std=0.5):
    return (x + std * torch.randn(x.shape, generator=gen)).clamp(0, 1)


def _lines(x, gen, n=3):
    out = x.clone()
    rows = torch.randint(0, x.shape[-2], (len(x), n), generator=gen)
    for i, r in enumerate(rows):
        out[i, :, r, :] = 1.0
    return out


def _block(x, gen, side=10):
    out = x.clone()
    corners = torch.randint(0, x.shape[-1] - side, (len(x), 2), generator=gen)
    grey = torch.rand(len(x), generator=gen)
    for i, (r, c) in enumerate(corners.tolist()):
        out[i, :, r:r + side, c:c + side] = grey[i]
    return out


# corruptions outside the panel (--extra): name -> f(images, torch.Generator)
_EXTRA = {"salt_and_pepper": _salt_and_pepper, "gaussian_noise": _noise,
          "white_lines": _lines, "grey_block": _block}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=int, default=200, help="first zoo test digit")
    parser.add_argument("--n", type=int, default=160, help="test digits")
    parser.add_argument("--corruptions", default=None,
                        help="comma-separated PANEL names and attacks (fgsm, pgd); default all")
    parser.add_argument("--surrogate", default="affine", choices=["affine", "shallow"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-occlusions", action="store_true",
                        help="the defence without its occlusion step (occlusions=None)")
    parser.add_argument("--extra", action="store_true",
                        help="also corruptions outside the panel (noise, salt and pepper, "
                             "white lines, a solid block), which no choice was made on")
    parser.add_argument("--diagnose", action="store_true",
                        help="also the occlusion test's statistics of PGD's residuals")
    args = parser.parse_args()

    from captum_latent import zoo
    from captum_latent.inverse import MimicGAN, MimicGANDefense, OcclusionTest, corruptions
    from captum_latent.inverse.occlusion import outlier_statistics

    gan, clf = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    ds = zoo.digits()
    x = ds.test.images[args.start : args.start + args.n]
    y = ds.test.labels[args.start : args.start + args.n]

    def accuracy(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float((clf(images).argmax(1) == y).float().mean())

    names = (args.corruptions.split(",") if args.corruptions
             else [*corruptions.PANEL, *corruptions.ATTACKS])
    if args.extra:
        names += list(_EXTRA)
    cpu = platform.processor() or platform.machine()
    print(f"{len(y)} zoo test digits from {args.start}; {cpu}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"surrogate {args.surrogate!r}, config 'digits', seed {args.seed}; "
          f"{datetime.date.today()}")
    test = OcclusionTest()
    extra_head = (f" > {test.min_outliers:.0%} outliers | their clustering p10 / p50 / p90 |"
                  if args.diagnose else "")
    print("| corruption | observed | PGD | MimicGAN | defended | MimicGAN used | passed through | "
          "occlusion repaired | bar | met | s |" + extra_head)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
          + (" ---: | ---: |" if args.diagnose else ""))
    met_all = True
    for name in names:
        if name in corruptions.ATTACKS:
            observed = corruptions.adversarial(clf, x, y, attack=name, epsilon=0.1)
        elif name in _EXTRA:
            observed = _EXTRA[name](x, torch.Generator().manual_seed(1000 + args.seed))
        else:
            observed = corruptions.PANEL[name](x, seed=args.seed)
        defence = MimicGANDefense(clf, MimicGAN(gan.generator, surrogate=args.surrogate,
                                                config="digits"), seed=args.seed,
                                  **({"occlusions": None} if args.no_occlusions else {}))
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            outcome = defence.defend(observed)
        seconds = time.perf_counter() - start
        obs, pgd = accuracy(observed), accuracy(outcome.identity_recovered)
        defended = accuracy(outcome.images)
        bar = max(obs, pgd) - 0.02
        met = defended >= bar - 1e-9
        met_all &= met
        used = float((outcome.explained & ~outcome.passed_through).float().mean())
        diagnosis = ""
        if args.diagnose:
            fraction, clustering = outlier_statistics(
                observed, outcome.identity_recovered, value_scale=defence.value_scale, test=test)
            many = fraction > test.min_outliers
            spread = (" / ".join(f"{float(v):.2f}" for v in
                                 clustering[many].quantile(torch.tensor([0.1, 0.5, 0.9])))
                      if many.any() else "-")
            diagnosis = f" {float(many.float().mean()):.2f} | {spread} |"
        print(f"| {name} | {obs:.3f} | {pgd:.3f} | {accuracy(outcome.recovered):.3f} | "
              f"{defended:.3f} | {used:.2f} | {float(outcome.passed_through.float().mean()):.2f} "
              f"| {float(outcome.repaired.float().mean()):.2f} | {bar:.3f} | "
              f"{'yes' if met else '**no**'} | {seconds:.0f} |{diagnosis}", flush=True)
    print(f"bar met on every corruption: {met_all}")


if __name__ == "__main__":
    main()
