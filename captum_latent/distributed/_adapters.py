"""Adapters: each explainer seen as "explain these items with these seeds -> one dict per item".

An adapter wraps one explainer and knows its calling convention (Captum's
``attribute(inputs, target=...)`` on channel-first tensors, Alibi's ``explain(X)`` on
channel-last numpy, ``MimicGAN.recover``, a plain callable), how to seed one item, how to check a
data set before any work, and how to turn its output into a flat dict of numpy arrays.

Seeding is per item (``seed`` from `item_seed`), so an item's result depends on the run's
seed and its index only, never on the chunk it was computed in, the backend or the worker. The
exception is a *batched* adapter (`_MimicGANAdapter`: the surrogate is fitted on a whole
chunk), whose chunks are fixed by ``chunk_size`` and seeded by their first item.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from typing import Any, Callable, Optional

import numpy as np

from captum_latent.distributed._items import Data, Items
from captum_latent.distributed._records import Record, to_record


def item_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` of a run seeded with ``seed`` (in ``[0, 2**31)``).

    Examples
    --------
    >>> from captum_latent.distributed._adapters import item_seed
    >>> item_seed(0, 5) == item_seed(0, 5) != item_seed(0, 6)
    True
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0]
    return int(state) & 0x7FFFFFFF


def _class_in(explainer: Any, module: str, name: str) -> bool:
    """``isinstance(explainer, module.name)`` without importing ``module`` (nothing of it can be
    an instance if it was never imported)."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return isinstance(cls, type) and isinstance(explainer, cls)


