"""LEG: the empirical linearly estimated gradient (paper Eq. 3) as a Captum attribution."""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

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
    _finish,
    _format_args,
    _moments,
    _responses,
)
from captum_latent.attr.perturbations import IndependentGaussian, PerturbationScheme, TVGaussian
from captum_latent.seeding import make_generator

#: ``sigma2="auto"``: each pixel's perturbation has this standard deviation, as a fraction of
#: the input's value range (see docs/methods/leg_tv.md, "Defaults")
AUTO_PIXEL_STD = 0.05
#: perturbations of each example evaluated to check that the output moves at that scale
AUTO_PILOT = 16


def _check_sigma2(sigma2: Any) -> None:
    if isinstance(sigma2, str) and sigma2 == "auto":
        return
    if isinstance(sigma2, bool) or not isinstance(sigma2, (int, float)) or not sigma2 > 0:
        raise ValueError(f"sigma2 must be 'auto' or a float > 0, got {sigma2!r}")


@dataclass
class _Collected:
    """The moments of one call: ``b[k][i]`` is input ``k``'s ``(C, ...)`` map for example ``i``
    (float64, on the grid ``(C, h, w)`` or the cells ``(C, p)``)."""

    layouts: list[_Layout]
    is_tuple: bool
    b: list[list[Tensor]]
    sigma2: list[float]  # one per input
    n: int


class LEG(PerturbationAttribution):
    r"""Empirical LEG: ``gamma_hat = Sigma^{-1} mean_i((f(x0 + z_i) - f(x0)) z_i)`` (Eq. 3).

    Called like ``captum.attr.Lime``, and usable wherever Captum takes an attribution method
    (``NoiseTunnel``, ``infidelity``, ``sensitivity_max``, ``visualize_image_attr``). The model
    sees ``x0 + up(z_i)`` where ``z_i`` lives on the saliency grid (``grid_size``; default a grid
    with at least 4 model evaluations per cell) or on the user's cells (``feature_mask``), and
    ``up`` is nearest-neighbour upsampling (the paper's 28x28 grid for 224x224 inputs). Each
    channel gets independent perturbations and its own estimate; ``channel_reduction`` combines
    them. The whole batch is evaluated in vectorised model calls.

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
        perturbation: PerturbationScheme | None = None,
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
        sigma2: float | str = "auto",
        perturbations_per_eval: int | None = None,
        show_progress: bool = False,
        grid_size: tuple[int, int] | None = None,
        channel_reduction: str = "auto",
        contrast_target: TargetType = None,
        return_input_shape: bool = True,
        seed: int | None = None,
        generator: torch.Generator | None = None,
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
            ``grid_size``, ``seed``, ...), with the same defaults. To solve ``Sigma b`` yourself
            pass a float ``sigma2`` (the scale ``"auto"`` picks is not returned here; LEG-TV's
            certificate carries it).

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
        >>> b = LEG(model).moments(torch.zeros(1, 1, 4, 4), target=0, n_samples=80, seed=0)
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
        _check_sigma2(call.sigma2)
        layouts, is_tuple = _layouts(call.inputs, call.grid_size, call.feature_mask,
                                     self.perturbation, call.n_samples)
        xs = tuple(layout.x for layout in layouts)
        gen = make_generator(seed=call.seed, generator=call.generator)
        args = _format_args(call.additional_forward_args)
        targets, contrasts = _check_model_and_targets(
            self.forward_func, xs, args, call.target, call.contrast_target
        )
        batch, n = int(xs[0].shape[0]), call.n_samples
        draws: list[list[Tensor]] = [[] for _ in layouts]  # unit scale: sigma2 multiplies later
        for i in range(batch):  # example by example: the order seeded results were drawn in
            for k, layout in enumerate(layouts):
                draws[k].append(layout.draw(self.perturbation, i, n, 1.0, gen))
        # one (B, n, C, ...) tensor per input (evaluated and reduced in batched operations);
        # per-example cells keep a list (their sizes differ)
        z: list[Any] = [d if layout.masked and len(layout.cells) > 1 else torch.stack(d)
                        for layout, d in zip(layouts, draws)]
        del draws
        ppe = call.perturbations_per_eval or _auto_perturbations_per_eval(xs, n)
        evaluate = functools.partial(
            _responses, self.forward_func, layouts, targets=targets, contrasts=contrasts,
            args=args, perturbations_per_eval=ppe, output_transform=self.output_transform,
        )
        f0 = None
        if call.sigma2 == "auto":
            sigma2, f0 = self._auto_sigma2(layouts, z, evaluate)
        else:
            sigma2 = [float(call.sigma2)] * len(layouts)
        scales = [math.sqrt(s2) for s2 in sigma2]
        progress = None
        if call.show_progress:
            from tqdm.auto import tqdm

            progress = tqdm(total=batch * n, desc=type(self).__name__)
        try:
            yt, _ = evaluate(z, scales, progress=progress, f0=f0)
        finally:
            if progress is not None:
                progress.close()
        # solve where the inputs live (the fast LEG-TV solver runs on CUDA too)
        b = [[bi.to(xs[0].device) for bi in bk] for bk in _moments(yt, z, scales)]
        return _Collected(layouts, is_tuple, b, sigma2, n)

    def _auto_sigma2(
        self, layouts: list[_Layout], z: list[Any], evaluate: Callable[..., Tensor]
    ) -> tuple[list[float], Tensor]:
        """``sigma2="auto"``: each pixel's perturbation has a standard deviation of
        :data:`AUTO_PIXEL_STD` times the input's value range (small enough to keep the image);
        if the model's output does not move on a pilot of :data:`AUTO_PILOT` perturbations of
        every example (large enough to move the prediction), the scale doubles, up to 8 times."""
        sigma2 = [
            (AUTO_PIXEL_STD * layout.value_range()) ** 2 / layout.unit_variance(self.perturbation)
            for layout in layouts
        ]
        pilot = [zk[:, :AUTO_PILOT] if isinstance(zk, Tensor) else [zi[:AUTO_PILOT] for zi in zk]
                 for zk in z]
        f0 = None
        for _ in range(4):
            yt, f0 = evaluate(pilot, [math.sqrt(s2) for s2 in sigma2], f0=f0)
            if float(yt.std(dim=1).median()) > 0.0:
                return sigma2, f0
            sigma2 = [4.0 * s2 for s2 in sigma2]
        warnings.warn(
            f"{type(self).__name__}: the model's output did not change on any of "
            f"{AUTO_PILOT} perturbations of each example with pixel standard deviations up to "
            f"{8 * AUTO_PIXEL_STD:g} of the input's range: the attribution is zero; check that "
            "the target output depends on the input at all, or pass sigma2=",
            RuntimeWarning, stacklevel=4,
        )
        return sigma2, f0

    def _leg_maps(self, got: _Collected) -> list[list[Tensor]]:
        """The empirical LEG ``Sigma^{-1} b`` of every example and input."""
        out = []
        for layout, bk, s2 in zip(got.layouts, got.b, got.sigma2):
            if layout.masked:
                independent = isinstance(self.perturbation, IndependentGaussian)
                out.append([layout.ops(i).leg(bi, s2, independent).to(bi)
                            for i, bi in enumerate(bk)])
            else:
                stacked = torch.stack(bk)
                maps = self.perturbation.solve(stacked.reshape(-1, *layout.grid), s2)
                out.append(list(maps.reshape(stacked.shape)))
        return out


register_adapter(LEG, LEGDatasetAdapter)
