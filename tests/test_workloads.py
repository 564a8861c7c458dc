"""Built-in workloads: determinism, the op vocabulary, every valid configuration, and the
qualitative outcomes rmap-reference §7 expects (computed from results, never hard-coded).

Schemes that are not installed are skipped; the matrix comes from valid_configurations().
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from mmcore import ConfigError
from mmcore.experiments import workloads
from mmcore.experiments.ops import OP_FIELDS, Op
from mmcore.experiments.results import Result
from mmcore.experiments.runner import run
from mmcore.plugins import valid_configurations

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
    return run(workload, params, rmap=config[0], policy=config[1])


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


def test_unknown_and_unavailable_workloads() -> None:
    with pytest.raises(ConfigError, match="choose one of: forking-server"):
        workloads.get("forking-servr")
    with pytest.raises(ConfigError, match="file mappings"):
        workloads.get("large-file")


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
