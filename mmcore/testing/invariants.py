"""The invariants every rmap scheme (and the core around it) must keep, checked by brute force.

:func:`check_invariants` scans every live page table once and compares what it finds with
what the machine believes:

* **walk == truth**: for every mapped frame, the scheme's rmap walk
  (:meth:`Machine.rmap_walk`) finds exactly the (pid, address) pairs whose present pte
  maps it (rmap_walk_anon()/rmap_walk_file() must miss nothing: a missed pte is a page
  that try_to_unmap() or migration leaves mapped);
* **mapcount == ptes**: ``page->_mapcount`` equals the number of present ptes, and
  ``_refcount`` equals mappings + swap cache + page cache; a huge PMD (512 ptes with
  ``_PAGE_PSE``, its index in ``PageTable.huge_pmds``) counts in the folio's
  ``entire_mapcount`` instead, and maps one whole naturally aligned order-9 folio;
* **COW**: a writable pte in a private mapping maps a page nobody else maps
  (PG_anon_exclusive), an anonymous page sits in a vma that has an anon_vma;
* **vma bounds**: every vma is page aligned, non-empty, below TASK_SIZE and belongs to
  its mm, and the vmas do not overlap (a negative length must never make a vma); every
  file size lies in [0, MAX_LFS_FILESIZE];
* **no stale ptes**: every pte lies inside a vma and names an allocated frame or an
  allocated swap slot; every swap slot is named as often as its swap_map count says;
* **nothing leaks**: every allocated frame is mapped or cached; with no live process
  left, no frame, swap slot or rmap metadata object (``machine.meta.live``) remains;
* **/proc counters**: rss_stat, total_vm, smaps_rollup Rss/Pss/Anonymous and meminfo
  AnonPages/Mapped equal a brute-force recount from the page tables
  (:mod:`mmcore.testing.recount`);
* **content**: optionally, each expected ``(pid, address) -> bytes`` is what the process
  would read there, looked up without faulting (present page, swap cache, swap slot,
  shmem page cache or zeros).

The check changes nothing the machine reports: walk and page-table-walk counters are
restored afterwards (a scheme's walk may still update its own state, as anonmm's does
when it moves a page to the anonmm of a mapper it found).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING

from ..constants import (
    MAX_LFS_FILESIZE,
    PAGE_SHIFT,
    PAGE_SIZE,
    TASK_SIZE,
    VM_ACCESS_FLAGS,
    VM_SHARED,
    VM_WRITE,
    offset_in_page,
)
from ..errors import MachineBroken
from ..huge_memory import page_mapcount
from ..mm import MM_SWAPENTS
from ..page import PG_ANON_EXCLUSIVE, PG_CACHE, PG_SWAPCACHE, PG_ZERO
from ..pagetable import (
    PMD_SHIFT,
    PTRS_PER_TABLE,
    is_swap_pte,
    pte_huge,
    pte_pfn,
    pte_present,
    pte_protnone,
    pte_swp_exclusive,
    pte_write,
    swp_slot,
)
from .recount import MmRecount, count_mapped, finish_recount, recount_problems

if TYPE_CHECKING:
    from ..folio import Folio
    from ..fs import Inode
    from ..machine import Machine
    from ..mm import Mm
    from ..page import Page
    from ..vma import Vma

__all__ = [
    "InvariantViolation",
    "check_invariants",
    "check_no_leaks",
    "find_violations",
    "peek",
]

#: How many problems a message lists before "... and N more".
MAX_LISTED = 12


class InvariantViolation(AssertionError):
    """An invariant does not hold; ``problems`` lists each violation in one line."""

    def __init__(self, problems: list[str], header: str = "mmcore invariant violated") -> None:
        self.problems = problems
        shown = problems[:MAX_LISTED]
        more = len(problems) - len(shown)
        lines = [f"{header} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):"]
        lines += [f"  - {p}" for p in shown]
        if more:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


def check_invariants(machine: Machine,
                     expected: Mapping[tuple[int, int], bytes] | None = None) -> None:
    """Raise :class:`InvariantViolation` (an AssertionError) listing every broken invariant.

    ``expected`` maps ``(pid, address)`` to the bytes that process must read at that
    address (the content it last wrote there, or zeros).

    >>> from mmcore import Machine, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS
    >>> m = Machine(rmap="anon_vma_chain")
    >>> p = m.spawn()
    >>> a = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    >>> p.write(a, b"hi"); child = p.fork()
    >>> check_invariants(m, {(p.pid, a): b"hi", (child.pid, a): b"hi"})
    """
    problems = find_violations(machine, expected)
    if problems:
        raise InvariantViolation(problems, f"mmcore invariant violated ({_config(machine)})")


def check_no_leaks(machine: Machine) -> None:
    """Raise :class:`InvariantViolation` unless no frame, swap slot or rmap metadata object
    is left; meant for when every process has exited."""
    problems = _leaks(machine)
    if problems:
        raise InvariantViolation(problems, f"mmcore leak after exit ({_config(machine)})")


def _config(machine: Machine) -> str:
    name = machine.rmap_name
    if machine.mremap_policy_name is not None:
        name += f"+{machine.mremap_policy_name}"
    return f"rmap={name}"


def _pages(pairs: Iterable[tuple[int, int]]) -> str:
    items = [f"pid {pid} @ {addr:#x}" for pid, addr in pairs]
    return ", ".join(items) if items else "-"


def describe_vma(vma: Vma | None) -> str:
    """``start-end perms pgoff`` of a vma, for messages."""
    if vma is None:
        return "no vma"
    f = vma.flags
    perms = ("r" if f & 1 else "-") + ("w" if f & VM_WRITE else "-") \
        + ("x" if f & 4 else "-") + ("s" if f & VM_SHARED else "p")
    kind = "shmem" if vma.file is not None else "anon"
    return (f"vma {vma.start:#x}-{vma.end:#x} {perms} {kind} pgoff {vma.pgoff:#x}"
            f"{'' if vma.anon_vma is not None else ' (no anon_vma)'}")


def _live_inodes(machine: Machine) -> list[Inode]:
    """Every inode a live process maps, plus the machine's regular files (by identity)."""
    seen: dict[int, Inode] = {}
    for proc in machine.live_processes():
        for vma in proc.mm.vmas:
            if vma.file is not None:
                seen[id(vma.file.inode)] = vma.file.inode
    for inode in machine.files.values():
        seen[id(inode)] = inode
    return list(seen.values())


