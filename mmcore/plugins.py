"""Plugin discovery, description and the per-Machine plugin manager.

A plugin is a class with a :class:`PluginInfo` in its ``info`` attribute and methods marked
with :data:`mmcore.hookimpl`. It is instantiated once per Machine (``cls(machine)``), so
two machines with different schemes coexist in one notebook. Installed plugins are found
through the ``mmcore`` entry-point group; in-process classes can be passed directly.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points
from types import CodeType, ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError

if TYPE_CHECKING:
    from .machine import Machine

ENTRY_POINT_GROUP = "mmcore"
KINDS = ("rmap", "mremap_policy", "file_rmap", "reclaim", "mapcount", "observer")


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
    """An installed plugin could not be used as installed (it failed to load, or its
    name clashes); one line per plugin, issued once per process tree at discovery (a
    multiprocessing worker stays quiet: its parent has said it)."""


#: The separator of a qualified plugin name, ``distribution:name``: how a plugin whose
#: name clashes is still asked for.
QUALIFIER = ":"


@dataclass(frozen=True)
class PluginEntry:
    """One plugin found under the ``mmcore`` entry-point group, usable or not.

    ``distribution`` and ``version`` come from the entry point's distribution metadata
    (what ``pip`` installed), never from the plugin's own declaration; ``entry_point``
    is the entry point as written (``name = module:attr``). ``status`` is ``ok``,
    ``broken`` (the entry point failed to load or has no valid PluginInfo) or ``clash``
    (another distribution registers a plugin of the same name: this one is usable only
    under its :attr:`qualified` name); ``problem`` is the one-line reason for anything
    but ``ok``.
    """

    name: str
    distribution: str
    version: str
    cls: type | None
    status: str = "ok"
    problem: str = ""
    kind: str = "?"
    entry_point: str = ""

    @property
    def qualified(self) -> str:
        """``distribution:name``, unambiguous even when two plugins share a name."""
        return f"{self.distribution}{QUALIFIER}{self.name}"


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
    where = f"{ep.name} = {ep.value}"
    try:
        cls = ep.load()
        info = plugin_info(cls)
    except Exception as exc:
        return PluginEntry(ep.name, dist, version, None, "broken",
                           f"failed to load: {type(exc).__name__}: {exc}", entry_point=where)
    if info.kind not in KINDS:
        return PluginEntry(ep.name, dist, version, None, "broken",
                           f"unknown kind {info.kind!r} (one of: {', '.join(KINDS)})",
                           entry_point=where)
    return PluginEntry(info.name, dist, version, cls, kind=info.kind, entry_point=where)


def _settle_clashes(loaded: list[PluginEntry]) -> list[PluginEntry]:
    """Resolve plugins that share a name: mmcore's own plugin keeps the name and each
    rival becomes a ``clash`` usable under its qualified name; between third-party
    plugins nobody keeps it, so asking for the bare name is an error naming them all."""
    from . import DISTRIBUTION  # mmcore/__init__ imports this module

    out = []
    for entry in loaded:
        rivals = [e for e in loaded if e.name == entry.name and e.status == "ok"]
        shipped = [e for e in rivals if e.distribution == DISTRIBUTION]
        if entry.status == "ok" and len(rivals) > 1 and entry not in shipped[:1]:
            dists = " and ".join(f"{e.distribution} {e.version}" for e in rivals)
            keeper = (f"{shipped[0].distribution}'s keeps the name" if shipped
                      else "none keeps the name")
            entry = replace(entry, status="clash",
                            problem=f"{len(rivals)} plugins are named {entry.name!r} "
                                    f"(from {dists}); {keeper}, this one is "
                                    f"{entry.qualified!r}")
        out.append(entry)
    return out


@functools.cache
def discover() -> tuple[PluginEntry, ...]:
    """Every entry point of the ``mmcore`` group, loaded once per process, by name.

    Plugins sharing a name are settled by :func:`_settle_clashes`; the same class seen
    twice (a distribution installed twice on ``sys.path``) is one plugin. Each plugin
    not usable as installed is warned about once, in one line naming its entry point
    and distribution, as a :class:`PluginLoadWarning`.
    """
    import multiprocessing  # here, not at import: `import mmcore` stays light

    loaded: list[PluginEntry] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        entry = _load(ep)
        if not any(e.cls is not None and e.cls is entry.cls for e in loaded):
            loaded.append(entry)
    out = _settle_clashes(loaded)
    if multiprocessing.parent_process() is None:
        for entry in out:
            if entry.status != "ok":
                # warn_explicit with no source file: one line, not a path into mmcore
                warnings.warn_explicit(
                    f"mmcore plugin entry point {entry.entry_point!r} of "
                    f"{entry.distribution} {entry.version} "
                    f"{'clashes' if entry.status == 'clash' else 'is broken'}: "
                    f"{entry.problem}", PluginLoadWarning, "<mmcore plugins>", 0)
    return tuple(sorted(out, key=lambda e: (e.name, e.distribution)))


def installed_plugins() -> dict[str, type]:
    """Every usable plugin class registered under the ``mmcore`` entry-point group, by
    name; a plugin whose name clashes is here under its qualified name only, and a
    broken one is left out (see :func:`discover`)."""
    out: dict[str, type] = {}
    for e in discover():
        if e.cls is not None and e.status in ("ok", "clash"):
            out[e.name if e.status == "ok" else e.qualified] = e.cls
    return out


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


def plugin_label(name: str, instances: Iterable[object]) -> str:
    """``'name' (distribution version)`` for the installed plugin ``name`` among
    ``instances``; just ``'name'`` for a class passed in-process."""
    cls = next((type(x) for x in instances if plugin_info(type(x)).name == name), None)
    entry = None if cls is None else plugin_entry(cls)
    return repr(name) if entry is None else \
        f"{name!r} ({entry.distribution} {entry.version})"


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
        clashing = [repr(e.qualified) for e in unusable if e.status == "clash"]
        if len(clashing) > 1:
            raise ConfigError(f"{kind} plugin name {name_or_class!r} is ambiguous: "
                              f"{len(clashing)} plugins have it; choose one of: "
                              + ", ".join(clashing))
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


_MISSING = object()
#: Per class (or module): attribute name -> (the raw attribute, pluggy's parse of it).
_PARSED: weakref.WeakKeyDictionary[object, dict[str, tuple[object, Any]]] = \
    weakref.WeakKeyDictionary()


def _raw_attr(namespace: object, name: str) -> tuple[object, object]:
    """The object whose attribute ``name`` pluggy parses (a class or a module) and the
    attribute as stored there (``_MISSING`` when it has none); ``(None, _MISSING)`` for
    an instance's own attribute, which is never cached."""
    if isinstance(namespace, ModuleType):
        return namespace, namespace.__dict__.get(name, _MISSING)
    cls = namespace if isinstance(namespace, type) else type(namespace)
    if not isinstance(namespace, type) and name in getattr(namespace, "__dict__", ()):
        return None, _MISSING
    for base in cls.__mro__:
        if name in base.__dict__:
            return cls, base.__dict__[name]
    return cls, _MISSING


