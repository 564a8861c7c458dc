# %% [markdown]
# # Lab 2: reclaim, the reason rmap exists
#
# When memory runs low the kernel must take frames back from processes. It picks pages
# from the LRU lists, asks *is this page still in use?* (`page_referenced`: test and
# clear the accessed bit of every pte that maps it) and, if not, unmaps it from every
# process (`try_to_unmap`) and swaps it out. Both questions need the reverse map. This lab
# follows one page through that path, then measures what each rmap scheme's walks cost a
# whole reclaim.
#
# mmcore's default reclaim policy is `lru2`, Linux 2.6's active and inactive lists.

# %%
from mmcore import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.reclaim import ReclaimContext

BASE, PAGE = 0x10000000, 4096
RW, PRIVATE = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED

m = Machine(rmap="anon_vma_chain", ram_pages=64, swap_pages=256)
lru = next(plugin for plugin in m.plugins if type(plugin).info.name == "lru2")
p = m.spawn()
a = p.mmap(BASE, 16 * PAGE, RW, PRIVATE)
for i in range(16):
    p.write(a + i * PAGE, b"data")
print(f"inactive {len(lru.inactive)}, active {len(lru.active)}")

# %% [markdown]
# ## Step 1: the LRU lists
#
# New pages start on the inactive list. `mark_page_accessed()` sets `PG_referenced` on a
# page, and a second call on a page already marked moves it to the active list.
#
# **Predict:** p reads its pages 0 to 3 twice each, with ordinary loads. Then it reads
# the first page of a file twice with `pread`. How many pages are on each list now?

# %% [markdown] student
# *Your answer:*

# %%
for _ in range(2):
    for i in range(4):
        p.read(a + i * PAGE, 1)
print(f"after the loads: inactive {len(lru.inactive)}, active {len(lru.active)}")
m.create_file("/data", b"file contents")
fd = p.open("/data")
for _ in range(2):
    p.pread(fd, 4, 0)
print(f"after two preads: inactive {len(lru.inactive)}, active {len(lru.active)}, "
      f"pgactivate {m.vm_events.pgactivate}")
m.physmem.page(p.pagemap(a).pfn)

# %% [markdown] teacher
# **Answer:** the loads move nothing (16 inactive, 0 active): a CPU access to a mapped
# page only sets the accessed bit of its pte. `mark_page_accessed()` is called by the
# read() and write() system calls on files (filemap_read(), generic_perform_write()),
# so the two preads bring the file's page in (inactive) and then activate it
# (pgactivate 1). A mapped page is promoted only when reclaim's `page_referenced` finds
# its young ptes: that is step 2.

# %% teacher
assert (len(lru.inactive), len(lru.active), m.vm_events.pgactivate) == (16, 1, 1)

# %% [markdown]
# ## Step 2: page_referenced
#
# p forks two children; all three map page 5. Reclaim's `page_referenced` walks the rmap
# and counts the young (accessed) ptes, clearing each one, plus one if `PG_referenced` is
# set (and clears it too).
#
# **Predict:** what does the first call return? A second call right after? And after
# one child reads the page?

# %% [markdown] student
# *Your answer:*

# %%
c1, c2 = p.fork(), p.fork()
pfn = p.pagemap(a + 5 * PAGE).pfn
page = m.physmem.page(pfn)
ctx = ReclaimContext(m, "direct")
first, second = ctx.page_referenced(page), ctx.page_referenced(page)
c1.read(a + 5 * PAGE, 1)
third = ctx.page_referenced(page)
print(f"first {first}, second {second}, after c1 read {third}")

# %% [markdown] teacher
# **Answer:** 1, then 0, then 1. fork gives the children *old* ptes (__copy_present_ptes()
# applies pte_mkold() to the child's copy), and the write that faulted page 5 in did not
# set `PG_referenced`; so only p's pte is young. The first walk clears it, so the second
# finds nothing. c1's read makes its pte young again.

# %% teacher
assert (first, second, third) == (1, 0, 1)

# %% [markdown]
# ## Step 3: try_to_unmap
#
# **Predict:** `m.try_to_unmap(pfn)` swaps page 5 out of every process. How many ptes
# does it clear? Then c2 and p read the page: which reads are major faults (from the swap
# device) and which minor (the page is still in the swap cache)? Do they share one frame
# again?

