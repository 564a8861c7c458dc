"""Every check of the page-table scan in :func:`mmcore.testing.find_violations` fires.

Each case corrupts a healthy machine the way the bug the check exists for would leave it
(a pte left behind by munmap, a counter that drifted, a writable pte a COW break missed)
and asserts the check's own message is among the problems. The scan, the /proc recount
and the stray-_PAGE_PSE check share one pass over each page table; these tests pin that
none of them was lost in the merge.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, Machine
from mmcore.constants import PAGE_SHIFT, PAGE_SIZE, VM_ACCESS_FLAGS, VM_SHARED, VM_WRITE
from mmcore.mm import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS
from mmcore.page import Page
from mmcore.pagetable import GUARD_PTE, pte_mkhuge, pte_mkwrite, swp_entry_to_pte
from mmcore.process import Process
from mmcore.testing import find_violations

RW = PROT_READ | PROT_WRITE
PA = MAP_PRIVATE | MAP_ANONYMOUS
#: An address below every vma mmap places (the first mapping goes at the top).
NO_VMA = 0x10000


def _written(m: Machine) -> tuple[Process, int]:
    """A process with one written anonymous page at the returned address."""
    p = m.spawn()
    a = p.mmap(0, PAGE_SIZE, RW, PA)
    p.write(a, b"x")
    assert find_violations(m) == []
    return p, a


def _page(m: Machine, p: Process, a: int) -> Page:
    page = m.physmem.page(p.pagemap(a).pfn)
    assert page is not None
    return page


def _set_pte(p: Process, a: int, f: Callable[[int], int]) -> None:
    vpn = a >> PAGE_SHIFT
    p.mm.pgtable.update(vpn, f(p.mm.pgtable.entry(vpn)))


def _file(m: Machine, flags: int) -> tuple[Process, int]:
    """A process with page 0 of file /f mapped read-write with ``flags``, read in."""
    m.create_file("/f", b"data" * 2048)
    p = m.spawn()
    a = p.mmap(0, 2 * PAGE_SIZE, RW, flags, p.open("/f", 2))
    assert p.read(a, 4) == b"data"
    assert find_violations(m) == []
    return p, a


def _unaligned(m: Machine) -> None:
    p, a = _written(m)
    p.mm.vmas.lookup(a).end += 1  # type: ignore[union-attr]


def _empty(m: Machine) -> None:
    p, a = _written(m)
    vma = p.mm.vmas.lookup(a)
    assert vma is not None
    vma.end = vma.start


def _overlap(m: Machine) -> None:
    p, a = _written(m)
    b = p.mmap(a - 2 * PAGE_SIZE, PAGE_SIZE, PROT_READ, PA)
    p.mm.vmas.lookup(b).end = a + PAGE_SIZE  # type: ignore[union-attr]


def _other_mm(m: Machine) -> None:
    p, a = _written(m)
    p.mm.vmas.lookup(a).mm = m.spawn().mm  # type: ignore[union-attr]


def _present_in_no_vma(m: Machine) -> None:
    p, a = _written(m)
    p.mm.pgtable.set(NO_VMA, p.mm.pgtable.entry(a >> PAGE_SHIFT))


def _writable_zero_page(m: Machine) -> None:
    p = m.spawn()
    a = p.mmap(0, PAGE_SIZE, RW, PA)
    assert p.read(a, 1) == b"\0"  # a read fault maps the shared zero page
    _set_pte(p, a, pte_mkwrite)


def _swap_in_no_vma(m: Machine) -> None:
    m.spawn().mm.pgtable.set(NO_VMA, swp_entry_to_pte(5, False))


def _guard_in_no_vma(m: Machine) -> None:
    m.spawn().mm.pgtable.set(NO_VMA, GUARD_PTE)


def _rss(m: Machine) -> None:
    p, _ = _written(m)
    p.mm.rss_stat[MM_FILEPAGES] += 1


def _no_vm_write(m: Machine) -> None:
    p, a = _written(m)
    p.mm.vmas.lookup(a).flags &= ~VM_WRITE  # type: ignore[union-attr]


def _protnone_vma(m: Machine) -> None:
    p, a = _written(m)
    p.mm.vmas.lookup(a).flags &= ~VM_ACCESS_FLAGS  # type: ignore[union-attr]


def _no_anon_vma(m: Machine) -> None:
    p, a = _written(m)
    p.mm.vmas.lookup(a).anon_vma = None  # type: ignore[union-attr]


def _anon_in_shared(m: Machine) -> None:
    p, a = _written(m)
    p.mm.vmas.lookup(a).flags |= VM_SHARED  # type: ignore[union-attr]


def _writable_shared_anon(m: Machine) -> None:
    p, a = _written(m)
    child = p.fork()
    _set_pte(child, a, pte_mkwrite)  # the COW break that never happened


def _cache_of_another_file(m: Machine) -> None:
    p, a = _file(m, MAP_SHARED)
    _page(m, p, a).mapping = m.create_file("/g", b"g")


def _cache_index(m: Machine) -> None:
    p, a = _file(m, MAP_SHARED)
    _page(m, p, a).index += 1


def _cache_writable_private(m: Machine) -> None:
    p, a = _file(m, MAP_PRIVATE)
    _set_pte(p, a, pte_mkwrite)


def _stray_pse(m: Machine) -> None:
    p, a = _written(m)
    _set_pte(p, a, pte_mkhuge)


def _total_vm(m: Machine) -> None:
    p, _ = _written(m)
    p.mm.vmas.total_pages += 1


def _pss(m: Machine) -> None:
    p, a = _written(m)
    page = _page(m, p, a)
    page.mapcount = page.refcount = 2  # smaps halves the Pss; one pte maps the page


def _anon_pages(m: Machine) -> None:
    p, a = _written(m)
    _page(m, p, a).mapcount = 0


CASES = [
    (_unaligned, "is not page aligned"),
    (_empty, "is empty, reversed or outside [0, TASK_SIZE)"),
    (_overlap, "overlaps the vma before it"),
    (_other_mm, "belongs to another mm"),
    (_present_in_no_vma, "lies in no vma (left behind by munmap/mremap?)"),
    (_present_in_no_vma, "smaps_rollup Anonymous 4 kB but 2 anonymous pages are mapped"),
    (_present_in_no_vma, "smaps_rollup says Rss 4 kB, Pss 4 kB; the page tables give Rss 8 kB"),
    (_writable_zero_page, "the zero page is mapped writable"),
    (_swap_in_no_vma, "a swap pte (slot 5) lies in no vma"),
    (_guard_in_no_vma, "a guard marker lies in no vma"),
    (_rss, "rss is 2 but 1 present pte(s) map pages"),
    (_no_vm_write, "writable pte in a vma without VM_WRITE"),
    (_protnone_vma, "pte is not PROT_NONE but the vma disagrees"),
    (_no_anon_vma, "anonymous page mapped in a vma with no anon_vma"),
    (_anon_in_shared, "anonymous page mapped in a shared vma"),
    (_writable_shared_anon, "writable pte to a page that is not exclusive (mapcount 2)"),
    (_cache_of_another_file, "page-cache page of another file mapped here"),
    (_cache_index, "page-cache page index 0x1 mapped at file index 0x0"),
    (_cache_writable_private, "page-cache page mapped writable in a private vma"),
    (_stray_pse, "1 pte(s) with _PAGE_PSE outside any recorded huge PMD"),
    (_total_vm, "total_vm is 2 pages but the vmas cover 1"),
    (_pss, "smaps_rollup says Rss 4 kB, Pss 2 kB; the page tables give Rss 4 kB, Pss 4 kB"),
    (_anon_pages, "meminfo AnonPages/Mapped are 0/0 pages but the page tables map 1/0"),
]


@pytest.mark.parametrize(("corrupt", "message"), CASES,
                         ids=[f"{f.__name__.strip('_')}-{i}" for i, (f, _) in enumerate(CASES)])
def test_the_check_fires(corrupt: Callable[[Machine], None], message: str) -> None:
    m = Machine()
    corrupt(m)
    problems = find_violations(m)
    assert any(message in line for line in problems), problems


@pytest.mark.parametrize(("index", "name"), [(MM_FILEPAGES, "RssFile"), (MM_ANONPAGES, "RssAnon"),
                                             (MM_SWAPENTS, "VmSwap"), (MM_SHMEMPAGES, "RssShmem")])
def test_each_rss_counter_is_recounted(index: int, name: str) -> None:
    m = Machine()
    p, _ = _written(m)
    p.mm.rss_stat[index] += 3
    problems = find_violations(m)
    assert any(f"pid {p.pid}: {name} counter is" in line for line in problems), problems


def test_the_pte_checks_name_the_vma() -> None:
    """The location of a pte problem is only built when there is one, but still names
    the pte's vma."""
    m = Machine()
    p, a = _written(m)
    p.mm.vmas.lookup(a).anon_vma = None  # type: ignore[union-attr]
    pfn = p.pagemap(a).pfn
    assert f"pid {p.pid} @ {a:#x} (pfn {pfn}, vma {a:#x}-{a + PAGE_SIZE:#x} rw-p anon pgoff " \
        f"{a >> PAGE_SHIFT:#x} (no anon_vma)): anonymous page mapped in a vma with no " \
        "anon_vma" in find_violations(m)


