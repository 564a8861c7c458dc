"""Import ``strace -f -y`` output into the trace format.

Record with::

    strace -f -y -e trace=memory,process -o raw.strace -- COMMAND

and import with :func:`import_strace` (``mmsim trace import raw.strace --from strace``).
Each output line is ``PID  call(args) = ret`` (``-f`` with ``-o``; ``[pid N]`` prefixes,
no prefix at all, and ``-t``/``-tt``/``-ttt``/``-T`` timestamps are accepted too). A call
interrupted by another task's output is split into ``call(args <unfinished ...>`` and
``<... call resumed>rest) = ret``; the two halves are joined and the call is placed where
it started, so a clone's child never acts before its fork. ``-y`` prints the file behind
each descriptor (``3</usr/lib/libc.so.6>``), which names the stand-in file of a file
mapping (the replay maps a stand-in file of that name at the descriptor's number).

strace sees system calls only: a trace imported from strace has no page faults (use
perf for those). What is not memory or process management is counted as skipped.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import constants as C
from .ops import Op
from .trace import (
    CLONE_THREAD,
    CLONE_VFORK,
    CLONE_VM,
    WORD_BITS,
    Syscall,
    TraceBuilder,
    TraceError,
    TraceHeader,
    check_word,
    new_header,
)

__all__ = ["import_strace", "parse_strace", "STRACE_OPTIONS", "FLAG_NAMES"]

#: The strace options the importer expects (``-o FILE -- COMMAND`` follow).
STRACE_OPTIONS = ("-f", "-y", "-e", "trace=memory,process")

_CLONE_FLAGS = {
    "CLONE_VM": CLONE_VM, "CLONE_FS": 0x200, "CLONE_FILES": 0x400, "CLONE_SIGHAND": 0x800,
    "CLONE_PIDFD": 0x1000, "CLONE_PTRACE": 0x2000, "CLONE_VFORK": CLONE_VFORK,
    "CLONE_PARENT": 0x8000, "CLONE_THREAD": CLONE_THREAD, "CLONE_NEWNS": 0x20000,
    "CLONE_SYSVSEM": 0x40000, "CLONE_SETTLS": 0x80000, "CLONE_PARENT_SETTID": 0x100000,
    "CLONE_CHILD_CLEARTID": 0x200000, "CLONE_DETACHED": 0x400000,
    "CLONE_UNTRACED": 0x800000, "CLONE_CHILD_SETTID": 0x1000000,
    "CLONE_NEWCGROUP": 0x2000000, "CLONE_NEWUTS": 0x4000000, "CLONE_NEWIPC": 0x8000000,
    "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000,
    "CLONE_IO": 0x80000000, "CLONE_CLEAR_SIGHAND": 0x100000000,
    "CLONE_INTO_CGROUP": 0x200000000,
}

#: Every symbolic flag name the importer understands (strace prints these).
FLAG_NAMES: dict[str, int] = {
    **{n: getattr(C, n) for n in C.__all__
       if n.startswith(("PROT_", "MAP_", "MREMAP_", "MADV_", "MLOCK_"))},
    "MAP_FILE": 0, "MAP_32BIT": 0x40, "MAP_DROPPABLE": 0x08, "MAP_HUGE_SHIFT": 26,
    "MAP_ABOVE4G": 0x80, "PROT_BTI": 0x10, "PROT_MTE": 0x20,
    "MADV_HWPOISON": 100, "MADV_SOFT_OFFLINE": 101,
    "MADV_GUARD_INSTALL": 102, "MADV_GUARD_REMOVE": 103,
    **_CLONE_FLAGS,
    **{s.name: int(s) for s in signal.Signals},
}

#: Positional argument names of the calls the importer decodes.
_ARG_NAMES: dict[str, tuple[str, ...]] = {
    "mmap": ("addr", "length", "prot", "flags", "fd", "offset"),
    "mmap2": ("addr", "length", "prot", "flags", "fd", "offset"),
    "munmap": ("addr", "length"),
    "mprotect": ("addr", "length", "prot"),
    "pkey_mprotect": ("addr", "length", "prot", "pkey"),
    "mremap": ("addr", "old_len", "new_len", "flags", "new_addr"),
    "madvise": ("addr", "length", "advice"),
    "mlock": ("addr", "length"),
    "mlock2": ("addr", "length", "flags"),
    "munlock": ("addr", "length"),
    "brk": ("addr",),
}
_OPTIONAL_ARGS = {"mremap": 1}  # new_addr is printed only with MREMAP_FIXED
_FORKS = ("clone", "clone3", "fork", "vfork")

_PREFIX = re.compile(
    r"^(?:\[pid\s+(?P<bpid>\d+)\]\s+|(?P<pid>\d+)\s+)?"
    r"(?:(?P<ts>\d+:\d+:\d+(?:\.\d+)?|\d+\.\d+)\s+)?(?P<body>.*?)\s*$")
_CALL = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)\((?P<rest>.*)$")
_RESUMED = re.compile(r"^<\.\.\. (?P<name>[a-z_][a-z0-9_]*) resumed>\s?(?P<rest>.*)$")
_UNFINISHED = " <unfinished ...>"
_RET = re.compile(r"^=\s+(?P<ret>0x[0-9a-fA-F]+|-?\d+|\?)(?:\s+(?P<errno>E[A-Z0-9]+)\b)?")
_DURATION = re.compile(r"\s+<\d+(?:\.\d+)?>$")
_EXITED = re.compile(r"^\+\+\+ (?:exited with -?\d+|killed by SIG\w+.*?) \+\+\+$")
_FD_PATH = re.compile(r"^(?P<fd>-?\d+)<(?P<path>.*)>$")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class _Call:
    """One system call, placed at the line where it started."""

    lineno: int
    tid: int
    name: str
    args_text: str
    tail: str = ""
    complete: bool = False


@dataclass
class _Exit:
    lineno: int
    tid: int


@dataclass
class _Parsed:
    events: list[_Call | _Exit] = field(default_factory=list)
    pending: dict[int, _Call] = field(default_factory=dict)


def _is_path_start(text: str, i: int) -> bool:
    """Whether the ``<`` at ``i`` opens a ``-y`` path (``3</lib/x>``), not a ``<<`` shift."""
    return i > 0 and text[i - 1].isdigit() and not text.startswith("<<", i) \
        and text[i - 1:i] != "<"


def _split_call(text: str) -> tuple[str, str] | None:
    """Split ``args) = ret`` at the call's closing parenthesis (quotes, brackets, braces,
    ``/* comments */`` and ``-y`` ``<paths>`` are skipped over)."""
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif ch == "<" and _is_path_start(text, i):
            end = text.find(">", i + 1)
            i = n if end < 0 else end
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return text[:i], text[i + 1:].strip()
            depth -= 1
        i += 1
    return None


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments, comments removed."""
    out: list[str] = []
    depth = 0
    cur: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch == "<" and _is_path_start(text, i):
            end = text.find(">", i + 1)
            end = n - 1 if end < 0 else end
            cur.append(text[i:end + 1])
            i = end + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    last = "".join(cur).strip()
    if last or out:
        out.append(last)
    return out


