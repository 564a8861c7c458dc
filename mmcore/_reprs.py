"""The display methods' way into :mod:`mmcore.display`, imported on first use.

The core classes get ``_repr_html_``, ``_repr_pretty_`` and ``__rich__`` from
:class:`Displayed`, Machine, Process and WalkResult ``_repr_svg_`` too from
:class:`Pictured` (the mypyc-compiled Page and Vma define all four in their class bodies
and delegate to the functions here in one line each); the import is deferred because
:mod:`mmcore.display` imports those very classes.
"""

from __future__ import annotations

from typing import Any


def html(obj: object) -> str:
    """:func:`mmcore.display.html`."""
    from .display import html
    return html(obj)


def pretty(obj: object, printer: Any, cycle: bool) -> None:
    """:func:`mmcore.display.pretty`."""
    from .display import pretty
    pretty(obj, printer, cycle)


def svg(obj: object) -> str | None:
    """:func:`mmcore.display.svg`."""
    from .display import svg
    return svg(obj)


def rich(obj: object) -> object:
    """:func:`mmcore.display.rich_renderable`."""
    from .display import rich_renderable
    return rich_renderable(obj)


class Displayed:
    """The three display methods, for a class whose objects a student looks at. Page and
    Vma spell them out instead: mypyc compiles them, and a compiled class cannot inherit
    from this interpreted one."""

    def _repr_html_(self) -> str:  # Jupyter
        return html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython terminal
        pretty(self, printer, cycle)

    def __rich__(self) -> object:  # rich.print()
        return rich(self)


class Pictured(Displayed):
    """:class:`Displayed`, plus ``_repr_svg_`` for a class whose objects a picture shows
    better than a table (Machine, Process, WalkResult): the picture, or None (no
    picture) without Graphviz."""

    def _repr_svg_(self) -> str | None:  # Jupyter
        return svg(self)
