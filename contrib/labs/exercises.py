"""OSTEP-style exercises: a seed builds a small random scenario, prints the questions and,
with ``answers=True`` (``--answers`` / ``-c`` on the command line), the answers the
simulator computes for that very scenario. Nothing is hard-coded: the same seed always
gives the same questions and the same answer key, so a teacher can hand out seeds and
grade with :mod:`mmcore_contrib.labs.grader`.

Exercises (``python -m mmcore_contrib.labs.exercises list``):

* ``maps``: after mmap/mprotect/munmap calls, what does /proc/PID/maps show?
* ``splitmerge``: which of those calls split vmas, which merge them, how many are left?
* ``cow``: after a fork and some writes, which pfn does each process map, which ptes are
  writable, what is each page's kpagecount, how many pages were copied?
* ``rmap``: for one page of a fork tree, who maps it, and how many vmas, mms and ptes does
  the rmap walk of scheme X visit?

Usage::

    python -m mmcore_contrib.labs.exercises cow --seed 7            # the questions
    python -m mmcore_contrib.labs.exercises cow --seed 7 --answers  # and the answers
    python -m mmcore_contrib.labs.exercises cow --seed 7 --template > answers.json
    python -m mmcore_contrib.labs.grader answers.json

From Python::

    >>> ex = make("maps", seed=7)
    >>> print(ex.text(answers=True))  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmcore.constants import VM_READ, VM_WRITE
from mmcore.pagetable import pte_pfn, pte_present, pte_write
from mmcore.viz import layout, vmprint

from .scenario import (
    BASE,
    PAGE,
    PROT_NONE,
    RW,
    Scenario,
    Step,
    header,
)

PROT_READ_ONLY = 1
#: Schemes the rmap exercise draws from when none is given.
RMAP_SCHEMES = ("anon_vma_chain", "anon_vma", "anonmm", "pte_chains")


@dataclass
class Question:
    """One question: ``answer`` is computed by the simulator; ``form`` shows how to write
    an answer in the JSON answer file; ``unordered`` lists compare as sets."""

    key: str
    prompt: str
    answer: Any
    form: str
    points: int = 1
    unordered: bool = False


@dataclass
class Exercise:
    """A generated exercise: its scenario, questions and explanatory pictures."""

    name: str
    seed: int
    title: str
    scenario: Scenario
    questions: list[Question]
    #: Pictures and facts shown with the answers (vmprint, layout, walk result...).
    notes: str = ""
    #: Generator options other than the seed (e.g. ``{"rmap": "anonmm"}``).
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def max_points(self) -> int:
        """Total points of the exercise."""
        return sum(q.points for q in self.questions)

    def answer_key(self) -> dict[str, Any]:
        """``{question key: answer}``, as JSON-ready values."""
        return {q.key: q.answer for q in self.questions}

    def template(self) -> dict[str, Any]:
        """A blank answer file for this exercise (fill in the nulls)."""
        out: dict[str, Any] = {"exercise": self.name, "seed": self.seed}
        if self.options:
            out["options"] = self.options
        out["answers"] = {q.key: None for q in self.questions}
        return out

    def text(self, answers: bool = False) -> str:
        """The exercise as printed: scenario code, questions and (optionally) answers."""
        code = header() + self.scenario.code()
        out = [f"Exercise {self.name}, seed {self.seed}: {self.title}", ""]
        out += ["    " + line for line in code.splitlines()]
        out.append("")
        for i, q in enumerate(self.questions, 1):
            pts = f"{q.points} point{'s' * (q.points != 1)}"
            out.append(f"Q{i} [{q.key}, {pts}] {q.prompt}")
            out.append(f"    answer as: {q.form}")
            if answers:
                out.append(f"    ANSWER: {json.dumps(q.answer)}")
            out.append("")
        if answers and self.notes:
            out.append("Why (what the simulator shows):")
            out += ["    " + line if line else "" for line in self.notes.splitlines()]
        elif not answers:
            out.append(f"(run again with --answers to see the answers for seed {self.seed})")
        return "\n".join(out).rstrip() + "\n"


# --- helpers -------------------------------------------------------------------------


def _prot_of(flags: int) -> int:
    return (1 if flags & VM_READ else 0) | (2 if flags & VM_WRITE else 0)


def _page_span(s: Scenario) -> list[tuple[int, int, int]]:
    """The first process's vmas as (first page, end page, prot), pages from BASE."""
    return [((v.start - BASE) // PAGE, (v.end - BASE) // PAGE, _prot_of(v.flags))
            for v in s.p.vmas()]


def _vma_op(rng: random.Random, s: Scenario, npages: int) -> Step:
    """A random mprotect, munmap or mmap that is valid for the current layout."""
    spans = _page_span(s)
    covered = {pg for a, b, _ in spans for pg in range(a, b)}
    holes = [pg for pg in range(npages) if pg not in covered]
    prots = (PROT_NONE, PROT_READ_ONLY, RW)
    roll = rng.random()
    if holes and roll < 0.25:
        first = rng.choice(holes)
        last = first
        while last + 1 in holes and last + 1 - first < 3:
            last += 1
        return Step("p", "mmap", page=first, npages=last - first + 1, prot=rng.choice(prots))
    a, b, prot = rng.choice(spans)
    if roll < 0.45 and len(spans) > 1:
        # Give a whole vma its neighbour's protection: a merge candidate.
        i = spans.index((a, b, prot))
        neighbour = spans[i - 1] if i > 0 else spans[i + 1]
        if neighbour[2] != prot:
            return Step("p", "mprotect", page=a, npages=b - a, prot=neighbour[2])
    first = rng.randrange(a, b)
    last = rng.randrange(first, b)
    if roll < 0.7 or len(covered) - (last - first + 1) < 2:
        return Step("p", "mprotect", page=first, npages=last - first + 1,
                    prot=rng.choice([x for x in prots if x != prot]))
    return Step("p", "munmap", page=first, npages=last - first + 1)


def _pairs(s: Scenario, npages: int) -> list[tuple[str, int]]:
    """Every (process name, page) pair, in a stable order."""
    return [(name, pg) for name in s.procs for pg in range(npages)]


def _maps_lines(s: Scenario) -> list[str]:
    return [f"{e.start:x}-{e.end:x} {e.perms}" for e in s.p.maps()]


# --- the exercises -------------------------------------------------------------------


def maps_exercise(seed: int, rmap: str = "anon_vma_chain") -> Exercise:
    """/proc/PID/maps after a few mmap, mprotect and munmap calls on one region."""
    rng = random.Random(seed)
    s = Scenario(rmap)
    npages = rng.randint(6, 10)
    s.run(Step("p", "mmap", page=0, npages=npages, prot=RW))
    for _ in range(rng.randint(2, 4)):
        s.run(_vma_op(rng, s, npages))
    lines = _maps_lines(s)
    questions = [
        Question("maps", "Which lines does p.maps_text() print? Give the address range and "
                 "the permissions of each line, in order.", lines,
                 '["10000000-10002000 rw-p", "10002000-10003000 r--p", ...]', points=3),
        Question("map_count", "How many vmas does p have (mm->map_count)?", s.p.mm.map_count,
                 "an integer"),
    ]
    notes = f"p.maps_text():\n{s.p.maps_text()}\nviz.layout(p):\n{layout(s.p)}"
    return Exercise("maps", seed, "/proc/PID/maps after mmap, mprotect and munmap", s,
                    questions, notes, _options(rmap, "anon_vma_chain"))


def splitmerge_exercise(seed: int, rmap: str = "anon_vma_chain") -> Exercise:
    """Which calls split vmas, which merge them, and how many vmas each leaves."""
    rng = random.Random(seed)
    s = Scenario(rmap)
    npages = rng.randint(6, 10)
    s.run(Step("p", "mmap", page=0, npages=npages, prot=RW))
    if rng.random() < 0.5:
        s.run(Step("p", "write", page=rng.randrange(npages), data="x"))
    questions = []
    pictures = [f"after the setup:\n{layout(s.p)}"]
    counters = s.machine.counters
    for i in range(1, rng.randint(3, 5) + 1):
        step = _vma_op(rng, s, npages)
        splits, merges = counters.vma_splits, counters.vma_merges
        s.run(step)
        result = {"splits": counters.vma_splits - splits,
                  "merges": counters.vma_merges - merges, "vmas": s.p.mm.map_count}
        questions.append(Question(
            f"op{i}", f"Call {i}, `{step.code()}`: how many vma splits and merges does it "
            "do, and how many vmas does p have afterwards?", result,
            '{"splits": 0, "merges": 1, "vmas": 2}'))
        pictures.append(f"after call {i}:\n{layout(s.p)}")
    return Exercise("splitmerge", seed, "which calls split or merge vmas", s, questions,
                    "\n".join(pictures), _options(rmap, "anon_vma_chain"))


def cow_exercise(seed: int, rmap: str = "anon_vma_chain") -> Exercise:
    """pfns, writable ptes, kpagecount and COW copies after a fork and some writes."""
    rng = random.Random(seed)
    s = Scenario(rmap)
    npages = rng.randint(3, 5)
    s.run(Step("p", "mmap", page=0, npages=npages, prot=RW))
    written = sorted(rng.sample(range(npages), rng.randint(1, npages - 1)))
    for pg in written:
        s.run(Step("p", "write", page=pg, data=chr(ord("a") + pg)))
    untouched = [pg for pg in range(npages) if pg not in written]
    if untouched and rng.random() < 0.6:
        s.run(Step("p", "read", page=rng.choice(untouched)))
    s.run(Step("p", "fork", child="c1"))
    if rng.random() < 0.5:
        s.run(Step(rng.choice(["p", "c1"]), "fork", child="c2"))
    copies_before = s.machine.counters.fault_cow_copy
    for who, pg in rng.sample(_pairs(s, npages), rng.randint(2, 4)):
        s.run(Step(who, "write", page=pg, data=who.upper()))
    pfns: dict[str, list[int | None]] = {}
    writable: dict[str, list[bool | None]] = {}
    for name, proc in s.procs.items():
        ptes = [proc.mm.pgtable.entry((BASE >> 12) + pg) for pg in range(npages)]
        pfns[name] = [pte_pfn(t) if pte_present(t) else None for t in ptes]
        writable[name] = [pte_write(t) if pte_present(t) else None for t in ptes]
    used = sorted({f for row in pfns.values() for f in row if f})
    counts = {str(f): s.machine.kpagecount(f) for f in used}
    copies = s.machine.counters.fault_cow_copy - copies_before
    procs = ", ".join(s.procs)
    questions = [
        Question("pfns", f"For each process ({procs}) and each page 0..{npages - 1}: which "
                 "pfn does its pte map? (null: no pte; pfn 0 is the shared zero page; "
                 "frames are handed out 1, 2, 3... and a freed frame is reused first)",
                 pfns, '{"p": [1, 2, null], "c1": [3, 2, null]}', points=3),
        Question("writable", "Which of those ptes are writable (pte_write)?", writable,
                 '{"p": [true, false, null], "c1": [true, false, null]}', points=2),
        Question("kpagecount", "What does /proc/kpagecount report for each pfn above 0 "
                 "that is mapped?", counts, '{"1": 1, "2": 2}', points=2),
        Question("copies", "How many page copies (COW breaks that copied the page) did the "
                 "writes after the fork cause?", copies, "an integer"),
    ]
    notes = "\n".join(f"{name}: {vmprint(proc)}" for name, proc in s.procs.items())
    return Exercise("cow", seed, "copy-on-write after fork", s, questions, notes,
                    _options(rmap, "anon_vma_chain"))


def rmap_exercise(seed: int, rmap: str | None = None) -> Exercise:
    """Who maps one page of a fork tree, and what the scheme's rmap walk visits."""
    rng = random.Random(seed)
    scheme = rmap or rng.choice(RMAP_SCHEMES)
    s = Scenario(scheme)
    npages = 4
    s.run(Step("p", "mmap", page=0, npages=npages, prot=RW))
    for pg in range(npages):
        s.run(Step("p", "write", page=pg, data="p"))
    if rng.random() < 0.5:
        s.run(Step("p", "mprotect", page=rng.randrange(npages), prot=PROT_READ_ONLY))
    for i in range(1, rng.randint(2, 3) + 1):
        s.run(Step(rng.choice(sorted(s.procs)), "fork", child=f"c{i}"))
    for name, pg in rng.sample(_pairs(s, npages), rng.randint(1, 3)):
        vma = s.procs[name].mm.vmas.lookup(BASE + pg * PAGE)
        if vma is not None and vma.flags & VM_WRITE:
            s.run(Step(name, "write", page=pg, data=name))
    who, pg = rng.choice(sorted(s.procs)), rng.randrange(npages)
    pfn = s.procs[who].pagemap(BASE + pg * PAGE).pfn
    truth = sorted({s.name_of(pid) for pid, _ in s.machine.rmap_truth(pfn)})
    walk = s.machine.rmap_walk(pfn)
    found = sorted({s.name_of(pid) for pid, _ in walk.mappings})
    c = walk.cost
    target = f"the page {who} maps at BASE + {pg} * PAGE (pfn {pfn})"
    questions = [
        Question("mappers", f"Which processes map {target}?", truth, '["p", "c1"]',
                 unordered=True),
        Question("vmas_visited", f"m.rmap_walk({pfn}) under {scheme}: how many vmas does the "
                 "walk visit (cost.vmas_visited)?", c.vmas_visited, "an integer"),
        Question("mms_visited", "How many mms does it visit (cost.mms_visited)?",
                 c.mms_visited, "an integer"),
        Question("ptes_probed", "How many page-table entries does the core probe "
                 "(cost.ptes_probed; it stops once mapcount mappings are found)?",
                 c.ptes_probed, "an integer"),
    ]
    pids = ", ".join(f"{name} is pid {proc.pid}" for name, proc in s.procs.items())
    notes = (f"walk found {found} with {c}\n{pids}\n{layout(*s.procs.values())}"
             f"Draw it: print(mmcore.viz.rmap_dot(m, {pfn}))")
    return Exercise("rmap", seed, f"what the {scheme} rmap walk visits", s, questions,
                    notes, {"rmap": rmap} if rmap else {})


def _options(rmap: str, default: str) -> dict[str, Any]:
    return {} if rmap == default else {"rmap": rmap}


#: Every exercise by name: (generator, one-line description).
EXERCISES: dict[str, tuple[Callable[..., Exercise], str]] = {
    "maps": (maps_exercise, "/proc/PID/maps after mmap, mprotect and munmap"),
    "splitmerge": (splitmerge_exercise, "which calls split or merge vmas"),
    "cow": (cow_exercise, "pfns, writable ptes, kpagecount and copies after fork"),
    "rmap": (rmap_exercise, "who maps a page and what the rmap walk visits, per scheme"),
}


def make(name: str, seed: int, **options: Any) -> Exercise:
    """Build exercise ``name`` for ``seed`` (options: ``rmap``, a scheme name)."""
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}: choose one of: {', '.join(EXERCISES)}")
    generator = EXERCISES[name][0]
    return generator(seed, **{k: v for k, v in options.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmcore_contrib.labs.exercises EXERCISE --seed N [--answers]``."""
    parser = argparse.ArgumentParser(
        prog="python -m mmcore_contrib.labs.exercises",
        description="Seeded VM exercises; --answers shows what the simulator computes.")
    parser.add_argument("exercise", choices=[*EXERCISES, "list"])
    parser.add_argument("-s", "--seed", type=int, default=0)
    parser.add_argument("-c", "--answers", action="store_true", help="show the answers")
    parser.add_argument("--rmap", help="rmap scheme (default: anon_vma_chain; rmap: by seed)")
    parser.add_argument("--json", action="store_true", help="print the answer key as JSON")
    parser.add_argument("--template", action="store_true",
                        help="print a blank JSON answer file for the grader")
    args = parser.parse_args(argv)
    if args.exercise == "list":
        for name, (_, summary) in EXERCISES.items():
            print(f"{name:12} {summary}")
        return 0
    ex = make(args.exercise, args.seed, rmap=args.rmap)
    if args.template:
        print(json.dumps(ex.template(), indent=2))
    elif args.json:
        key = ex.template()
        key["answers"] = ex.answer_key()
        print(json.dumps(key, indent=2))
    else:
        sys.stdout.write(ex.text(answers=args.answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
