"""event_log: every observer event of a Machine as a structlog event.

The library never configures structlog (an application does: ``mmsim`` does so in its
entry point); this plugin only asks for a logger and binds the event's fields, so a
notebook or a test sees faults, COWs, splits, merges, walks, unmaps and reclaim
decisions in whatever format the application chose. Registering it turns events on; a
Machine without observers builds no events at all.

    >>> m = Machine(rmap="anon_vma_chain", observers=["event_log"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from mmcore import Event, PluginInfo, hookimpl

if TYPE_CHECKING:
    from mmcore import Machine


class EventLog:
    """Log each :class:`mmcore.Event` at debug level under the ``mmcore`` logger."""

    info: ClassVar[PluginInfo] = PluginInfo(
        name="event_log", kind="observer",
        summary="every machine event (fault, cow, split, merge, walk, reclaim) to structlog",
    )

    def __init__(self, machine: Machine) -> None:
        # A lazy logger: structlog's configuration is read when an event is logged, so
        # configuring (or capturing) after the Machine was built still applies.
        self.log = structlog.get_logger("mmcore")
        self.rmap = machine.rmap_name

    @hookimpl
    def mmcore_event(self, event: Event) -> None:
        """Emit the event with its pid and fields, addresses in hex (``address=0x7f...``,
        as /proc/PID/maps prints them; pfns and counts stay decimal)."""
        self.log.debug(event.kind, rmap=self.rmap, pid=event.pid, **readable(event.data))


#: Event fields that hold virtual addresses (fault, mremap_copy, split and merge events).
ADDRESS_FIELDS = frozenset({"address", "start", "end"})


def readable(data: dict[str, Any]) -> dict[str, Any]:
    """An event's fields with every address as a hex string."""
    return {k: f"{v:#x}" if k in ADDRESS_FIELDS and isinstance(v, int) else v
            for k, v in data.items()}