def peek(machine: Machine, pid: int, addr: int, n: int) -> bytes:
    """What process ``pid`` would read at ``addr`` (``n`` bytes, within one page), looked up
    without faulting: the present page, the swap cache or swap slot named by a swap pte,
    the shmem/file page cache (or its swapped copy), else zeros.

    Raises LookupError when the address is in no vma of a live process.
    """
    proc = machine.processes.get(pid)
    if proc is None or not proc.alive:
        raise LookupError(f"pid {pid} is not a live process")
    return _peek_mm(machine, proc.mm, pid, addr, n)


def _peek_mm(machine: Machine, mm: Mm, pid: int, addr: int, n: int) -> bytes:
    """:func:`peek` once the live process ``pid`` and its ``mm`` are found (the content
    check looks the mms up once, not once per address)."""
    off = addr & (PAGE_SIZE - 1)
    pte = mm.pgtable.entry(addr >> PAGE_SHIFT)
    if pte_present(pte):
        page = machine.physmem.page(pte_pfn(pte))
        if page is None:
            raise LookupError(f"pid {pid} @ {addr:#x}: pte maps free pfn {pte_pfn(pte)}")
        return page.read(off, n)
    if is_swap_pte(pte):
        slot = swp_slot(pte)
        cached = machine.swap.cache.get(slot)
        if cached is not None:
            return cached.read(off, n)
        data = machine.swap.data.get(slot)
        if data is None:
            raise LookupError(f"pid {pid} @ {addr:#x}: swap pte names free slot {slot}")
        chunk = data[off:off + n]
        return chunk + bytes(n - len(chunk))
    vma = mm.vmas.lookup(addr)
    if vma is None:
        raise LookupError(f"pid {pid} @ {addr:#x} is not mapped")
    if vma.file is not None and vma.flags & VM_SHARED:
        inode = vma.file.inode
        index = vma.linear_page_index(addr)
        cached_page = inode.pages.get(index)
        if cached_page is not None:
            return cached_page.read(off, n)
        shmem_slot = inode.swapped.get(index)
        if shmem_slot is not None:
            chunk = machine.swap.data.get(shmem_slot, b"")[off:off + n]
            return chunk + bytes(n - len(chunk))
        chunk = inode.disk_page(index)[off:off + n]
        return chunk + bytes(n - len(chunk))
    return bytes(n)


