"""Plugin discovery, description and the per-Machine plugin manager.

A plugin is a class with a :class:`PluginInfo` in its ``info`` attribute and methods marked
with :data:`mmcore.hookimpl`. It is instantiated once per Machine (``cls(machine)``), so
two machines with different schemes coexist in one notebook. Installed plugins are found
through the ``mmcore`` entry-point group; in-process classes can be passed directly.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points
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
    #: Only for a class used in-process: an installed plugin's version is always its
    #: distribution's (see :func:`plugin_version`).
    version: str = ""
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


class PluginLoadWarning(UserWarning):
    """An installed plugin could not be used (it failed to load, or its name clashes);
    ``mmsim`` prints each as one line. Issued once per process, at discovery."""


@dataclass(frozen=True)
class PluginEntry:
    """One plugin found under the ``mmcore`` entry-point group, usable or not.

    ``distribution`` and ``version`` come from the entry point's distribution metadata
    (what ``pip`` installed), never from the plugin's own declaration. ``status`` is
    ``ok``, ``broken`` (the entry point failed to load or has no valid PluginInfo) or
    ``clash`` (another distribution registers a plugin of the same name); ``problem``
    is the one-line reason for anything but ``ok``.
    """

    name: str
    distribution: str
    version: str
    cls: type | None
    status: str = "ok"
    problem: str = ""
    kind: str = "?"


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    """The (name, version) of the distribution that registered ``ep``."""
    dist = ep.dist
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or "?", dist.version


def _load(ep: EntryPoint) -> PluginEntry:
    """Load one entry point; a failure becomes a ``broken`` entry, never an exception
    (a broken third-party plugin must not break the others)."""
    dist, version = _distribution(ep)
    try:
        cls = ep.load()
        info = plugin_info(cls)
    except Exception as exc:
        return PluginEntry(ep.name, dist, version, None, "broken",
                           f"failed to load: {type(exc).__name__}: {exc}")
    if info.kind not in KINDS:
        return PluginEntry(ep.name, dist, version, None, "broken",
                           f"unknown kind {info.kind!r} (one of: {', '.join(KINDS)})")
    return PluginEntry(info.name, dist, version, cls, kind=info.kind)


@functools.cache
def discover() -> tuple[PluginEntry, ...]:
    """Every entry point of the ``mmcore`` group, loaded once per process, by name.

    Two distinct classes with one name are both marked ``clash`` (naming both
    distributions) and neither is usable; the same class seen twice (a distribution
    installed twice on ``sys.path``) is one plugin. Each unusable plugin is warned
    about once, as a :class:`PluginLoadWarning`.
    """
    loaded: list[PluginEntry] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        entry = _load(ep)
        if not any(e.cls is not None and e.cls is entry.cls for e in loaded):
            loaded.append(entry)
    out = []
    for entry in loaded:
        rivals = [e for e in loaded if e.name == entry.name and e.status == "ok"]
        if entry.status == "ok" and len(rivals) > 1:
            dists = " and ".join(f"{e.distribution} {e.version}" for e in rivals)
            entry = replace(entry, status="clash",
                            problem=f"{len(rivals)} plugins are named {entry.name!r} "
                                    f"(from {dists}); uninstall one")
        out.append(entry)
    for entry in out:
        if entry.status != "ok":
            warnings.warn(f"mmcore plugin {entry.name!r} ({entry.distribution} "
                          f"{entry.version}) is {entry.status}: {entry.problem}",
                          PluginLoadWarning, stacklevel=2)
    return tuple(sorted(out, key=lambda e: (e.name, e.distribution)))


def installed_plugins() -> dict[str, type]:
    """Every usable plugin class registered under the ``mmcore`` entry-point group, by
    name (broken and clashing plugins are left out: see :func:`discover`)."""
    return {e.name: e.cls for e in discover() if e.status == "ok" and e.cls is not None}


def plugin_entry(cls: type) -> PluginEntry | None:
    """The installed entry of plugin class ``cls`` (None for a class passed in-process)."""
    return next((e for e in discover() if e.cls is cls), None)


def plugin_version(cls: type) -> str:
    """The version of plugin ``cls``: its distribution's, or for an in-process class
    the one its PluginInfo states ("unregistered" if none)."""
    entry = plugin_entry(cls)
    if entry is not None:
        return entry.version
    return plugin_info(cls).version or "unregistered"


def describe_plugin(cls: type) -> str:
    """``'name' (distribution version)``, how messages name a plugin."""
    entry = plugin_entry(cls)
    where = "not installed" if entry is None else f"{entry.distribution} {entry.version}"
    return f"{plugin_info(cls).name!r} ({where})"


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
    unusable = [e for e in discover() if e.name == name_or_class and e.status != "ok"]
    if name_or_class not in choices and unusable:
        raise ConfigError(f"{kind} plugin {name_or_class!r} is {unusable[0].status}: "
                          f"{unusable[0].problem}")
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
            raise PluginError(f"plugin {describe_plugin(cls)} failed to start: "
                              f"{type(exc).__name__}: {exc}") from exc
    return out
