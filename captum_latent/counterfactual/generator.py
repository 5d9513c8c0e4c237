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
from captum_latent.counterfactual.generator_prior import GeneratorPrior
from captum_latent.counterfactual.manifold import DEPConsistency, ManifoldConsistency
from captum_latent.counterfactual.priors import DeepImagePrior, ImagePrior
from captum_latent.counterfactual.progressive import FixedSchedule, ProgressiveSchedule
from captum_latent.counterfactual.semantics import FeatureSemantics, PixelSemantics
from captum_latent.validation import class_scores
from captum_latent.zoo.dep import DEPClassifier

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


def _own_dep(classifier: object) -> DEPConsistency | None:
    """The classifier's own DEP term (Eq. 8, per-class ``s*``) when it is a calibrated
    :class:`DEPClassifier`, else None."""
    if isinstance(classifier, DEPClassifier) and bool(classifier.class_loss_scores.any()):
        return DEPConsistency(classifier.loss_predictor(),
                              target_loss=classifier.class_loss_scores.detach().cpu())
    return None


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
    prior : ImagePrior or GeneratorPrior, default DeepImagePrior()
        :class:`TVL2Prior`, :class:`DeepImagePrior` or :class:`INRPrior` (deep model
        inversion: only the classifier is needed), or :class:`GeneratorPrior` for users who
        have a generator of their images (a latent search; ``semantics``, ``schedule``,
        ``lambda_*`` and ``lr`` then do not apply, and ``manifold`` must be None).
    semantics : PixelSemantics or FeatureSemantics, default FeatureSemantics()
        ISO or LSO semantic preservation (LSO default layers: the classifier's conv blocks).
    manifold : ManifoldConsistency, None or "auto", default "auto"
        :class:`DEPConsistency` or :class:`DUQConsistency`; ``None`` for no ``L_mc``.
        ``"auto"``: the classifier's own DEP predictor when it is a calibrated
        :class:`DEPClassifier` (``DEPConsistency(classifier.loss_predictor(),
        classifier.class_loss_scores)``), else none (and none with a :class:`GeneratorPrior`).
    schedule : ProgressiveSchedule or FixedSchedule, default ProgressiveSchedule()
        Optimisation stages (progressive: layers unfrozen one by one, ``lambda1 *= kappa``).
    lambda_semantic : float, default 0.01
        ``lambda1`` of Eq. 5. The default keeps the change small but lets the target class
        show: with ``lambda1 = 1`` (the paper's) an independent classifier agreed with 2.5% of
        the zoo digits' counterfactuals, with 0.01 (and DIP + DEP) with 70% (docs/benchmarks.md,
        "DISC counterfactuals that another classifier believes").
    lambda_manifold, lambda_target : float, default 1.0
        ``lambda2``, ``lambda3`` of Eq. 5.
    lr : float, optional
        Adam learning rate; default: the prior's ``lr``.
    device : str or torch.device, optional
        Where to optimise; default: the queries' device. The classifier (and manifold model)
        must already live there.
    target_probability : float or None, default 0.999
        Stop each query at the first step where the classifier gives its counterfactual this
        probability of the target class (that image is returned); None runs every step of the
        schedule (the paper's protocol). Stopping confident rather than at the first valid
        step is what lets an independent classifier agree (docs/benchmarks.md); stopping
        there rather than at the schedule's end keeps changes small where the class flips
        easily (zoo faces: mean change 0.209 instead of 0.259).
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
        manifold: ManifoldConsistency | None | str = "auto",
        schedule: ProgressiveSchedule | FixedSchedule | None = None,
        lambda_semantic: float = 0.01,
        lambda_manifold: float = 1.0,
        lambda_target: float = 1.0,
        lr: float | None = None,
        device: str | torch.device | None = None,
        show_progress: bool = False,
        target_probability: float | None = 0.999,
    ) -> None:
        if not callable(classifier):
            raise TypeError(f"classifier must be callable, got {type(classifier).__name__}")
        prior = DeepImagePrior() if prior is None else prior
        if not isinstance(prior, (ImagePrior, GeneratorPrior)):
            raise TypeError(f"prior must be an ImagePrior or a GeneratorPrior, got "
                            f"{type(prior).__name__}")
        #: ``manifold`` as given ("auto" is resolved again for another classifier)
        self.manifold_setting = manifold
        if isinstance(manifold, str):
            if manifold != "auto":
                raise ValueError(f"manifold must be a ManifoldConsistency, None or 'auto', got "
                                 f"{manifold!r}")
            manifold = None if isinstance(prior, GeneratorPrior) else _own_dep(classifier)
        if isinstance(prior, GeneratorPrior) and manifold is not None:
            raise ValueError("a GeneratorPrior's counterfactuals are the generator's images: "
                             "they take no manifold term (manifold must be None)")
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
        if target_probability is not None and (
                isinstance(target_probability, bool)
                or not isinstance(target_probability, (int, float))
                or not 0 < target_probability < 1):
            raise ValueError(f"target_probability must be in (0, 1) or None, got "
                             f"{target_probability!r}")
        self.target_probability = None if target_probability is None else \
            float(target_probability)
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
            "target_probability": self.target_probability,
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

        if isinstance(self.prior, GeneratorPrior):
            found = self.prior.counterfactuals(self.classifier, queries, targets, generator)
            cf, history = found.images.detach(), []
        else:
            with torch.enable_grad():
                state = self.prior.build(queries, generator).to(device)
                history, reached = self._optimise(state, queries, source, targets)
            with torch.no_grad():
                cf = state().detach()
                if reached is not None:  # each query's image when it reached the target
                    cf = torch.where(reached[1].view(-1, 1, 1, 1), reached[0], cf)
        probs = torch.softmax(self._classify(cf, when="on the counterfactuals"), 1)
        predicted = probs.argmax(1)
        return CounterfactualResult(
            queries=queries, counterfactuals=cf, source=source, target=targets,
            probabilities=probs, predicted=predicted, valid=predicted == targets,
            loss_history=history, seconds=time.perf_counter() - start,
        )

    def _optimise(self, state: nn.Module, queries: torch.Tensor, source: torch.Tensor,
                  targets: torch.Tensor
                  ) -> tuple[list[float], tuple[torch.Tensor, torch.Tensor] | None]:
        """Run the stages; with ``target_probability``, also each query's image at the first
        step where the classifier gives it that probability of the target (images, flags)."""
        stages = self.schedule.stages(len(state.layers))
        history: list[float] = []
        stop = self.target_probability
        kept = queries.clone() if stop is not None else None
        done = torch.zeros(len(queries), dtype=torch.bool, device=queries.device)
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
                    if stop is not None:
                        with torch.no_grad():
                            p = torch.softmax(logits.float(), 1).gather(
                                1, targets[:, None]).squeeze(1)
                            now = (p >= stop) & ~done
                            kept[now] = images.detach()[now]
                            done |= now
                        if bool(done.all()):
                            bar.close()
                            return history, (kept, done)
                    loss = lam1 * distance + self.lambda_target * F.cross_entropy(
                        logits, targets, reduction="none")
                    loss = loss + state.regularizer(images)
                    if self.manifold is not None and self.lambda_manifold > 0:
                        loss = loss + self.lambda_manifold * self.manifold(images, source,
                                                                           targets)
                    total = (loss * ~done).sum()
                    opt.zero_grad(set_to_none=True)
                    total.backward(inputs=params)
                    opt.step()
                    state.project()
                    history.append(float(total.detach()) / len(queries))
                    bar.update(1)
        bar.close()
        return history, (None if stop is None else (kept, done))


register_adapter(DISCGenerator, DISCGeneratorDatasetAdapter)
