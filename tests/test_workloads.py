"""Built-in workloads: determinism, the op vocabulary, every valid configuration, and the
qualitative outcomes rmap-reference §7 expects (computed from results, never hard-coded).

Schemes that are not installed are skipped; the matrix comes from valid_configurations().
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest

from mmcore import ConfigError
from mmcore.experiments import workloads
from mmcore.experiments.ops import OP_FIELDS, CheckFailed, Op
from mmcore.experiments.results import Result, load
from mmcore.experiments.runner import (
    DEFAULT_RAM_PAGES,
    axis_plugins,
    rerun,
    run,
    run_axis,
    run_ops,
)
from mmcore.plugins import plugins_of_kind, valid_configurations

CONFIGS = valid_configurations()
CONFIG_IDS = [r if p is None else f"{r}+{p}" for r, p in CONFIGS]

#: Small parameters so that the whole matrix runs quickly.
SMALL: dict[str, dict[str, Any]] = {
    "forking-server": {"pages": 8, "children": 3},
    "malloc-after-fork": {"shared_pages": 4, "private_pages": 4, "children": 3},
    "mremap-after-fork": {"pages": 8, "children": 2},
    "mprotect-flood": {"pages": 16},
    "deep-fork-chain": {"depth": 5, "pages": 4},
    "wide-fork": {"pages": 8, "children": 3, "reclaim": True},
    "merge-churn": {"rounds": 2, "pages": 4},
    "random-mix": {"steps": 120, "max_procs": 4, "slots": 6, "max_pages": 6},
    "large-file": {"pages": 16, "procs": 3, "vmas_per_proc": 2},
    "private-file-cow": {"pages": 16, "procs": 3, "cow_percent": 25},
    "memory-pressure": {"ram_pages": 32, "swap_pages": 256, "anon_pages": 24,
                        "file_pages": 16, "shmem_pages": 8, "children": 2, "rounds": 1},
    "thp-fork-snapshot": {"hugepages": 1, "snapshots": 1, "dirty_pct": 2},
    "mthp-allocator": {"chunks": 4, "rounds": 2},
    "thp-mremap-buffer": {"hugepages": 1, "grows": 2},
    "khugepaged-collapse": {"hugepages": 1, "holes": 2},
    "folio-shared-64": {"order": 4, "children": 4},
}


def scheme(name: str) -> tuple[str, str | None]:
    """The first valid configuration of rmap ``name`` (skip the test if not installed)."""
    for c in CONFIGS:
        if c[0] == name:
            return c
    pytest.skip(f"rmap scheme {name!r} is not installed")


def schemes_named(prefix: str) -> list[tuple[str, str | None]]:
    """Valid configurations of ``prefix`` and its variants (``anonmm``, ``anonmm_*``)."""
    return [c for c in CONFIGS if c[0] == prefix or c[0].startswith(prefix + "_")]


def go(workload: str, config: tuple[str, str | None], **params: Any) -> Result:
    """Run ``workload`` on ``config``."""
    return run(workload, params, rmap=config[0], mremap_policy=config[1])


def test_every_workload_has_small_parameters_here() -> None:
    assert set(SMALL) == set(workloads.REGISTRY)


@pytest.mark.parametrize("name", list(workloads.REGISTRY))
def test_registry_entry_is_documented(name: str) -> None:
    w = workloads.REGISTRY[name]
    assert w.summary and w.hurts
    assert "Expected" in w.doc or "seed" in w.doc
    assert w.defaults() == w.params().to_dict()


@pytest.mark.parametrize("name", list(workloads.REGISTRY))
def test_deterministic_for_a_seed(name: str) -> None:
    a = [o.to_dict() for o in workloads.generate(name, SMALL[name], seed=7)]
    b = [o.to_dict() for o in workloads.generate(name, SMALL[name], seed=7)]
    assert a == b and a


def test_random_mix_depends_on_the_seed() -> None:
    a = [o.to_dict() for o in workloads.generate("random-mix", seed=1)]
    b = [o.to_dict() for o in workloads.generate("random-mix", seed=2)]
    assert a != b


@pytest.mark.parametrize("name", list(workloads.REGISTRY))
def test_emits_only_valid_ops(name: str) -> None:
    defaults = Op("x")
    for op in workloads.generate(name, SMALL[name], seed=3):
        assert op.op in OP_FIELDS, op
        used = {f.name for f in fields(Op)
                if f.name != "op" and getattr(op, f.name) != getattr(defaults, f.name)}
        assert used <= set(OP_FIELDS[op.op]), (op.op, used - set(OP_FIELDS[op.op]))
        assert Op.from_json(op.to_json()) == op


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("name", list(workloads.REGISTRY))
def test_runs_on_every_valid_configuration(name: str, config: tuple[str, str | None]
                                           ) -> None:
    r = go(name, config, **SMALL[name])
    assert r.ops_applied > 0
    assert r.derived.reclaim_missed == 0, "a reclaim left pages the walk could not find"
    if workloads.REGISTRY[name].strict:
        assert r.errors == {} and r.segfaults == 0


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="pages"):
        workloads.make_params("forking-server", {"pages": "many"})
    with pytest.raises(ConfigError, match="Unknown field"):
        workloads.make_params("forking-server", {"page": 3})
    with pytest.raises(ConfigError, match="at least 1"):
        workloads.make_params("forking-server", {"pages": 0})
    assert workloads.make_params("forking-server", {"pages": "12"}).to_dict()["pages"] == 12


def test_unknown_and_unavailable_workloads(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="choose one of: forking-server"):
        workloads.get("forking-servr")
    assert workloads.get("large-file").name == "large-file"  # file mappings landed
    monkeypatch.setitem(workloads.UNAVAILABLE, "ksm", "not available until KSM lands")
    with pytest.raises(ConfigError, match="'ksm' is not available until KSM lands"):
        workloads.get("ksm")


# --- rmap-reference §7: expected comparative outcomes ------------------------------------


def test_forking_server_pte_chains_and_avc_walk_far_less_than_anon_vma() -> None:
    """§7.1: total walk work pte_chains ~ AVC << anon_vma (O(N*K^2))."""
    k = 16
    totals = {n: go("forking-server", scheme(n), pages=16, children=k).derived.walk_visits
              for n in ("pte_chains", "anon_vma_chain", "anon_vma")}
    cheap = max(totals["pte_chains"], totals["anon_vma_chain"])
    assert totals["anon_vma"] / cheap >= k / 4, totals


@pytest.mark.parametrize("config", schemes_named("anonmm"),
                         ids=lambda c: c[0] if c[1] is None else f"{c[0]}+{c[1]}")
def test_anonmm_walk_cost_depends_on_sharing_not_on_the_group(
        config: tuple[str, str | None]) -> None:
    """Measured against rmap-reference §7.1's "anonmm W ~ K+1": try_to_unmap_anon() tries
    the page's own mm first and stops at mapcount 0 (Hugh's rmap 10), so a page every
    child COWed is found in one mm; only a page still shared by the whole group (wide-fork
    with reclaim) costs a visit per mm, all of them useful."""
    k = 16
    cowed = go("forking-server", config, pages=16, children=k)
    assert cowed.derived.visits_per_page == pytest.approx(1.0)
    shared = go("wide-fork", config, pages=8, children=k, reclaim=True)
    assert shared.derived.visits_per_page == pytest.approx(k + 1)
    assert shared.derived.wasted == 0


@pytest.mark.parametrize("name", ["pte_chains", "anon_vma", "anon_vma_chain"])
def test_malloc_after_fork_private_pages_found_at_once(name: str) -> None:
    """§7.2: anon_vma, AVC and pte_chains find a child's private page with W = 1."""
    r = go("malloc-after-fork", scheme(name), shared_pages=4, private_pages=8, children=8)
    assert r.derived.walks == 8 * 8
    assert r.derived.visits_per_page == pytest.approx(1.0)
    assert r.derived.wasted == 0


