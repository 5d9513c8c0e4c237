"""The batched latent-search engine: ``min_z loss_i(G(z_i))`` for many codes at once.

Requests are streamed as *tickets*: ``P`` problems times ``N`` samples give ``T = P N``
tickets, served by a fixed number of slots (the batch). Every iteration runs one batched
forward and backward pass; codes that meet their stop rule are harvested and their slots
refilled with the next tickets (fresh codes from the prior, fresh optimiser state), so a
request larger than the memory budget is chunked without a Python loop over samples.

Should the device run out of memory anyway (a CUDA out-of-memory error in the forward or the
backward pass), the run halves its batch, puts the evicted slots' tickets back in the queue
(they restart from fresh codes), warns once per engine, and goes on; the engine keeps the
smaller ``batch_size`` for later searches.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from captum_latent.seeding import make_generator

from .batchnorm import BATCHNORM_MODES, batchnorm_mode
from .memory import bytes_per_code
from .objectives import Objective
from .optimizers import Adam, RowwiseOptimizer
from .priors import LatentPrior, StandardNormal
from .probe import infer_latent_dim
from .projection import Projection
from .stopping import StopRule

__all__ = ["LatentSearch", "SearchResult"]


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :meth:`LatentSearch.search`; every tensor is indexed ``[problem, sample]``.

    Attributes
    ----------
    codes : torch.Tensor
        ``(P, N, d)`` harvested codes (for samples that never met the stop rule: the
        lowest-loss code seen, over all restarts).
    images : torch.Tensor
        ``(P, N, C, H, W)`` float32 images generated from ``codes`` during the search.
    losses : torch.Tensor
        ``(P, N)`` objective value of each harvested code.
    iterations : torch.Tensor
        ``(P, N)`` gradient steps spent on each sample, restarts included.
    restarts : torch.Tensor
        ``(P, N)`` random restarts each sample needed.
    converged : torch.Tensor
        ``(P, N)`` whether the sample met its stop rule (always ``False`` without one).
    thresholds : torch.Tensor
        ``(P, N)`` threshold each sample was held to when harvested (NaN without a rule).
    steps : int
        Batched forward/backward passes the engine ran.
    batch_size : int
        Number of slots (codes optimised together).
    """

    codes: torch.Tensor
    images: torch.Tensor
    losses: torch.Tensor
    iterations: torch.Tensor
    restarts: torch.Tensor
    converged: torch.Tensor
    thresholds: torch.Tensor
    steps: int
    batch_size: int

    @property
    def success_rate(self) -> float:
        """Fraction of samples that met their stop rule."""
        return float(self.converged.float().mean())


