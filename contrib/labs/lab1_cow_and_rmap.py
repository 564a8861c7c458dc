"""Lab 1, copy-on-write and reverse mapping, in a terminal (no notebook needed).

The lab has one source, the lab 1 notebook's (``notebook_sources/lab1_cow_and_rmap.py``,
see :mod:`.notebooks`); this command runs it cell by cell, as
``python -m mmcore_contrib.labs.notebooks --run lab1_cow_and_rmap`` does::

    python -m mmcore_contrib.labs.lab1_cow_and_rmap            # the whole walk-through
    python -m mmcore_contrib.labs.lab1_cow_and_rmap --pause    # wait for Enter per question
    python -m mmcore_contrib.labs.lab1_cow_and_rmap --answers  # the teacher version
    python -m mmcore_contrib.labs.lab1_cow_and_rmap --dot out/ # also write the DOT graphs
                                                               # (and PNGs if Graphviz is there)

Each step asks a **Predict** question before the output that answers it: stop there and
predict, then compare. The lab ends with seeded exercises to try on your own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .notebooks import run

#: The lab's name among :data:`.notebooks.LABS`.
NAME = "lab1_cow_and_rmap"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``--pause``, ``--answers``, ``--dot DIR``."""
    parser = argparse.ArgumentParser(prog=f"python -m mmcore_contrib.labs.{NAME}",
                                     description="Lab 1: copy-on-write and rmap.")
    parser.add_argument("--pause", action="store_true", help="wait for Enter at each question")
    parser.add_argument("--answers", action="store_true",
                        help="the teacher version: each answer after its question")
    parser.add_argument("--dot", type=Path, metavar="DIR", help="directory for the DOT graphs")
    args = parser.parse_args(argv)
    try:
        run(NAME, teacher=args.answers, pause=args.pause, dot_dir=args.dot)
    except OSError as exc:  # --dot into a directory that cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