def _qualname(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _scalar(value: Any) -> Any:
    """Numpy scalars and 0-d arrays/tensors as Python numbers (Captum targets, class ids)."""
    if isinstance(value, np.generic):
        return value.item()
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


class ExplainerAdapter:
    """Base class: one explainer, explained item by item."""

    #: the chunk is one joint problem (results depend on chunk boundaries)
    batched = False
    #: explain-method arguments owned by explain_dataset
    reserved: tuple[str, ...] = ()
    #: how the explainer is called, for error messages
    call = "explain"

    def __init__(self, explainer: Any, device: Any = None) -> None:
        self.explainer = explainer
        self.device = device

    @property
    def name(self) -> str:
        return _qualname(self.explainer)

    # -- checks before any work -----------------------------------------------------------
    def _method(self) -> Optional[Callable[..., Any]]:
        return getattr(self.explainer, self.call, None)

    def check_kwargs(self, names: set[str], per_item: set[str]) -> None:
        """``TypeError`` for reserved or unknown argument names."""
        clash = sorted((names | per_item) & set(self.reserved))
        if clash:
            raise TypeError(
                f"explain_kwargs/per_item_kwargs must not set {clash}: explain_dataset passes "
                f"them to {type(self.explainer).__name__}.{self.call} itself (use seed= of "
                "explain_dataset for randomness)"
            )
        method = self._method()
        try:
            params = inspect.signature(method).parameters if method is not None else None
        except (TypeError, ValueError):
            params = None
        if params is None or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        data_arg = next(iter(params), None)  # the item/inputs argument
        settable = [n for n in params if n != data_arg and n not in self.reserved]
        unknown = sorted((names | per_item) - set(settable))
        if unknown:
            raise TypeError(
                f"{type(self.explainer).__name__}.{self.call} has no argument(s) {unknown} "
                f"that explain_dataset can pass; it accepts {settable}"
            )

    def check_items(self, items: Items) -> None:
        """``TypeError``/``ValueError`` when the data set cannot be explained."""

    def default_chunk_size(self, n_items: int) -> int:
        return int(min(32, max(1, -(-n_items // 64))))

    def min_chunk_size(self, kwargs: Mapping[str, Any]) -> int:
        return 1

    # -- work -----------------------------------------------------------------------------
    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        raise NotImplementedError

    def explain_batch(self, items: Data, seed: int, kwargs: list[dict[str, Any]]) -> list[Record]:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------
    def _tensor(self, item: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.asarray(item)).to(self.device or "cpu")


def _check_array(items: Items, ndim: int, what: str, call: str) -> np.ndarray:
    if not items.is_array:
        raise TypeError(f"images must be one array of equal-shape items for {call}, got a list "
                        "of items of different shapes or types")
    data = np.asarray(items.data)
    if data.ndim != ndim:
        one = " (for one image, pass images[None])" if data.ndim == ndim - 1 else ""
        raise ValueError(f"images must have shape {what} for {call}, got {data.shape}{one}")
    if not np.issubdtype(data.dtype, np.floating):
        raise TypeError(f"images must be floating point for {call}, got {data.dtype}")
    return data


def _channel_last_only(items: Items, name: str) -> None:
    if items.kind == "torch":
        raise TypeError(
            f"{name} takes channel-last numpy images (N, H, W, C) as in Alibi, got a "
            "torch.Tensor; pass images.permute(0, 2, 3, 1).cpu().numpy()"
        )


class _LEGAdapter(ExplainerAdapter):
    """``LEG``/``LEGTV``: ``attribute(x[None], seed=item_seed, ...)`` on channel-first tensors."""

    reserved = ("inputs", "seed", "generator")
    call = "attribute"

    def check_items(self, items: Items) -> None:
        _check_array(items, 4, "(N, C, H, W)", f"{type(self.explainer).__name__}.attribute")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        out = self.explainer.attribute(self._tensor(item[None]), seed=seed, **kwargs)
        record: Record = {"attribution": out[0]}
        cert = getattr(self.explainer, "last_certificate", None)
        if _class_in(self.explainer, "captum_latent.attr.leg_tv", "LEGTV") and cert is not None:
            record["penalty"] = self.explainer.last_penalty[0]
            record["objective"] = cert.objective
            record["duality_gap"] = cert.duality_gap
            record["feasibility_violation"] = cert.feasibility_violation
            record["converged"] = cert.converged
        return record


class _CaptumAdapter(ExplainerAdapter):
    """Any Captum attribution: ``attribute(x[None], ...)`` under torch's RNG seeded per item."""

    reserved = ("inputs",)
    call = "attribute"

    def check_items(self, items: Items) -> None:
        if not items.is_array or np.asarray(items.data).ndim < 2:
            raise ValueError(f"images must be an array (N, ...) for "
                             f"{type(self.explainer).__name__}.attribute")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.explainer.attribute(self._tensor(item[None]), **kwargs)
        if isinstance(out, tuple):
            return {f"attribution{i}": o[0] for i, o in enumerate(out)}
        return {"attribution": out[0]}


class _GANAnchorAdapter(ExplainerAdapter):
    """``GANAnchorImage.explain(image, ...)`` on channel-last numpy, seeded per item."""

    reserved = ("image",)

    def check_items(self, items: Items) -> None:
        _channel_last_only(items, "GANAnchorImage")
        data = _check_array(items, 4, "(N, H, W, C)", "GANAnchorImage.explain")
        shape = tuple(self.explainer.image_shape)
        if data.shape[1:] != shape:
            hint = " (channel-first? Alibi is channel-last)" if data.shape[1] == shape[-1] else ""
            raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}) for "
                             f"this GANAnchorImage, got {data.shape}{hint}")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        e = self.explainer
        saved = (e.seed, e._explain_count)
        e.seed, e._explain_count = seed, 0
        try:
            explanation = e.explain(item, **kwargs)
        finally:
            e.seed, e._explain_count = saved
        data = explanation.data
        raw = data.get("raw") or {}
        record: Record = {
            "anchor": data["anchor"],
            "segments": data["segments"],
            "precision": float(np.asarray(data["precision"]).reshape(-1)[0]),
            "coverage": float(data["coverage"]),
            "feature": np.asarray(raw.get("feature", []), dtype=np.int64),
            "prediction": int(np.asarray(raw.get("prediction", [-1])).reshape(-1)[0]),
        }
        for key, value in (data.get("sampler_stats") or {}).items():
            if isinstance(value, (int, float, np.generic)):
                record[f"sampler_stats.{key}"] = value
        return record


class _DISCAdapter(ExplainerAdapter):
    """``alibi_ext.DISC.explain(X[None], ...)`` on channel-last numpy, seeded per item."""

    reserved = ("X",)

    def check_items(self, items: Items) -> None:
        _channel_last_only(items, "DISC")
        data = _check_array(items, 4, "(N, H, W, C)", "DISC.explain")
        shape = self.explainer.shape
        if shape is not None and tuple(data.shape[1:]) != tuple(shape):
            hint = " (channel-first? Alibi is channel-last)" if data.shape[1] == shape[-1] else ""
            raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}) for this "
                             f"DISC, got {data.shape}{hint}")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        e = self.explainer
        saved = e.seed
        e.seed = seed
        try:
            explanation = e.explain(item[None], **kwargs)
        finally:
            e.seed = saved
        data = explanation.data
        cf = data["cf"]
        return {
            "cf.X": cf["X"][0], "cf.class": int(cf["class"][0]), "cf.proba": cf["proba"][0],
            "cf.diff": cf["diff"][0], "orig_class": int(data["orig_class"][0]),
            "orig_proba": data["orig_proba"][0], "target_class": int(data["target_class"][0]),
            "valid": bool(data["valid"][0]),
            "loss_history": np.asarray(data["all"].get("loss_history", []), dtype=np.float64),
        }