def _is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device out-of-memory error (CUDA, MPS or a wrapped one)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _positive_int(name: str, value: int | None, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class LatentSearch:
    """Batched search for codes ``z`` minimising a per-sample objective on ``G(z)``.

    The engine combines small strategy objects: an :class:`~captum_latent.core.Objective`
    (per call), a :class:`~captum_latent.core.LatentPrior` that draws initial and restart
    codes, a row-wise optimiser (:class:`Adam`, :class:`RMSprop`), an optional
    :class:`~captum_latent.core.Projection`, a :class:`~captum_latent.core.StopRule` (per call),
    and a batch-norm mode. The generator is never modified: only gradients with respect to the
    codes are computed, and batch-norm flags are restored after every search.

    Parameters
    ----------
    generator : nn.Module
        Maps ``(B, d)`` codes to ``(B, C, H, W)`` images. Must already be on ``device``.
    latent_dim : int, optional
        Code dimension; defaults to ``generator.latent_dim``, else ``prior.latent_dim``, else
        the input size of the generator's first layer (:func:`infer_latent_dim`).
    prior : LatentPrior, optional
        Initial and restart codes; default :class:`StandardNormal`.
    optimizer : RowwiseOptimizer, optional
        Default ``Adam(lr=0.05)``.
    projection : Projection or callable, optional
        Applied to codes after initialisation and after every step (e.g. ``Clip(-1, 1)``).
    batchnorm : {"eval", "batch", "as_is"}
        Batch-norm behaviour (see :mod:`captum_latent.core.batchnorm`). Default ``"eval"``:
        codes then reproduce their images when the generator is called in eval mode, and on the
        zoo's digits GAN it needed fewer iterations than ``"batch"`` to reach the masked
        threshold (measured in ``docs/methods/latent_search.md``).
    max_iterations : int
        Gradient steps allowed per sample (restarts included).
    restart_patience : int, optional
        Redraw a code from the prior when its best loss has not improved by a relative
        ``restart_tolerance`` for this many steps. ``None``: never restart.
    restart_tolerance : float
        Relative improvement that counts as progress for ``restart_patience``.
    batch_size : int
        Maximum number of codes optimised together.
    memory_budget : int, optional
        Bytes available for codes in flight; the batch is reduced to fit, from an estimate of
        the generator's activation memory per code (:func:`bytes_per_code`). Independently of
        this estimate, a device out-of-memory error during a search halves the batch and
        retries (with one warning per engine) instead of failing.
    device : str or torch.device
        Where codes live and the generator runs.
    autocast_dtype : torch.dtype, optional
        Run generator and objective under ``torch.autocast`` with this dtype (e.g.
        ``torch.bfloat16``); codes, optimiser state and losses stay float32.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.core import LatentSearch, Reconstruction, LossThreshold
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> nn = torch.nn
    >>> g = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4)))
    >>> target = g(torch.randn(3, 4)).detach()
    >>> search = LatentSearch(g, latent_dim=4, max_iterations=500)
    >>> result = search.search(Reconstruction(target), stop=LossThreshold(1e-5), seed=0)
    >>> result.codes.shape, bool(result.converged.all())
    (torch.Size([3, 1, 4]), True)
    """

    def __init__(
        self,
        generator: nn.Module,
        *,
        latent_dim: int | None = None,
        prior: LatentPrior | None = None,
        optimizer: RowwiseOptimizer | None = None,
        projection: Projection | None = None,
        batchnorm: str = "eval",
        max_iterations: int = 1000,
        restart_patience: int | None = None,
        restart_tolerance: float = 1e-3,
        batch_size: int = 4096,
        memory_budget: int | None = None,
        device: torch.device | str = "cpu",
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if not isinstance(generator, nn.Module):
            raise TypeError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
        if prior is not None and not isinstance(prior, LatentPrior):
            raise TypeError(f"prior must be a LatentPrior, got {type(prior).__name__}")
        if latent_dim is None:
            latent_dim = getattr(generator, "latent_dim", None)
            if latent_dim is None:  # the prior's size, else the generator's first layer's
                latent_dim = prior.latent_dim if prior is not None else infer_latent_dim(
                    generator, device)
        _positive_int("latent_dim", latent_dim)
        if prior is not None and prior.latent_dim != latent_dim:
            raise ValueError(f"prior.latent_dim={prior.latent_dim} but latent_dim={latent_dim}")
        optimizer = Adam() if optimizer is None else optimizer
        if not isinstance(optimizer, RowwiseOptimizer):
            raise TypeError(
                f"optimizer must be a RowwiseOptimizer (Adam, RMSprop), got "
                f"{type(optimizer).__name__}"
            )
        if projection is not None and not callable(projection):
            raise TypeError(f"projection must be callable, got {type(projection).__name__}")
        if batchnorm not in BATCHNORM_MODES:
            raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}, got {batchnorm!r}")
        if not (isinstance(restart_tolerance, (int, float)) and 0 <= restart_tolerance < 1):
            raise ValueError(f"restart_tolerance must be in [0, 1), got {restart_tolerance!r}")
        if autocast_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(
                "autocast_dtype must be None, torch.bfloat16 or torch.float16, got "
                f"{autocast_dtype!r}"
            )
        self.generator = generator
        self.latent_dim = int(latent_dim)
        self.device = torch.device(device)
        prior = prior if prior is not None else StandardNormal(self.latent_dim)
        self.prior = prior.to(self.device)
        self.optimizer = optimizer
        self.projection = projection
        self.batchnorm = batchnorm
        self.max_iterations = _positive_int("max_iterations", max_iterations)
        self.restart_patience = _positive_int("restart_patience", restart_patience, allow_none=True)
        self.restart_tolerance = float(restart_tolerance)
        self.autocast_dtype = autocast_dtype
        self.image_shape = self._probe()
        self.batch_size = _positive_int("batch_size", batch_size)
        if memory_budget is not None:
            _positive_int("memory_budget", memory_budget)
            per_code = bytes_per_code(self._generate, self.latent_dim, device=self.device)
            fit = memory_budget // per_code
            if fit < 1:
                raise ValueError(
                    f"memory_budget={memory_budget} bytes is below the estimated {per_code} bytes "
                    "needed by one code"
                )
            self.batch_size = min(self.batch_size, int(fit))

    # -- generator evaluation -------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _generate(self, codes: torch.Tensor) -> torch.Tensor:
        with batchnorm_mode(self.generator, self.batchnorm), self._autocast():
            return self.generator(codes)

    def generate(self, codes: torch.Tensor) -> torch.Tensor:
        """Images ``G(codes)`` as the search sees them (its batch-norm mode and autocast), without
        gradients, in chunks of ``batch_size``; float32, on the engine's device.

        Examples
        --------
        >>> import torch
        >>> g = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Unflatten(1, (1, 4, 4)))
        >>> LatentSearch(g, latent_dim=4).generate(torch.zeros(3, 4)).shape
        torch.Size([3, 1, 4, 4])
        """
        if not isinstance(codes, torch.Tensor) or codes.dim() != 2 \
                or codes.shape[1] != self.latent_dim:
            raise ValueError(
                f"codes must be a (B, {self.latent_dim}) tensor, got "
                f"{tuple(getattr(codes, 'shape', ())) or type(codes).__name__}"
            )
        codes = codes.to(device=self.device, dtype=torch.float32)
        with torch.no_grad():
            return torch.cat([self._generate(chunk).float()
                              for chunk in codes.split(self.batch_size)])

    def _probe(self) -> tuple[int, ...]:
        codes = torch.randn(
            2, self.latent_dim, device=self.device,
            generator=torch.Generator(device=self.device).manual_seed(0),
        )
        try:
            with torch.no_grad():
                out = self._generate(codes)
        except Exception as e:  # the user's module failed: say what we fed it
            raise TypeError(
                f"generator failed on codes of shape (2, {self.latent_dim}) on {self.device}: {e}"
            ) from e
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"generator must map (B, {self.latent_dim}) codes to (B, C, H, W) images, "
                f"got {shape} for B=2"
            )
        if out.device.type != self.device.type:
            raise ValueError(f"generator returned images on {out.device}, expected {self.device}")
        return tuple(out.shape[1:])

    # -- the search -----------------------------------------------------------------------
    def search(
        self,
        objective: Objective,
        *,
        samples_per_problem: int = 1,
        n_problems: int | None = None,
        stop: StopRule | None = None,
        initial_codes: torch.Tensor | None = None,
        prior: LatentPrior | None = None,
        max_iterations: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        show_progress: bool = False,
    ) -> SearchResult:
        """Run the search for ``n_problems * samples_per_problem`` codes.

        Parameters
        ----------
        objective : Objective or callable
            ``objective(images, codes, problems) -> (B,)`` losses. An ``nn.Module`` objective
            is moved to the engine's device (``.to(device)``, in place).
        samples_per_problem : int
            Codes wanted per problem (``N``).
        n_problems : int, optional
            Number of problems ``P``; defaults to ``objective.n_problems``.
        stop : StopRule, optional
            When to harvest a code early; without one every code runs ``max_iterations``.
        initial_codes : torch.Tensor, optional
            ``(P, N, d)`` (or ``(P * N, d)``) starting codes, e.g. a warm start between
            MimicGAN's alternating steps; restarts still draw from the prior.
        prior : LatentPrior, optional
            Overrides the engine's prior for this call (e.g. a diverse-encoder initialiser).
        max_iterations : int, optional
            Overrides the engine's per-sample step budget for this call.
        seed, generator
            Randomness for initial and restart codes (at most one; a ``torch.Generator`` must
            be on the engine's device).
        show_progress : bool
            Show a tqdm bar counting harvested codes.
        """
        n_samples = _positive_int("samples_per_problem", samples_per_problem)
        if not callable(objective):
            raise TypeError(f"objective must be callable, got {type(objective).__name__}")
        declared = getattr(objective, "n_problems", None)
        if n_problems is None:
            if declared is None:
                raise TypeError("n_problems is required when the objective does not declare it")
            n_problems = declared
        _positive_int("n_problems", n_problems)
        if declared is not None and declared != n_problems:
            raise ValueError(f"n_problems={n_problems} but the objective holds {declared} problems")
        if stop is not None and not isinstance(stop, StopRule):
            raise TypeError(f"stop must be a StopRule, got {type(stop).__name__}")
        if prior is not None and not isinstance(prior, LatentPrior):
            raise TypeError(f"prior must be a LatentPrior, got {type(prior).__name__}")
        if prior is not None and prior.latent_dim != self.latent_dim:
            raise ValueError(
                f"prior.latent_dim={prior.latent_dim} but latent_dim={self.latent_dim}"
            )
        budget = self.max_iterations if max_iterations is None else max_iterations
        _positive_int("max_iterations", budget)
        total = n_problems * n_samples
        if initial_codes is not None:
            initial_codes = self._check_initial_codes(initial_codes, total)
        gen = make_generator(generator=generator, seed=seed, device=self.device)
        if isinstance(objective, nn.Module):
            objective = objective.to(self.device)
        bound = stop.bind(n_problems, n_samples, self.device) if stop is not None else None
        run = _Run(self, objective, prior if prior is not None else self.prior, bound, gen,
                   n_problems, n_samples, initial_codes, budget)
        # gradients are needed even when the caller runs under torch.no_grad()
        with torch.enable_grad(), batchnorm_mode(self.generator, self.batchnorm), tqdm(
            total=total, disable=not show_progress, desc="latent search", unit="code"
        ) as bar:
            run.execute(bar)
        return run.result()

    def _check_initial_codes(self, codes: torch.Tensor, total: int) -> torch.Tensor:
        if not isinstance(codes, torch.Tensor):
            raise TypeError(f"initial_codes must be a torch.Tensor, got {type(codes).__name__}")
        codes = codes.detach().reshape(-1, codes.shape[-1]) if codes.dim() >= 2 else codes
        if codes.dim() != 2 or tuple(codes.shape) != (total, self.latent_dim):
            raise ValueError(
                f"initial_codes must hold {total} codes of dimension {self.latent_dim}, "
                f"got shape {tuple(codes.shape)}"
            )
        return codes.to(device=self.device, dtype=torch.float32)


