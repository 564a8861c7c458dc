"""Record a real program into the trace format with strace or perf (``mmsim trace record``).

``perf`` (the default) gives page faults as well as the memory syscalls, forks, execs and
exits; it needs the kernel's tracepoints, so root or ``kernel.perf_event_paranoid = -1``.
``strace`` needs only ptrace but sees system calls, not faults. Either way the raw log is
imported with :mod:`.perf_import` or :mod:`.strace_import` and written with a header that
records the command, the tool command lines, the tool version, the kernel and the date.
Every failure to record is one :class:`RecordError` line saying what to do about it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..atomicfile import atomic_path, check_writable
from .ops import Op
from .perf_import import PERF_EVENTS, import_perf
from .strace_import import STRACE_OPTIONS, import_strace
from .trace import TraceHeader, write_trace

__all__ = ["RecordError", "TOOLS", "record", "strace_argv", "perf_record_argv",
           "perf_script_argv", "check_tool"]

TOOLS = ("perf", "strace")
_PACKAGES = {"perf": "linux-perf (Debian) or linux-tools (Ubuntu)", "strace": "strace"}


class RecordError(RuntimeError):
    """Recording is impossible here (tool missing, not permitted, or it failed)."""


def strace_argv(raw: str | Path, command: Sequence[str]) -> list[str]:
    """The strace command line that records ``command`` into ``raw``."""
    return ["strace", *STRACE_OPTIONS, "-o", str(raw), "--", *command]


def perf_record_argv(raw: str | Path, command: Sequence[str]) -> list[str]:
    """The ``perf record`` command line (``-d`` adds data mmaps, which name mapped files)."""
    events = [arg for ev in PERF_EVENTS for arg in ("-e", ev)]
    return ["perf", "record", "-d", "-m", "1024", *events, "-o", str(raw), "--",
            *command]


def perf_script_argv(raw: str | Path) -> list[str]:
    """The ``perf script`` command line whose output :func:`import_perf` reads."""
    return ["perf", "script", "-i", str(raw), "--show-mmap-events",
            "-F", "comm,pid,tid,cpu,time,event,trace"]


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def check_tool(tool: str) -> str:
    """Raise :class:`RecordError` if ``tool`` cannot record here; returns its version."""
    if tool not in TOOLS:
        raise RecordError(f"unknown tool {tool!r}: choose one of: {', '.join(TOOLS)}")
    exe = shutil.which(tool)
    if exe is None:
        raise RecordError(f"{tool} is not installed (or not on PATH): install "
                          f"{_PACKAGES[tool]}, or record with the other tool "
                          f"(--tool {'strace' if tool == 'perf' else 'perf'})")
    if tool == "perf":
        paranoid = _read_int("/proc/sys/kernel/perf_event_paranoid")
        if os.geteuid() != 0 and paranoid is not None and paranoid > -1:
            raise RecordError(
                f"perf may not read kernel tracepoints here: kernel.perf_event_paranoid is "
                f"{paranoid} and you are not root; run as root, or set "
                f"`sysctl kernel.perf_event_paranoid=-1`, or use --tool strace")
        args = [exe, "--version"]
    else:
        scope = _read_int("/proc/sys/kernel/yama/ptrace_scope")
        if scope == 3:
            raise RecordError("strace cannot trace: ptrace is disabled "
                              "(kernel.yama.ptrace_scope is 3); use --tool perf")
        args = [exe, "-V"]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RecordError(f"{tool} cannot run: {exc}") from None
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else tool


_NOISE = ("[ perf record:", "'trace' not valid for")


def _tool_error(tool: str, stderr: str) -> str:
    """The line of a tool's stderr that says why it failed (with perf's hint, if any)."""
    lines = [re.sub(r"'[^']{60,}'", "'<the events>'", ln.strip())
             for ln in stderr.splitlines()
             if ln.strip() and not ln.strip().startswith(_NOISE)]
    for i, ln in enumerate(lines):
        if ln.startswith("Error:"):
            hint = next((h for h in lines[i + 1:i + 3] if h.startswith("Hint:")), "")
            return " ".join(f"{ln} {hint}".split())
    for ln in lines:
        low = ln.lower()
        if ln.startswith(f"{tool}:") or "failed" in low or "permission" in low \
                or "not permitted" in low or "paranoid" in low or "error" in low:
            return " ".join(ln.split())
    return lines[0] if lines else "no error message"


def _run(argv: list[str], tool: str) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, stdout=None, stderr=subprocess.PIPE, text=True,
                              errors="replace", check=False)
    except OSError as exc:
        raise RecordError(f"{tool} cannot run: {exc}") from None
    return proc.returncode, proc.stderr


def record(command: Sequence[str], out: str | Path, *, tool: str = "perf",
           keep_raw: str | Path | None = None, max_faults: int | None = None,
           notes: Sequence[str] = ()) -> tuple[TraceHeader, list[Op]]:
    """Run ``command`` under ``tool``, import the log and write the trace to ``out``.

    ``keep_raw`` saves the tool's text output (strace log or perf script output) there.
    Returns the header and ops written. The command's output passes through; its stderr
    is shown after it finishes. Raises :class:`RecordError` when recording is impossible.
    """
    command = list(command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise RecordError("nothing to record: give the command after --")
    for target in (out, keep_raw):  # before the command runs, not after
        if target is not None:
            check_writable(target)
    version = check_tool(tool)
    run_notes = list(notes)
    with tempfile.TemporaryDirectory(prefix="mmsim-record-") as tmp:
        if tool == "strace":
            raw = Path(tmp) / "raw.strace"
            argv = strace_argv(raw, command)
            rc, err = _run(argv, tool)
            own = [ln for ln in err.splitlines() if ln.startswith("strace: ")]
            if not raw.exists() or raw.stat().st_size == 0:
                raise RecordError(f"strace recorded nothing: {_tool_error('strace', err)}")
            user_err = "\n".join(ln for ln in err.splitlines() if not ln.startswith("strace: "))
            recorded_with = [shlex.join(strace_argv("raw.strace", command))]
            text = raw
            if own:
                run_notes.append("strace said: " + own[0])
        else:
            data = Path(tmp) / "raw.data"
            argv = perf_record_argv(data, command)
            rc, err = _run(argv, tool)
            if rc == 255 or not data.exists() or data.stat().st_size == 0:
                raise RecordError(f"perf recorded nothing: {_tool_error('perf', err)}")
            user_err = "\n".join(ln for ln in err.splitlines() if not ln.startswith(_NOISE))
            text = Path(tmp) / "raw.perf"
            script = perf_script_argv(data)
            with open(text, "w", encoding="utf-8") as fh:
                try:
                    sp = subprocess.run(script, stdout=fh, stderr=subprocess.PIPE, text=True,
                                        check=False)
                except OSError as exc:
                    raise RecordError(f"perf script cannot run: {exc}") from None
            if sp.returncode != 0 or text.stat().st_size == 0:
                raise RecordError(f"perf script failed: {_tool_error('perf', sp.stderr)}")
            recorded_with = [shlex.join(perf_record_argv("raw.data", command)),
                             shlex.join(perf_script_argv("raw.data")) + " > raw.perf"]
        if user_err.strip():
            sys.stderr.write(user_err if user_err.endswith("\n") else user_err + "\n")
        if rc != 0:
            run_notes.append(f"{tool} exited with status {rc} (the command's, or its own)")
        if keep_raw is not None:
            with atomic_path(keep_raw) as raw_tmp:
                shutil.copyfile(text, raw_tmp)
        importer = import_strace if tool == "strace" else import_perf
        header, ops = importer(text, command=command, recorded_with=recorded_with,
                               notes=run_notes, max_faults=max_faults, tool_version=version)
    write_trace(out, header, ops)
    return header, ops
