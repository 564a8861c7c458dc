"""The rmap conformance suite against every valid (rmap, mremap policy) configuration.

One class per configuration, generated from :func:`mmcore.valid_configurations` at import
time (a new scheme is covered as soon as it is installed); each is exactly what a plugin
author writes for their own scheme::

    class TestMine(RmapConformance):
        rmap = "my_scheme"
"""

from __future__ import annotations

import pytest

from mmcore import valid_configurations
from mmcore.testing import RmapConformance

pytest_plugins = ["pytester"]

# The whole kit (hypothesis state machines, seeded walks) over every configuration: about
# 70 s on one core, the largest part of the suite; outside the quick subset.
pytestmark = pytest.mark.slow


def _class_name(rmap: str, policy: str | None) -> str:
    return "TestConformance_" + rmap + (f"_{policy}" if policy else "")


for _rmap, _policy in valid_configurations():
    _name = _class_name(_rmap, _policy)
    globals()[_name] = type(_name, (RmapConformance,), {
        "rmap": _rmap,
        "mremap_policy": _policy,
        "__module__": __name__,
        "__doc__": f"Conformance of rmap={_rmap!r}, mremap_policy={_policy!r}.",
    })


class TestConformance_anon_vma_chain_i_mmap_list(RmapConformance):
    """A short suite with the other file rmap plugin (file mappings through i_mmap_list)."""

    rmap = "anon_vma_chain"
    file_rmap = "i_mmap_list"
    max_examples = 20
    stateful_step_count = 30
    fork_tree_seeds = (0,)
    random_steps = 300


def test_every_configuration_has_a_suite() -> None:
    """The generated classes cover the whole plugin matrix."""
    for rmap, policy in valid_configurations():
        cls = globals()[_class_name(rmap, policy)]
        assert issubclass(cls, RmapConformance)
        assert (cls.rmap, cls.mremap_policy) == (rmap, policy)


def test_file_rmap_option_runs_the_suite(pytester: pytest.Pytester) -> None:
    """``--mmcore-file-rmap`` alone runs the suite (rmap anon_vma_chain) with that plugin."""
    result = pytester.runpytest("--mmcore-file-rmap", "i_mmap_list", "-k", "file_mappings",
                                "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*anon_vma_chain,file=i_mmap_list*file_mappings*PASSED*"])
