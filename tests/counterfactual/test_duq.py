"""DUQ models for DISC's Eq. 9: the RBF head, the gradient penalty, training and the zoo model."""

from __future__ import annotations

import pytest
import torch

from captum_latent.counterfactual import (
    DUQClassifier,
    DUQConfig,
    DUQConsistency,
    gradient_penalty,
    train_duq_classifier,
)


def _auroc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    return float((pos[:, None] > neg[None, :]).float().mean())


def _permuted(images: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """Off-manifold images with the digits' own pixel values: pixels shuffled in place."""
    gen = torch.Generator().manual_seed(seed)
    flat = images.flatten(1)
    return flat[:, torch.randperm(flat.shape[1], generator=gen)].reshape(images.shape)


def test_gradient_penalty_by_hand():
    x = torch.zeros(3, 4, requires_grad=True)
    weights = torch.tensor([3.0, 0.0, 4.0, 0.0])  # sum_c K = x . w: |grad| = 5
    assert gradient_penalty(x, (x * weights).sum(1, keepdim=True)).item() == pytest.approx(16.0)
    x2 = torch.zeros(2, 2, requires_grad=True)
    assert gradient_penalty(x2, x2[:, :1] * 1.0).item() == pytest.approx(0.0)  # |grad| = 1


def test_kernel_is_one_at_the_centroid_and_centroids_are_moving_averages():
    torch.manual_seed(0)
    model = DUQClassifier(1, 3, 8, width=2, hidden=4, embedding=5, length_scale=0.5,
                          gamma=0.9).eval()
    x = torch.rand(4, 1, 8, 8)
    labels = torch.tensor([0, 0, 2, 2])
    with torch.no_grad():
        z = model.embeddings(x)  # (4, 5, 3)
    n0, m0 = model.N.clone(), model.m.clone()
    model.update_centroids(x, labels)
    counts = torch.tensor([2.0, 0.0, 2.0])
    torch.testing.assert_close(model.N, 0.9 * n0 + 0.1 * counts)
    sums = torch.stack([z[:2, :, 0].sum(0), torch.zeros(5), z[2:, :, 2].sum(0)], 1)
    torch.testing.assert_close(model.m, 0.9 * m0 + 0.1 * sums)
    # put class 1's centroid on the first image's class-1 embedding: K_1 = 1 there
    model.m[:, 1] = z[0, :, 1] * model.N[1]
    with torch.no_grad():
        k = model(x[:1])
    assert k[0, 1].item() == pytest.approx(1.0, abs=1e-6)
    assert bool(((k > 0) & (k <= 1)).all())
    with pytest.raises(ValueError, match="length_scale"):
        DUQClassifier(1, 3, 8, length_scale=0.0)
    with pytest.raises(ValueError, match="gamma"):
        DUQClassifier(1, 3, 8, gamma=1.0)


@pytest.fixture(scope="module")
def small_duq():
    """A small DUQ model on 14x14 digits (trained in ~15 s on one thread)."""
    from captum_latent import zoo

    data = zoo.digits(size=14)
    config = DUQConfig("digits", epochs=8, width=8, hidden=32, embedding=32, penalty=0.05,
                       max_shift=1)
    model, metrics = train_duq_classifier(data, config, progress=False)
    return model, metrics, data


def test_duq_training_learns_the_classes_and_is_certain_only_on_digits(small_duq):
    model, metrics, data = small_duq
    assert not model.training
    assert metrics["test_accuracy"] >= 0.6  # chance: 0.1
    with torch.no_grad():
        digits = model.certainty(data.test.images)
        noise = model.certainty(torch.rand(100, 1, 14, 14, generator=torch.Generator()
                                           .manual_seed(0)))
        shuffled = model.certainty(_permuted(data.test.images))
    assert _auroc(digits, noise) > 0.8
    assert metrics["noise_auroc"] > 0.8
    assert float(digits.mean()) > float(shuffled.mean())


def test_duq_model_drives_eq9(small_duq):
    """Eq. 9 on real images: small for images of the target class, >= tau for the source."""
    model, _, data = small_duq
    term = DUQConsistency(model, margin=0.5)
    x, y = data.test.images, data.test.labels
    threes, eights = x[y == 3], x[y == 8]
    src = torch.full((len(threes),), 3)
    with torch.no_grad():
        on_source = term(threes, src, torch.full_like(src, 8))
        on_target = term(eights, torch.full((len(eights),), 3), torch.full((len(eights),), 8))
    assert float(on_target.mean()) < float(on_source.mean())
    assert float(on_source.median()) >= 0.5


@pytest.mark.slow
def test_zoo_duq_model_separates_digits_from_off_manifold_images(digits_data):
    from captum_latent import zoo

    model = zoo.duq_digits_classifier(progress=False)
    assert model.zoo_metrics["test_accuracy"] >= 0.95
    assert model.zoo_metrics["noise_auroc"] >= 0.95
    with torch.no_grad():
        digits = model.certainty(digits_data.test.images)
        shuffled = model.certainty(_permuted(digits_data.test.images))
    assert _auroc(digits, shuffled) > 0.9


class _LogKernel(torch.nn.Module):
    """The DUQ model as a classifier: log-similarities as logits (same argmax)."""

    def __init__(self, duq: DUQClassifier) -> None:
        super().__init__()
        self.duq = duq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.duq(x).clamp_min(1e-6).log()


def test_disc_with_the_duq_term_satisfies_eq9_more_often(small_duq):
    from captum_latent.counterfactual import DISCGenerator, FixedSchedule, PixelSemantics, TVL2Prior

    model, _, data = small_duq
    x = data.test.images[data.test.labels == 3][:6]
    term = DUQConsistency(model, margin=0.5)
    kwargs = {"prior": TVL2Prior(), "semantics": PixelSemantics(),
              "schedule": FixedSchedule(60), "lambda_target": 0.2, "lambda_semantic": 1.0}
    classifier = _LogKernel(model).eval()
    plain = DISCGenerator(classifier, **kwargs).generate(x, 8)
    with_duq = DISCGenerator(classifier, manifold=term, lambda_manifold=2.0,
                             **kwargs).generate(x, 8)
    src, tgt = torch.full((6,), 3), torch.full((6,), 8)
    with torch.no_grad():
        gap_plain = term(plain.counterfactuals, src, tgt).mean()
        gap_duq = term(with_duq.counterfactuals, src, tgt).mean()
    assert gap_duq < gap_plain
