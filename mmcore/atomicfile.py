"""Atomic file output: every file mmcore writes appears whole or not at all.

A writer gets a temporary file in the destination's directory (so the final rename never
crosses a filesystem) and the temporary file is ``os.replace``-d onto the destination only
when the writer finished without an exception. A failure part-way (a malformed input
found during an import, ``ulimit -f``, a full disk, Ctrl-C) removes the temporary file and
leaves an existing destination untouched.

    >>> with atomic_open("out.jsonl") as fh:     # doctest: +SKIP
    ...     fh.write(text)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_open", "write_text", "check_writable"]


def _new_file_mode(target: Path) -> int:
    """The permission bits the destination should end up with: an existing file's, else
    what ``open(path, "w")`` would give (0666 less the umask)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def check_writable(path: str | Path) -> Path:
    """Fail early, before any work, if a file cannot be created at ``path``: raises
    ``OSError`` (ENOENT for a missing directory, ENOTDIR, EISDIR, EACCES) naming the path.
    The real test is the write itself; this only saves a long run that could not be
    kept."""
    p = Path(path)
    parent = p.parent
    if p.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(p))
    if not parent.exists():
        raise FileNotFoundError(errno.ENOENT, "no such directory", str(parent))
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(parent))
    return p


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path`` to write to; renamed onto ``path`` when the
    block ends normally, removed when it raises (``BaseException`` too: Ctrl-C)."""
    target = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:  # name the file the caller asked for, not the temporary
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, _new_file_mode(target))
        os.close(fd)
        yield tmp
        # Flush the data to disk before the rename makes it the destination's.
        sync = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(sync)
        finally:
            os.close(sync)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8",
                **kw: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing, atomically (see :func:`atomic_path`); ``mode``
    is ``"w"`` or ``"wb"`` (``encoding`` is ignored for binary modes)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes a new file: mode must be 'w' or 'wb', "
                         f"not {mode!r}")
    with atomic_path(path) as tmp:
        binary = mode == "wb"
        with open(tmp, mode, encoding=None if binary else encoding, **kw) as fh:
            yield fh


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """``Path(path).write_text(text)``, atomically; returns the path."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)
