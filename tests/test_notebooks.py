"""The lab notebooks (mmcore_contrib.labs.notebooks): one source per lab gives a student
and a teacher version, and every notebook runs clean.

Executing them needs the ``notebooks`` extra (nbformat, nbclient, ipykernel); without it
those tests are skipped, and CI runs them once it has installed the extra."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmcore_contrib.labs import notebooks
from mmcore_contrib.labs.notebooks import LABS, Cell, cells, parse


def test_parse_splits_cells_and_keeps_tags() -> None:
    """``# %%`` starts code, ``# %% [markdown]`` Markdown (comment marks dropped), and a
    trailing tag keeps a cell to one version."""
    text = ("# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n"
            "# %% teacher\nassert x == 1\n# %% [markdown] student\n# *Your answer:*\n")
    assert parse(text) == [Cell("markdown", "# Title\n\ntext"), Cell("code", "x = 1"),
                           Cell("code", "assert x == 1", "teacher"),
                           Cell("markdown", "*Your answer:*", "student")]


def test_parse_rejects_a_malformed_marker_naming_the_line() -> None:
    """A typo in a tag is caught, not silently put in both versions."""
    with pytest.raises(ValueError, match=r"^lab:3: a cell marker"):
        parse("# %%\nx = 1\n# %% techer\n")


@pytest.mark.parametrize("name", LABS)
def test_teacher_version_is_student_version_plus_answers(name: str) -> None:
    """Both versions share every untagged cell in order; the teacher version adds answer
    cells that check themselves (an assert), the student version only answer spaces."""
    student, teacher = cells(name), cells(name, teacher=True)
    common = [c for c in student if not c.tag]
    assert common == [c for c in teacher if not c.tag] and common
    answers = [c for c in teacher if c.tag == "teacher"]
    assert any(c.kind == "code" and "assert" in c.source for c in answers)
    assert all(c.tag != "teacher" for c in student)
    assert all(c.tag != "student" for c in teacher)


def test_build_without_nbformat_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nbformat, building says which extra to install."""
    import sys
    monkeypatch.setitem(sys.modules, "nbformat", None)
    monkeypatch.setitem(sys.modules, "nbformat.v4", None)
    with pytest.raises(ImportError, match=r"mmcore-sim\[notebooks\]"):
        notebooks.build("lab1_cow_and_rmap")


def test_unknown_lab_names_the_labs() -> None:
    """A wrong name lists the right ones."""
    with pytest.raises(ValueError, match="lab1_cow_and_rmap"):
        cells("lab9")


def test_every_lab_source_is_shipped() -> None:
    """Each lab has its source, and no stray source is left out of LABS."""
    assert sorted(p.stem for p in notebooks.SOURCES.glob("*.py")) == sorted(LABS)


def test_write_makes_a_valid_notebook(tmp_path: Path) -> None:
    """write() gives a valid nbformat 4 file named after the lab and version."""
    nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed")
    path = notebooks.write("lab1_cow_and_rmap", tmp_path, teacher=True)
    assert path.name == "lab1_cow_and_rmap_teacher.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "teacher version" in nb.cells[0].source
    assert len(nb.cells) == 1 + len(cells("lab1_cow_and_rmap", teacher=True))
    assert json.loads(path.read_text())["nbformat"] == 4


def test_main_writes_every_student_notebook(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The command line writes every lab by default and prints their paths."""
    pytest.importorskip("nbformat", reason="the notebooks extra is not installed")
    assert notebooks.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.ipynb" for n in LABS)
    assert notebooks.main(["nope", "--out", str(tmp_path)]) == 2
    assert "no lab notebook 'nope'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("teacher", [False, True], ids=["student", "teacher"])
@pytest.mark.parametrize("name", LABS)
def test_notebook_runs_clean(name: str, teacher: bool, tmp_path: Path) -> None:
    """Every notebook executes without an error in a fresh kernel; in a teacher version
    that includes every answer's assert."""
    nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed")
    pytest.importorskip("ipykernel", reason="the notebooks extra is not installed")
    nb = notebooks.build(name, teacher)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")


def test_run_in_a_terminal_prints_text_and_cell_results() -> None:
    """run(): Markdown as text, a cell's last expression shown as IPython would (the
    mmcore display tables); the student version has no answers, the teacher's does and
    its asserts pass."""
    shown: list[str] = []
    notebooks.run("lab3_mremap_after_fork", out=shown.append)
    text = "\n".join(shown)
    assert text.startswith("# Lab 3: mremap after fork")
    assert "WalkResult of pfn 2" in text and "0x10101000" in text
    assert "**Answer:**" not in text
    shown.clear()
    notebooks.run("lab3_mremap_after_fork", teacher=True, out=shown.append)
    assert any(s.startswith("**Answer:** anonmm + unshare copies the 7 pages") for s in shown)


def test_a_notebook_only_result_is_named_not_dumped() -> None:
    """A long repr (a widget) prints as one line saying to open the notebook."""
    class Widget:
        def __repr__(self) -> str:
            return "VBox(" + "x" * 1000 + ")"
    assert notebooks._shown(Widget()) == (
        "(Widget: a notebook display; open the notebook to use it)")
    assert notebooks._shown(None) is None and notebooks._shown(3) == "3"


def test_main_run_takes_one_lab(capsys: pytest.CaptureFixture[str]) -> None:
    """--run with two names is an error, one line."""
    assert notebooks.main(["--run", "lab1_cow_and_rmap", "lab2_reclaim"]) == 2
    assert capsys.readouterr().err == "error: --run takes one lab name\n"
