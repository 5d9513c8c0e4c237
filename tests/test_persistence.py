"""Trained encoders, priors, loss predictors and zoo models save and load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_latent.generative import DiverseEncoder, GaussianPrior, PGANPrior
from captum_latent.generative.priors import PGANConfig
from captum_latent.persistence import load_module, read_state_dict, save_module
from captum_latent.zoo.dep import DEPClassifier
from captum_latent.zoo.models import DCGANGenerator, SmallCNN


def _codes(n: int = 64, d: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=gen) @ torch.randn(d, d, generator=gen)


def _samples(prior, n: int = 5) -> torch.Tensor:
    return prior.sample(torch.zeros(n, dtype=torch.long), torch.Generator().manual_seed(1))


def test_gaussian_prior_round_trip(tmp_path) -> None:
    prior = GaussianPrior.fit(_codes())
    loaded = GaussianPrior.load(prior.save(tmp_path / "gauss.pt"))
    assert torch.equal(_samples(prior), _samples(loaded))
    assert torch.equal(prior.mean, loaded.mean)


def test_pgan_prior_round_trip(tmp_path) -> None:
    prior = PGANPrior.fit(_codes(), config=PGANConfig(steps=20, batch_size=16), seed=0)
    loaded = PGANPrior.load(prior.save(tmp_path / "pgan.pt"))
    assert isinstance(loaded, PGANPrior) and loaded.noise_dim == prior.noise_dim
    assert torch.equal(_samples(prior), _samples(loaded))
    assert loaded.losses == prior.losses  # plain attributes travel with the skeleton


def test_diverse_encoder_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    encoder = DiverseEncoder((1, 12, 12), latent_dim=5, n_codes=3).eval()
    loaded = DiverseEncoder.load(encoder.save(tmp_path / "enc.pt"))
    x, m = torch.rand(2, 1, 12, 12), torch.ones(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(encoder(x, m), loaded(x, m))
    assert loaded.n_codes == 3 and loaded.image_shape == (1, 12, 12)


def test_loss_predictor_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = DEPClassifier(1, 10, 28).eval()
    model.low_loss_score.fill_(0.25)
    loaded = DEPClassifier.load(model.save(tmp_path / "dep.pt"))
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.predict_loss(x), loaded.predict_loss(x))
    assert float(loaded.low_loss_score) == 0.25 and not loaded.training


def test_zoo_models_and_training_flag(tmp_path) -> None:
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=8, base_channels=8).train()
    loaded = load_module(save_module(g, tmp_path / "g.pt"))
    assert loaded.training and isinstance(loaded, DCGANGenerator)
    g.eval(), loaded.eval()
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(g(z), loaded(z))


class _WithNonPersistent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.register_buffer("scale", torch.tensor(3.0), persistent=False)

    def forward(self, x):
        return self.linear(x) * self.scale


def test_non_persistent_buffers_survive(tmp_path) -> None:
    m = _WithNonPersistent()
    m.scale.fill_(7.0)
    loaded = load_module(save_module(m, tmp_path / "m.pt"))
    assert float(loaded.scale) == 7.0
    assert set(read_state_dict(tmp_path / "m.pt")) == {"linear.weight", "linear.bias"}


def test_errors_are_clear(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no saved module"):
        load_module(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a captum_latent module file"):
        load_module(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable"):
        load_module(tmp_path / "junk.pt")
    path = SmallCNN(1, 10, 28).save(tmp_path / "cnn.pt")
    with pytest.raises(TypeError, match="holds a SmallCNN, not a DiverseEncoder"):
        DiverseEncoder.load(path)
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        save_module("not a module", tmp_path / "x.pt")  # type: ignore[arg-type]