def test_mremap_after_fork_copies_only_with_an_unshare_policy() -> None:
    """§7.3: anonmm with Linus's fix copies every shared page moved; schemes without a
    policy move the ptes and copy nothing; every page is still reclaimable."""
    pages, kids = 8, 3
    results = {c: go("mremap-after-fork", c, pages=pages, children=kids) for c in CONFIGS}
    moved = results[scheme("pte_chains")].costs.counters.mremap_ptes_moved
    assert moved == pages * kids
    for c, r in results.items():
        assert r.derived.reclaim_missed == 0, c
        if c[1] is None:
            assert r.derived.mremap_copies == 0, c
    anonmm = [c for c in schemes_named("anonmm") if c[1] is not None]
    if not anonmm:
        pytest.skip("anonmm is not installed")
    for c in anonmm:
        assert results[c].derived.mremap_copies == moved, c


def test_mprotect_flood_lengthens_anon_vma_walk_and_everyone_remerges() -> None:
    """§7.4: anon_vma W = O(M); pte_chains unaffected; all re-merge to one vma."""
    small = {c: go("mprotect-flood", c, pages=16) for c in CONFIGS}
    big = {c: go("mprotect-flood", c, pages=64) for c in CONFIGS}
    for c in CONFIGS:
        assert big[c].derived.final_vmas == 1, c
        assert big[c].derived.vmas_before_reclaim == 64, c
    pc = scheme("pte_chains")
    assert big[pc].derived.visits_per_page == small[pc].derived.visits_per_page
    av = scheme("anon_vma")
    growth = big[av].derived.visits_per_page / small[av].derived.visits_per_page
    assert growth >= 0.5 * (64 / 16)


