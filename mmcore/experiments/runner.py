"""Run a workload (or an op list) on a Machine for one configuration.

A configuration is the rmap scheme and mremap policy (the plugin matrix,
:func:`configurations`), the file rmap and reclaim plugins (``file_rmap``, ``reclaim``:
the Machine's defaults unless chosen), the arch profile and the memory sizes. A workload
whose parameters size the machine (``memory-pressure``: ``ram_pages``, ``swap_pages``)
says so through a ``machine()`` method of its parameter dataclass
(:class:`~mmcore.experiments.workloads.MachineParams`); otherwise memory is
:data:`DEFAULT_RAM_PAGES` frames and :data:`DEFAULT_SWAP_PAGES` swap slots.

>>> from mmcore.experiments.runner import run
>>> r = run("forking-server", {"pages": 8, "children": 2}, rmap="pte_chains")
>>> r.derived.walks, r.derived.reclaim_missed
(24, 0)
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import structlog
from dataclasses_json import DataClassJsonMixin

from .. import __version__
from ..costs import Costs, WalkCost
from ..errors import ConfigError, RunTimeout
from ..machine import Machine
from ..plugins import (
    installed_plugins,
    plugin_info,
    plugin_version,
    plugins_of_kind,
    valid_configurations,
)
from ..thp import ThpSettings
from . import workloads
from .ops import Op, Player
from .results import (
    DEFAULT_FILE_RMAP,
    DEFAULT_MAPCOUNT,
    DEFAULT_RECLAIM,
    OPS_WORKLOAD,
    Derived,
    Result,
    RunConfig,
    load,
)

#: Frames and swap slots of the simulated machine: large enough for every default workload
#: and for sweeps several times bigger (the frame table is a plain list).
DEFAULT_RAM_PAGES = 1 << 18
DEFAULT_SWAP_PAGES = 1 << 18

log = structlog.get_logger(__name__)


#: The plugin axes a comparison can run along: the (rmap, mremap policy) matrix, the file
#: rmap plugins, the reclaim policies.
AXES = ("rmap", "file_rmap", "reclaim")


def configurations() -> list[tuple[str, str | None]]:
    """The plugin matrix: every valid (rmap, mremap_policy) pair, from the registry."""
    return valid_configurations()


def axis_plugins(axis: str) -> list[str]:
    """The installed plugins along ``axis`` (``file_rmap`` or ``reclaim``), by name;
    ConfigError for another axis."""
    if axis not in AXES[1:]:
        raise ConfigError(f"unknown plugin axis {axis!r}: choose one of: "
                          + ", ".join(AXES))
    return list(plugins_of_kind(axis))


def machine_sizes(workload: str, params: DataClassJsonMixin, ram_pages: int | None,
                  swap_pages: int | None) -> tuple[int, int]:
    """RAM frames and swap slots for a run: what the workload's parameters set (through
    their ``machine()`` method), else the caller's values, else the defaults. A caller's
    value that contradicts the workload's is a ConfigError."""
    hook = getattr(params, "machine", None)
    wanted: dict[str, int] = dict(hook()) if callable(hook) else {}
    unknown = set(wanted) - {"ram_pages", "swap_pages"}
    if unknown:
        raise ConfigError(f"workload {workload!r} sets unknown machine parameters: "
                          + ", ".join(sorted(unknown)))
    out = []
    for key, given, default in (("ram_pages", ram_pages, DEFAULT_RAM_PAGES),
                                ("swap_pages", swap_pages, DEFAULT_SWAP_PAGES)):
        if key in wanted and given is not None and given != wanted[key]:
            raise ConfigError(f"workload {workload!r} sets {key}={wanted[key]} in its "
                              f"parameters; change it there, not to {given}")
        out.append(wanted.get(key, given if given is not None else default))
    return out[0], out[1]


def plugin_versions(rmap: str, policy: str | None) -> dict[str, str]:
    """The version of each plugin of a configuration (its distribution's), by name."""
    found = installed_plugins()
    out = {}
    for name in (rmap, policy):
        if name is not None and name in found:
            out[name] = plugin_version(found[name])
    return out


