"""Plugin discovery, description and the per-Machine plugin manager.

A plugin is a class with a :class:`PluginInfo` in its ``info`` attribute and methods marked
with :data:`mmcore.hookimpl`. It is instantiated once per Machine (``cls(machine)``), so
two machines with different schemes coexist in one notebook. Installed plugins are found
through the ``mmcore`` entry-point group; in-process classes can be passed directly.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError

if TYPE_CHECKING:
    from .machine import Machine

ENTRY_POINT_GROUP = "mmcore"
KINDS = ("rmap", "mremap_policy", "file_rmap", "reclaim", "observer")


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin is and what it needs, so invalid combinations are skipped by
    construction.

    ``needs`` names capabilities that some other registered plugin (or this one) must
    ``provide``; ``needs_help`` is the sentence shown when they are missing. ``structs``
    lists the metadata struct types the plugin allocates (they must have sizes in every
    arch profile, or in ``struct_sizes``).
    """

    name: str
    kind: str
    summary: str
    version: str = "1.0"
    needs: frozenset[str] = frozenset()
    provides: frozenset[str] = frozenset()
    needs_help: str = ""
    structs: tuple[str, ...] = ()
    struct_sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: One paragraph for ``mmsim plugins`` and the docs: which kernel, which trade-off.
    description: str = ""


class PluginClass(Protocol):
    """The shape of a plugin class."""

    info: ClassVar[PluginInfo]

    def __call__(self, machine: Machine) -> object: ...


def plugin_info(cls: type) -> PluginInfo:
    """The :class:`PluginInfo` of a plugin class (PluginError if it has none)."""
    info = getattr(cls, "info", None)
    if not isinstance(info, PluginInfo):
        raise PluginError(f"{cls.__name__} has no PluginInfo in .info")
    return info


def installed_plugins() -> dict[str, type]:
    """Every plugin class registered under the ``mmcore`` entry-point group, by name.

    A plugin whose entry point fails to load is skipped with a warning; two plugins with
    one name are an error (conda's rule: names must be unambiguous).
    """
    found: dict[str, type] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            info = plugin_info(cls)
        except Exception as exc:  # a broken third-party plugin must not break the others
            warnings.warn(f"mmcore plugin {ep.name!r} failed to load: {exc}", stacklevel=2)
            continue
        if info.kind not in KINDS:
            warnings.warn(f"mmcore plugin {ep.name!r} has no valid PluginInfo", stacklevel=2)
            continue
        if info.name in found and found[info.name] is not cls:
            raise PluginError(f"two mmcore plugins are named {info.name!r}")
        found[info.name] = cls
    return dict(sorted(found.items()))


def plugins_of_kind(kind: str) -> dict[str, type]:
    """Installed plugins of one kind (``rmap``, ``mremap_policy``, ``observer``)."""
    return {n: c for n, c in installed_plugins().items() if plugin_info(c).kind == kind}


def resolve(name_or_class: str | type, kind: str) -> type:
    """Turn a plugin name or class into a class, failing with "choose one of: ..."."""
    if isinstance(name_or_class, type):
        info = plugin_info(name_or_class)
        if info.kind != kind:
            raise ConfigError(f"plugin {info.name!r} is a {info.kind} plugin, not {kind}")
        return name_or_class
    choices = plugins_of_kind(kind)
    if name_or_class not in choices:
        raise ConfigError(f"unknown {kind} plugin {name_or_class!r}: choose one of: "
                          + ", ".join(choices))
    return choices[name_or_class]


def missing_needs(classes: Iterable[type]) -> list[str]:
    """The help sentences of every unmet need among ``classes`` (empty if all are met)."""
    infos = [plugin_info(c) for c in classes]
    provided = set().union(*(i.provides for i in infos)) if infos else set()
    problems = []
    for info in infos:
        if not info.needs <= provided:
            missing = ", ".join(sorted(info.needs - provided))
            problems.append(f"{info.kind} plugin {info.name!r} needs {missing}"
                            + (f": {info.needs_help}" if info.needs_help else ""))
    return problems


def valid_configurations() -> list[tuple[str, str | None]]:
    """Every (rmap, mremap_policy) pair whose needs are met: the plugin matrix.

    For each scheme the policy-free configuration comes first when it is valid, so a
    comparison can take the cheapest valid configuration of every scheme.
    """
    policies = plugins_of_kind("mremap_policy")
    out: list[tuple[str, str | None]] = []
    for name, cls in plugins_of_kind("rmap").items():
        for pname, pcls in [(None, None), *policies.items()]:
            classes = [cls] + ([pcls] if pcls is not None else [])
            if not missing_needs(classes):
                out.append((name, pname))
    return out


class PluginManager(pluggy.PluginManager):
    """One manager per Machine: registers the chosen plugin instances, checks that every
    hookimpl matches a spec, and binds the per-page hooks for direct calls."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)

    def register_plugins(self, instances: Iterable[object]) -> None:
        """Register every instance, then fail at once on a misspelt hook name."""
        for obj in instances:
            self.register(obj, name=plugin_info(type(obj)).name)
        try:
            self.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc

    def bind_direct(self, name: str) -> Callable[..., Any]:
        """Return a plain callable for hook ``name`` that skips pluggy dispatch.

        With exactly one non-wrapper implementation the function itself is returned
        (adapted if it takes a subset of the spec's arguments); otherwise calls go
        through the hook caller, which keeps wrappers and tracing working.
        """
        caller = getattr(self.hook, name)
        impls = caller.get_hookimpls()
        spec_args = list(caller.spec.argnames) if caller.spec else []
        if len(impls) == 1 and not (impls[0].hookwrapper or impls[0].wrapper):
            fn = impls[0].function
            argnames = list(impls[0].argnames)
            if argnames == spec_args:
                return fn  # type: ignore[no-any-return]
            index = [spec_args.index(a) for a in argnames]

            def adapter(*args: Any) -> Any:
                return fn(*[args[i] for i in index])

            adapter.__wrapped__ = fn  # type: ignore[attr-defined]
            return adapter
        if not impls:
            raise PluginError(f"no plugin implements {name}")
        return lambda *args: caller(**dict(zip(spec_args, args, strict=True)))


def instantiate(classes: Iterable[type], machine: Machine) -> list[Any]:
    """Create one instance of every plugin class for ``machine``."""
    out = []
    for cls in classes:
        try:
            out.append(cls(machine))
        except Exception as exc:
            raise PluginError(f"plugin {plugin_info(cls).name!r} failed to start: {exc}") \
                from exc
    return out