# %% [markdown] student
# *Your answer:*

# %%
result = m.try_to_unmap(pfn)
major, minor = m.counters.fault_swapin_major, m.counters.fault_swapin_minor
c2.read(a + 5 * PAGE, 1)
p.read(a + 5 * PAGE, 1)
print(f"major +{m.counters.fault_swapin_major - major}, "
      f"minor +{m.counters.fault_swapin_minor - minor}")
print(f"p maps pfn {p.pagemap(a + 5 * PAGE).pfn}, c2 maps pfn {c2.pagemap(a + 5 * PAGE).pfn}")
result

# %% [markdown] teacher
# **Answer:** three ptes, one per process, found by one walk. The first read (c2's) is a
# major fault that reads the slot back into a frame kept in the swap cache; p's read
# finds it there (minor) and maps the same frame. c1 has not touched it, so it still has
# a swap pte.

# %% teacher
assert result.success and len(result.unmapped) == 3
assert m.counters.fault_swapin_major - major == 1 and m.counters.fault_swapin_minor - minor == 1
assert p.pagemap(a + 5 * PAGE).pfn == c2.pagemap(a + 5 * PAGE).pfn

# %% [markdown]
# ## Step 4: what the walks cost under pressure
#
# A parent writes 64 pages and forks 4 children; each child writes every 8th page
# (COW copies). Then the parent writes 128 more pages in a machine of 128 frames, so
# reclaim runs, and every page it considers costs `page_referenced` walks and, for each
# victim, a `try_to_unmap` walk. `m.costs().reclaim_walk` adds up those walks.
#
# **Predict:** do the four schemes reclaim the same pages? Which one probes ptes that
# do not map the page (`wasted`)?

# %% [markdown] student
# *Your answer:*

# %%
def pressure(scheme: str) -> Machine:
    """The workload above under ``scheme``; returns the machine after it."""
    mm = Machine(rmap=scheme, mremap_policy="unshare" if scheme == "anonmm" else None,
                 ram_pages=128, swap_pages=1024)
    parent = mm.spawn()
    base = parent.mmap(BASE, 64 * PAGE, RW, PRIVATE)
    for i in range(64):
        parent.write(base + i * PAGE, b"p")
    for child in [parent.fork() for _ in range(4)]:
        for i in range(0, 64, 8):
            child.write(base + i * PAGE, b"c")
    more = parent.mmap(BASE + 0x1000000, 128 * PAGE, RW, PRIVATE)
    for i in range(128):
        parent.write(more + i * PAGE, b"q")
    return mm


runs = {s: pressure(s) for s in ("pte_chains", "anonmm", "anon_vma", "anon_vma_chain")}
print(f"{'scheme':16} {'walks':>6} {'vmas':>6} {'mms':>6} {'probes':>7} {'wasted':>7} "
      f"{'stolen':>7}")
for name, run in runs.items():
    w = run.costs().reclaim_walk
    ev = run.vm_events
    print(f"{name:16} {w.walks:6} {w.vmas_visited:6} {w.mms_visited:6} {w.ptes_probed:7} "
          f"{w.wasted:7} {ev.pgsteal_kswapd + ev.pgsteal_direct:7}")

# %%
runs["anon_vma"].costs()

# %% [markdown] teacher
# **Answer:** the policy's decisions do not depend on the scheme (every walk finds the
# same mappings), so all four reclaim the same pages with the same number of walks. Only
# anon_vma (2004) wastes probes: its single list holds every vma of the family, and for a
# page that COW made private (a child's copy, or the parent's original of it) it probes
# the same address in the other processes too, where the pte maps a different frame.
# anon_vma_chain visits only the vmas whose anon_vma tree covers the page, at the price
# of interval-tree steps; pte_chains and anonmm visit mms.

# %% teacher
stats = {name: run.costs() for name, run in runs.items()}
assert len({(c.reclaim_walk.walks, tuple(c.reclaim_decisions.items()))
            for c in stats.values()}) == 1
assert stats["anon_vma"].reclaim_walk.wasted > 0
assert all(c.reclaim_walk.wasted == 0 for n, c in stats.items() if n != "anon_vma")