def run(workload: str, params: Mapping[str, Any] | DataClassJsonMixin | None = None, *,
        rmap: str, mremap_policy: str | None = None, seed: int = 0, arch: str = "x86_64",
        ram_pages: int | None = None, swap_pages: int | None = None,
        file_rmap: str = DEFAULT_FILE_RMAP, reclaim: str = DEFAULT_RECLAIM,
        observers: Sequence[str] = (), deadline: float | None = None,
        mapcount: str = DEFAULT_MAPCOUNT) -> Result:
    """Run built-in ``workload`` with ``params`` on one configuration.

    ``file_rmap``, ``reclaim`` and ``mapcount`` name the file rmap, reclaim and mapcount
    plugins, ``observers``
    any observer plugins to register (``event_log``); ``ram_pages``
    and ``swap_pages`` size the machine (see :func:`machine_sizes`); ``deadline`` (a
    :func:`time.monotonic` instant) stops the run with :class:`RunTimeout`. Raises
    :class:`mmcore.ConfigError` for an unknown workload, bad parameters or an invalid
    configuration (an unknown plugin, or anonmm without an mremap policy).
    """
    w = workloads.get(workload)
    p = workloads.make_params(workload, params)
    ram, swap = machine_sizes(workload, p, ram_pages, swap_pages)
    config = RunConfig(workload=workload, params=p.to_dict(), seed=seed, rmap=rmap,
                       policy=mremap_policy, arch=arch, ram_pages=ram, swap_pages=swap,
                       file_rmap=file_rmap, reclaim=reclaim, mapcount=mapcount)
    return execute(w.generator(p, random.Random(seed)), config, strict=w.strict,
                   observers=observers, deadline=deadline, thp=workload_thp(p))


def run_ops(ops: Iterable[Op], *, rmap: str, mremap_policy: str | None = None,
            arch: str = "x86_64", strict: bool = True, ram_pages: int = DEFAULT_RAM_PAGES,
            swap_pages: int = DEFAULT_SWAP_PAGES, file_rmap: str = DEFAULT_FILE_RMAP,
            reclaim: str = DEFAULT_RECLAIM) -> Result:
    """Run an explicit op list (a trace); the ops are kept in the result for :func:`rerun`.
    """
    kept = list(ops)
    config = RunConfig(workload=OPS_WORKLOAD, params={"strict": strict}, seed=0, rmap=rmap,
                       policy=mremap_policy, arch=arch, ram_pages=ram_pages,
                       swap_pages=swap_pages,
                       file_rmap=file_rmap, reclaim=reclaim)
    result = execute(kept, config, strict=strict)
    result.ops = kept
    return result


def rerun(result_json: str) -> Result:
    """Run again the configuration recorded in ``result_json`` (one result, as written by
    ``mmsim run --json``); the new result's :meth:`Result.reproducible_json` equals the
    old one's when mmcore and the plugins are the versions recorded there."""
    old = load(result_json)
    c = old.config
    if c.workload == OPS_WORKLOAD:
        return run_ops(old.ops or [], rmap=c.rmap, mremap_policy=c.policy, arch=c.arch,
                       strict=bool(c.params.get("strict", True)), ram_pages=c.ram_pages,
                       swap_pages=c.swap_pages, file_rmap=c.file_rmap, reclaim=c.reclaim)
    return run(c.workload, c.params, rmap=c.rmap, mremap_policy=c.policy, seed=c.seed,
               arch=c.arch, ram_pages=c.ram_pages, swap_pages=c.swap_pages,
               file_rmap=c.file_rmap, reclaim=c.reclaim, mapcount=c.mapcount)


def workload_thp(params: DataClassJsonMixin) -> ThpSettings | None:
    """The THP knobs a workload's parameters ask for (their ``thp()`` method, as the
    large-folio workloads have), or None for the reference machine's defaults."""
    hook = getattr(params, "thp", None)
    return hook() if callable(hook) else None


