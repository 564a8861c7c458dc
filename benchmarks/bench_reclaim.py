"""Benchmarks of reclaim under memory that cannot be freed (issue 14 items 5 and 7).

Two runs, each at growing RAM sizes, to show how the time grows with memory:

* ``overcommit``: one process writes four times RAM of anonymous memory with swap the
  size of RAM, until the OOM killer ends it (swap full, then kswapd and direct reclaim
  find nothing to free);
* ``populate``: MADV_POPULATE_WRITE of twice RAM with swap an eighth of RAM: the
  populate fills swap and runs on into the OOM kill.

Both machines overcommit (``vm.overcommit_memory=1``): in the default heuristic mode,
__vm_enough_memory() refuses any one mapping larger than RAM + swap with ENOMEM, as
Linux does, so the mmap of either run would fail before anything is written (it did:
both runs measured a refused mmap).

Run with ``python benchmarks/bench_reclaim.py`` (``--default`` adds the default machine
size, 65,536 frames, to the overcommit run). Each figure is the time of the run and
that time per RAM page as a ratio to a dict insert timed in the same run (see
``bench.py``), so a flat ratio column means time linear in memory. Not a test: nothing
here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time

from bench import dict_insert

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, Machine
from mmcore.constants import MADV_POPULATE_WRITE
from mmcore.errors import ProcessKilled

PAGE = 4096
RW = PROT_READ | PROT_WRITE


def overcommit(ram: int) -> tuple[float, Machine]:
    """Seconds for a process writing 4x ``ram`` pages (swap = ``ram``) to be OOM-killed,
    and the machine afterwards."""
    m = Machine(ram_pages=ram, swap_pages=ram, overcommit_memory=1)
    p = m.spawn()
    a = p.mmap(0, 4 * ram * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    t = time.perf_counter()
    with contextlib.suppress(ProcessKilled):
        for i in range(4 * ram):
            p.write(a + i * PAGE, b"x")
    return time.perf_counter() - t, m


def populate(ram: int) -> tuple[float, Machine]:
    """Seconds for MADV_POPULATE_WRITE of 2x ``ram`` pages (swap = ``ram`` // 8) to end
    in the OOM kill of the populating process, and the machine afterwards."""
    m = Machine(ram_pages=ram, swap_pages=ram // 8, overcommit_memory=1)
    p = m.spawn()
    a = p.mmap(0, 2 * ram * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    t = time.perf_counter()
    with contextlib.suppress(ProcessKilled):
        p.madvise(a, 2 * ram * PAGE, MADV_POPULATE_WRITE)
    return time.perf_counter() - t, m


def main(argv: list[str] | None = None) -> int:
    """Time both runs at each size and print a table (and JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2048,4096,8192,16384",
                    help="RAM sizes in pages, comma-separated (default: %(default)s)")
    ap.add_argument("--default", action="store_true",
                    help="also run the overcommit case at the default 65536 frames")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    unit = dict_insert(200_000)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[dict[str, object]] = []
    for name, fn in (("overcommit", overcommit), ("populate", populate)):
        extra = [1 << 16] if args.default and name == "overcommit" else []
        for ram in sizes + extra:
            secs, _machine = fn(ram)
            rows.append({"run": name, "ram_pages": ram, "seconds": round(secs, 3),
                         "per_page_ratio": round(secs / ram / unit, 1)})
            print(f"{name:10} ram={ram:6} {secs:8.2f} s  per RAM page "
                  f"{secs / ram / unit:8.1f} dict inserts", flush=True)
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"dict_insert_s": unit, "runs": rows}, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
