"""Quality gates of the zoo's trained models, and the cache's behaviour."""

from __future__ import annotations

import pytest
import torch

from captum_latent import zoo


def test_digits_classifier_quality_gate(digits_classifier, digits_data):
    acc = zoo.accuracy(digits_classifier, digits_data.test.images, digits_data.test.labels)
    assert acc >= 0.97, f"digits test accuracy {acc:.4f} < 0.97"
    assert acc == pytest.approx(digits_classifier.zoo_metrics["test_accuracy"])


def test_faces_classifier_quality_gate():
    model = zoo.faces_classifier(progress=False)
    ds = zoo.faces()
    acc = zoo.accuracy(model, ds.test.images, ds.test.labels)
    assert acc >= 0.90, f"faces test accuracy {acc:.4f} < 0.90"


def test_judges_are_accurate_and_not_the_explained_architecture(digits_data):
    """The judges of counterfactuals are classifiers of their own (fully connected, not the
    zoo's convolutional architecture that DISC explains), accurate on the test split."""
    for judge, ds, floor in ((zoo.digits_judge(progress=False), digits_data, 0.93),
                             (zoo.faces_judge(progress=False), zoo.faces(), 0.85)):
        assert isinstance(judge, zoo.SmallMLP) and not isinstance(judge, zoo.SmallCNN)
        assert not any(isinstance(m, torch.nn.Conv2d) for m in judge.modules())
        acc = zoo.accuracy(judge, ds.test.images, ds.test.labels)
        assert acc >= floor, f"{ds.name} judge test accuracy {acc:.4f} < {floor}"


def test_generator_quality_gate(digits_gan, digits_classifier):
    q = zoo.generator_quality(digits_gan.generator, digits_classifier, n_samples=2000, seed=1)
    print("generator class histogram:", q["class_histogram"], "mean max-prob:",
          q["mean_max_probability"])
    assert q["mean_max_probability"] >= 0.8
    assert all(count > 0 for count in q["class_histogram"]), q["class_histogram"]


def test_gan_shapes_modes_and_batchnorm(digits_gan):
    g, d = digits_gan.generator, digits_gan.discriminator
    assert not g.training and not d.training
    assert any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in g.modules())
    z = torch.randn(5, digits_gan.latent_dim)
    with torch.no_grad():
        x = g(z)
        assert x.shape == (5, 1, 28, 28)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert d(x).shape == (5,)


def test_loads_are_cached_and_fresh_copies(digits_gan, monkeypatch):
    from captum_latent.zoo import _loaders

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(_loaders, "train_classifier", no_training)
    monkeypatch.setattr(_loaders, "train_gan", no_training)
    a = zoo.digits_classifier(progress=False)
    b = zoo.digits_classifier(progress=False)
    again = zoo.digits_gan(progress=False)
    assert a is not b
    with torch.no_grad():
        a.head.out.weight.zero_()
    assert not torch.equal(a.head.out.weight, b.head.out.weight)
    for p, q in zip(again.generator.parameters(), digits_gan.generator.parameters()):
        assert torch.equal(p, q)


def test_training_is_deterministic_and_leaves_global_rng_alone(tmp_path, monkeypatch):
    """Same seed, fresh cache: identical weights; the caller's RNG stream is untouched."""
    from captum_latent.zoo.training import ClassifierConfig, train_classifier

    ds = zoo.faces()
    config = ClassifierConfig(dataset="faces", epochs=2, batch_size=32)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    m1, _ = train_classifier(ds, config, progress=False)
    after = torch.rand(3)
    m2, _ = train_classifier(ds, config, progress=False)
    assert torch.equal(expected, after)
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)


def test_cache_key_changes_with_config_and_files_land_in_cache_dir(tmp_path, monkeypatch):
    from captum_latent.zoo._cache import cache_path, config_key
    from captum_latent.zoo.training import GANConfig

    assert config_key("g", GANConfig()) == config_key("g", GANConfig())
    assert config_key("g", GANConfig()) != config_key("g", GANConfig(latent_dim=64))
    monkeypatch.setenv(zoo.CACHE_ENV_VAR, str(tmp_path / "c"))
    assert cache_path("g", GANConfig()).parent == tmp_path / "c"
    assert zoo.cache_dir() == tmp_path / "c"


def test_corrupt_cache_entry_is_retrained(tmp_path, monkeypatch):
    from captum_latent.zoo._cache import cache_path
    from captum_latent.zoo._loaders import FACES_CLASSIFIER_CONFIG

    monkeypatch.setenv(zoo.CACHE_ENV_VAR, str(tmp_path))
    path = cache_path("faces_classifier", FACES_CLASSIFIER_CONFIG)
    path.write_bytes(b"not a checkpoint")
    model = zoo.faces_classifier(seed=0, progress=False)  # the config's seed, whatever the env
    assert model.zoo_metrics["test_accuracy"] >= 0.9
    assert path.stat().st_size > 1000


def test_bad_latent_dim():
    with pytest.raises(ValueError, match="latent_dim"):
        zoo.digits_gan(latent_dim=0)