def test_deep_fork_chain_avc_reuse_bounds_anon_vmas() -> None:
    """§7.5: with the num_children reuse rule the anon_vmas and AVCs of a fork chain stop
    growing with its depth (without reuse they grow one level per generation)."""
    avc = scheme("anon_vma_chain")
    shallow = go("deep-fork-chain", avc, depth=12, pages=4).derived
    deep = go("deep-fork-chain", avc, depth=24, pages=4).derived
    assert deep.final_vmas == shallow.final_vmas == 1
    for struct in ("anon_vma", "anon_vma_chain"):
        assert deep.metadata_objects.get(struct, 0) == shallow.metadata_objects.get(
            struct, 0) > 0, struct


def test_wide_fork_pte_chains_memory_grows_with_children() -> None:
    """§7.6: pte_chains holds a slot per shared pte (O(N*K)); anon_vma O(1) per vma."""
    pc = scheme("pte_chains")
    a = go("wide-fork", pc, pages=32, children=8).derived
    b = go("wide-fork", pc, pages=32, children=16).derived
    # chain blocks hold NRPTE slots, so the growth is stepwise: at least 3/4 of linear
    assert b.rmap_peak_bytes / a.rmap_peak_bytes >= 0.75 * (16 + 1) / (8 + 1)
    av = scheme("anon_vma")
    x = go("wide-fork", av, pages=32, children=8).derived
    y = go("wide-fork", av, pages=64, children=8).derived
    assert x.rmap_peak_bytes == y.rmap_peak_bytes  # independent of the pages
    assert a.rmap_peak_bytes / x.rmap_peak_bytes >= 10


def test_merge_churn_only_avc_keeps_cloned_vmas_apart() -> None:
    """§7.9 / LTP vma01: pte_chains and anonmm never refuse a merge; AVC keeps a vma
    cloned from the parent apart from a new neighbour."""
    free = go("merge-churn", scheme("pte_chains"), rounds=3).derived.final_vmas
    avc = go("merge-churn", scheme("anon_vma_chain"), rounds=3).derived.final_vmas
    assert avc > free
    for c in schemes_named("anonmm"):
        assert go("merge-churn", c, rounds=3).derived.final_vmas == free, c


# --- §7.7 and §7.8: file mappings -----------------------------------------------------------

FILE_RMAPS = list(plugins_of_kind("file_rmap"))


def file_rmap(name: str) -> str:
    """The file rmap plugin ``name`` (skip the test if it is not installed)."""
    if name not in FILE_RMAPS:
        pytest.skip(f"file rmap plugin {name!r} is not installed")
    return name


def large(file_rmap_name: str, procs: int, vmas: int, config: tuple[str, str | None]
          = ("anon_vma_chain", None)) -> Result:
    return run("large-file", {"pages": 32, "procs": procs, "vmas_per_proc": vmas},
               rmap=config[0], mremap_policy=config[1], file_rmap=file_rmap_name)


