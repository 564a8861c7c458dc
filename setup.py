"""Opt-in compiled build of the hot core (issue 12 item 2), in the manner of black's.

``pip install -e .`` (or any build without the variable) installs pure Python, the
default, which never needs a compiler. With ``MMCORE_MYPYC=1`` the modules of
:data:`HOT_CORE` are compiled with mypyc; mypyc type-checks them against mmcore's
dependencies, so those and mypy (the ``[test]`` extra) are installed first and the
build runs without build isolation::

    pip install -e '.[test]'
    MMCORE_MYPYC=1 pip install --no-build-isolation --no-deps -e .

An editable compiled build writes its extension modules (``mmcore/*.so``) beside the
sources, where they shadow the ``.py`` files for every venv of that checkout, the pure
one too: build it in a copy of the checkout, as ``nox -s tests-mypyc`` does (it then runs
the whole suite there), or delete the ``.so`` files afterwards. ``mmsim bench`` reports
which build ran.

Plugins (``plugins/``, ``contrib/``) and everything else stay interpreted and work
unchanged against both builds. What compiling changes for the code around it:

- A compiled class cannot be subclassed by interpreted code, cannot inherit an
  interpreted class, and its instances take only their declared attributes. Page,
  PhysMem, PageTable, Vma, VmaTree, IntervalTree, Mm and Folio are compiled: nothing
  subclasses them, and a plugin keeps its state in the slot each offers it (``rmap``,
  ``mapping``, ``anon_vma``, ``Folio.mc``...). The classes that must stay subclassable
  or patchable stay interpreted: the rmap, mapcount and reclaim plugin classes (a scheme
  subclasses a shipped one, as tests/test_conformance_catches_bugs.py does), Machine
  (tests replace the bound methods of an instance: ``rmap_walk`` in test_replay.py, the
  folio-range hooks in test_mthp.py).
- A compiled module calls the functions of compiled modules directly, so monkeypatching
  such a function changes nothing for a compiled caller. Patch it where an interpreted
  module calls it, as tests/test_madvise_fidelity.py wraps ``mmcore.machine.dup_mmap``;
  ``mmcore.madvise.punch_hole`` (patched there too) is interpreted and called from
  interpreted code.

Folio and the large-folio fault and rmap paths (folio.py, anon_folio.py, folio_rmap.py)
are compiled because they measured faster and nothing subclasses or patches them:
``benchmarks/bench_mthp.py --pages 8192``, four builds alternating, best of 5 runs,
geometric mean over the 11 configurations, with 64 kB folios: compiling folio.py on top
of the other modules made fork 1.05x, the child's exit 1.11x and munmap 1.05x faster;
compiling all three made them 1.25x, 1.28x and 1.19x faster; order-0 figures stayed
within 0.97x to 1.05x. huge_memory.py (PMD THP) is compiled for the same reasons: with
MADV_HUGEPAGE on 8192 pages (16 THPs, anon_vma_chain, best of 5 alternating runs)
compiling it made the first write of each page 1.34x and fork 1.34x faster than the
other modules compiled alone; the COW write, the child's exit and munmap stayed within
0.97x to 0.99x. (folio_split.py, madvise_folio.py and khugepaged.py were not measured.)
"""

import os

from setuptools import setup

#: Faults (order 0, large folios, PMD THP), page tables, pages and folios, the folio rmap
#: batches, fork and zap, the vma tree, the interval tree, the mm.
HOT_CORE = ("fault", "anon_folio", "huge_memory", "pagetable", "page", "folio",
            "folio_rmap", "fork", "memory", "vma", "interval_tree", "mm")

if os.environ.get("MMCORE_MYPYC", "") not in ("", "0"):
    from mypyc.build import mypycify

    setup(ext_modules=mypycify([f"mmcore/{name}.py" for name in HOT_CORE], opt_level="3"))
else:
    setup()
