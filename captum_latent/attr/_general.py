"""The fast LEG-TV solver for a general covariance (a dense ``p x p`` factorisation, or DCTs
only when the covariance is a :class:`~captum_latent.attr.tv_problem.SpectralCovariance`).

The program (paper Eq. 4) for an SPD ``Sigma`` and ``A = D^{+T} Sigma = D P Sigma`` with
``P = (D^T D)^+`` is::

    min_g ||D g||_1   s.t.   c - L <= A g <= c + L,     c = D P b.

ADMM splits ``w = D g`` (objective ``|w|_1``) and ``t = kappa A g`` (the box), with one scaled
penalty ``rho``. The ``g``-step minimises ``|D g - (w - u)|^2 + |kappa A g - (t - v)|^2``: its
matrix ``K = D^T D + kappa^2 Sigma P Sigma`` (``A^T A = Sigma P D^T D P Sigma = Sigma P
Sigma``) depends on ``Sigma`` only (``kappa`` is fixed by ``Sigma``, not by the data or
``rho``), so it is inverted once per covariance and reused for every iteration, every ``L``
of a path and every warm start. When ``Sigma 1`` is not a multiple of ``1`` the LP fixes the
mean of ``g`` too and ``K`` is invertible; when it is, ``K`` is singular along ``1``. Both cases
use ``K + mu 11^T / p`` with the proximal term ``mu / (2p) (1^T (g - g_prev))^2`` (a valid
semi-proximal ADMM step; it is exact when ``K 1 = 0``).

Per iteration: two DCT Laplacian solves and three dense ``p x p`` matrix products (``Sigma``
twice, ``K^{-1}`` once), batched over maps. When the 2-D DCT-II diagonalises ``Sigma``
(``SpectralCovariance``, e.g. ``s2 I``), ``Sigma``, ``P``, ``K`` and ``A`` share its eigenbasis
(:class:`_SpectralFactor`): the same iterates (to rounding) cost one forward and one inverse
DCT per iteration, nothing ``p x p`` is formed, and no grid size is refused. There ``Sigma 1 =
s_0 1``, so the ``L = 0`` solution is ``Sigma^{-1} b`` (no median) and the dual needs no
projection. The exact finishing step builds a ``p x k`` region-indicator matrix (``k``
regions) on either path; it runs only up to ``polish_max_pixels`` (4096 by default), so above
that the DCT path certifies from the averaged iterates alone.

Certificate (weak duality). With ``h = |.|_1`` and the box's indicator the dual is::

    max_{y, z}  -c^T z - L |z|_1   s.t.   D^T y + A^T z = 0,   |y|_inf <= 1.

From the averaged ADMM multipliers ``y = rho u``, ``z = kappa rho v``: ``z`` is projected onto
``d^T z = 0`` (``d = A 1``; needed since ``1^T D^T y = 0``), ``y`` is moved onto the affine set
``D^T y = -A^T z`` (alternating with clipping to the unit box, ending on the affine set), and the
pair is divided by ``max(1, |y|_inf)``: a dual-feasible point, whose value is a lower bound.
The primal point is the averaged map made exactly feasible by the smallest convex combination
with the ``L = 0`` solution (``A g = c``: strictly feasible when ``L > 0``). Every
``polish_every`` checks, :func:`_polish` reads the face off the iterate (exact zeros of ``w``,
entries of ``t`` on the box) and solves for its vertex and for the dual on it: when the face
is the optimal one, the two bounds meet to rounding and the solver stops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

import torch
from torch import Tensor

from captum_latent.attr._grid import _diff, _diff_adjoint, _edge_ends, _GridLaplacian, _n_edges
from captum_latent.attr.tv_problem import SpectralCovariance

_MAX_DENSE_PIXELS = 64 * 64


@dataclass
class _CovarianceFactor:
    """Everything the general solver precomputes from a dense ``Sigma`` (once per covariance).

    The solver uses it through ``sigma``, ``sigma_solve``, ``apply_a``, ``apply_at`` and
    ``g_step``; :class:`_SpectralFactor` implements the same methods with DCTs only."""

    source: Tensor  # the covariance as given (to recognise it again)
    covariance: Tensor  # (p, p) Sigma, symmetrised
    chol: Tensor  # Cholesky factor of Sigma
    k_inv: Tensor  # (K + mu 11^T / p)^{-1}
    k_inv_ones: Tensor  # (p,) k_inv @ 1
    kappa: float
    mu: float
    d: Tensor  # (m,) A 1
    d_free: bool  # A 1 = 0: the mean of g is free (e.g. the paper's covariance)
    lap: _GridLaplacian
    shape: tuple[int, int]

    def matches(self, covariance: Any) -> bool:
        src = self.source
        return (
            isinstance(covariance, Tensor)
            and covariance.shape == src.shape
            and covariance.dtype == src.dtype
            and covariance.device == src.device
            and (covariance is src or bool(torch.equal(covariance, src)))
        )

    def sigma(self, g: Tensor) -> Tensor:
        """``Sigma g`` for flat maps ``(B, p)``."""
        return g @ self.covariance

    def apply_a(self, g: Tensor) -> Tensor:
        """``A g = D P Sigma g`` for flat maps ``(B, p)``; ``(B, m)``."""
        h, w = self.shape
        return _diff(self.lap.solve((g @ self.covariance).reshape(-1, h, w)))

    def apply_at(self, z: Tensor) -> Tensor:
        """``A^T z = Sigma P D^T z`` for edge vectors ``(B, m)``; flat ``(B, p)``."""
        x = self.lap.solve(_diff_adjoint(z, self.shape)).reshape(z.shape[0], -1)
        return x @ self.covariance

    def sigma_solve(self, b: Tensor) -> Tensor:
        """``Sigma^{-1} b`` for flat maps ``(B, p)``."""
        return torch.cholesky_solve(b.T, self.chol).T

    def g_step(self, x: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
        """ADMM's ``g``-step from ``x = [D^T (w - u); D^T (t - v)]`` (``(2B, h, w)``) and the
        previous means: flat ``g = (K + mu 11^T/p)^{-1} (D^T (w - u) + kappa Sigma P D^T
        (t - v) + mu mean 1)`` and the maps ``P Sigma g``."""
        batch = x.shape[0] // 2
        h, w = self.shape
        x2 = self.lap.solve(x[batch:]).reshape(batch, -1)
        s = torch.addmm(x[:batch].reshape(batch, -1), x2, self.covariance, alpha=self.kappa)
        g = torch.addmm(self.mu * mean * self.k_inv_ones, s, self.k_inv)
        return g, self.lap.solve((g @ self.covariance).reshape(batch, h, w))


@dataclass
class _SpectralFactor:
    """The general solver's factor for a DCT-diagonal ``Sigma = C^T diag(s) C``: ``Sigma``,
    ``P = (D^T D)^+`` and ``K = D^T D + kappa^2 Sigma P Sigma`` share the DCT eigenbasis, with
    eigenvalues ``s_k``, ``1 / lambda_k`` and ``lambda_k + kappa^2 s_k^2 / lambda_k`` (``k !=
    0``; on the constant, ``P``, ``K`` and ``A`` vanish and ``K + mu 11^T/p`` is ``mu``), so every
    product and inverse is two DCTs and an elementwise product: ``O(p (h + w))``, nothing of
    size ``p x p``. ``Sigma 1 = s_0 1``: the mean of ``g`` is free (``A 1 = 0``)."""

    source: Tensor  # the spectrum as given (to recognise it again)
    spectrum: Tensor  # (h, w) s_k
    scalar: float | None  # s when Sigma = s I (products are then scalings)
    p_sigma: Tensor  # (h, w) eigenvalues of P Sigma: s_k / lambda_k, 0 on the constant
    k_inv: Tensor  # (h, w) eigenvalues of (K + mu 11^T / p)^{-1}
    kappa: float
    mu: float
    d: Tensor  # (m,) A 1 = 0
    d_free: bool
    lap: _GridLaplacian
    shape: tuple[int, int]

    def matches(self, covariance: Any) -> bool:
        if not isinstance(covariance, SpectralCovariance):
            return False
        spec, src = covariance.spectrum, self.source
        return (
            spec.shape == src.shape and spec.dtype == src.dtype and spec.device == src.device
            and (spec is src or bool(torch.equal(spec, src)))
        )

    def _spectral(self, g: Tensor, eig: Tensor) -> Tensor:
        """``C^T diag(eig) C g`` for flat maps ``(B, p)``; flat."""
        h, w = self.shape
        lap = self.lap
        return lap.inverse_dct(eig * lap.forward_dct(g.reshape(-1, h, w))).reshape(g.shape[0], -1)

    def sigma(self, g: Tensor) -> Tensor:
        if self.scalar is not None:
            return g * self.scalar
        return self._spectral(g, self.spectrum)

    def apply_a(self, g: Tensor) -> Tensor:
        h, w = self.shape
        return _diff(self._spectral(g, self.p_sigma).reshape(-1, h, w))

    def apply_at(self, z: Tensor) -> Tensor:
        return self._spectral(_diff_adjoint(z, self.shape), self.p_sigma)

    def sigma_solve(self, b: Tensor) -> Tensor:
        if self.scalar is not None:
            return b / self.scalar
        return self._spectral(b, 1.0 / self.spectrum)

    def g_step(self, x: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
        """As :meth:`_CovarianceFactor.g_step`, in the DCT basis: one forward DCT of both
        edge divergences, one inverse DCT giving ``g`` and ``P Sigma g`` together."""
        batch = x.shape[0] // 2
        lap = self.lap
        xh = lap.forward_dct(x)
        rhs = torch.addcmul(xh[:batch], xh[batch:], self.p_sigma, value=self.kappa)
        # the constant mode: D^T (.) has none, and (mu 11^T/p) g = mu mean 1 there
        rhs[:, 0, 0] += self.mu * math.sqrt(self.shape[0] * self.shape[1]) * mean[:, 0]
        gh = rhs.mul_(self.k_inv)
        both = lap.inverse_dct(torch.cat([gh, gh * self.p_sigma]))
        return both[:batch].reshape(batch, -1), both[batch:]


_Factor = Union[_CovarianceFactor, _SpectralFactor]


def _factorise_spectral(covariance: SpectralCovariance) -> _SpectralFactor:
    spec = covariance.spectrum
    shape = covariance.shape
    p = shape[0] * shape[1]
    lap = _GridLaplacian(shape, spec.dtype, spec.device)
    p_sigma = spec * lap.eig_pinv
    tr_d = 2.0 * _n_edges(shape)
    tr_k = float((spec * p_sigma).sum())  # tr(Sigma P Sigma) = sum_k s_k^2 / lambda_k
    kappa = math.sqrt(tr_d / tr_k)
    mu = tr_d / p  # as in the dense factorisation
    k_eig = lap.eig + kappa**2 * spec * p_sigma
    k_eig[0, 0] = mu
    first = spec.flatten()[0]
    scalar = float(first) if bool((spec == first).all()) else None
    m = _n_edges(shape)
    return _SpectralFactor(
        source=spec, spectrum=spec, scalar=scalar, p_sigma=p_sigma, k_inv=1.0 / k_eig,
        kappa=kappa, mu=mu, d=torch.zeros(m, dtype=spec.dtype, device=spec.device),
        d_free=True, lap=lap, shape=shape,
    )


def _factorise(covariance: Any, shape: tuple[int, int]) -> _Factor:
    """The factor of a dense ``(p, p)`` covariance or of a :class:`SpectralCovariance`."""
    if isinstance(covariance, SpectralCovariance):
        return _factorise_spectral(covariance)
    return _factorise_dense(covariance, shape)


def _factorise_dense(covariance: Tensor, shape: tuple[int, int]) -> _CovarianceFactor:
    h, w = shape
    p = h * w
    sig = 0.5 * (covariance + covariance.T)
    chol, info = torch.linalg.cholesky_ex(sig)
    if int(info) != 0:
        raise ValueError("covariance must be positive definite")
    lap = _GridLaplacian(shape, sig.dtype, sig.device)
    ones = torch.ones((1, p), dtype=sig.dtype, device=sig.device)
    d = _diff(lap.solve((ones @ sig).reshape(1, h, w)))[0]  # A 1
    d_free = float(d.abs().max()) <= 1e-10 * float(sig.abs().max())
    # rows of Sigma are maps; Y = Sigma P (P symmetric), Sigma P Sigma = Y Sigma
    k = lap.solve(sig.reshape(p, h, w)).reshape(p, p) @ sig
    k = 0.5 * (k + k.T)
    tr_d = 2.0 * _n_edges(shape)
    kappa = math.sqrt(tr_d / float(torch.diagonal(k).sum()))
    # along 1 only kappa^2 Sigma P Sigma curves: when it does not (A 1 = 0) the proximal term
    # mu (1^T (g - g_prev))^2 / (2p) makes K invertible and is exact; when it does, it is a
    # semi-proximal step (kept: fewer iterations than mu = 0 on the test instances)
    mu = tr_d / p
    # K = D^T D + kappa^2 Sigma P Sigma + mu 11^T / p, built in place (D^T D is sparse)
    k.mul_(kappa**2).add_(mu / p)
    head, tail = (torch.as_tensor(e, device=sig.device) for e in _edge_ends(shape))
    ones_e = torch.ones(head.numel(), dtype=sig.dtype, device=sig.device)
    diag = torch.zeros(p, dtype=sig.dtype, device=sig.device)
    diag.index_add_(0, head, ones_e).index_add_(0, tail, ones_e)
    k.diagonal().add_(diag)
    k.index_put_((head, tail), -ones_e, accumulate=True)
    k.index_put_((tail, head), -ones_e, accumulate=True)
    k_chol, info = torch.linalg.cholesky_ex(k)
    del k
    if int(info) != 0:  # cannot happen in exact arithmetic: K + mu 11^T/p is positive definite
        raise ValueError("covariance is too ill-conditioned for the fast solver")
    k_inv = torch.cholesky_inverse(k_chol)
    del k_chol
    k_inv = 0.5 * (k_inv + k_inv.T)
    return _CovarianceFactor(
        source=covariance, covariance=sig, chol=chol, k_inv=k_inv, k_inv_ones=(ones @ k_inv)[0],
        kappa=kappa, mu=mu, d=torch.zeros_like(d) if d_free else d, d_free=d_free, lap=lap,
        shape=shape,
    )


def _weighted_median(points: Tensor, weights: Tensor) -> Tensor:
    """Per row, a minimiser of ``sum_j weights_j |x - points_j|`` (weights ``>= 0``)."""
    order = torch.argsort(points, dim=1)
    pts = torch.gather(points, 1, order)
    wts = torch.gather(weights, 1, order)
    cum = wts.cumsum(dim=1)
    half = 0.5 * cum[:, -1:]
    idx = (cum < half).sum(dim=1, keepdim=True).clamp_max(points.shape[1] - 1)
    return torch.gather(pts, 1, idx)[:, 0]


def _centre(b: Tensor, factor: _Factor) -> Tensor:
    """The ``L = 0`` solution: ``g = Sigma^{-1}(b + beta 1)`` (all of them satisfy ``A g = c``)
    with ``beta`` minimising ``||D g||_1`` (a weighted median); flat ``(B, p)``."""
    h, w = factor.shape
    g0 = factor.sigma_solve(b)
    if factor.d_free:
        return g0
    one = factor.sigma_solve(torch.ones_like(b[:1]))
    a = _diff(g0.reshape(-1, h, w))
    e = _diff(one.reshape(1, h, w)).expand_as(a)
    scale = e.abs().amax().clamp_min(1e-300)
    use = e.abs() > 1e-12 * scale
    pts = torch.where(use, -a / torch.where(use, e, torch.ones_like(e)), torch.zeros_like(a))
    beta = _weighted_median(pts, torch.where(use, e.abs(), torch.zeros_like(e)))
    return g0 + beta[:, None] * one


def _shift_interval(
    ag: Tensor, d: Tensor, lo: Tensor, hi: Tensor
) -> tuple[Tensor, Tensor]:
    """Shifts ``s`` with ``lo <= ag + s d <= hi`` (per row), as an interval ``[low, high]``."""
    inf = torch.full_like(ag[:, 0], float("inf"))
    scale = d.abs().amax()
    use = d.abs() > 1e-12 * scale if float(scale) > 0 else torch.zeros_like(d, dtype=torch.bool)
    if not bool(use.any()):
        return -inf, inf
    safe = torch.where(use, d, torch.ones_like(d))
    a = (lo - ag) / safe
    b = (hi - ag) / safe
    first, second = torch.minimum(a, b), torch.maximum(a, b)
    low = torch.where(use, first, -float("inf")).amax(dim=1)
    high = torch.where(use, second, float("inf")).amin(dim=1)
    return low, high


def _feasible_shift(
    maps: Tensor, target_mean: Tensor, factor_d: Tensor, ag: Tensor, lo: Tensor, hi: Tensor
) -> Tensor:
    """``maps + s`` (a constant per map) with the mean closest to ``target_mean`` among the
    shifts that keep ``lo <= A g <= hi`` (``ag = A maps``, ``A 1 = factor_d``)."""
    low, high = _shift_interval(ag, factor_d, lo, hi)
    want = target_mean - maps.flatten(1).mean(dim=1)
    ok = low <= high
    s = torch.where(ok, torch.minimum(torch.maximum(want, low), high), torch.zeros_like(want))
    return maps + s[:, None, None]


def _feasible_general(problem: Any, maps: Tensor, target_mean: Tensor) -> tuple[Tensor, Tensor]:
    """For a general problem: ``maps`` (``(B, h, w)``) shifted by the constant that brings their
    mean closest to ``target_mean`` while keeping them feasible (for the paper's covariance and
    any ``Sigma`` with ``Sigma 1 = lambda 1`` every shift is feasible), and their feasibility
    violation ``max(||c - A g||_inf - L, 0)``."""
    b = problem.b
    shape = problem.shape
    cov = problem.covariance.to(device=b.device, dtype=b.dtype)
    lap = _GridLaplacian(shape, b.dtype, b.device)
    maps = maps.to(b)
    spectral = isinstance(cov, SpectralCovariance)

    def apply_a(g: Tensor) -> Tensor:
        if spectral:  # no p x p matrix
            return _diff(lap.solve(cov.matmul(g.reshape(-1, *shape))))
        return _diff(lap.solve((g.reshape(g.shape[0], -1) @ cov).reshape(-1, *shape)))

    c = _diff(lap.solve(b))
    bound = problem.bound.to(b.dtype)[:, None]
    if spectral:  # Sigma 1 = s_0 1: every shift is feasible
        d = torch.zeros_like(c[0])
    else:
        d = apply_a(torch.ones_like(b[:1]))[0]
        if float(d.abs().max()) <= 1e-10 * float(cov.abs().max()):
            d = torch.zeros_like(d)
    out = _feasible_shift(maps, target_mean.to(b), d, apply_a(maps), c - bound, c + bound)
    violation = ((apply_a(out) - c).abs().amax(dim=1) - bound[:, 0]).clamp_min(0.0)
    return out, violation


@dataclass
class _GeneralState:
    """Warm start for the general solver: ADMM iterates, penalty, the covariance factor."""

    w: Tensor
    u: Tensor
    t: Tensor
    v: Tensor
    mean: Tensor
    rho: Tensor
    factor: _Factor


def _iterate(
    n: int, st: dict[str, Any], f: _Factor, lo: Tensor, hi: Tensor,
    thresh: Tensor, alpha: float,
) -> Tensor:
    """``n`` over-relaxed scaled ADMM iterations on ``st`` (in place); returns the last ``g``."""
    h, w_ = f.shape
    w, u, t, v = st["w"], st["u"], st["t"], st["v"]
    batch = w.shape[0]
    kappa = f.kappa
    g = st.get("g")
    beta = 1.0 - alpha
    for _ in range(n):
        # D^T of both edge vectors at once; the g-step also returns P Sigma g
        x = _diff_adjoint(torch.cat([w - u, t - v]), f.shape)
        g, pot = f.g_step(x, st["mean"])
        st["mean"] = g.mean(dim=1, keepdim=True)
        both = _diff(torch.cat([g.reshape(batch, h, w_), pot]))  # D g and P Sigma g's edges
        qw = both[:batch].mul_(alpha).add_(w, alpha=beta).add_(u)
        w = qw - torch.clamp(qw, -thresh, thresh)
        u = qw - w
        qt = both[batch:].mul_(kappa * alpha).add_(t, alpha=beta).add_(v)
        t = torch.clamp(qt, lo, hi)
        v = qt - t
    st["w"], st["u"], st["t"], st["v"], st["g"] = w, u, t, v, g
    return g


class _RegionFlow:
    """Regions of the graph of ``zero`` edges, and flows on those edges: ``solve(r)`` is the
    least-norm ``y`` with ``D_Z^T y = r`` (``r`` summing to zero on every region), by a pinned
    sparse Laplacian factorised once. Host (scipy) computation."""

    def __init__(self, zero: Tensor, shape: tuple[int, int]) -> None:
        import numpy as np
        import scipy.sparse as sp
        from scipy.sparse.csgraph import connected_components
        from scipy.sparse.linalg import splu

        p = shape[0] * shape[1]
        head, tail = _edge_ends(shape)
        keep = zero.cpu().numpy()
        hz, tz = head[keep], tail[keep]
        n, labels = connected_components(
            sp.csr_matrix((np.ones(hz.size), (hz, tz)), shape=(p, p)), directed=False
        )
        rows = np.arange(hz.size)
        self.dz = sp.csr_matrix(
            (np.concatenate([np.ones(hz.size), -np.ones(hz.size)]),
             (np.concatenate([rows, rows]), np.concatenate([hz, tz]))),
            shape=(hz.size, p),
        )
        pin = np.zeros(p)
        pin[np.unique(labels, return_index=True)[1]] = 1.0
        self.lu = splu((self.dz.T @ self.dz + sp.diags(pin)).tocsc())
        self.zero = zero
        self.labels = torch.as_tensor(labels, device=zero.device)
        self.count = int(n)

    def solve(self, r: Tensor) -> Tensor:
        phi = self.lu.solve(r.detach().cpu().numpy())
        return torch.as_tensor(self.dz @ phi, dtype=r.dtype).to(r.device)

    def divergence(self, flow: Tensor) -> Tensor:
        """``D_Z^T flow`` for a flow on the zero edges."""
        out = self.dz.T @ flow.detach().cpu().numpy()
        return torch.as_tensor(out, dtype=flow.dtype).to(flow.device)


def _nnls(a: Tensor, b: Tensor) -> Tensor:
    """``argmin_{x >= 0} |a x - b|`` (scipy, on the host)."""
    from scipy.optimize import nnls

    x, _ = nnls(a.detach().cpu().numpy(), b.detach().cpu().numpy(), maxiter=50 * a.shape[1])
    return torch.as_tensor(x, dtype=a.dtype).to(a.device)


def _polish(
    y: Tensor, zero: Tensor, upper: Tensor, lower: Tensor, c: Tensor, bound: Tensor,
    f: _Factor, rounds: int = 20, active_rounds: int = 5,
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact finishing step: the vertex of the face that the ADMM iterate identifies.

    ``zero`` marks the edges with ``w_e = 0`` (soft-thresholded to exactly zero), ``upper`` and
    ``lower`` the constraints whose ``t_e`` sits on the box (clipped exactly). On that face
    ``g`` is constant on the regions joined by zero edges, and ``(A g)_e = c_e +- L`` on the
    active constraints: a small least-squares system in one unknown per region (constraints
    the solution violates join the active set, up to ``active_rounds`` solves). The dual is
    polished on the same face: summed over a region ``D^T y`` vanishes, so the active
    multipliers solve the transposed system, and ``y`` on the zero edges is a flow completing
    ``D^T y = -A^T z`` (the ADMM flow corrected by least-norm flows, alternated with clipping
    to ``[-1, 1]``). Returns flat maps and ``(y, z)``; the caller checks feasibility and turns
    the pair into a valid bound."""
    batch, m = c.shape
    p = f.shape[0] * f.shape[1]
    out_g = torch.zeros((batch, p), dtype=c.dtype, device=c.device)
    out_y, out_z = y.clone(), torch.zeros_like(c)
    for i in range(batch):
        up, low = upper[i].clone(), lower[i].clone()
        if not bool((up | low).any()) or bool(zero[i].all()):
            continue
        regions = _RegionFlow(zero[i], f.shape)
        labels, k = regions.labels, regions.count
        ind = torch.zeros((p, k), dtype=c.dtype, device=c.device)
        ind[torch.arange(p, device=c.device), labels] = 1.0
        a_ind = f.apply_a(ind.T).T  # (m, k)
        for _ in range(active_rounds):  # add the constraints the vertex violates, re-solve
            active = up | low
            sign = torch.where(up, 1.0, -1.0).to(c.dtype)[active]
            rows = a_ind[active]
            rhs = c[i, active] + bound[i] * sign
            coef = torch.linalg.lstsq(
                rows.cpu(), rhs.cpu().unsqueeze(1), driver="gelsd"
            ).solution.to(c.device)
            resid = (a_ind @ coef)[:, 0] - c[i]
            over = resid > bound[i] * (1 + 1e-9)
            under = resid < -bound[i] * (1 + 1e-9)
            if not bool((over | under).any()):
                break
            up, low = up | over, low | under
        g = (ind @ coef)[:, 0]
        out_g[i] = g
        # dual: region sums of D_Z^T y_Z vanish, so rows^T z_act = -Ind^T D_{Z^c}^T s
        sign_g = torch.sign(_diff(g.reshape(1, *f.shape))[0])
        s = torch.where(zero[i], torch.zeros_like(y[i]), sign_g)
        ds = _diff_adjoint(s.unsqueeze(0), f.shape).reshape(-1)
        # sign-constrained (z_e >= 0 on upper, <= 0 on lower bounds): non-negative least squares
        zs = _nnls(rows.T * sign, -(ind.T @ ds)) * sign
        out_z[i, active] = zs
        rest = -(ds + f.apply_at(out_z[i : i + 1])[0])  # D_Z^T y_Z must equal this
        rest = rest - (ind @ (ind.T @ rest)) / ind.sum(dim=0)[labels]  # exact region sums
        flow = y[i][zero[i]].clamp(-1.0, 1.0)
        for _ in range(rounds):
            flow = flow + regions.solve(rest - regions.divergence(flow))
            if float(flow.abs().amax()) <= 1.0:
                break
            flow = flow.clamp(-1.0, 1.0)
        yi = s.clone()
        yi[zero[i]] = flow
        out_y[i] = yi
    return out_g, out_y, out_z


