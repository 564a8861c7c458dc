"""/sys/kernel/mm/transparent_hugepage as text (mm/huge_memory.c: enabled_show(),
anon_enabled_show(), hpage_pmd_size_show(), use_zero_page_show() and the per-size
``stats`` attributes of DEFINE_MTHP_STAT_ATTR(); mm/khugepaged.c khugepaged_attr for the
``khugepaged/`` directory).

:func:`read` renders one file from the machine's knobs (:class:`mmcore.thp.ThpSettings`)
and counters (:class:`mmcore.thp.MthpStats`) exactly as 6.18 prints it (probed:
kernel-facts, "What /proc and /sys show"); :func:`write` is the store side of the knobs.
Paths are relative to :data:`THP_SYSFS` or absolute under it. Only the anonymous sizes
(:data:`mmcore.thp.ANON_ORDERS`) are modelled; shmem knobs and the file-only sizes are
not.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from .constants import PAGE_SIZE
from .folio import HPAGE_PMD_ORDER
from .thp import ANON_ORDERS, MTHP_MODES, MTHP_STAT_NAMES, THP_MODES, size_kb

if TYPE_CHECKING:
    from .machine import Machine

__all__ = ["THP_SYSFS", "files", "read", "write"]

#: The directory the paths are relative to.
THP_SYSFS = "/sys/kernel/mm/transparent_hugepage"
_ORDER_BY_DIR = {f"hugepages-{size_kb(order)}kB": order for order in ANON_ORDERS}
#: khugepaged/'s writable knobs and the largest value each store takes (max_ptes_*:
#: HPAGE_PMD_NR - 1; the others kstrtouint(); defrag a 0/1 flag); pages_to_scan also
#: refuses 0 (probed: EINVAL for each).
_KHUGEPAGED_KNOBS = {"max_ptes_none": 511, "max_ptes_swap": 511, "max_ptes_shared": 511,
                     "pages_to_scan": 2**32 - 1, "scan_sleep_millisecs": 2**32 - 1,
                     "alloc_sleep_millisecs": 2**32 - 1, "defrag": 1}
#: khugepaged/'s read-only counters.
_KHUGEPAGED_COUNTERS = ("full_scans", "pages_collapsed")


def _modes(modes: tuple[str, ...], current: str) -> str:
    """The kernel's knob format: every mode, the current one in brackets."""
    return " ".join(f"[{mode}]" if mode == current else mode for mode in modes) + "\n"


def _relative(path: str) -> str:
    """``path`` relative to :data:`THP_SYSFS` (an absolute path elsewhere stays as it is
    and names no file)."""
    return path.removeprefix(THP_SYSFS + "/")


def _no_such(path: str) -> OSError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def files() -> list[str]:
    """Every file :func:`read` renders, relative to :data:`THP_SYSFS`."""
    out = ["enabled", "hpage_pmd_size", "use_zero_page"]
    out += [f"khugepaged/{name}" for name in sorted((*_KHUGEPAGED_KNOBS,
                                                     *_KHUGEPAGED_COUNTERS))]
    for name in _ORDER_BY_DIR:
        out += [f"{name}/enabled", *(f"{name}/stats/{stat}" for stat in MTHP_STAT_NAMES)]
    return out


def read(m: Machine, path: str) -> str:
    """The content of one file, as ``cat`` shows it; FileNotFoundError (ENOENT) for a
    file the directory does not have."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    rel = _relative(path)
    thp = m.thp
    if rel == "enabled":
        return _modes(THP_MODES, thp.enabled)
    if rel == "hpage_pmd_size":
        return f"{PAGE_SIZE << HPAGE_PMD_ORDER}\n"
    if rel == "use_zero_page":
        return f"{int(thp.use_zero_page)}\n"
    parts = rel.split("/")
    if parts[0] == "khugepaged" and len(parts) == 2 and (
            parts[1] in _KHUGEPAGED_KNOBS or parts[1] in _KHUGEPAGED_COUNTERS):
        return f"{getattr(m.khugepaged, parts[1])}\n"
    order = _ORDER_BY_DIR.get(parts[0])
    if order is not None:
        if parts[1:] == ["enabled"]:
            return _modes(MTHP_MODES, thp.per_order[order])
        if len(parts) == 3 and parts[1] == "stats" and parts[2] in MTHP_STAT_NAMES:
            return f"{m.mthp_stats.stats[order][parts[2]]}\n"
    raise _no_such(path)


def write(m: Machine, path: str, text: str) -> None:
    """Store ``text`` into a knob (enabled_store(), anon_enabled_store(),
    use_zero_page_store(), the khugepaged/ knobs' stores): a trailing newline is
    ignored, as sysfs_streq() and kstrtoul() do; a value the knob does not take raises
    OSError EINVAL and changes nothing; a read-only file PermissionError (EACCES), a
    missing one FileNotFoundError (ENOENT)."""
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    rel, value = _relative(path), text.removesuffix("\n")
    parts = rel.split("/")
    order = _ORDER_BY_DIR.get(parts[0])
    if rel == "enabled":
        allowed: tuple[str, ...] = THP_MODES
    elif rel == "use_zero_page":
        allowed = ("0", "1")
    elif order is not None and parts[1:] == ["enabled"]:
        allowed = MTHP_MODES
    elif parts[0] == "khugepaged" and len(parts) == 2 and parts[1] in _KHUGEPAGED_KNOBS:
        setattr(m.khugepaged, parts[1], _khugepaged_value(parts[1], value, path))
        return
    elif rel in files():
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    else:
        raise _no_such(path)
    if value not in allowed:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
    if rel == "enabled":
        m.thp.enabled = value
    elif rel == "use_zero_page":
        m.thp.use_zero_page = value == "1"
    else:
        assert order is not None
        m.thp.per_order[order] = value


def _khugepaged_value(name: str, value: str, path: str) -> int:
    """The number a khugepaged knob's store takes: kstrtoul(buf, 10) (decimal digits
    after an optional ``+``; no space, sign or base prefix) within the knob's range, else
    EINVAL (probed: '512', '-1', ' 511', '0x1' and a pages_to_scan of 0 are refused)."""
    digits = value.removeprefix("+")
    if digits.isascii() and digits.isdigit():
        number = int(digits)
        if number <= _KHUGEPAGED_KNOBS[name] and (number or name != "pages_to_scan"):
            return number
    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
