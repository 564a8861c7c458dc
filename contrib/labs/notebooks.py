"""The lab notebooks: built from one Python source per lab, in a student and a teacher
version.

Each lab is a Python file in ``notebook_sources/`` beside this module, in the "percent" format
that Jupytext, VS Code and Spyder read: a line ``# %%`` starts a code cell, ``# %%
[markdown]`` a Markdown cell (its lines are comments), and a trailing tag keeps a cell to
one version: ``teacher`` (an answer: the teacher version only) or ``student`` (a space for
the student's answer: the student version only). Untagged cells are in both. So the
teacher version is the student version with the answers filled in, and there is no JSON
twin to keep in step; run as a script, a source runs every cell, answers included.

    python -m mmcore_contrib.labs.notebooks --out labs/            # the student notebooks
    python -m mmcore_contrib.labs.notebooks --teacher --out keys/  # with the answers
    python -m mmcore_contrib.labs.notebooks lab2_reclaim --out .   # one lab
    python -m mmcore_contrib.labs.notebooks --run lab3_mremap_after_fork --pause  # no Jupyter
    python -m mmcore_contrib.labs.notebooks --run lab1_cow_and_rmap --dot out/    # + pictures

Building needs ``nbformat`` (the ``notebooks`` extra: ``pip install
'mmcore-sim[notebooks]'``, which also brings nbclient and ipykernel to run them);
:func:`cells` and :func:`run` (a lab in a terminal) do not. The answer cells check their
answers with ``assert`` against the simulator, so running a teacher notebook (as the test
suite does) proves its answer key.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcore.atomicfile import atomic_open, write_text
from mmcore.viz import DotGraph, GraphvizNotFound, render_png

__all__ = ["LABS", "SOURCES", "Cell", "build", "cells", "main", "parse", "run", "write"]

SOURCES = Path(__file__).resolve().parent / "notebook_sources"

#: The labs by name, with their one-line subject.
LABS: dict[str, str] = {
    "lab1_cow_and_rmap": "copy-on-write after fork, and how each rmap scheme finds a page",
    "lab2_reclaim": "reclaim: the LRU lists, page_referenced, try_to_unmap, walk cost "
                    "under memory pressure",
    "lab3_mremap_after_fork": "mremap after fork: anonmm + unshare against anon_vma, "
                              "page copies counted",
    "lab4_write_a_scheme": "write your own rmap scheme and grade it with the conformance "
                           "kit",
}

_TAGS = ("teacher", "student")


@dataclass(frozen=True)
class Cell:
    """One cell of a lab source: ``kind`` is ``code`` or ``markdown``; ``tag`` is
    ``teacher``, ``student`` or empty (both versions)."""

    kind: str
    source: str
    tag: str = ""


def _source_path(name: str) -> Path:
    if name not in LABS:
        raise ValueError(f"no lab notebook {name!r}; the labs are {', '.join(LABS)}")
    return SOURCES / f"{name}.py"


def parse(text: str, source: str = "lab") -> list[Cell]:
    """The cells of a percent-format source; a malformed marker raises ValueError naming
    ``source`` and the line."""
    found: list[Cell] = []
    kind, tag, body = "", "", list[str]()

    def close() -> None:
        if kind:
            lines = body
            if kind == "markdown":
                lines = [line[2:] if line.startswith("# ") else line.lstrip("#")
                         for line in lines]
            found.append(Cell(kind, "\n".join(lines).strip("\n"), tag))

    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.startswith("# %%"):
            if kind:
                body.append(line)
            continue
        close()
        words = line[4:].split()
        kind = "markdown" if words[:1] == ["[markdown]"] else "code"
        rest = words[1:] if kind == "markdown" else words
        if len(rest) > 1 or (rest and rest[0] not in _TAGS):
            raise ValueError(f"{source}:{lineno}: a cell marker is '# %%' or '# %% "
                             f"[markdown]', then optionally teacher or student; got {line!r}")
        tag, body = (rest[0] if rest else ""), []
    close()
    return found


def cells(name: str, teacher: bool = False) -> list[Cell]:
    """The cells of lab ``name`` in the student or the teacher version."""
    path = _source_path(name)
    skip = "student" if teacher else "teacher"
    return [c for c in parse(path.read_text(), str(path)) if c.tag != skip]


def build(name: str, teacher: bool = False) -> Any:
    """Lab ``name`` as an ``nbformat`` notebook (version 4), ready to write or run."""
    try:
        # Through import_module: nbformat is optional and untyped, so it is used as Any.
        nbf: Any = importlib.import_module("nbformat.v4")
    except ImportError:
        raise ImportError("building lab notebooks needs nbformat: pip install "
                          "'mmcore-sim[notebooks]'") from None
    version = "teacher version, with answers" if teacher else "student version"
    head = nbf.new_markdown_cell(f"*mmcore lab notebook `{name}` ({version}); generated "
                                 "from `mmcore_contrib/labs/notebook_sources/"
                                 f"{name}.py`: edit that file, not this one.*")
    made = [nbf.new_code_cell(c.source) if c.kind == "code" else
            nbf.new_markdown_cell(c.source) for c in cells(name, teacher)]
    nb = nbf.new_notebook(cells=[head, *made])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write(name: str, directory: str | Path, teacher: bool = False) -> Path:
    """Write lab ``name`` to ``directory`` (``NAME.ipynb``, or ``NAME_teacher.ipynb``),
    atomically; returns the path."""
    nb = build(name, teacher)
    nbformat: Any = importlib.import_module("nbformat")
    path = Path(directory) / f"{name}{'_teacher' if teacher else ''}.ipynb"
    with atomic_open(path) as fh:
        nbformat.write(nb, fh)
    return path


class _TextPrinter:
    """What ``_repr_pretty_`` writes to (the part of IPython.lib.pretty it uses)."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def text(self, s: str) -> None:
        self.parts.append(s)


