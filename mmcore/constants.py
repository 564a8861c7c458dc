"""Linux x86-64 constants: syscall flag values, vm_flags bits and the smaps mnemonics.

Values are those of the uapi headers (include/uapi/asm-generic/mman-common.h,
include/uapi/linux/mman.h) and of include/linux/mm.h for the kernel-internal vm_flags.
"""

from __future__ import annotations

__all__ = [
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "PAGE_MASK",
    "TASK_SIZE",
    "MAX_LFS_FILESIZE",
    "MMAP_MIN_ADDR",
    "MMAP_BASE",
    "DEFAULT_BRK_START",
    "DEFAULT_MAX_MAP_COUNT",
    "PROT_NONE",
    "PROT_READ",
    "PROT_WRITE",
    "PROT_EXEC",
    "PROT_SEM",
    "PROT_GROWSDOWN",
    "PROT_GROWSUP",
    "MAP_SHARED",
    "MAP_PRIVATE",
    "MAP_SHARED_VALIDATE",
    "MAP_TYPE",
    "MAP_FIXED",
    "MAP_ANONYMOUS",
    "MAP_ANON",
    "MAP_GROWSDOWN",
    "MAP_DENYWRITE",
    "MAP_EXECUTABLE",
    "MAP_LOCKED",
    "MAP_NORESERVE",
    "MAP_POPULATE",
    "MAP_NONBLOCK",
    "MAP_STACK",
    "MAP_HUGETLB",
    "MAP_SYNC",
    "MAP_FIXED_NOREPLACE",
    "MAP_UNINITIALIZED",
    "LEGACY_MAP_MASK",
    "MREMAP_MAYMOVE",
    "MREMAP_FIXED",
    "MREMAP_DONTUNMAP",
    "MS_ASYNC",
    "MS_INVALIDATE",
    "MS_SYNC",
    "MADV_NORMAL",
    "MADV_RANDOM",
    "MADV_SEQUENTIAL",
    "MADV_WILLNEED",
    "MADV_DONTNEED",
    "MADV_FREE",
    "MADV_REMOVE",
    "MADV_DONTFORK",
    "MADV_DOFORK",
    "MADV_MERGEABLE",
    "MADV_UNMERGEABLE",
    "MADV_HUGEPAGE",
    "MADV_NOHUGEPAGE",
    "MADV_DONTDUMP",
    "MADV_DODUMP",
    "MADV_WIPEONFORK",
    "MADV_KEEPONFORK",
    "MADV_COLD",
    "MADV_PAGEOUT",
    "MADV_POPULATE_READ",
    "MADV_POPULATE_WRITE",
    "MADV_GUARD_INSTALL",
    "MADV_GUARD_REMOVE",
    "MADV_COLLAPSE",
    "MLOCK_ONFAULT",
    "MCL_CURRENT",
    "MCL_FUTURE",
    "MCL_ONFAULT",
    "RLIMIT_MEMLOCK",
    "RLIM_INFINITY",
    "MLOCK_LIMIT",
    "VM_NONE",
    "VM_READ",
    "VM_WRITE",
    "VM_EXEC",
    "VM_SHARED",
    "VM_MAYREAD",
    "VM_MAYWRITE",
    "VM_MAYEXEC",
    "VM_MAYSHARE",
    "VM_GROWSDOWN",
    "VM_UFFD_MISSING",
    "VM_PFNMAP",
    "VM_UFFD_WP",
    "VM_LOCKED",
    "VM_IO",
    "VM_SEQ_READ",
    "VM_RAND_READ",
    "VM_DONTCOPY",
    "VM_DONTEXPAND",
    "VM_LOCKONFAULT",
    "VM_ACCOUNT",
    "VM_NORESERVE",
    "VM_HUGETLB",
    "VM_SYNC",
    "VM_ARCH_1",
    "VM_WIPEONFORK",
    "VM_DONTDUMP",
    "VM_SOFTDIRTY",
    "VM_MIXEDMAP",
    "VM_HUGEPAGE",
    "VM_NOHUGEPAGE",
    "VM_MERGEABLE",
    "VM_SEALED",
    "VM_ACCESS_FLAGS",
    "VM_LOCKED_MASK",
    "VM_SPECIAL",
    "VM_IGNORE_MERGE",
    "VM_DATA_DEFAULT_FLAGS",
    "VM_FLAG_MNEMONICS",
    "vm_flags_mnemonics",
    "ULONG_MAX",
    "page_align",
    "ulong_add",
    "offset_in_page",
]

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
#: The largest unsigned long on a 64-bit kernel: syscall addresses and lengths are
#: unsigned longs, and the kernel's overflow checks rely on their wrapping.
ULONG_MAX = (1 << 64) - 1

