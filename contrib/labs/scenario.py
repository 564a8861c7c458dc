"""A tiny scenario language for lab exercises: steps that run on a Machine and print as
the Python a student would type.

Addresses are page numbers above ``BASE`` (``BASE + 2 * PAGE`` is page 2), processes are
named ``p`` (the first one) and ``c1``, ``c2``... (children), so a question reads like a
short program and the same steps drive the simulator that computes the answer::

    >>> s = Scenario("anon_vma_chain")
    >>> s.run(Step("p", "mmap", page=0, npages=4, prot=RW))
    >>> s.run(Step("p", "write", page=1, data="A"))
    >>> s.run(Step("p", "fork", child="c1"))
    >>> print(s.code())  # doctest: +NORMALIZE_WHITESPACE
    m = Machine(rmap="anon_vma_chain")
    p = m.spawn()
    p.mmap(BASE + 0 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.write(BASE + 1 * PAGE, b'A')
    c1 = p.fork()
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
)
from mmcore.flagnames import prot_expr
from mmcore.plugins import plugin_info, plugins_of_kind

#: Page 0 of every exercise (well above vm.mmap_min_addr, far from top-down mmaps).
BASE = 0x10000000
PAGE = 4096
RW = PROT_READ | PROT_WRITE
PRIVATE_ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED

#: ``PROT_READ | PROT_WRITE`` for 3, ``PROT_NONE`` for 0: the formatter the conformance
#: kit's reproducers use too.
prot_text = prot_expr


def perms_text(prot: int) -> str:
    """The maps permission string of a private mapping with ``prot`` (``rw-p``)."""
    return (("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-")
            + "-p")


@dataclass(frozen=True)
class Step:
    """One line of a scenario. ``call`` is ``mmap``, ``mprotect``, ``munmap``, ``mremap``
    (move to ``new_page``), ``write`` (``data``), ``read``, ``fork`` (into ``child``) or
    ``exit``; ``page``/``npages`` count pages from :data:`BASE`."""

    proc: str
    call: str
    page: int = 0
    npages: int = 1
    prot: int = RW
    data: str = ""
    child: str = ""
    new_page: int = 0

    def code(self) -> str:
        """The step as Python (names ``BASE``, ``PAGE`` and the mmcore constants)."""
        at = f"BASE + {self.page} * PAGE"
        size = f"{self.npages} * PAGE"
        if self.call == "mmap":
            return (f"{self.proc}.mmap({at}, {size}, {prot_text(self.prot)}, "
                    "MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)")
        if self.call == "mprotect":
            return f"{self.proc}.mprotect({at}, {size}, {prot_text(self.prot)})"
        if self.call == "munmap":
            return f"{self.proc}.munmap({at}, {size})"
        if self.call == "mremap":
            return (f"{self.proc}.mremap({at}, {size}, {size}, MREMAP_MAYMOVE | MREMAP_FIXED, "
                    f"BASE + {self.new_page} * PAGE)")
        if self.call == "write":
            return f"{self.proc}.write({at}, {self.data.encode()!r})"
        if self.call == "read":
            return f"{self.proc}.read({at}, 1)"
        if self.call == "fork":
            return f"{self.child} = {self.proc}.fork()"
        if self.call == "exit":
            return f"{self.proc}.exit()"
        raise ValueError(f"unknown step {self.call!r}")


def needed_policy(rmap: str | type) -> str | None:
    """The mremap policy a scheme needs (anonmm needs ``unshare``), or None."""
    from mmcore.plugins import resolve
    needs = plugin_info(resolve(rmap, "rmap")).needs
    if not needs:
        return None
    for name, cls in plugins_of_kind("mremap_policy").items():
        if needs <= plugin_info(cls).provides:
            return name
    return None


@dataclass
class Scenario:
    """A Machine, the named processes and the steps run so far."""

    rmap: str | type = "anon_vma_chain"
    machine: Machine = field(init=False)
    procs: dict[str, Process] = field(init=False, default_factory=dict)
    steps: list[Step] = field(init=False, default_factory=list)
    policy: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.policy = needed_policy(self.rmap)
        self.machine = Machine(rmap=self.rmap, mremap_policy=self.policy)
        self.procs["p"] = self.machine.spawn()

    @property
    def p(self) -> Process:
        """The first process."""
        return self.procs["p"]

    def run(self, step: Step) -> None:
        """Execute one step (recorded even if it raises, so the code shows the culprit)."""
        self.steps.append(step)
        proc = self.procs[step.proc]
        at, size = BASE + step.page * PAGE, step.npages * PAGE
        if step.call == "mmap":
            proc.mmap(at, size, step.prot, PRIVATE_ANON)
        elif step.call == "mprotect":
            proc.mprotect(at, size, step.prot)
        elif step.call == "munmap":
            proc.munmap(at, size)
        elif step.call == "mremap":
            proc.mremap(at, size, size, MREMAP_MAYMOVE | MREMAP_FIXED,
                        BASE + step.new_page * PAGE)
        elif step.call == "write":
            proc.write(at, step.data.encode())
        elif step.call == "read":
            proc.read(at, 1)
        elif step.call == "fork":
            self.procs[step.child] = proc.fork()
        elif step.call == "exit":
            proc.exit()
        else:
            raise ValueError(f"unknown step {step.call!r}")

    def run_all(self, steps: list[Step]) -> None:
        """Execute several steps in order."""
        for step in steps:
            self.run(step)

    def name_of(self, pid: int) -> str:
        """The scenario name (``p``, ``c1``...) of a pid."""
        for name, proc in self.procs.items():
            if proc.pid == pid:
                return name
        return f"pid{pid}"

    def code(self) -> str:
        """The whole scenario as a runnable-looking Python snippet."""
        rmap = f'"{self.rmap}"' if isinstance(self.rmap, str) else self.rmap.__name__
        args = f"rmap={rmap}" + (f', mremap_policy="{self.policy}"' if self.policy else "")
        lines = [f"m = Machine({args})", "p = m.spawn()"]
        lines += [s.code() for s in self.steps]
        return "\n".join(lines)


def header() -> str:
    """The imports and names a scenario's code needs, to paste above it."""
    return ("from mmcore import *\n"
            f"BASE, PAGE = {BASE:#x}, {PAGE}\n")


__all__ = [
    "BASE",
    "PAGE",
    "PRIVATE_ANON",
    "PROT_NONE",
    "RW",
    "Scenario",
    "Step",
    "header",
    "needed_policy",
    "perms_text",
    "prot_text",
]

