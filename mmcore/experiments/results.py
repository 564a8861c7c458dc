"""What one run produced, with the configuration that produced it.

A :class:`Result` is plain data (dataclasses-json): the full configuration (workload,
parameters, seed, rmap, mremap policy, file rmap, reclaim policy, arch, memory sizes,
and the mapcount design where it is not the default),
the versions of mmcore and of
the plugins used, the raw :class:`~mmcore.costs.Costs`, and the derived per-scheme figures
that comparisons use. Everything except ``wall_time_s`` is deterministic: rerunning the
configuration (:func:`mmcore.experiments.runner.rerun`) gives the same
:meth:`Result.reproducible_json` byte for byte.

Serialisation goes through this module only (``to_json``/``from_json`` here), so the JSON
library can be swapped without touching the runner or the CLI.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from dataclasses_json import DataClassJsonMixin, config

from ..costs import Costs
from .ops import Op
from .shape import check_dataclass
from .trace import op_from_dict

#: ``RunConfig.workload`` of a run made from an explicit op list (the ops are kept).
OPS_WORKLOAD = "<ops>"
#: The file rmap and reclaim plugins a run uses unless told otherwise (the Machine's
#: defaults: today's Linux). Results recorded before these were choices used them.
DEFAULT_FILE_RMAP = "i_mmap_tree"
DEFAULT_RECLAIM = "lru2"
#: The mapcount design a run uses unless told otherwise (CONFIG_PAGE_MAPCOUNT, what 6.18
#: runs here). Results recorded before mapcount was an axis used it.
DEFAULT_MAPCOUNT = "per_page"


@dataclass
class RunConfig(DataClassJsonMixin):
    """Everything that determines a run's numbers."""

    workload: str
    params: dict[str, Any]
    seed: int
    rmap: str
    policy: str | None
    arch: str
    ram_pages: int
    swap_pages: int
    file_rmap: str = DEFAULT_FILE_RMAP
    reclaim: str = DEFAULT_RECLAIM
    #: Serialised only when it is not the default, so every result recorded before
    #: mapcount was an axis keeps its bytes (and a default run writes those bytes).
    mapcount: str = field(default=DEFAULT_MAPCOUNT, metadata=config(
        exclude=lambda name: name == DEFAULT_MAPCOUNT))

    @property
    def label(self) -> str:
        """``rmap`` or ``rmap+policy``, then ``/file_rmap``, ``/reclaim`` and
        ``/mapcount`` where they are not the defaults: how tables and plots name the
        configuration."""
        out = self.rmap if self.policy is None else f"{self.rmap}+{self.policy}"
        for value, default in ((self.file_rmap, DEFAULT_FILE_RMAP),
                               (self.reclaim, DEFAULT_RECLAIM),
                               (self.mapcount, DEFAULT_MAPCOUNT)):
            if value != default:
                out += f"/{value}"
        return out


@dataclass
class Derived(DataClassJsonMixin):
    """Per-scheme figures computed from the costs and the final machine state.

    "Per page" means per rmap walk: each reclaimed page is walked once (try_to_unmap).
    ``walk_visits`` counts the vmas or mms the scheme offered (rmap-reference §7 metric W);
    ``ptes_probed`` the page-table probes the core made for them, ``wasted`` those that did
    not map the page. The ``*_before_reclaim`` figures are taken at the first reclaim op
    (at the end of a run without one): they are what per-vma and per-pte costs divide by.
    ``reclaim_missed`` counts pages still mapped after a reclaim op (a
    scheme that cannot find a mapping leaves the page unswappable).

    The ``file_*`` figures are the part of the walks that ``reclaim`` ops made for
    page-cache pages (the file rmap plugin's i_mmap walk); ``file_vmas_before_reclaim``
    counts the vmas mapping a file or shmem at the first reclaim op.
    """

    rmap_bytes: int = 0
    rmap_peak_bytes: int = 0
    rmap_bytes_before_reclaim: int = 0
    vmas_before_reclaim: int = 0
    anon_vmas_before_reclaim: int = 0
    mapped_ptes_before_reclaim: int = 0
    metadata_objects: dict[str, int] = field(default_factory=dict)
    walks: int = 0
    walk_visits: int = 0
    visits_per_page: float = 0.0
    ptes_probed: int = 0
    probes_per_page: float = 0.0
    wasted: int = 0
    wasted_per_page: float = 0.0
    find_vma: int = 0
    tree_steps: int = 0
    pages_unmapped: int = 0
    reclaim_missed: int = 0
    cow_copies: int = 0
    mremap_copies: int = 0
    page_copies: int = 0
    fork_ptes_copied: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    final_vmas: int = 0
    live_processes: int = 0
    page_table_bytes: int = 0
    file_vmas_before_reclaim: int = 0
    file_walks: int = 0
    file_walk_visits: int = 0
    file_visits_per_page: float = 0.0
    file_wasted: int = 0
    file_wasted_per_page: float = 0.0
    file_tree_steps: int = 0


