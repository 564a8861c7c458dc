"""A result store: one JSON file per sweep cell, named by the cell's key, plus an index.

Layout of a store directory::

    STORE/mmsim-store.json      {"format": 1}: marks the directory as a store
    STORE/cells/KEY.json        one Outcome (mmcore.experiments.cells), written atomically
    STORE/index.json            KEY -> status and cell axes, for listing without reading
                                every cell (rebuilt from cells/ whenever they disagree)
    STORE/.lock                 held (flock) by the one process writing the store

Every cell file is written to a temporary file and renamed into place
(:mod:`mmcore.atomicfile`), so a sweep killed at any instant leaves whole cells or none.
The cell files are the truth: opening a store adds cells missing from the index, drops
index entries whose file is gone and removes the temporary files of a writer that was
killed with SIGKILL. The index is rewritten (atomically) at most once a second while a
sweep runs, and when it ends or is interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ..atomicfile import write_text
from .cells import CELL_FORMAT, Cell, Outcome

MARKER = "mmsim-store.json"
#: Seconds between index rewrites during a sweep.
INDEX_INTERVAL = 1.0


class StoreError(ValueError):
    """A directory that is not a usable store, or a cell file in it that cannot be
    read; the message names the path."""


class Entry(NamedTuple):
    """A cell as the index knows it: its key, the cell and whether it has a result."""

    key: str
    cell: Cell
    ok: bool


def summary(outcome: Outcome) -> dict[str, Any]:
    """The index entry of an outcome: its status and cell axes."""
    return {"status": "ok" if outcome.ok else "failed", "cell": outcome.cell.to_dict()}


class Store:
    """A result store directory (created, with its parent, if missing, when
    ``create``); use as a context manager to hold its lock while writing."""

    def __init__(self, root: str | Path, create: bool = True) -> None:
        self.root = Path(root)
        self.cells = self.root / "cells"
        marker = self.root / MARKER
        if not marker.exists():
            if not create:
                raise StoreError(f"{self.root}: not an mmsim result store (no {MARKER})")
            if self.root.exists() and any(self.root.iterdir()):
                raise StoreError(f"{self.root}: exists and is not an mmsim result store; "
                                 f"choose an empty or new directory")
            self.cells.mkdir(parents=True, exist_ok=True)
            write_text(marker, json.dumps({"format": CELL_FORMAT}) + "\n")
        self.index: dict[str, dict[str, Any]] = {}
        self._lock_fd: int | None = None
        self._flushed = 0.0
        self._dirty = False
        self._load_index()

    # --- locking -----------------------------------------------------------------------

    def __enter__(self) -> Store:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.root}: another mmsim process is writing this "
                             f"store") from None
        self._lock_fd = fd
        self._remove_partial_files()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.flush()
            # A signal landing inside tempfile.mkstemp(), before atomic_path() owns the
            # file, leaves a temporary behind; no write is in flight once the lock
            # holder leaves, so any left now is such an orphan.
            self._remove_partial_files()
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # closing releases the flock
                self._lock_fd = None

    def _remove_partial_files(self) -> None:
        """Temporary files of a writer killed outright (SIGKILL) or interrupted before it
        owned them: never whole cells."""
        for tmp in self.cells.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    # --- index ------------------------------------------------------------------------

    def _load_index(self) -> None:
        path = self.root / "index.json"
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            loaded = {}
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable index ({exc}); delete it to rebuild "
                             f"it from the cells") from None
        on_disk = {p.stem for p in self.cells.glob("*.json") if not p.name.startswith(".")}
        self.index = {k: v for k, v in loaded.items() if k in on_disk}
        for key in sorted(on_disk - self.index.keys()):
            self.index[key] = summary(self.get(key))
        self._dirty = self.index != loaded

    def flush(self) -> None:
        """Rewrite the index if it changed."""
        if self._dirty:
            # keys sorted, each cell's own order kept (parameters in dataclass order)
            write_text(self.root / "index.json",
                       json.dumps(dict(sorted(self.index.items())), indent=1) + "\n")
            self._dirty = False
        self._flushed = time.monotonic()

    # --- cells ------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        """The file of cell ``key``."""
        return self.cells / f"{key}.json"

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.index)

    def status(self, key: str) -> str | None:
        """``ok``, ``failed``, or None for a cell not in the store."""
        entry = self.index.get(key)
        return None if entry is None else str(entry["status"])

    def get(self, key: str) -> Outcome:
        """The stored outcome of cell ``key``; StoreError naming the file if it is not
        one."""
        path = self.path(key)
        try:
            outcome = Outcome.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: {exc}") from None
        if outcome.key != key:
            raise StoreError(f"{path}: holds cell {outcome.key}, not {key}")
        return outcome

    def put(self, outcome: Outcome, text: str | None = None) -> None:
        """Store ``outcome`` (``text``: its JSON, when already at hand) atomically."""
        write_text(self.path(outcome.key), text if text is not None else outcome.to_json())
        self.index[outcome.key] = summary(outcome)
        self._dirty = True
        if time.monotonic() - self._flushed >= INDEX_INTERVAL:
            self.flush()

    def entries(self) -> Iterator[Entry]:
        """Every cell of the index, by key, without reading the cell files."""
        for key in sorted(self.index):
            entry = self.index[key]
            yield Entry(key, Cell.from_dict(entry["cell"]), entry["status"] == "ok")

    def outcomes(self) -> Iterator[Outcome]:
        """Every stored outcome, by key."""
        for key in sorted(self.index):
            yield self.get(key)