def find_violations(machine: Machine,
                    expected: Mapping[tuple[int, int], bytes] | None = None) -> list[str]:
    """Every broken invariant as one line of text (empty when all hold)."""
    if machine.broken is not None:
        return [f"the machine marked itself broken: {machine.broken} (a plugin or the core "
                "raised in the middle of an operation; its state is no longer safe)"]
    problems: list[str] = []
    physmem = machine.physmem
    truth: dict[int, list[tuple[int, int]]] = defaultdict(list)
    swap_refs: Counter[int] = Counter()
    exclusive_slots: list[tuple[int, int, int]] = []
    huge: Counter[int] = Counter()
    counts: dict[int, MmRecount] = {}
    for proc in machine.live_processes():
        vmas = list(proc.mm.vmas)
        _check_vmas(proc.pid, proc.mm, vmas, problems)
        counts[proc.pid] = rc = MmRecount(total_vm=sum(v.pages for v in vmas))
        stray = _scan_mm(machine, proc.pid, proc.mm, vmas, truth, swap_refs, exclusive_slots,
                         rc, problems)
        _check_huge_pmds(machine, proc.pid, proc.mm, huge, stray, problems)

    inodes = _live_inodes(machine)
    cached_pfns: set[int] = set()
    for inode in inodes:
        if not 0 <= inode.size <= MAX_LFS_FILESIZE:
            problems.append(f"inode {inode.path!r}: size {inode.size} outside "
                            "[0, MAX_LFS_FILESIZE]")
        for index, page in inode.pages.items():
            cached_pfns.add(page.pfn)
            if physmem.page(page.pfn) is not page:
                problems.append(f"inode {inode.path!r} caches pfn {page.pfn} at index "
                                f"{index}, which is not that allocated frame")
        for slot in inode.swapped.values():
            swap_refs[slot] += 1

    # The walks below must not show up in the machine's metrics.
    saved = {f.name: getattr(machine.walk_cost, f.name) for f in fields(machine.walk_cost)}
    tables = [(p.mm.pgtable, p.mm.pgtable.walks) for p in machine.live_processes()]
    try:
        for page in physmem.used_pages():
            if page.flags & PG_ZERO:
                continue  # the huge zero folio
            if page.folio is not None and not page.refcount and not truth.get(page.pfn):
                continue  # an unmapped page of a partly mapped folio: freed with it
            _check_page(machine, page, truth.get(page.pfn, []), page.pfn in cached_pfns,
                        huge[page.pfn], problems)
            if machine.broken is not None:
                break
    finally:
        for name, value in saved.items():
            setattr(machine.walk_cost, name, value)
        for table, walks in tables:
            table.walks = walks

    _check_swap(machine, swap_refs, problems)
    for pid, addr, slot in exclusive_slots:
        if swap_refs[slot] != 1:
            problems.append(f"pid {pid} @ {addr:#x}: swap pte (slot {slot}) marked exclusive but "
                            f"{swap_refs[slot]} swap ptes name the slot: copy-on-write is broken")
        cached = machine.swap.cache.get(slot)
        if cached is not None and cached.mapcount:
            problems.append(f"pid {pid} @ {addr:#x}: swap pte (slot {slot}) marked exclusive but "
                            f"its page (pfn {cached.pfn}) is mapped {cached.mapcount} time(s)")
    # the /proc counters against a recount from the ptes the scan counted
    problems += recount_problems(machine, finish_recount(machine, counts))
    if not machine.live_processes():
        problems += _leaks(machine)
    if expected:
        _check_content(machine, expected, problems)
    return problems


