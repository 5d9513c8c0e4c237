"""Data-set adapters: how an explainer is run item by item, and the registry that finds them.

An adapter wraps one explainer and knows its calling convention (Captum's
``attribute(inputs, target=...)`` on channel-first tensors, Alibi's ``explain(X)`` on
channel-last numpy, ``MimicGAN.recover``, a plain callable), how to seed one item, how to check a
data set before any work, and how to turn its output into a flat record of numpy arrays.

Each method package declares the adapter of its own explainers with :func:`register_adapter`
when the explainer's module is imported (``captum_latent.attr`` for ``LEG``/``LEGTV``,
``alibi_ext`` for ``GANAnchorImage``/``DISC``, ...); :func:`adapter_for` finds the adapter of an
explainer by its class, falling back to the generic Captum, Alibi and callable adapters defined
here. This module sits at the bottom of the package (it imports no method package), so the
data-set layer (:mod:`captum_latent.distributed`) reaches every explainer through it, and a
user's own explainer class can be registered the same way.

Seeding is per item (:func:`item_seed`), so an item's result depends on the run's seed and its
index only, never on the chunk it was computed in, the backend or the worker. The exception is
a *batched* adapter (``MimicGAN``: the surrogate is fitted on a whole chunk), whose chunks are
fixed by ``chunk_size`` and seeded by their first item.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

__all__ = [
    "ExplainerAdapter",
    "Items",
    "Record",
    "adapter_for",
    "check_item_array",
    "item_seed",
    "register_adapter",
    "registered_adapters",
    "reject_tensor_items",
    "to_record",
]

#: One item's result: flat keys (nested keys joined by ``"."``) to numpy arrays or ``None``.
Record = dict[str, Any]

Data = Union[np.ndarray, list]


@dataclass
class Items:
    """The items of a data set.

    Attributes
    ----------
    data : numpy.ndarray or list
        ``(N, ...)`` array (tensors are copied to host numpy once), or a list of arbitrary
        picklable items (only plain callables accept those).
    kind : {"torch", "numpy", "object"}
        What the caller passed: a tensor, an array (or a list of equal-shape arrays), a list of
        other objects.
    device : str or None
        The device of the caller's tensor.
    """

    data: Data
    kind: str
    device: str | None = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def is_array(self) -> bool:
        return isinstance(self.data, np.ndarray)

    def chunk(self, start: int, stop: int) -> Data:
        """Items ``start:stop`` (a writable copy of an array's slice)."""
        if isinstance(self.data, np.ndarray):
            return np.array(self.data[start:stop])
        return list(self.data[start:stop])


def item_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` of a run seeded with ``seed`` (in ``[0, 2**31)``).

    Examples
    --------
    >>> from captum_latent.adapters import item_seed
    >>> item_seed(0, 5) == item_seed(0, 5) != item_seed(0, 6)
    True
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0]
    return int(state) & 0x7FFFFFFF


def _to_numpy(value: Any, key: str) -> Any:
    """A numpy array (or ``None``) for one value of a record; ``TypeError`` if impossible."""
    if value is None:
        return None
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"result {key!r} is an object array; return numeric arrays")
        return value
    if isinstance(value, (bool, int, float, complex, str, np.generic)):
        return np.asarray(value)
    if isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError as e:  # ragged
            raise TypeError(f"result {key!r} is a ragged sequence; return arrays") from e
        if array.dtype == object:
            raise TypeError(f"result {key!r} is a sequence of mixed or non-numeric values")
        return array
    raise TypeError(
        f"result {key!r} has type {type(value).__name__}; values must be numpy arrays, "
        "tensors, numbers, strings or (nested) dicts of them"
    )


def to_record(result: Any, skip_unsupported: bool = False) -> Record:
    """Flatten ``result`` into ``{key: numpy array or None}``.

    A mapping is flattened with ``"."`` joining nested keys; an Alibi ``Explanation`` contributes
    its ``data``; anything else is stored under ``"result"``. With ``skip_unsupported``, values
    that cannot be converted are left out instead of raising ``TypeError``.

    Examples
    --------
    >>> import numpy as np
    >>> from captum_latent.adapters import to_record
    >>> rec = to_record({"map": np.zeros((2, 2)), "info": {"score": 0.5}})
    >>> sorted(rec), rec["info.score"].shape
    (['info.score', 'map'], ())
    """
    data = getattr(result, "data", None)
    if not isinstance(result, Mapping) and isinstance(data, Mapping) and hasattr(result, "meta"):
        result = data  # alibi.api.interfaces.Explanation
    if not isinstance(result, Mapping):
        result = {"result": result}
    record: Record = {}

    def walk(prefix: str, mapping: Mapping) -> None:
        for name, value in mapping.items():
            if not isinstance(name, str):
                raise TypeError(f"result keys must be strings, got {name!r}")
            key = f"{prefix}{name}"
            if isinstance(value, Mapping):
                walk(key + ".", value)
                continue
            try:
                record[key] = _to_numpy(value, key)
            except TypeError:
                if not skip_unsupported:
                    raise

    walk("", result)
    return record


def _qualname(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class ExplainerAdapter:
    """Base class: one explainer, explained item by item.

    Subclasses set :attr:`call` (the method's name), :attr:`reserved` (its arguments that the
    data-set runner passes itself) and implement :meth:`explain_item` (or, with
    ``batched = True``, :meth:`explain_batch`); :meth:`check_items` rejects a data set before
    any work.
    """

    #: the chunk is one joint problem (results depend on chunk boundaries)
    batched = False
    #: explain-method arguments owned by the data-set runner
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
    def _method(self) -> Callable[..., Any] | None:
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
        raise NotImplementedError(f"{type(self).__name__} explains chunks (explain_batch)")

    def explain_batch(self, items: Data, seed: int, kwargs: list[dict[str, Any]]) -> list[Record]:
        raise NotImplementedError(f"{type(self).__name__} explains items (explain_item)")

    # -- helpers --------------------------------------------------------------------------
    def _tensor(self, item: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.asarray(item)).to(self.device or "cpu")


def check_item_array(items: Items, ndim: int, what: str, call: str) -> np.ndarray:
    """The data set as one floating-point array of rank ``ndim`` (``what`` names the expected
    shape, ``call`` the method, in the messages)."""
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


def reject_tensor_items(items: Items, name: str) -> None:
    """``TypeError`` for a tensor data set given to a channel-last (Alibi) explainer."""
    if items.kind == "torch":
        raise TypeError(
            f"{name} takes channel-last numpy images (N, H, W, C) as in Alibi, got a "
            "torch.Tensor; pass images.permute(0, 2, 3, 1).cpu().numpy()"
        )


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

    def _method(self) -> Callable[..., Any] | None:
        return self.explainer

    def explain_item(self, item: Any, seed: int, kwargs: dict[str, Any]) -> Record:
        if self.kind == "torch":
            item = self._tensor(item)
        if self.takes_seed:
            kwargs = {**kwargs, "seed": seed}
        return to_record(self.explainer(item, **kwargs))


#: A factory of adapters: ``factory(explainer, device) -> ExplainerAdapter``.
AdapterFactory = Callable[[Any, Any], ExplainerAdapter]

_REGISTRY: dict[type, AdapterFactory] = {}


def register_adapter(explainer_class: type, factory: AdapterFactory) -> None:
    """Declare how instances of ``explainer_class`` (and its subclasses, unless they have their
    own) are explained item by item.

    Examples
    --------
    >>> import numpy as np
    >>> from captum_latent.adapters import ExplainerAdapter, Items, adapter_for, register_adapter
    >>> class Doubler:
    ...     def run(self, x):
    ...         return 2 * x
    >>> class DoublerAdapter(ExplainerAdapter):
    ...     call = "run"
    ...     def explain_item(self, item, seed, kwargs):
    ...         return {"doubled": self.explainer.run(item)}
    >>> register_adapter(Doubler, DoublerAdapter)
    >>> adapter = adapter_for(Doubler(), Items(np.ones((2, 3)), "numpy"))
    >>> adapter.explain_item(np.ones(3), seed=0, kwargs={})["doubled"].tolist()
    [2.0, 2.0, 2.0]
    """
    if not isinstance(explainer_class, type):
        raise TypeError(f"explainer_class must be a class, got {type(explainer_class).__name__}")
    if not callable(factory):
        raise TypeError(f"factory must be callable (explainer, device) -> ExplainerAdapter, got "
                        f"{type(factory).__name__}")
    _REGISTRY[explainer_class] = factory


def registered_adapters() -> dict[type, AdapterFactory]:
    """The registered explainer classes and their adapter factories (a copy)."""
    return dict(_REGISTRY)


def adapter_for(explainer: Any, items: Items, device: Any = None) -> ExplainerAdapter:
    """The adapter for ``explainer``: the one registered for its class (or the nearest base
    class), else the generic Captum (``.attribute``), Alibi (``.explain``) or callable adapter;
    ``TypeError`` for anything else."""
    if isinstance(explainer, ExplainerAdapter):
        return explainer
    if device is None and items.kind == "torch":
        device = items.device
    for cls in type(explainer).__mro__:
        factory = _REGISTRY.get(cls)
        if factory is not None:
            return factory(explainer, device)
    if callable(getattr(explainer, "attribute", None)):
        return _CaptumAdapter(explainer, device)
    if callable(getattr(explainer, "explain", None)):
        return _AlibiAdapter(explainer)
    if callable(explainer):
        return _CallableAdapter(explainer, device, items.kind)
    raise TypeError(
        "explainer must be a captum-latent/Captum attribution (.attribute), an Alibi explainer "
        "(.explain), MimicGAN (.recover), an explainer with a registered adapter "
        "(captum_latent.adapters.register_adapter) or a callable item -> dict, got "
        f"{type(explainer).__name__}"
    )