def test_content_checks_fire() -> None:
    m = Machine()
    p, a = _written(m)
    problems = find_violations(m, {(p.pid, a): b"y", (p.pid, NO_VMA): b"z"})
    assert any(f"content: pid {p.pid} @ {a:#x} holds b'x', expected b'y' (present pte"
               in line for line in problems), problems
    assert f"content: expected b'z' but pid {p.pid} @ {NO_VMA:#x} is not mapped" in problems


def test_content_checks_fire_without_a_pte() -> None:
    """The content check's other lookups: an untouched page of an anonymous vma reads
    zeros, a shared file page its page cache, a swapped-out page its slot; a pid that is
    not live cannot be read."""
    m = Machine()
    p, a = _written(m)
    assert m.try_to_unmap(p.pagemap(a).pfn).success
    untouched = p.mmap(0, PAGE_SIZE, RW, PA)
    q, f = _file(m, MAP_SHARED)
    problems = find_violations(m, {(p.pid, a): b"s", (p.pid, untouched): b"u",
                                   (q.pid, f + PAGE_SIZE): b"file", (999, a): b"z"})
    assert any(f"content: pid {p.pid} @ {a:#x} holds b'x', expected b's' (swap pte, slot "
               in line for line in problems), problems
    assert any(f"content: pid {p.pid} @ {untouched:#x} holds b'\\x00', expected b'u' "
               f"(no pte, vma {untouched:#x}-" in line for line in problems), problems
    assert any(f"content: pid {q.pid} @ {f + PAGE_SIZE:#x} holds b'data', expected b'file' "
               "(no pte, vma "
               in line for line in problems), problems
    assert "content: expected b'z' but pid 999 is not a live process" in problems
