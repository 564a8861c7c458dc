"""The memory lines of /proc/PID/status (fs/proc/task_mmu.c task_mem).

VmRSS, RssAnon, RssFile, RssShmem and VmSwap are the mm's incremental rss_stat counters
(:class:`mmcore.mm.Mm`); VmHWM and VmPeak their recorded peaks; VmLck is locked_vm. The
split of total_vm follows vm_stat_account(): VmData is private writable non-stack
memory, VmStk the stack (VM_GROWSDOWN), and executable mappings are all VmLib, because a
simulated process has no code segment (start_code == end_code) to call VmExe. VmPTE is
the page-table pages below the pgd (mm_pgtables_bytes()). mmcore pins nothing (VmPin)
and has no hugetlb.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import PAGE_SHIFT, VM_EXEC, VM_GROWSDOWN, VM_SHARED, VM_WRITE
from .mlock import locked_vm
from .mm import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS
from .proctext import ProcTable, check_labels, fields, numbered, parse_lines

if TYPE_CHECKING:
    from .mm import Mm

STATUS_FIELDS = fields(("VmPeak", "VmSize", "VmLck", "VmPin", "VmHWM", "VmRSS", "RssAnon",
                        "RssFile", "RssShmem", "VmData", "VmStk", "VmExe", "VmLib", "VmPTE",
                        "VmSwap", "HugetlbPages"), pad=0)


class ProcStatus(ProcTable):
    """The task_mem() block of /proc/PID/status, values in kB."""

    TABLE = STATUS_FIELDS


def task_mem(mm: Mm) -> ProcStatus:
    """task_mem() for ``mm``."""
    s = mm.rss_stat
    rss = mm.rss
    total_vm = mm.vmas.total_pages
    data = stack = exec_vm = 0
    for vma in mm.vmas:
        f = vma.flags
        if (f & (VM_EXEC | VM_WRITE | VM_GROWSDOWN)) == VM_EXEC:
            exec_vm += vma.pages
        elif f & VM_GROWSDOWN:
            stack += vma.pages
        elif (f & (VM_WRITE | VM_SHARED)) == VM_WRITE:
            data += vma.pages
    pages = {"VmPeak": max(total_vm, mm.hiwater_vm), "VmSize": total_vm,
             "VmLck": locked_vm(mm), "VmPin": 0, "VmHWM": max(rss, mm.hiwater_rss),
             "VmRSS": rss, "RssAnon": s[MM_ANONPAGES], "RssFile": s[MM_FILEPAGES],
             "RssShmem": s[MM_SHMEMPAGES], "VmData": data, "VmStk": stack, "VmExe": 0,
             "VmLib": exec_vm, "VmPTE": mm.pgtable.nr_table_pages - 1,
             "VmSwap": s[MM_SWAPENTS], "HugetlbPages": 0}
    return ProcStatus({k: v << (PAGE_SHIFT - 10) for k, v in pages.items()})


def parse_status(text: str, source: str = "status") -> ProcStatus:
    """The task_mem() lines of a /proc/PID/status text (the other lines are skipped)."""
    labels = {f.label for f in STATUS_FIELDS}
    lines = [(n, line) for n, line in numbered(text) if line.partition(":")[0] in labels]
    values = parse_lines(lines, source)
    check_labels(values, STATUS_FIELDS, source)
    return ProcStatus({f.label: values[f.label] for f in STATUS_FIELDS})