def _check_huge_pmds(machine: Machine, pid: int, mm: Mm, huge: Counter[int], stray: list[int],
                     problems: list[str]) -> None:
    """Every recorded huge PMD is 512 ``_PAGE_PSE`` ptes mapping one whole order-9 folio
    (or the huge zero folio) in order, inside one vma; every ``_PAGE_PSE`` pte belongs to
    a recorded PMD (``stray`` lists, in order, the vpns of those that do not, as the scan
    found them). Counts in ``huge`` the PMD mappings of each pfn."""
    pt = mm.pgtable
    for key in sorted(pt.huge_pmds):
        haddr = key << PMD_SHIFT
        base = haddr >> PAGE_SHIFT
        ptes = [pt.entry(base + i) for i in range(PTRS_PER_TABLE)]
        first = machine.physmem.page(pte_pfn(ptes[0])) if ptes[0] else None
        folio = first.folio if first is not None else None
        vma = mm.vmas.lookup(haddr)
        if (folio is None or folio.order != 9 or folio.pfn != pte_pfn(ptes[0])
                or any(not pte_huge(pte) or pte_pfn(pte) != folio.pfn + i
                       for i, pte in enumerate(ptes))):
            problems.append(f"pid {pid} @ {haddr:#x}: huge PMD recorded but its 512 ptes do "
                            "not map one whole order-9 folio with _PAGE_PSE")
            continue
        if vma is None or vma.end < haddr + (PTRS_PER_TABLE << PAGE_SHIFT):
            problems.append(f"pid {pid} @ {haddr:#x}: huge PMD not inside one vma "
                            "(vma_adjust_trans_huge() must split it)")
        for i in range(PTRS_PER_TABLE):
            huge[folio.pfn + i] += 1
    if stray:
        problems.append(f"pid {pid}: {len(stray)} pte(s) with _PAGE_PSE outside any recorded "
                        f"huge PMD, first @ {stray[0] << PAGE_SHIFT:#x}")


def _check_vmas(pid: int, mm: Mm, vmas: list[Vma], problems: list[str]) -> None:
    """The vma tree (``vmas``, in order) is a set of disjoint, page-aligned, non-empty
    user ranges."""
    prev_end = 0
    for vma in vmas:
        found = []
        if offset_in_page(vma.start) or offset_in_page(vma.end):
            found.append("is not page aligned")
        if not 0 <= vma.start < vma.end <= TASK_SIZE:
            found.append("is empty, reversed or outside [0, TASK_SIZE)")
        if vma.start < prev_end:
            found.append(f"overlaps the vma before it (ending {prev_end:#x})")
        if vma.mm is not mm:
            found.append("belongs to another mm")
        if found:  # the vma described only for a message: most steps have none
            problems += [f"pid {pid}: {describe_vma(vma)} {what}" for what in found]
        prev_end = max(prev_end, vma.end)