def test_large_file_list_visits_every_vma_the_tree_only_the_covering_ones() -> None:
    """§7.7: W = P with an interval tree whatever the vmas per process; the 2.6.6 list
    visits about P x V (every vma up to the last process's covering one)."""
    lst, tree = file_rmap("i_mmap_list"), file_rmap("i_mmap_tree")
    procs, vmas = 4, 8
    t = large(tree, procs, vmas).derived
    li = large(lst, procs, vmas).derived
    assert t.file_walks == li.file_walks == 32  # every page of the file, once
    assert t.file_visits_per_page == procs
    assert li.file_visits_per_page >= (procs - 1) * vmas + 1
    assert li.file_visits_per_page / t.file_visits_per_page >= vmas / 2
    assert t.file_tree_steps > 0 and li.file_tree_steps == 0
    assert t.file_wasted == li.file_wasted == 0 and t.reclaim_missed == li.reclaim_missed == 0
    assert t.file_vmas_before_reclaim == li.file_vmas_before_reclaim == procs * vmas
    # With one vma per process the list is as good as the tree, and smaller.
    one_t, one_l = large(tree, procs, 1), large(lst, procs, 1)
    assert one_l.derived.file_visits_per_page == one_t.derived.file_visits_per_page == procs
    assert one_l.derived.rmap_peak_bytes < one_t.derived.rmap_peak_bytes


def test_large_file_keeps_no_per_page_rmap_state_and_walks_alike_for_every_scheme() -> None:
    """objrmap: file pages cost no rmap memory per page, so the anon scheme changes
    nothing in the file walk; every process read back what the first one wrote."""
    small = {c: large("i_mmap_tree", 3, 2, c) for c in CONFIGS}
    big = {c: run("large-file", {"pages": 128, "procs": 3, "vmas_per_proc": 2},
                  rmap=c[0], mremap_policy=c[1]) for c in CONFIGS}
    walks = {(r.derived.file_walk_visits, r.derived.file_wasted) for r in small.values()}
    assert len(walks) == 1, walks
    for c in CONFIGS:
        assert big[c].derived.rmap_peak_bytes == small[c].derived.rmap_peak_bytes, c
        assert big[c].checks == (3 + 1) * 128 and big[c].check_failures == 0


def cow(percent: int, name: str = "i_mmap_tree",
        config: tuple[str, str | None] = ("anon_vma_chain", None)) -> Result:
    return run("private-file-cow", {"pages": 32, "procs": 6, "cow_percent": percent},
               rmap=config[0], mremap_policy=config[1], file_rmap=name, seed=3)


@pytest.mark.parametrize("name", FILE_RMAPS)
def test_private_file_cow_wastes_probes_on_cowed_vmas(name: str) -> None:
    """§7.8: the file walk probes vmas whose page was replaced by a private copy; the
    more vmas COWed, the more wasted probes; none without COW."""
    runs = {pct: cow(pct, name) for pct in (0, 25, 50)}
    wasted = [runs[pct].derived.file_wasted for pct in (0, 25, 50)]
    assert wasted[0] == 0 and 0 < wasted[1] < wasted[2], wasted
    for pct, r in runs.items():
        cowed_vmas = 6 * round(32 * pct / 100)  # (vma, page) pairs replaced by a copy
        assert r.derived.cow_copies == cowed_vmas
        assert r.derived.file_wasted <= cowed_vmas
        assert r.derived.reclaim_missed == 0 and r.check_failures == 0


def test_private_file_cow_copies_are_found_through_the_anon_scheme() -> None:
    """§7.8: each anonymous copy is walked once by its rmap scheme (not the file's),
    and every scheme finds every copy."""
    for c in CONFIGS:
        r = cow(25, config=c)
        anon_walks = r.derived.walks - r.derived.file_walks
        assert anon_walks == r.derived.cow_copies > 0, c
        assert r.derived.reclaim_missed == 0, c


# --- memory pressure ----------------------------------------------------------------------


