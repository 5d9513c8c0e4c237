"""Prior agreement (PAG) score, flexible-priors paper Eq. 2."""

from __future__ import annotations

import torch

__all__ = ["pag_score"]


def pag_score(
    codes: torch.Tensor,
    *,
    sigma: float = 1.0,
    reference_covariance: torch.Tensor | None = None,
) -> float:
    """KL divergence between the data-induced code distribution and the prior (paper Eq. 2).

    With ``nu_i`` the singular values of the ``(n, d)`` code matrix divided by ``sqrt(n)``
    (so ``nu_i^2`` are the eigenvalues of the uncentred second-moment matrix ``Z^T Z / n``,
    the covariance of the zero-mean Gaussian ``N(0, Sigma)`` fitted to the codes)::

        PAG = 1/2 * sum_i [ nu_i^2 / sigma^2 - log(nu_i^2 / sigma^2) - 1 ]
            = KL( N(0, Sigma) || N(0, sigma^2 I) ).

    The paper writes ``nu_i`` as the raw singular values of ``Z``; we divide by ``sqrt(n)`` so
    the score estimates the KL and does not grow with the number of codes.

    Parameters
    ----------
    codes : torch.Tensor
        ``(n, d)`` reverted codes, ``n >= d``.
    sigma : float
        Standard deviation of the isotropic prior ``N(0, sigma^2 I)``.
    reference_covariance : torch.Tensor, optional
        ``(d, d)`` covariance of a non-isotropic Gaussian prior to compare against instead,
        giving ``KL(N(0, Sigma) || N(0, reference_covariance))``; with
        ``sigma^2 I`` this is Eq. 2 exactly.

    Returns
    -------
    float
        The score (0 when the codes agree perfectly with the prior).

    Examples
    --------
    >>> import torch
    >>> z = torch.linalg.qr(torch.randn(100, 4, generator=torch.Generator().manual_seed(0)))[0]
    >>> z = z * 10 * torch.tensor([1.0, 2.0, 1.0, 1.0])   # nu = (1, 2, 1, 1)
    >>> round(pag_score(z), 4)   # 1/2 * (4 - log 4 - 1)
    0.8069
    """
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"codes must be a torch.Tensor, got {type(codes).__name__}")
    if codes.dim() != 2 or codes.shape[0] < codes.shape[1]:
        raise ValueError(f"codes must have shape (n, d) with n >= d, got {tuple(codes.shape)}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    z = codes.detach().double()
    n, d = z.shape
    if reference_covariance is None:
        nu2 = torch.linalg.svdvals(z).square() / n
        ratio = nu2 / sigma**2
        if bool((ratio <= 0).any()):
            raise ValueError("codes are rank-deficient: the PAG score is infinite")
        return float(0.5 * (ratio - ratio.log() - 1).sum())
    if not isinstance(reference_covariance, torch.Tensor) or tuple(
        reference_covariance.shape
    ) != (d, d):
        raise ValueError(
            f"reference_covariance must be a ({d}, {d}) tensor, got "
            f"{getattr(reference_covariance, 'shape', type(reference_covariance).__name__)}"
        )
    sigma_data = z.T @ z / n
    ref = reference_covariance.detach().double().to(z.device)
    chol = torch.linalg.cholesky(ref)
    trace = torch.cholesky_solve(sigma_data, chol).diagonal().sum()
    logdet_ref = 2 * chol.diagonal().log().sum()
    sign, logdet_data = torch.linalg.slogdet(sigma_data)
    if sign <= 0:
        raise ValueError("codes are rank-deficient: the PAG score is infinite")
    return float(0.5 * (trace - d - logdet_data + logdet_ref))
