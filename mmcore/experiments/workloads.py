"""Built-in workloads: seeded, parameterised generators of :class:`~mmcore.experiments.ops.Op`.

Each workload is a generator function ``gen(params, rng) -> Iterator[Op]`` registered with
:func:`workload` together with a dataclass of parameters (every field has a default). The
generator's docstring says what the workload models and which scheme it is expected to hurt
(rmap-reference §7); ``mmsim workloads`` prints it.

Workloads place every mapping at a fixed address (``MAP_FIXED``), so a stream of ops is plain
data that replays identically on every scheme. Trace pids are the workload's own: pid 1 is
the first process, children are numbered as they are forked.

>>> from mmcore.experiments.workloads import generate
>>> ops = list(generate("forking-server", {"pages": 4, "children": 2}, seed=0))
>>> [o.op for o in ops][:4]
['spawn', 'mmap', 'write', 'fork']
"""

import functools
import os
import random
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar, runtime_checkable

from dataclasses_json import DataClassJsonMixin
from marshmallow import ValidationError

from ..constants import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PAGE_SIZE,
    PROT_READ,
    PROT_WRITE,
)
from ..errors import ConfigError
from .ops import Op

#: Where workloads put their first mapping: far from brk and the mmap base.
BASE = 0x1000_0000
#: Distance between independent regions of one workload (1 GiB).
REGION_STRIDE = 0x4000_0000
RW = PROT_READ | PROT_WRITE
ANON_FIXED = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
#: The descriptor number the file workloads open their file at (each process's own).
FILE_FD = 3

P = TypeVar("P", bound=DataClassJsonMixin)
Generator = Callable[[Any, random.Random], Iterator[Op]]


@dataclass(frozen=True)
class Workload:
    """A registered workload: its generator, its parameter class and what it is for.

    ``strict`` is False for workloads whose ops may legitimately fail (random-mix): the
    runner then counts errors instead of stopping.
    """

    name: str
    params: type[DataClassJsonMixin]
    generator: Generator
    hurts: str
    strict: bool = True

    @property
    def doc(self) -> str:
        """The generator's docstring: what the workload models."""
        return (self.generator.__doc__ or "").strip()

    @property
    def summary(self) -> str:
        """The first line of the docstring."""
        return self.doc.splitlines()[0] if self.doc else ""

    def defaults(self) -> dict[str, Any]:
        """The default parameters as a plain dict."""
        return self.params().to_dict()


#: name -> Workload, in registration order.
REGISTRY: dict[str, Workload] = {}

#: Workloads of rmap-reference §7 that need features the core does not model yet, with
#: the reason (asking for one is a ConfigError saying it, rather than a fake). Empty
#: since file mappings landed; KSM (§7.10) is not a workload yet.
UNAVAILABLE: dict[str, str] = {}


@runtime_checkable
class MachineParams(Protocol):
    """Parameters that size the simulated machine: the runner builds the Machine with
    what ``machine()`` returns (``ram_pages``, ``swap_pages``) instead of its defaults."""

    def machine(self) -> dict[str, int]:
        """Machine keyword arguments set by the workload's parameters."""
        ...


def workload(name: str, params: type[DataClassJsonMixin], hurts: str,
             strict: bool = True) -> Callable[[Generator], Generator]:
    """Register a generator under ``name`` with its parameter dataclass."""
    def register(gen: Generator) -> Generator:
        if name in REGISTRY:
            raise ValueError(f"workload {name!r} registered twice")
        REGISTRY[name] = Workload(name, params, gen, hurts, strict)
        return gen
    return register


