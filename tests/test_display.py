"""Rich displays (mmcore.display): what a notebook shows for Machine, Process, Vma, Page,
WalkResult, Costs and the counters: addresses in hex, flags by name, and nothing changed
by looking."""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Process,
    display,
)
from mmcore.flagnames import page_flags_expr, vm_flags_expr
from mmcore.page import PG_ANON, PG_DIRTY, Page

BASE, PAGE = 0x10000000, 4096
RW = PROT_READ | PROT_WRITE


def forked() -> tuple[Machine, Process, Process]:
    """p writes pages 0 and 1 and reads page 2 of four, forks c, c writes page 0."""
    m = Machine(rmap="anon_vma_chain")
    p = m.spawn()
    p.mmap(BASE, 4 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.write(BASE, b"zero")
    p.write(BASE + PAGE, b"one")
    p.read(BASE + 2 * PAGE, 1)
    c = p.fork()
    c.write(BASE, b"ZERO")
    return m, p, c


class FakePrinter:
    """What IPython.lib.pretty hands to _repr_pretty_: something with text()."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def text(self, s: str) -> None:
        self.out.append(s)


def test_flag_names_in_bit_order() -> None:
    """vm_flags and page flags by name; bits with no name stay as hex."""
    assert vm_flags_expr(0x13) == "VM_READ | VM_WRITE | VM_MAYREAD"
    assert vm_flags_expr(0) == "VM_NONE"
    assert page_flags_expr(PG_ANON | PG_DIRTY) == "PG_ANON | PG_DIRTY"
    assert page_flags_expr(1 << 20) == "0x100000"


def test_process_html_shows_vmas_and_ptes_in_hex_with_flag_names() -> None:
    """The parent's table: its vma range in hex, vm_flags by name, each pte's pfn, rwuad
    bits and mapcount; the shared frame 2 has mapcount 2, the zero page is named."""
    _m, p, _c = forked()
    out = p._repr_html_()
    assert "<td>0x10000000</td><td>0x10004000</td>" in out
    assert "VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE" in out
    assert "<td>0x10001000</td><td>2</td><td>r-uad</td><td>2</td>" in out
    assert "zero page" in out
    assert "Process 1" in out and "anon_vma#1" in out


def test_vma_view_names_its_anon_vma_as_the_process_view_does() -> None:
    """One machine state, one name per anon_vma: the child's vma is anon_vma#2 in the
    child's table and in the vma's own view."""
    _m, _p, c = forked()
    vma = c.vmas()[0]
    assert "anon_vma#2" in c._repr_html_()
    out = vma._repr_html_()
    assert "anon_vma#2" in out and "0x10000000-0x10004000" in out
    assert "VM_ACCOUNT" in out and "rw-p" in out


def test_page_html_names_flags_and_counts() -> None:
    """A shared anonymous page: PG_ANON, refcount and mapcount 2, index in hex."""
    m, p, _c = forked()
    page = m.physmem.page(p.pagemap(BASE + PAGE).pfn)
    assert page is not None
    out = page._repr_html_()
    assert "PG_ANON" in out and "<th>mapcount</th><td>2</td>" in out
    assert "<th>index</th><td>0x10001</td>" in out and "anon_vma" in out


def test_file_page_shows_its_file_and_html_is_escaped() -> None:
    """A page-cache page names its file; a path with markup in it is escaped."""
    m = Machine()
    m.create_file("/tmp/<b>f", b"x" * PAGE)
    p = m.spawn()
    fd = p.open("/tmp/<b>f", os.O_RDWR)
    addr = p.mmap(0, PAGE, RW, MAP_SHARED, fd, 0)
    p.read(addr, 1)
    page = m.physmem.page(p.pagemap(addr).pfn)
    assert page is not None
    out = page._repr_html_()
    assert "page cache of /tmp/&lt;b&gt;f" in out and "<b>f" not in out
    assert "PG_CACHE" in out


def test_walk_result_shows_each_mapping_in_hex_and_the_cost() -> None:
    """The walk of the shared frame: both pids at 0x10001000 and the cost counters."""
    m, p, _c = forked()
    walk = m.rmap_walk(p.pagemap(BASE + PAGE).pfn)
    out = walk._repr_html_()
    assert "<td>1</td><td>0x10001000</td>" in out and "<td>2</td><td>0x10001000</td>" in out
    assert f"<td>vmas_visited</td><td>{walk.cost.vmas_visited}</td>" in out
    assert f"pfn {walk.pfn}" in display.text(walk)


def test_unmap_result_display() -> None:
    """try_to_unmap's result: success, the swap slot and every unmapped pte."""
    m, p, _c = forked()
    res = m.try_to_unmap(p.pagemap(BASE + PAGE).pfn)
    out = res._repr_html_()
    assert "<th>success</th><td>True</td>" in out and "0x10001000" in out


def test_costs_and_counters_display() -> None:
    """Costs: the scheme, every metadata struct with its bytes, and the counters; the
    counters alone show every field, zeros included."""
    m, _p, _c = forked()
    costs = m.costs()
    out = costs._repr_html_()
    assert "anon_vma_chain" in out
    for struct, nbytes in costs.metadata_bytes.items():
        assert f"<td>{struct}</td>" in out and f"<td>{nbytes}</td>" in out
    assert "<td>fault_cow_copy</td><td>1</td>" in m.counters._repr_html_()
    assert "<td>fault_cow_reuse</td><td>0</td>" in m.counters._repr_html_()
    assert "<td>hits</td>" in m.walk_cost._repr_html_()
    assert "<td>pgfault</td>" in m.vm_events._repr_html_()


def test_vmstat_hides_zero_counters_and_says_how_many() -> None:
    """/proc/vmstat has ~190 counters: only the non-zero ones are listed."""
    m, _p, _c = forked()
    stat = m.vmstat()
    zeros = sum(1 for v in stat.values.values() if not v)
    out = stat._repr_html_()
    assert f"({zeros} at 0 not shown)" in out
    assert f"<td>pgfault</td><td>{stat['pgfault']}</td>" in out
    assert "<td>pswpin</td>" not in out


def test_meminfo_shows_units() -> None:
    """/proc/meminfo values keep their kB."""
    m, _p, _c = forked()
    info = m.meminfo()
    assert f"<td>MemTotal</td><td>{info['MemTotal']} kB</td>" in info._repr_html_()


def test_machine_display_lists_plugins_and_processes() -> None:
    """The machine: its plugins, memory in use and one row per process."""
    m, _p, _c = forked()
    out = m._repr_html_()
    assert "anon_vma_chain" in out and "i_mmap_tree" in out and "lru2" in out
    assert "<td>2</td><td>1</td><td>alive</td>" in out
    assert "<td>fault_cow_copy</td><td>1</td>" in out


def test_long_tables_are_cut_and_counted() -> None:
    """A process with more ptes than MAX_ROWS shows MAX_ROWS rows and the count left."""
    m = Machine()
    p = m.spawn()
    n = display.MAX_ROWS + 6
    p.mmap(BASE, n * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    for i in range(n):
        p.write(BASE + i * PAGE, b"x")
    assert "... 6 more" in p._repr_html_() and "... 6 more" in display.text(p)


def test_pretty_and_rich_say_what_html_says() -> None:
    """IPython's terminal printer and rich get the same table as text."""
    _m, p, _c = forked()
    printer = FakePrinter()
    p._repr_pretty_(printer, False)
    assert printer.out == [display.text(p)]
    assert "0x10001000  2    r-uad  2" in printer.out[0]
    console = Console(file=io.StringIO(), width=200)
    console.print(p)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "0x10001000" in shown and "VM_MAYWRITE" in shown


def test_displaying_changes_nothing() -> None:
    """Looking runs no walk and moves no counter; repr stays the plain one."""
    m, p, c = forked()
    walk = m.rmap_walk(p.pagemap(BASE + PAGE).pfn)
    before = m.costs().to_dict(), m.vmstat().values
    for obj in (m, p, c, c.vmas()[0], m.physmem.page(1), walk, m.costs(), m.counters,
                m.vmstat(), m.meminfo()):
        display.html(obj)
        display.text(obj)
    assert (m.costs().to_dict(), m.vmstat().values) == before
    assert repr(p) == "Process(pid=1, alive, vmas=1)"


def test_page_stays_slotted() -> None:
    """The display methods add no per-page memory: Page still has no __dict__."""
    assert not hasattr(Page(1), "__dict__")


def test_unknown_object_is_a_type_error() -> None:
    """Only the simulator's objects have a view."""
    with pytest.raises(TypeError, match="no view of int"):
        display.html(3)


def test_pte_chains_page_shows_its_direct_pte_then_its_chain() -> None:
    """pte_chains keeps the ptes in the page's rmap slot: one direct pte (pid and address
    in hex), then a chain once fork adds a second mapping."""
    m = Machine(rmap="pte_chains")
    p = m.spawn()
    p.mmap(BASE, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.write(BASE, b"x")
    page = m.physmem.page(1)
    assert page is not None
    assert "<th>rmap slot</th><td>direct pte: pid 1 @ 0x10000000</td>" in page._repr_html_()
    assert "marker (no anon object)" in page._repr_html_()
    p.fork()
    assert "<th>rmap slot</th><td>PteChain</td>" in page._repr_html_()
