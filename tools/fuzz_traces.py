#!/usr/bin/env python3
"""Generate malformed trace inputs and run each through ``mmsim trace`` in-process.

    tools/fuzz_traces.py [--per-sample N] [--seed S] [--out DIR] [--timeout SECONDS]

Every sample in examples/traces/*.jsonl and tests/data/*.txt gets N mutants (so the
default, 12 per sample over 10 samples, writes 120 files plus the gzip variants; use
``--per-sample 16`` for more than 150). Each file is imported (strace and perf text), shown
with ``trace info`` and replayed; the report counts the outcomes: ``ok``, ``clean`` (one
error line, exit 1 or 2), ``messy``, ``traceback`` and ``timeout``, and lists every input
that was not ok or clean. Exit status 1 if any traceback or messy error was found.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmcore.testing.tracefuzz import kind_of, mutants, run_case  # noqa: E402


def samples() -> list[Path]:
    """The well-formed inputs the mutants start from."""
    return sorted((ROOT / "examples" / "traces").glob("*.jsonl")) + \
        sorted((ROOT / "tests" / "data").glob("*.txt"))


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer; print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-sample", type=int, default=16, help="mutants per sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="keep the generated files here (default: a temporary directory)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per CLI step")
    args = ap.parse_args(argv)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mmsim-fuzz-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        verdicts: Counter[str] = Counter()
        steps = 0
        bad = []
        for sample in samples():
            kind = kind_of(sample)
            for i, m in enumerate(mutants(sample, args.per_sample, args.seed)):
                path = out / f"{sample.name.split('.')[0]}-{i:03d}{m.suffix}"
                path.write_bytes(m.data)

                def count(_: object) -> None:
                    nonlocal steps
                    steps += 1

                o = run_case(path, kind, out, timeout=args.timeout, on_step=count)
                verdicts[o.verdict] += 1
                if o.verdict not in ("ok", "clean"):
                    bad.append((path.name, m.how, o))
        files = sum(verdicts.values())
        print(f"{files} malformed files, {steps} CLI runs, {time.monotonic() - start:.1f} s:"
              f" " + ", ".join(f"{k} {verdicts[k]}" for k in
                               ("ok", "clean", "messy", "traceback", "timeout")))
        for name, how, o in bad:
            print(f"\n{o.verdict}: {name} ({how}): mmsim {' '.join(o.command)}")
            print("  " + (o.detail or o.stderr).strip().replace("\n", "\n  "))
    return 1 if verdicts["traceback"] or verdicts["messy"] else 0


if __name__ == "__main__":
    sys.exit(main())
