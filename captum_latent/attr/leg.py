"""LEG: the empirical linearly estimated gradient (paper Eq. 3) as a Captum attribution."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import torch
from captum._utils.typing import TargetType
from captum.attr import PerturbationAttribution
from torch import Tensor

from captum_latent.adapters import register_adapter
from captum_latent.attr._attribute import _Call, _with_common_parameters
from captum_latent.attr._dataset import LEGDatasetAdapter
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
)
from captum_latent.attr.perturbations import PerturbationScheme, TVGaussian
from captum_latent.seeding import make_generator


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

    @_with_common_parameters
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
        <common parameters>

        Returns
        -------
        Tensor (or 1-tuple, matching ``inputs``)
            The empirical LEG, ``Sigma^{-1} mean_i(y~_i z_i)`` per example and channel.

        Examples
        --------
        >>> import torch
        >>> from captum_latent import LEG
        >>> model = lambda x: x[:, :, 1:3, 1:3].sum(dim=(1, 2, 3)).unsqueeze(1)
        >>> attr = LEG(model).attribute(torch.zeros(1, 1, 4, 4), target=0, n_samples=50, seed=0)
        >>> tuple(attr.shape)
        (1, 1, 4, 4)
        """
        call = _Call.of(locals())
        maps, x, is_tuple = self._leg_maps(call)
        return _finish(maps, x, channel_reduction, return_input_shape, is_tuple)

    def moments(self, inputs: Any, **kwargs: Any) -> Tensor:
        """The moment maps ``b = mean_i(y~_i z_i)`` that :meth:`attribute` (and LEG-TV's LP)
        start from, for users who solve with their own method.

        Parameters
        ----------
        inputs
            As for :meth:`attribute`.
        **kwargs
            Any other argument of :meth:`attribute` (``target``, ``n_samples``, ``sigma2``,
            ``grid_size``, ``seed``, ...), with the same defaults.

        Returns
        -------
        Tensor
            ``(B, C, h, w)`` float64 maps on the saliency grid (``channel_reduction`` and
            ``return_input_shape`` do not apply).

        Examples
        --------
        >>> import torch
        >>> from captum_latent import LEG
        >>> model = lambda x: x[:, :, 1:3, 1:3].sum(dim=(1, 2, 3)).unsqueeze(1)
        >>> b = LEG(model).moments(torch.zeros(1, 1, 4, 4), target=0, n_samples=50, seed=0)
        >>> tuple(b.shape), b.dtype
        ((1, 1, 4, 4), torch.float64)
        """
        params = inspect.signature(LEG.attribute).parameters
        unknown = sorted(set(kwargs) - set(params) - {"self"})
        if unknown:
            raise TypeError(f"moments() got unexpected argument(s) {unknown}; it takes the "
                            "arguments of attribute()")
        values = {name: p.default for name, p in params.items() if name != "self"}
        values.update(kwargs, inputs=inputs)
        return self._collect_moments(_Call.of(values))[0]

    def _collect_moments(self, call: _Call) -> tuple[Tensor, Tensor, bool, tuple[int, int]]:
        """Moment maps ``b`` of shape ``(B, C, h, w)`` (float64) for every example."""
        x, is_tuple, grid = _check_common(
            call.inputs, call.n_samples, call.perturbations_per_eval, call.grid_size,
            call.channel_reduction,
        )
        sigma2 = call.sigma2
        if isinstance(sigma2, bool) or not isinstance(sigma2, (int, float)) or not sigma2 > 0:
            raise ValueError(f"sigma2 must be a float > 0, got {sigma2!r}")
        gen = make_generator(seed=call.seed, generator=call.generator)
        args = _format_args(call.additional_forward_args)
        target, contrast_target = call.target, call.contrast_target
        _check_model_and_targets(self.forward_func, x, args, target, contrast_target)
        batch, channels, n_samples = x.shape[0], x.shape[1], call.n_samples
        progress = None
        if call.show_progress:
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
                    call.perturbations_per_eval,
                    self.output_transform,
                    progress,
                )
                bs.append(mom.b)
        finally:
            if progress is not None:
                progress.close()
        # solve where the inputs live (the fast LEG-TV solver runs on CUDA too)
        return torch.stack(bs).to(x.device), x, is_tuple, grid

    def _leg_maps(self, call: _Call) -> tuple[Tensor, Tensor, bool]:
        b, x, is_tuple, grid = self._collect_moments(call)
        maps = self.perturbation.solve(b.reshape(-1, *grid), float(call.sigma2))
        return maps.reshape(b.shape), x, is_tuple


register_adapter(LEG, LEGDatasetAdapter)
