# %% [markdown]
# # Lab 4: write your own rmap scheme
#
# An rmap scheme is a plugin: a class whose hook methods the core calls as vmas are
# created, forked, split, merged, moved and unmapped, and as anonymous pages are mapped.
# Its one question to answer is `rmap_walk(page)`: *which (vma, address) pairs may map
# this page?* The core probes each candidate's pte, so a scheme may propose too many
# (they cost `wasted` probes) but must never miss one.
#
# Below is a complete, correct and slow scheme: **one list of every anonymous vma in the
# machine**. You will grade it with mmcore's conformance kit (`mmcore.testing`), watch
# the kit catch a bug, and then make the walk cheaper. The hooks are documented in
# `docs/hooks.md`; `plugins/anon_vma.py` is the shortest shipped scheme.

# %%
from collections.abc import Iterator

from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    Page,
    PluginInfo,
    Vma,
    WalkCost,
    hookimpl,
)
from mmcore.testing import ConformanceFailure, run_fork_tree, run_random_sequence


class VmaList:
    """A list of vmas whose pages a walk must consider (the scheme's anon object)."""

    def __init__(self) -> None:
        self.vmas: list[Vma] = []


class GlobalList:
    """Every anonymous vma of the machine on one list; pages record a linear index."""

    info = PluginInfo(name="global_list", kind="rmap", summary="one list of every vma",
                      structs=("anon_vma_2004", "vma_anon_link"))

    def __init__(self, machine: Machine) -> None:
        self.meta = machine.meta
        self.everything = VmaList()

    # --- which list a vma goes on (the design decision) -------------------------------

    def new_list(self, vma: Vma) -> VmaList:
        """The list for a vma faulting its first anonymous page."""
        return self.everything

    def link(self, vma: Vma, lst: object) -> None:
        """Put ``vma`` on ``lst`` (counting the modelled metadata)."""
        assert isinstance(lst, VmaList)
        if not lst.vmas:
            self.meta.alloc("anon_vma_2004")
        lst.vmas.append(vma)
        self.meta.alloc("vma_anon_link")

    # --- per vma ------------------------------------------------------------------

    @hookimpl
    def rmap_anon_prepare(self, vma: Vma) -> object:
        lst = self.new_list(vma)
        self.link(vma, lst)
        return lst

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        dst.anon_vma = src.anon_vma
        self.link(dst, src.anon_vma)

    @hookimpl
    def rmap_vma_split(self, vma: Vma, new: Vma) -> None:
        self.link(new, vma.anon_vma)

    @hookimpl
    def rmap_vma_copy(self, src: Vma, new: Vma) -> None:
        self.link(new, src.anon_vma)

    @hookimpl
    def rmap_vma_merge(self, target: Vma, src: Vma) -> None:
        self.link(target, src.anon_vma)

    @hookimpl
    def rmap_vma_can_merge(self, target: Vma, anon: object | None) -> bool:
        return target.anon_vma is None or anon is None or target.anon_vma is anon

    @hookimpl
    def rmap_vma_unlink(self, vma: Vma) -> None:
        lst = vma.anon_vma
        assert isinstance(lst, VmaList)
        lst.vmas.remove(vma)
        self.meta.free("vma_anon_link")
        if not lst.vmas:
            self.meta.free("anon_vma_2004")

    # --- per page -----------------------------------------------------------------

    @hookimpl
    def rmap_page_new_anon(self, page: Page, vma: Vma, address: int) -> None:
        page.mapping = vma.anon_vma
        page.index = vma.linear_page_index(address)

    @hookimpl
    def rmap_page_dup(self, page: Page, vma: Vma, address: int) -> None:
        if page.mapcount == 1:  # a swap-cache page mapped again: as for a new page
            self.rmap_page_new_anon(page, vma, address)

    @hookimpl
    def rmap_page_remove(self) -> None:
        pass

    @hookimpl
    def rmap_page_move(self) -> None:
        pass  # mremap keeps vm_pgoff, so the linear index still holds

    @hookimpl
    def rmap_walk(self, page: Page, cost: WalkCost) -> Iterator[tuple[Vma, int]]:
        lst = page.mapping
        assert isinstance(lst, VmaList)
        for vma in list(lst.vmas):
            cost.vmas_visited += 1
            addr = vma.address_of(page.index)
            if addr >= 0:
                yield vma, addr


# %% [markdown]
# ## Step 1: grade it
#
# `run_random_sequence` drives hundreds of random mmap, fork, write, mprotect, mremap,
# munmap, swap and exit operations and checks after each one that the walk of every
# frame finds exactly the ptes that map it; `run_fork_tree` is the kernel selftest
# `selftests/mm/rmap.c` as a property. A failure raises `ConformanceFailure` with a
# minimal reproducer.


