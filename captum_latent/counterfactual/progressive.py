"""Optimisation schedules for DISC: fixed, or progressive (paper §3.4).

A schedule turns the prior's number of layers ``L`` into a list of :class:`Stage` objects.
Progressive optimisation trains the first ``i`` layers in stage ``i`` (the others stay at
their fitted initial state) and multiplies the semantic weight ``lambda1`` by ``kappa`` from
one stage to the next, so later stages may move further from the query.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FixedSchedule", "ProgressiveSchedule", "Stage"]


@dataclass(frozen=True)
class Stage:
    """One optimisation stage: train the first ``n_layers`` layers for ``steps`` steps with the
    semantic weight scaled by ``lambda1_scale``."""

    n_layers: int
    lambda1_scale: float
    steps: int


def _check_int(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class FixedSchedule:
    """All layers trained together for ``steps`` steps with a constant ``lambda1``.

    Examples
    --------
    >>> FixedSchedule(steps=100).stages(n_layers=3)
    [Stage(n_layers=3, lambda1_scale=1.0, steps=100)]
    """

    steps: int = 200

    def __post_init__(self) -> None:
        _check_int("steps", self.steps, 1)

    def stages(self, n_layers: int) -> list[Stage]:
        _check_int("n_layers", n_layers, 1)
        return [Stage(n_layers, 1.0, self.steps)]


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Unfreeze the prior's layers one by one while relaxing ``lambda1`` by ``kappa``.

    Parameters
    ----------
    steps_per_stage : int, default 50
        Optimiser steps per stage; there are as many stages as the prior has layers.
    kappa : float, default 0.7
        Factor in (0, 1] applied to ``lambda1`` at each new stage.

    Examples
    --------
    >>> [(s.n_layers, round(s.lambda1_scale, 2)) for s in ProgressiveSchedule(10, 0.5).stages(3)]
    [(1, 1.0), (2, 0.5), (3, 0.25)]
    """

    steps_per_stage: int = 50
    kappa: float = 0.7

    def __post_init__(self) -> None:
        _check_int("steps_per_stage", self.steps_per_stage, 1)
        if not isinstance(self.kappa, (int, float)) or not 0 < self.kappa <= 1:
            raise ValueError(f"kappa must be in (0, 1], got {self.kappa!r}")

    def stages(self, n_layers: int) -> list[Stage]:
        _check_int("n_layers", n_layers, 1)
        return [Stage(i, float(self.kappa ** (i - 1)), self.steps_per_stage)
                for i in range(1, n_layers + 1)]
