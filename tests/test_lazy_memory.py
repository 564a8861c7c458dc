"""Memory the simulation has not used costs nothing (issue 14 item 6): free frames and
swap slots are a lazy pool, so a huge Machine is cheap until its memory is touched."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.freepool import FreePool


@given(st.integers(0, 40), st.lists(st.booleans(), max_size=120))
def test_free_pool_hands_out_numbers_in_the_order_of_the_old_free_list(
        size: int, takes: list[bool]) -> None:
    """FreePool gives exactly the sequence a list [end-1, ..., first] popped from its
    end and appended to on free gives: freed numbers LIFO, then the lowest unused."""
    pool, model = FreePool(1, size + 1), list(range(size, 0, -1))
    held: list[int] = []
    for take in takes:
        if take and model:
            n = pool.pop()
            assert n == model.pop()
            held.append(n)
        elif held:
            n = held.pop(len(held) // 2)
            pool.append(n)
            model.append(n)
        assert pool.nr == len(model)


def test_free_pool_pop_from_empty_raises_index_error() -> None:
    """An exhausted pool raises IndexError, as list.pop() did."""
    pool = FreePool(0, 1)
    assert pool.pop() == 0
    try:
        pool.pop()
    except IndexError:
        return
    raise AssertionError("pop from an empty pool did not raise")


def test_huge_machine_costs_nothing_until_its_memory_is_used() -> None:
    """Machine(ram_pages=swap_pages=2**24) (64 GiB of RAM and of swap) is built and
    faults a page using under 2 MB of Python memory; it used 1.5 GB when every free
    frame and slot was a list entry."""
    tracemalloc.start()
    try:
        m = Machine(ram_pages=1 << 24, swap_pages=1 << 24)
        p = m.spawn()
        a = p.mmap(0, 1 << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        p.write(a + (1 << 29), b"x")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert m.physmem.nr_free == (1 << 24) - 2 and m.swap.nr_free == 1 << 24
    assert p.read(a + (1 << 29), 1) == b"x"


def test_negative_swap_pages_is_refused() -> None:
    """Machine(swap_pages=-1) raises ValueError naming swap_pages (0 means no swap)."""
    with pytest.raises(ValueError, match="swap_pages"):
        Machine(swap_pages=-1)
