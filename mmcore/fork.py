"""fork's copy of an address space (kernel/fork.c dup_mmap) and exit_mmap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import VM_DONTCOPY, VM_LOCKED_MASK, VM_WIPEONFORK
from .memory import copy_guard_markers, copy_page_range, zap_pte_range
from .vma_ops import remove_vma

if TYPE_CHECKING:
    from .machine import Machine
    from .mm import Mm
    from .vma import Vma


def dup_mmap(parent: Mm, child: Mm) -> None:
    """dup_mmap(): copy every vma of ``parent`` into ``child``.

    VM_DONTCOPY vmas are skipped; VM_LOCKED is not inherited; a VM_WIPEONFORK vma is copied
    empty (no anon_vma, no ptes). Otherwise anon_vma_fork links the child's vma, the
    shared-file vma is inserted right after the parent's in i_mmap, and page tables are
    copied only for vmas that have anon rmap state (vma_needs_copy()): unfaulted and
    shared vmas fault their pages in again in the child, but keep their guard markers.
    """
    m = parent.machine
    m.hook.rmap_mm_init(mm=child, parent=parent)
    child.start_brk, child.brk = parent.start_brk, parent.brk
    for vma in parent.vmas:
        if vma.flags & VM_DONTCOPY:
            continue
        new = vma.copy()
        new.mm = child
        new.flags &= ~VM_LOCKED_MASK
        new.anon_vma = None
        wipe = bool(vma.flags & VM_WIPEONFORK)
        if not wipe and vma.anon_vma is not None and _anon_vma_fork(m, vma, new) is None:
            from .errors import PluginError
            raise PluginError("rmap_vma_fork left the child's anon_vma unset",
                              hook="rmap_vma_fork")
        child.vmas.insert(new)
        if new.file is not None:
            m.file_vma_link(new, after=vma)
        if not wipe and vma.anon_vma is not None:
            copy_page_range(new, vma)
        elif not wipe:
            copy_guard_markers(new, vma)


def _anon_vma_fork(m: Machine, src: Vma, dst: Vma) -> object | None:
    """anon_vma_fork() through the scheme's ``rmap_vma_fork``; returns the child's
    anon_vma as the hook left it. A function of its own because the caller has just set
    ``dst.anon_vma = None``: there mypy keeps the attribute narrowed to None across the
    hook call that sets it, and a mypyc build turns that wrong type into a TypeError."""
    m.hook.rmap_vma_fork(src=src, dst=dst)
    return dst.anon_vma


def exit_mmap(mm: Mm) -> None:
    """exit_mmap(): unmap every vma, unlink its rmap, then let the scheme drop the mm."""
    for vma in mm.vmas:
        zap_pte_range(vma, vma.start, vma.end, drop_markers=True)
        remove_vma(vma)
    mm.machine.hook.rmap_mm_exit(mm=mm)