class _Run:
    """State of one search: slots, their tickets, optimiser state and output buffers.

    Hot-loop bookkeeping is kept to a handful of tensor ops per step (it dominates at batch 1
    on CPU): iterations are derived from a global step counter and each slot's start step,
    the budget is checked only once the oldest slot can have exhausted it, best codes (not
    images) are tracked, and masking is skipped while every slot is in flight.
    """

    def __init__(
        self,
        engine: LatentSearch,
        objective: Objective,
        prior: LatentPrior,
        bound: object | None,
        gen: torch.Generator,
        n_problems: int,
        n_samples: int,
        initial_codes: torch.Tensor | None,
        budget: int,
    ) -> None:
        self.e = engine
        self.objective = objective
        self.prior = prior.to(engine.device)
        self.bound = bound
        self.gen = gen
        self.n_problems, self.n_samples = n_problems, n_samples
        self.total = n_problems * n_samples
        self.initial_codes = initial_codes
        self.budget = budget
        self.track_progress = engine.restart_patience is not None
        dev, d = engine.device, engine.latent_dim
        self.batch = min(self.total, engine.batch_size)
        self.requeued = torch.empty(0, dtype=torch.long, device=dev)  # evicted after an OOM
        t = self.total
        self.out_codes = torch.empty(t, d, device=dev)
        self.out_images = torch.empty(t, *engine.image_shape, device=dev)
        self.out_losses = torch.empty(t, device=dev)
        self.out_iterations = torch.zeros(t, dtype=torch.long, device=dev)
        self.out_restarts = torch.zeros(t, dtype=torch.long, device=dev)
        self.out_converged = torch.zeros(t, dtype=torch.bool, device=dev)
        self.out_thresholds = torch.full((t,), math.nan, device=dev)
        self.steps = 0  # evaluations so far (= batched forward passes)
        # slot state
        self.tickets = torch.arange(self.batch, device=dev)
        self.next_ticket = self.batch
        self.problems = torch.div(self.tickets, n_samples, rounding_mode="floor")
        self.z = self._initial(self.tickets, self.problems)
        self.opt_state = engine.optimizer.init(self.z)
        zeros = torch.zeros(self.batch, dtype=torch.long, device=dev)
        self.start = zeros.clone()  # step at which each slot's ticket started
        self.min_start = 0
        self.restarts, self.since_best = zeros.clone(), zeros.clone()
        self.best_loss = torch.full((self.batch,), math.inf, device=dev)
        self.best_z = self.z.clone()
        self.alive = torch.ones(self.batch, dtype=torch.bool, device=dev)
        self.n_alive = self.batch

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        return self.e.projection(z) if self.e.projection is not None else z

    def _initial(self, tickets: torch.Tensor, problems: torch.Tensor) -> torch.Tensor:
        if self.initial_codes is not None:
            z = self.initial_codes.index_select(0, tickets)
        else:
            z = self._draw(problems)
        return self._project(z)

    def _draw(self, problems: torch.Tensor) -> torch.Tensor:
        z = self.prior.sample(problems, self.gen)
        if tuple(z.shape) != (len(problems), self.e.latent_dim):
            raise ValueError(
                f"prior returned shape {tuple(z.shape)}, expected ({len(problems)}, "
                f"{self.e.latent_dim})"
            )
        return z.detach().float()

    def _evaluate(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        zg = self.z.detach().requires_grad_(True)
        with self.e._autocast():
            images = self.e.generator(zg)
            losses = self.objective(images, zg, self.problems)
        if not isinstance(losses, torch.Tensor) or tuple(losses.shape) != (len(zg),):
            shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses)
            raise ValueError(f"objective must return one loss per code ({len(zg)},), got {shape}")
        return zg, images, losses.float()

    def execute(self, bar: tqdm) -> None:
        e = self.e
        while self.n_alive > 0:
            try:
                zg, images, losses = self._evaluate()
            except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled
                if not _is_out_of_memory(exc):
                    raise
                self._halve_batch(exc)
                continue
            loss_d = losses.detach()
            full = self.n_alive == len(self.alive)
            better = loss_d < self.best_loss if full else self.alive & (loss_d < self.best_loss)
            if self.track_progress:
                progress = loss_d < self.best_loss * (1 - e.restart_tolerance)
                self.since_best = torch.where(progress, 0, self.since_best + 1)
            self.best_loss = torch.where(better, loss_d, self.best_loss)
            self.best_z = torch.where(better[:, None], self.z, self.best_z)

            finished = None
            done = thr = None
            if self.bound is not None:
                if full:
                    done, thr = self.bound.check(loss_d, self.problems)
                else:
                    live = torch.nonzero(self.alive).squeeze(1)
                    d_live, t_live = self.bound.check(loss_d[live], self.problems[live])
                    done = torch.zeros_like(self.alive)
                    thr = torch.full_like(loss_d, math.nan)
                    done[live] = d_live
                    thr[live] = t_live.float()
                finished = done
            if self.steps - self.budget >= self.min_start:
                out_of_budget = self.alive & (self.start <= self.steps - self.budget)
                finished = out_of_budget if finished is None else finished | out_of_budget
            n_finished = 0 if finished is None else int(finished.sum())
            if n_finished:
                if done is None:
                    done = torch.zeros_like(self.alive)
                if thr is None:
                    thr = torch.full_like(loss_d, math.nan)
                self._harvest(finished, done, thr, images.detach(), loss_d)
                bar.update(n_finished)
            if n_finished < self.n_alive:
                try:
                    self._step(zg, losses, finished, full and n_finished == 0)
                except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled
                    if not _is_out_of_memory(exc):
                        raise
                    del zg, images, losses
                    if n_finished:
                        self._refill(finished)
                    self._halve_batch(exc)
                    continue
            self.steps += 1
            if n_finished:
                self._refill(finished)

    def _step(
        self, zg: torch.Tensor, losses: torch.Tensor, finished: torch.Tensor | None,
        all_continue: bool,
    ) -> None:
        """Backward pass and optimiser step for the slots that go on (restarts included)."""
        e = self.e
        if all_continue:
            (grad,) = torch.autograd.grad(losses.sum(), zg, allow_unused=True)
            cont = None
        else:
            cont = self.alive if finished is None else self.alive & ~finished
            (grad,) = torch.autograd.grad((losses * cont).sum(), zg, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(self.z)
        stepped = self._project(e.optimizer.step(self.z, grad, self.opt_state))
        self.z = stepped if cont is None else torch.where(cont[:, None], stepped, self.z)
        if self.track_progress:
            stale = self.since_best >= e.restart_patience
            self._restart(stale if cont is None else stale & cont)

    def _halve_batch(self, exc: BaseException) -> None:
        """After an out-of-memory error: keep half the live slots, requeue the others."""
        e = self.e
        live = torch.nonzero(self.alive).squeeze(1)
        minimum = 2 if e.batchnorm == "batch" else 1
        n_keep = len(live) // 2
        if n_keep < minimum:
            raise exc
        if e.device.type == "cuda":
            torch.cuda.empty_cache()
        evicted = live[n_keep:]
        self.requeued = torch.cat([self.requeued, self.tickets[evicted]])
        if not getattr(e, "_warned_out_of_memory", False):
            warnings.warn(
                f"{type(exc).__name__} with {len(live)} codes in flight on {e.device}: retrying "
                f"with half the batch ({len(live)} -> {n_keep}, halved again while needed; the "
                "smaller batch_size is kept for later searches with this engine, and this "
                "warning is shown once per engine)",
                RuntimeWarning,
                stacklevel=4,
            )
            e._warned_out_of_memory = True
        self.alive[evicted] = False
        self.n_alive = n_keep
        keep = live[:n_keep]
        self._select(keep)
        self.batch = n_keep
        e.batch_size = min(e.batch_size, n_keep)
        self.min_start = int(self.start.min())

    def _harvest(
        self, finished: torch.Tensor, done: torch.Tensor, thr: torch.Tensor,
        images: torch.Tensor, losses: torch.Tensor,
    ) -> None:
        rows = torch.nonzero(finished).squeeze(1)
        tickets = self.tickets[rows]
        ok = done[rows]
        codes = torch.where(ok[:, None], self.z[rows], self.best_z[rows])
        harvested = images[rows].float()
        if not bool(ok.all()):  # regenerate the best images of samples out of budget
            harvested = torch.where(
                ok.view(-1, *([1] * (harvested.dim() - 1))), harvested, self._images_of(codes)
            )
        self.out_codes[tickets] = codes
        self.out_images[tickets] = harvested
        self.out_losses[tickets] = torch.where(ok, losses[rows], self.best_loss[rows])
        self.out_iterations[tickets] = self.steps - self.start[rows]
        self.out_restarts[tickets] = self.restarts[rows]
        self.out_converged[tickets] = ok
        self.out_thresholds[tickets] = thr[rows]

    def _images_of(self, codes: torch.Tensor) -> torch.Tensor:
        """Generator images of ``codes`` (in batch-norm "batch" mode, evaluated together with
        the current batch so the statistics stay those of a full batch)."""
        with torch.no_grad(), self.e._autocast():
            if self.e.batchnorm == "batch":
                return self.e.generator(torch.cat([codes, self.z]))[: len(codes)].float()
            return self.e.generator(codes).float()

    def _restart(self, stale: torch.Tensor) -> None:
        if not bool(stale.any()):
            return
        rows = torch.nonzero(stale).squeeze(1)
        self.z[rows] = self._project(self._draw(self.problems[rows]))
        self.e.optimizer.reset(self.opt_state, rows)
        self.restarts[rows] += 1
        self.since_best[rows] = 0

    def _refill(self, finished: torch.Tensor) -> None:
        free = torch.nonzero(finished).squeeze(1)
        n_requeued = len(self.requeued)
        k = min(len(free), n_requeued + self.total - self.next_ticket)
        if k > 0:
            rows = free[:k]
            k_old = min(k, n_requeued)
            tickets = torch.arange(
                self.next_ticket, self.next_ticket + k - k_old, device=self.e.device
            )
            self.next_ticket += k - k_old
            if k_old:
                tickets = torch.cat([self.requeued[:k_old], tickets])
                self.requeued = self.requeued[k_old:]
            self.tickets[rows] = tickets
            self.problems[rows] = torch.div(tickets, self.n_samples, rounding_mode="floor")
            self.z[rows] = self._initial(tickets, self.problems[rows])
            self.e.optimizer.reset(self.opt_state, rows)
            self.start[rows] = self.steps
            self.restarts[rows] = 0
            self.since_best[rows] = 0
            self.best_loss[rows] = math.inf
        self.alive[free[k:]] = False
        self.n_alive -= len(free) - k
        self._compact()
        if self.n_alive:
            self.min_start = int(self.start[self.alive].min())

    def _compact(self) -> None:
        """Drop finished slots once they are half the batch (keep 2 for batch-norm stats)."""
        n_dead = len(self.alive) - self.n_alive
        minimum = 2 if self.e.batchnorm == "batch" else 1
        if n_dead == 0 or n_dead * 2 < len(self.alive) or self.n_alive < minimum:
            return
        self._select(torch.nonzero(self.alive).squeeze(1))

    def _select(self, keep: torch.Tensor) -> None:
        """Keep only the slots ``keep`` (in that order)."""
        for name in ("tickets", "problems", "z", "start", "restarts", "since_best",
                     "best_loss", "best_z", "alive"):
            setattr(self, name, getattr(self, name)[keep])
        self.opt_state = {k: v[keep] for k, v in self.opt_state.items()}

    def result(self) -> SearchResult:
        p, n = self.n_problems, self.n_samples

        def shape(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(p, n, *t.shape[1:])

        return SearchResult(
            codes=shape(self.out_codes),
            images=shape(self.out_images),
            losses=shape(self.out_losses),
            iterations=shape(self.out_iterations),
            restarts=shape(self.out_restarts),
            converged=shape(self.out_converged),
            thresholds=shape(self.out_thresholds),
            steps=self.steps,
            batch_size=self.batch,
        )