def _scan_mm(machine: Machine, pid: int, mm: Mm, vmas: list[Vma],
             truth: dict[int, list[tuple[int, int]]], swap_refs: Counter[int],
             exclusive_slots: list[tuple[int, int, int]], rc: MmRecount,
             problems: list[str]) -> list[int]:
    """The one pass over a page table: collect the truth, check each pte against its vma,
    count in ``rc`` what the /proc recount needs (:func:`count_mapped`, swap entries).
    Returns the vpns of the ``_PAGE_PSE`` ptes outside any recorded huge PMD."""
    physmem = machine.physmem
    huge_pmds = mm.pgtable.huge_pmds
    stray: list[int] = []
    rss = 0
    # The vma of each pte by walking the vmas alongside the ptes (both in address order)
    # instead of a lookup per pte: vmas[i] is the last vma starting at or below the pte,
    # which contains it if it ends above it (vma_lookup()).
    i, nr_vmas = -1, len(vmas)
    next_start = vmas[0].start if vmas else TASK_SIZE
    vma: Vma | None = None
    for vpn, pte in mm.pgtable.items():
        addr = vpn << PAGE_SHIFT
        if addr >= next_start:
            while i + 1 < nr_vmas and vmas[i + 1].start <= addr:
                i += 1
            next_start = vmas[i + 1].start if i + 1 < nr_vmas else TASK_SIZE
            vma = vmas[i]
        if vma is not None and vma.end <= addr:
            vma = None
        if pte_huge(pte) and vpn >> (PMD_SHIFT - PAGE_SHIFT) not in huge_pmds:
            stray.append(vpn)
        if pte_present(pte):
            pfn = pte_pfn(pte)
            page = physmem.page(pfn)
            if vma is None:
                problems.append(f"pid {pid} @ {addr:#x}: a present pte (pfn {pfn}) lies in no "
                                "vma (left behind by munmap/mremap?)")
            if page is None:
                problems.append(f"pid {pid} @ {addr:#x}: the pte maps pfn {pfn}, which is "
                                "not allocated (use after free)")
                continue
            if page.flags & PG_ZERO:
                if pte_write(pte):
                    problems.append(f"pid {pid} @ {addr:#x}: the zero page is mapped writable")
                continue
            truth[pfn].append((pid, addr))
            count_mapped(rc, page)
            rss += 1
            if vma is not None:
                _check_pte(pid, addr, pte, page, vma, problems)
        elif is_swap_pte(pte):
            rc.rss_stat[MM_SWAPENTS] += 1
            swap_refs[swp_slot(pte)] += 1
            if pte_swp_exclusive(pte):
                exclusive_slots.append((pid, addr, swp_slot(pte)))
            if vma is None:
                problems.append(f"pid {pid} @ {addr:#x}: a swap pte (slot {swp_slot(pte)}) "
                                "lies in no vma")
        # items() skips none ptes, and is_swap_pte() is every other non-present pte but
        # the marker: what is left is a guard marker.
        elif vma is None:
            problems.append(f"pid {pid} @ {addr:#x}: a guard marker lies in no vma "
                            "(munmap must drop markers)")
    if mm.rss != rss:
        problems.append(f"pid {pid}: rss is {mm.rss} but {rss} present pte(s) map pages")
    return stray


def _check_pte(pid: int, addr: int, pte: int, page: Page, vma: Vma,
               problems: list[str]) -> None:
    found = []
    if pte_write(pte) and not vma.flags & VM_WRITE:
        found.append("writable pte in a vma without VM_WRITE")
    if pte_protnone(pte) != (not vma.flags & VM_ACCESS_FLAGS):
        found.append(f"pte is {'' if pte_protnone(pte) else 'not '}PROT_NONE "
                     "but the vma disagrees (change_pte_range)")
    if page.is_anon:
        if vma.anon_vma is None:
            found.append("anonymous page mapped in a vma with no anon_vma")
        if vma.flags & VM_SHARED:
            found.append("anonymous page mapped in a shared vma")
        if pte_write(pte) and (page_mapcount(page) != 1
                               or not page.flags & PG_ANON_EXCLUSIVE):
            found.append(f"writable pte to a page that is not exclusive "
                         f"(mapcount {page_mapcount(page)}): copy-on-write is broken")
    elif page.flags & PG_CACHE:
        inode = vma.file.inode if vma.file is not None else None
        if inode is None or page.mapping is not inode:
            found.append("page-cache page of another file mapped here")
        elif vma.linear_page_index(addr) != page.index:
            found.append(f"page-cache page index {page.index:#x} mapped at file "
                         f"index {vma.linear_page_index(addr):#x}")
        elif pte_write(pte) and not vma.flags & VM_SHARED:
            found.append("page-cache page mapped writable in a private vma")
    if found:  # the location described only for a message: most ptes have none
        where = f"pid {pid} @ {addr:#x} (pfn {page.pfn}, {describe_vma(vma)})"
        problems += [f"{where}: {what}" for what in found]