#: TASK_SIZE_MAX on x86-64 with 4-level paging (arch/x86/include/asm/page_64_types.h).
TASK_SIZE = (1 << 47) - PAGE_SIZE

#: MAX_LFS_FILESIZE (include/linux/fs.h), LLONG_MAX: the s_maxbytes of the modelled file
#: system (tmpfs has it; ext4 stops at 16 TiB). No file is larger, no offset reaches it.
MAX_LFS_FILESIZE = (1 << 63) - 1
#: Default vm.mmap_min_addr on most distributions (security/Kconfig DEFAULT_MMAP_MIN_ADDR).
MMAP_MIN_ADDR = 65536
#: Top of the top-down mmap area when ASLR is off (mm/util.c mmap_base, 8 MiB stack gap).
MMAP_BASE = 0x7FFFF7FFF000
#: Where a non-PIE-randomised heap starts (a typical ELF_ET_DYN_BASE program with ASLR off).
DEFAULT_BRK_START = 0x555555559000
#: DEFAULT_MAX_MAP_COUNT = USHRT_MAX - MAPCOUNT_ELF_CORE_MARGIN (include/linux/mm.h).
DEFAULT_MAX_MAP_COUNT = 65530

# --- mmap(2) protections ------------------------------------------------------------
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000

# --- mmap(2) flags ------------------------------------------------------------------
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_ANON = MAP_ANONYMOUS
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_SYNC = 0x80000
MAP_FIXED_NOREPLACE = 0x100000
MAP_UNINITIALIZED = 0x4000000

#: LEGACY_MAP_MASK (include/linux/mman.h): the flags MAP_SHARED_VALIDATE accepts.
LEGACY_MAP_MASK = (
    MAP_SHARED
    | MAP_PRIVATE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_UNINITIALIZED
    | MAP_GROWSDOWN
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
)

# --- mremap(2) ----------------------------------------------------------------------
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MREMAP_DONTUNMAP = 4

# msync(2) flags (include/uapi/asm-generic/mman-common.h).
MS_ASYNC = 1
MS_INVALIDATE = 2
MS_SYNC = 4

# --- madvise(2) ---------------------------------------------------------------------
MADV_NORMAL = 0
MADV_RANDOM = 1
MADV_SEQUENTIAL = 2
MADV_WILLNEED = 3
MADV_DONTNEED = 4
MADV_FREE = 8
MADV_REMOVE = 9
MADV_DONTFORK = 10
MADV_DOFORK = 11
MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_DONTDUMP = 16
MADV_DODUMP = 17
MADV_WIPEONFORK = 18
MADV_KEEPONFORK = 19
MADV_COLD = 20
MADV_PAGEOUT = 21
MADV_POPULATE_READ = 22
MADV_POPULATE_WRITE = 23
MADV_GUARD_INSTALL = 102
MADV_GUARD_REMOVE = 103
MADV_COLLAPSE = 25

# --- mlock2(2) ----------------------------------------------------------------------
MLOCK_ONFAULT = 0x01

# --- mlockall(2) (include/uapi/asm-generic/mman.h) and RLIMIT_MEMLOCK --------------
MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4
#: include/uapi/asm-generic/resource.h
RLIMIT_MEMLOCK = 8
RLIM_INFINITY = (1 << 64) - 1
#: MLOCK_LIMIT (include/uapi/linux/resource.h): the default RLIMIT_MEMLOCK, 8 MiB.
MLOCK_LIMIT = 8 << 20

