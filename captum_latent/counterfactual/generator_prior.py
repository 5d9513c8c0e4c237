"""``GeneratorPrior``: DISC counterfactuals searched in a generator's latent space.

For users who have a generator of their images (a GAN, a decoder), a counterfactual can be
searched among the images the generator makes instead of among the images a per-query
network can draw. Each query ``x`` is first reversed (``z0`` with ``G(z0) ~ x``, several codes
per query), then ``z`` moves from each of the best ``starts`` of them by gradient steps on
``-log p(y_bar | G(z))``, all searches in one batch on the core's
:class:`~captum_latent.core.LatentSearch`. The counterfactual is the query wherever the search
changed a pixel by at most ``keep_threshold`` and ``G(z)`` elsewhere, so it keeps what the
query has and shows only the change; a search stops once the classifier gives that image the
target class with probability ``target_probability`` (per-search stopping), and of a query's
searches the one the classifier is surest of is kept. Where the query's pixels given back cost
the classifier's belief (the target probability of the image shown stays below
``min_probability``), fewer are given back: the largest smaller threshold whose image reaches
it. Why these choices, with figures:
``docs/methods/disc.md`` ("Does another classifier believe it?").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from captum_latent.core import Adam, LatentSearch, Objective, Reconstruction, StopRule
from captum_latent.persistence import module_from_record, module_record
from captum_latent.validation import check_image_tensor, class_scores

__all__ = ["GeneratorPrior", "LatentCounterfactuals"]


@dataclass
class LatentCounterfactuals:
    """What :meth:`GeneratorPrior.counterfactuals` found for a batch of queries.

    Attributes
    ----------
    images : torch.Tensor
        ``(B, C, H, W)`` counterfactuals (the query where the search changed a pixel by at most
        ``keep_threshold``, the generator's image elsewhere).
    generated : torch.Tensor
        ``(B, C, H, W)`` the generator's images ``G(z)`` at the end of each search.
    reversals : torch.Tensor
        ``(B, C, H, W)`` ``G(z0)``, the reversal each kept search started from.
    reversal_errors : torch.Tensor
        ``(B,)`` mean squared error of each query's best reversal.
    reached : torch.Tensor
        ``(B,)`` bool: the search reached ``target_probability``.
    steps : torch.Tensor
        ``(B,)`` gradient steps of each counterfactual search (reversal not counted).
    keep_thresholds : torch.Tensor
        ``(B,)`` the threshold each image was made with: the query where
        ``|generated - reversals| <= keep_thresholds``, ``generated`` elsewhere
        (``keep_threshold``, or a smaller one where ``min_probability`` asked for it).
    """

    images: torch.Tensor
    generated: torch.Tensor
    reversals: torch.Tensor
    reversal_errors: torch.Tensor
    reached: torch.Tensor
    steps: torch.Tensor
    keep_thresholds: torch.Tensor


class _TargetProbability(Objective):
    """``-log p(target | G(z))`` per code. A problem has *reached* the target when the
    classifier gives its counterfactual -- the query wherever ``|G(z) - G(z0)| <= keep`` and
    ``G(z)`` elsewhere -- at least ``threshold`` (read by :class:`_Reached`)."""

    def __init__(self, classifier: nn.Module, targets: torch.Tensor, threshold: float,
                 queries: torch.Tensor, reversals: torch.Tensor, keep: float) -> None:
        super().__init__()
        self.classifier = classifier
        self.register_buffer("targets", targets)
        self.register_buffer("queries", queries)
        self.register_buffer("reversals", reversals)
        self.register_buffer("reached", torch.zeros(len(targets), dtype=torch.bool))
        self.log_threshold = math.log(threshold)
        self.keep = keep
        self.n_problems = len(targets)

    def log_probability(self, images: torch.Tensor, problems: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(self.classifier(images).float(), 1)
        return log_p.gather(1, self.targets[problems][:, None]).squeeze(1)

    def counterfactual(self, images: torch.Tensor, problems: torch.Tensor,
                       keep: torch.Tensor | float | None = None) -> torch.Tensor:
        """The image shown: the query where ``|images - reversal| <= keep`` (default the
        objective's threshold; a ``(B,)`` tensor gives one per image), ``images`` elsewhere."""
        keep = self.keep if keep is None else keep
        if isinstance(keep, torch.Tensor):
            keep = keep.view(-1, *[1] * (images.dim() - 1))
        changed = (images - self.reversals[problems]).abs() > keep
        return torch.where(changed, images, self.queries[problems])

    def forward(self, images: torch.Tensor, codes: torch.Tensor,
                problems: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            shown = self.log_probability(self.counterfactual(images.detach(), problems),
                                         problems)
        self.reached[problems] = shown >= self.log_threshold
        return -self.log_probability(images, problems)


class _Reached(StopRule):
    """Stop a code as soon as its problem reached the objective's target probability."""

    def __init__(self, objective: _TargetProbability) -> None:
        self.objective = objective

    def bind(self, n_problems, samples_per_problem, device):  # noqa: ANN001 - StopRule API
        if samples_per_problem != 1:
            raise ValueError("one counterfactual search per query")
        return self

    def check(self, losses: torch.Tensor, problems: torch.Tensor):  # noqa: ANN201
        reached = self.objective.reached[problems]
        return reached, torch.full_like(losses, -self.objective.log_threshold)


def _probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a probability in (0, 1), got {value!r}")
    return float(value)


#: thresholds tried, evenly spaced from ``keep_threshold`` down to 0, where the image shown
#: needs fewer of the query's pixels to reach ``min_probability``
_GIVE_BACK_LEVELS = 15


def _check_targets(targets: object, n: int, n_classes: int) -> torch.Tensor:
    """One class index per query, each in ``[0, n_classes)``."""
    if not isinstance(targets, torch.Tensor) or targets.is_floating_point() or \
            targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer torch.Tensor of class indices, got "
                        f"{getattr(targets, 'dtype', type(targets).__name__)}")
    if tuple(targets.shape) != (n,):
        raise ValueError(f"targets must have shape ({n},), one class per query, got "
                         f"{tuple(targets.shape)}")
    if n and (int(targets.min()) < 0 or int(targets.max()) >= n_classes):
        raise ValueError(f"targets must be class indices in [0, {n_classes}) (the classifier's "
                         f"classes), got values in [{int(targets.min())}, {int(targets.max())}]")
    return targets.long()


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class GeneratorPrior:
    """DISC prior for users with a generator: counterfactuals are the generator's images.

    Pass it as ``prior=`` to :class:`~captum_latent.counterfactual.DISCGenerator` or
    ``alibi_ext.DISC``. The search runs on the core's
    :class:`~captum_latent.core.LatentSearch` (batched codes, several reversal codes per query,
    batch-norm modes, per-query stopping); the DISC loss terms of image priors (semantic
    distance, manifold term, progressive schedule) are not used.

    Parameters
    ----------
    generator : nn.Module
        ``(B, d)`` codes to ``(B, C, H, W)`` images in the classifier's input range (the same
        range as the queries).
    latent_dim : int, optional
        Code size; default ``generator.latent_dim``, else inferred by probing.
    target_probability : float, default 0.9999
        A query's search stops once the classifier gives the target class this probability.
        Higher values go further into the target class (larger changes that an independent
        classifier agrees with more often: docs/benchmarks.md).
    min_probability : float or None, default 0.995
        The least target probability the image shown must keep. Where the query's pixels
        given back at ``keep_threshold`` leave the classifier below it (on the zoo digits, the
        queries an independent classifier most often disagreed with), fewer are given back:
        the largest of 15 thresholds evenly spaced from ``keep_threshold`` down to 0 whose
        image reaches it; where none does, the one the classifier is surest of. ``None``:
        always ``keep_threshold``.
    keep_threshold : float, default 0.32
        The counterfactual is the query wherever the search changed a pixel by at most this
        much (``|G(z) - G(z0)| <= keep_threshold``) and ``G(z)`` elsewhere; the search stops
        once the classifier gives *that* image the target probability. 0: the generator's image
        everywhere (the query's details are lost, larger changes). A higher threshold gives
        back more of the query (smaller changes); ``min_probability`` takes back what the
        classifier's belief cannot spare (0.32 with it against 0.28 without: judge agreement
        0.91-0.95 against 0.79-0.92 at changes 0.105-0.109 against 0.099-0.107 on three
        retrained zoos: docs/benchmarks.md).
    reversal_codes : int, default 4
        Codes searched per query for the reversal (the best is kept).
    reversal_steps : int, default 200
        Adam steps of the reversal.
    starts : int, default 3
        Counterfactual searches per query, from its best ``starts`` reversal codes; the one
        whose counterfactual the classifier gives the highest target probability is kept.
        (A batch of searches lasts as long as its slowest member: 3 instead of 4 took 40% less
        time at the same judge agreement and change on the zoo digits.)
    max_steps : int, default 300
        Most Adam steps of a counterfactual search.
    lr : float, default 0.05
        Adam step size on the codes (reversal and counterfactual search).
    batchnorm : {"eval", "batch", "as_is"}, default "eval"
        Batch-norm mode of the core.
    batch_size : int, default 4096
        Codes optimised together.
    device : str or torch.device, default "cpu"
        Where the generator runs (it must live there).

    Examples
    --------
    >>> import torch
    >>> from captum_latent import zoo
    >>> from captum_latent.counterfactual import DISCGenerator, GeneratorPrior
    >>> gan, model = zoo.digits_gan(progress=False), zoo.digits_classifier(progress=False)
    >>> x = zoo.digits().test.images[:2]
    >>> disc = DISCGenerator(model, prior=GeneratorPrior(gan.generator, reversal_steps=50))
    >>> result = disc.generate(x, "other", seed=0)
    >>> result.counterfactuals.shape
    torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        generator: nn.Module,
        *,
        latent_dim: int | None = None,
        target_probability: float = 0.9999,
        min_probability: float | None = 0.995,
        keep_threshold: float = 0.32,
        reversal_codes: int = 4,
        reversal_steps: int = 200,
        starts: int = 3,
        max_steps: int = 300,
        lr: float = 0.05,
        batchnorm: str = "eval",
        batch_size: int = 4096,
        device: torch.device | str = "cpu",
    ) -> None:
        if not isinstance(generator, nn.Module):
            raise TypeError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
        self.target_probability = _probability("target_probability", target_probability)
        self.min_probability = None if min_probability is None else _probability(
            "min_probability", min_probability)
        if isinstance(keep_threshold, bool) or not isinstance(keep_threshold, (int, float)) \
                or not keep_threshold >= 0:
            raise ValueError(f"keep_threshold must be a number >= 0, got {keep_threshold!r}")
        self.keep_threshold = float(keep_threshold)
        self.reversal_codes = _count("reversal_codes", reversal_codes)
        self.reversal_steps = _count("reversal_steps", reversal_steps)
        self.starts = _count("starts", starts)
        if self.starts > self.reversal_codes:
            raise ValueError(f"starts={starts} needs at least as many reversal_codes, got "
                             f"{reversal_codes}")
        self.max_steps = _count("max_steps", max_steps)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        self.lr = float(lr)
        self.search = LatentSearch(
            generator, latent_dim=latent_dim, batchnorm=batchnorm,
            max_iterations=max(self.reversal_steps, self.max_steps), restart_patience=None,
            optimizer=Adam(lr=self.lr), batch_size=batch_size, device=device,
        )

    @property
    def generator(self) -> nn.Module:
        return self.search.generator

    def __repr__(self) -> str:
        return (f"GeneratorPrior({type(self.generator).__name__}, latent_dim="
                f"{self.search.latent_dim}, target_probability={self.target_probability}, "
                f"min_probability={self.min_probability}, "
                f"keep_threshold={self.keep_threshold}, reversal_codes={self.reversal_codes}, "
                f"reversal_steps={self.reversal_steps}, starts={self.starts}, "
                f"max_steps={self.max_steps}, "
                f"lr={self.lr}, batchnorm={self.search.batchnorm!r})")

    # the generator travels as a state dict with a weightless skeleton (Alibi's save_explainer)
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        search = state.pop("search")
        state["_search"] = dict(
            generator=module_record(search.generator), latent_dim=search.latent_dim,
            batchnorm=search.batchnorm, batch_size=search.batch_size, device=str(search.device),
        )
        return state

    def __setstate__(self, state: dict) -> None:
        saved = state.pop("_search")
        state.setdefault("min_probability", None)  # pickled before it existed: as then
        device = saved["device"] if saved["device"] == "cpu" or torch.cuda.is_available() \
            else "cpu"
        self.__dict__.update(state)
        self.search = LatentSearch(
            module_from_record(saved["generator"], device), latent_dim=saved["latent_dim"],
            batchnorm=saved["batchnorm"], max_iterations=max(self.reversal_steps,
                                                             self.max_steps),
            restart_patience=None, optimizer=Adam(lr=self.lr), batch_size=saved["batch_size"],
            device=device,
        )

    def reverse(self, queries: torch.Tensor, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reversal codes ``(B, reversal_codes, d)`` of ``queries``, best first, and their
        MSEs ``(B, reversal_codes)``."""
        result = self.search.search(
            Reconstruction(queries), samples_per_problem=self.reversal_codes,
            max_iterations=self.reversal_steps, generator=generator,
        )
        order = result.losses.argsort(1)
        return (result.codes.gather(1, order[..., None].expand_as(result.codes)),
                result.losses.gather(1, order))

    def counterfactuals(
        self, classifier: nn.Module, queries: torch.Tensor, targets: torch.Tensor,
        generator: torch.Generator,
    ) -> LatentCounterfactuals:
        """Counterfactuals of ``queries`` (``(B, C, H, W)``) for ``targets`` (``(B,)``).

        ``generator`` is a CPU ``torch.Generator`` (reversal starts); the classifier is used as
        given and must live on the prior's device. Bad input (queries of another shape than the
        generator's images or with NaN, targets that are not one class index per query of the
        classifier's classes) is a ``ValueError`` or ``TypeError``.
        """
        device = self.search.device
        check_image_tensor("queries", queries, chw=self.search.image_shape)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        queries = queries.to(device)
        n_classes = class_scores("classifier", classifier, queries,
                                 when="(the queries, counting the classes)").shape[1]
        targets = _check_targets(targets, len(queries), n_classes).to(device)
        b, k = len(queries), self.starts
        search_gen = torch.Generator(device).manual_seed(
            int(torch.randint(0, 2**62, (1,), generator=generator)))
        codes, errors = self.reverse(queries, search_gen)
        starts = codes[:, :k].reshape(b * k, -1)  # one search per (query, reversal code)
        many = queries.repeat_interleave(k, 0)
        with torch.no_grad():
            reversals = self.search.generate(starts).to(queries.dtype)
        objective = _TargetProbability(classifier, targets.repeat_interleave(k),
                                       self.target_probability, many, reversals,
                                       self.keep_threshold)
        result = self.search.search(
            objective, samples_per_problem=1, stop=_Reached(objective),
            initial_codes=starts, max_iterations=self.max_steps, generator=search_gen,
        )
        with torch.no_grad():
            generated = result.images.reshape(b * k, *queries.shape[1:]).to(queries.dtype)
            problems = torch.arange(b * k, device=device)
            images = objective.counterfactual(generated, problems)
            # per query, the search whose counterfactual the classifier is surest of (on the
            # tuning digits this agreed with an independent judge more often than the search
            # with the smallest change: docs/methods/disc.md, how the settings were chosen)
            score = objective.log_probability(images, problems).reshape(b, k)
            best = score.argmax(1) + torch.arange(b, device=device) * k
            keep = self._give_back(objective, generated[best], best, score.max(1).values)
            images = objective.counterfactual(generated[best], best, keep)
        return LatentCounterfactuals(
            images=images, generated=generated[best], reversals=reversals[best],
            reversal_errors=errors.reshape(b, -1)[:, 0], reached=result.converged.reshape(-1)[best],
            steps=result.iterations.reshape(-1)[best], keep_thresholds=keep,
        )

    def _give_back(self, objective: _TargetProbability, generated: torch.Tensor,
                   problems: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
        """``(B,)`` keep threshold per image: ``keep_threshold`` where its image keeps
        ``min_probability`` (``log_p``: its log target probability), else the largest smaller
        level that does (or, where none does, the level the classifier is surest of)."""
        keep = torch.full_like(log_p, self.keep_threshold)
        if self.min_probability is None or self.keep_threshold == 0:
            return keep
        short = (log_p < math.log(self.min_probability)).nonzero().flatten()
        if not len(short):
            return keep
        levels = torch.linspace(self.keep_threshold, 0, _GIVE_BACK_LEVELS, device=keep.device)
        images, problems = generated[short], problems[short]
        # one level at a time: the classifier sees as many images at once as in the search
        log_p_levels = torch.stack([
            objective.log_probability(objective.counterfactual(images, problems, float(level)),
                                      problems) for level in levels])  # (levels, short)
        enough = log_p_levels >= math.log(self.min_probability)
        pick = torch.where(enough.any(0), enough.float().argmax(0), log_p_levels.argmax(0))
        keep[short] = levels[pick]
        return keep
