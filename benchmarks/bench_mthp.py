"""Benchmark: fork and zap of a heap of 64 kB mTHP folios against the same heap of
order-0 pages (issue 12 item 3: batch where the kernel batches).

Run with ``python benchmarks/bench_mthp.py``. For every valid configuration it builds
two machines with the same written heap, one with ``hugepages-64kB`` set to ``always``
(16-page folios: fork and zap take one rmap and mapcount call per folio run,
folio_try_dup_anon_rmap_ptes() / folio_remove_rmap_ptes()) and one with the defaults
(order-0 pages, one call per page), and prints the time per page of fork, of the
child's exit (zap of shared ptes) and of munmap (zap of the parent's), each as the ratio
mTHP / order 0 measured in the same run. Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.atomicfile import atomic_open
from mmcore.benchmark import write_pages
from mmcore.constants import PAGE_SIZE
from mmcore.plugins import valid_configurations
from mmcore.process import Process
from mmcore.thp import ThpSettings

_K64 = 16 * PAGE_SIZE


def heap(rmap: str, policy: str | None, n: int, mthp: bool) -> tuple[Process, int]:
    """A process with ``n`` written pages of private anonymous heap, 64 kB aligned, in
    64 kB folios when ``mthp`` (RAM for four times the heap, so reclaim stays out)."""
    thp = ThpSettings(per_order={4: "always"}) if mthp else ThpSettings()
    m = Machine(rmap=rmap, mremap_policy=policy, thp=thp, ram_pages=4 * n + 1024)
    p = m.spawn()
    raw = p.mmap(0, n * PAGE_SIZE + _K64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    a = -(-raw // _K64) * _K64
    write_pages(p, a, n)
    return p, a


def timings(rmap: str, policy: str | None, n: int, mthp: bool) -> dict[str, float]:
    """Seconds per page of fork, of the child's exit and of the parent's munmap."""
    p, a = heap(rmap, policy, n, mthp)
    t0 = time.perf_counter()
    child = p.fork()
    t1 = time.perf_counter()
    child.exit(0)
    t2 = time.perf_counter()
    p.munmap(a, n * PAGE_SIZE)
    t3 = time.perf_counter()
    return {"fork": (t1 - t0) / n, "exit": (t2 - t1) / n, "munmap": (t3 - t2) / n}


def best(repeat: int, rmap: str, policy: str | None, n: int, mthp: bool) -> dict[str, float]:
    """The smallest of ``repeat`` runs, operation by operation."""
    runs = [timings(rmap, policy, n, mthp) for _ in range(repeat)]
    return {k: min(r[k] for r in runs) for k in runs[0]}


def main(argv: list[str] | None = None) -> int:
    """Print (or write as JSON) the mTHP / order-0 ratios for every configuration."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pages", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    print(f"{'configuration':28} {'op':7} {'order 0 us/page':>16} {'64kB us/page':>13} "
          f"{'ratio':>6}")
    for rmap, policy in valid_configurations():
        small = best(args.repeat, rmap, policy, args.pages, mthp=False)
        large = best(args.repeat, rmap, policy, args.pages, mthp=True)
        name = rmap + (f"+{policy}" if policy else "")
        for op in small:
            ratio = large[op] / small[op]
            rows.append({"rmap": rmap, "policy": policy, "op": op,
                         "order0_us": small[op] * 1e6, "mthp_us": large[op] * 1e6,
                         "ratio": ratio})
            print(f"{name:28} {op:7} {small[op] * 1e6:16.2f} {large[op] * 1e6:13.2f} "
                  f"{ratio:6.2f}")
    if args.json:
        with atomic_open(args.json) as fh:
            json.dump({"pages": args.pages, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
