"""``DISC``: counterfactuals by deep model inversion as an Alibi explainer.

Wraps :class:`captum_latent.counterfactual.DISCGenerator` behind Alibi's
``Explainer.explain`` / ``Explanation`` interface, with Alibi's channel-last numpy batches.
The explanation's ``data`` follows Alibi's counterfactual explainers (``cf`` with ``X``,
``class``, ``proba``; ``orig_class``, ``orig_proba``) and adds the difference map
``cf["diff"] = cf["X"] - X`` and per-instance validity.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import torch
from alibi.api.interfaces import Explainer, Explanation
from torch import nn

from alibi_ext._dataset import DISCDatasetAdapter
from captum_latent.adapters import register_adapter
from captum_latent.counterfactual import (
    DISCGenerator,
    FeatureSemantics,
    FixedSchedule,
    GeneratorPrior,
    ImagePrior,
    ManifoldConsistency,
    PixelSemantics,
    ProgressiveSchedule,
)
from captum_latent.validation import check_image_array, check_in_range, class_scores

__all__ = ["DEFAULT_DATA_DISC", "DEFAULT_META_DISC", "DISC"]

DEFAULT_META_DISC: dict = {
    "name": None,
    "type": ["whitebox", "pytorch"],
    "explanations": ["local"],
    "params": {},
    "version": None,
}
"""Default DISC metadata."""

DEFAULT_DATA_DISC: dict = {
    "cf": None,
    "all": {},
    "orig_class": None,
    "orig_proba": None,
    "target_class": None,
    "valid": None,
}
"""Default DISC data."""

TargetClass = Union[int, Sequence[int], str]


class DISC(Explainer):
    """DISC counterfactual explainer (Thiagarajan et al.) with Alibi's interface.

    Parameters
    ----------
    predictor_model : torch.nn.Module
        Classifier mapping ``(N, C, H, W)`` float images in [0, 1] to ``(N, K)`` logits, in
        eval mode, on ``device``. (Alibi's images are channel-last; the explainer transposes.)
    shape : tuple of int, optional
        Channel-last instance shape ``(H, W, C)`` (a leading batch dimension is ignored).
        When given, the predictor is probed at construction with a zero batch.
    prior, semantics, manifold, schedule, lambda_semantic, lambda_manifold, lambda_target, lr
        Passed to :class:`~captum_latent.counterfactual.DISCGenerator` (defaults: deep image
        prior, LSO on the classifier's conv blocks with ``lambda_semantic=0.01``, the
        classifier's own DEP term when it is a ``DEPClassifier``, progressive optimisation).
        ``prior=GeneratorPrior(generator)`` searches the counterfactuals among a generator's
        images instead (for users who have one).
    device : str or torch.device, default "cpu"
    seed : int, default 0
        Seed of the priors' initialisation for every :meth:`explain` call.
    target_probability : float or None, default 0.999
        Stop each instance once the classifier gives its counterfactual this probability of
        the target class (``DISCGenerator``; None: every step of the schedule).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from alibi_ext import DISC
    >>> from captum_latent.counterfactual import TVL2Prior, FixedSchedule, PixelSemantics
    >>> with torch.random.fork_rng():
    ...     _ = torch.manual_seed(0)
    ...     model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).eval()
    >>> explainer = DISC(model, shape=(4, 4, 1), prior=TVL2Prior(lr=0.05),
    ...                  semantics=PixelSemantics(), schedule=FixedSchedule(steps=80))
    >>> explanation = explainer.explain(np.full((2, 4, 4, 1), 0.5, np.float32), target_class=2)
    >>> explanation.cf["X"].shape, explanation.cf["class"].tolist()
    ((2, 4, 4, 1), [2, 2])
    >>> isinstance(explanation.to_json(), str)
    True

    Saving works through Alibi (``explainer.save(path)``, then
    ``alibi.saving.load_explainer(path, predictor=model)``): everything but the classifier is
    stored, and the loaded explainer gives the same counterfactuals for the same seed.
    """

    def __init__(
        self,
        predictor_model: nn.Module,
        shape: Sequence[int] | None = None,
        prior: ImagePrior | GeneratorPrior | None = None,
        semantics: PixelSemantics | FeatureSemantics | None = None,
        manifold: ManifoldConsistency | None | str = "auto",
        schedule: ProgressiveSchedule | FixedSchedule | None = None,
        lambda_semantic: float = 0.01,
        lambda_manifold: float = 1.0,
        lambda_target: float = 1.0,
        lr: float | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        target_probability: float | None = 0.999,
    ) -> None:
        super().__init__(meta=copy.deepcopy(DEFAULT_META_DISC))
        if not isinstance(predictor_model, nn.Module):
            raise TypeError("predictor_model must be a torch.nn.Module mapping (N, C, H, W) "
                            f"images to logits, got {type(predictor_model).__name__}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.device = torch.device(device)
        self.seed = seed
        self.predictor_model = predictor_model
        self.generator = DISCGenerator(
            predictor_model, prior=prior, semantics=semantics, manifold=manifold,
            schedule=schedule, lambda_semantic=lambda_semantic,
            lambda_manifold=lambda_manifold, lambda_target=lambda_target, lr=lr,
            device=self.device, target_probability=target_probability,
        )
        self.shape = None if shape is None else self._check_shape(shape)
        if self.shape is not None:
            self._probe(self.shape)
        params = {**self.generator.params(), "shape": self.shape, "device": str(self.device),
                  "seed": seed}
        self._update_metadata(params, params=True)

    @staticmethod
    def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
        dims = tuple(int(s) for s in shape)
        if len(dims) == 4:
            dims = dims[1:]
        if len(dims) != 3 or min(dims) < 1:
            raise ValueError(f"shape must be (H, W, C) or (1, H, W, C), got {tuple(shape)}")
        return dims  # type: ignore[return-value]

    def _probe(self, shape: tuple[int, int, int]) -> None:
        h, w, c = shape
        class_scores("predictor_model", self.predictor_model,
                     torch.zeros(1, c, h, w, device=self.device),
                     when=f"(a zero image, channel-first, from shape={shape}; the probe call)")

    def _to_tensor(self, X: Any) -> torch.Tensor:
        if isinstance(X, np.ndarray) and X.ndim == 3 and (
            self.shape is None or tuple(X.shape) == self.shape
        ):
            X = X[None]
        X = check_image_array("X", X, hwc=self.shape, batched=True)
        check_in_range("X", X, 0.0, 1.0, what="DISC's image domain [0, 1]")
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).permute(0, 3, 1, 2)

    @staticmethod
    def _check_target_class(target_class: Any, n: int, n_classes: int) -> None:
        if isinstance(target_class, str):
            if target_class != "other":
                raise ValueError(f"target_class must be an int, a sequence of ints or 'other', "
                                 f"got {target_class!r}")
            return
        values = np.atleast_1d(np.asarray(target_class))
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise TypeError(f"target_class must be an int, a sequence of ints or 'other', got "
                            f"{target_class!r}")
        if values.size not in (1, n):
            raise ValueError(f"target_class must hold one class or one per instance ({n}), got "
                             f"{values.size}")
        bad = values[(values < 0) | (values >= n_classes)]
        if bad.size:
            raise ValueError(f"target_class={bad.tolist()[0]} is out of range: the classifier has "
                             f"{n_classes} classes (0 to {n_classes - 1})")

    def explain(self, X: np.ndarray, target_class: TargetClass = "other") -> Explanation:
        """Counterfactuals for a batch of instances.

        Parameters
        ----------
        X : numpy.ndarray
            ``(N, H, W, C)`` (or one ``(H, W, C)``) float images in [0, 1].
        target_class : int, sequence of int or ``"other"``, default "other"
            Desired class per instance (one int for all); ``"other"`` takes each instance's
            second most likely class.

        Returns
        -------
        alibi.api.interfaces.Explanation
            ``data["cf"]``: ``X`` ``(N, H, W, C)`` counterfactuals, ``class`` ``(N,)``,
            ``proba`` ``(N, K)``, ``diff`` ``(N, H, W, C)`` = counterfactual - instance.
            Also ``orig_class``, ``orig_proba``, ``target_class``, ``valid``, and ``all``
            (``loss_history``, ``seconds``).
        """
        x = self._to_tensor(X)
        logits = class_scores("predictor_model", self.predictor_model, x.to(self.device),
                              when="on X")
        orig = torch.softmax(logits, 1).cpu()
        self._check_target_class(target_class, x.shape[0], orig.shape[1])
        result = self.generator.generate(x, target_class, seed=self.seed)

        def last(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().permute(0, 2, 3, 1).numpy()

        data = copy.deepcopy(DEFAULT_DATA_DISC)
        data["cf"] = {
            "X": last(result.counterfactuals),
            "class": result.predicted.cpu().numpy(),
            "proba": result.probabilities.cpu().numpy(),
            "diff": last(result.difference),
        }
        data["orig_class"] = orig.argmax(1).numpy()
        data["orig_proba"] = orig.numpy()
        data["target_class"] = result.target.cpu().numpy()
        data["valid"] = result.valid.cpu().numpy()
        data["all"] = {"loss_history": list(result.loss_history), "seconds": result.seconds}
        return Explanation(meta=copy.deepcopy(self.meta), data=data)

    def explain_seeded(self, X: np.ndarray, seed: int, **kwargs: Any) -> Explanation:
        """``explain(X, **kwargs)`` with the priors seeded by ``seed`` (the explainer's own seed
        is left as it was): what :func:`~captum_latent.distributed.explain_dataset` runs for
        each item."""
        saved = self.seed
        self.seed = seed
        try:
            return self.explain(X, **kwargs)
        finally:
            self.seed = saved

    def reset_predictor(self, predictor: nn.Module) -> None:
        """Use another classifier (same configuration otherwise)."""
        if not isinstance(predictor, nn.Module):
            raise TypeError(f"predictor must be a torch.nn.Module, got {type(predictor).__name__}")
        components = self._components()
        self.predictor_model = predictor
        self.generator = DISCGenerator(predictor, device=self.device, **components)

    # -- persistence: Alibi's save_explainer/load_explainer ----------------------------------
    @property
    def predictor(self) -> nn.Module | None:
        """The classifier (Alibi's name for it; ``predictor_model`` is DISC's)."""
        return self.predictor_model

    @predictor.setter
    def predictor(self, value: nn.Module | None) -> None:
        self.predictor_model = value

    def _components(self) -> dict:
        g = self.__dict__.get("generator")
        if g is None:
            return dict(self.__dict__["_saved_components"])
        return dict(prior=g.prior, semantics=g.semantics,
                    manifold=getattr(g, "manifold_setting", g.manifold),
                    schedule=g.schedule, lambda_semantic=g.lambda_semantic,
                    lambda_manifold=g.lambda_manifold, lambda_target=g.lambda_target, lr=g.lr,
                    target_probability=getattr(g, "target_probability", None))

    def __getstate__(self) -> dict:
        """Everything but the classifier (Alibi passes it again to ``load_explainer``)."""
        state = self.__dict__.copy()
        state["_saved_components"] = self._components()
        state["generator"] = None
        state["predictor_model"] = None
        if state.get("device") is not None:
            state["device"] = str(state["device"])
        return state

    def __setstate__(self, state: dict) -> None:
        device = torch.device(state.get("device") or "cpu")
        if device.type == "cuda" and not torch.cuda.is_available():
            device = torch.device("cpu")
        state["device"] = device
        self.__dict__.update(state)


register_adapter(DISC, DISCDatasetAdapter)
