# %% [markdown]
# # Lab 3: mremap after fork
#
# In 2004 two object-based rmap designs competed. **anonmm** (Hugh Dickins) keeps one
# list of the mms of a fork group and records each anonymous page's *virtual address*;
# **anon_vma** (Andrea Arcangeli) keeps a list of vmas and records a *linear index*
# (`vm_pgoff` based), which `mremap` carries along. What happens when a process moves a
# region it still shares with its parent after fork? anonmm cannot find a moved page at
# its old address in the other mms, so its mremap policy `unshare` copies every page the
# mover still shares before moving it. This lab counts those copies.

# %%
from mmcore import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MREMAP_FIXED,
    MREMAP_MAYMOVE,
    PROT_READ,
    PROT_WRITE,
    ConfigError,
    Machine,
)

BASE, PAGE, NPAGES = 0x10000000, 4096, 8
NEW = BASE + 0x100000
RW, PRIVATE = PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED


def scenario(rmap: str, policy: str | None = None) -> dict[str, object]:
    """p writes 8 pages and forks c; c writes page 0 (COW), then moves the region."""
    m = Machine(rmap=rmap, mremap_policy=policy)
    p = m.spawn()
    a = p.mmap(BASE, NPAGES * PAGE, RW, PRIVATE)
    for i in range(NPAGES):
        p.write(a + i * PAGE, b"p%d" % i)
    c = p.fork()
    c.write(a, b"c0")
    moved = c.mremap(a, NPAGES * PAGE, NPAGES * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, NEW)
    shared = sum(p.pagemap(a + i * PAGE).pfn == c.pagemap(moved + i * PAGE).pfn
                 for i in range(NPAGES))
    return {"machine": m, "page copies": m.counters.mremap_page_copies,
            "ptes moved": m.counters.mremap_ptes_moved, "frames still shared": shared,
            "frames in use": m.physmem.nr_used,
            "c reads": [c.read(moved + i * PAGE, 2) for i in range(NPAGES)]}


# %% [markdown]
# ## Step 1: anonmm needs a policy
#
# **Predict:** can a machine run anonmm without an mremap policy?

# %% [markdown] student
# *Your answer:*

# %%
try:
    Machine(rmap="anonmm")
    refused = ""
except ConfigError as exc:
    refused = str(exc)
print(refused or "accepted")

# %% [markdown] teacher
# **Answer:** no. The scheme declares that it needs an mremap policy, and the machine
# refuses the configuration rather than run a scheme whose walks would miss moved pages
# (`anonmm_fullscan`, the other way out, searches every mm of the group instead).

# %% teacher
assert "mremap" in refused

# %% [markdown]
# ## Step 2: count the copies
#
# **Predict:** after c wrote page 0 (so c has its own copy of it) and moved all 8 pages,
# how many pages does each configuration copy? How many frames are in use afterwards,
# and how many of c's pages still share a frame with p?

# %% [markdown] student
# *Your answer:*

# %%
configs = {"anonmm + unshare": ("anonmm", "unshare"), "anon_vma": ("anon_vma", None),
           "anon_vma_chain": ("anon_vma_chain", None),
           "anon_vma_global": ("anon_vma_global", None)}
results = {name: scenario(*cfg) for name, cfg in configs.items()}
keys = ("page copies", "ptes moved", "frames still shared", "frames in use")
print(f"{'':18}" + "".join(f"{k:>21}" for k in keys))
for name, r in results.items():
    print(f"{name:18}" + "".join(f"{r[k]!s:>21}" for k in keys))

# %% [markdown] teacher
# **Answer:** anonmm + unshare copies the 7 pages c still shared with p (page 0 was
# already c's own, so its pte just moves): 16 frames in use and nothing shared any more.
# anon_vma, anon_vma_chain and anon_vma_global index pages by `vm_pgoff`, which the moved
# vma keeps: no copy, 8 ptes moved, 9 frames, 7 still shared.

# %% teacher
anonmm, anon_vma = results["anonmm + unshare"], results["anon_vma"]
assert (anonmm["page copies"], anonmm["frames in use"], anonmm["frames still shared"]) \
    == (7, 16, 0)
for name in ("anon_vma", "anon_vma_chain", "anon_vma_global"):
    r = results[name]
    assert (r["page copies"], r["ptes moved"], r["frames in use"],
            r["frames still shared"]) == (0, 8, 9, 7)

# %% [markdown]
# ## Step 3: nobody lost a byte
#
# Copies or not, c must read what it had: its own page 0 and the parent's data in the
# others.

# %%
for name, r in results.items():
    print(f"{name:18} {r['c reads']}")

# %% teacher
expected = [b"c0"] + [b"p%d" % i for i in range(1, NPAGES)]
assert all(r["c reads"] == expected for r in results.values())

# %% [markdown]
# ## Step 4: the walk of a moved page
#
# **Predict:** under anon_vma, walk the frame of p's page 1. Which (pid, address) pairs
# does it find? Under anonmm + unshare?

# %% [markdown] student
# *Your answer:*

# %%
walks = {}
for name in ("anon_vma", "anonmm + unshare"):
    m = results[name]["machine"]
    assert isinstance(m, Machine)
    walks[name] = m.rmap_walk(m.processes[1].pagemap(BASE + PAGE).pfn)
walks["anon_vma"]

# %% [markdown] teacher
# **Answer:** anon_vma finds p at 0x10001000 *and* c at the new address 0x10101000:
# the page's index is the same in both vmas. Under anonmm the frame is p's alone after
# the copy, so the walk finds p only, at the page's recorded address.

# %% teacher
assert walks["anon_vma"].mappings == [(1, BASE + PAGE), (2, NEW + PAGE)]
assert walks["anonmm + unshare"].mappings == [(1, BASE + PAGE)]
