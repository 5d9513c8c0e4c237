"""Captum attribution classes: LEG and LEG-TV (statistically consistent saliency)."""

from __future__ import annotations

from captum_latent.attr.leg import LEG
from captum_latent.attr.leg_tv import LEGTV, LEGTVCertificate, LEGTVPath, theoretical_bound
from captum_latent.attr.perturbations import (
    CovarianceGaussian,
    IndependentGaussian,
    PerturbationScheme,
    TVGaussian,
)
from captum_latent.attr.tv_problem import (
    Certificate,
    GeneralTVProblem,
    SpectralCovariance,
    StructuredTVProblem,
    TVSolution,
)
from captum_latent.attr.tv_solvers import CvxpyTVSolver, FastTVSolver

__all__ = [
    "LEG",
    "LEGTV",
    "LEGTVCertificate",
    "LEGTVPath",
    "CovarianceGaussian",
    "IndependentGaussian",
    "PerturbationScheme",
    "TVGaussian",
    "theoretical_bound",
    "Certificate",
    "CvxpyTVSolver",
    "FastTVSolver",
    "GeneralTVProblem",
    "SpectralCovariance",
    "StructuredTVProblem",
    "TVSolution",
]
