"""Judge agreement and mean change (captum_latent/metrics/judge.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from captum_latent.metrics import judge_agreement, judge_verdicts, mean_absolute_change


class _Brightness(torch.nn.Module):
    """Class 1 for bright images, class 0 for dark ones."""

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True) - 0.5
        return torch.cat([-m, m], 1)


def test_agreement_counts_the_judges_target_verdicts():
    images = torch.stack([torch.full((1, 4, 4), v) for v in (0.9, 0.8, 0.1, 0.2)])
    assert judge_verdicts(_Brightness(), images, 1).tolist() == [True, True, False, False]
    assert judge_agreement(_Brightness(), images, [1, 0, 0, 0]) == pytest.approx(0.75)
    assert judge_agreement(_Brightness(), images, torch.tensor([1, 1, 0, 0]),
                           batch_size=3) == pytest.approx(1.0)


def test_zoo_judge_sees_real_test_digits_as_their_class_and_noise_as_no_target(digits_data):
    """On real digits the judge agrees with the labels (its accuracy); images that only carry
    a small perturbation of a source digit are not its target."""
    from captum_latent import zoo

    judge = zoo.digits_judge(progress=False)
    x, y = digits_data.test.images[:200], digits_data.test.labels[:200]
    assert judge_agreement(judge, x, y) >= 0.9
    sevens = digits_data.test.images[digits_data.test.labels == 1][:20]
    noisy = (sevens + 0.02 * torch.randn(sevens.shape, generator=torch.Generator().manual_seed(0))
             ).clamp(0, 1)
    assert judge_agreement(judge, noisy, 7) <= 0.1


@pytest.mark.parametrize("call, error, match", [
    (lambda: judge_agreement(_Brightness(), torch.zeros(2, 1, 4, 4), [0]), ValueError,
     "2 counterfactuals"),
    (lambda: judge_agreement(_Brightness(), torch.zeros(2, 1, 4, 4), 2), ValueError,
     r"\[0, 1\]"),
    (lambda: judge_agreement(_Brightness(), torch.zeros(2, 1, 4, 4), True), TypeError, "bool"),
    (lambda: judge_agreement(_Brightness(), torch.zeros(2, 1, 4, 4), [0.0, 1.0]), TypeError,
     "integers"),
    (lambda: judge_agreement(_Brightness(), np.zeros((2, 8, 8, 1)), 0), TypeError,
     "channel-last"),
    (lambda: judge_agreement(lambda x: x.flatten(1).mean(1), torch.zeros(2, 1, 4, 4), 0),
     ValueError, "one score per class"),
    (lambda: judge_agreement(_Brightness(), torch.zeros(2, 1, 4, 4), 0, batch_size=0),
     ValueError, "batch_size"),
    (lambda: mean_absolute_change(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 3)), ValueError,
     "same shape"),
])
def test_bad_input_is_refused_clearly(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_mean_absolute_change_is_per_image():
    x = torch.zeros(3, 2, 2, 2)
    cf = x.clone()
    cf[1, 0, 0, 0] = 0.8  # one of 8 values
    cf[2] = -0.25
    assert mean_absolute_change(x, cf).tolist() == pytest.approx([0.0, 0.1, 0.25])
