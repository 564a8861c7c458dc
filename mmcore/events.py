"""Observer events: plain records of what the machine did, for logs, metrics and teaching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One observable step.

    ``kind`` is one of: ``fault`` (``type`` = anon, zero_page, cow_copy, cow_reuse,
    swapin_major, swapin_minor, shmem), ``split``, ``merge``, ``walk``, ``unmap``,
    ``mremap_copy``, ``fork``, ``exit``. ``pid`` is the process concerned (0 if none);
    ``data`` holds kind-specific fields such as ``address`` or ``pfn``.
    """

    kind: str
    pid: int = 0
    data: dict[str, Any] = field(default_factory=dict)
