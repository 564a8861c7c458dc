"""mmcore: a simulator of the Linux virtual-memory manager with pluggable reverse mapping.

>>> from mmcore import Machine, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS
>>> m = Machine(rmap="anon_vma_chain")
>>> p = m.spawn()
>>> a = p.mmap(0, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
>>> p.write(a, b"hello"); p.read(a, 5)
b'hello'
"""

from importlib import metadata as _metadata

from . import constants as _constants
from .constants import *  # noqa: F403  (PROT_*, MAP_*, MREMAP_*, MADV_*, VM_*: Linux values)
from .costs import Costs, Counters, WalkCost
from .errors import (
    BusError,
    ConfigError,
    MachineBroken,
    OutOfMemory,
    PluginError,
    SegmentationFault,
)
from .events import Event
from .hookspecs import hookimpl
from .machine import Machine
from .page import Page
from .plugins import PluginInfo, installed_plugins, valid_configurations
from .process import Process
from .rmap import UnmapResult, WalkResult, WalkTrace
from .vma import Vma

#: The distribution's name on the package index ("mmcore" there is an unrelated project).
DISTRIBUTION = "mmcore-sim"

try:  # the installed metadata is the one source of the version
    __version__ = _metadata.version(DISTRIBUTION)
except _metadata.PackageNotFoundError:  # imported from a source tree never installed
    __version__ = "0+unknown"

__all__ = [
    "DISTRIBUTION", "BusError", "ConfigError", "Costs", "Counters", "Event", "Machine",
    "MachineBroken", "OutOfMemory", "Page", "PluginError", "PluginInfo", "Process",
    "SegmentationFault",
    "UnmapResult", "Vma", "WalkCost", "WalkResult", "WalkTrace", "hookimpl",
    "installed_plugins", "valid_configurations",
]
__all__ += _constants.__all__