class _DISCGeneratorAdapter(ExplainerAdapter):
    """``DISCGenerator.generate(x[None], target, seed=item_seed)`` on channel-first tensors."""

    reserved = ("queries", "seed", "generator")
    call = "generate"

    def check_items(self, items: Items) -> None:
        _check_array(items, 4, "(N, C, H, W)", "DISCGenerator.generate")

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        kwargs = dict(kwargs)
        target = kwargs.pop("target", "other")
        r = self.explainer.generate(self._tensor(item[None]), target, seed=seed, **kwargs)
        return {
            "counterfactual": r.counterfactuals[0], "source": int(r.source[0]),
            "target": int(r.target[0]), "probabilities": r.probabilities[0],
            "predicted": int(r.predicted[0]), "valid": bool(r.valid[0]),
            "loss_history": np.asarray(r.loss_history, dtype=np.float64),
        }


class _MimicGANAdapter(ExplainerAdapter):
    """``MimicGAN.recover(chunk, seed=...)``: one joint recovery per chunk (a batched adapter:
    the corruption surrogate is fitted on the whole chunk)."""

    batched = True
    reserved = ("observations", "seed")
    call = "recover"

    def check_kwargs(self, names: set[str], per_item: set[str]) -> None:
        if per_item:
            raise TypeError(f"MimicGAN.recover has no per-item arguments, got {sorted(per_item)}")
        super().check_kwargs(names, per_item)

    def check_items(self, items: Items) -> None:
        data = _check_array(items, 4, "(N, C, H, W)", "MimicGAN.recover")
        shape = tuple(self.explainer.image_shape)
        if data.shape[1:] != shape:
            hint = ""
            if data.shape[-1] == shape[0]:
                hint = " (channel-last? MimicGAN is channel-first)"
            raise ValueError(f"images must have shape (N, {', '.join(map(str, shape))}) for this "
                             f"MimicGAN, got {data.shape}{hint}")

    def _learnable(self, kwargs: Mapping[str, Any]) -> bool:
        template = kwargs.get("surrogate")
        if template is None:
            template = self.explainer.surrogate_template
        return bool(kwargs.get("fit_surrogate", True)) and any(
            p.requires_grad for p in template.parameters())

    def default_chunk_size(self, n_items: int) -> int:
        return max(64, self.explainer.min_observations)

    def min_chunk_size(self, kwargs: Mapping[str, Any]) -> int:
        return self.explainer.min_observations if self._learnable(kwargs) else 1

    def explain_batch(self, items: Data, seed: int, kwargs: list[dict[str, Any]]) -> list[Record]:
        r = self.explainer.recover(self._tensor(items), seed=seed, **(kwargs[0] if kwargs else {}))
        return [{"image": r.images[i], "code": r.codes[i], "mimicked": r.mimicked[i]}
                for i in range(len(items))]


