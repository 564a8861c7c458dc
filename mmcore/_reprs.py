"""The display methods' way into :mod:`mmcore.display`, imported on first use.

The core classes (some compiled by mypyc, see setup.py) delegate ``_repr_html_``,
``_repr_pretty_`` and ``__rich__`` here in one line each; the import is deferred because
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


def rich(obj: object) -> object:
    """:func:`mmcore.display.rich_renderable`."""
    from .display import rich_renderable
    return rich_renderable(obj)