#: A cell result whose repr is longer than this is a notebook-only display (a widget).
_MAX_REPR = 400


def _shown(value: object) -> str | None:
    """What a terminal shows for a cell's last expression, as IPython would print it."""
    if value is None:
        return None
    pretty = getattr(value, "_repr_pretty_", None)
    if pretty is not None:
        printer = _TextPrinter()
        pretty(printer, False)
        return "".join(printer.parts)
    text = repr(value)
    return text if len(text) <= _MAX_REPR else \
        f"({type(value).__name__}: a notebook display; open the notebook to use it)"


def _slug(text: str) -> str:
    """A file-name stem from a picture's title: ``anon objects (anon_vma_chain)`` ->
    ``anon_objects_anon_vma_chain``."""
    return "_".join("".join(c if c.isalnum() else " " for c in text.lower()).split())[:60]


def _save_picture(graph: DotGraph, directory: Path, n: int) -> str:
    """Write a cell's picture as ``NN_TITLE.dot`` in ``directory`` (and ``.png`` when
    Graphviz is installed); returns the line to print."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{n:02d}_{_slug(graph.outline.splitlines()[0])}.dot"
    write_text(path, graph.source)
    try:
        return f"(wrote {path} and {render_png(graph.source, path.with_suffix('.png'))})"
    except GraphvizNotFound:
        return f"(wrote {path}; install Graphviz for a PNG)"


def run(name: str, teacher: bool = False, out: Callable[[str], None] = print,
        pause: bool = False, dot_dir: Path | None = None) -> None:
    """Lab ``name`` in a terminal, no Jupyter needed: Markdown cells print as text, code
    cells run in one namespace, and a cell ending in an expression prints it as IPython
    would (the text tables of :mod:`mmcore.display`, a graph's text outline). With
    ``pause``, wait for Enter after each question, to predict before reading on; with
    ``dot_dir``, also save each graph a cell shows there, numbered in order, as DOT (and
    PNG when Graphviz is installed)."""
    ns: dict[str, Any] = {"__name__": f"lab_{name}"}
    pictures = 0
    for cell in cells(name, teacher):
        if cell.kind == "markdown":
            out(cell.source + "\n")
            if pause and "**Predict" in cell.source:
                input("(your prediction, then Enter) ")
            continue
        tree = ast.parse(cell.source)
        tail = tree.body[-1] if tree.body else None
        last = tree.body.pop() if isinstance(tail, ast.Expr) else None
        exec(compile(tree, f"<{name}>", "exec"), ns)  # the lab's own cells
        if isinstance(last, ast.Expr):
            value = eval(compile(ast.Expression(last.value), f"<{name}>", "eval"), ns)
            shown = _shown(value)
            if shown is not None:
                out(shown + "\n")
            if dot_dir is not None and isinstance(value, DotGraph):
                pictures += 1
                out(_save_picture(value, dot_dir, pictures) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the named labs (all by default) to ``--out``, or ``--run``
    one in the terminal."""
    parser = argparse.ArgumentParser(prog="python -m mmcore_contrib.labs.notebooks",
                                     description="Write the lab notebooks, or run one.")
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(LABS))
    parser.add_argument("--out", type=Path, default=Path("."), help="directory")
    parser.add_argument("--teacher", action="store_true", help="the versions with answers")
    parser.add_argument("--run", action="store_true",
                        help="run the named lab here in the terminal instead")
    parser.add_argument("--pause", action="store_true", help="with --run: stop at questions")
    parser.add_argument("--dot", type=Path, metavar="DIR",
                        help="with --run: also save each picture shown as DOT (and PNG with "
                             "Graphviz) in DIR")
    args = parser.parse_args(argv)
    try:
        if args.run:
            if len(args.names) != 1:
                raise ValueError("--run takes one lab name")
            run(args.names[0], args.teacher, pause=args.pause, dot_dir=args.dot)
            return 0
        for name in args.names or LABS:
            print(write(name, args.out, args.teacher))
    except (ValueError, ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
