"""unshare: Linus's mremap rule from the anon_vma RFC2 thread (March 2004).

"In copy_one_pte(), if the page is anonymous and page_count > 1, copy it": mremap then
never moves a page that another process still maps, so a scheme that records a page's
virtual address (anonmm) stays correct. Hugh Dickins implemented it as the early COW of
"rmap 11 mremap moves" (mremap_move_anon_rmap() refusing a shared page, move_page_tables()
calling make_page_exclusive()). Harmless but costly for schemes that do not need it: every
shared page mremap touches is copied (``counters.mremap_page_copies``).

Gap: only present ptes are offered to the policy. rmap 11 also copied in do_swap_page() a
page swapped back in at an address that clashes with its page->index; the core has no hook
for that, so a page swapped out, moved while on swap and then swapped in by two mms is not
unshared (see docs/schemes.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from mmcore import PluginInfo, hookimpl

if TYPE_CHECKING:
    from mmcore import Machine, Page


class MremapUnshare:
    """The ``unshare`` mremap policy."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="unshare",
        kind="mremap_policy",
        summary="copy anonymous pages with page_count > 1 when mremap moves them (Linus, 2004)",
        provides=frozenset({"mremap_unshare"}),
        description=(
            "Linus Torvalds's copy_one_pte() rule, implemented by Hugh Dickins as rmap 11's "
            "early COW: mremap gives the moved mapping a private copy of every anonymous "
            "page whose reference count is above one, so page->index == address stays true "
            "for anonmm. Costs a page copy per shared page moved."),
    )

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    @hookimpl
    def mremap_move_pte(self, page: Page) -> str:
        """copy_one_pte()/can_move_one_pte(): "copy" an anonymous page that has other
        references (page_count > 1), else "move" the pte."""
        return "copy" if page.is_anon and page.refcount > 1 else "move"