class _AlibiAdapter(ExplainerAdapter):
    """Any Alibi explainer: ``explain(x[None], ...)`` under numpy's global RNG seeded per item
    (restored afterwards); the record is the explanation's ``data`` (values that are not arrays
    or numbers are left out)."""

    reserved = ("X",)

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        state = np.random.get_state()
        try:
            np.random.seed(seed)
            explanation = self.explainer.explain(np.asarray(item)[None], **kwargs)
        finally:
            np.random.set_state(state)
        return to_record(explanation, skip_unsupported=True)


class _CallableAdapter(ExplainerAdapter):
    """A plain callable ``fn(item, **kwargs)`` (``seed=`` passed when ``fn`` has a ``seed``
    parameter). Items are tensors when the data set was a tensor, numpy arrays when it was an
    array, the objects themselves otherwise. It returns a dict, an array/tensor/number
    (stored as ``"result"``) or an Alibi ``Explanation``."""

    reserved = ("seed",)
    call = "__call__"

    def __init__(self, explainer: Any, device: Any = None, kind: str = "numpy") -> None:
        super().__init__(explainer, device)
        self.kind = kind
        try:
            params = inspect.signature(explainer).parameters
        except (TypeError, ValueError):
            params = {}
        self.takes_seed = "seed" in params

    @property
    def name(self) -> str:
        fn = self.explainer
        if inspect.isfunction(fn) or inspect.ismethod(fn):
            return f"{fn.__module__}.{fn.__qualname__}"
        return _qualname(fn)

    def _method(self) -> Optional[Callable[..., Any]]:
        return self.explainer

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        if self.kind == "torch":
            item = self._tensor(item)
        if self.takes_seed:
            kwargs = {**kwargs, "seed": seed}
        return to_record(self.explainer(item, **kwargs))


def make_adapter(explainer: Any, items: Items, device: Any = None) -> ExplainerAdapter:
    """The adapter for ``explainer`` (``TypeError`` when it is not an explainer or callable)."""
    if isinstance(explainer, ExplainerAdapter):
        return explainer
    if device is None and items.kind == "torch":
        device = items.device
    if _class_in(explainer, "captum_latent.attr.leg", "LEG"):
        return _LEGAdapter(explainer, device)
    if _class_in(explainer, "alibi_ext.anchor_image", "GANAnchorImage"):
        return _GANAnchorAdapter(explainer)
    if _class_in(explainer, "alibi_ext.counterfactual", "DISC"):
        return _DISCAdapter(explainer)
    if _class_in(explainer, "captum_latent.inverse.mimicgan", "MimicGAN"):
        return _MimicGANAdapter(explainer, device or getattr(explainer, "device", None))
    if _class_in(explainer, "captum_latent.counterfactual.generator", "DISCGenerator"):
        return _DISCGeneratorAdapter(explainer, device)
    if callable(getattr(explainer, "attribute", None)):
        return _CaptumAdapter(explainer, device)
    if callable(getattr(explainer, "explain", None)):
        return _AlibiAdapter(explainer)
    if callable(explainer):
        return _CallableAdapter(explainer, device, items.kind)
    raise TypeError(
        "explainer must be a captum-latent/Captum attribution (.attribute), an Alibi explainer "
        "(.explain), MimicGAN (.recover) or a callable item -> dict, got "
        f"{type(explainer).__name__}"
    )