@dataclass
class Result(DataClassJsonMixin):
    """One workload run on one configuration."""

    config: RunConfig
    mmcore_version: str
    plugin_versions: dict[str, str]
    costs: Costs
    derived: Derived
    ops_applied: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    segfaults: int = 0
    #: The ops themselves, for runs made from an op list (workload runs regenerate them).
    ops: list[Op] | None = None
    #: Seconds of real time: not reproducible, excluded from :meth:`reproducible_json`.
    wall_time_s: float = 0.0
    #: Pages whose content a ``read`` op with ``data`` checked, and the checks that failed
    #: (only non-strict runs count failures: a strict run stops at the first one).
    checks: int = 0
    check_failures: int = 0
    #: Accesses past the end of a file (SIGBUS) in a non-strict run.
    sigbus: int = 0

    def __post_init__(self) -> None:
        #: Shown instead of the configuration's label, when set (not serialised).
        self.display_label: str | None = None

    @property
    def label(self) -> str:
        """How tables name this result: :attr:`display_label` if set (a comparison
        along one plugin axis names rows by that plugin), else the configuration's
        label (``rmap``, ``rmap+policy``, with ``/file_rmap`` or ``/reclaim`` when not
        the defaults)."""
        return self.display_label or self.config.label

    def reproducible_dict(self) -> dict[str, Any]:
        """The result as plain data without the wall time."""
        d = self.to_dict(encode_json=True)
        d.pop("wall_time_s", None)
        return d

    def reproducible_json(self) -> str:
        """Canonical JSON (sorted keys) of everything a rerun must reproduce exactly."""
        return json.dumps(self.reproducible_dict(), sort_keys=True, indent=1)


def dumps(results: list[Result]) -> str:
    """A list of results as one JSON document (what ``--json`` prints)."""
    return json.dumps([r.to_dict(encode_json=True) for r in results], sort_keys=True,
                      indent=1)


class ResultError(ValueError):
    """A result file that cannot be used: not JSON, or not the shape of a result; the
    message says which field is wrong."""


#: The largest memory a recorded configuration may ask for, in pages of either kind
#: (2^32 pages = 16 TiB): a bound on what a rerun allocates from a file's say-so.
MAX_MACHINE_PAGES = 1 << 32


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column "
                          f"{exc.colno})") from None
    except RecursionError:
        raise ResultError("JSON nested too deeply") from None


def load(text: str) -> Result:
    """Parse one result from JSON, validating every field's type first
    (:class:`ResultError` says what is wrong)."""
    data = _decode(text)
    if isinstance(data, list):
        if len(data) != 1:
            raise ResultError(f"expected one result, found a list of {len(data)}")
        data = data[0]
    return _from_dict(data)


def load_many(text: str) -> list[Result]:
    """Parse a JSON list of results (or a single result)."""
    data = _decode(text)
    items = data if isinstance(data, list) else [data]
    return [_from_dict(item) for item in items]


def _from_dict(data: Any) -> Result:
    # dataclasses-json's marshmallow schema cannot see the postponed annotations of
    # mmcore.costs, so results are shape-checked here, then decoded with from_dict.
    if not isinstance(data, dict) or not {"config", "costs", "derived"} <= data.keys():
        raise ResultError("not an mmcore result: expected an object with config, costs "
                          "and derived")
    try:
        check_dataclass(data, Result, "the result")
        config = data["config"]
        for key in ("ram_pages", "swap_pages"):
            low = 2 if key == "ram_pages" else 0
            if not low <= config[key] <= MAX_MACHINE_PAGES:
                raise ValueError(f"config: {key} {config[key]} is impossible (from {low} "
                                 f"to {MAX_MACHINE_PAGES})")
        for i, op in enumerate(data.get("ops") or []):
            try:
                op_from_dict(op)
            except ValueError as exc:
                raise ValueError(f"ops[{i}]: {exc}") from None
    except ValueError as exc:
        raise ResultError(str(exc)) from None
    return Result.from_dict(data)
