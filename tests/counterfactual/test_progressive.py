from __future__ import annotations

import pytest
import torch

from captum_latent.counterfactual import (
    DeepImagePrior,
    DISCGenerator,
    FixedSchedule,
    PixelSemantics,
    ProgressiveSchedule,
    Stage,
)


def test_progressive_stages_unfreeze_and_relax():
    stages = ProgressiveSchedule(steps_per_stage=7, kappa=0.5).stages(4)
    assert [s.n_layers for s in stages] == [1, 2, 3, 4]
    assert [s.lambda1_scale for s in stages] == [1.0, 0.5, 0.25, 0.125]
    assert all(s.steps == 7 for s in stages)
    assert FixedSchedule(9).stages(4) == [Stage(4, 1.0, 9)]


@pytest.mark.parametrize("kwargs", [{"kappa": 0.0}, {"kappa": 1.5}, {"steps_per_stage": 0}])
def test_bad_schedules_are_rejected(kwargs):
    with pytest.raises((ValueError, TypeError)):
        ProgressiveSchedule(**kwargs)


class _FirstTwoOnly(ProgressiveSchedule):
    def stages(self, n_layers: int) -> list[Stage]:
        return [Stage(2, 1.0, 5)]


def test_layers_beyond_the_stage_keep_their_initial_state(digits_classifier, threes):
    x = threes[:2]
    prior = DeepImagePrior(channels=(4, 8), fit_steps=5)
    gen = DISCGenerator(digits_classifier, prior=prior, semantics=PixelSemantics(),
                        schedule=_FirstTwoOnly())
    state = prior.build(x, torch.Generator().manual_seed(0))
    before = [[p.detach().clone() for p in group] for group in state.layers]
    source = digits_classifier(x).argmax(1)
    gen._optimise(state, x, source, torch.full_like(source, 8))
    changed = [any(not torch.equal(p, q) for p, q in zip(group, old))
               for group, old in zip(state.layers, before)]
    assert changed == [True, True, False, False, False]