def execute(ops: Iterable[Op], config: RunConfig, strict: bool = True,
            observers: Sequence[str] = (), deadline: float | None = None,
            thp: ThpSettings | None = None) -> Result:
    """Replay ``ops`` on a fresh Machine built from ``config`` (its mapcount design too)
    and ``observers`` and the THP knobs ``thp``, and measure it;
    :class:`~mmcore.errors.RunTimeout` once :func:`time.monotonic` passes ``deadline``
    (checked between ops, so a time limit works in any thread, where a signal cannot
    reach)."""
    start = time.perf_counter()
    machine = Machine(rmap=config.rmap, mremap_policy=config.policy, arch=config.arch,
                      ram_pages=config.ram_pages, swap_pages=config.swap_pages,
                      file_rmap=config.file_rmap, reclaim=config.reclaim,
                      observers=observers, thp=thp, mapcount=config.mapcount)
    player = Player(machine, strict=strict)
    before_reclaim: Snapshot | None = None
    missed = 0
    applied = 0
    for op in ops:
        if deadline is not None and time.monotonic() > deadline:
            raise RunTimeout(f"no result within the time budget ({applied} ops done)")
        if op.op == "reclaim" and before_reclaim is None:
            before_reclaim = snapshot(machine)
        player.apply(op)
        if op.op == "reclaim":
            missed += still_mapped(player, op)
        applied += 1
    costs = machine.costs()
    derived = derive(machine, costs, before_reclaim or snapshot(machine), missed,
                     player.file_walk)
    wall = time.perf_counter() - start
    if structlog.is_configured():  # the library never prints on its own
        log.info("run.done", workload=config.workload, config=config.label, ops=applied,
                 seconds=round(wall, 3))
    return Result(config=config, mmcore_version=__version__,
                  plugin_versions={plugin_info(type(x)).name: plugin_version(type(x))
                                   for x in machine.plugins}, costs=costs,
                  derived=derived, ops_applied=applied, errors=dict(sorted(
                      player.errors.items())), segfaults=player.segfaults, wall_time_s=wall,
                  checks=player.checks, check_failures=player.check_failures,
                  sigbus=player.sigbus)


@dataclass(frozen=True)
class Snapshot:
    """The state compared per vma and per pte: taken at the first reclaim op (or at the
    end of a run without one)."""

    rmap_bytes: int
    vmas: int
    anon_vmas: int
    mapped_ptes: int
    file_vmas: int = 0


def snapshot(machine: Machine) -> Snapshot:
    """rmap bytes, vmas, anonymous vmas, ptes mapping anonymous pages and vmas mapping a
    file or shmem, right now."""
    live = machine.live_processes()
    return Snapshot(
        rmap_bytes=machine.costs().rmap_bytes,
        vmas=sum(p.mm.map_count for p in live),
        anon_vmas=sum(1 for p in live for v in p.mm.vmas if v.is_anonymous),
        mapped_ptes=sum(pg.mapcount for pg in machine.pages_in_use() if pg.is_anon),
        file_vmas=sum(1 for p in live for v in p.mm.vmas if v.file is not None),
    )