def _check_page(machine: Machine, page: Page, maps: list[tuple[int, int]], in_cache: bool,
                nr_huge: int, problems: list[str]) -> None:
    pfn = page.pfn
    maps = sorted(maps)
    kind = "anon" if page.is_anon else "page-cache" if page.flags & PG_CACHE else "untyped"
    if page.is_anon and page.flags & PG_ANON_EXCLUSIVE and len(maps) > 1:
        problems.append(f"pfn {pfn} ({kind}): PG_anon_exclusive but mapped by {len(maps)} ptes: "
                        f"{_pages(maps)}")
    entire = page.folio.entire_mapcount if page.folio is not None else 0
    if page.mapcount != len(maps) - nr_huge or entire != nr_huge:
        problems.append(f"pfn {pfn} ({kind}): mapcount {page.mapcount} (+ {entire} PMD) but "
                        f"{len(maps) - nr_huge} pte(s) (+ {nr_huge} PMD) map it: "
                        f"{_pages(maps)}")
    swapcache = 1 if page.flags & PG_SWAPCACHE else 0
    pagecache = 1 if page.flags & PG_CACHE else 0
    if page.flags & PG_CACHE and not in_cache:
        problems.append(f"pfn {pfn}: marked PG_CACHE but in no live inode's page cache")
    if swapcache and machine.swap.cache.get(page.swap_slot) is not page:
        problems.append(f"pfn {pfn}: marked PG_swapcache (slot {page.swap_slot}) but the swap "
                        "cache does not hold it")
    want_refs = page.mapcount + entire + swapcache + pagecache
    if page.refcount != want_refs:
        problems.append(f"pfn {pfn} ({kind}): refcount {page.refcount} but "
                        f"{page.mapcount + entire} "
                        f"mapping(s) + {swapcache} swap cache + {pagecache} page cache = "
                        f"{want_refs}")
    folio = page.folio
    if folio is not None:
        _check_folio_page(machine, page, folio, problems)
    if not maps and not swapcache and not pagecache and (folio is None or page.refcount):
        problems.append(f"pfn {pfn} ({kind}) is allocated but no pte, swap cache or page cache "
                        "holds it: a leaked frame")
    if not maps or not (page.is_anon or pagecache):
        return
    try:
        got = machine.rmap_walk(pfn).mappings
    except MachineBroken as exc:
        problems.append(f"pfn {pfn} ({kind}): the rmap walk raised: {exc}")
        return
    except Exception as exc:  # a walk must never raise; report it as a finding
        problems.append(f"pfn {pfn} ({kind}): the rmap walk raised {type(exc).__name__}: {exc}")
        return
    got = sorted(got)
    if got != maps:
        missing = sorted(set(maps) - set(got))
        extra = sorted(set(got) - set(maps))
        dups = sorted(k for k, n in Counter(got).items() if n > 1)
        detail = [f"pfn {pfn} ({kind}, index {page.index:#x}, mapcount {page.mapcount}): "
                  f"rmap walk != truth"]
        if missing:
            procs = machine.processes
            where = []
            for pid, addr in missing:
                proc = procs.get(pid)
                vma = proc.mm.vmas.lookup(addr) if proc is not None else None
                where.append(f"pid {pid} @ {addr:#x} in {describe_vma(vma)}")
            detail.append("missing from the walk: " + "; ".join(where))
        if extra:
            detail.append(f"extra in the walk: {_pages(extra)}")
        if dups:
            detail.append(f"found twice: {_pages(dups)}")
        problems.append(" -- ".join(detail))


def _check_folio_page(machine: Machine, page: Page, folio: Folio,
                      problems: list[str]) -> None:
    """A page of a large folio: the folio is the aligned block the page lies in and is
    still referenced (a page with no reference stays allocated only inside a folio some
    other page keeps); the folio is on the deferred-split queue exactly when marked so."""
    i = page.pfn - folio.pfn
    if not 0 <= i < folio.nr_pages or folio.pages[i] is not page or \
            folio.pfn % folio.nr_pages:
        problems.append(f"pfn {page.pfn}: not page {i} of its naturally aligned folio "
                        f"{folio!r}")
    if i:
        return  # the folio-wide checks once, at the head
    unref = sum(1 for p in folio.pages if not p.refcount)
    if unref != folio.nr_unref or unref == folio.nr_pages:
        problems.append(f"{folio!r}: {unref} page(s) without a reference, nr_unref "
                        f"{folio.nr_unref}, {folio.nr_pages} pages (a folio nothing "
                        "references must have been freed)")
    if folio.deferred != (folio in machine.deferred_split):
        problems.append(f"{folio!r}: deferred {folio.deferred} but "
                        f"{'' if folio in machine.deferred_split else 'not '}on the "
                        "deferred-split queue")


