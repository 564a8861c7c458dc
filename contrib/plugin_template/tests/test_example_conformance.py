"""Run mmcore's conformance kit on the example scheme: one subclass is the whole suite."""

from __future__ import annotations

from mmcore.testing import RmapConformance


class TestExampleAnonVma(RmapConformance):
    """Random and fixed scenarios; the walk must equal the brute-force truth throughout."""

    rmap = "example_anon_vma"