# %%
def grade(scheme: type) -> str:
    """The kit's verdict on ``scheme``: "pass", or the failure's first lines."""
    try:
        for seed in range(3):
            run_random_sequence(scheme, seed=seed, steps=300, minimize_budget=5)
            run_fork_tree(scheme, seed=seed)
    except ConformanceFailure as failure:
        return "\n".join(str(failure).splitlines()[:12])
    return "pass"


print(grade(GlobalList))

# %% [markdown]
# ## Step 2: a bug the kit catches
#
# **Predict:** this variant forgets to put a fork child's vma on the list. Which check
# fails first, and what will the reproducer do?

# %% [markdown] student
# *Your answer:*


# %%
class Forgetful(GlobalList):
    """GlobalList with a bug: fork children's vmas are never linked."""

    info = PluginInfo(name="forgetful", kind="rmap", summary="forgets fork children",
                      structs=("anon_vma_2004", "vma_anon_link"))

    @hookimpl
    def rmap_vma_fork(self, src: Vma, dst: Vma) -> None:
        dst.anon_vma = src.anon_vma  # ... and no link(dst): the bug


verdict = grade(Forgetful)
print(verdict)

# %% [markdown] teacher
# **Answer:** the first check after a fork that leaves a shared page: the walk of that
# page finds the parent's pte but not the child's. (Unlinking the child's vma at exit,
# which was never linked, would fail next.) The reproducer is a short `replay([...])` of
# the few operations, shrunk from the random sequence, that end in that fork.

# %% teacher
assert verdict != "pass"

# %% [markdown]
# ## Step 3: what the global list costs
#
# Ten unrelated processes (pids 1 to 10) each map and write 4 pages at the same
# address. **Predict:** how many vmas does the walk of pid 4's first page visit, and how
# many of its probes are wasted? And for pid 10's?


# %%
def unrelated_walk(scheme: type, pid: int = 4) -> WalkCost:
    """The walk of ``pid``'s first page when 10 unrelated processes map 4 pages each."""
    m = Machine(rmap=scheme)
    procs = [m.spawn() for _ in range(10)]
    for proc in procs:
        a = proc.mmap(0x10000000, 4 * 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        for i in range(4):
            proc.write(a + i * 4096, b"x")
    return m.rmap_walk(m.processes[pid].pagemap(0x10000000).pfn).cost


unrelated_walk(GlobalList)

# %% [markdown] teacher
# **Answer:** 4 vmas, 3 probes wasted. Every vma is on the one list, in the order they
# faulted, and since all map the same addresses each one covers the page's index and
# costs a probe. The core stops the walk as soon as it has found `mapcount` mappings
# (here 1), so pid 4's page costs 4 visits, and pid 10's all 10 (9 wasted).

# %% teacher
cost, last = unrelated_walk(GlobalList), unrelated_walk(GlobalList, pid=10)
assert (cost.vmas_visited, cost.ptes_probed, cost.wasted) == (4, 4, 3)
assert (last.vmas_visited, last.wasted) == (10, 9)

# %% [markdown]
# ## Step 4: your scheme
#
# Make unrelated processes cost nothing: give each *fork family* its own list, as
# anon_vma (2004) did. Only `new_list` needs to change, plus one rule: two vmas on
# different lists must not merge (`rmap_vma_can_merge` above already refuses that).
# Write `MyScheme` below, then run the two checks after it: the kit must still pass, and
# the walk of step 3 should visit one vma.

# %% student
class MyScheme(GlobalList):
    """Your scheme: change new_list (and anything else you need)."""

    info = PluginInfo(name="my_scheme", kind="rmap", summary="my rmap scheme",
                      structs=("anon_vma_2004", "vma_anon_link"))


# %% teacher
class MyScheme(GlobalList):  # noqa: F811 (only this one is in the teacher version)
    """One list per fork family: a new list at the first fault, joined by every fork
    child, split piece, mremap copy and merge (the 2.6.7 anon_vma, without its sharing
    of a compatible neighbour's list)."""

    info = PluginInfo(name="my_scheme", kind="rmap", summary="one list per fork family",
                      structs=("anon_vma_2004", "vma_anon_link"))

    def new_list(self, vma: Vma) -> VmaList:
        return VmaList()


# %%
print("conformance:", grade(MyScheme))
unrelated_walk(MyScheme)

# %% teacher
assert grade(MyScheme) == "pass"
assert unrelated_walk(MyScheme).vmas_visited == 1
