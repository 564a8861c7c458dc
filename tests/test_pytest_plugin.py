"""The pytest plugin in isolation (pytester): ``--mmcore-rmap``, a one-line subclass of
RmapConformance, the machine factory fixture, and a failing scheme's report."""

from __future__ import annotations

import pytest

from mmcore.testing import RmapConformance

pytest_plugins = ["pytester"]

#: Test methods of the suite (each scheme given to --mmcore-rmap runs all of them).
N_SUITE = len([n for n in dir(RmapConformance) if n.startswith("test_")])


@pytest.mark.slow  # the whole suite, in a pytester run
def test_option_runs_the_suite(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--mmcore-rmap", "pte_chains", "--mmcore-max-examples", "5",
                                "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=N_SUITE)
    result.stdout.fnmatch_lines(["*mmcore-conformance?pte_chains?::test_fork_tree*PASSED*"])


@pytest.mark.slow  # the whole suite, in a pytester run
def test_option_with_policy_and_paths(pytester: pytest.Pytester) -> None:
    """With test paths given, the suite runs after the tests found there."""
    pytester.makepyfile(test_other="def test_plain():\n    assert True\n")
    result = pytester.runpytest("test_other.py", "--mmcore-rmap", "anon_vma_chain",
                                "--mmcore-mremap-policy", "unshare", "--mmcore-max-examples", "3",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=N_SUITE + 1)


def test_option_with_keyword_selection(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--mmcore-rmap", "pte_chains", "-k", "fork_tree",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_unknown_scheme_fails_clearly(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--mmcore-rmap", "no_such_scheme", "-k", "fork_tree",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown rmap plugin 'no_such_scheme': choose one of:*"])


@pytest.mark.slow  # the whole suite, in a pytester run
def test_one_line_subclass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="""
        from mmcore.testing import RmapConformance

        class TestMine(RmapConformance):
            rmap = "pte_chains"
            max_examples = 5
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=N_SUITE)


def test_broken_subclass_reports_a_reproducer(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken="""
        from typing import ClassVar
        from mmcore import PluginInfo, hookimpl
        from mmcore.testing import RmapConformance
        from mmcore_plugins.pte_chains import PteChains

        class NoDup(PteChains):
            info: ClassVar[PluginInfo] = PluginInfo(
                name="no_dup", kind="rmap", summary="forgets fork", structs=("pte_chain",))

            @hookimpl
            def rmap_page_dup(self, page, vma, address):
                pass

        class TestNoDup(RmapConformance):
            rmap = NoDup
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "mremap_after_fork")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rmap walk != truth*", "*Minimal reproducer*",
                                 "*from test_broken import NoDup*", "*replay(*"])


def test_machine_factory_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_factory="""
        def test_default(mmcore_machine_factory):
            m = mmcore_machine_factory()
            assert m.rmap_name == "anon_vma"
            assert mmcore_machine_factory.machines == [m]

        def test_explicit(mmcore_machine_factory):
            m = mmcore_machine_factory("pte_chains", ram_pages=64)
            assert m.rmap_name == "pte_chains" and m.physmem.nr_frames == 64
    """)
    result = pytester.runpytest("test_factory.py", "--mmcore-rmap", "anon_vma",
                                "-k", "default or explicit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_reclaim_option_alone_runs_the_suite_with_anon_vma_chain(pytester: pytest.Pytester) -> None:
    """``--mmcore-reclaim NAME`` without ``--mmcore-rmap`` runs the suite against
    anon_vma_chain, labelled with the reclaim plugin."""
    result = pytester.runpytest("--mmcore-reclaim", "clock", "-k", "fork_tree", "-v",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*mmcore-conformance?anon_vma_chain,reclaim=clock?::test_fork_tree*PASSED*"])


def test_reclaim_option_reaches_the_suites_machines(pytester: pytest.Pytester) -> None:
    """The suite's machines are built with the ``--mmcore-reclaim`` plugin: an unknown
    name fails the memory-pressure walk with the registry's "choose one of"."""
    result = pytester.runpytest("--mmcore-reclaim", "no_such_reclaim", "-k",
                                "seeded_random_walk", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown reclaim plugin 'no_such_reclaim': choose one of:*"])


def test_machine_factory_takes_the_reclaim_option(pytester: pytest.Pytester) -> None:
    """``mmcore_machine_factory`` builds machines with the ``--mmcore-reclaim`` plugin."""
    pytester.makepyfile(test_factory="""
        def test_reclaim(mmcore_machine_factory):
            assert mmcore_machine_factory().reclaim_name == "clock"
    """)
    result = pytester.runpytest("test_factory.py", "--mmcore-reclaim", "clock",
                                "-k", "test_reclaim", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_mapcount_option_alone_runs_the_suite_with_that_design(pytester: pytest.Pytester) -> None:
    """``--mmcore-mapcount NAME`` without ``--mmcore-rmap`` runs the suite against
    anon_vma_chain under that design, whose claims the hand-mapped folio test checks."""
    result = pytester.runpytest("--mmcore-mapcount", "total_mapped_pages", "-k",
                                "hand_mapped", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*mmcore-conformance?anon_vma_chain,mapcount="
                                 "total_mapped_pages?::test_mapcount_design_on_hand_mapped"
                                 "_folios*PASSED*"])


def test_mapcount_option_reaches_the_suites_machines(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--mmcore-mapcount", "no_such_design", "-k", "fork_tree",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown mapcount plugin 'no_such_design': choose one of:*"])


def test_machine_factory_takes_the_mapcount_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_factory="""
        def test_mapcount(mmcore_machine_factory):
            assert mmcore_machine_factory().mapcount_name == "no_page_mapcount"
    """)
    result = pytester.runpytest("test_factory.py", "--mmcore-mapcount", "no_page_mapcount",
                                "-k", "test_mapcount and not hand_mapped",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
