"""Issue 12 item 5, real trees: mmcore.interval_tree answers every stabbing query exactly
as the list it replaced (the same items, in link order, ``after`` placing an item right
after another as list.insert(index + 1) did), through inserts, removals and re-keys; and
a query visits O(log n + k) nodes, not n."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mmcore.interval_tree import IntervalTree


class Item:
    """A hashable stand-in for a vma or chain (identity equality, as Vma has)."""

    def __init__(self, start: int, last: int) -> None:
        self.start, self.last = start, last


def list_query(model: list[Item], point: int) -> list[Item]:
    """What the lists did: every item in list order whose range holds ``point``."""
    return [it for it in model if it.start <= point <= it.last]


@pytest.mark.parametrize("seed", range(12))
def test_queries_match_the_list_model_in_link_order(seed: int) -> None:
    """Random inserts (appended or after another), removals and re-keys: every point
    query returns the list model's answer in the list model's order, and iteration
    gives the list order."""
    rng = random.Random(seed)
    tree: IntervalTree[Item] = IntervalTree()
    model: list[Item] = []
    for _ in range(400):
        op = rng.random()
        if op < 0.45 or not model:
            start = rng.randrange(64)
            it = Item(start, start + rng.randrange(16))
            after = rng.choice(model) if model and rng.random() < 0.5 else None
            tree.insert(it, it.start, it.last, after=after)
            if after is None:
                model.append(it)
            else:
                model.insert(model.index(after) + 1, it)
        elif op < 0.7:
            it = model.pop(rng.randrange(len(model)))
            tree.remove(it)
        else:
            it = rng.choice(model)
            it.start = rng.randrange(64)
            it.last = it.start + rng.randrange(16)
            tree.update(it, it.start, it.last)
        point = rng.randrange(-2, 82)
        assert tree.query(point) == list_query(model, point)
        assert len(tree) == len(model) and list(tree) == model
    assert all(it in tree for it in model)


def test_after_an_item_not_in_the_tree_appends() -> None:
    """insert(after=x) with x not linked puts the item last, as IMmapList did."""
    tree: IntervalTree[Item] = IntervalTree()
    a, b, stranger = Item(0, 9), Item(0, 9), Item(0, 9)
    tree.insert(a, 0, 9)
    tree.insert(b, 0, 9, after=stranger)
    assert tree.query(5) == [a, b]


def test_bad_inserts_and_removals_raise_and_change_nothing() -> None:
    """A second insert of an item and an empty range are ValueErrors; removing an item
    not in the tree is a KeyError; the tree is unchanged after each."""
    tree: IntervalTree[Item] = IntervalTree()
    a = Item(3, 5)
    tree.insert(a, 3, 5)
    with pytest.raises(ValueError, match="already"):
        tree.insert(a, 3, 5)
    with pytest.raises(ValueError, match="empty range"):
        tree.insert(Item(5, 3), 5, 3)
    with pytest.raises(KeyError):
        tree.remove(Item(3, 5))
    assert list(tree) == [a] and tree.query(4) == [a] and tree.query(6) == []


def depth(node: Any) -> int:
    """Height of the subtree at ``node`` (0 for none)."""
    if node is None:
        return 0
    return 1 + max(depth(node.left), depth(node.right))


def test_the_tree_stays_balanced_so_a_query_is_logarithmic() -> None:
    """4096 ranges inserted in ascending order (the worst case for an unbalanced tree)
    and half of them removed leave a tree of height O(log n), so a stabbing query, which
    descends at most a root-to-leaf path per hit, reads a few dozen nodes where the list
    read all of them; every range is still found."""
    tree: IntervalTree[Item] = IntervalTree()
    items = [Item(i * 10, i * 10 + 4) for i in range(4096)]
    for it in items:
        tree.insert(it, it.start, it.last)
    assert depth(tree._root) <= 3 * 12
    for it in items[::2]:
        tree.remove(it)
    assert depth(tree._root) <= 3 * 11
    assert all(tree.query(it.start + 2) == [it] for it in items[1::2])
    assert tree.query(items[0].start) == []


def test_items_over_one_range_share_a_node_and_keep_link_order() -> None:
    """Structural: a fork family links many chains over one pgoff range; they share a
    single tree node, so linking and unlinking one is a dict operation, not a treap
    split, and a query still returns them in link order (``after`` included). The node
    goes when its last item does."""
    tree: IntervalTree[Item] = IntervalTree()
    items = [Item(0, 9) for _ in range(1000)]
    for it in items:
        tree.insert(it, 0, 9)
    late = Item(0, 9)
    tree.insert(late, 0, 9, after=items[10])
    assert depth(tree._root) == 1
    assert tree.query(3) == [*items[:11], late, *items[11:]]
    for it in items[::3]:
        tree.remove(it)
    other = Item(5, 20)
    tree.insert(other, 5, 20)
    assert depth(tree._root) == 2
    rest = [it for it in [*items[:11], late, *items[11:]] if it not in items[::3]]
    assert tree.query(7) == [*rest, other] and tree.query(15) == [other]
    for it in rest:
        tree.remove(it)
    assert depth(tree._root) == 1 and list(tree) == [other]
