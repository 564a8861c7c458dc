"""Scale check (issue 12 item 6): time and peak memory per mapped page at 10k, 100k and
1M pages, so that a super-linear step shows.

At each size a trace is generated and replayed from its file: one process forks
``pages / PAGES_PER_PROC - 1`` children (so 1M pages come with 10k processes), each
process maps its own private anonymous region and writes every page of it, then every
process exits, the youngest first. Each size runs in a fresh interpreter, so its peak RSS
(getrusage ru_maxrss) is its own; the baseline RSS of an interpreter that imported mmcore
and built an empty Machine is subtracted before dividing by the pages.

The table shows seconds per page and bytes per page at each size and their ratio to the
size before it: a flat profile has ratios near 1. Not a test: nothing here asserts.

Run with ``python benchmarks/bench_scale.py`` (``--sizes 10000,100000`` for a quicker run,
``--json FILE`` to keep the figures).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmcore import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
from mmcore.atomicfile import atomic_open
from mmcore.experiments.ops import Op
from mmcore.experiments.trace import new_header, write_trace

PAGE = 4096
PAGES_PER_PROC = 100
#: Where every process maps its region (the same address in each: separate mms).
REGION = 0x7F00_0000_0000


def scale_trace(pages: int) -> list[Op]:
    """The ops of one size: spawn, forks, one mmap + write per process, exits."""
    nproc = max(1, pages // PAGES_PER_PROC)
    length = PAGES_PER_PROC * PAGE
    ops = [Op("spawn", pid=1)]
    ops += [Op("fork", pid=1, child=pid) for pid in range(2, nproc + 1)]
    for pid in range(1, nproc + 1):
        ops.append(Op("mmap", pid=pid, addr=REGION, length=length,
                      prot=PROT_READ | PROT_WRITE, flags=MAP_PRIVATE | MAP_ANONYMOUS,
                      ret=REGION))
        ops.append(Op("write", pid=pid, addr=REGION, length=length))
    ops += [Op("exit", pid=pid) for pid in range(nproc, 0, -1)]
    return ops


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run_one(trace: str, pages: int) -> dict[str, float]:
    """Replay ``trace`` in this interpreter; the figures of one size (``--child``)."""
    from mmcore.experiments.replay import replay_trace
    start_rss = _peak_rss_bytes()
    cpu = time.process_time()
    report = replay_trace(trace, ram_pages=max(1 << 16, 2 * pages), swap_pages=1 << 10)
    seconds = time.process_time() - cpu
    if report.broken or report.errors:
        raise SystemExit(f"replay of {trace} failed: {report.broken or report.errors}")
    return {"pages": pages, "seconds": seconds,
            "peak_rss_bytes": _peak_rss_bytes() - start_rss}


def _in_child(trace: str, pages: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", trace, str(pages)],
                         check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run every size in its own interpreter and print the table."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000",
                    help="mapped pages per run, comma-separated (default: %(default)s)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--child", nargs=2, metavar=("TRACE", "PAGES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args.child[0], int(args.child[1]))))
        return 0
    rows: list[dict[str, float]] = []
    previous: dict[str, float] | None = None
    print(f"{'pages':>9} {'procs':>6} {'us/page':>8} {'ratio':>6} {'B/page':>7} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for pages in (int(s) for s in args.sizes.split(",")):
            trace = str(Path(tmp) / f"scale-{pages}.jsonl")
            write_trace(trace, new_header("bench_scale"), scale_trace(pages))
            row = _in_child(trace, pages)
            row["us_per_page"] = row["seconds"] / pages * 1e6
            row["bytes_per_page"] = row["peak_rss_bytes"] / pages
            rt = rb = ""
            if previous is not None:
                rt = f"{row['us_per_page'] / previous['us_per_page']:6.2f}"
                rb = f"{row['bytes_per_page'] / previous['bytes_per_page']:6.2f}"
            print(f"{pages:9} {max(1, pages // PAGES_PER_PROC):6} {row['us_per_page']:8.2f} "
                  f"{rt:>6} {row['bytes_per_page']:7.0f} {rb:>6}", flush=True)
            rows.append(row)
            previous = row
    if args.json:
        with atomic_open(args.json, "w") as f:
            json.dump({"pages_per_process": PAGES_PER_PROC, "runs": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
