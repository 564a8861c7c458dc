"""Opt-in compiled build of the hot core (issue 12 item 2), in the manner of black's.

``pip install -e .`` (or any build without the variable) installs pure Python, the
default, which never needs a compiler. With ``MMCORE_MYPYC=1`` the modules below are
compiled with mypyc (mypy is needed at build time, hence ``--no-build-isolation`` with
the ``[test]`` extra installed)::

    MMCORE_MYPYC=1 pip install --no-build-isolation -e '.[test]'

Plugins (``plugins/``, ``contrib/``) and everything else stay interpreted; the compiled
modules import and behave as their source does. ``mmsim bench`` reports which build ran.
"""

import os

from setuptools import setup

#: Faults, page tables, pages, fork and zap, the vma tree, the interval tree, the mm.
HOT_CORE = ("fault", "pagetable", "page", "fork", "memory", "vma", "interval_tree", "mm")

if os.environ.get("MMCORE_MYPYC", "") not in ("", "0"):
    from mypyc.build import mypycify

    setup(ext_modules=mypycify([f"mmcore/{name}.py" for name in HOT_CORE], opt_level="3"))
else:
    setup()
