"""Registry of demo-report sections.

A section is a function that receives a :class:`SectionWriter` and writes text, tables and
figures into it. Sections register themselves with :func:`register_section`; the report finds
them by importing every module of :mod:`captum_latent.report.sections` and every entry point of
the ``captum_latent.report_sections`` group (so other packages can add sections too).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from captum_latent.report._writer import SectionWriter

SectionFunction = Callable[["SectionWriter"], None]

#: Entry-point group through which other distributions can contribute sections.
ENTRY_POINT_GROUP = "captum_latent.report_sections"

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class SectionSpec:
    """A registered section: ``name`` (anchor, CLI selector), ``title``, sort ``order``,
    a one-line ``description`` and the names of related sections (``see_also``)."""

    name: str
    title: str
    order: int
    function: SectionFunction
    description: str = ""
    see_also: tuple[str, ...] = ()


_SECTIONS: dict[str, SectionSpec] = {}


def register_section(
    name: str, title: str, order: int = 100, description: str = "",
    see_also: Sequence[str] = (),
) -> Callable[[SectionFunction], SectionFunction]:
    """Register a demo-report section (use as a decorator).

    Parameters
    ----------
    name : str
        Lower-case identifier (``[a-z][a-z0-9_]*``): the HTML anchor and the name used by
        ``python -m captum_latent demo --sections``.
    title : str
        Heading shown in the report.
    order : int, default 100
        Sections appear by increasing ``order``, then name. The zoo uses 10; methods 20-90.
    description : str, optional
        One line shown in the table of contents.
    see_also : sequence of str, optional
        Names of related sections (e.g. the one explaining a model this section uses); the
        report links to them under the section's heading.

    Examples
    --------
    >>> from captum_latent.report import register_section, unregister_section
    >>> @register_section("hello_doc", "Hello", order=999)
    ... def hello(writer):
    ...     writer.text("Hello from a section.")
    >>> from captum_latent.report import registered_sections
    >>> "hello_doc" in [s.name for s in registered_sections()]
    True
    >>> unregister_section("hello_doc")
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"name must match {_NAME_RE.pattern!r}, got {name!r}")
    if isinstance(see_also, str):
        raise TypeError(f"see_also must be a sequence of section names, got the string "
                        f"{see_also!r}")
    related = tuple(see_also)
    for other in related:
        if not isinstance(other, str) or not _NAME_RE.match(other):
            raise ValueError(f"see_also entries must match {_NAME_RE.pattern!r}, got {other!r}")

    def decorator(function: SectionFunction) -> SectionFunction:
        existing = _SECTIONS.get(name)
        if existing is not None and existing.function.__qualname__ != function.__qualname__:
            raise ValueError(
                f"a report section named {name!r} is already registered by "
                f"{existing.function.__module__}.{existing.function.__qualname__}"
            )
        _SECTIONS[name] = SectionSpec(name, title, order, function, description, related)
        return function

    return decorator


def unregister_section(name: str) -> None:
    """Remove a registered section (no error when it is absent)."""
    _SECTIONS.pop(name, None)


def discover_sections() -> list[str]:
    """Import the built-in section modules and the entry points; return import errors."""
    from captum_latent.report import sections as package

    errors = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except Exception as e:  # a broken section must not hide the others
            errors.append(f"{info.name}: {type(e).__name__}: {e}")
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as e:
            errors.append(f"{entry_point.value}: {type(e).__name__}: {e}")
    return errors


def registered_sections() -> list[SectionSpec]:
    """All registered sections, in report order."""
    return sorted(_SECTIONS.values(), key=lambda s: (s.order, s.name))