def pages_checked(ops: list[Op]) -> int:
    return sum(max(o.length, 1) // 4096 or 1 for o in ops if o.op == "read" and o.data)


@pytest.mark.parametrize("reclaim", list(plugins_of_kind("reclaim")))
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_memory_pressure_keeps_every_byte(config: tuple[str, str | None],
                                          reclaim: str) -> None:
    """A working set several times RAM, with fork, COW, shmem and a shared and a private
    file mapping: reclaim swaps and writes back throughout, and every page read at the
    end holds what was last written there."""
    params = SMALL["memory-pressure"]
    r = run("memory-pressure", params, rmap=config[0], mremap_policy=config[1], reclaim=reclaim)
    ops = list(workloads.generate("memory-pressure", params))
    assert r.config.ram_pages == params["ram_pages"]
    assert r.config.swap_pages == params["swap_pages"]
    assert r.checks == pages_checked(ops) > 0 and r.check_failures == 0
    c = r.costs.counters
    assert c.oom_kills == 0 and c.pswpout > 0 and c.fault_swapin_major > 0
    assert c.kswapd_runs > 0 and c.pages_written_back > 0
    assert r.derived.cow_copies > 0 and r.derived.walks > 0


def test_a_lost_byte_fails_the_check() -> None:
    """The checks can fail: expect something else on one page and the run says so."""
    params = SMALL["memory-pressure"]
    ops = list(workloads.generate("memory-pressure", params))
    i = max(n for n, o in enumerate(ops) if o.op == "read" and o.data)
    ops[i] = Op("read", pid=ops[i].pid, addr=ops[i].addr, length=ops[i].length,
                data=ops[i].data + "?")
    kw: dict[str, Any] = {"rmap": "anon_vma_chain", "ram_pages": params["ram_pages"],
                          "swap_pages": params["swap_pages"]}
    loose = run_ops(ops, strict=False, **kw)
    assert loose.check_failures == 1 and loose.checks == pages_checked(ops)
    with pytest.raises(CheckFailed, match="expected"):
        run_ops(ops, strict=True, **kw)


def test_machine_sizes_come_from_the_workload_parameters() -> None:
    r = run("memory-pressure", {**SMALL["memory-pressure"], "ram_pages": 40},
            rmap="anon_vma_chain")
    assert (r.config.ram_pages, r.config.swap_pages) == (40, 256)
    assert run("forking-server", SMALL["forking-server"],
               rmap="anon_vma_chain").config.ram_pages == DEFAULT_RAM_PAGES
    with pytest.raises(ConfigError, match="sets ram_pages=64"):
        run("memory-pressure", {}, rmap="anon_vma_chain", ram_pages=128)
    with pytest.raises(ConfigError, match="swap_pages must hold"):
        workloads.make_params("memory-pressure", {"swap_pages": 10})
    with pytest.raises(ConfigError, match="cow_percent"):
        workloads.make_params("private-file-cow", {"cow_percent": 101})
    with pytest.raises(ConfigError, match="cannot exceed pages"):
        workloads.make_params("large-file", {"pages": 4, "vmas_per_proc": 5})


# --- the machine plugins in results ------------------------------------------------------


def test_file_rmap_and_reclaim_are_recorded_and_rerun_byte_for_byte() -> None:
    r = run("memory-pressure", SMALL["memory-pressure"], rmap="anon_vma_chain",
            file_rmap=file_rmap("i_mmap_list"), reclaim="clock")
    assert (r.config.file_rmap, r.config.reclaim) == ("i_mmap_list", "clock")
    assert r.label == "anon_vma_chain/i_mmap_list/clock"
    assert {"i_mmap_list", "clock"} <= set(r.plugin_versions)
    assert rerun(r.to_json()).reproducible_json() == r.reproducible_json()
    for name in ("large-file", "private-file-cow"):
        r = run(name, SMALL[name], rmap="pte_chains", file_rmap="i_mmap_list")
        assert rerun(r.to_json()).reproducible_json() == r.reproducible_json()


def test_a_result_recorded_before_these_fields_still_reruns_identically() -> None:
    """Results written before the file rmap and reclaim plugins were choices (no
    config.file_rmap, no file_* figures, no checks) load with the defaults and rerun
    to the same reproducible JSON."""
    r = run("forking-server", SMALL["forking-server"], rmap="anon_vma")
    old = r.to_dict(encode_json=True)
    for key in ("file_rmap", "reclaim"):
        del old["config"][key]
    for key in [k for k in old["derived"] if k.startswith("file_")]:
        del old["derived"][key]
    for key in ("checks", "check_failures", "sigbus"):
        del old[key]
    text = json.dumps(old)
    assert load(text).reproducible_json() == r.reproducible_json()
    assert rerun(text).reproducible_json() == load(text).reproducible_json()


def test_run_axis_names_each_result_by_its_plugin() -> None:
    results = run_axis("large-file", "file_rmap", SMALL["large-file"], rmap="pte_chains")
    assert [x.label for x in results] == axis_plugins("file_rmap") == FILE_RMAPS
    assert [x.config.file_rmap for x in results] == FILE_RMAPS
    assert {x.config.rmap for x in results} == {"pte_chains"}
    with pytest.raises(ConfigError, match="choose one of: rmap, file_rmap, reclaim"):
        axis_plugins("colour")