def _cached_parse(namespace: object, name: str, parse: Callable[[], Any]) -> Any:
    """pluggy's parse of ``namespace.name``, remembered per class or module as long as
    the attribute is the same object (a class edited in a notebook is parsed again)."""
    key, raw = _raw_attr(namespace, name)
    if raw is _MISSING:
        return parse()
    table = _PARSED.setdefault(key, {})
    cached = table.get(name)
    if cached is None or cached[0] is not raw:
        cached = table[name] = (raw, parse())
    # pluggy normalises the options in place: each caller gets its own copy
    return dict(cached[1]) if cached[1] is not None else None


class PluginManager(pluggy.PluginManager):
    """One manager per Machine: registers the chosen plugin instances, checks that every
    hookimpl matches a spec, and binds the per-page hooks for direct calls.

    Every Machine builds one, and pluggy finds the hooks of a plugin by inspecting each
    of its attributes statically (65 of them for a scheme): the parses are remembered
    per class, which makes ``Machine()`` 0.38x the time (the conformance kit and the
    fuzzers build one per example)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        """pluggy's parse, remembered per plugin class (:func:`_cached_parse`)."""
        return _cached_parse(plugin, name,
                             lambda: super(PluginManager, self).parse_hookimpl_opts(plugin, name))

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
        """pluggy's parse, remembered per spec module or class (:func:`_cached_parse`)."""
        return _cached_parse(module_or_class, name, lambda: super(
            PluginManager, self).parse_hookspec_opts(module_or_class, name))

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
            # A per-pte hook is called for every page fork copies or zap removes, so the
            # usual shapes get an adapter without a per-call list: no argument at all (a
            # scheme with nothing to do per pte), or the spec's first arguments.
            k = len(argnames)
            if not k:
                def adapter(*args: Any) -> Any:
                    return fn()
            elif argnames == spec_args[:k]:
                def adapter(*args: Any) -> Any:
                    return fn(*args[:k])
            else:
                index = [spec_args.index(a) for a in argnames]

                def adapter(*args: Any) -> Any:
                    return fn(*[args[i] for i in index])

            adapter.__wrapped__ = fn  # type: ignore[attr-defined]
            return adapter
        if not impls:
            raise PluginError(f"no plugin implements {name}")
        return lambda *args: caller(**dict(zip(spec_args, args, strict=True)))


    def blame(self, exc: BaseException) -> tuple[str | None, str | None]:
        """The (plugin, hook) in which ``exc`` was raised, or (None, None).

        The innermost frame on the traceback (or, failing that, on the chained cause's)
        that runs a registered hook implementation names both; an mmcore check on what a
        hook returned names the hook in ``exc.hook`` (:class:`PluginError`) and the
        plugin is the one implementing it. Built only when something has failed, so the
        hook calls themselves stay undecorated and as fast as before.
        """
        impls: dict[CodeType, list[tuple[object, str, str]]] = {}
        by_hook: dict[str, list[str]] = {}
        for hook_name, caller in vars(self.hook).items():
            for impl in caller.get_hookimpls():
                code = getattr(impl.function, "__code__", None)
                if isinstance(code, CodeType):
                    impls.setdefault(code, []).append((impl.plugin, impl.plugin_name,
                                                       hook_name))
                by_hook.setdefault(hook_name, []).append(impl.plugin_name)
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            found = _innermost_impl(cause.__traceback__, impls)
            if found is not None:
                return found
            cause = cause.__cause__ or cause.__context__
        hook = getattr(exc, "hook", None)
        if isinstance(hook, str) and len(by_hook.get(hook, [])) == 1:
            return by_hook[hook][0], hook
        return None, hook if isinstance(hook, str) else None


def _innermost_impl(tb: TracebackType | None,
                    impls: dict[CodeType, list[tuple[object, str, str]]]
                    ) -> tuple[str, str] | None:
    """The (plugin, hook) of the innermost traceback frame running a hook implementation;
    a code object shared by two plugins (a subclass that inherits a hook) is told apart
    by the frame's ``self``."""
    found = None
    while tb is not None:
        candidates = impls.get(tb.tb_frame.f_code)
        if candidates:
            owner = tb.tb_frame.f_locals.get("self")
            _, name, hook = next((c for c in candidates if c[0] is owner),
                                      candidates[0])
            found = (name, hook)
        tb = tb.tb_next
    return found


def instantiate(classes: Iterable[type], machine: Machine) -> list[Any]:
    """Create one instance of every plugin class for ``machine``; a constructor that
    raises is a :class:`PluginError` naming the plugin (hook ``__init__``)."""
    out = []
    for cls in classes:
        try:
            out.append(cls(machine))
        except Exception as exc:
            raise PluginError(f"plugin {describe_plugin(cls)} failed to start: "
                              f"{type(exc).__name__}: {exc}",
                              plugin=plugin_info(cls).name, hook="__init__") from exc
    return out
