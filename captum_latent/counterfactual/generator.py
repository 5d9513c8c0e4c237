"""``DISCGenerator``: counterfactuals for batches of queries by deep model inversion (Eq. 5).

For each query ``x`` with target class ``y_bar`` the generator optimises the weights of an
image prior (one set of weights per query, all queries in one batched computation)::

    min  lambda1 * kappa^stage * d(x_bar, x) + lambda2 * L_mc(x_bar)
         + lambda3 * CE(F(x_bar), y_bar) + R(x_bar)

with ``d`` the semantic distance (ISO or LSO), ``L_mc`` an optional manifold-consistency term
(DEP or DUQ), ``R`` the prior's explicit penalty (TV + L2 only) and the stages given by a
schedule (progressive optimisation, §3.4). Only the prior's weights receive gradients: the
classifier's parameters and mode are left as the caller set them (put it in eval mode).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from captum_latent.adapters import register_adapter
from captum_latent.counterfactual._dataset import DISCGeneratorDatasetAdapter
from captum_latent.counterfactual.manifold import ManifoldConsistency
from captum_latent.counterfactual.priors import ImagePrior, INRPrior
from captum_latent.counterfactual.progressive import FixedSchedule, ProgressiveSchedule
from captum_latent.counterfactual.semantics import FeatureSemantics, PixelSemantics
from captum_latent.validation import class_scores

__all__ = ["CounterfactualResult", "DISCGenerator"]

TargetSpec = Union[int, Sequence[int], torch.Tensor, str]


@dataclass
class CounterfactualResult:
    """Counterfactuals for a batch of queries.

    Attributes
    ----------
    queries, counterfactuals : torch.Tensor
        ``(B, C, H, W)`` query images and their counterfactuals, in [0, 1].
    source, target : torch.Tensor
        ``(B,)`` classes the classifier gives the queries, and the requested classes.
    probabilities : torch.Tensor
        ``(B, K)`` softmax output of the classifier on the counterfactuals.
    predicted : torch.Tensor
        ``(B,)`` predicted classes of the counterfactuals.
    valid : torch.Tensor
        ``(B,)`` bool, ``predicted == target``.
    loss_history : list of float
        Mean total loss after every optimisation step (all stages).
    seconds : float
        Wall-clock time of :meth:`DISCGenerator.generate` (prior fitting included).
    """

    queries: torch.Tensor
    counterfactuals: torch.Tensor
    source: torch.Tensor
    target: torch.Tensor
    probabilities: torch.Tensor
    predicted: torch.Tensor
    valid: torch.Tensor
    loss_history: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def difference(self) -> torch.Tensor:
        """``counterfactuals - queries``, shape ``(B, C, H, W)``."""
        return self.counterfactuals - self.queries

    @property
    def validity(self) -> float:
        """Fraction of counterfactuals classified as their target."""
        return float(self.valid.float().mean())


def _check_weight(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


class DISCGenerator:
    """Deep Inversion for Synthesizing Counterfactuals (Thiagarajan et al.), for batches.

    Parameters
    ----------
    classifier : nn.Module
        Maps ``(B, C, H, W)`` images in [0, 1] to ``(B, K)`` logits; used as given (eval mode
        expected), never modified.
    prior : ImagePrior, default INRPrior()
        :class:`TVL2Prior`, :class:`DeepImagePrior` or :class:`INRPrior`.
    semantics : PixelSemantics or FeatureSemantics, default FeatureSemantics()
        ISO or LSO semantic preservation (LSO default layers: the classifier's conv blocks).
    manifold : ManifoldConsistency, optional
        :class:`DEPConsistency` or :class:`DUQConsistency`; ``None`` for no ``L_mc``.
    schedule : ProgressiveSchedule or FixedSchedule, default ProgressiveSchedule()
        Optimisation stages (progressive: layers unfrozen one by one, ``lambda1 *= kappa``).
    lambda_semantic, lambda_manifold, lambda_target : float
        ``lambda1``, ``lambda2``, ``lambda3`` of Eq. 5.
    lr : float, optional
        Adam learning rate; default: the prior's ``lr``.
    device : str or torch.device, optional
        Where to optimise; default: the queries' device. The classifier (and manifold model)
        must already live there.
    show_progress : bool, default False
        Show a tqdm progress bar over optimisation steps.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.counterfactual import DISCGenerator, TVL2Prior, FixedSchedule
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator ...>
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
    >>> disc = DISCGenerator(model, prior=TVL2Prior(lr=0.05), semantics=PixelSemantics(),
    ...                      schedule=FixedSchedule(steps=60))
    >>> x = torch.full((3, 1, 4, 4), 0.5)
    >>> target = 1 - model(x).argmax(1)
    >>> result = disc.generate(x, target, seed=0)
    >>> result.counterfactuals.shape, result.validity
    (torch.Size([3, 1, 4, 4]), 1.0)
    """

    def __init__(
        self,
        classifier: nn.Module,
        prior: ImagePrior | None = None,
        semantics: PixelSemantics | FeatureSemantics | None = None,
        manifold: ManifoldConsistency | None = None,
        schedule: ProgressiveSchedule | FixedSchedule | None = None,
        lambda_semantic: float = 1.0,
        lambda_manifold: float = 1.0,
        lambda_target: float = 1.0,
        lr: float | None = None,
        device: str | torch.device | None = None,
        show_progress: bool = False,
    ) -> None:
        if not callable(classifier):
            raise TypeError(f"classifier must be callable, got {type(classifier).__name__}")
        prior = INRPrior() if prior is None else prior
        if not isinstance(prior, ImagePrior):
            raise TypeError(f"prior must be an ImagePrior, got {type(prior).__name__}")
        semantics = FeatureSemantics() if semantics is None else semantics
        if not isinstance(semantics, (PixelSemantics, FeatureSemantics)):
            raise TypeError("semantics must be PixelSemantics or FeatureSemantics, got "
                            f"{type(semantics).__name__}")
        if manifold is not None and not isinstance(manifold, ManifoldConsistency):
            raise TypeError("manifold must be a ManifoldConsistency or None, got "
                            f"{type(manifold).__name__}")
        schedule = ProgressiveSchedule() if schedule is None else schedule
        if not isinstance(schedule, (ProgressiveSchedule, FixedSchedule)):
            raise TypeError("schedule must be ProgressiveSchedule or FixedSchedule, got "
                            f"{type(schedule).__name__}")
        for name, value in (("lambda_semantic", lambda_semantic),
                            ("lambda_manifold", lambda_manifold),
                            ("lambda_target", lambda_target)):
            _check_weight(name, value)
        if lr is not None and (not isinstance(lr, (int, float)) or lr <= 0):
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        if isinstance(semantics, FeatureSemantics) and isinstance(classifier, nn.Module):
            semantics.resolve(classifier)  # fail early on unknown layer names
        self.classifier = classifier
        self.prior = prior
        self.semantics = semantics
        self.manifold = manifold
        self.schedule = schedule
        self.lambda_semantic = float(lambda_semantic)
        self.lambda_manifold = float(lambda_manifold)
        self.lambda_target = float(lambda_target)
        self.lr = float(prior.lr if lr is None else lr)
        self.device = None if device is None else torch.device(device)
        self.show_progress = show_progress

    def params(self) -> dict[str, object]:
        """JSON-friendly description of the configuration (for explanation metadata)."""
        return {
            "prior": repr(self.prior),
            "semantics": repr(self.semantics),
            "manifold": None if self.manifold is None else self.manifold.name,
            "schedule": repr(self.schedule),
            "lambda_semantic": self.lambda_semantic,
            "lambda_manifold": self.lambda_manifold,
            "lambda_target": self.lambda_target,
            "lr": self.lr,
        }

    def _classify(self, images: torch.Tensor, when: str) -> torch.Tensor:
        return class_scores("classifier", self.classifier, images, when=when)

    def _targets(self, target: TargetSpec, logits: torch.Tensor) -> torch.Tensor:
        b, k = logits.shape
        if isinstance(target, str):
            if target != "other":
                raise ValueError(f"target must be a class index, a sequence of them or "
                                 f"'other', got {target!r}")
            return logits.topk(2, dim=1).indices[:, 1]
        if isinstance(target, bool):
            raise TypeError("target must be an int, a sequence of ints or 'other', got bool")
        if isinstance(target, int):
            out = torch.full((b,), target, dtype=torch.long, device=logits.device)
        else:
            out = torch.as_tensor(target, device=logits.device)
            if out.dtype.is_floating_point or out.dtype == torch.bool:
                raise TypeError(f"target must hold integers, got dtype {out.dtype}")
            out = out.long().reshape(-1)
            if out.numel() != b:
                raise ValueError(f"target has {out.numel()} entries for {b} queries")
        if out.min() < 0 or out.max() >= k:
            raise ValueError(f"target classes must be in [0, {k - 1}], got {out.tolist()}")
        return out

    def generate(
        self, queries: torch.Tensor, target: TargetSpec, *, seed: int | None = 0,
        generator: torch.Generator | None = None,
    ) -> CounterfactualResult:
        """Counterfactuals of ``queries`` for the ``target`` classes.

        Parameters
        ----------
        queries : torch.Tensor
            ``(B, C, H, W)`` images in [0, 1].
        target : int, sequence of int, tensor or ``"other"``
            Target class per query (one int for all); ``"other"`` takes each query's
            second most likely class.
        seed : int, default 0
            Seed of the priors' random initialisation (used when ``generator`` is None).
        generator : torch.Generator, optional
            CPU random generator for the priors' initialisation; overrides ``seed``.

        Returns
        -------
        CounterfactualResult
        """
        start = time.perf_counter()
        if not isinstance(queries, torch.Tensor):
            raise TypeError(f"queries must be a torch.Tensor, got {type(queries).__name__}")
        if queries.ndim != 4 or queries.shape[0] == 0:
            raise ValueError(f"queries must have shape (B, C, H, W) with B >= 1, got "
                             f"{tuple(queries.shape)}")
        if not queries.dtype.is_floating_point:
            raise TypeError(f"queries must be floating point, got {queries.dtype}")
        if generator is None:
            if seed is None:
                raise ValueError("give seed= or generator=")
            generator = torch.Generator().manual_seed(int(seed))
        device = self.device or queries.device
        queries = queries.detach().to(device)
        logits0 = self._classify(queries, when="on the queries")
        source = logits0.argmax(1)
        targets = self._targets(target, logits0)

        with torch.enable_grad():
            state = self.prior.build(queries, generator).to(device)
            history = self._optimise(state, queries, source, targets)
        with torch.no_grad():
            cf = state().detach()
        probs = torch.softmax(self._classify(cf, when="on the counterfactuals"), 1)
        predicted = probs.argmax(1)
        return CounterfactualResult(
            queries=queries, counterfactuals=cf, source=source, target=targets,
            probabilities=probs, predicted=predicted, valid=predicted == targets,
            loss_history=history, seconds=time.perf_counter() - start,
        )

    def _optimise(self, state: nn.Module, queries: torch.Tensor, source: torch.Tensor,
                  targets: torch.Tensor) -> list[float]:
        stages = self.schedule.stages(len(state.layers))
        history: list[float] = []
        bar = tqdm(total=sum(s.steps for s in stages), disable=not self.show_progress,
                   desc="DISC", unit="step", leave=False)
        with self.semantics.bind(self.classifier, queries) as evaluate:
            for stage in stages:
                params = [p for group in state.layers[: stage.n_layers] for p in group]
                opt = torch.optim.Adam(params, lr=self.lr)
                lam1 = self.lambda_semantic * stage.lambda1_scale
                for _ in range(stage.steps):
                    images = state()
                    logits, distance = evaluate(images)
                    loss = lam1 * distance + self.lambda_target * F.cross_entropy(
                        logits, targets, reduction="none")
                    loss = loss + state.regularizer(images)
                    if self.manifold is not None and self.lambda_manifold > 0:
                        loss = loss + self.lambda_manifold * self.manifold(images, source,
                                                                           targets)
                    total = loss.sum()
                    opt.zero_grad(set_to_none=True)
                    total.backward(inputs=params)
                    opt.step()
                    state.project()
                    history.append(float(total.detach()) / len(queries))
                    bar.update(1)
        bar.close()
        return history


register_adapter(DISCGenerator, DISCGeneratorDatasetAdapter)