def _check_swap(machine: Machine, swap_refs: Counter[int], problems: list[str]) -> None:
    swap = machine.swap
    for slot, count in sorted(swap.count.items()):
        named = swap_refs.get(slot, 0)
        if count != named:
            problems.append(f"swap slot {slot}: swap_map count {count} but {named} swap pte(s) "
                            "or shmem entries name it")
        if count == 0 and slot not in swap.cache:
            problems.append(f"swap slot {slot} is allocated but unused: a leaked slot")
    for slot in sorted(swap_refs):
        if slot not in swap.count:
            problems.append(f"swap slot {slot} is named by {swap_refs[slot]} swap pte(s) but is "
                            "free")
    if swap.nr_used != len(swap.data):
        problems.append(f"swap: {swap.nr_used} slots in use but {len(swap.data)} hold data")
    for slot, page in sorted(swap.cache.items()):
        if page.swap_slot != slot or machine.physmem.page(page.pfn) is not page:
            problems.append(f"swap cache slot {slot} holds {page!r}, which is not that "
                            "allocated, cached page")


def _leaks(machine: Machine) -> list[str]:
    """What must be gone once no process is alive (regular files' page cache excepted)."""
    problems: list[str] = []
    file_pfns = {pg.pfn for inode in machine.files.values() for pg in inode.pages.values()}
    left = [pg for pg in machine.physmem.used_pages()
            if pg.pfn not in file_pfns and not pg.flags & PG_ZERO]
    if left:
        shown = ", ".join(repr(pg) for pg in left[:6])
        problems.append(f"{len(left)} frame(s) still allocated after every process exited: "
                        f"{shown}{' ...' if len(left) > 6 else ''}")
    file_slots = {s for inode in machine.files.values() for s in inode.swapped.values()}
    slots = [s for s in sorted(machine.swap.data) if s not in file_slots]
    if slots:
        problems.append(f"{len(slots)} swap slot(s) still in use after every process exited: "
                        f"{slots[:10]}")
    live = {k: v for k, v in sorted(machine.meta.live.items()) if v}
    if live:
        problems.append(f"rmap metadata objects still allocated after every process exited: "
                        f"{live}")
    return problems


def _check_content(machine: Machine, expected: Mapping[tuple[int, int], bytes],
                   problems: list[str]) -> None:
    """Each expected ``(pid, address) -> bytes`` against what :func:`peek` reads there,
    in (pid, address) order."""
    mms = {proc.pid: proc.mm for proc in machine.live_processes()}
    for (pid, addr), want in sorted(expected.items()):
        mm = mms.get(pid)
        try:
            # peek() itself only for a pid that is not live: it raises the LookupError
            got = peek(machine, pid, addr, len(want)) if mm is None else \
                _peek_mm(machine, mm, pid, addr, len(want))
        except LookupError as exc:
            problems.append(f"content: expected {want!r} but {exc}")
            continue
        if got != want:
            proc = machine.processes[pid]
            pte = proc.mm.pgtable.entry(addr >> PAGE_SHIFT)
            if pte_present(pte):
                state = f"present pte, pfn {pte_pfn(pte)}"
            elif is_swap_pte(pte):
                state = f"swap pte, slot {swp_slot(pte)}"
            else:
                state = "no pte"
            problems.append(f"content: pid {pid} @ {addr:#x} holds {got!r}, expected {want!r} "
                            f"({state}, {describe_vma(proc.mm.vmas.lookup(addr))})")