def _dual_bound(
    y: Tensor, z: Tensor, c: Tensor, bound: Tensor, f: _Factor, rounds: int = 10
) -> Tensor:
    """Value of a dual-feasible point built from the multiplier estimates ``(y, z)``."""
    if not f.d_free:
        dd = f.d
        z = z - (z @ dd)[:, None] * dd / (dd @ dd)
    r = -f.apply_at(z).reshape(-1, *f.shape)

    def onto_affine(yy: Tensor) -> Tensor:
        return yy + _diff(f.lap.solve(r - _diff_adjoint(yy, f.shape)))

    y = onto_affine(y)
    for _ in range(rounds):
        if float(y.abs().amax()) <= 1.0:
            break
        y = onto_affine(y.clamp(-1.0, 1.0))
    scale = y.abs().amax(dim=1).clamp_min(1.0)
    return (-(c * z).sum(dim=1) - bound * z.abs().sum(dim=1)) / scale


def _make_feasible(
    g: Tensor, centre: Tensor, c: Tensor, r: Tensor, f: _Factor
) -> tuple[Tensor, Tensor]:
    """Smallest convex combination of flat maps ``g`` with ``centre`` (``A centre = c``)
    meeting ``|A g - c| <= r``; the maps and their objective ``||D g||_1``."""
    dev = ((f.apply_a(g) - c).abs().amax(dim=1) / r.clamp_min(1e-300))
    margin = max(1e-12, 64 * torch.finfo(g.dtype).eps)
    theta = (1.0 - (1.0 - margin) / dev).clamp(0.0, 1.0)[:, None]
    maps = (1.0 - theta) * g + theta * centre
    return maps, _diff(maps.reshape(-1, *f.shape)).abs().sum(dim=1)


