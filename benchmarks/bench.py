"""Benchmarks: simulated fault and fork cost as ratios to a plain dict insert.

Run with ``python benchmarks/bench.py`` (or ``nox -s bench``). Every figure is a ratio to
a dict insert timed in the same run, so results compare across machines; absolute times
are printed too but mean little on a noisy machine. Not a test: nothing here asserts.
The measurements live in :mod:`mmcore.benchmark`; ``mmsim bench`` times the same
operations beside the real kernel (benchmarks/kernel_probe.c).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mmcore.atomicfile import atomic_open
from mmcore.benchmark import (
    best_of,
    demand_zero_fault,
    dict_insert,
    first_write,
    fork_cost,
    inlined_floor,
)
from mmcore.plugins import valid_configurations


def main(argv: list[str] | None = None) -> int:
    """Print (or write as JSON) the ratios for every valid configuration."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    unit = best_of(args.repeat, dict_insert, 200_000)
    floor = best_of(args.repeat, inlined_floor, args.pages)
    rows: list[dict[str, Any]] = []
    for rmap, policy in valid_configurations():
        fault = best_of(args.repeat, demand_zero_fault, rmap, policy, args.pages)
        write = best_of(args.repeat, first_write, rmap, policy, args.pages)
        fork = best_of(args.repeat, fork_cost, rmap, policy, args.pages // 4)
        rows.append({"rmap": rmap, "policy": policy, "fault_ratio": fault / unit,
                     "first_write_ratio": write / unit,
                     "fork_per_page_ratio": fork / unit, "fault_us": fault * 1e6,
                     "faults_per_second": 1 / fault, "fork_per_page_us": fork * 1e6})
    print(f"dict insert: {unit * 1e9:.1f} ns (the unit)")
    print(f"inlined pure-Python fault floor: {floor / unit:.1f}x")
    print(f"{'configuration':28} {'fault/dict':>10} {'faults/s':>10} {'write/dict':>10} "
          f"{'fork per page/dict':>19}")
    for r in rows:
        name = r["rmap"] + (f"+{r['policy']}" if r["policy"] else "")
        print(f"{name:28} {r['fault_ratio']:10.1f} {r['faults_per_second']:10.0f} "
              f"{r['first_write_ratio']:10.1f} {r['fork_per_page_ratio']:19.1f}")
    if args.json:
        with atomic_open(args.json) as fh:
            json.dump({"dict_insert_ns": unit * 1e9, "inlined_floor_ratio": floor / unit,
                       "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
