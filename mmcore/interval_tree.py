"""An augmented interval tree of closed ranges [start, last], for the rmap schemes' trees.

The kernel keeps the anon_vma_chains of an anon_vma and the vmas of an address_space's
i_mmap in an interval tree (include/linux/interval_tree_generic.h: an rbtree ordered by
start whose nodes carry ``__subtree_last``, the largest ``last`` below them); 2.6's prio
tree served the same stabbing query. This is that tree as a treap (a balanced binary
search tree by random priorities; the priorities come from a fixed sequence, so runs are
reproducible) with the same augmentation: :meth:`IntervalTree.query` visits O(log n + k)
nodes for k hits, :meth:`insert`, :meth:`remove` and :meth:`update` take O(log n).

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
    """One interval: the item, its range, its place in link order, and the augmentation
    (``subtree_last``, the kernel's ``__subtree_last``)."""

    __slots__ = ("item", "last", "left", "order", "priority", "right", "start",
                 "subtree_last")

    def __init__(self, item: T, start: int, last: int, order: tuple[int, ...]) -> None:
        self.item = item
        self.start = start
        self.last = last
        self.order = order
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


def _split(node: _Node[T] | None, key: tuple[int, tuple[int, ...]]
           ) -> tuple[_Node[T] | None, _Node[T] | None]:
    """The nodes ordered before ``key`` and those at or after it, as two treaps."""
    if node is None:
        return None, None
    if (node.start, node.order) < key:
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


def _delete(node: _Node[T] | None, key: tuple[int, tuple[int, ...]]) -> _Node[T] | None:
    """The treap ``node`` without the node whose key is ``key`` (which must be there)."""
    if node is None:
        raise KeyError(key)
    here = (node.start, node.order)
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

    __slots__ = ("_nodes", "_orders", "_root")

    def __init__(self) -> None:
        self._root: _Node[T] | None = None
        self._nodes: dict[T, _Node[T]] = {}
        self._orders = count()

    def __len__(self) -> int:
        return len(self._nodes)

    def __bool__(self) -> bool:
        return bool(self._nodes)

    def __contains__(self, item: object) -> bool:
        return item in self._nodes

    def __iter__(self) -> Iterator[T]:
        """The items in link order."""
        nodes = sorted(self._nodes.values(), key=_link_order)
        return iter([n.item for n in nodes])

    def insert(self, item: T, start: int, last: int, after: T | None = None) -> None:
        """Link ``item`` over [start, last]: last in link order, or right after ``after``
        when ``after`` is in the tree (interval_tree_insert(), _insert_after())."""
        if item in self._nodes:
            raise ValueError(f"{item!r} is already in the tree")
        if start > last:
            raise ValueError(f"empty range [{start}, {last}]")
        prev = self._nodes.get(after) if after is not None else None
        # Link order as a tuple: an item put right after ``prev`` extends prev's tuple
        # with a number below every earlier extension, so it sorts after prev and
        # before whatever followed prev.
        tail = next(self._orders)
        order = (tail,) if prev is None else (*prev.order, -tail)
        node = _Node(item, start, last, order)
        self._nodes[item] = node
        self._link(node)

    def remove(self, item: T) -> None:
        """Unlink ``item`` (interval_tree_remove()); KeyError if it is not in the tree."""
        node = self._nodes.pop(item)
        self._root = _delete(self._root, (node.start, node.order))

    def update(self, item: T, start: int, last: int) -> None:
        """Give ``item`` the new range [start, last], keeping its place in link order
        (the remove and insert around vma_set_range() in vma_prepare()/vma_complete())."""
        node = self._nodes[item]
        if (node.start, node.last) == (start, last):
            return
        self._root = _delete(self._root, (node.start, node.order))
        node.start, node.last = start, last
        node.left = node.right = None
        node.subtree_last = last
        self._link(node)

    def _link(self, node: _Node[T]) -> None:
        left, right = _split(self._root, (node.start, node.order))
        self._root = _merge(_merge(left, node), right)

    def query(self, point: int) -> list[T]:
        """The items whose range holds ``point``, in link order
        (interval_tree_iter_first()/_next() over [point, point])."""
        hits: list[_Node[T]] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            # Nothing below ``node`` ends at or after ``point``: prune the subtree.
            if node is None or node.subtree_last < point:
                continue
            stack.append(node.left)
            if node.start <= point:  # a right subtree starts at or after node.start
                if point <= node.last:
                    hits.append(node)
                stack.append(node.right)
        if len(hits) > 1:
            hits.sort(key=_link_order)
        return [n.item for n in hits]


def _link_order(node: _Node[T]) -> tuple[int, ...]:
    return node.order