def _solve_general(solver: Any, problem: Any, warm_start: Any) -> tuple[Tensor, dict[str, Any]]:
    """Solve a :class:`GeneralTVProblem` batch; returns maps and the certificate's fields."""
    b = problem.b
    if not b.is_floating_point():
        raise TypeError("problem.b must be a floating-point tensor")
    shape = problem.shape
    batch, p = b.shape[0], shape[0] * shape[1]
    spectral = isinstance(problem.covariance, SpectralCovariance)
    if p > solver.max_dense_pixels and not spectral:
        raise ValueError(
            f"FastTVSolver factorises a general covariance densely: the grid {shape} has {p} "
            f"pixels, above max_dense_pixels={solver.max_dense_pixels}; use a coarser "
            "grid_size, the paper's TVGaussian perturbation or a SpectralCovariance (no dense "
            "matrix), or raise max_dense_pixels"
        )
    cov = problem.covariance.to(device=b.device, dtype=b.dtype)
    factor = None
    if isinstance(warm_start, _GeneralState) and warm_start.factor.matches(cov):
        factor = warm_start.factor
    elif solver._factor is not None and solver._factor.matches(cov):
        factor = solver._factor
    if factor is None:
        factor = _factorise(cov, shape)
    solver._factor = factor
    f = factor
    flat_b = b.reshape(batch, p)
    c = _diff(f.lap.solve(b))
    bound = problem.bound.to(b.dtype)
    lo_c, hi_c = c - bound[:, None], c + bound[:, None]
    centre = _centre(flat_b, f)
    l_max = c.abs().amax(dim=1)
    trivial = l_max <= bound
    degenerate = (bound == 0) & ~trivial
    centre_obj = _diff(centre.reshape(-1, *shape)).abs().sum(dim=1)
    kappa = f.kappa
    lo, hi = kappa * lo_c, kappa * hi_c

    m = c.shape[1]
    zeros_e = torch.zeros((batch, m), dtype=b.dtype, device=b.device)
    if warm_start is not None:
        if not isinstance(warm_start, _GeneralState) or warm_start.w.shape != (batch, m):
            raise ValueError(
                "warm_start must come from a general problem on the same grid and batch size"
            )
        st: dict[str, Any] = {
            "w": warm_start.w.clone(), "u": warm_start.u.clone(),
            "t": torch.clamp(warm_start.t, lo, hi), "v": warm_start.v.clone(),
            "mean": warm_start.mean.clone(),
        }
        rho = warm_start.rho.clone()
    else:
        st = {"w": zeros_e.clone(), "u": zeros_e.clone(), "t": torch.clamp(zeros_e, lo, hi),
              "v": zeros_e.clone(), "mean": torch.zeros((batch, 1), dtype=b.dtype,
                                                         device=b.device)}
        scale = _diff(centre.reshape(-1, *shape)).abs().amax(dim=1, keepdim=True)
        rho = (solver.rho if solver.rho is not None else 32.0) / scale.clamp_min(1e-30)
    thresh = 1.0 / rho

    inf = torch.full((batch,), float("inf"), dtype=b.dtype, device=b.device)
    zero = torch.zeros_like(inf)
    best_obj = torch.where(trivial, zero, torch.where(degenerate, centre_obj, inf))
    best_dual = torch.where(trivial, zero, torch.where(degenerate, centre_obj, -inf))
    best = torch.where(degenerate[:, None], centre, torch.zeros_like(centre))
    fixed = trivial | degenerate
    block = solver.check_every
    stride = min(solver.average_every, block) if solver.average_every else block
    samples = block // stride
    head = block - samples * stride
    prev_y = prev_z = None
    polish = solver.polish and p <= solver.polish_max_pixels
    it = 0
    gap = torch.zeros_like(inf)
    done = fixed.clone()
    while not bool(fixed.all()):
        sums = {"g": 0.0, "u": 0.0, "v": 0.0}
        if head:
            _iterate(head, st, f, lo, hi, thresh, solver.alpha)
        for _ in range(samples):
            g = _iterate(stride, st, f, lo, hi, thresh, solver.alpha)
            sums["g"] = sums["g"] + g
            sums["u"] = sums["u"] + st["u"]
            sums["v"] = sums["v"] + st["v"]
        it += block
        g_avg = sums["g"] / samples
        maps, obj = _make_feasible(g_avg, centre, c, bound, f)
        y_blk = rho * sums["u"] / samples
        z_blk = kappa * rho * sums["v"] / samples
        y = y_blk if prev_y is None else 0.5 * (y_blk + prev_y)
        z = z_blk if prev_z is None else 0.5 * (z_blk + prev_z)
        prev_y, prev_z = y_blk, z_blk
        dual = _dual_bound(y, z, c, bound, f)
        checks = it // block
        if polish and checks % solver.polish_every == 0:
            gap = torch.minimum(obj, best_obj) - torch.maximum(dual, best_dual)
            if bool((gap > solver.tol * obj.abs().clamp_min(1e-12)).any()):
                g_pol, y_pol, z_pol = _polish(
                    y, st["w"] == 0, st["t"] >= hi, st["t"] <= lo, c, bound, f
                )
                pol_maps, pol_obj = _make_feasible(g_pol, centre, c, bound, f)
                use = pol_obj < obj
                obj = torch.where(use, pol_obj, obj)
                maps = torch.where(use[:, None], pol_maps, maps)
                dual = torch.maximum(dual, _dual_bound(y_pol, z_pol, c, bound, f))
        better = (obj < best_obj) & ~fixed
        best_obj = torch.where(better, obj, best_obj)
        best = torch.where(better[:, None], maps, best)
        best_dual = torch.where(fixed, best_dual, torch.maximum(best_dual, dual))
        gap = (best_obj - best_dual).clamp_min(0.0)
        done = gap <= solver.tol * best_obj.abs().clamp_min(1e-12)
        if bool(done.all()) or it >= solver.max_iter:
            break
    gap = (best_obj - best_dual).clamp_min(0.0)
    maps, violation = _feasible_general(
        problem, best.reshape(batch, *shape), torch.zeros_like(inf)
    )
    state = _GeneralState(
        w=st["w"], u=st["u"], t=st["t"], v=st["v"], mean=st["mean"], rho=rho, factor=f
    )
    fields = dict(
        objective=best_obj, dual_objective=best_dual, duality_gap=gap,
        feasibility_violation=violation, iterations=it, converged=done, state=state,
    )
    return maps, fields
