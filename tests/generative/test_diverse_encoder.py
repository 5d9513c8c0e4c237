from __future__ import annotations

import pytest
import torch

from captum_latent.core import LatentSearch, LossThreshold, MaskedReconstruction
from captum_latent.generative.diverse_encoder import (
    DiverseEncoder,
    DiverseEncoderConfig,
    EncoderInitialiser,
    diverse_encoder_loss,
    train_diverse_encoder,
)
from captum_latent.generative.superpixels import random_superpixel_masks, superpixel_segments


def test_loss_matches_eq12_by_hand() -> None:
    codes = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]]])  # distances 5, 1, sqrt(18)
    recon = torch.zeros(1, 3, 1, 2, 2)
    recon[0, 1] = 1.0
    target = torch.zeros(1, 1, 2, 2)
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    t = 4.0
    expected_recon = 2**0.5  # only code 1 differs, on 2 kept pixels
    pair = {(0, 1): 5.0, (0, 2): 1.0, (1, 2): 18**0.5}
    expected_div = 2 * sum(((min(d, t) - t) / t) ** 2 for d in pair.values())
    got = diverse_encoder_loss(codes, recon, target, mask, diversity_weight=0.5, t=t)
    assert float(got) == pytest.approx(expected_recon + 0.5 * expected_div, rel=1e-6)


def test_training_spreads_codes_and_fits_masked_pixels(toy_generator) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        images = toy_generator(torch.randn(64, 6, generator=gen))
    config = DiverseEncoderConfig(n_codes=4, steps=150, batch_size=16, n_segments=6, lr=3e-3)
    encoder = train_diverse_encoder(toy_generator, images, config=config, seed=0)
    assert encoder.losses[-1] < encoder.losses[0]
    masks = random_superpixel_masks(superpixel_segments(images[:8], n_segments=6), seed=1)
    with torch.no_grad():
        codes = encoder(images[:8], masks)
    assert codes.shape == (8, 4, 6)
    dist = torch.cdist(codes, codes)[:, ~torch.eye(4, dtype=torch.bool)]
    assert float(dist.mean()) > 0.5 * encoder.t  # not collapsed
    assert all(p.grad is None for p in toy_generator.parameters())  # generator untouched


def test_initialiser_feeds_the_engine(toy_generator) -> None:
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    masks = torch.ones(3, 1, 8, 8)
    encoder = DiverseEncoder((1, 8, 8), latent_dim=6, n_codes=2)
    init = EncoderInitialiser(encoder, images, masks, noise_std=0.0)
    z = init.sample(torch.tensor([0, 2, 2, 1]), torch.Generator().manual_seed(0))
    with torch.no_grad():
        codes = encoder(images, masks)
    for row, p in enumerate([0, 2, 2, 1]):  # every draw is one of the problem's N codes
        assert min(float((z[row] - c).norm()) for c in codes[p]) < 1e-6
    result = LatentSearch(toy_generator, max_iterations=2).search(
        MaskedReconstruction(images, masks), samples_per_problem=2, prior=init, seed=0
    )
    assert result.codes.shape == (3, 2, 6)
    with pytest.raises(ValueError, match="masks"):
        EncoderInitialiser(encoder, images, torch.ones(2, 1, 8, 8))


@pytest.mark.slow
def test_zoo_encoder_initialisation_needs_fewer_iterations() -> None:
    """Done-criterion: median iterations to a masked threshold over 100 masked digits."""
    from captum_latent import zoo

    generator = zoo.digits_gan(progress=False).generator
    digits = zoo.digits()
    config = DiverseEncoderConfig(steps=400, batch_size=32)
    encoder = train_diverse_encoder(generator, digits.train.images, config=config, seed=0)
    x = digits.test.images[:100]
    masks = random_superpixel_masks(superpixel_segments(x), seed=1)
    objective = MaskedReconstruction(x, masks)
    search = LatentSearch(generator, max_iterations=300, batch_size=800)
    medians = {}
    for name, prior in (("normal", None), ("encoder", EncoderInitialiser(encoder, x, masks))):
        result = search.search(objective, samples_per_problem=8, stop=LossThreshold(0.01),
                               prior=prior, seed=0)
        assert result.success_rate > 0.95
        medians[name] = float(result.iterations.float().median(1).values.median())
    assert medians["encoder"] < medians["normal"]
    with torch.no_grad():
        codes = encoder(x, masks)
    dist = torch.cdist(codes, codes)[:, ~torch.eye(8, dtype=torch.bool)]
    assert float(dist.mean()) > 0.5 * encoder.t  # the N outputs are not collapsed
