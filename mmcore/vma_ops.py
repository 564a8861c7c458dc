"""VMA split, merge, link and removal: the rules of mm/vma.c.

The anonymous part of every merge decision is asked of the rmap scheme
(``rmap_vma_can_merge``), because what "compatible anon state" means is exactly where the
schemes differ: anon_vma refuses two different anon_vmas, anon_vma_chain also refuses to
grow fork children (is_mergeable_anon_vma since 6.16), pte_chains and anonmm never refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, VM_IGNORE_MERGE, VM_SPECIAL
from .errors import ENOMEM, syscall_error
from .huge_memory import split_huge_pmd_address

if TYPE_CHECKING:
    from .fs import OpenFile
    from .mm import Mm
    from .vma import Vma


def vma_link(mm: Mm, vma: Vma) -> None:
    """vma_link(): insert a new vma into the mm and its file's i_mmap."""
    mm.vmas.insert(vma)
    if vma.file is not None:
        mm.machine.file_vma_link(vma)


def unlink_anon(vma: Vma) -> None:
    """unlink_anon_vmas(): drop the vma's anon rmap links (a no-op if never prepared)."""
    if vma.anon_vma is not None:
        vma.mm.machine.hook.rmap_vma_unlink(vma=vma)
        vma.anon_vma = None


def remove_vma(vma: Vma) -> None:
    """Detach ``vma`` from its mm, its file and its anon rmap (its ptes must be gone)."""
    mm = vma.mm
    unlink_anon(vma)
    if vma.file is not None:
        mm.machine.file_vma_unlink(vma)
    mm.vmas.remove(vma)


def split_vma(vma: Vma, addr: int, new_below: bool, check_limit: bool = True) -> Vma:
    """__split_vma(): cut ``vma`` at ``addr``; return the new piece.

    With ``new_below`` the new piece is the lower part [vm_start, addr); otherwise it is the
    upper part [addr, vm_end), whose vm_pgoff advances by the pages skipped. Both pieces
    share the anon_vma (anon_vma_clone through ``rmap_vma_split``). split_vma() refuses
    with ENOMEM once map_count has reached vm.max_map_count.
    """
    mm = vma.mm
    m = mm.machine
    if check_limit and mm.map_count >= m.max_map_count:
        raise syscall_error(ENOMEM, "split_vma")
    split_huge_pmd_address(vma, addr)  # vma_adjust_trans_huge()
    new = vma.copy()
    delta = (addr - vma.start) >> PAGE_SHIFT
    if new_below:
        new.end = addr
        mm.vmas.set_range(vma, addr, vma.end, vma.pgoff + delta)
    else:
        new.start = addr
        new.pgoff = vma.pgoff + delta
        mm.vmas.set_range(vma, vma.start, addr, vma.pgoff)
    if new.anon_vma is not None:
        m.hook.rmap_vma_split(vma=vma, new=new)
    vma_link(mm, new)
    m.counters.vma_splits += 1
    m.emit("split", mm.owner_pid, start=min(vma.start, new.start),
           addr=addr, end=max(vma.end, new.end))
    return new


@dataclass
class MergeRange:
    """struct vma_merge_struct: a proposed range and what it would look like."""

    mm: Mm
    start: int
    end: int
    flags: int
    pgoff: int
    file: OpenFile | None
    anon: object | None = None
    anon_name: str | None = None
    prev: Vma | None = None
    next: Vma | None = None
    middle: Vma | None = None
    copied_from: Vma | None = None

    @property
    def pages(self) -> int:
        """Pages in the range."""
        return (self.end - self.start) >> PAGE_SHIFT


def _is_mergeable_vma(r: MergeRange, vma: Vma) -> bool:
    """is_mergeable_vma(): flags (but VM_IGNORE_MERGE), file and anon name all equal."""
    return (
        not (vma.flags ^ r.flags) & ~VM_IGNORE_MERGE
        and vma.file is r.file
        and vma.anon_name == r.anon_name
    )