_ESCAPES = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "a": 7, "b": 8, "0": 0}
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)", re.S)


def _unquote(s: str) -> str:
    """A string as strace prints it (C escapes: ``\\n``, ``\\x1b``, ``\\303``), decoded."""
    def one(m: re.Match[bytes]) -> bytes:
        e = m[1].decode("ascii", "replace")
        if e[0] == "x":
            return bytes([int(e[1:], 16)])
        if e[0] in "01234567" and (len(e) > 1 or e != "0"):
            return bytes([int(e, 8) & 0xFF])
        return bytes([_ESCAPES.get(e, ord(e[0]) if ord(e[0]) < 256 else 63)])
    raw = _ESCAPE.sub(one, s.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace")


class _Decoder:
    """Turns argument text into integers, noting flag names it does not know."""

    def __init__(self, builder: TraceBuilder) -> None:
        self.builder = builder

    def flags(self, text: str) -> int:
        """``A|B|1<<N``: the value of an argument (ValueError outside 64 bits)."""
        value = 0
        for part in text.split("|"):
            part = part.strip()
            if "<<" in part:
                a, b = part.split("<<", 1)
                shift = self.number(b)
                if not 0 <= shift < WORD_BITS:
                    raise ValueError(f"shift {part!r} is not a 64-bit flag")
                value |= check_word(self.number(a) << shift, part)
            else:
                value |= self.number(part)
        return value

    def number(self, text: str) -> int:
        """One number or flag name (unknown names count as skipped and read as 0)."""
        text = text.strip()
        if text in ("NULL", ""):
            return 0
        try:
            value = int(text, 0)
        except ValueError:
            pass
        else:
            return check_word(value, text)
        if text in FLAG_NAMES:
            return FLAG_NAMES[text]
        if "|" in text or "<<" in text:
            return self.flags(text)
        self.builder.skip(f"unknown flag name {text} (read as 0)")
        return 0


def parse_strace(lines: Iterable[str], name: str = "<strace>") -> list[_Call | _Exit]:
    """Parse strace output into calls (in start order) and task exits.

    Raises :class:`TraceError` naming the line for text that is not strace output.
    """
    state = _Parsed()
    default_tid = 0
    for lineno, raw in enumerate(lines, 1):
        m = _PREFIX.match(raw.rstrip("\n"))
        assert m is not None  # the pattern accepts any line
        body = m["body"]
        if not body:
            continue
        tid = int(m["pid"] or m["bpid"] or default_tid)
        if body.startswith(("---", "strace: ")) or body.startswith("+++ superseded"):
            continue
        if _EXITED.match(body):
            state.events.append(_Exit(lineno, tid))
            continue
        if body.startswith("<..."):
            rm = _RESUMED.match(body)
            if rm is None:
                raise TraceError(f"{name}:{lineno}: cannot read strace line: {body[:70]!r}")
            call = state.pending.pop(tid, None)
            if call is None or call.name != rm["name"]:
                # Began before the trace did (strace -p): nothing to join it with.
                continue
            joined = _split_call(call.args_text + rm["rest"])
            if joined is None:
                raise TraceError(f"{name}:{lineno}: unbalanced resumed call {body[:70]!r}")
            call.args_text, call.tail, call.complete = joined[0], joined[1], True
            continue
        cm = _CALL.match(body)
        if cm is None:
            raise TraceError(f"{name}:{lineno}: not strace output: {body[:70]!r}")
        rest = cm["rest"]
        if rest.endswith(_UNFINISHED):
            call = _Call(lineno, tid, cm["name"], rest[: -len(_UNFINISHED)])
            state.pending[tid] = call
            state.events.append(call)
            continue
        split = _split_call(rest)
        if split is None:
            raise TraceError(f"{name}:{lineno}: unbalanced parentheses in {body[:70]!r}")
        state.events.append(_Call(lineno, tid, cm["name"], split[0], split[1], True))
    return state.events


def _ret(call: _Call, name: str) -> tuple[int | None, str | None]:
    tail = _DURATION.sub("", call.tail)
    m = _RET.match(tail)
    if m is None:
        raise TraceError(f"{name}:{call.lineno}: cannot read the return value of "
                         f"{call.name}: {tail[:40]!r}")
    if m["ret"] == "?":
        return None, None
    try:
        ret = check_word(int(m["ret"], 0), m["ret"])
    except ValueError as exc:
        raise TraceError(f"{name}:{call.lineno}: return value of {call.name}: {exc}") \
            from None
    if ret < 0 and m["errno"]:
        return ret, m["errno"]
    return ret, None


def _decode_call(call: _Call, dec: _Decoder, name: str) -> Syscall:
    """The named integer arguments of a memory syscall (and the -y path of an fd)."""
    names = _ARG_NAMES[call.name]
    args = _split_args(call.args_text)
    need = len(names) - _OPTIONAL_ARGS.get(call.name, 0)
    if not need <= len(args) <= len(names):
        raise TraceError(f"{name}:{call.lineno}: {call.name} has {len(args)} arguments, "
                         f"expected {len(names)}")
    values: dict[str, int] = {}
    path = None
    for key, text in zip(names, args, strict=False):
        fm = _FD_PATH.match(text)
        if key == "fd" and fm is not None:
            values[key] = int(fm["fd"])
            path = _unquote(fm["path"])
        else:
            values[key] = dec.flags(text)
    ret, errno = _ret(call, name)
    return Syscall(call.tid, call.name, values, ret, errno, path)


def _clone_flags(call: _Call, dec: _Decoder) -> int:
    if call.name == "fork":
        return 0
    if call.name == "vfork":
        return CLONE_VM | CLONE_VFORK
    m = re.search(r"\bflags=([\w|<]+)", call.args_text)
    return dec.flags(m[1]) if m else 0


def _feed(events: list[_Call | _Exit], b: TraceBuilder, name: str) -> list[str]:
    """Drive the builder with the parsed events; returns the first execve's argv.

    An event that cannot be imported raises :class:`TraceError` naming its line."""
    dec = _Decoder(b)
    argv: list[str] = []
    for ev in events:
        try:
            _feed_one(ev, b, dec, name, argv)
        except (KeyError, ValueError) as exc:
            if isinstance(exc, TraceError):
                raise
            what = f"missing argument {exc}" if isinstance(exc, KeyError) else str(exc)
            call = ev.name if isinstance(ev, _Call) else "exit"
            raise TraceError(f"{name}:{ev.lineno}: cannot import {call}: {what}") from None
    return argv


def _feed_one(ev: _Call | _Exit, b: TraceBuilder, dec: _Decoder, name: str,
              argv: list[str]) -> None:
    """Feed one event to the builder; the first execve's argv is stored in ``argv``."""
    if isinstance(ev, _Exit):
        b.task_exit(ev.tid)
        return
    if not ev.complete:
        b.skip(f"{ev.name}: no return value (unfinished at the end of the log)")
        return
    if ev.name in _ARG_NAMES:
        b.syscall(_decode_call(ev, dec, name))
    elif ev.name in _FORKS:
        ret, errno = _ret(ev, name)
        if errno is not None or ret is None or ret <= 0:
            b.skip(f"{ev.name}: failed in the real run")
        else:
            b.fork(ev.tid, ret, _clone_flags(ev, dec))
    elif ev.name in ("execve", "execveat"):
        ret, errno = _ret(ev, name)
        if errno is not None:
            b.skip(f"{ev.name}: failed in the real run ({errno})")
            return
        args = _split_args(ev.args_text)
        if ev.name == "execveat":
            args = args[1:]
        first = _STRING.match(args[0]) if args else None
        path = _unquote(first[1]) if first else "?"
        if not argv:
            arr = args[1] if len(args) > 1 else ""
            argv.extend([_unquote(s) for s in _STRING.findall(arr)] or [path])
        b.exec(ev.tid, path)
    elif ev.name == "exit_group":
        b.exit_group(ev.tid)
    elif ev.name != "exit":  # exit ends one task; its "+++ exited" line says so
        b.skip(f"{ev.name}: not in the op vocabulary")


def import_strace(path: str | Path, *, command: list[str] | None = None,
                  recorded_with: list[str] | None = None, notes: Iterable[str] = (),
                  max_faults: int | None = None,
                  **header: Any) -> tuple[TraceHeader, list[Op]]:
    """Read ``strace -f -y`` output from ``path``: the trace header and its ops.

    ``command`` defaults to the argv of the first execve in the log. Raises
    :class:`TraceError` (naming the line) for text that is not strace output.
    """
    p = Path(path)
    try:
        with open(p, encoding="utf-8", errors="replace") as fh:
            events = parse_strace(fh, str(path))
    except OSError as exc:
        raise TraceError(f"{path}: {exc.strerror or exc}") from None
    b = TraceBuilder(max_faults=max_faults)
    argv = _feed(events, b, str(path))
    ops = b.finish()
    hdr = new_header(
        "strace", command if command is not None else argv,
        recorded_with=list(recorded_with or ["strace " + " ".join(STRACE_OPTIONS)]),
        notes=["imported from strace: system calls only, no page faults",
               *notes],
        import_skipped=dict(sorted(b.skipped.items())), stats=dict(sorted(b.stats.items())),
        **header)
    return hdr, ops
