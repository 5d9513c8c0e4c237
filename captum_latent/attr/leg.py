"""LEG: the empirical linearly estimated gradient (paper Eq. 3) as a Captum attribution."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from captum._utils.typing import TargetType
from captum.attr import PerturbationAttribution
from torch import Tensor

from captum_latent.adapters import register_adapter
from captum_latent.attr._attribute import _Call, _with_common_parameters
from captum_latent.attr._dataset import LEGDatasetAdapter
from captum_latent.attr._inputs import _Layout, _layouts
from captum_latent.attr._moments import (
    _auto_perturbations_per_eval,
    _check_counts,
    _check_model_and_targets,
    _check_transform,
    _evaluate,
    _finish,
    _format_args,
)
from captum_latent.attr.perturbations import IndependentGaussian, PerturbationScheme, TVGaussian
from captum_latent.seeding import make_generator


@dataclass
class _Collected:
    """The moments of one call: ``b[k][i]`` is input ``k``'s ``(C, ...)`` map for example ``i``
    (float64, on the grid ``(C, h, w)`` or the cells ``(C, p)``)."""

    layouts: list[_Layout]
    is_tuple: bool
    b: list[list[Tensor]]
    sigma2: float
    n: int


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
        *,
        feature_mask: Any = None,
        n_samples: int = 500,
        sigma2: float = 0.1,
        perturbations_per_eval: Optional[int] = None,
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
        got = self._collect_moments(_Call.of(locals()))
        maps = self._leg_maps(got)
        outs = tuple(
            _finish(layout, m, channel_reduction, return_input_shape)
            for layout, m in zip(got.layouts, maps)
        )
        return outs if got.is_tuple else outs[0]

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
        Tensor (or tuple, matching ``inputs``)
            ``(B, C, h, w)`` float64 maps on the saliency grid, or ``(B, C, p)`` on the
            ``feature_mask``'s ``p`` cells (``channel_reduction`` and ``return_input_shape`` do
            not apply).

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
        got = self._collect_moments(_Call.of(values))
        if any(layout.masked and len(layout.cells) > 1 for layout in got.layouts):
            raise ValueError("moments() of a per-example feature_mask have one size per example: "
                             "call it one example at a time")
        outs = tuple(torch.stack(bk) for bk in got.b)
        return outs if got.is_tuple else outs[0]

    def _collect_moments(self, call: _Call) -> _Collected:
        """Check the call, draw every perturbation, evaluate the model in vectorised passes."""
        _check_counts(call.n_samples, call.perturbations_per_eval, call.channel_reduction)
        sigma2 = call.sigma2
        if isinstance(sigma2, bool) or not isinstance(sigma2, (int, float)) or not sigma2 > 0:
            raise ValueError(f"sigma2 must be a float > 0, got {sigma2!r}")
        layouts, is_tuple = _layouts(call.inputs, call.grid_size, call.feature_mask,
                                     self.perturbation)
        xs = tuple(layout.x for layout in layouts)
        gen = make_generator(seed=call.seed, generator=call.generator)
        args = _format_args(call.additional_forward_args)
        targets, contrasts = _check_model_and_targets(
            self.forward_func, xs, args, call.target, call.contrast_target
        )
        batch, n = int(xs[0].shape[0]), call.n_samples
        z: list[list[Tensor]] = [[] for _ in layouts]
        for i in range(batch):
            for k, layout in enumerate(layouts):
                z[k].append(layout.draw(self.perturbation, i, n, float(sigma2), gen))
        ppe = call.perturbations_per_eval or _auto_perturbations_per_eval(xs, n)
        progress = None
        if call.show_progress:
            from tqdm.auto import tqdm

            progress = tqdm(total=batch * n, desc=type(self).__name__)
        try:
            b = _evaluate(self.forward_func, layouts, z, targets, contrasts, args, ppe,
                          self.output_transform, progress)
        finally:
            if progress is not None:
                progress.close()
        # solve where the inputs live (the fast LEG-TV solver runs on CUDA too)
        b = [[bi.to(xs[0].device) for bi in bk] for bk in b]
        return _Collected(layouts, is_tuple, b, float(sigma2), n)

    def _leg_maps(self, got: _Collected) -> list[list[Tensor]]:
        """The empirical LEG ``Sigma^{-1} b`` of every example and input."""
        out = []
        for layout, bk in zip(got.layouts, got.b):
            if layout.masked:
                independent = isinstance(self.perturbation, IndependentGaussian)
                out.append([layout.ops(i).leg(bi, got.sigma2, independent).to(bi)
                            for i, bi in enumerate(bk)])
            else:
                stacked = torch.stack(bk)
                maps = self.perturbation.solve(stacked.reshape(-1, *layout.grid), got.sigma2)
                out.append(list(maps.reshape(stacked.shape)))
        return out


register_adapter(LEG, LEGDatasetAdapter)
