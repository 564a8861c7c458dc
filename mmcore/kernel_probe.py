"""The real kernel's side of the benchmark: build and run ``benchmarks/kernel_probe.c``.

The probe times on this machine's kernel what :mod:`mmcore.benchmark` times in the
simulator (first write, COW write in a forked child, fork, munmap and mremap of N pages),
so that ``mmsim bench`` can give every simulated figure as a ratio to the real one measured
in the same run. It is compiled with gcc when gcc is on ``PATH``, into a per-user cache
directory (``$XDG_CACHE_HOME/mmcore``, else ``~/.cache/mmcore``), never into the source
tree; the binary's name carries a hash of the source and the compiler, so an edit or a new
compiler rebuilds it. Without gcc, or without the source (an install from a wheel has no
``benchmarks/``), :class:`ProbeUnavailable` says why and the benchmark reports mmcore's
figures alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .atomicfile import atomic_path

__all__ = ["SOURCE", "PROBE_OPERATIONS", "ProbeUnavailable", "cache_dir", "build", "run_probe"]

#: The probe's C source, in the checkout's benchmarks/ directory.
SOURCE = Path(__file__).resolve().parent.parent / "benchmarks" / "kernel_probe.c"
#: The operations the probe times, in the order it prints them.
PROBE_OPERATIONS = ("first_write", "cow_write", "fork", "munmap", "mremap")
CFLAGS = ("-O2", "-Wall", "-Wextra")


class ProbeUnavailable(Exception):
    """The kernel probe cannot be built or run here; the message says why."""


def cache_dir() -> Path:
    """Where built probes are kept: ``$XDG_CACHE_HOME/mmcore`` or ``~/.cache/mmcore``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmcore"


def _compiler_id(gcc: str) -> str:
    """The first line of ``gcc --version`` (part of the cache key)."""
    out = subprocess.run([gcc, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else gcc


def build(source: Path = SOURCE) -> Path:
    """The probe binary built from ``source``: reused from the cache when the source and
    compiler are unchanged, else compiled with gcc to a temporary file that is renamed into
    place (two benchmarks building at once never see half a binary)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ProbeUnavailable("gcc is not on PATH")
    try:
        text = source.read_bytes()
    except OSError as exc:
        raise ProbeUnavailable(f"{source}: {exc.strerror}") from None
    key = hashlib.sha256(text + _compiler_id(gcc).encode() + " ".join(CFLAGS).encode())
    binary = cache_dir() / f"kernel_probe-{key.hexdigest()[:16]}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(binary) as tmp:
        done = subprocess.run([gcc, *CFLAGS, "-o", str(tmp), str(source)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ProbeUnavailable(f"gcc failed on {source}: "
                                   f"{done.stderr.strip().splitlines()[-1:]}")
        os.chmod(tmp, 0o755)
    return binary


def run_probe(pages: int, repeat: int, source: Path = SOURCE) -> dict[str, Any]:
    """Build (if needed) and run the probe over ``pages`` pages, best of ``repeat``;
    returns its report: ``{"pages", "repeat", "ns_per_page": {operation: ns}}``."""
    if pages <= 0 or repeat <= 0:
        raise ValueError(f"pages and repeat must be positive, not {pages} and {repeat}")
    binary = build(source)
    done = subprocess.run([str(binary), str(pages), str(repeat)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise ProbeUnavailable(f"the kernel probe failed: {done.stderr.strip()}")
    report: dict[str, Any] = json.loads(done.stdout)
    if sorted(report.get("ns_per_page", {})) != sorted(PROBE_OPERATIONS):
        raise ProbeUnavailable(f"the kernel probe printed an unexpected report: "
                               f"{done.stdout.strip()}")
    return report
