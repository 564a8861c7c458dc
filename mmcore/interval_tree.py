"""An augmented interval tree of closed ranges [start, last], for the rmap schemes' trees.

The kernel keeps the anon_vma_chains of an anon_vma and the vmas of an address_space's
i_mmap in an interval tree (include/linux/interval_tree_generic.h: an rbtree ordered by
start whose nodes carry ``__subtree_last``, the largest ``last`` below them); 2.6's prio
tree served the same stabbing query. This is that tree as a treap (a balanced binary
search tree by random priorities; the priorities come from a fixed sequence, so runs are
reproducible) with the same augmentation, whose nodes are the distinct ranges: the items
linked over one range share its node (the kernel gives each its own rbtree node, but
every chain a fork family links into one anon_vma has the same range, so a chain of
forks d deep would otherwise cost d tree operations of O(log d) per fork).
:meth:`IntervalTree.query` visits O(log r + k) nodes for k hits among r ranges;
:meth:`insert`, :meth:`remove` and :meth:`update` take O(1) on a range already in the
tree and O(log r) otherwise.

Only the walk's real time changes with it. The schemes keep counting the walk's modelled
cost (``tree_steps``) themselves, and :meth:`query` returns its hits in the order the
items were linked (the order of the kernel's list heads before interval trees, and of the
lists mmcore kept before this tree), so which candidate a walk reaches first, and so every
counter and result, is the same as before. ``insert(..., after=x)`` links an item right
after ``x`` in that order (vma_interval_tree_insert_after() at fork).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from itertools import count
from typing import Generic, TypeVar

__all__ = ["IntervalTree"]

T = TypeVar("T", bound=Hashable)

#: Weyl-sequence multiplier (2^64 / golden ratio): successive counters give well-spread
#: treap priorities without a random generator per tree.
_GOLDEN = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_priorities = count(1)


class _Node(Generic[T]):
    """One distinct range [start, last], the items linked over it with their places in
    link order, and the augmentation (``subtree_last``, the kernel's
    ``__subtree_last``)."""

    __slots__ = ("items", "last", "left", "priority", "right", "start", "subtree_last")

    def __init__(self, start: int, last: int) -> None:
        self.start = start
        self.last = last
        #: The items over this range, each with its place in link order.
        self.items: dict[T, tuple[int, ...]] = {}
        self.priority = (next(_priorities) * _GOLDEN) & _MASK
        self.left: _Node[T] | None = None
        self.right: _Node[T] | None = None
        self.subtree_last = last


def _fix(node: _Node[T]) -> _Node[T]:
    """Recompute ``node.subtree_last`` from its children (the augment callback)."""
    high = node.last
    left, right = node.left, node.right
    if left is not None and left.subtree_last > high:
        high = left.subtree_last
    if right is not None and right.subtree_last > high:
        high = right.subtree_last
    node.subtree_last = high
    return node


def _split(node: _Node[T] | None, key: tuple[int, int]
           ) -> tuple[_Node[T] | None, _Node[T] | None]:
    """The nodes ordered before the range ``key`` and those at or after it, as two
    treaps."""
    if node is None:
        return None, None
    if (node.start, node.last) < key:
        node.right, right = _split(node.right, key)
        return _fix(node), right
    left, node.left = _split(node.left, key)
    return left, _fix(node)


def _merge(left: _Node[T] | None, right: _Node[T] | None) -> _Node[T] | None:
    """One treap of ``left`` and ``right`` (every key of ``left`` is the smaller)."""
    if left is None:
        return right
    if right is None:
        return left
    if left.priority > right.priority:
        left.right = _merge(left.right, right)
        return _fix(left)
    right.left = _merge(left, right.left)
    return _fix(right)


def _delete(node: _Node[T] | None, key: tuple[int, int]) -> _Node[T] | None:
    """The treap ``node`` without the node of range ``key`` (which must be there)."""
    if node is None:
        raise KeyError(key)
    here = (node.start, node.last)
    if here == key:
        return _merge(node.left, node.right)
    if key < here:
        node.left = _delete(node.left, key)
    else:
        node.right = _delete(node.right, key)
    return _fix(node)


class IntervalTree(Generic[T]):
    """Items keyed by a closed range [start, last]; each item is in the tree at most
    once. ``len()``, ``in`` and iteration (in link order) work as on the list it
    replaces."""

    __slots__ = ("_nodes", "_orders", "_ranges", "_root")

    def __init__(self) -> None:
        self._root: _Node[T] | None = None
        #: The node of each item.
        self._nodes: dict[T, _Node[T]] = {}
        #: The node of each distinct range.
        self._ranges: dict[tuple[int, int], _Node[T]] = {}
        self._orders = count()

    def __len__(self) -> int:
        return len(self._nodes)

    def __bool__(self) -> bool:
        return bool(self._nodes)

    def __contains__(self, item: object) -> bool:
        return item in self._nodes

    def __iter__(self) -> Iterator[T]:
        """The items in link order."""
        pairs = [pair for node in self._ranges.values() for pair in node.items.items()]
        pairs.sort(key=_link_order)
        return iter([item for item, _ in pairs])

    def insert(self, item: T, start: int, last: int, after: T | None = None) -> None:
        """Link ``item`` over [start, last]: last in link order, or right after ``after``
        when ``after`` is in the tree (interval_tree_insert(), _insert_after())."""
        if item in self._nodes:
            raise ValueError(f"{item!r} is already in the tree")
        if start > last:
            raise ValueError(f"empty range [{start}, {last}]")
        # Link order as a tuple: an item put right after ``after`` extends its tuple
        # with a number below every earlier extension, so it sorts after ``after`` and
        # before whatever followed it.
        tail = next(self._orders)
        order: tuple[int, ...] = (tail,)
        if after is not None and after in self._nodes:
            order = (*self._nodes[after].items[after], -tail)
        self._add(item, start, last, order)

    def _add(self, item: T, start: int, last: int, order: tuple[int, ...]) -> None:
        """Put ``item`` at ``order`` on the node of [start, last], linking a new node
        into the treap for a range not yet in it."""
        node = self._ranges.get((start, last))
        if node is None:
            node = self._ranges[start, last] = _Node(start, last)
            left, right = _split(self._root, (start, last))
            self._root = _merge(_merge(left, node), right)
        node.items[item] = order
        self._nodes[item] = node

    def _take(self, item: T) -> tuple[int, ...]:
        """Unlink ``item``, and its node if no other item shares the range; returns the
        item's place in link order."""
        node = self._nodes.pop(item)
        order = node.items.pop(item)
        if not node.items:
            key = (node.start, node.last)
            del self._ranges[key]
            self._root = _delete(self._root, key)
        return order

    def remove(self, item: T) -> None:
        """Unlink ``item`` (interval_tree_remove()); KeyError if it is not in the tree."""
        self._take(item)

    def update(self, item: T, start: int, last: int) -> None:
        """Give ``item`` the new range [start, last], keeping its place in link order
        (the remove and insert around vma_set_range() in vma_prepare()/vma_complete())."""
        node = self._nodes[item]
        if (node.start, node.last) == (start, last):
            return
        self._add(item, start, last, self._take(item))

    def query(self, point: int) -> list[T]:
        """The items whose range holds ``point``, in link order
        (interval_tree_iter_first()/_next() over [point, point])."""
        hits: list[tuple[T, tuple[int, ...]]] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            # Nothing below ``node`` ends at or after ``point``: prune the subtree.
            if node is None or node.subtree_last < point:
                continue
            stack.append(node.left)
            if node.start <= point:  # a right subtree starts at or after node.start
                if point <= node.last:
                    hits.extend(node.items.items())
                stack.append(node.right)
        if len(hits) > 1:
            hits.sort(key=_link_order)
        return [item for item, _ in hits]


def _link_order(pair: tuple[T, tuple[int, ...]]) -> tuple[int, ...]:
    return pair[1]
