"""``mmsim lab notebook`` and ``mmsim lab export``: the notebooks and the step-through from
the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmcore_contrib.labs.notebooks import LABS
from mmcore_contrib.labs.stepthrough import EXTERNAL

from mmcore.cli import main


def test_lab_notebook_writes_every_lab_and_the_teacher_version(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without NAME every lab is written; --teacher writes NAME_teacher.ipynb, which has
    more cells (the answers) than the student version."""
    pytest.importorskip("nbformat", reason="needs the notebooks extra")
    assert main(["lab", "notebook", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.ipynb" for n in LABS)
    assert main(["lab", "notebook", "lab1_cow_and_rmap", "--teacher",
                 "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(tmp_path / "lab1_cow_and_rmap_teacher.ipynb")
    student = json.loads((tmp_path / "lab1_cow_and_rmap.ipynb").read_text())
    teacher = json.loads((tmp_path / "lab1_cow_and_rmap_teacher.ipynb").read_text())
    assert len(teacher["cells"]) > len(student["cells"])


def test_lab_notebook_unknown_name_is_a_usage_error(tmp_path: Path) -> None:
    """An unknown lab is exit 2, and nothing is written."""
    assert main(["lab", "notebook", "lab9", "--out", str(tmp_path)]) == 2
    assert not list(tmp_path.iterdir())


def test_lab_export_writes_one_offline_page_per_run(tmp_path: Path) -> None:
    """Two --rmap give one self-contained page with both schemes' steps."""
    out = tmp_path / "steps.html"
    assert main(["lab", "export", str(out), "--rmap", "anon_vma", "--rmap", "anonmm"]) == 0
    page = out.read_text()
    assert "anon_vma" in page and "anonmm" in page
    assert not EXTERNAL.search(page)


def test_lab_export_unknown_scheme_is_a_usage_error(tmp_path: Path) -> None:
    """An unknown scheme is exit 2, and no file is left behind."""
    assert main(["lab", "export", str(tmp_path / "x.html"), "--rmap", "bogus"]) == 2
    assert not list(tmp_path.iterdir())


def test_lab_export_watch_picks_the_pages_whose_walk_is_shown(tmp_path: Path) -> None:
    """--watch NAME@ADDR (repeatable) lists those pages first in the page's walk chooser
    (every other mapped page follows); a malformed one is exit 2 and writes nothing."""
    out = tmp_path / "w.html"
    assert main(["lab", "export", str(out), "--watch", "p@0x10001000",
                 "--watch", "c@268439552"]) == 0
    assert ('<select id="watch"><option value="0">p @ 0x10001000</option>'
            '<option value="1">c @ 0x10001000</option><option value="2">p @ 0x10000000'
            '</option>') in out.read_text()
    assert main(["lab", "export", str(tmp_path / "x.html"), "--watch", "p@zz"]) == 2
    assert not (tmp_path / "x.html").exists()
