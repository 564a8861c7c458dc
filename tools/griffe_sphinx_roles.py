"""A griffe extension (mkdocs.yml) that turns the Sphinx roles in mmcore's docstrings into
checked cross-references of the documentation site, and its reST literal blocks and
doctests into code blocks.

mmcore's docstrings name other objects the Sphinx way (:class:`~mmcore.Machine`,
:func:`.valid_configurations`); mkdocstrings would print those roles as they are. Here a
role whose target is an object of the documented packages becomes an autorefs link
(``[`Machine`][mmcore.machine.Machine]``), so ``mkdocs build --strict`` fails when the
target has no page; a target that resolves nowhere in those packages is logged as a
warning (a misspelt or stale name, which also fails the strict build); a target outside
them (``os.replace``) or a private one stays a code span.

Doctest lines at the docstring's margin (``>>> ...`` and the output after them, up to a
blank line) become a fenced ``pycon`` block, since Markdown would read ``ops[:4]`` as a
link (indented ones already are a Markdown code block); a paragraph ending in
reST's ``::`` ends in ``:`` (the indented block after it is already Markdown code).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import griffe

log = logging.getLogger("mkdocs.plugins.griffe_sphinx_roles")

#: The packages the API reference documents; only their objects can be link targets.
DOCUMENTED = ("mmcore", "mmcore_plugins", "mmcore_contrib")

DOCTEST = re.compile(r"^>>> .*(?:\n(?!\s*$).*)*", re.MULTILINE)
LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const)"
                  r":`(?P<body>[^`]+)`")


def _lookup(collection: griffe.ModulesCollection, path: str) -> griffe.Object | None:
    """The object at dotted ``path``, through aliases, or None."""
    try:
        found = collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    if isinstance(found, griffe.Alias):
        try:
            return found.final_target
        except (griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None
    return found if isinstance(found, griffe.Object) else None


def _candidates(obj: griffe.Object, target: str) -> list[str]:
    """Where Sphinx would look for ``target`` named inside ``obj``: a relative name
    (``.name``) from the enclosing module upward, a bare name in the enclosing class,
    module and packages, then the name as written."""
    scopes = []
    scope: griffe.Object | None = obj if obj.is_class or obj.is_module else obj.parent
    while scope is not None:
        scopes.append(scope.path)
        scope = scope.parent
    name = target.lstrip(".")
    return [f"{s}.{name}" for s in scopes] + ([] if target.startswith(".") else [target])


def _link(obj: griffe.Object, collection: griffe.ModulesCollection, body: str) -> str:
    """The Markdown for one role body (``~a.b``, ``.b``, ``title <a.b>``)."""
    title = None
    if body.endswith(">") and " <" in body:
        title, body = body[:-1].split(" <", 1)
    short = body.startswith("~")
    target = body.lstrip("~").removesuffix("()")
    shown = title or (target.rsplit(".", 1)[-1] if short else target.lstrip("."))
    for path in _candidates(obj, target):
        found = _lookup(collection, path)
        if found is not None:
            dest = found.path
            if any(part.startswith("_") and part != "__init__" for part in dest.split(".")):
                break
            return f"[`{shown}`][{dest}]"
    else:
        if target.lstrip(".").split(".")[0] in DOCUMENTED or target.startswith("."):
            log.warning("%s: the docstring names %r, which is not in the documented "
                        "packages", obj.path, target)
    return f"`{shown}`"


def _fence(match: re.Match[str]) -> str:
    """One doctest run as a fenced pycon block."""
    return f"```pycon\n{match.group(0)}\n```"


def markdown(obj: griffe.Object, collection: griffe.ModulesCollection, text: str) -> str:
    """A docstring's text with its roles, doctests and literal-block markers rewritten."""
    text = DOCTEST.sub(_fence, text)
    text = LITERAL.sub(":", text)
    return ROLE.sub(lambda m: _link(obj, collection, m.group("body")), text)


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring's roles once the whole package is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader,
                   **kwargs: Any) -> None:
        """Walk ``pkg`` and rewrite each docstring in place."""
        collection = loader.modules_collection
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                obj.docstring.value = markdown(obj, collection, obj.docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)  # type: ignore[misc]
