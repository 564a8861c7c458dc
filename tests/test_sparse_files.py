"""File contents are sparse (issue 14 item 6): a created file is a repeating pattern
computed per page, so a huge ``create`` length or a stand-in file for a huge mapping
costs only the pages used; a ``reclaim`` op costs the pages mapped in its range, not
its length."""

from __future__ import annotations

import os
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.experiments.ops import Op, Player
from mmcore.experiments.replay import replay
from mmcore.experiments.trace import MAX_OP_PAGES, TraceError, parse_trace

PAGE = 4096


def peak_bytes_of(fn: object) -> int:
    """Peak Python memory allocated while ``fn()`` runs."""
    tracemalloc.start()
    try:
        fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@given(st.binary(max_size=9000), st.integers(0, 5 * PAGE + 7))
def test_patterned_file_reads_as_its_materialised_body(pattern: bytes, length: int) -> None:
    """create_file(path, pattern, length=n) reads, page by page, exactly as a file
    created from the pattern repeated to n bytes (zeros for an empty pattern)."""
    m = Machine(ram_pages=64)
    fill = pattern or b"\0"
    body = (fill * (length // len(fill) + 1))[:length]
    lazy, eager = m.create_file("/lazy", pattern, length=length), m.create_file("/eager", body)
    assert lazy.size == eager.size == length
    assert [lazy.disk_page(i) for i in range(6)] == [eager.disk_page(i) for i in range(6)]


def test_create_op_of_two_billion_bytes_costs_no_body() -> None:
    """{"op": "create", "length": 2e9} keeps a pattern, not a 2 GB body (it took 3.9 GB):
    under 1 MB is allocated, and pread at any offset sees the pattern."""
    m = Machine()
    player = Player(m)
    assert peak_bytes_of(lambda: player.apply(
        Op("create", path="/f", length=2_000_000_000, data="abc"))) < 1_000_000
    p = m.spawn()
    fd = p.open("/f", os.O_RDONLY)
    assert p.pread(fd, 10, 1_999_999_995) == b"abcab"  # short read at EOF
    assert p.pread(fd, 6, PAGE - 2) == b"cabcab"  # across a page boundary


def test_truncated_patterned_file_reads_zeros_past_the_cut() -> None:
    """ftruncate into a patterned file, then growing it again, leaves zeros past the
    cut (the pattern ends where the file was cut, as a real file's data does)."""
    m = Machine(ram_pages=64)
    m.create_file("/f", b"x", length=3 * PAGE)
    p = m.spawn()
    fd = p.open("/f", os.O_RDWR)
    p.ftruncate(fd, PAGE + 10)
    p.ftruncate(fd, 3 * PAGE)
    assert p.pread(fd, 12, PAGE) == b"x" * 10 + b"\0\0"
    assert p.pread(fd, 4, 2 * PAGE) == b"\0" * 4


def test_stand_in_for_a_64_gib_mapping_at_a_huge_offset_costs_only_used_pages() -> None:
    """A one-line trace mapping 64 GiB of a file at offset 2**62 replays with under
    32 MB allocated (stand-in bodies were materialised at twice the file size: a
    MemoryError), and the last page reads as a stand-in page."""
    size = 64 << 30
    base = 0x7F0000000000
    ops = [Op("spawn", pid=1),
           Op("mmap", pid=1, length=size, prot=PROT_READ, flags=MAP_PRIVATE, ret=base,
              extra={"stand_in": True, "file": "/huge", "offset": 1 << 62, "fd": 3}),
           Op("read", pid=1, addr=base + size - PAGE, length=1)]
    m = Machine()
    reports = []
    assert peak_bytes_of(lambda: reports.append(replay(ops, machine=m))) < 32_000_000
    assert reports[0].ops_applied == 3 and reports[0].broken is None
    inode = m.files["/huge"]
    assert inode.size == (1 << 62) + size
    (page,) = inode.pages.values()
    assert page.index == inode.nr_pages - 1 and page.data == b"/huge\n"


def test_reclaim_op_with_a_huge_length_costs_the_mapped_pages() -> None:
    """{"op": "reclaim", "length": 2**50} swaps out the pages mapped in the range and
    ends: it walks the populated ptes, not 2**38 addresses."""
    m = Machine(ram_pages=256)
    player = Player(m)
    player.apply(Op("spawn", pid=1))
    p = player.procs[1]
    a = p.mmap(0, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(0, 64, 2):
        p.write(a + i * PAGE, b"x")
    p.read(a + PAGE, 1)  # the zero page: never reclaimed
    player.apply(Op("reclaim", pid=1, addr=a + 5, length=1 << 50))
    assert m.counters.pages_swapped_out == 32
    assert not any(p.pagemap(a + i * PAGE).present for i in range(0, 64, 2))
    assert p.read(a + 62 * PAGE, 1) == b"x"


@pytest.mark.parametrize(("line", "message"), [
    ('{"op": "create", "path": "/x", "length": -1}',
     "t.jsonl:1: op 'create': length -1 is not a file size"),
    ('{"op": "create", "path": "/x", "length": 9223372036854775808}',
     "t.jsonl:1: op 'create': length 9223372036854775808 is not a file size"),
    ('{"op": "write", "addr": 0, "length": 4294967297}',
     "t.jsonl:1: op 'write': length 4294967297 covers more than 1048576 pages"),
])
def test_per_op_limits_name_the_op_and_the_line(line: str, message: str) -> None:
    """A create that is no file size and a read/write over more than MAX_OP_PAGES pages
    are refused when the trace is read, with one message naming file, line and op."""
    with pytest.raises(TraceError) as info:
        parse_trace([line], "t.jsonl")
    assert str(info.value).startswith(message)


def test_a_read_of_exactly_max_op_pages_is_accepted() -> None:
    """The limit is inclusive: an op of MAX_OP_PAGES pages reads as an op."""
    line = f'{{"op": "read", "addr": 0, "length": {MAX_OP_PAGES * PAGE}}}'
    assert parse_trace([line], "t.jsonl")[1][0].length == MAX_OP_PAGES * PAGE