def _can_merge_anon(r: MergeRange, target: Vma) -> bool:
    """is_mergeable_anon_vma(), decided by the rmap scheme."""
    return bool(target.mm.machine.hook.rmap_vma_can_merge(
        target=target, src=r.middle, anon=r.anon, copied_from=r.copied_from))


def _can_merge_left(r: MergeRange) -> bool:
    """can_vma_merge_left() + can_vma_merge_after(): prev ends at start, pgoff contiguous."""
    prev = r.prev
    return (prev is not None and prev.end == r.start
            and _is_mergeable_vma(r, prev) and _can_merge_anon(r, prev)
            and prev.pgoff + prev.pages == r.pgoff)


def _can_merge_right(r: MergeRange, merge_left: bool) -> bool:
    """can_vma_merge_right() + can_vma_merge_before(); when both sides merge, prev and next
    must also be compatible with each other (are_anon_vmas_compatible)."""
    nxt = r.next
    if (nxt is None or nxt.start != r.end or not _is_mergeable_vma(r, nxt)
            or not _can_merge_anon(r, nxt) or nxt.pgoff != r.pgoff + r.pages):
        return False
    if not merge_left:
        return True
    prev = r.prev
    assert prev is not None
    return prev.anon_vma is None or nxt.anon_vma is None or prev.anon_vma is nxt.anon_vma


def dup_anon_vma(dst: Vma, src: Vma | None) -> None:
    """dup_anon_vma(): if ``dst`` grows over ``src``'s anon pages, it must share the anon
    object ("make sure the expanding vma has anon_vma set")."""
    if src is not None and src.anon_vma is not None and dst.anon_vma is None:
        dst.anon_vma = src.anon_vma
        dst.mm.machine.hook.rmap_vma_merge(target=dst, src=src)


def _merged(mm: Mm, target: Vma, sticky: int = 0) -> Vma:
    """Count and report a merge whose survivor is ``target``.

    ``sticky`` are the VM_STICKY bits of every piece the merge absorbed (the range's own
    flags, the target, a deleted next): a sticky flag never prevents a merge
    (is_mergeable_vma() ignores VM_IGNORE_MERGE = VM_STICKY) and the merged vma keeps it
    (vma_expand() / vma_merge_existing_range(): ``vm_flags_set(target, sticky_flags)``).
    """
    target.flags |= sticky & VM_IGNORE_MERGE
    m = mm.machine
    m.counters.vma_merges += 1
    m.emit("merge", mm.owner_pid, start=target.start, end=target.end)
    return target


def vma_merge_new_range(r: MergeRange) -> Vma | None:
    """vma_merge_new_range(): try to place the new range [start, end) into prev and/or next.

    Returns the vma that now covers the range, or None (the caller creates a new vma).
    Used by mmap, brk, mremap's copy_vma and in-place expansion (vma_merge_extend).
    """
    if r.flags & VM_SPECIAL or (r.prev is None and r.next is None):
        return None
    mm = r.mm
    left = _can_merge_left(r)
    right = _can_merge_right(r, left)
    if not left and not right:
        return None
    prev, nxt = r.prev, r.next
    if left and right:
        assert prev is not None and nxt is not None
        dup_anon_vma(prev, nxt)
        if prev.anon_vma is None:
            dup_anon_vma(prev, r.copied_from)
        sticky = r.flags | prev.flags | nxt.flags
        remove_vma(nxt)
        mm.vmas.set_range(prev, prev.start, nxt.end, prev.pgoff)
        return _merged(mm, prev, sticky)
    if left:
        assert prev is not None
        if prev.anon_vma is None:
            dup_anon_vma(prev, r.copied_from)
        mm.vmas.set_range(prev, prev.start, r.end, prev.pgoff)
        return _merged(mm, prev, r.flags)
    assert nxt is not None
    if nxt.anon_vma is None:
        dup_anon_vma(nxt, r.copied_from)
    mm.vmas.set_range(nxt, r.start, nxt.end, r.pgoff)
    return _merged(mm, nxt, r.flags)


