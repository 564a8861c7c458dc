"""The folio's mm-id slots (CONFIG_MM_ID, 6.15+; include/linux/rmap.h
folio_add_large_mapcount() and folio_sub_large_mapcount()).

A large folio records up to two owning mms, each with the number of its mappings of the
folio, plus a "maybe mapped shared" bit. From them the kernel answers "certainly mapped
exclusively by this mm" without scanning page tables; the answer is never a false
"exclusive", but can be a false "shared" once a third mm has come and gone. Both the
per_page and the no_page_mapcount designs of 6.18 use this tracker (COW reuse of a large
folio in __wp_can_reuse_large_anon_folio() reads it under either config).

The kernel stores these counts offset by -1; they are kept natural here (0 = none).
Checked against include/linux/rmap.h of the CONFIG_MM_ID series (6.15) and 6.18.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .folio import Folio
    from .mm import Mm

S = TypeVar("S", bound="MmIdSlots")


class MmIdSlots:
    """``_large_mapcount``, ``_mm_id[2]``, ``_mm_id_mapcount[2]`` and the shared bit."""

    __slots__ = ("counts", "ids", "large", "shared")

    def __init__(self) -> None:
        self.large = 0
        self.ids: list[Mm | None] = [None, None]
        self.counts = [0, 0]
        self.shared = False

    def add(self, mm: Mm, diff: int) -> None:
        """folio_add_large_mapcount(): ``diff`` more mappings by ``mm``."""
        self.large += diff
        ids, counts = self.ids, self.counts
        if ids[0] is mm:
            counts[0] += diff
        elif ids[1] is mm:
            counts[1] += diff
        elif ids[0] is None:
            ids[0], counts[0] = mm, diff
            if self.large != diff:  # there were other mappings already
                self.shared = True
        elif ids[1] is None:
            ids[1], counts[1] = mm, diff
            self.shared = True  # slot 0 certainly has mappings as well
        # No slot free: the shared bit is already set (both slots are taken).

    def sub(self, mm: Mm, diff: int) -> None:
        """folio_sub_large_mapcount(): ``diff`` fewer mappings by ``mm``. A slot whose
        count reaches zero or would go negative (mappings added while no slot was free) is
        released. Unless ``mm``'s slot still has mappings, the shared bit then clears if
        one slot owns every remaining mapping; that check runs also when ``mm`` has no
        slot at all (its mappings were added while both slots were taken), which is how
        the last mappings of a third mm going away make the folio exclusive again."""
        self.large -= diff
        ids, counts = self.ids, self.counts
        for i in (0, 1):
            if ids[i] is mm:
                counts[i] -= diff
                if counts[i] > 0:
                    return
                counts[i], ids[i] = 0, None
                break
        if self.large in (counts[0], counts[1]):
            self.shared = False

    def exclusive_to(self, mm: Mm) -> bool:
        """folio_mm_id() check of __wp_can_reuse_large_anon_folio(): ``mm`` owns every
        mapping of the folio and the shared bit is clear."""
        if self.shared:
            return False
        for i in (0, 1):
            if self.ids[i] is mm:
                return self.counts[i] == self.large
        return False

    def maybe_shared(self) -> bool:
        """folio_maybe_mapped_shared() for a large folio: one mapping is exclusive;
        otherwise the shared bit decides."""
        return self.large > 1 and self.shared


def slots_of(folio: Folio, cls: type[S]) -> S:
    """The mm-id state ``cls`` a design keeps in ``folio.mc``, created on first use."""
    mc = folio.mc
    if mc is None:
        mc = folio.mc = cls()
    assert isinstance(mc, cls)
    return mc