def still_mapped(player: Player, op: Op) -> int:
    """Pages a reclaim op should have unmapped that are still mapped."""
    m = player.machine
    if op.path:
        inode = m.files.get(op.path)
        return 0 if inode is None else sum(1 for pg in inode.pages.values() if pg.mapcount)
    if op.length == 0:
        return sum(1 for pg in m.pages_in_use() if pg.is_anon and pg.mapcount)
    proc = player.procs.get(op.pid)
    if proc is None or not proc.alive:
        return 0
    n = 0
    for a in range(op.addr, op.addr + op.length, 4096):
        e = proc.pagemap(a)
        if e.present and e.pfn != m.physmem.ZERO_PFN:
            page = m.physmem.page(e.pfn)
            n += page is not None and page.is_anon
    return n


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def derive(machine: Machine, costs: Costs, before: Snapshot, missed: int,
           file_walk: WalkCost | None = None) -> Derived:
    """The comparison figures of one finished run; ``file_walk`` is what the reclaim ops'
    walks of page-cache pages cost (:attr:`Player.file_walk`)."""
    fw = file_walk or WalkCost()
    file_visits = fw.mms_visited + fw.vmas_visited
    w = costs.walk
    c = costs.counters
    visits = w.mms_visited + w.vmas_visited
    live = machine.live_processes()
    faults = {f.name.removeprefix("fault_"): int(getattr(c, f.name)) for f in fields(c)
              if f.name.startswith("fault_")}
    return Derived(
        rmap_bytes=costs.rmap_bytes,
        rmap_peak_bytes=costs.rmap_peak_bytes,
        rmap_bytes_before_reclaim=before.rmap_bytes,
        vmas_before_reclaim=before.vmas,
        anon_vmas_before_reclaim=before.anon_vmas,
        mapped_ptes_before_reclaim=before.mapped_ptes,
        metadata_objects=dict(costs.metadata_objects),
        walks=w.walks,
        walk_visits=visits,
        visits_per_page=_ratio(visits, w.walks),
        ptes_probed=w.ptes_probed,
        probes_per_page=_ratio(w.ptes_probed, w.walks),
        wasted=w.wasted,
        wasted_per_page=_ratio(w.wasted, w.walks),
        find_vma=w.find_vma,
        tree_steps=w.tree_steps,
        pages_unmapped=c.pages_unmapped,
        reclaim_missed=missed,
        cow_copies=c.fault_cow_copy,
        mremap_copies=c.mremap_page_copies,
        page_copies=c.fault_cow_copy + c.mremap_page_copies,
        fork_ptes_copied=c.fork_ptes_copied,
        faults=faults,
        final_vmas=sum(p.mm.map_count for p in live),
        live_processes=len(live),
        page_table_bytes=costs.page_table_bytes,
        file_vmas_before_reclaim=before.file_vmas,
        file_walks=fw.walks,
        file_walk_visits=file_visits,
        file_visits_per_page=_ratio(file_visits, fw.walks),
        file_wasted=fw.wasted,
        file_wasted_per_page=_ratio(fw.wasted, fw.walks),
        file_tree_steps=fw.tree_steps,
    )


def run_matrix(workload: str, params: Mapping[str, Any] | None = None, *, seed: int = 0,
               arch: str = "x86_64",
               configs: Sequence[tuple[str, str | None]] | None = None,
               file_rmap: str = DEFAULT_FILE_RMAP,
               reclaim: str = DEFAULT_RECLAIM) -> list[Result]:
    """Run ``workload`` on every valid configuration (or on ``configs``), in matrix order.
    """
    return [run(workload, params, rmap=r, mremap_policy=p, seed=seed, arch=arch,
                file_rmap=file_rmap, reclaim=reclaim)
            for r, p in (configs if configs is not None else configurations())]


def run_axis(workload: str, axis: str, params: Mapping[str, Any] | None = None, *,
             rmap: str = "anon_vma_chain", mremap_policy: str | None = None, seed: int = 0,
             arch: str = "x86_64", file_rmap: str = DEFAULT_FILE_RMAP,
             reclaim: str = DEFAULT_RECLAIM, observers: Sequence[str] = ()) -> list[Result]:
    """Run ``workload`` once per installed plugin along ``axis`` (``file_rmap`` or
    ``reclaim``), everything else fixed; each result's label is its plugin's name."""
    out = []
    for name in axis_plugins(axis):
        choice = {"file_rmap": file_rmap, "reclaim": reclaim, axis: name}
        r = run(workload, params, rmap=rmap, mremap_policy=mremap_policy, seed=seed,
                arch=arch,
                file_rmap=choice["file_rmap"], reclaim=choice["reclaim"],
                observers=observers)
        r.display_label = name
        out.append(r)
    return out


def run_from_spec(spec: Mapping[str, Any]) -> Result:
    """:func:`run` with keyword arguments ``spec`` (``workload``, ``params``, ``rmap``...).
    """
    kw = dict(spec)
    return run(kw.pop("workload"), kw.pop("params", None), **kw)
