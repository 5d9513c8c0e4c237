"""LEG: the empirical linearly estimated gradient (paper Eq. 3) as a Captum attribution."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from captum._utils.typing import TargetType
from captum.attr import PerturbationAttribution
from torch import Tensor

from captum_latent.attr._moments import (
    _check_common,
    _check_model_and_targets,
    _check_transform,
    _draw,
    _evaluate_example,
    _example_args,
    _example_target,
    _finish,
    _format_args,
    _make_generator,
)
from captum_latent.attr.perturbations import PerturbationScheme, TVGaussian


class LEG(PerturbationAttribution):
    r"""Empirical LEG: ``gamma_hat = Sigma^{-1} mean_i((f(x0 + z_i) - f(x0)) z_i)`` (Eq. 3).

    Called like ``captum.attr.Lime``. The model sees ``x0 + up(z_i)`` where ``z_i`` lives on the
    saliency grid (``grid_size``; default the input's resolution) and ``up`` is nearest-neighbour
    upsampling (the paper's 28x28 grid for 224x224 inputs). Each channel gets independent
    perturbations and its own estimate; ``channel_reduction`` combines them.

    Parameters
    ----------
    forward_func : callable
        The model: ``(N, C, H, W)`` images (plus ``additional_forward_args``) to outputs.
    perturbation : PerturbationScheme, optional
        ``TVGaussian()`` (the paper's, default), ``IndependentGaussian()`` or
        ``CovarianceGaussian(S)``; the covariance is ``sigma2 * S``.
    output_transform : {"none", "softmax", "log_softmax"}, default "none"
        Applied to ``(N, K)`` outputs before the target is selected. The paper explains
        probabilities; use ``"softmax"`` for a model that returns logits. With ``"none"`` the
        output is used as is (logits give a LEG of the logit).

    Examples
    --------
    >>> import torch
    >>> from captum_latent import LEG
    >>> w = torch.zeros(1, 1, 8, 8); w[..., 2:5, 2:6] = 1.0
    >>> model = lambda x: (x * w).sum(dim=(1, 2, 3)).unsqueeze(1)
    >>> attr = LEG(model).attribute(torch.zeros(2, 1, 8, 8), target=0, n_samples=200, seed=0)
    >>> tuple(attr.shape)
    (2, 1, 8, 8)
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        perturbation: Optional[PerturbationScheme] = None,
        output_transform: str = "none",
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
        if perturbation is None:
            perturbation = TVGaussian()
        if not isinstance(perturbation, PerturbationScheme):
            raise TypeError(
                f"perturbation must be a PerturbationScheme, got {type(perturbation).__name__}"
            )
        PerturbationAttribution.__init__(self, forward_func)
        self.perturbation = perturbation
        self.output_transform = _check_transform(output_transform)

    def attribute(  # type: ignore[override]
        self,
        inputs: Any,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_samples: int = 500,
        sigma2: float = 0.1,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        grid_size: Optional[tuple[int, int]] = None,
        channel_reduction: str = "auto",
        contrast_target: TargetType = None,
        return_input_shape: bool = True,
        seed: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Any:
        """Attribute ``f_target`` (minus ``f_contrast_target`` if given, Eq. 1) to the inputs.

        Parameters
        ----------
        inputs : Tensor or 1-tuple of Tensor
            ``(B, C, H, W)`` images; each example is explained separately.
        target : int, tuple, Tensor or list, optional
            Captum's target: one for all examples, or one per example.
        additional_forward_args : optional
            Extra model arguments; tensors whose first dimension is ``B`` are split per example.
        n_samples : int, default 500
            Model evaluations per example (plus one for ``f(x0)``).
        sigma2 : float, default 0.1
            Perturbation scale (the paper uses 0.05 to 0.3 for inputs in [0, 1]).
        perturbations_per_eval : int, default 1
            Perturbed copies per model call (memory/speed only: results do not change).
        show_progress : bool, default False
            Show a tqdm progress bar over model evaluations.
        grid_size : (int, int), optional
            Saliency grid; default the input's ``(H, W)``.
        channel_reduction : {"auto", "sum_abs", "none"}, default "auto"
            ``"sum_abs"``: sum of absolute per-channel maps (the paper); ``"none"``: keep signed
            per-channel maps; ``"auto"``: ``"sum_abs"`` when ``C > 1``, signed when ``C == 1``.
        contrast_target : optional
            A second target subtracted from the first: ``f9 - f7`` is ``target=9,
            contrast_target=7``.
        return_input_shape : bool, default True
            ``True``: ``(B, C, H, W)`` (grid maps upsampled, combined maps repeated over
            channels). ``False``: the grid maps, ``(B, C or 1, h, w)``.
        seed, generator : optional
            Source of randomness (at most one); perturbations are drawn on the generator's
            device.

        Returns
        -------
        Tensor (or 1-tuple, matching ``inputs``)
        """
        maps, x, is_tuple = self._leg_maps(
            inputs, target, additional_forward_args, n_samples, sigma2, perturbations_per_eval,
            show_progress, grid_size, channel_reduction, contrast_target, seed, generator,
        )
        return _finish(maps, x, channel_reduction, return_input_shape, is_tuple)

    def _collect_moments(
        self,
        inputs: Any,
        target: TargetType,
        additional_forward_args: Any,
        n_samples: int,
        sigma2: float,
        perturbations_per_eval: int,
        show_progress: bool,
        grid_size: Optional[tuple[int, int]],
        channel_reduction: str,
        contrast_target: TargetType,
        seed: Optional[int],
        generator: Optional[torch.Generator],
    ) -> tuple[Tensor, Tensor, bool, tuple[int, int]]:
        """Moment maps ``b`` of shape ``(B, C, h, w)`` (float64) for every example."""
        x, is_tuple, grid = _check_common(
            inputs, n_samples, perturbations_per_eval, grid_size, channel_reduction
        )
        if isinstance(sigma2, bool) or not isinstance(sigma2, (int, float)) or not sigma2 > 0:
            raise ValueError(f"sigma2 must be a float > 0, got {sigma2!r}")
        gen = _make_generator(seed, generator)
        args = _format_args(additional_forward_args)
        _check_model_and_targets(self.forward_func, x, args, target, contrast_target)
        batch, channels = x.shape[0], x.shape[1]
        progress = None
        if show_progress:
            from tqdm.auto import tqdm

            progress = tqdm(total=batch * n_samples, desc=type(self).__name__)
        bs = []
        try:
            for i in range(batch):
                z = _draw(self.perturbation, n_samples, channels, grid, float(sigma2), gen)
                mom = _evaluate_example(
                    self.forward_func,
                    x[i],
                    _example_target(target, i, batch),
                    _example_target(contrast_target, i, batch),
                    _example_args(args, i, batch),
                    z,
                    perturbations_per_eval,
                    self.output_transform,
                    progress,
                )
                bs.append(mom.b)
        finally:
            if progress is not None:
                progress.close()
        # solve where the inputs live (the fast LEG-TV solver runs on CUDA too)
        return torch.stack(bs).to(x.device), x, is_tuple, grid

    def _leg_maps(self, *args: Any) -> tuple[Tensor, Tensor, bool]:
        b, x, is_tuple, grid = self._collect_moments(*args)
        sigma2 = float(args[4])
        maps = self.perturbation.solve(b.reshape(-1, *grid), sigma2).reshape(b.shape)
        return maps, x, is_tuple