def get(name: str) -> Workload:
    """The workload called ``name``; ConfigError says why not, or lists the choices."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name in UNAVAILABLE:
        raise ConfigError(f"workload {name!r} is {UNAVAILABLE[name]}")
    raise ConfigError(f"unknown workload {name!r}: choose one of: " + ", ".join(REGISTRY))


def make_params(name: str, values: Mapping[str, Any] | DataClassJsonMixin | None = None
                ) -> DataClassJsonMixin:
    """Validated parameters for workload ``name`` from a dict (strings are converted, as
    given on the command line), an instance, or None for the defaults."""
    w = get(name)
    if values is None:
        return w.params()
    if isinstance(values, w.params):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(f"parameters of {name!r} must be a {w.params.__name__} or a dict")
    try:
        loaded = _schema(w.params).load(dict(values))
    except ValidationError as exc:
        messages: dict[str, Any] = exc.normalized_messages()  # type: ignore[no-untyped-call]
        problems = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}"
                             for k, v in sorted(messages.items()))
        known = ", ".join(f.name for f in fields(w.params))  # type: ignore[arg-type]
        raise ConfigError(f"bad parameter for workload {name!r}: {problems} "
                          f"(parameters: {known})") from None
    assert isinstance(loaded, w.params)
    return loaded


@functools.cache
def _schema(cls: type[DataClassJsonMixin]) -> Any:
    # dataclasses-json builds marshmallow fields with an argument marshmallow 3.x
    # deprecates; the warning is theirs, not the caller's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.schema()


def generate(name: str, params: Mapping[str, Any] | DataClassJsonMixin | None = None,
             seed: int = 0) -> Iterator[Op]:
    """The ops of workload ``name`` with ``params`` (defaults if None) and ``seed``."""
    w = get(name)
    return w.generator(make_params(name, params), random.Random(seed))


def _positive(obj: object, *names: str) -> None:
    for n in names:
        if getattr(obj, n) < 1:
            raise ConfigError(f"{n} must be at least 1, not {getattr(obj, n)}")


def _non_negative(obj: object, *names: str) -> None:
    for n in names:
        if getattr(obj, n) < 0:
            raise ConfigError(f"{n} must not be negative, not {getattr(obj, n)}")


def _mmap(pid: int, addr: int, pages: int, prot: int = RW) -> Op:
    return Op("mmap", pid=pid, addr=addr, length=pages * PAGE_SIZE, prot=prot,
              flags=ANON_FIXED)


def _write(pid: int, addr: int, pages: int, data: str = "") -> Op:
    return Op("write", pid=pid, addr=addr, length=pages * PAGE_SIZE, data=data)


# --- 1. forking server ----------------------------------------------------------------------


@dataclass
class ForkingServerParams(DataClassJsonMixin):
    """``pages`` faulted by the parent in one vma; ``children`` that each COW all of them."""

    pages: int = 256
    children: int = 32

    def __post_init__(self) -> None:
        _positive(self, "pages")
        _non_negative(self, "children")


@workload("forking-server", ForkingServerParams,
          hurts="anon_vma and anonmm: K+1 vmas or mms visited per page (O(N*K^2) in all)")
def forking_server(p: ForkingServerParams, rng: random.Random) -> Iterator[Op]:
    """Rik van Riel's forking server (the AIM7 case behind anon_vma_chain, §7.1).

    The parent faults ``pages`` pages in one vma and forks ``children`` children; each
    child writes every page (a COW copy each); then every anonymous page is reclaimed.
    Expected: pte_chains and anon_vma_chain visit about 1-2 vmas per page; anon_vma and
    anonmm visit up to children+1 per page, so their total walk work grows as N*K^2.
    """
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, p.pages)
    yield _write(1, BASE, p.pages, "parent")
    kids = list(range(2, 2 + p.children))
    for k in kids:
        yield Op("fork", pid=1, child=k)
    for k in kids:
        yield _write(k, BASE, p.pages, f"child{k}")
    yield Op("reclaim")


# --- 2. malloc after fork ---------------------------------------------------------------------


@dataclass
class MallocAfterForkParams(DataClassJsonMixin):
    """``shared_pages`` faulted before the fork; each of ``children`` then maps and faults
    ``private_pages`` of its own. ``reclaim_shared`` also reclaims the shared region."""

    shared_pages: int = 64
    private_pages: int = 64
    children: int = 32
    reclaim_shared: bool = False

    def __post_init__(self) -> None:
        _positive(self, "private_pages", "children")
        _non_negative(self, "shared_pages")


@workload("malloc-after-fork", MallocAfterForkParams,
          hurts="anonmm: every mm of the fork group is a candidate for a child's private page")
def malloc_after_fork(p: MallocAfterForkParams, rng: random.Random) -> Iterator[Op]:
    """Children that allocate after fork: Andrea's objection to anonmm (§7.2).

    The parent faults a region and forks ``children``; each child maps a new private
    region (the same address in every child, as malloc would) and faults it; then the
    children's private pages are reclaimed. Expected: pte_chains, anon_vma and
    anon_vma_chain find each page at the first vma (W = 1); anonmm's group holds every mm,
    so its walk may probe up to children+1 mms per page.
    """
    yield Op("spawn", pid=1)
    if p.shared_pages:
        yield _mmap(1, BASE, p.shared_pages)
        yield _write(1, BASE, p.shared_pages, "parent")
    kids = list(range(2, 2 + p.children))
    for k in kids:
        yield Op("fork", pid=1, child=k)
    heap = BASE + REGION_STRIDE
    for k in kids:
        yield _mmap(k, heap, p.private_pages)
        yield _write(k, heap, p.private_pages, f"malloc{k}")
    for k in kids:
        yield Op("reclaim", pid=k, addr=heap, length=p.private_pages * PAGE_SIZE)
    if p.reclaim_shared:
        yield Op("reclaim")


# --- 3. mremap after fork -------------------------------------------------------------------


@dataclass
class MremapAfterForkParams(DataClassJsonMixin):
    """``pages`` faulted by the parent; ``children`` forked; each child moves the region."""

    pages: int = 128
    children: int = 4

    def __post_init__(self) -> None:
        _positive(self, "pages", "children")


@workload("mremap-after-fork", MremapAfterForkParams,
          hurts="anonmm: page->index is a virtual address, so shared pages must be copied "
                "(unshare policy) or found by a full scan")
def mremap_after_fork(p: MremapAfterForkParams, rng: random.Random) -> Iterator[Op]:
    """mremap of a region still shared with the parent after fork (§7.3).

    The parent faults ``pages`` pages and forks ``children``; each child moves the whole
    region with MREMAP_MAYMOVE|MREMAP_FIXED to another address and reads it back; then
    every anonymous page is reclaimed. Expected: pte_chains, anon_vma and anon_vma_chain
    move the ptes (no copies); anonmm with Linus's unshare fix copies every shared page it
    moves (children * pages copies).
    """
    size = p.pages * PAGE_SIZE
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, p.pages)
    yield _write(1, BASE, p.pages, "before-fork")
    kids = list(range(2, 2 + p.children))
    for k in kids:
        yield Op("fork", pid=1, child=k)
    dest = BASE + REGION_STRIDE
    for k in kids:
        yield Op("mremap", pid=k, addr=BASE, length=size, new_len=size,
                 flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=dest)
        yield Op("read", pid=k, addr=dest, length=size)
    yield Op("reclaim")


# --- 4. mprotect flood ----------------------------------------------------------------------


@dataclass
class MprotectFloodParams(DataClassJsonMixin):
    """``pages`` faulted in one vma; every ``stride``-th page made read-only, splitting the
    vma into about pages/stride*2 pieces."""

    pages: int = 256
    stride: int = 2

    def __post_init__(self) -> None:
        _positive(self, "pages")
        if self.stride < 2:
            raise ConfigError(f"stride must be at least 2, not {self.stride}")


@workload("mprotect-flood", MprotectFloodParams,
          hurts="anon_vma (and AVC before 3.7): every split piece is on the page's list, so "
                "W = O(M) per page")
def mprotect_flood(p: MprotectFloodParams, rng: random.Random) -> Iterator[Op]:
    """A flood of vma splits (§7.4; Andrea's "flood of vma_splits").

    One process faults ``pages`` pages in one vma, then mprotects every ``stride``-th page
    read-only, splitting it into M vmas; every page is reclaimed; then the whole range is
    made read-write again. Expected: anon_vma's list walk visits O(M) vmas per page, an
    interval tree O(log M + 1), pte_chains and anonmm are unaffected. After the restore
    every scheme re-merges the pieces into one vma (same anon_vma, contiguous pgoff).
    """
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, p.pages)
    yield _write(1, BASE, p.pages, "flood")
    for i in range(0, p.pages, p.stride):
        yield Op("mprotect", pid=1, addr=BASE + i * PAGE_SIZE, length=PAGE_SIZE,
                 prot=PROT_READ)
    yield Op("reclaim")
    yield Op("mprotect", pid=1, addr=BASE, length=p.pages * PAGE_SIZE, prot=RW)


# --- 5. deep fork chain ---------------------------------------------------------------------


@dataclass
class DeepForkChainParams(DataClassJsonMixin):
    """``depth`` generations, each faulting ``pages`` pages before forking and exiting."""

    depth: int = 32
    pages: int = 32

    def __post_init__(self) -> None:
        _positive(self, "depth", "pages")


@workload("deep-fork-chain", DeepForkChainParams,
          hurts="anon_vma_chain without reuse: one anon_vma and one more AVC per generation")
def deep_fork_chain(p: DeepForkChainParams, rng: random.Random) -> Iterator[Op]:
    """A chain of generations, each forking its successor and exiting (§7.5).

    Generation 1 maps and faults ``pages`` pages; each generation writes every page (COW
    or reuse), forks the next and exits, to ``depth`` generations; the last one's pages
    are reclaimed. Expected: anon_vma_chain without reuse grows one anon_vma and one AVC
    per generation; with the num_children reuse rule it stays bounded; anon_vma and
    anonmm keep one list or group whose size is the number of live vmas or mms.
    """
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, p.pages)
    pid = 1
    for gen in range(1, p.depth + 1):
        yield _write(pid, BASE, p.pages, f"gen{gen}")
        if gen == p.depth:
            break
        yield Op("fork", pid=pid, child=pid + 1)
        yield Op("exit", pid=pid)
        pid += 1
    yield Op("reclaim", pid=pid)


# --- 6. wide fork ---------------------------------------------------------------------------


@dataclass
class WideForkParams(DataClassJsonMixin):
    """``pages`` faulted by the parent, then ``children`` idle children; ``reclaim``
    reclaims the shared pages at the end (every scheme must visit all K+1 mappings)."""

    pages: int = 256
    children: int = 32
    reclaim: bool = False

    def __post_init__(self) -> None:
        _positive(self, "pages")
        _non_negative(self, "children")


@workload("wide-fork", WideForkParams,
          hurts="pte_chains: fork does O(pages) chain work per child and holds a chain slot "
                "per shared pte")
def wide_fork(p: WideForkParams, rng: random.Random) -> Iterator[Op]:
    """Fork cost and memory with many idle children (§7.6).

    The parent faults ``pages`` pages and forks ``children`` children that touch nothing.
    Expected: pte_chains does O(pages * children) chain work and holds a slot per shared
    pte; anon_vma does O(1) per vma; anon_vma_chain allocates an anon_vma and AVCs per
    vma per child; anonmm one struct per mm.
    """
    yield Op("spawn", pid=1)
    yield _mmap(1, BASE, p.pages)
    yield _write(1, BASE, p.pages, "parent")
    for k in range(2, 2 + p.children):
        yield Op("fork", pid=1, child=k)
    if p.reclaim:
        yield Op("reclaim")


# --- 7. merge churn -------------------------------------------------------------------------


@dataclass
class MergeChurnParams(DataClassJsonMixin):
    """``rounds`` repetitions of the three merge cases, each with regions of ``pages``."""

    rounds: int = 8
    pages: int = 4

    def __post_init__(self) -> None:
        _positive(self, "rounds", "pages")


@workload("merge-churn", MergeChurnParams,
          hurts="anon_vma and anon_vma_chain: merges refused across different anon_vmas "
                "and for vmas cloned from a parent (final vma count)")
def merge_churn(p: MergeChurnParams, rng: random.Random) -> Iterator[Op]:
    """The three merge cases of §7.9, repeated; the result is the final vma count (G).

    Per round, in its own region: (a) hole refill: fault a region, munmap its middle page
    and map it again; (b) mremap unfaulted-to-faulted: move an unfaulted region right
    after a faulted one; (c) the cloned-vma case (LTP vma01): a forked child maps a new
    region adjacent to a vma it inherited and faults both. Expected: pte_chains and anonmm
    never refuse a merge; anon_vma_chain keeps the cloned vma separate (vma01: 3+3 pages,
    not 6).
    """
    n = p.pages
    size = n * PAGE_SIZE
    unit = (n + 4) * PAGE_SIZE  # gaps between the cases keep them from merging together
    yield Op("spawn", pid=1)
    next_pid = 2
    for r in range(p.rounds):
        base = BASE + r * 10 * unit
        # (a) hole refill: AAAA -> AA.A -> AAAA
        a = base
        yield _mmap(1, a, n + 2)
        yield _write(1, a, n + 2, f"a{r}")
        hole = a + (n // 2 + 1) * PAGE_SIZE
        yield Op("munmap", pid=1, addr=hole, length=PAGE_SIZE)
        yield _mmap(1, hole, 1)
        yield _write(1, hole, 1, f"refill{r}")
        # (b) mremap an unfaulted region to just after a faulted one: BBBB + bbbb
        b = base + 2 * unit
        yield _mmap(1, b, n)
        yield _write(1, b, n, f"b{r}")
        src = base + 4 * unit
        yield _mmap(1, src, n)
        yield Op("mremap", pid=1, addr=src, length=size, new_len=size,
                 flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=b + size)
        yield _write(1, b + size, n, f"moved{r}")
        # (c) cloned vma next to a new one in a forked child (LTP vma01)
        c = base + 6 * unit
        yield _mmap(1, c, n)
        yield _write(1, c, n, f"c{r}")
        child = next_pid
        next_pid += 1
        yield Op("fork", pid=1, child=child)
        yield _mmap(child, c + size, n)
        yield _write(child, c, 2 * n, f"child{r}")


# --- 8. random mix --------------------------------------------------------------------------


@dataclass
class RandomMixParams(DataClassJsonMixin):
    """``steps`` random ops over at most ``max_procs`` processes and ``slots`` regions of
    up to ``max_pages`` pages."""

    steps: int = 400
    max_procs: int = 6
    slots: int = 16
    max_pages: int = 16

    def __post_init__(self) -> None:
        _positive(self, "steps", "max_procs", "slots", "max_pages")


@workload("random-mix", RandomMixParams,
          hurts="none in particular: a seeded soak of every op, for regressions and "
                "conformance", strict=False)
def random_mix(p: RandomMixParams, rng: random.Random) -> Iterator[Op]:
    """A seeded random mix of mmap, munmap, mprotect, mremap, writes, forks, exits and
    reclaim.

    Regions live in ``slots`` fixed slots, so addresses are reproducible; some ops fail
    (for example an mremap of a hole) and are counted, not fatal. The same seed always
    gives the same ops.
    """
    slot_size = 4 * p.max_pages * PAGE_SIZE
    alive = [1]
    next_pid = 2
    yield Op("spawn", pid=1)
    kinds = ["mmap", "write", "write", "munmap", "mprotect", "mremap", "fork", "exit",
             "reclaim", "read"]
    for _ in range(p.steps):
        kind = rng.choice(kinds)
        pid = rng.choice(alive)
        slot = BASE + rng.randrange(p.slots) * slot_size
        pages = rng.randint(1, p.max_pages)
        off = rng.randrange(p.max_pages) * PAGE_SIZE
        if kind == "mmap":
            yield _mmap(pid, slot, pages)
        elif kind == "write":
            yield _write(pid, slot + off, rng.randint(1, p.max_pages), f"w{pid}")
        elif kind == "read":
            yield Op("read", pid=pid, addr=slot + off, length=PAGE_SIZE)
        elif kind == "munmap":
            yield Op("munmap", pid=pid, addr=slot + off, length=pages * PAGE_SIZE)
        elif kind == "mprotect":
            prot = rng.choice([PROT_READ, RW])
            yield Op("mprotect", pid=pid, addr=slot + off, length=pages * PAGE_SIZE,
                     prot=prot)
        elif kind == "mremap":
            dest = BASE + rng.randrange(p.slots) * slot_size
            yield Op("mremap", pid=pid, addr=slot, length=pages * PAGE_SIZE,
                     new_len=rng.randint(1, p.max_pages) * PAGE_SIZE,
                     flags=MREMAP_MAYMOVE | MREMAP_FIXED, new_addr=dest + 2 * p.max_pages
                     * PAGE_SIZE)
        elif kind == "fork" and len(alive) < p.max_procs:
            yield Op("fork", pid=pid, child=next_pid)
            alive.append(next_pid)
            next_pid += 1
        elif kind == "exit" and pid != 1:
            yield Op("exit", pid=pid)
            alive.remove(pid)
        elif kind == "reclaim":
            yield Op("reclaim", pid=pid, addr=slot, length=p.max_pages * PAGE_SIZE)
    yield Op("reclaim")


# --- 9. large shared file -------------------------------------------------------------------


def _split(pages: int, parts: int) -> list[tuple[int, int]]:
    """``pages`` split into ``parts`` runs as equal as possible: (first page, pages)."""
    out = []
    first = 0
    for j in range(parts):
        n = pages // parts + (1 if j < pages % parts else 0)
        out.append((first, n))
        first += n
    return out


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted page indices grouped into contiguous runs: (first, count)."""
    out: list[tuple[int, int]] = []
    for i in sorted(indices):
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


@dataclass
class LargeFileParams(DataClassJsonMixin):
    """A file of ``pages`` pages mapped MAP_SHARED by ``procs`` processes, each as
    ``vmas_per_proc`` vmas at distinct file offsets."""

    pages: int = 256
    procs: int = 16
    vmas_per_proc: int = 1

    def __post_init__(self) -> None:
        _positive(self, "pages", "procs", "vmas_per_proc")
        if self.vmas_per_proc > self.pages:
            raise ConfigError(f"vmas_per_proc ({self.vmas_per_proc}) cannot exceed pages "
                              f"({self.pages}): each vma maps at least one page")


@workload("large-file", LargeFileParams,
          hurts="i_mmap_list with many vmas per process: the walk visits every vma of the "
                "file (procs x vmas_per_proc per page); the interval tree only the procs "
                "that cover the page")
def large_file(p: LargeFileParams, rng: random.Random) -> Iterator[Op]:
    """A large file mapped MAP_SHARED by many processes (libc, a database SGA; §7.7).

    A file of ``pages`` pages is mapped MAP_SHARED by ``procs`` processes, each as
    ``vmas_per_proc`` vmas covering consecutive file ranges at separate addresses (a
    one-page gap keeps them from merging); the first process writes a tag into every
    page, every process reads all of them back (checked), then every page of the file is
    reclaimed through the file rmap walk and the first process checks them again.
    Expected: no per-page rmap memory for any scheme (objrmap); W = ``procs`` vmas per
    page with the interval tree (``i_mmap_tree``); the 2.6.6 list (``i_mmap_list``)
    visits the vmas in i_mmap order until the last mapping is found, about procs x
    vmas_per_proc per page, the §7.7 variant with many vmas per process. (File pages
    always go through the file rmap plugin: the 2.6.5 pte_chains cost for file pages,
    P chain slots per page, is not modelled.)
    """
    path = "/large-file"
    parts = _split(p.pages, p.vmas_per_proc)
    stride = (max(n for _, n in parts) + 1) * PAGE_SIZE
    yield Op("create", path=path, length=p.pages * PAGE_SIZE)
    for k in range(1, p.procs + 1):
        yield Op("spawn", pid=k)
        yield Op("open", pid=k, path=path, flags=os.O_RDWR, fd=FILE_FD)
        for j, (first, n) in enumerate(parts):
            yield Op("mmap", pid=k, addr=BASE + j * stride, length=n * PAGE_SIZE, prot=RW,
                     flags=MAP_SHARED | MAP_FIXED, fd=FILE_FD, offset=first * PAGE_SIZE)
        yield Op("close", pid=k, fd=FILE_FD)  # the mappings keep the file open
    for j, (_, n) in enumerate(parts):
        yield _write(1, BASE + j * stride, n, f"part{j}")
    for k in range(1, p.procs + 1):
        for j, (_, n) in enumerate(parts):
            yield _check(k, BASE + j * stride, n, f"part{j}")
    yield Op("reclaim", path=path)
    for j, (_, n) in enumerate(parts):
        yield _check(1, BASE + j * stride, n, f"part{j}")


def _check(pid: int, addr: int, pages: int, data: str) -> Op:
    return Op("read", pid=pid, addr=addr, length=pages * PAGE_SIZE, data=data)


# --- 10. private file with COW --------------------------------------------------------------


@dataclass
class PrivateFileCowParams(DataClassJsonMixin):
    """A file of ``pages`` pages mapped MAP_PRIVATE by ``procs`` processes; each writes
    ``cow_percent`` % of the pages (chosen by the seed), copying them."""

    pages: int = 64
    procs: int = 8
    cow_percent: int = 25

    def __post_init__(self) -> None:
        _positive(self, "pages", "procs")
        if not 0 <= self.cow_percent <= 100:
            raise ConfigError(f"cow_percent must be 0 to 100, not {self.cow_percent}")


@workload("private-file-cow", PrivateFileCowParams,
          hurts="every file rmap: the i_mmap walk probes the vmas whose page was replaced "
                "by a private copy (wasted probes grow with the COWed vmas)")
def private_file_cow(p: PrivateFileCowParams, rng: random.Random) -> Iterator[Op]:
    """A MAP_PRIVATE file mapping written by many processes (a library's data; §7.8).

    ``procs`` processes each map a file of ``pages`` pages MAP_PRIVATE and read every
    page (page-cache pages, shared by all); each then writes ``cow_percent`` % of the
    pages, chosen by the seed, so those become private anonymous copies; every mapped
    page of the file is reclaimed, then every anonymous page; finally each process checks
    its copies and the file pages it did not write. Expected: the file walk still
    visits the vmas of processes that copied the page and wastes a probe on each (until
    the walk has found every remaining mapping), so wasted probes grow with the number
    of COWed vmas; the copies are found through the anon scheme (every scheme finds
    them: none is missed).
    """
    path = "/private-file"
    pattern = "original"
    size = p.pages * PAGE_SIZE
    cows = round(p.pages * p.cow_percent / 100)
    yield Op("create", path=path, length=size, data=pattern)
    for k in range(1, p.procs + 1):
        yield Op("spawn", pid=k)
        yield Op("open", pid=k, path=path, flags=os.O_RDONLY, fd=FILE_FD)
        yield Op("mmap", pid=k, addr=BASE, length=size, prot=RW,
                 flags=MAP_PRIVATE | MAP_FIXED, fd=FILE_FD)
        yield _check(k, BASE, p.pages, pattern)
    written: dict[int, list[int]] = {}
    for k in range(1, p.procs + 1):
        written[k] = sorted(rng.sample(range(p.pages), cows))
        for first, n in _runs(written[k]):
            yield _write(k, BASE + first * PAGE_SIZE, n, f"copy{k}")
    yield Op("reclaim", path=path)
    yield Op("reclaim")
    for k in range(1, p.procs + 1):
        mine = set(written[k])
        for first, n in _runs(written[k]):
            yield _check(k, BASE + first * PAGE_SIZE, n, f"copy{k}")
        for first, n in _runs([i for i in range(p.pages) if i not in mine]):
            yield _check(k, BASE + first * PAGE_SIZE, n, pattern)


# --- 11. memory pressure --------------------------------------------------------------------


@dataclass
class MemoryPressureParams(DataClassJsonMixin):
    """A machine of ``ram_pages`` frames and ``swap_pages`` swap slots; a process with
    ``anon_pages`` of private anonymous memory, ``shmem_pages`` of shared anonymous
    memory and a ``file_pages`` file mapped both shared and private, and ``children``
    forked children; for ``rounds`` rounds every process writes ``cow_percent`` % of its
    private pages (COW) and of the shared memory."""

    ram_pages: int = 64
    swap_pages: int = 1024
    anon_pages: int = 96
    file_pages: int = 48
    shmem_pages: int = 24
    children: int = 2
    cow_percent: int = 50
    rounds: int = 2

    def __post_init__(self) -> None:
        _positive(self, "anon_pages", "file_pages", "shmem_pages", "rounds")
        _non_negative(self, "children")
        if self.ram_pages < 16:
            raise ConfigError(f"ram_pages must be at least 16, not {self.ram_pages}")
        if not 0 <= self.cow_percent <= 100:
            raise ConfigError(f"cow_percent must be 0 to 100, not {self.cow_percent}")
        procs = self.children + 1
        worst = procs * (self.anon_pages + self.file_pages) + self.shmem_pages
        if self.swap_pages < worst:
            raise ConfigError(
                f"swap_pages must hold every anonymous and shmem page the workload can "
                f"make ({procs} x ({self.anon_pages} + {self.file_pages}) + "
                f"{self.shmem_pages} = {worst}), not {self.swap_pages}: with less, the "
                "OOM killer may end a process")

    def machine(self) -> dict[str, int]:
        """The machine's memory: ``ram_pages`` frames and ``swap_pages`` swap slots."""
        return {"ram_pages": self.ram_pages, "swap_pages": self.swap_pages}


@workload("memory-pressure", MemoryPressureParams,
          hurts="every scheme and reclaim policy: reclaim walks (page_referenced and "
                "try_to_unmap) of anonymous, file and shmem pages, under a working set "
                "several times RAM")
def memory_pressure(p: MemoryPressureParams, rng: random.Random) -> Iterator[Op]:
    """A working set several times RAM: anonymous, file and shmem memory, fork and COW.

    The parent maps ``anon_pages`` of private anonymous memory, ``shmem_pages`` of shared
    anonymous memory and a file of ``file_pages`` pages twice (MAP_SHARED and
    MAP_PRIVATE), writes a distinct value into every anonymous, shmem and shared-file
    page and forks ``children``; then for ``rounds`` rounds every process, interleaved
    in a seeded order, writes ``cow_percent`` % of its anonymous and private-file pages
    (COW copies) and of the shmem pages. The machine has only ``ram_pages`` frames, so
    kswapd and direct reclaim run throughout, swapping anonymous and shmem pages and
    writing back dirty file pages through the reclaim policy. At the end every process
    reads back every page and checks it holds what was last written there (for itself,
    or for everyone in shared memory); the children exit and the parent checks again.
    Expected: every configuration finishes with every byte intact; the walk work differs
    by scheme (``derived.walks``, ``costs.reclaim_walk``).
    """
    path = "/pressure-file"
    procs = list(range(1, p.children + 2))
    anon, shmem = BASE, BASE + REGION_STRIDE
    fshared, fpriv = BASE + 2 * REGION_STRIDE, BASE + 3 * REGION_STRIDE
    yield Op("create", path=path, length=p.file_pages * PAGE_SIZE, data="disk")
    yield Op("spawn", pid=1)
    yield Op("open", pid=1, path=path, flags=os.O_RDWR, fd=FILE_FD)
    yield _mmap(1, anon, p.anon_pages)
    yield Op("mmap", pid=1, addr=shmem, length=p.shmem_pages * PAGE_SIZE, prot=RW,
             flags=MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    size = p.file_pages * PAGE_SIZE
    yield Op("mmap", pid=1, addr=fshared, length=size, prot=RW,
             flags=MAP_SHARED | MAP_FIXED, fd=FILE_FD)
    yield Op("mmap", pid=1, addr=fpriv, length=size, prot=RW,
             flags=MAP_PRIVATE | MAP_FIXED, fd=FILE_FD)
    # What each page should hold: private pages per process, shared pages for everyone.
    private: dict[tuple[int, int], str] = {}
    shared: dict[int, str] = {}
    for i in range(p.anon_pages):
        private[(1, anon + i * PAGE_SIZE)] = f"a{i}"
    for i in range(p.shmem_pages):
        shared[shmem + i * PAGE_SIZE] = f"s{i}"
    for i in range(p.file_pages):
        shared[fshared + i * PAGE_SIZE] = f"f{i}"
    for (_, addr), data in private.items():
        yield _write(1, addr, 1, data)
    for addr, data in shared.items():
        yield _write(1, addr, 1, data)
    for k in procs[1:]:
        yield Op("fork", pid=1, child=k)
        for i in range(p.anon_pages):
            private[(k, anon + i * PAGE_SIZE)] = f"a{i}"

    def some(n: int) -> list[int]:
        return rng.sample(range(n), round(n * p.cow_percent / 100))

    for r in range(p.rounds):
        steps: list[tuple[int, int, str, bool]] = []
        for k in procs:
            steps += [(k, anon + i * PAGE_SIZE, f"r{r}p{k}a{i}", False)
                      for i in some(p.anon_pages)]
            steps += [(k, fpriv + i * PAGE_SIZE, f"r{r}p{k}f{i}", False)
                      for i in some(p.file_pages)]
            steps += [(k, shmem + i * PAGE_SIZE, f"r{r}p{k}s{i}", True)
                      for i in some(p.shmem_pages)]
        rng.shuffle(steps)
        for k, addr, data, is_shared in steps:
            yield _write(k, addr, 1, data)
            if is_shared:
                shared[addr] = data
            else:
                private[(k, addr)] = data

    def checks(k: int) -> Iterator[Op]:
        for i in range(p.anon_pages):
            yield _check(k, anon + i * PAGE_SIZE, 1, private[(k, anon + i * PAGE_SIZE)])
        for i in range(p.file_pages):
            addr = fpriv + i * PAGE_SIZE
            # Not written by k: the private mapping still shows the file (page cache).
            want = private.get((k, addr), shared[fshared + i * PAGE_SIZE])
            yield _check(k, addr, 1, want)
        for addr, data in shared.items():
            yield _check(k, addr, 1, data)

    for k in procs:
        yield from checks(k)
    for k in procs[1:]:
        yield Op("exit", pid=k)
    yield from checks(1)


# The large-folio workloads register themselves on import (issue 11).
from . import workloads_folio  # noqa: E402,F401
