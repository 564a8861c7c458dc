# %% [markdown]
# # Lab 1: copy-on-write and reverse mapping
#
# A process maps four pages, writes two, reads one, and forks. You will watch the page
# tables as fork shares the frames and copy-on-write splits them again, then ask the
# question reclaim asks: *who maps this page?*, and see how each rmap scheme answers it.
#
# Every number here comes from the simulator. At each **Predict** write your answer
# before you run the next cell. Objects display as tables (`p`, `m.costs()`...), and
# `print(vmprint(p))` draws a page table.

# %%
from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    Machine,
    WalkCost,
)
from mmcore.viz import anon_vma_tree_dot, layout, rmap_dot, vmprint

BASE, PAGE = 0x10000000, 4096
m = Machine(rmap="anon_vma_chain")
p = m.spawn()
a = p.mmap(BASE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
print(f"right after mmap: {len(p.mm.pgtable)} ptes")

# %% [markdown]
# ## Step 1: demand paging
#
# **Predict:** p writes pages 0 and 1 and reads page 2. How many ptes will its page table
# hold, which frames (pfns) will they map, and which of them are writable?

# %% [markdown] student
# *Your answer:*

# %%
p.write(a, b"zero")
p.write(a + PAGE, b"one")
p.read(a + 2 * PAGE, 1)
print(vmprint(p))

# %% [markdown] teacher
# **Answer:** three ptes. The writes allocated frames 1 and 2 (writable, dirty,
# mapcount 1); the read of an untouched page maps the shared zero page, pfn 0, read-only
# with mapcount 0. Page 3 was never touched and has no pte.

# %% teacher
assert [p.pagemap(a + i * PAGE).pfn for i in range(3)] == [1, 2, 0]
assert len(p.mm.pgtable) == 3 and m.kpagecount(1) == 1 and m.kpagecount(0) == 0

# %% [markdown]
# ## Step 2: fork
#
# **Predict:** p forks c. Which frames does c map? What happens to the `w` bit of p's
# ptes, and what is the mapcount of frames 1 and 2?

# %% [markdown] student
# *Your answer:*

# %%
c = p.fork()
print(vmprint(p))
print(vmprint(c))

# %% [markdown] teacher
# **Answer:** fork copies the ptes, not the pages: c maps frames 1 and 2 (and the zero
# page), both mapcounts are 2, and both processes' ptes lost their `w` bit, so the next
# write by either one faults: copy-on-write.

# %% teacher
assert [c.pagemap(a + i * PAGE).pfn for i in range(3)] == [1, 2, 0]
assert m.kpagecount(1) == m.kpagecount(2) == 2

# %% [markdown]
# ## Step 3: copy on write
#
# **Predict:** c writes page 0. Which process gets a new frame, which pfn is it, and
# whose mapcount drops?

# %% [markdown] student
# *Your answer:*

# %%
before = m.counters.fault_cow_copy
c.write(a, b"ZERO")
print(vmprint(c))
print(f"COW copies: {m.counters.fault_cow_copy - before}; kpagecount(1) = {m.kpagecount(1)}")
print(f"p reads {p.read(a, 4)!r}, c reads {c.read(a, 4)!r}")

# %% [markdown] teacher
# **Answer:** the writer, c, gets the copy, in the lowest free frame, 3; frame 1 keeps
# only p's mapping (mapcount 1). Each process reads its own data.

# %% teacher
assert c.pagemap(a).pfn == 3 and m.kpagecount(1) == 1
assert m.counters.fault_cow_copy - before == 1

# %% [markdown]
# ## Step 4: reuse
#
# **Predict:** p now writes page 0. Frame 1 is mapped only by p, but its pte is
# read-only. Does the kernel copy it again?

# %% [markdown] student
# *Your answer:*

# %%
reuse, copies = m.counters.fault_cow_reuse, m.counters.fault_cow_copy
p.write(a, b"Zero")
print(f"copies: +{m.counters.fault_cow_copy - copies}, reuses: "
      f"+{m.counters.fault_cow_reuse - reuse}")
p

# %% [markdown] teacher
# **Answer:** no copy. The last mapper of a COW page just makes its pte writable again
# (do_wp_page's reuse path), so p keeps frame 1.

# %% teacher
assert m.counters.fault_cow_copy == copies and m.counters.fault_cow_reuse == reuse + 1
assert p.pagemap(a).pfn == 1

# %% [markdown]
# ## Step 5: who maps this page?
#
# Frame 2 (page 1) is still shared. The truth comes from scanning every page table;
# the rmap walk must find the same pairs without that scan.
#
# **Predict:** which (pid, address) pairs map frame 2? How many vmas will the
# anon_vma_chain walk visit?

# %% [markdown] student
# *Your answer:*

# %%
pfn = p.pagemap(a + PAGE).pfn
print("truth:", [(pid, hex(addr)) for pid, addr in m.rmap_truth(pfn)])
walk = m.rmap_walk(pfn)
walk

# %% [markdown]
# The walk's route, drawn (an SVG with Graphviz installed, an outline without), and the
# vmas as rulers. `m.trace_walk(pfn)` runs the walk again and keeps every probe: each vma
# it probed is filled in the picture, green where the pte maps the page, orange where
# the probe was wasted, and labelled with the probe's number.

# %%
print(layout(p, c))
rmap_dot(m, pfn, m.trace_walk(pfn))

# %%
anon_vma_tree_dot(m)

# %% [markdown] teacher
# **Answer:** (1, 0x10001000) and (2, 0x10001000). The page's anon_vma is p's (the
# root); its interval tree holds p's vma and c's vma (through c's chain), and both cover
# the page: two vmas visited, two ptes probed, no probe wasted.

# %% teacher
assert walk.mappings == [(1, BASE + PAGE), (2, BASE + PAGE)] == m.rmap_truth(pfn)
assert (walk.cost.vmas_visited, walk.cost.ptes_probed, walk.cost.wasted) == (2, 2, 0)

# %% [markdown]
# ## Step 6: compare the schemes
#
# A parent writes 8 pages and forks 8 children; each child then writes (COW-copies)
# page 0. We walk (a) page 1, which all 9 processes still share, and (b) the oldest
# child's private copy of page 0.
#
# **Predict:** which scheme visits the fewest vmas or mms for (a)? For (b)?

# %% [markdown] student
# *Your answer:*

# %%
SCHEMES = ("pte_chains", "anonmm", "anon_vma", "anon_vma_chain")


def compare(scheme: str) -> tuple[WalkCost, WalkCost]:
    """Walk costs for a page shared by 9 processes and a child's private copy."""
    mm = Machine(rmap=scheme, mremap_policy="unshare" if scheme == "anonmm" else None)
    parent = mm.spawn()
    base = parent.mmap(BASE, 8 * PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    for i in range(8):
        parent.write(base + i * PAGE, b"p")
    children = [parent.fork() for _ in range(8)]
    for child in children:
        child.write(base, b"c")
    shared = mm.rmap_walk(parent.pagemap(base + PAGE).pfn).cost
    private = mm.rmap_walk(children[0].pagemap(base).pfn).cost
    return shared, private


costs = {name: compare(name) for name in SCHEMES}
print(f"{'scheme':16} {'shared: vmas':>12} {'mms':>4} {'probes':>6}   "
      f"{'private: vmas':>13} {'mms':>4} {'probes':>6}")
for name, (shared, private) in costs.items():
    print(f"{name:16} {shared.vmas_visited:12} {shared.mms_visited:4} "
          f"{shared.ptes_probed:6}   {private.vmas_visited:13} {private.mms_visited:4} "
          f"{private.ptes_probed:6}")

# %% [markdown] teacher
# **Answer:** every scheme probes 9 ptes for the shared page: it has 9 mappings.
# For the private copy, anon_vma_chain looks in the child's own anon_vma and visits one
# vma; anon_vma (2004) walks the family's list, newest vma first, until it finds the
# oldest child; pte_chains goes straight to the one pte; anonmm starts at the mm that
# faulted the page.

# %% teacher
assert all(shared.ptes_probed >= 9 for shared, _ in costs.values())
assert costs["anon_vma_chain"][1].vmas_visited == 1
assert costs["anon_vma"][1].vmas_visited > costs["anon_vma_chain"][1].vmas_visited
assert costs["pte_chains"][1].ptes_probed == 1

# %% [markdown]
# ## Replay it, step by step
#
# The same fork-and-COW story, one statement at a time: the vmas, each page table (rows
# the step changed are highlighted) and who maps p's page 1, under two schemes side by
# side. Use Play, the slider, or Prev and Next. (`stepthrough.export_html("fork.html")`
# writes it as one offline HTML file, for a course page.)

# %%
from mmcore_contrib.labs import stepthrough

stepthrough.show(stepthrough.FORK_AND_COW, rmaps=("anon_vma_chain", "anon_vma"))

# %% [markdown]
# ## Your turn
#
# Seeded exercises on the same ideas, with answers computed by the simulator:
#
#     python -m mmcore_contrib.labs.exercises cow --seed 1
#     python -m mmcore_contrib.labs.exercises rmap --seed 1 --answers