def vma_merge_existing_range(r: MergeRange) -> Vma | None:
    """vma_merge_existing_range(): [start, end) of ``middle`` is changing to ``flags``;
    merge it into prev and/or next when they become compatible.

    The cases (mm/vma.c)::

        merge both:  prev extends over middle and next (both deleted)
        merge left:  prev extends to end; middle shrinks from the left or is deleted
        merge right: next extends down to start; middle shrinks or is deleted
    """
    middle = r.middle
    assert middle is not None
    mm = r.mm
    left_side = r.start == middle.start
    right_side = r.end == middle.end
    if r.flags & VM_SPECIAL or (not left_side and not right_side):
        return None
    merge_left = left_side and _can_merge_left(r)
    merge_right = right_side and _can_merge_right(r, merge_left)
    if not merge_left and not merge_right:
        return None
    delete_middle = left_side and right_side
    prev, nxt = r.prev, r.next
    if merge_left and merge_right:
        assert prev is not None and nxt is not None
        dup_anon_vma(prev, nxt if nxt.anon_vma is not None else middle)
        end = nxt.end
        sticky = r.flags | prev.flags | nxt.flags
        remove_vma(middle)
        remove_vma(nxt)
        mm.vmas.set_range(prev, prev.start, end, prev.pgoff)
        return _merged(mm, prev, sticky)
    if merge_left:
        assert prev is not None
        dup_anon_vma(prev, middle)
        if delete_middle:
            remove_vma(middle)
        else:
            split_huge_pmd_address(middle, r.end)  # vma_adjust_trans_huge()
            mm.vmas.set_range(middle, r.end, middle.end,
                              middle.pgoff + ((r.end - middle.start) >> PAGE_SHIFT))
        mm.vmas.set_range(prev, prev.start, r.end, prev.pgoff)
        return _merged(mm, prev, r.flags)
    assert nxt is not None
    dup_anon_vma(nxt, middle)
    if delete_middle:
        remove_vma(middle)
    else:
        split_huge_pmd_address(middle, r.start)  # vma_adjust_trans_huge()
        mm.vmas.set_range(middle, middle.start, r.start, middle.pgoff)
    mm.vmas.set_range(nxt, r.start, nxt.end, r.pgoff)
    return _merged(mm, nxt, r.flags)


def vma_modify(vma: Vma, start: int, end: int, flags: int,
               anon_name: str | None = None, rename: bool = False) -> Vma:
    """vma_modify_flags()/vma_modify_name(): give [start, end) of ``vma`` new flags (or a new
    anon name); merge with a neighbour if possible, else split off the range.

    Returns the vma that now covers exactly [start, end) with the new attributes.
    """
    mm = vma.mm
    name = anon_name if rename else vma.anon_name
    r = MergeRange(mm, start, end, flags, vma.linear_page_index(start), vma.file,
                   anon=vma.anon_vma, anon_name=name, middle=vma,
                   prev=mm.vmas.prev(vma), next=mm.vmas.next(vma))
    merged = vma_merge_existing_range(r)
    if merged is not None:
        # vma_modify_flags(): "sticky flags may have been retained, so propagate them".
        merged.flags = flags | (merged.flags & VM_IGNORE_MERGE)
        merged.anon_name = name
        return merged
    if vma.start < start:
        split_vma(vma, start, new_below=True)
    if vma.end > end:
        split_vma(vma, end, new_below=False)
    vma.flags = flags
    vma.anon_name = name
    return vma


def new_anon_vma_merge_range(mm: Mm, start: int, end: int, flags: int, pgoff: int,
                             file: OpenFile | None) -> MergeRange:
    """A MergeRange for a brand-new mapping at [start, end), neighbours filled in."""
    prev = mm.vmas.prev_of(start)
    nxt = mm.vmas.next_from(end)
    return MergeRange(mm, start, end, flags, pgoff, file, prev=prev, next=nxt)