# --- vm_flags (include/linux/mm.h) --------------------------------------------------
VM_NONE = 0x0
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8
VM_MAYREAD = 0x10
VM_MAYWRITE = 0x20
VM_MAYEXEC = 0x40
VM_MAYSHARE = 0x80
VM_GROWSDOWN = 0x100
VM_UFFD_MISSING = 0x200
VM_PFNMAP = 0x400
VM_UFFD_WP = 0x1000
VM_LOCKED = 0x2000
VM_IO = 0x4000
VM_SEQ_READ = 0x8000
VM_RAND_READ = 0x10000
VM_DONTCOPY = 0x20000
VM_DONTEXPAND = 0x40000
VM_LOCKONFAULT = 0x80000
VM_ACCOUNT = 0x100000
VM_NORESERVE = 0x200000
VM_HUGETLB = 0x400000
VM_SYNC = 0x800000
VM_ARCH_1 = 0x1000000
VM_WIPEONFORK = 0x2000000
VM_DONTDUMP = 0x4000000
VM_SOFTDIRTY = 0x8000000
VM_MIXEDMAP = 0x10000000
VM_HUGEPAGE = 0x20000000
VM_NOHUGEPAGE = 0x40000000
VM_MERGEABLE = 0x80000000
#: VM_SEALED_BIT is 42 on 64-bit kernels (mseal, 6.10+).
VM_SEALED = 1 << 42

VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
VM_LOCKED_MASK = VM_LOCKED | VM_LOCKONFAULT
#: VM_SPECIAL: never merged (include/linux/mm.h).
VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP
#: Bits that do not prevent a merge (VM_IGNORE_MERGE in mm/vma.h).
VM_IGNORE_MERGE = VM_SOFTDIRTY
#: VM_DATA_DEFAULT_FLAGS on x86-64 without READ_IMPLIES_EXEC (brk and stack vmas).
VM_DATA_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC

#: smaps "VmFlags:" mnemonics in bit order (fs/proc/task_mmu.c show_smap_vma_flags).
VM_FLAG_MNEMONICS: tuple[tuple[int, str], ...] = (
    (VM_READ, "rd"),
    (VM_WRITE, "wr"),
    (VM_EXEC, "ex"),
    (VM_SHARED, "sh"),
    (VM_MAYREAD, "mr"),
    (VM_MAYWRITE, "mw"),
    (VM_MAYEXEC, "me"),
    (VM_MAYSHARE, "ms"),
    (VM_GROWSDOWN, "gd"),
    (VM_UFFD_MISSING, "um"),
    (VM_PFNMAP, "pf"),
    (VM_UFFD_WP, "uw"),
    (VM_LOCKED, "lo"),
    (VM_IO, "io"),
    (VM_SEQ_READ, "sr"),
    (VM_RAND_READ, "rr"),
    (VM_DONTCOPY, "dc"),
    (VM_DONTEXPAND, "de"),
    (VM_LOCKONFAULT, "lf"),
    (VM_ACCOUNT, "ac"),
    (VM_NORESERVE, "nr"),
    (VM_HUGETLB, "ht"),
    (VM_SYNC, "sf"),
    (VM_ARCH_1, "ar"),
    (VM_WIPEONFORK, "wf"),
    (VM_DONTDUMP, "dd"),
    (VM_SOFTDIRTY, "sd"),
    (VM_MIXEDMAP, "mm"),
    (VM_HUGEPAGE, "hg"),
    (VM_NOHUGEPAGE, "nh"),
    (VM_MERGEABLE, "mg"),
    (VM_SEALED, "sl"),
)


def vm_flags_mnemonics(flags: int) -> str:
    """Render vm_flags as the smaps ``VmFlags:`` string, e.g. ``"rd wr mr mw me ac"``."""
    return " ".join(name for bit, name in VM_FLAG_MNEMONICS if flags & bit)


def page_align(n: int) -> int:
    """PAGE_ALIGN(): round ``n`` up to a page boundary, as an unsigned long: a length
    within a page of 2**64 wraps to 0 (the "small -ve rounded to zero" the kernel tests
    for)."""
    return (n + PAGE_SIZE - 1) & PAGE_MASK & ULONG_MAX


def ulong_add(a: int, b: int) -> int:
    """``a + b`` as an unsigned long (wrapping modulo 2**64), for the kernel's
    ``end = start + len; if (end < start)`` overflow checks."""
    return (a + b) & ULONG_MAX


def offset_in_page(addr: int) -> int:
    """offset_in_page(): the byte offset of ``addr`` inside its page."""
    return addr & (PAGE_SIZE - 1)
